package io.epserve.model.weights;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** An F32 weight matrix [rows, cols], row-major little-endian, viewing the mapped checkpoint. */
public record F32Matrix(String name, int rows, int cols, MemorySegment data) {
    static final ValueLayout.OfFloat LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public float get(int r, int c) {
        return data.get(LE, 4 * ((long) r * cols + c));
    }
}
