package io.epserve.model.weights;

import java.lang.foreign.MemorySegment;

/**
 * An FP8 e4m3 weight matrix [rows, cols] (row-major, one byte per element) with E8M0 scales per 128x128 block
 * ([ceil(rows/128), ceil(cols/128)] bytes). Both segments are views of the mapped checkpoint.
 */
public record Fp8Matrix(String name, int rows, int cols, MemorySegment data, MemorySegment scale) {
    public static final int BLOCK = 128;

    public int scaleCols() {
        return (cols + BLOCK - 1) / BLOCK;
    }

    public int code(int r, int c) {
        return data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, (long) r * cols + c) & 0xff;
    }

    public int scaleCode(int r, int c) {
        return scale.get(java.lang.foreign.ValueLayout.JAVA_BYTE, (long) (r / BLOCK) * scaleCols() + c / BLOCK) & 0xff;
    }
}
