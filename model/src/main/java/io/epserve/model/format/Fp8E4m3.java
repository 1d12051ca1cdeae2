package io.epserve.model.format;

/**
 * float8_e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities, 0x7F/0xFF are NaN, max finite 448.
 */
public final class Fp8E4m3 {
    private Fp8E4m3() {}

    public static final double MAX = 448.0;
    /** f32(1/448), the constant the reference multiplies amax by. */
    public static final float INV_MAX_F32 = (float) (1.0 / 448.0);

    private static final float[] VALUES = new float[256];

    static {
        for (int c = 0; c < 256; c++) {
            VALUES[c] = (float) decodeSlow(c);
        }
    }

    private static double decodeSlow(int code) {
        int sign = (code & 0x80) != 0 ? -1 : 1;
        int exp = (code >>> 3) & 0xf;
        int man = code & 0x7;
        if (exp == 0xf && man == 0x7) {
            return Double.NaN;
        }
        double mag = exp == 0 ? Math.scalb((double) man, -9) : Math.scalb(8.0 + man, exp - 10);
        return sign * mag;
    }

    public static float toFloat(int code) {
        return VALUES[code & 0xff];
    }

    /** A copy of the 256-entry decode table (index = code). */
    public static float[] table() {
        return VALUES.clone();
    }

    /**
     * Encodes a value to the nearest e4m3 code, ties to the even code. Values beyond +-448 saturate to +-448
     * (callers clamp first, as the reference does); NaN encodes as 0x7F.
     */
    public static byte encode(double v) {
        if (Double.isNaN(v)) {
            return 0x7f;
        }
        int sign = (Double.doubleToRawLongBits(v) < 0) ? 0x80 : 0;
        double r = roundToGrid(Math.min(Math.abs(v), MAX));
        if (r == 0) {
            return (byte) sign;
        }
        int re = Math.getExponent(r);
        if (re < -6) {
            return (byte) (sign | (int) Math.scalb(r, 9)); // subnormal: m * 2^-9
        }
        int man = (int) Math.scalb(r, 3 - re) - 8;
        return (byte) (sign | ((re + 7) << 3) | man);
    }

    /** The value nearest to v on the e4m3 grid (ties to even), as a double; v must be within +-448. */
    public static double roundToGrid(double v) {
        double a = Math.abs(v);
        int e = a < 0x1p-6 ? -6 : Math.getExponent(a);
        double quantum = Math.scalb(1.0, e - 3);
        return Math.copySign(Math.rint(a / quantum) * quantum, v);
    }
}
