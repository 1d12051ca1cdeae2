package io.epserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class ArrivalScheduleTest {
    @Test
    void infiniteRateSendsEverythingAtOnce() {
        assertArrayEquals(new double[5], ArrivalSchedule.offsets(5, Double.POSITIVE_INFINITY, 1, 7));
    }

    @Test
    void poissonSpansExactlyNOverRate() {
        double[] t = ArrivalSchedule.offsets(2_000, 4, 1, 1);
        assertEquals(500.0, t[t.length - 1], 1e-9); // vLLM rescales to N / rate
        double[] gaps = gaps(t);
        assertTrue(Arrays.stream(gaps).allMatch(g -> g >= 0));
        assertEquals(0.25, mean(gaps), 0.01);
        // Exponential gaps: coefficient of variation 1.
        assertEquals(1.0, cv(gaps), 0.1);
    }

    @Test
    void burstinessIsTheGammaShape() {
        // CV of gamma(shape k) = 1 / sqrt(k).
        assertEquals(2.0, cv(gaps(ArrivalSchedule.offsets(4_000, 10, 0.25, 3))), 0.25);
        assertEquals(0.5, cv(gaps(ArrivalSchedule.offsets(4_000, 10, 4, 3))), 0.06);
        double[] even = gaps(ArrivalSchedule.offsets(10, 2, Double.POSITIVE_INFINITY, 3));
        for (double g : even) {
            assertEquals(0.5, g, 1e-9);
        }
    }

    @Test
    void seededAndReproducible() {
        assertArrayEquals(ArrivalSchedule.offsets(50, 3, 1, 42), ArrivalSchedule.offsets(50, 3, 1, 42));
        assertFalse(Arrays.equals(ArrivalSchedule.offsets(50, 3, 1, 42), ArrivalSchedule.offsets(50, 3, 1, 43)));
    }

    @Test
    void rampUpRaisesTheRate() {
        double[] t = ArrivalSchedule.offsets(1_000, 0, Double.POSITIVE_INFINITY, ArrivalSchedule.RampUp.LINEAR, 1, 10,
                0);
        double[] g = gaps(t);
        assertEquals(1.0, g[0], 1e-9);
        assertEquals(0.1, g[g.length - 1], 1e-3);
        assertEquals(10.0, ArrivalSchedule.rateAt(ArrivalSchedule.RampUp.EXPONENTIAL, 1, 100, 1, 3), 1e-9);
    }

    @Test
    void rejectsNonsense() {
        assertThrows(IllegalArgumentException.class, () -> ArrivalSchedule.offsets(3, 1, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> ArrivalSchedule.offsets(3, -1, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> ArrivalSchedule.offsets(3, 1, 1,
                ArrivalSchedule.RampUp.LINEAR, 0, 5, 0));
    }

    private static double[] gaps(double[] t) {
        double[] g = new double[t.length];
        for (int i = 0; i < t.length; i++) {
            g[i] = t[i] - (i == 0 ? 0 : t[i - 1]);
        }
        return g;
    }

    private static double mean(double[] v) {
        return Arrays.stream(v).average().orElse(0);
    }

    private static double cv(double[] v) {
        double m = mean(v);
        double var = Arrays.stream(v).map(x -> (x - m) * (x - m)).average().orElse(0);
        return Math.sqrt(var) / m;
    }
}
