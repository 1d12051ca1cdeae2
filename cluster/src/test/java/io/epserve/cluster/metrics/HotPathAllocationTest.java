package io.epserve.cluster.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.prometheus.metrics.core.datapoints.CounterDataPoint;
import java.lang.management.ManagementFactory;
import org.junit.jupiter.api.Test;

/** What the engine thread calls per layer or token allocates nothing once warm. */
class HotPathAllocationTest {
    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    @Test
    void singleWriterHistogramsCountsAndPreBoundCountersAllocateNothing() {
        try (ProcessMetrics m = ProcessMetrics.create("test")) {
            NanosHistogram.Family f = NanosHistogram.Family.register(m.registry(), "t_seconds", "t",
                    Metrics.EXCHANGE_SECONDS, "layer");
            NanosHistogram h = f.add("0");
            SingleWriterCounts c = new SingleWriterCounts(4, 8);
            CounterDataPoint bytes = Metrics.counter(m.registry(), "b_total", "b", "kind").labelValues("x");
            int n = 200_000;
            run(h, c, bytes, n); // warm up (JIT)
            long before = THREADS.getCurrentThreadAllocatedBytes();
            run(h, c, bytes, n);
            long allocated = THREADS.getCurrentThreadAllocatedBytes() - before;
            assertTrue(allocated < 1024, allocated + " bytes allocated over " + n + " records");
            assertEquals(2L * n, h.count());
            assertEquals(2L * n, c.total());
        }
    }

    private static void run(NanosHistogram h, SingleWriterCounts c, CounterDataPoint bytes, int n) {
        for (int i = 0; i < n; i++) {
            h.record(i * 997L);
            c.add(i & 3, i & 7, 1);
            bytes.inc(100);
        }
    }
}
