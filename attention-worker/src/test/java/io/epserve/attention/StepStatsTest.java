package io.epserve.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import org.junit.jupiter.api.Test;

/** The time split exported to /metrics survives the resets of the worker API's timing, and costs nothing per step. */
class StepStatsTest {
    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    static void step(StepStats s, long wall, long attention, long shared, long dispatch, long wait) {
        s.wallNs += wall;
        s.attentionNs += attention;
        s.sharedNs += shared;
        s.dispatchSendNs += dispatch;
        s.waitNs += wait;
        s.publish();
    }

    @Test
    void publishedTotalsKeepGrowingAcrossResets() {
        StepStats s = new StepStats(2);
        step(s, 100, 50, 10, 5, 20);
        assertEquals(100, s.totalWallNs());
        s.reset();
        assertEquals(100, s.totalWallNs(), "a reset publishes nothing and takes nothing away");
        s.publish();
        assertEquals(100, s.totalWallNs());
        assertEquals(0, s.wallNs, "the worker API's figures start again");
        step(s, 30, 20, 4, 2, 3);
        s.reset();
        step(s, 1, 1, 1, 1, 1);
        assertEquals(131, s.totalWallNs());
        assertEquals(71, s.totalAttentionNs());
        assertEquals(15, s.totalSharedNs());
        assertEquals(8, s.totalDispatchSendNs());
        assertEquals(24, s.totalWaitNs());
        assertEquals(1, s.wallNs);
    }

    @Test
    void engineAllocationIsMeasuredReportedAndReset() {
        StepStats s = new StepStats(2);
        long b0 = StepStats.allocatedBytes();
        byte[] garbage = new byte[1 << 20];
        s.allocatedBytes += StepStats.allocatedBytes() - b0;
        assertTrue(garbage.length > 0 && s.allocatedBytes >= 1 << 20, s.allocatedBytes + " bytes for a 1 MiB array");
        assertEquals(s.allocatedBytes, s.toProto(1).getEngineAllocatedBytes());
        s.reset();
        assertEquals(0, s.toProto(1).getEngineAllocatedBytes());
    }

    @Test
    void publishingAllocatesNothing() {
        StepStats s = new StepStats(2);
        int n = 200_000;
        for (int i = 0; i < n; i++) {
            step(s, 3, 2, 1, 1, 1);
        }
        long before = THREADS.getCurrentThreadAllocatedBytes();
        for (int i = 0; i < n; i++) {
            step(s, 3, 2, 1, 1, 1);
        }
        long allocated = THREADS.getCurrentThreadAllocatedBytes() - before;
        assertTrue(allocated < 1024, allocated + " bytes allocated over " + n + " steps");
        assertEquals(6L * n, s.totalWallNs());
    }
}
