package io.epserve.model.weights;

import java.lang.foreign.MemorySegment;

/**
 * An FP4 e2m1 weight matrix [rows, cols] packed two per byte ([rows, cols/2]; low nibble = even column) with one
 * E8M0 scale per row and 32 consecutive columns ([rows, cols/32]). Both segments view the mapped checkpoint.
 */
public record Fp4Matrix(String name, int rows, int cols, MemorySegment data, MemorySegment scale) {
    public static final int BLOCK = 32;

    public int code(int r, int c) {
        int b = data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, (long) r * (cols / 2) + c / 2);
        return (c & 1) == 0 ? b & 0xf : (b >>> 4) & 0xf;
    }

    public int scaleCode(int r, int c) {
        return scale.get(java.lang.foreign.ValueLayout.JAVA_BYTE, (long) r * (cols / BLOCK) + c / BLOCK) & 0xff;
    }
}
