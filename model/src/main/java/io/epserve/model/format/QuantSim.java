package io.epserve.model.format;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

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
        boolean lanes = (FS.length() == 16 || FS.length() == 8) && block % FS.length() == 0;
        for (int b = 0; b < n; b += block) {
            if (!lanes || !fp8QuantizeLanes(x, off + b, block, codes, codeOff + b, exps, expOff + b / block)) {
                fp8QuantizeScalar(x, off + b, block, block, codes, codeOff + b, exps, expOff + b / block);
            }
        }
    }

    /** {@link #fp8Quantize} one element at a time through {@link Fp8E4m3#encode} (the reference form). */
    static void fp8QuantizeScalar(float[] x, int off, int n, int block, byte[] codes, int codeOff, int[] exps,
                                  int expOff) {
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

    /**
     * One block of {@link #fp8Quantize} in float lanes, bit for bit {@link #fp8QuantizeScalar} (the MoE dispatch
     * quantises every token row and the KV cache every row it stores, which the scalar form made 2 % of an attention
     * worker's time). As for FP4: {@code x * 2^-k} is exact unless below 2^-126, where both forms give a signed
     * zero code; {@link #e4m3} rounds to the grid; a grid value's code is its float bits' exponent and top three
     * mantissa bits rebased (normal) or the value times 2^9 (subnormal); the sign is x's, as {@code encode} takes
     * it. Returns false (nothing written) for a block holding NaN or infinity.
     */
    private static boolean fp8QuantizeLanes(float[] x, int off, int block, byte[] codes, int codeOff, int[] exps,
                                            int expIndex) {
        int L = FS.length();
        FloatVector m = FloatVector.broadcast(FS, FP8_AMAX_FLOOR);
        for (int i = 0; i < block; i += L) {
            m = m.max(FloatVector.fromArray(FS, x, off + i).abs());
        }
        float amax = m.reduceLanes(VectorOperators.MAX);
        if (!(amax <= Float.MAX_VALUE)) {
            return false;
        }
        int k = E8m0.ceilLog2Exponent(amax, Fp8E4m3.INV_MAX_F32);
        float inv = Math.scalb(1f, -k);
        VectorSpecies<Byte> bytes = L == 16 ? ByteVector.SPECIES_128 : ByteVector.SPECIES_64;
        for (int i = 0; i < block; i += L) {
            FloatVector xv = FloatVector.fromArray(FS, x, off + i);
            FloatVector r = e4m3(xv.mul(inv).max(-448f).min(448f)).abs();
            IntVector rb = r.reinterpretAsInts();
            IntVector normal = rb.lanewise(VectorOperators.LSHR, 20).sub(120 << 3);
            IntVector subnormal = (IntVector) r.mul(512f).convertShape(VectorOperators.F2I, IS, 0);
            IntVector code = normal.blend(subnormal, rb.compare(VectorOperators.LT, 0x3c800000)) // 2^-6
                    .or(xv.reinterpretAsInts().lanewise(VectorOperators.LSHR, 24).and(0x80));
            code.convertShape(VectorOperators.I2B, bytes, 0).reinterpretAsBytes().intoArray(codes, codeOff + i);
        }
        exps[expIndex] = k;
        return true;
    }

    /**
     * e4m3 nearest-even of lanes already clamped to +-448. Adding and subtracting M = 2^(max(e, -6) + 20) rounds
     * |v| to a multiple of 2^(max(e,-6) - 3), which is the e4m3 quantum at v's binade (subnormals included).
     */
    public static FloatVector e4m3(FloatVector v) {
        IntVector b = v.reinterpretAsInts();
        FloatVector m = b.and(0x7f800000).max(121 << 23).add(20 << 23).reinterpretAsFloats();
        FloatVector r = v.abs().add(m).sub(m);
        return r.reinterpretAsInts().or(b.and(0x80000000)).reinterpretAsFloats();
    }

    /** The E8M0 scale exponent of one FP4 block of x[off, off+n). */
    public static int fp4BlockExponent(float[] x, int off, int n) {
        float amax = Fp4E2m1.AMAX_FLOOR;
        for (int i = off; i < off + n; i++) {
            amax = Math.max(amax, Math.abs(x[i]));
        }
        return E8m0.ceilLog2Exponent(amax, Fp4E2m1.INV_MAX_F32);
    }

    /**
     * FP4 round trip in blocks of `block` values, in place allowed. Blocks that fill whole float vectors take
     * {@link #fp4RoundTripLanes}, the same bits as {@link #fp4RoundTripScalar} (the indexer runs this on every query
     * head: the scalar code's nearest-code search took 3.4 % of an attention worker's time).
     */
    public static void fp4RoundTrip(float[] x, int off, int n, int block, float[] out, int outOff) {
        boolean lanes = FS.length() >= 8 && block % FS.length() == 0;
        for (int b = 0; b < n; b += block) {
            if (!lanes || !fp4RoundTripLanes(x, off + b, block, out, outOff + b)) {
                fp4RoundTripScalar(x, off + b, block, block, out, outOff + b);
            }
        }
    }

    /** {@link #fp4RoundTrip} one element at a time through {@link Fp4E2m1#roundToGrid} (the reference form). */
    static void fp4RoundTripScalar(float[] x, int off, int n, int block, float[] out, int outOff) {
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

    private static final VectorSpecies<Float> FS = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> IS = IntVector.SPECIES_PREFERRED;
    /** Adding and subtracting 2^23 rounds a float in [0, 2^23) to an integer, ties to even. */
    private static final float ROUND = 0x1p23f;

    /**
     * One block of the FP4 round trip in float lanes, bit for bit {@link #fp4RoundTripScalar}: 2^-k and 2^k are
     * normal floats (amax is floored at 6 * 2^-126), so {@code x * 2^-k} is exact unless it is below 2^-126, where
     * both forms give a signed zero; on the e2m1 grid, spacing 0.5 below 2, 1 up to 4 and 2 up to 6, "nearest, ties
     * to the even code" is round-half-even of 2a, a or a/2; the grid value times 2^k rounds once, as the double
     * product's cast does. Returns false (nothing written) for a block holding NaN or infinity.
     */
    private static boolean fp4RoundTripLanes(float[] x, int off, int block, float[] out, int outOff) {
        int L = FS.length();
        FloatVector m = FloatVector.broadcast(FS, Fp4E2m1.AMAX_FLOOR);
        for (int i = 0; i < block; i += L) {
            m = m.max(FloatVector.fromArray(FS, x, off + i).abs());
        }
        float amax = m.reduceLanes(VectorOperators.MAX);
        if (!(amax <= Float.MAX_VALUE)) {
            return false;
        }
        int k = E8m0.ceilLog2Exponent(amax, Fp4E2m1.INV_MAX_F32);
        float inv = Math.scalb(1f, -k);
        float s = Math.scalb(1f, k);
        for (int i = 0; i < block; i += L) {
            FloatVector v = FloatVector.fromArray(FS, x, off + i).mul(inv);
            FloatVector a = v.abs().min((float) Fp4E2m1.MAX);
            FloatVector fine = a.mul(2f).add(ROUND).sub(ROUND).mul(0.5f);
            FloatVector mid = a.add(ROUND).sub(ROUND);
            FloatVector coarse = a.mul(0.5f).add(ROUND).sub(ROUND).mul(2f);
            FloatVector r = coarse.blend(mid, a.compare(VectorOperators.LT, 4f))
                    .blend(fine, a.compare(VectorOperators.LT, 2f));
            IntVector sign = v.reinterpretAsInts().and(0x80000000);
            r.reinterpretAsInts().or(sign).reinterpretAsFloats().mul(s).intoArray(out, outOff + i);
        }
        return true;
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
