package io.epserve.model.engine;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Next-token choice as the reference generator makes it (spec §5.5): temperature 0 is greedy; otherwise Gumbel-max,
 * {@code argmax(p / Exp(1) noise)} over {@code p = softmax(logits / T)}, with optional nucleus (top-p) truncation.
 * Seeded, so a (seed, logits) pair always gives the same token.
 */
public final class Sampler {
    private final double temperature;
    private final double topP;
    private final SplittableRandom random;
    private double[] probs = new double[0];
    private Integer[] order = new Integer[0];

    public Sampler(double temperature, double topP, long seed) {
        if (!(temperature >= 0) || Double.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be >= 0, got " + temperature);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top-p must be in (0, 1], got " + topP);
        }
        this.temperature = temperature;
        this.topP = topP;
        this.random = new SplittableRandom(seed);
    }

    public static int argmax(float[] logits, int off, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (logits[off + i] > logits[off + best]) {
                best = i;
            }
        }
        return best;
    }

    public int sample(float[] logits, int off, int n) {
        if (temperature == 0) {
            return argmax(logits, off, n);
        }
        double t = Math.max(temperature, 1e-5);
        if (probs.length < n) {
            probs = new double[n];
        }
        double mx = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            mx = Math.max(mx, logits[off + i] / t);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            probs[i] = Math.exp(logits[off + i] / t - mx);
            sum += probs[i];
        }
        for (int i = 0; i < n; i++) {
            probs[i] /= sum;
        }
        if (topP < 1) {
            truncateToNucleus(n);
        }
        int best = -1;
        double bestScore = -1;
        for (int i = 0; i < n; i++) {
            if (probs[i] == 0) {
                continue;
            }
            double e = -Math.log(1.0 - random.nextDouble()); // Exp(1), never 0
            double s = probs[i] / e;
            if (s > bestScore) {
                bestScore = s;
                best = i;
            }
        }
        return best;
    }

    /** Zeroes every probability outside the smallest set whose mass reaches topP (largest first). */
    private void truncateToNucleus(int n) {
        if (order.length < n) {
            order = new Integer[n];
        }
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, 0, n, (a, b) -> Double.compare(probs[b], probs[a]));
        double cum = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += probs[order[i]];
            if (cum >= topP) {
                keep = i + 1;
                break;
            }
        }
        for (int i = keep; i < n; i++) {
            probs[order[i]] = 0;
        }
    }
}
