package io.epserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class StatsTest {
    @Test
    void followsNumpy() {
        Stats s = Stats.of(new double[] {4, 1, 3, 2});
        assertEquals(2.5, s.mean(), 1e-12);
        assertEquals(Math.sqrt(1.25), s.std(), 1e-12); // np.std: population
        assertEquals(2.5, s.median(), 1e-12);
        assertEquals(3.97, s.percentile(99), 1e-12); // np.percentile([1,2,3,4], 99)
        assertEquals(1.03, s.percentile(1), 1e-12);
        assertEquals(1, s.min());
        assertEquals(4, s.max());
    }

    @Test
    void emptyIsZero() {
        Stats s = Stats.of(new double[0]);
        assertEquals(0, s.mean());
        assertEquals(0, s.std());
        assertEquals(0, s.percentile(99));
    }

    @Test
    void thinningKeepsEnds() {
        double[] v = new double[10_001];
        for (int i = 0; i < v.length; i++) {
            v[i] = i;
        }
        double[] t = Stats.of(v).thinned(101);
        assertEquals(101, t.length);
        assertEquals(0, t[0]);
        assertEquals(10_000, t[100]);
        assertEquals(5_000, t[50]);
        assertArrayEquals(new double[] {1, 2}, Stats.of(new double[] {2, 1}).thinned(5));
    }
}
