package io.epserve.loadgen;

import java.util.Arrays;

/**
 * Summary statistics with numpy's conventions, so that figures match vLLM's {@code bench serve} computed from the same
 * samples: population standard deviation, percentiles by linear interpolation between order statistics
 * ({@code np.percentile} default), and 0 for an empty sample ({@code np.mean(x or 0)}).
 */
public final class Stats {
    private final double[] sorted;
    private final double mean;
    private final double std;

    private Stats(double[] sorted) {
        this.sorted = sorted;
        double sum = 0;
        for (double v : sorted) {
            sum += v;
        }
        mean = sorted.length == 0 ? 0 : sum / sorted.length;
        double sq = 0;
        for (double v : sorted) {
            sq += (v - mean) * (v - mean);
        }
        std = sorted.length == 0 ? 0 : Math.sqrt(sq / sorted.length);
    }

    /** Statistics of the values (copied, then sorted). */
    public static Stats of(double[] values) {
        double[] s = values.clone();
        Arrays.sort(s);
        return new Stats(s);
    }

    public int count() {
        return sorted.length;
    }

    public double mean() {
        return mean;
    }

    public double std() {
        return std;
    }

    public double median() {
        return percentile(50);
    }

    public double min() {
        return sorted.length == 0 ? 0 : sorted[0];
    }

    public double max() {
        return sorted.length == 0 ? 0 : sorted[sorted.length - 1];
    }

    /** The p-th percentile (0..100), interpolated linearly between the two nearest order statistics. */
    public double percentile(double p) {
        int n = sorted.length;
        if (n == 0) {
            return 0;
        }
        double rank = p / 100.0 * (n - 1);
        int lo = (int) Math.floor(rank);
        int hi = (int) Math.ceil(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }

    /**
     * At most {@code limit} evenly spaced order statistics (all of them when there are fewer), always including the
     * minimum and the maximum: enough to draw a CDF without shipping every sample.
     */
    public double[] thinned(int limit) {
        int n = sorted.length;
        if (n <= limit) {
            return sorted.clone();
        }
        double[] out = new double[limit];
        for (int i = 0; i < limit; i++) {
            out[i] = sorted[(int) Math.round((double) i * (n - 1) / (limit - 1))];
        }
        return out;
    }
}
