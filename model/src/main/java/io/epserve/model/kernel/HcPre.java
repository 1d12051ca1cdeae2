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
 * mHC's hc_pre mix, {@code x[i] = bf16(sum_j pre[j] * X[j][i])} in double from 0, j in order, a separate multiply and
 * add per term, then rounded to float and to bf16: the same operations per element as the scalar definition, L
 * elements at a time, as in {@link HcPost} (whose notes on boxing apply here too). Scalar, it took 1.6 % of an
 * attention worker's time.
 */
public final class HcPre {
    private HcPre() {}

    /**
     * @param X   the streams, stream j of the row at {@code xo + j * d}
     * @param pre [hc] the row's pre weights
     * @param out the row's sublayer input at {@code oo}, d values
     */
    public static void mix(float[] X, int xo, double[] pre, int hc, int d, float[] out, int oo) {
        int step = TileKernels.SUPPORTED ? TileKernels.L : Integer.MAX_VALUE;
        int i = 0;
        for (; i + step <= d; i += step) {
            DoubleVector s0 = DoubleVector.zero(TileKernels.DS);
            DoubleVector s1 = s0;
            for (int j = 0; j < hc; j++) {
                FloatVector xv = FloatVector.fromArray(TileKernels.FS, X, xo + j * d + i);
                double p = pre[j];
                s0 = s0.add(((DoubleVector) xv.convertShape(F2D, TileKernels.DS, 0)).mul(p));
                s1 = s1.add(((DoubleVector) xv.convertShape(F2D, TileKernels.DS, 1)).mul(p));
            }
            if (s0.test(IS_NAN).or(s1.test(IS_NAN)).anyTrue()) {
                scalar(X, xo, pre, hc, d, i, i + step, out, oo);
                continue;
            }
            IntVector b = ((FloatVector) s0.convertShape(D2F, TileKernels.FS, 0)).reinterpretAsInts()
                    .or(((FloatVector) s1.convertShape(D2F, TileKernels.FS, -1)).reinterpretAsInts());
            b.add(b.lanewise(LSHR, 16).and(1).add(0x7fff)).and(0xffff0000).reinterpretAsFloats()
                    .intoArray(out, oo + i);
        }
        scalar(X, xo, pre, hc, d, i, d, out, oo);
    }

    static void scalar(float[] X, int xo, double[] pre, int hc, int d, int i0, int i1, float[] out, int oo) {
        for (int i = i0; i < i1; i++) {
            double s = 0;
            for (int j = 0; j < hc; j++) {
                s += pre[j] * X[xo + j * d + i];
            }
            out[oo + i] = Bf16.round(s);
        }
    }
}
