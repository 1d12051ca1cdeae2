package io.epserve.cli.commands;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * The per-round median of {@code bench-cluster}'s summary and its test of a settled JIT (the cluster runs themselves
 * are in ClusterTest and EngineCommandsTest).
 */
class BenchClusterCommandTest {
    @Test
    void medianOfAnOddCountIsTheMiddleFigureWhateverTheRoundOrder() {
        double[] ratios = {1.63, 1.31, 1.42};
        assertEquals(1.42, BenchClusterCommand.median(3, r -> ratios[r]));
        double[] five = {0.9, 1.13, 1.0, 0.98, 1.01};
        assertEquals(1.0, BenchClusterCommand.median(5, r -> five[r]));
    }

    @Test
    void medianOfAnEvenCountIsTheMeanOfTheMiddleTwo() {
        double[] four = {1.49, 1.33, 1.63, 1.45};
        assertEquals((1.45 + 1.49) / 2, BenchClusterCommand.median(4, r -> four[r]), 1e-15);
    }

    @Test
    void medianOfARatioIsTakenOverTheRatiosNotTheRatioOfMedians() {
        double[] m1 = {50, 100, 60}, m2 = {90, 110, 70};
        // per-round ratios 1.8, 1.1, 1.167: median 70 / 60; the ratio of the medians would be 90 / 60
        assertEquals(70.0 / 60, BenchClusterCommand.median(3, r -> m2[r] / m1[r]), 1e-12);
    }

    @Test
    void theJitCountsAsSettledWhenItCompiledForUnderFivePercentOfTheRun() {
        assertTrue(BenchClusterCommand.jitSettled(0, 2.0));
        assertTrue(BenchClusterCommand.jitSettled(0.099, 2.0));
        assertFalse(BenchClusterCommand.jitSettled(0.1, 2.0));
        assertFalse(BenchClusterCommand.jitSettled(1.5, 2.0));
        // unreadable (NaN) or a counter that went backwards (a restarted worker) is not settled
        assertFalse(BenchClusterCommand.jitSettled(Double.NaN, 2.0));
        assertFalse(BenchClusterCommand.jitSettled(-0.5, 2.0));
    }
}
