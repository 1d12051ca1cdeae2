package io.epserve.model.engine;

import java.util.Arrays;

/**
 * The streaming state of one compressor of one sequence (spec §4.6, decode form): per source token its projected kv
 * and gate score, kept until its block completes. With overlap (CSA, m = 4) rows [0, m) hold the previous block and
 * rows [m, 2m) the current one, each with 2d channels; otherwise rows [0, m) with d channels.
 */
final class CompressorState {
    final int ratio;
    final boolean overlap;
    final int dim;
    final int rows;
    final int width;
    final double[] kv;
    final double[] score;

    CompressorState(int ratio, boolean overlap, int dim) {
        this.ratio = ratio;
        this.overlap = overlap;
        this.dim = dim;
        this.rows = overlap ? 2 * ratio : ratio;
        this.width = overlap ? 2 * dim : dim;
        this.kv = new double[rows * width];
        this.score = new double[rows * width];
        reset();
    }

    void reset() {
        Arrays.fill(kv, 0);
        Arrays.fill(score, Double.NEGATIVE_INFINITY);
    }

    /**
     * Stores token p's projections (k: width values, z: width values with ape already added). Returns true when p
     * completes a block, after which {@link #pool} yields entry p / ratio.
     */
    boolean push(long p, double[] k, int kOff, double[] z, int zOff) {
        int row = (int) (p % ratio) + (overlap ? ratio : 0);
        System.arraycopy(k, kOff, kv, row * width, width);
        System.arraycopy(z, zOff, score, row * width, width);
        return (p + 1) % ratio == 0;
    }

    /** Softmax-pools the completed block per channel into out[0..dim); for CSA, then shifts it to the previous rows. */
    void pool(double[] out) {
        for (int ch = 0; ch < dim; ch++) {
            double mx = Double.NEGATIVE_INFINITY;
            for (int r = 0; r < rows; r++) {
                mx = Math.max(mx, score[r * width + channel(r, ch)]);
            }
            double den = 0;
            double num = 0;
            for (int r = 0; r < rows; r++) {
                int i = r * width + channel(r, ch);
                double s = score[i];
                if (s == Double.NEGATIVE_INFINITY) {
                    continue;
                }
                double e = Math.exp(s - mx);
                den += e;
                num += e * kv[i];
            }
            out[ch] = num / den;
        }
        if (overlap) {
            System.arraycopy(kv, ratio * width, kv, 0, ratio * width);
            System.arraycopy(score, ratio * width, score, 0, ratio * width);
        }
    }

    /** Previous-block rows pool series A (channels [0, d)), current-block rows series B ([d, 2d)). */
    private int channel(int row, int ch) {
        return overlap && row >= ratio ? dim + ch : ch;
    }

    long bytes() {
        return 16L * kv.length;
    }
}
