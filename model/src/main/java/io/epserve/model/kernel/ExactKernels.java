package io.epserve.model.kernel;

import io.epserve.model.format.Bf16;
import io.epserve.model.format.E8m0;
import io.epserve.model.format.Fp4E2m1;
import io.epserve.model.format.Fp8E4m3;
import io.epserve.model.format.QuantSim;
import io.epserve.model.weights.Bf16Matrix;
import io.epserve.model.weights.F32Matrix;
import io.epserve.model.weights.Fp4Matrix;
import io.epserve.model.weights.Fp8Matrix;

/**
 * The exact kernel set: scalar code, float64 accumulation, the reference's rounding points reproduced bit for bit
 * (GOLDEN.md "mode A"). Slow by design; it is the oracle the fast set and the distributed engine are checked against.
 */
public final class ExactKernels implements Kernels {
    private static final float[] FP8 = Fp8E4m3.table();
    private static final float[] FP4 = Fp4E2m1.table();

    private float[] xq = new float[0];

    @Override
    public String name() {
        return "exact";
    }

    private float[] quantizedActivations(float[] x, int xOff, int xStride, int tokens, int cols) {
        if (xq.length < tokens * cols) {
            xq = new float[tokens * cols];
        }
        for (int t = 0; t < tokens; t++) {
            QuantSim.fp8RoundTrip(x, xOff + t * xStride, cols, 128, xq, t * cols);
        }
        return xq;
    }

    @Override
    public void fp8Linear(Fp8Matrix w, int rowStart, int rowCount, float[] x, int xOff, int xStride, int tokens,
                          float[] y, int yOff, int yStride) {
        int cols = w.cols();
        float[] a = quantizedActivations(x, xOff, xStride, tokens, cols);
        fp8Dot(w, rowStart, rowCount, a, 0, cols, tokens, y, yOff, yStride);
    }

    @Override
    public void fp8DequantLinear(Fp8Matrix w, int rowStart, int rowCount, float[] x, int xOff, int xStride, int tokens,
                                 float[] y, int yOff, int yStride) {
        fp8Dot(w, rowStart, rowCount, x, xOff, xStride, tokens, y, yOff, yStride);
    }

    private static void fp8Dot(Fp8Matrix w, int rowStart, int rowCount, float[] a, int aOff, int aStride, int tokens,
                               float[] y, int yOff, int yStride) {
        int cols = w.cols();
        double[] wrow = new double[cols];
        for (int n = 0; n < rowCount; n++) {
            int r = rowStart + n;
            for (int c = 0; c < cols; c++) {
                wrow[c] = FP8[w.code(r, c)] * E8m0.toDouble(w.scaleCode(r, c));
            }
            for (int t = 0; t < tokens; t++) {
                int base = aOff + t * aStride;
                double s = 0;
                for (int c = 0; c < cols; c++) {
                    s += a[base + c] * wrow[c];
                }
                y[yOff + t * yStride + n] = Bf16.round(s);
            }
        }
    }

    @Override
    public void fp4Linear(Fp4Matrix w, float[] x, int xOff, int xStride, int tokens, float[] y, int yOff, int yStride) {
        int cols = w.cols();
        float[] a = quantizedActivations(x, xOff, xStride, tokens, cols);
        double[] wrow = new double[cols];
        for (int r = 0; r < w.rows(); r++) {
            for (int c = 0; c < cols; c++) {
                wrow[c] = FP4[w.code(r, c)] * E8m0.toDouble(w.scaleCode(r, c));
            }
            for (int t = 0; t < tokens; t++) {
                double s = 0;
                for (int c = 0; c < cols; c++) {
                    s += a[t * cols + c] * wrow[c];
                }
                y[yOff + t * yStride + r] = Bf16.round(s);
            }
        }
    }

    @Override
    public void bf16Linear(Bf16Matrix w, float[] x, int xOff, int xStride, int tokens, float[] y, int yOff, int yStride) {
        int cols = w.cols();
        float[] wrow = new float[cols];
        for (int r = 0; r < w.rows(); r++) {
            w.row(r, wrow, 0);
            for (int t = 0; t < tokens; t++) {
                y[yOff + t * yStride + r] = Bf16.round(dot(x, xOff + t * xStride, wrow, cols));
            }
        }
    }

    @Override
    public void bf16LinearWide(Bf16Matrix w, float[] x, int xOff, int xStride, int tokens, double[] y, int yOff, int yStride) {
        int cols = w.cols();
        float[] wrow = new float[cols];
        for (int r = 0; r < w.rows(); r++) {
            w.row(r, wrow, 0);
            for (int t = 0; t < tokens; t++) {
                y[yOff + t * yStride + r] = dot(x, xOff + t * xStride, wrow, cols);
            }
        }
    }

    @Override
    public void f32LinearWide(F32Matrix w, float[] x, int xOff, int xStride, int tokens, double[] y, int yOff, int yStride) {
        int cols = w.cols();
        float[] wrow = new float[cols];
        for (int r = 0; r < w.rows(); r++) {
            for (int c = 0; c < cols; c++) {
                wrow[c] = w.get(r, c);
            }
            for (int t = 0; t < tokens; t++) {
                y[yOff + t * yStride + r] = dot(x, xOff + t * xStride, wrow, cols);
            }
        }
    }

    private static double dot(float[] x, int off, float[] w, int n) {
        double s = 0;
        for (int i = 0; i < n; i++) {
            s += (double) x[off + i] * w[i];
        }
        return s;
    }

    @Override
    public void attention(float[] q, int qOff, int heads, int headDim, float[] kv, int windowValid, int windowSize,
                          int compressedCount, float[] sink, float scale, float[] out, int outOff) {
        int listLen = windowSize + compressedCount;
        double[] s = new double[64];
        double[] acc = new double[headDim];
        for (int h = 0; h < heads; h++) {
            int qb = qOff + h * headDim;
            double m = Double.NEGATIVE_INFINITY;
            double den = 0;
            java.util.Arrays.fill(acc, 0);
            for (int b0 = 0; b0 < listLen; b0 += 64) {
                int b1 = Math.min(listLen, b0 + 64);
                double bm = Double.NEGATIVE_INFINITY;
                for (int i = b0; i < b1; i++) {
                    if (!valid(i, windowValid, windowSize, listLen)) {
                        continue;
                    }
                    s[i - b0] = dot(q, qb, kv, i * headDim, headDim) * scale;
                    bm = Math.max(bm, s[i - b0]);
                }
                if (bm == Double.NEGATIVE_INFINITY) {
                    continue; // nothing valid in this block
                }
                double mNew = Math.max(m, bm);
                double alpha = m == Double.NEGATIVE_INFINITY ? 0 : Math.exp(m - mNew);
                den *= alpha;
                for (int d = 0; d < headDim; d++) {
                    acc[d] *= alpha;
                }
                for (int i = b0; i < b1; i++) {
                    if (!valid(i, windowValid, windowSize, listLen)) {
                        continue;
                    }
                    double e = Math.exp(s[i - b0] - mNew);
                    den += e;
                    double p = Bf16.round(e);
                    int kb = i * headDim;
                    for (int d = 0; d < headDim; d++) {
                        acc[d] += p * kv[kb + d];
                    }
                }
                m = mNew;
            }
            den += Math.exp(sink[h] - m);
            int ob = outOff + h * headDim;
            for (int d = 0; d < headDim; d++) {
                out[ob + d] = Bf16.round(acc[d] / den);
            }
        }
    }

    static boolean valid(int i, int windowValid, int windowSize, int listLen) {
        return i < windowValid || (i >= windowSize && i < listLen);
    }

    private static double dot(float[] a, int aOff, float[] b, int bOff, int n) {
        double s = 0;
        for (int i = 0; i < n; i++) {
            s += (double) a[aOff + i] * b[bOff + i];
        }
        return s;
    }

    @Override
    public void indexScores(float[] q, int qOff, int heads, int dim, float[] w, int wOff, float[] keys, int count,
                            float[] scores) {
        for (int i = 0; i < count; i++) {
            double sum = 0;
            for (int h = 0; h < heads; h++) {
                float d = Bf16.round(dot(q, qOff + h * dim, keys, i * dim, dim));
                float r = Math.max(d, 0f);
                sum += Bf16.round((double) r * w[wOff + h]);
            }
            scores[i] = Bf16.round(sum);
        }
    }
}
