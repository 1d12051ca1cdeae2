package io.epserve.model.format;

/**
 * The reference's quantisation round trips, reproduced at its rounding points (GOLDEN.md numerics contract 1, 4, 7).
 * Every result is exactly representable in float32 and in bf16.
 */
public final class QuantSim {
    private QuantSim() {}

    /** f32(1e-4): the floor of amax in FP8 activation quantisation. */
    public static final float FP8_AMAX_FLOOR = 1e-4f;

    /** The E8M0 scale exponent of one FP8 block of x[off, off+n). */
    public static int fp8BlockExponent(float[] x, int off, int n) {
        float amax = FP8_AMAX_FLOOR;
        for (int i = off; i < off + n; i++) {
            amax = Math.max(amax, Math.abs(x[i]));
        }
        return E8m0.ceilLog2Exponent(amax, Fp8E4m3.INV_MAX_F32);
    }

    /**
     * FP8 round trip in blocks: x[off..off+n) -> e4m3(clamp(x/2^k, +-448)) * 2^k, written to out[outOff..].
     * In place is allowed. n must be a multiple of block.
     */
    public static void fp8RoundTrip(float[] x, int off, int n, int block, float[] out, int outOff) {
        for (int b = 0; b < n; b += block) {
            int k = fp8BlockExponent(x, off + b, block);
            double inv = Math.scalb(1.0, -k);
            double s = Math.scalb(1.0, k);
            for (int i = 0; i < block; i++) {
                double v = Math.max(-Fp8E4m3.MAX, Math.min(Fp8E4m3.MAX, x[off + b + i] * inv));
                out[outOff + b + i] = (float) (Fp8E4m3.roundToGrid(v) * s);
            }
        }
    }

    /**
     * FP8 quantisation in blocks, keeping codes and scale exponents (the form the kernels and the KV cache store):
     * codes[codeOff + i] and exps[expOff + i/block].
     */
    public static void fp8Quantize(float[] x, int off, int n, int block, byte[] codes, int codeOff, int[] exps, int expOff) {
        for (int b = 0; b < n; b += block) {
            int k = fp8BlockExponent(x, off + b, block);
            exps[expOff + b / block] = k;
            double inv = Math.scalb(1.0, -k);
            for (int i = 0; i < block; i++) {
                double v = Math.max(-Fp8E4m3.MAX, Math.min(Fp8E4m3.MAX, x[off + b + i] * inv));
                codes[codeOff + b + i] = Fp8E4m3.encode(v);
            }
        }
    }

    /** The E8M0 scale exponent of one FP4 block of x[off, off+n). */
    public static int fp4BlockExponent(float[] x, int off, int n) {
        float amax = Fp4E2m1.AMAX_FLOOR;
        for (int i = off; i < off + n; i++) {
            amax = Math.max(amax, Math.abs(x[i]));
        }
        return E8m0.ceilLog2Exponent(amax, Fp4E2m1.INV_MAX_F32);
    }

    /** FP4 round trip in blocks of `block` values, in place allowed. */
    public static void fp4RoundTrip(float[] x, int off, int n, int block, float[] out, int outOff) {
        for (int b = 0; b < n; b += block) {
            int k = fp4BlockExponent(x, off + b, block);
            double inv = Math.scalb(1.0, -k);
            double s = Math.scalb(1.0, k);
            for (int i = 0; i < block; i++) {
                double v = Math.max(-Fp4E2m1.MAX, Math.min(Fp4E2m1.MAX, x[off + b + i] * inv));
                out[outOff + b + i] = (float) (Fp4E2m1.roundToGrid(v) * s);
            }
        }
    }

    /** FP4 quantisation in blocks, keeping nibble codes (one per byte of codes) and scale exponents. */
    public static void fp4Quantize(float[] x, int off, int n, int block, byte[] codes, int codeOff, int[] exps, int expOff) {
        for (int b = 0; b < n; b += block) {
            int k = fp4BlockExponent(x, off + b, block);
            exps[expOff + b / block] = k;
            double inv = Math.scalb(1.0, -k);
            for (int i = 0; i < block; i++) {
                double v = Math.max(-Fp4E2m1.MAX, Math.min(Fp4E2m1.MAX, x[off + b + i] * inv));
                codes[codeOff + b + i] = (byte) Fp4E2m1.encode(v);
            }
        }
    }
}
