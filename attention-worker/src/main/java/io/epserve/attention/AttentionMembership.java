package io.epserve.attention;

import io.epserve.cluster.ClusterNode;
import io.epserve.cluster.ControlPlane;
import io.epserve.cluster.MemberInfo;
import io.epserve.cluster.PlacementTable;
import io.epserve.cluster.Ticker;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.LongConsumer;
import java.util.function.Supplier;

/**
 * An attention worker's part in the control plane. Every 50 ms it hands the engine thread the current placement table
 * and the live expert workers' endpoints ({@link ExpertClient#offer}); it announces the epoch the engine steps with
 * (expert workers unmap old experts only once every attention worker has moved on), its gauges for the operator, and
 * once a second its routed-token counts per (layer, expert) over a sliding window, which feed EPLB.
 */
final class AttentionMembership implements AutoCloseable {
    private static final long TICK_MS = 50;
    private static final long REPORT_MS = 1_000;

    private final ControlPlane plane;
    private final ClusterNode node;
    private final ExpertClient experts;
    private final Supplier<Map<String, Long>> gauges;
    private final LongConsumer epochChanged;
    private final Runnable offered;
    private final Consumer<String> log;
    private final int id;
    /** Snapshots of the cumulative counts, one per report, oldest first (a ring). */
    private final long[][][] window;
    private int windowNext;
    private int windowFilled;
    private final Ticker ticker;
    private long lastReportMs;

    private AttentionMembership(ControlPlane plane, ExpertClient experts, int id, int windowSeconds,
                                Supplier<Map<String, Long>> gauges, LongConsumer epochChanged, Runnable offered,
                                Consumer<String> log) {
        this.epochChanged = epochChanged;
        this.offered = offered;
        this.plane = plane;
        this.node = plane.node();
        this.experts = experts;
        this.id = id;
        this.gauges = gauges;
        this.log = log;
        this.window = new long[Math.max(1, windowSeconds)][][];
        this.ticker = new Ticker("epserve-attention-membership-" + id, TICK_MS, this::tick,
                p -> log.accept("membership: " + p));
    }

    /** Joins as a starting attention worker whose combine inbox is {@code inbox}; ready comes with {@link #ready}. */
    static AttentionMembership join(ControlPlane.Settings s, ClusterNode.ModelIdentity model, ExpertClient experts,
                                    int id, String inbox, int windowSeconds, Supplier<Map<String, Long>> gauges,
                                    LongConsumer epochChanged, Runnable offered, Consumer<String> log) {
        MemberInfo info = MemberInfo.of(MemberInfo.ATTENTION_WORKER, id, "", inbox,
                model.checkpoint() != null ? model.checkpoint() : model.fingerprint());
        ControlPlane plane = ControlPlane.join(s, model, info, log);
        AttentionMembership m = new AttentionMembership(plane, experts, id, windowSeconds, gauges, epochChanged,
                offered, log);
        m.tick();
        m.ticker.start();
        return m;
    }

    /**
     * Serving: the router may send requests to {@code grpc} from now on. The gauges go with it, so that the metrics
     * port (the endpoint starts after the first announcement) is known as soon as the worker is.
     */
    void ready(String grpc) {
        Map<String, Long> g = gauges.get();
        node.update(i -> i.withGrpc(grpc).withState(MemberInfo.READY).withEpoch(experts.epoch()).withGauges(g));
    }

    String describe() {
        return "cluster '" + node.clusterName() + "' member " + node.address();
    }

    ClusterNode node() {
        return node;
    }

    private void tick() {
        PlacementTable current = node.current();
        Map<Integer, String> endpoints = new HashMap<>();
        for (MemberInfo m : node.liveMembers()) {
            if (m.isExpertWorker() && !m.aeron().isEmpty()) {
                endpoints.put(m.id(), m.aeron());
            }
        }
        experts.offer(new ExpertClient.ClusterView(current, Map.copyOf(endpoints)));
        offered.run();
        long epoch = experts.epoch();
        if (node.self().epoch() != epoch) {
            node.update(i -> i.withEpoch(epoch));
            epochChanged.accept(epoch);
        }
        long now = System.currentTimeMillis();
        if (now - lastReportMs >= REPORT_MS) {
            lastReportMs = now;
            node.update(i -> i.withGauges(gauges.get()));
            node.putLoad(id, windowCounts());
        }
    }

    /** Routed slots per [layer][expert] over the window: the cumulative counts now minus the oldest snapshot. */
    private long[][] windowCounts() {
        long[][] cumulative = experts.load;
        long[][] now = new long[cumulative.length][];
        for (int l = 0; l < now.length; l++) {
            // The engine thread increments these; a count read a step late only shifts it into the next window.
            now[l] = cumulative[l].clone();
        }
        long[][] oldest = windowFilled < window.length ? window[0] : window[windowNext];
        window[windowNext] = now;
        windowNext = (windowNext + 1) % window.length;
        windowFilled = Math.min(window.length, windowFilled + 1);
        if (oldest == null) {
            return now;
        }
        long[][] diff = new long[now.length][];
        for (int l = 0; l < now.length; l++) {
            diff[l] = new long[now[l].length];
            for (int e = 0; e < now[l].length; e++) {
                diff[l][e] = now[l][e] - oldest[l][e];
            }
        }
        return diff;
    }

    @Override
    public void close() {
        ticker.close();
        plane.close();
    }
}
