package io.epserve.loadgen;

import org.apache.commons.rng.UniformRandomProvider;
import org.apache.commons.rng.sampling.distribution.AhrensDieterMarsagliaTsangGammaSampler;
import org.apache.commons.rng.simple.RandomSource;

/**
 * When each request is sent, as offsets in seconds from the start of a run, with vLLM's {@code bench serve}
 * semantics: at a finite rate the gaps are gamma distributed with shape = burstiness and scale = 1 / (rate x
 * burstiness) (burstiness 1: a Poisson process; below 1 burstier, above 1 more regular), then rescaled so that the
 * last request goes out at exactly N / rate (so runs with different seeds offer the same load); at an infinite rate
 * every request goes at 0. A ramp-up raises the rate from a start to an end value over the requests (linear or
 * exponential in the request index) and is not rescaled.
 */
public final class ArrivalSchedule {
    /** How the rate changes over the run. */
    public enum RampUp { NONE, LINEAR, EXPONENTIAL }

    private ArrivalSchedule() {
    }

    /** Constant rate ({@code Double.POSITIVE_INFINITY}: all at once). */
    public static double[] offsets(int n, double rate, double burstiness, long seed) {
        return offsets(n, rate, burstiness, RampUp.NONE, 0, 0, seed);
    }

    public static double[] offsets(int n, double rate, double burstiness, RampUp rampUp, double startRps,
                                   double endRps, long seed) {
        if (!(burstiness > 0)) {
            throw new IllegalArgumentException("burstiness must be > 0, got " + burstiness);
        }
        if (rampUp == RampUp.NONE && !(rate > 0)) {
            throw new IllegalArgumentException("request rate must be > 0, got " + rate);
        }
        if (rampUp != RampUp.NONE && !(startRps > 0 && endRps > 0 && Double.isFinite(startRps)
                && Double.isFinite(endRps))) {
            throw new IllegalArgumentException("a ramp-up needs finite start and end rates > 0");
        }
        UniformRandomProvider rng = RandomSource.SPLIT_MIX_64.create(seed);
        double[] t = new double[n];
        double at = 0;
        for (int i = 0; i < n; i++) {
            double r = rampUp == RampUp.NONE ? rate : rateAt(rampUp, startRps, endRps, i, n);
            double gap;
            if (r == Double.POSITIVE_INFINITY) {
                gap = 0;
            } else if (burstiness == Double.POSITIVE_INFINITY) {
                gap = 1.0 / r;
            } else {
                gap = AhrensDieterMarsagliaTsangGammaSampler.of(rng, burstiness, 1.0 / (r * burstiness)).sample();
            }
            at += gap;
            t[i] = at;
        }
        // vLLM: the first request waits its own gap too; rescaled so the last goes out at N / rate.
        if (rampUp == RampUp.NONE && n > 0 && t[n - 1] > 0 && Double.isFinite(rate)) {
            double f = (n / rate) / t[n - 1];
            for (int i = 0; i < n; i++) {
                t[i] *= f;
            }
        }
        return t;
    }

    static double rateAt(RampUp rampUp, double start, double end, int index, int total) {
        double progress = (double) index / Math.max(total - 1, 1);
        return rampUp == RampUp.LINEAR ? start + (end - start) * progress : start * Math.pow(end / start, progress);
    }
}
