package io.epserve.model.weights;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.function.LongFunction;

/**
 * An FP8 e4m3 weight matrix [rows, cols] (one byte per element) with E8M0 scales per 128x128 block
 * ([ceil(rows/128), ceil(cols/128)] bytes, row-major, as stored).
 *
 * <p>The codes are in one of two layouts. Row-major ({@code panelled == false}) is the checkpoint's: element (r, c)
 * at byte {@code r * cols + c}. Panelled is what the fast kernels read: rows in panels of {@link #PANEL}, each
 * panel's columns one after the other, a column's 16 codes (one per row of the panel) contiguous, so element
 * (r, c) is at byte {@code (r / 16) * 16 * cols + 16 * c + r % 16}; a last, partial panel is padded with zero codes
 * to 16 rows. A kernel then loads one column of 16 rows as one vector (lanes = rows) and multiplies it by a single
 * broadcast activation, which is how it keeps a whole tile's accumulators in registers
 * ({@code io.epserve.model.kernel.Fp8PanelKernels}).
 */
public record Fp8Matrix(String name, int rows, int cols, MemorySegment data, MemorySegment scale, boolean panelled) {
    public static final int BLOCK = 128;
    /** Rows per panel of the panelled layout; a multiple of every vector's lane count and a divisor of BLOCK. */
    public static final int PANEL = 16;

    public Fp8Matrix {
        long need = panelled ? panelledBytes(rows, cols) : (long) rows * cols;
        if (rows < 0 || cols < 0 || data.byteSize() < need) {
            throw new IllegalArgumentException(name + ": " + data.byteSize() + " bytes of codes for " + rows + "x"
                    + cols + (panelled ? " in panels (" : " (") + need + " needed)");
        }
    }

    /** A matrix whose codes are in the checkpoint's row-major layout. */
    public Fp8Matrix(String name, int rows, int cols, MemorySegment data, MemorySegment scale) {
        this(name, rows, cols, data, scale, false);
    }

    /** Bytes of the panelled layout: rows rounded up to whole panels. */
    public static long panelledBytes(int rows, int cols) {
        return (long) (rows + PANEL - 1) / PANEL * PANEL * cols;
    }

    public int scaleCols() {
        return (cols + BLOCK - 1) / BLOCK;
    }

    public int code(int r, int c) {
        long off = panelled ? (long) (r / PANEL) * PANEL * cols + (long) PANEL * c + r % PANEL : (long) r * cols + c;
        return data.get(ValueLayout.JAVA_BYTE, off) & 0xff;
    }

    public int scaleCode(int r, int c) {
        return scale.get(ValueLayout.JAVA_BYTE, (long) (r / BLOCK) * scaleCols() + c / BLOCK) & 0xff;
    }

    /**
     * This matrix in the panelled layout, its codes and scales (as they are) copied into memory from
     * {@code allocate} (given a byte count, returning zeroed memory of at least that size). Returns this matrix if it
     * is panelled.
     */
    public Fp8Matrix panelled(LongFunction<MemorySegment> allocate) {
        if (panelled) {
            return this;
        }
        long bytes = panelledBytes(rows, cols);
        if (bytes == 0) {
            return new Fp8Matrix(name, rows, cols, MemorySegment.NULL, scale, true);
        }
        long scaleBytes = (long) ((rows + BLOCK - 1) / BLOCK) * scaleCols();
        MemorySegment p = allocate.apply(bytes + scaleBytes);
        MemorySegment ps = p.asSlice(bytes, scaleBytes);
        MemorySegment.copy(scale, 0, ps, 0, scaleBytes);
        byte[] in = new byte[PANEL * cols];
        byte[] panel = new byte[PANEL * cols];
        for (int r0 = 0; r0 < rows; r0 += PANEL) {
            int h = Math.min(PANEL, rows - r0);
            java.util.Arrays.fill(panel, (byte) 0);
            MemorySegment.copy(data, ValueLayout.JAVA_BYTE, (long) r0 * cols, in, 0, h * cols);
            for (int i = 0; i < h; i++) {
                for (int c = 0, from = i * cols; c < cols; c++) {
                    panel[PANEL * c + i] = in[from + c];
                }
            }
            MemorySegment.copy(panel, 0, p, ValueLayout.JAVA_BYTE, (long) r0 * cols, panel.length);
        }
        return new Fp8Matrix(name, rows, cols, p.asSlice(0, bytes).asReadOnly(), ps.asReadOnly(), true);
    }
}
