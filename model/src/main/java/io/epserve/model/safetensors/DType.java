package io.epserve.model.safetensors;

import java.util.Locale;

/** Safetensors element types this engine reads. */
public enum DType {
    BF16(2), F16(2), F32(4), F64(8), F8_E4M3(1), F8_E8M0(1), I8(1), U8(1), I32(4), I64(8), BOOL(1);

    public final int size;

    DType(int size) {
        this.size = size;
    }

    /** The dtype of a header string; null when it is not one this engine reads. */
    public static DType parse(String s) {
        if (s == null) {
            return null;
        }
        try {
            return valueOf(s.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            return null;
        }
    }
}
