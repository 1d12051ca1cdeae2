package io.epserve.model.engine;

import io.epserve.model.config.ModelConfig;
import io.epserve.model.format.Bf16;

/**
 * Rotary embedding of the last {@code ropeDim} dims of a vector, interleaved pairs, float32 frequency and angle tables
 * exactly as the reference builds them (GOLDEN.md contract 3); YaRN blending on compressed layers, no mscale.
 */
public final class Rope {
    private final int ropeDim;
    private final float[] freqs;

    public Rope(int ropeDim, double base, boolean yarn, double factor, int originalSeqLen, int betaFast, int betaSlow) {
        this.ropeDim = ropeDim;
        int half = ropeDim / 2;
        freqs = new float[half];
        for (int i = 0; i < half; i++) {
            float e = (float) (2 * i) / (float) ropeDim;
            float p = (float) Math.pow((float) base, e);
            freqs[i] = 1.0f / p;
        }
        if (yarn) {
            int low = (int) Math.max(Math.floor(correctionDim(betaFast, ropeDim, base, originalSeqLen)), 0);
            int high = (int) Math.min(Math.ceil(correctionDim(betaSlow, ropeDim, base, originalSeqLen)), ropeDim - 1);
            float hi = high == low ? high + 0.001f : high;
            for (int i = 0; i < half; i++) {
                float ramp = ((float) i - low) / (hi - low);
                ramp = Math.min(1f, Math.max(0f, ramp));
                float smooth = 1f - ramp;
                freqs[i] = freqs[i] / (float) factor * (1f - smooth) + freqs[i] * smooth;
            }
        }
    }

    private static double correctionDim(double rotations, int dim, double base, int maxSeqLen) {
        return dim * Math.log(maxSeqLen / (rotations * 2 * Math.PI)) / (2 * Math.log(base));
    }

    /** Plain RoPE of window-only layers (and the MTP block). */
    public static Rope plain(ModelConfig c) {
        return new Rope(c.ropeDim(), c.ropeTheta(), false, 1, 0, 0, 0);
    }

    /** RoPE of CSA/HCA layers: compress_rope_theta with YaRN. */
    public static Rope compressed(ModelConfig c) {
        return new Rope(c.ropeDim(), c.compressRopeTheta(), true, c.ropeFactor(), c.originalSeqLen(), c.betaFast(),
                c.betaSlow());
    }

    public int dim() {
        return ropeDim;
    }

    public float frequency(int i) {
        return freqs[i];
    }

    /** cos/sin of every pair at a position into cs[0..half) and cs[half..2*half), float32 values. */
    public void table(long pos, float[] cs) {
        int half = freqs.length;
        float fp = (float) pos;
        for (int i = 0; i < half; i++) {
            float angle = fp * freqs[i];
            cs[i] = (float) Math.cos(angle);
            cs[half + i] = (float) Math.sin(angle);
        }
    }

    /**
     * Rotates x[off + len - ropeDim .. off + len) with a table from {@link #table}; bf16 output. inverse rotates by
     * the conjugate.
     */
    public void apply(float[] x, int off, int len, float[] cs, boolean inverse) {
        int half = freqs.length;
        int base = off + len - ropeDim;
        for (int i = 0; i < half; i++) {
            double c = cs[i];
            double s = inverse ? -cs[half + i] : cs[half + i];
            double x0 = x[base + 2 * i];
            double x1 = x[base + 2 * i + 1];
            x[base + 2 * i] = Bf16.round(x0 * c - x1 * s);
            x[base + 2 * i + 1] = Bf16.round(x0 * s + x1 * c);
        }
    }
}
