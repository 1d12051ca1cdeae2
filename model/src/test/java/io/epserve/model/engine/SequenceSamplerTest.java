package io.epserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class SequenceSamplerTest {
    static final int V = 8;
    static final float[] LOGITS = {1.0f, 3.0f, 2.9f, 0.5f, -1f, 2.0f, 0f, 2.95f};

    static SamplingParams params(double temp, double topP, int topK, double minP, long seed, double rep, double pres,
                                 double freq) {
        return new SamplingParams(temp, topP, topK, minP, seed, rep, pres, freq);
    }

    @Test
    void greedyTakesTheLargestLogitAndPenaltiesMoveIt() {
        assertEquals(1, new SequenceSampler(SamplingParams.greedy(), V, new int[0]).sample(LOGITS, 0));
        SequenceSampler s = new SequenceSampler(params(0, 1, 0, 0, 0, 1, 0.1, 0), V, new int[0]);
        s.accept(1);
        assertEquals(7, s.sample(LOGITS, 0), "presence penalty 0.1 moves 3.0 below 2.95");
        SequenceSampler r = new SequenceSampler(params(0, 1, 0, 0, 0, 1.5, 0, 0), V, new int[] {1, 7});
        assertEquals(2, r.sample(LOGITS, 0), "repetition penalty on prompt tokens 1 and 7");
        SequenceSampler f = new SequenceSampler(params(0, 1, 0, 0, 0, 1, 0, 0.04), V, new int[0]);
        f.accept(1);
        f.accept(1);
        assertEquals(7, f.sample(LOGITS, 0), "two occurrences x 0.04 = 0.08");
    }

    @Test
    void theSameSeedGivesTheSameTokensAndTruncationKeepsOnlyTheTop() {
        Set<Integer> seen = new HashSet<>();
        for (long seed = 0; seed < 200; seed++) {
            SequenceSampler a = new SequenceSampler(params(1.0, 1, 2, 0, seed, 1, 0, 0), V, new int[0]);
            SequenceSampler b = new SequenceSampler(params(1.0, 1, 2, 0, seed, 1, 0, 0), V, new int[0]);
            int ta = a.sample(LOGITS, 0);
            assertEquals(ta, b.sample(LOGITS, 0));
            seen.add(ta);
        }
        assertEquals(Set.of(1, 7), seen, "top-k 2 keeps tokens 1 and 7");
        seen.clear();
        for (long seed = 0; seed < 300; seed++) {
            seen.add(new SequenceSampler(params(1.0, 1, 0, 0.9, seed, 1, 0, 0), V, new int[0]).sample(LOGITS, 0));
        }
        assertEquals(Set.of(1, 2, 7), seen, "min-p 0.9 keeps the three within 10 % of the top");
        seen.clear();
        for (long seed = 0; seed < 300; seed++) {
            seen.add(new SequenceSampler(params(5.0, 1, 0, 0, seed, 1, 0, 0), V, new int[0]).sample(LOGITS, 0));
        }
        assertTrue(seen.size() >= 6, "a hot temperature reaches most tokens: " + seen);
    }

    @Test
    void aSequenceResumedAfterKOutputTokensContinuesExactlyAsItWouldHave() {
        int vocab = 64;
        int steps = 40;
        java.util.SplittableRandom r = new java.util.SplittableRandom(5);
        float[][] logits = new float[steps][vocab];
        for (float[] row : logits) {
            for (int i = 0; i < vocab; i++) {
                row[i] = (float) (r.nextGaussian() * 2);
            }
        }
        int[] prompt = {3, 4, 5, 3, 60};
        // Sampling with every truncation and penalty on: the number of draws per position varies with the logits.
        SamplingParams p = params(0.9, 0.95, 40, 0.01, 1234, 1.3, 0.4, 0.3);
        SequenceSampler whole = new SequenceSampler(p, vocab, prompt);
        int[] tokens = new int[steps];
        for (int i = 0; i < steps; i++) {
            tokens[i] = whole.sample(logits[i], 0);
            whole.accept(tokens[i]);
        }
        assertTrue(java.util.Arrays.stream(tokens).distinct().count() > 5, "the draws vary");
        for (int k : new int[] {0, 1, 7, 20, 39}) {
            SequenceSampler resumed = new SequenceSampler(p, vocab, prompt);
            for (int i = 0; i < k; i++) {
                resumed.accept(tokens[i]);
            }
            assertEquals(k, resumed.position());
            for (int i = k; i < steps; i++) {
                int t = resumed.sample(logits[i], 0);
                assertEquals(tokens[i], t, "resumed after " + k + ", output position " + i);
                resumed.accept(t);
            }
        }
        // Another seed, other draws.
        SequenceSampler other = new SequenceSampler(params(0.9, 0.95, 40, 0.01, 1235, 1.3, 0.4, 0.3), vocab, prompt);
        int same = 0;
        for (int i = 0; i < steps; i++) {
            int t = other.sample(logits[i], 0);
            other.accept(t);
            same += t == tokens[i] ? 1 : 0;
        }
        assertTrue(same < steps, "seed 1235 repeats seed 1234");
    }

    @Test
    void logprobsAreOfTheModelDistribution() {
        int[] ids = new int[3];
        float[] v = new float[3];
        float lp = SequenceSampler.logprobs(LOGITS, 0, V, 1, 3, ids, v);
        double z = 0;
        for (float l : LOGITS) {
            z += Math.exp(l);
        }
        assertEquals(3.0 - Math.log(z), lp, 1e-5);
        assertEquals(1, ids[0]);
        assertEquals(7, ids[1]);
        assertEquals(2, ids[2]);
        assertTrue(v[0] >= v[1] && v[1] >= v[2]);
    }

    @Test
    void outOfRangeParametersAreNamed() {
        assertThrows(IllegalArgumentException.class, () -> params(-1, 1, 0, 0, 0, 1, 0, 0).validate(V));
        assertThrows(IllegalArgumentException.class, () -> params(1, 0, 0, 0, 0, 1, 0, 0).validate(V));
        assertThrows(IllegalArgumentException.class, () -> params(1, 1, 9, 0, 0, 1, 0, 0).validate(V));
        assertThrows(IllegalArgumentException.class, () -> params(1, 1, 0, 1, 0, 1, 0, 0).validate(V));
        assertThrows(IllegalArgumentException.class, () -> params(1, 1, 0, 0, 0, 0, 0, 0).validate(V));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> params(1, 1, 0, 0, 0, 1, 3, 0).validate(V));
        assertTrue(e.getMessage().contains("presence_penalty"), e.getMessage());
    }
}
