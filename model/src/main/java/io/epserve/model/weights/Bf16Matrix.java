package io.epserve.model.weights;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** A BF16 weight matrix [rows, cols], row-major little-endian, viewing the mapped checkpoint. */
public record Bf16Matrix(String name, int rows, int cols, MemorySegment data) {
    static final ValueLayout.OfShort LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public float get(int r, int c) {
        return Float.intBitsToFloat((data.get(LE, 2 * ((long) r * cols + c)) & 0xffff) << 16);
    }

    /** Row r widened to float into dst[off..off+cols). */
    public void row(int r, float[] dst, int off) {
        long base = 2L * r * cols;
        for (int c = 0; c < cols; c++) {
            dst[off + c] = Float.intBitsToFloat((data.get(LE, base + 2L * c) & 0xffff) << 16);
        }
    }
}
