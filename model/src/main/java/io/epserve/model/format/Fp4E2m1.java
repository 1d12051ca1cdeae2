package io.epserve.model.format;

/**
 * FP4 e2m1: 1 sign, 2 exponent, 1 mantissa bit. Codes 0..7 are 0, 0.5, 1, 1.5, 2, 3, 4, 6 and 8..15 their negatives.
 * Packed two per byte with the LOW nibble holding the even element.
 */
public final class Fp4E2m1 {
    private Fp4E2m1() {}

    public static final double MAX = 6.0;
    /** f32(1/6), the constant the reference multiplies amax by. */
    public static final float INV_MAX_F32 = (float) (1.0 / 6.0);
    /** f32(6 * 2^-126): the floor of amax in the FP4 round trip. */
    public static final float AMAX_FLOOR = 6.0f * 0x1p-126f;

    private static final float[] VALUES = {
        0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f
    };

    public static float toFloat(int code) {
        return VALUES[code & 0xf];
    }

    public static float[] table() {
        return VALUES.clone();
    }

    /** Nearest code, ties to the even code (0.25->0, 0.75->1, 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4). */
    public static int encode(double v) {
        int sign = (Double.doubleToRawLongBits(v) < 0) ? 8 : 0;
        double a = Math.min(Math.abs(v), MAX);
        int best = 0;
        double bestErr = Double.MAX_VALUE;
        for (int c = 0; c < 8; c++) {
            double err = Math.abs(a - VALUES[c]);
            // codes are visited in increasing order; on an exact tie keep the even code
            if (err < bestErr || (err == bestErr && (c & 1) == 0)) {
                best = c;
                bestErr = err;
            }
        }
        return sign | best;
    }

    public static double roundToGrid(double v) {
        return toFloat(encode(v));
    }

    /** Element i of a packed row. */
    public static int nibble(byte packed, int i) {
        return (i & 1) == 0 ? packed & 0xf : (packed >>> 4) & 0xf;
    }
}
