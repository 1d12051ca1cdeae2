package io.epserve.model.kernel;

import static jdk.incubator.vector.VectorOperators.D2F;
import static jdk.incubator.vector.VectorOperators.F2D;
import static jdk.incubator.vector.VectorOperators.IS_NAN;
import static jdk.incubator.vector.VectorOperators.LSHR;

import io.epserve.model.format.Bf16;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;

/**
 * mHC's hc_post, {@code out[t][k][i] = bf16(post[t][k] * a[t][i] + sum_j comb[t][j][k] * X[t][j][i])} in double, j in
 * order, with a separate multiply and add per term (as Java's scalar arithmetic does, never a fused multiply-add),
 * then rounded to float and to bf16. The vector path runs exactly those operations per element, L elements at a time,
 * so its bits are the scalar definition's; a chunk holding a NaN takes the scalar path (Bf16 keeps a NaN quiet, the
 * vector rounding would not). It ran scalar in the engine at ~4 % of an attention worker's time.
 */
public final class HcPost {
    private HcPost() {}

    /**
     * @param a     [T, d] the block's output
     * @param X     [T, hc, d] the streams
     * @param post  [T, hc]
     * @param comb  [T, hc, hc], comb[t][j][k] mixes stream j into stream k
     * @param out   [T, hc, d]
     */
    public static void apply(float[] a, float[] X, double[] post, double[] comb, int T, int hc, int d, float[] out) {
        int step = TileKernels.SUPPORTED ? TileKernels.L : Integer.MAX_VALUE;
        for (int t = 0; t < T; t++) {
            for (int q = 0; q < hc; q++) {
                double p = post[t * hc + q];
                int o = (t * hc + q) * d;
                int ai = t * d;
                int ci = t * hc * hc + q;
                int i = 0;
                for (; i + step <= d; i += step) {
                    // a full float vector widened as two double halves, never a half-width one (see TileKernels.DS);
                    // in place, not by a helper: a vector handed to a call C2 does not inline is boxed
                    FloatVector av = FloatVector.fromArray(TileKernels.FS, a, ai + i);
                    DoubleVector s0 = ((DoubleVector) av.convertShape(F2D, TileKernels.DS, 0)).mul(p);
                    DoubleVector s1 = ((DoubleVector) av.convertShape(F2D, TileKernels.DS, 1)).mul(p);
                    for (int j = 0; j < hc; j++) {
                        FloatVector xv = FloatVector.fromArray(TileKernels.FS, X, (t * hc + j) * d + i);
                        double cj = comb[ci + j * hc];
                        s0 = s0.add(((DoubleVector) xv.convertShape(F2D, TileKernels.DS, 0)).mul(cj));
                        s1 = s1.add(((DoubleVector) xv.convertShape(F2D, TileKernels.DS, 1)).mul(cj));
                    }
                    if (s0.test(IS_NAN).or(s1.test(IS_NAN)).anyTrue()) {
                        scalar(a, X, p, comb, ci, t, hc, d, i, i + step, o, out);
                        continue;
                    }
                    // bf16 rounding written out: a shared helper for it, called here with 256-bit vectors and in the
                    // attention kernel with 512-bit ones, got a polymorphic type profile and C2 boxed the vectors it
                    // returned in both (the attention worker allocated ~3 GB/s of them). The halves narrow into one
                    // float vector: part 0 fills its lower lanes, part -1 its upper ones, zero bits elsewhere.
                    IntVector b = ((FloatVector) s0.convertShape(D2F, TileKernels.FS, 0)).reinterpretAsInts()
                            .or(((FloatVector) s1.convertShape(D2F, TileKernels.FS, -1)).reinterpretAsInts());
                    b.add(b.lanewise(LSHR, 16).and(1).add(0x7fff)).and(0xffff0000).reinterpretAsFloats()
                            .intoArray(out, o + i);
                }
                scalar(a, X, p, comb, ci, t, hc, d, i, d, o, out);
            }
        }
    }

    private static void scalar(float[] a, float[] X, double p, double[] comb, int ci, int t, int hc, int d, int i0,
            int i1, int o, float[] out) {
        for (int i = i0; i < i1; i++) {
            double s = p * a[t * d + i];
            for (int j = 0; j < hc; j++) {
                s += comb[ci + j * hc] * X[(t * hc + j) * d + i];
            }
            out[o + i] = Bf16.round(s);
        }
    }
}
