package io.epserve.model.engine;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The next-token choice of one sequence: its {@link SamplingParams}, its seeded randomness, and the token counts the
 * penalties need. The choice depends only on the sequence's logits, history and seed, never on the rest of the batch.
 * Sampling is Gumbel-max over the kept tokens ({@code argmax(p / Exp(1))}, one draw per kept token in index order), as
 * the reference generator samples. The draws of output position i come from their own stream, keyed by (seed, i): a
 * sequence resumed elsewhere after i output tokens ({@link #accept} them, then sample) continues exactly as it would
 * have, however many draws the earlier positions took. Scratch is per instance and reused.
 */
public final class SequenceSampler {
    private final SamplingParams p;
    private final int vocab;
    private final long seed;
    private int position;
    private final int[] promptCount;
    private final int[] outputCount;
    private final double[] z;
    private final long indexMask;
    private long[] order = new long[0];

    public SequenceSampler(SamplingParams params, int vocab, int[] prompt) {
        this.p = params.validate(vocab);
        this.vocab = vocab;
        this.seed = params.seed();
        boolean penalties = params.repetitionPenalty() != 1 || params.presencePenalty() != 0
                || params.frequencyPenalty() != 0;
        this.promptCount = penalties ? new int[vocab] : null;
        this.outputCount = penalties ? new int[vocab] : null;
        if (penalties) {
            for (int t : prompt) {
                promptCount[t]++;
            }
        }
        this.z = new double[vocab];
        this.indexMask = (1L << (64 - Long.numberOfLeadingZeros(vocab))) - 1;
    }

    public SamplingParams params() {
        return p;
    }

    /**
     * Records a token of the output (the penalties count it from now on) and moves to the next output position. A
     * resumed sequence accepts the tokens it had already generated before it samples again.
     */
    public void accept(int token) {
        if (outputCount != null) {
            outputCount[token]++;
        }
        position++;
    }

    /** Output tokens accepted so far: the position the next {@link #sample} draws for. */
    public int position() {
        return position;
    }

    /** The seed of the draws of output position i (a bijective mix, distinct for every position of one seed). */
    static long positionSeed(long seed, int position) {
        long z = seed + (position + 1L) * 0xD1B54A32D192ED03L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** The token for the current output position from raw logits[off, off + vocab). */
    public int sample(float[] logits, int off) {
        int n = vocab;
        for (int i = 0; i < n; i++) {
            double v = logits[off + i];
            if (outputCount != null) {
                int out = outputCount[i];
                if (p.repetitionPenalty() != 1 && (out > 0 || promptCount[i] > 0)) {
                    v = v > 0 ? v / p.repetitionPenalty() : v * p.repetitionPenalty();
                }
                if (out > 0) {
                    v -= p.presencePenalty() + p.frequencyPenalty() * out;
                }
            }
            z[i] = v;
        }
        if (p.temperature() == 0) {
            int best = 0;
            for (int i = 1; i < n; i++) {
                if (z[i] > z[best]) {
                    best = i;
                }
            }
            return best;
        }
        double t = Math.max(p.temperature(), 1e-5);
        double mx = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            z[i] /= t;
            mx = Math.max(mx, z[i]);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            z[i] = Math.exp(z[i] - mx);
            sum += z[i];
        }
        for (int i = 0; i < n; i++) {
            z[i] /= sum;
        }
        if (p.topK() > 0 && p.topK() < n || p.topP() < 1) {
            truncate(n);
        }
        if (p.minP() > 0) {
            double top = 0;
            for (int i = 0; i < n; i++) {
                top = Math.max(top, z[i]);
            }
            double floor = p.minP() * top;
            for (int i = 0; i < n; i++) {
                if (z[i] < floor) {
                    z[i] = 0;
                }
            }
        }
        SplittableRandom random = new SplittableRandom(positionSeed(seed, position));
        int best = -1;
        double bestScore = -1;
        for (int i = 0; i < n; i++) {
            if (z[i] == 0) {
                continue;
            }
            double e = -Math.log(1.0 - random.nextDouble()); // Exp(1), never 0
            double s = z[i] / e;
            if (s > bestScore) {
                bestScore = s;
                best = i;
            }
        }
        return best;
    }

    /** Keeps the top-k most likely tokens, then the smallest prefix of them whose mass reaches top-p. */
    private void truncate(int n) {
        if (order.length < n) {
            order = new long[n];
        }
        // Non-negative doubles sort like their bit patterns; with the (reversed) index in the lowest bits, a long sort
        // orders by probability (to 2^-32 relative or so), then lower index first among the largest.
        for (int i = 0; i < n; i++) {
            order[i] = (Double.doubleToRawLongBits(z[i]) & ~indexMask) | (indexMask - i);
        }
        Arrays.sort(order, 0, n);
        int keep = p.topK() > 0 ? Math.min(p.topK(), n) : n;
        if (p.topP() < 1) {
            double cum = 0;
            for (int r = 0; r < keep; r++) {
                cum += z[index(order[n - 1 - r])];
                if (cum >= p.topP()) {
                    keep = r + 1;
                    break;
                }
            }
        }
        for (int r = keep; r < n; r++) {
            z[index(order[n - 1 - r])] = 0;
        }
    }

    private int index(long key) {
        return (int) (indexMask - (key & indexMask));
    }

    /**
     * Log-probabilities of the model's distribution (raw logits, no penalties or temperature): fills the top n
     * (most likely first) into ids/values and returns the sampled token's.
     */
    public static float logprobs(float[] logits, int off, int vocab, int token, int n, int[] ids, float[] values) {
        double mx = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            mx = Math.max(mx, logits[off + i]);
        }
        double sum = 0;
        for (int i = 0; i < vocab; i++) {
            sum += Math.exp(logits[off + i] - mx);
        }
        double lse = mx + Math.log(sum);
        if (n > 0) {
            int[] top = Transformer.topK(Arrays.copyOfRange(logits, off, off + vocab), vocab, n);
            for (int i = 0; i < n; i++) {
                ids[i] = top[i];
                values[i] = (float) (logits[off + top[i]] - lse);
            }
        }
        return (float) (logits[off + token] - lse);
    }
}
