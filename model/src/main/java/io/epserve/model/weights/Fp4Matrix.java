package io.epserve.model.weights;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.function.LongFunction;

/**
 * An FP4 e2m1 weight matrix [rows, cols] (cols a multiple of 32), two codes per byte, with one E8M0 scale per row
 * and 32 consecutive columns.
 *
 * <p>Two layouts. Row-major ({@code panelled == false}) is the checkpoint's: codes [rows, cols/2] (low nibble = even
 * column), scales [rows, cols/32]. Panelled is what the fast kernels read: rows in panels of {@link #PANEL}; a panel's
 * codes are its 8-column groups one after the other, each 64 bytes holding, for row i of the panel, that row's 4
 * bytes of the group at byte 4i (so one int lane = one row's 8 codes); a panel's scales are its 32-column blocks one
 * after the other, 16 bytes each (row i at byte i). A last, partial panel is padded with zero codes and scales
 * ({@code io.epserve.model.kernel.Fp4PanelKernels}).
 */
public record Fp4Matrix(String name, int rows, int cols, MemorySegment data, MemorySegment scale, boolean panelled) {
    public static final int BLOCK = 32;
    /** Rows per panel of the panelled layout. */
    public static final int PANEL = 16;

    public Fp4Matrix {
        long codes = panelled ? panelledBytes(rows, cols) : (long) rows * (cols / 2);
        long scales = panelled ? panelledScaleBytes(rows, cols) : (long) rows * (cols / BLOCK);
        if (rows < 0 || cols < 0 || cols % BLOCK != 0 || data.byteSize() < codes || scale.byteSize() < scales) {
            throw new IllegalArgumentException(name + ": " + data.byteSize() + " bytes of codes and "
                    + scale.byteSize() + " of scales for " + rows + "x" + cols + (panelled ? " in panels" : "")
                    + " (" + codes + " and " + scales + " needed, columns a multiple of " + BLOCK + ")");
        }
    }

    /** A matrix in the checkpoint's row-major layout. */
    public Fp4Matrix(String name, int rows, int cols, MemorySegment data, MemorySegment scale) {
        this(name, rows, cols, data, scale, false);
    }

    /** Code bytes of the panelled layout: rows rounded up to whole panels. */
    public static long panelledBytes(int rows, int cols) {
        return (long) (rows + PANEL - 1) / PANEL * PANEL * (cols / 2);
    }

    /** Scale bytes of the panelled layout. */
    public static long panelledScaleBytes(int rows, int cols) {
        return (long) (rows + PANEL - 1) / PANEL * PANEL * (cols / BLOCK);
    }

    public int code(int r, int c) {
        long off = panelled
                ? (long) (r / PANEL) * PANEL * (cols / 2) + 64L * (c / 8) + 4 * (r % PANEL) + (c % 8) / 2
                : (long) r * (cols / 2) + c / 2;
        int b = data.get(ValueLayout.JAVA_BYTE, off);
        return (c & 1) == 0 ? b & 0xf : (b >>> 4) & 0xf;
    }

    public int scaleCode(int r, int c) {
        long off = panelled
                ? (long) (r / PANEL) * PANEL * (cols / BLOCK) + (long) PANEL * (c / BLOCK) + r % PANEL
                : (long) r * (cols / BLOCK) + c / BLOCK;
        return scale.get(ValueLayout.JAVA_BYTE, off) & 0xff;
    }

    /**
     * This matrix in the panelled layout, codes and scales copied into memory from {@code allocate} (given a byte
     * count, returning zeroed memory of at least that size). Returns this matrix if it is panelled.
     */
    public Fp4Matrix panelled(LongFunction<MemorySegment> allocate) {
        if (panelled) {
            return this;
        }
        long codeBytes = panelledBytes(rows, cols);
        long scaleBytes = panelledScaleBytes(rows, cols);
        if (codeBytes == 0) {
            return new Fp4Matrix(name, rows, cols, MemorySegment.NULL, MemorySegment.NULL, true);
        }
        MemorySegment p = allocate.apply(codeBytes + scaleBytes);
        MemorySegment pc = p.asSlice(0, codeBytes);
        MemorySegment ps = p.asSlice(codeBytes, scaleBytes);
        int rowBytes = cols / 2;
        int groups = cols / 8; // one int (8 codes) per row and group
        int blocks = cols / BLOCK;
        // an int per row and 8-column group: the move is a transpose of ints, in whichever byte order both sides use
        int[] in = new int[PANEL * groups];
        byte[] inS = new byte[PANEL * blocks];
        int[] out = new int[PANEL * groups];
        byte[] outS = new byte[PANEL * blocks];
        for (int r0 = 0; r0 < rows; r0 += PANEL) {
            int h = Math.min(PANEL, rows - r0);
            java.util.Arrays.fill(out, 0);
            java.util.Arrays.fill(outS, (byte) 0);
            MemorySegment.copy(data, ValueLayout.JAVA_INT_UNALIGNED, (long) r0 * rowBytes, in, 0, h * groups);
            MemorySegment.copy(scale, ValueLayout.JAVA_BYTE, (long) r0 * blocks, inS, 0, h * blocks);
            for (int g = 0; g < groups; g++) {
                for (int i = 0; i < h; i++) {
                    out[PANEL * g + i] = in[i * groups + g];
                }
            }
            for (int k = 0; k < blocks; k++) {
                for (int i = 0; i < h; i++) {
                    outS[PANEL * k + i] = inS[i * blocks + k];
                }
            }
            MemorySegment.copy(out, 0, pc, ValueLayout.JAVA_INT_UNALIGNED, (long) r0 * rowBytes, out.length);
            MemorySegment.copy(outS, 0, ps, ValueLayout.JAVA_BYTE, (long) r0 * blocks, outS.length);
        }
        return new Fp4Matrix(name, rows, cols, pc.asReadOnly(), ps.asReadOnly(), true);
    }
}
