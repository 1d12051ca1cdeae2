package io.epserve.model.kernel;

import io.epserve.model.format.Bf16;
import io.epserve.model.weights.Bf16Matrix;
import io.epserve.model.weights.F32Matrix;
import io.epserve.model.weights.Fp4Matrix;
import io.epserve.model.weights.Fp8Matrix;

/**
 * The heavy operations of the forward pass, implemented by an exact set (scalar, float64 accumulation: the golden's
 * "mode A") and a fast set (Vector API, float32 accumulation, multi-threaded, many tokens per weight read).
 *
 * <p>Activations are row-major matrices in float arrays: token t's row starts at {@code off + t * stride}. Inputs that
 * the reference holds as bf16 hold bf16 values. Every method processes {@code tokens} rows with one pass over the
 * weights, and may be called from one thread at a time per instance.
 */
public interface Kernels extends AutoCloseable {

    /** "exact" or "fast". */
    String name();

    /**
     * FP8-weight linear with the reference's activation quantisation: each input row is quantised to FP8 in blocks
     * of 128 with power-of-two scales, then {@code y[t][n] = bf16(sum_k xq[t][k] * w[n][k])}.
     * Only output rows [rowStart, rowStart + rowCount) of w are computed; y's row t receives them at y[yOff + t*yStride ..].
     */
    void fp8Linear(Fp8Matrix w, int rowStart, int rowCount,
                   float[] x, int xOff, int xStride, int tokens,
                   float[] y, int yOff, int yStride);

    /** FP4-weight linear (routed experts): activation FP8-quantised per 128 as above, weights FP4 x E8M0 per 32; bf16 out. */
    void fp4Linear(Fp4Matrix w, float[] x, int xOff, int xStride, int tokens, float[] y, int yOff, int yStride);

    /**
     * {@link #fp4Linear} of two matrices with the same columns over the same input rows (a routed expert's w1 and
     * w3): the same results as two calls, and a set may quantise and lay out the input once for both.
     */
    default void fp4LinearPair(Fp4Matrix a, Fp4Matrix b, float[] x, int xOff, int xStride, int tokens,
                               float[] ya, float[] yb, int yOff, int yStride) {
        fp4Linear(a, x, xOff, xStride, tokens, ya, yOff, yStride);
        fp4Linear(b, x, xOff, xStride, tokens, yb, yOff, yStride);
    }

    /**
     * {@code y = bf16(x . w^T)} with FP8 weights dequantised exactly to their bf16 values and NO activation
     * quantisation (wo_a, which the reference converts to a bf16 matrix). x rows have w.cols() values; only output
     * rows [rowStart, rowStart+rowCount) are computed.
     */
    void fp8DequantLinear(Fp8Matrix w, int rowStart, int rowCount,
                          float[] x, int xOff, int xStride, int tokens,
                          float[] y, int yOff, int yStride);

    /** {@code y = bf16(x . w^T)}, bf16 weights, no activation quantisation (indexer weights_proj). */
    void bf16Linear(Bf16Matrix w, float[] x, int xOff, int xStride, int tokens, float[] y, int yOff, int yStride);

    /**
     * The reference's float32 linears over bf16 weights (compressor wkv/wgate, MoE gate, lm head): unrounded results,
     * accumulated in float64 by both sets (with float32 sums the golden comp check failed: one FP8 flip, relRMS 1e-3).
     */
    void bf16LinearWide(Bf16Matrix w, float[] x, int xOff, int xStride, int tokens, double[] y, int yOff, int yStride);

    /** float32-weight linear with unrounded results (mHC hc_*_fn); x rows have w.cols() values. */
    void f32LinearWide(F32Matrix w, float[] x, int xOff, int xStride, int tokens, double[] y, int yOff, int yStride);

    /**
     * Sparse attention with sink for one query token (GOLDEN.md contract 5). {@code q}: [heads, headDim] at qOff;
     * {@code kv}: list rows [listLen, headDim] (K = V), where list index i is valid iff {@code i < windowValid} or
     * {@code windowSize <= i < windowSize + compressedCount}; online softmax over blocks of 64 list indices with the
     * running max m, {@code P = bf16(exp(s - m))} in P.V while the denominator sums unrounded exponentials, the sink
     * {@code exp(sink[h] - m)} joins the denominator at the end; {@code s = (q.k) * scale}; out = bf16(acc / den),
     * [heads, headDim] at outOff.
     */
    void attention(float[] q, int qOff, int heads, int headDim,
                   float[] kv, int windowValid, int windowSize, int compressedCount,
                   float[] sink, float scale, float[] out, int outOff);

    /**
     * Lightning-indexer scores of one query against {@code count} keys (GOLDEN.md contract 8):
     * {@code score[i] = bf16(sum_h bf16(max(bf16(q_h . k_i), 0) * w_h))}; q: [heads, dim], keys: [count, dim].
     */
    void indexScores(float[] q, int qOff, int heads, int dim, float[] w, int wOff,
                     float[] keys, int count, float[] scores);

    /**
     * The SwiGLU between an expert's w1/w3 and w2 (spec §4.9), in place over {@code rows} rows of {@code inter}
     * values: {@code g = bf16(silu(min(g, limit)) * clamp(u, -limit, limit) * weight[row])} (no clamp when limit is 0,
     * weight null: 1). This default is the reference's: float64 in between, one rounding at the end.
     */
    default void swiglu(float[] g, float[] u, int rows, int inter, double[] weight, double limit) {
        for (int r = 0; r < rows; r++) {
            double wt = weight == null ? 1.0 : weight[r];
            for (int i = r * inter, end = i + inter; i < end; i++) {
                double gv = g[i];
                double uv = u[i];
                if (limit > 0) {
                    gv = Math.min(gv, limit);
                    uv = Math.max(-limit, Math.min(limit, uv));
                }
                g[i] = Bf16.round(gv / (1 + Math.exp(-gv)) * uv * wt);
            }
        }
    }

    /**
     * The queries' unweighted per-head RMS norm in the reference's bf16 steps, in place over {@code rows} rows of
     * {@code n} values at {@code off}: {@code ms = bf16(bf16(sum_i bf16(q_i^2) / n) + eps)} with the sum in float64,
     * {@code r = bf16(1 / sqrt(ms))}, {@code q_i = bf16(q_i * r)}. A float32 sum is not enough (GOLDEN.md: "per-head
     * q norm in fp32" fails attn_out); the order of the float64 sum is free.
     */
    default void headRmsNorm(float[] q, int off, int rows, int n, float eps) {
        for (int r = 0; r < rows; r++) {
            int o = off + r * n;
            double sum = 0;
            for (int i = 0; i < n; i++) {
                sum += Bf16.round((double) q[o + i] * q[o + i]);
            }
            float ms = Bf16.round(sum / n);
            ms = Bf16.round((double) ms + eps);
            float rr = Bf16.round(1.0 / Math.sqrt(ms));
            for (int i = 0; i < n; i++) {
                q[o + i] = Bf16.round((double) q[o + i] * rr);
            }
        }
    }

    @Override
    default void close() {}
}
