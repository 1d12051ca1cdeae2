package io.epserve.model.format;

/** E8M0: an unsigned power-of-two scale, 2^(byte-127); 0xFF is NaN. */
public final class E8m0 {
    private E8m0() {}

    public static final int NAN_CODE = 0xff;

    public static double toDouble(int code) {
        int c = code & 0xff;
        if (c == NAN_CODE) {
            return Double.NaN;
        }
        return Math.scalb(1.0, c - 127);
    }

    public static float toFloat(int code) {
        return (float) toDouble(code);
    }

    /** The code of 2^exponent; the exponent must be in [-127, 127]. */
    public static byte fromExponent(int exponent) {
        if (exponent < -127 || exponent > 127) {
            throw new IllegalArgumentException("E8M0 exponent out of range: " + exponent);
        }
        return (byte) (exponent + 127);
    }

    /**
     * The power-of-two scale exponent the reference derives for a block: ceil(log2(f32(f32(amax) * f32(1/max)))),
     * read from the float32 bits (exponent, plus one when any mantissa bit is set).
     */
    public static int ceilLog2Exponent(float amax, float inverseMax) {
        float t = amax * inverseMax;
        int bits = Float.floatToRawIntBits(t);
        int exp = ((bits >>> 23) & 0xff) - 127;
        return (bits & 0x7fffff) != 0 ? exp + 1 : exp;
    }
}
