package io.epserve.model.format;

/** bfloat16: the upper 16 bits of an IEEE float32. All rounding is to nearest, ties to even. */
public final class Bf16 {
    private Bf16() {}

    /** Rounds a float32 to the nearest bf16 (ties to even) and returns its 16-bit pattern. */
    public static short bits(float f) {
        int b = Float.floatToRawIntBits(f);
        if ((b & 0x7fffffff) > 0x7f800000) {
            return (short) ((b >>> 16) | 0x40); // keep NaN a quiet NaN
        }
        b += 0x7fff + ((b >>> 16) & 1);
        return (short) (b >>> 16);
    }

    public static float toFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** bf16(v) of the numerics contract: round to float32, then to bf16. */
    public static float round(double v) {
        return toFloat(bits((float) v));
    }

    public static float round(float v) {
        return toFloat(bits(v));
    }
}
