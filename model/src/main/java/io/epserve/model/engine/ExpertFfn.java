package io.epserve.model.engine;

import io.epserve.model.config.ModelConfig;
import io.epserve.model.kernel.Kernels;
import io.epserve.model.weights.ModelWeights;

/**
 * The expert feed-forward of spec §4.9, shared by the single-process engine and the expert workers so that both
 * compute the same bits: {@code y = w2(bf16(silu(min(g, lim)) * clamp(u, -lim, lim) * weight))} with
 * {@code g = w1(x)}, {@code u = w3(x)}; routed experts are FP4, the shared expert FP8 with weight 1.
 */
public final class ExpertFfn {
    private ExpertFfn() {}

    /**
     * One routed expert over n token rows xs [n, D] (bf16 values, or the FP8-quantised values a dispatch carries:
     * the activation quantisation is idempotent on them). Scratch g, u: [n, inter]; out y: [n, D] bf16.
     */
    public static void routed(Kernels k, ModelConfig c, ModelWeights.Expert ex, float[] xs, int n, double[] weight,
                              float[] g, float[] u, float[] y) {
        int d = c.dim();
        int inter = c.moeInterDim();
        k.fp4LinearPair(ex.w1(), ex.w3(), xs, 0, d, n, g, u, 0, inter);
        k.swiglu(g, u, n, inter, weight, c.swigluLimit());
        k.fp4Linear(ex.w2(), g, 0, inter, n, y, 0, d);
    }

    /** The shared expert over T rows: [T, D] bf16. */
    public static float[] shared(Kernels k, ModelConfig c, ModelWeights.SharedExpert se, float[] x, int T) {
        int inter = se.w1().rows();
        float[] y = new float[T * c.dim()];
        shared(k, c, se, x, T, new float[T * inter], new float[T * inter], y);
        return y;
    }

    /** {@link #shared(Kernels, ModelConfig, ModelWeights.SharedExpert, float[], int)} with the hidden rows g and u
     *  ([T, inter] each, scratch) and the output y ([T, D]) given. */
    public static void shared(Kernels k, ModelConfig c, ModelWeights.SharedExpert se, float[] x, int T, float[] g,
                              float[] u, float[] y) {
        int d = c.dim();
        int inter = se.w1().rows();
        k.fp8Linear(se.w1(), 0, inter, x, 0, d, T, g, 0, inter);
        k.fp8Linear(se.w3(), 0, inter, x, 0, d, T, u, 0, inter);
        k.swiglu(g, u, T, inter, null, c.swigluLimit());
        k.fp8Linear(se.w2(), 0, d, g, 0, inter, T, y, 0, d);
    }
}
