package io.epserve.attention;

import io.epserve.model.engine.Transformer;
import io.epserve.proto.worker.v1.LayerLatency;
import io.epserve.proto.worker.v1.StepTiming;
import org.HdrHistogram.Histogram;

/**
 * Where the engine thread's time went over a run of steps, and per-layer exchange latencies. Reset by the caller;
 * recording allocates nothing (histograms are preallocated, 1 µs to 60 s at 3 significant digits). With
 * {@link #metrics} set, {@link #dispatched} and {@link #combined} also feed the /metrics endpoint (still allocation
 * free), and {@link #publish} makes the time split readable by the scrape thread as totals that {@link #reset}
 * does not clear (Prometheus counters must never go down, while bench-cluster resets these through the worker API).
 */
final class StepStats {
    final Histogram[] dispatchNs;
    final Histogram[] roundTripNs;
    long attentionNs;
    long sharedNs;
    long dispatchSendNs;
    long waitNs;
    long steps;
    long tokens;
    long routedSlots;
    long dispatchBytes;
    long combineBytes;
    long wallNs;
    /** Heap bytes the engine thread allocated in the steps ({@link #allocatedBytes()} before and after each). */
    long allocatedBytes;
    /** Where the exchange figures also go (the /metrics endpoint), or null. */
    AttentionMetrics metrics;
    /** {@link #dispatchBytes} already passed to the metrics. */
    private long dispatchBytesSeen;
    // Engine thread only: the time split cleared by every reset so far.
    private long clearedWallNs;
    private long clearedAttentionNs;
    private long clearedSharedNs;
    private long clearedDispatchSendNs;
    private long clearedWaitNs;
    // Cleared + current as of the last publish: written by the engine thread, read by the scrape thread. Volatile
    // stores rather than a lock or atomic adds: there is one writer, and five stores per step cost nothing. A scrape
    // during a publish may pair one step's total with the previous step's parts; the next scrape catches up.
    private volatile long totalWallNs;
    private volatile long totalAttentionNs;
    private volatile long totalSharedNs;
    private volatile long totalDispatchSendNs;
    private volatile long totalWaitNs;

    StepStats(int layers) {
        dispatchNs = new Histogram[layers];
        roundTripNs = new Histogram[layers];
        for (int i = 0; i < layers; i++) {
            dispatchNs[i] = new Histogram(1_000, 60_000_000_000L, 3);
            roundTripNs[i] = new Histogram(1_000, 60_000_000_000L, 3);
        }
    }

    void reset() {
        clearedWallNs += wallNs;
        clearedAttentionNs += attentionNs;
        clearedSharedNs += sharedNs;
        clearedDispatchSendNs += dispatchSendNs;
        clearedWaitNs += waitNs;
        for (int i = 0; i < dispatchNs.length; i++) {
            dispatchNs[i].reset();
            roundTripNs[i].reset();
        }
        attentionNs = sharedNs = dispatchSendNs = waitNs = steps = tokens = routedSlots = 0;
        dispatchBytes = combineBytes = wallNs = allocatedBytes = 0;
        dispatchBytesSeen = 0;
    }

    /** Makes the time split so far visible to {@link #totalWallNs()} and the like (engine thread, once per step). */
    void publish() {
        totalWallNs = clearedWallNs + wallNs;
        totalAttentionNs = clearedAttentionNs + attentionNs;
        totalSharedNs = clearedSharedNs + sharedNs;
        totalDispatchSendNs = clearedDispatchSendNs + dispatchSendNs;
        totalWaitNs = clearedWaitNs + waitNs;
    }

    // Any thread: monotonic since start, as of the engine thread's last publish.

    long totalWallNs() {
        return totalWallNs;
    }

    long totalAttentionNs() {
        return totalAttentionNs;
    }

    long totalSharedNs() {
        return totalSharedNs;
    }

    long totalDispatchSendNs() {
        return totalDispatchSendNs;
    }

    long totalWaitNs() {
        return totalWaitNs;
    }

    /** A micro-batch's dispatch of its current layer took ns to send (after {@link #dispatchBytes} counted it). */
    void dispatched(Transformer.Pass p, long ns) {
        record(dispatchNs[p.layer()], ns);
        if (metrics != null) {
            metrics.dispatched(p, ns, dispatchBytes - dispatchBytesSeen);
        }
        dispatchBytesSeen = dispatchBytes;
    }

    /** A micro-batch's exchange of {@code layer} for {@code tokens} tokens completed ns after its dispatch. */
    void combined(int layer, long ns, int tokens) {
        record(roundTripNs[layer], ns);
        if (metrics != null) {
            metrics.combined(layer, ns, tokens);
        }
    }

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();

    /** Heap bytes the calling thread has allocated so far (0 where the JVM cannot tell). */
    static long allocatedBytes() {
        long b = THREADS.getCurrentThreadAllocatedBytes();
        return Math.max(0, b);
    }

    static void record(Histogram h, long ns) {
        h.recordValue(Math.max(1_000, Math.min(ns, h.getHighestTrackableValue())));
    }

    StepTiming toProto(int microBatches) {
        StepTiming.Builder b = StepTiming.newBuilder()
                .setSteps((int) steps)
                .setTokens((int) tokens)
                .setMicroBatches(microBatches)
                .setWallSeconds(wallNs / 1e9)
                .setAttentionSeconds(attentionNs / 1e9)
                .setSharedExpertSeconds(sharedNs / 1e9)
                .setDispatchSeconds(dispatchSendNs / 1e9)
                .setExposedWaitSeconds(waitNs / 1e9)
                .setRoutedSlots(routedSlots)
                .setDispatchBytes(dispatchBytes)
                .setCombineBytes(combineBytes)
                .setEngineAllocatedBytes(allocatedBytes);
        for (int l = 0; l < dispatchNs.length; l++) {
            Histogram d = dispatchNs[l];
            Histogram r = roundTripNs[l];
            if (r.getTotalCount() == 0) {
                continue;
            }
            b.addLayers(LayerLatency.newBuilder()
                    .setLayer(l)
                    .setExchanges(r.getTotalCount())
                    .setDispatchP50Us(d.getValueAtPercentile(50) / 1e3)
                    .setDispatchP99Us(d.getValueAtPercentile(99) / 1e3)
                    .setRoundTripP50Us(r.getValueAtPercentile(50) / 1e3)
                    .setRoundTripP90Us(r.getValueAtPercentile(90) / 1e3)
                    .setRoundTripP99Us(r.getValueAtPercentile(99) / 1e3)
                    .setRoundTripMeanUs(r.getMean() / 1e3));
        }
        return b.build();
    }
}
