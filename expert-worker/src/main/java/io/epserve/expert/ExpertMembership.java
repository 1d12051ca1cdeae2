package io.epserve.expert;

import io.epserve.cluster.ClusterNode;
import io.epserve.cluster.ControlPlane;
import io.epserve.cluster.MemberInfo;
import io.epserve.cluster.Placement;
import io.epserve.cluster.PlacementTable;
import io.epserve.cluster.Ticker;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.weights.ExpertWeights;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * An expert worker's part in the control plane. Every 50 ms it reads the placement tables and makes the worker hold
 * what the current and the target table give it — plus what it held before, until every attention worker steps with
 * the current epoch (an attention worker finishing a step under the old table may still send those experts); the
 * rule, over reads of the tables that are not one snapshot, is {@link PlacementFollower}'s. It reports what it
 * holds, so the coordinator can flip the epoch, and a few gauges for the operator.
 *
 * <p>Draining ({@code admin drain} or SIGTERM): it asks the coordinator to move its experts away, and is done once no
 * table gives it anything and every attention worker has switched: then nothing can be sent to it any more.
 */
final class ExpertMembership implements AutoCloseable {
    private static final long TICK_MS = 50;
    private static final long GAUGES_MS = 1_000;

    private final ExpertWorker worker;
    private final ControlPlane plane;
    private final ClusterNode node;
    private final Consumer<String> log;
    private final int id;
    private final CountDownLatch drained = new CountDownLatch(1);
    private final Ticker ticker;
    private volatile boolean draining;
    private long lastGaugesMs;
    /** Ticker thread only. */
    private final PlacementFollower follower;

    private ExpertMembership(ExpertWorker worker, ControlPlane plane, Consumer<String> log) {
        this.worker = worker;
        this.plane = plane;
        this.node = plane.node();
        this.log = log;
        this.id = worker.workerId();
        ModelConfig c = worker.config();
        this.follower = new PlacementFollower(id, ExpertWeights.layerCount(c), c.nMtpLayers() > 0,
                c.nRoutedExperts());
        this.ticker = new Ticker("epserve-expert-membership-" + id, TICK_MS, this::tick,
                p -> log.accept("membership: " + p));
    }

    /** Joins the cluster as a ready expert worker holding nothing yet, reachable at {@code endpoint}. */
    static ExpertMembership join(ExpertWorker worker, ControlPlane.Settings s, String configFingerprint,
                                 String checkpointFingerprint, String endpoint, Consumer<String> log) {
        MemberInfo info = MemberInfo.of(MemberInfo.EXPERT_WORKER, worker.workerId(), "", endpoint,
                checkpointFingerprint).withState(MemberInfo.READY);
        ControlPlane plane = ControlPlane.join(s, ClusterNode.ModelIdentity.of(configFingerprint, worker.config())
                .withCheckpoint(checkpointFingerprint), info, log);
        ExpertMembership m = new ExpertMembership(worker, plane, log);
        m.ticker.start();
        return m;
    }

    String describe() {
        return "cluster '" + node.clusterName() + "' member " + node.address() + ", experts assigned by the coordinator";
    }

    ClusterNode node() {
        return node;
    }

    private void tick() {
        // Target first: see PlacementFollower#read.
        follower.read(node.target(), node.current(), System.currentTimeMillis());
        PlacementTable current = follower.current();
        List<MemberInfo> live = node.liveMembers();
        boolean allSwitched = follower.allSwitched(live.stream().filter(MemberInfo::isAttentionWorker)
                .mapToLong(MemberInfo::epoch).toArray());
        Placement need = follower.need(worker.placement(), allSwitched);
        if (!need.equals(worker.placement())) {
            worker.hold(need);
        }
        String held = worker.placement().canonical();
        if (!held.equals(node.self().held())) {
            node.update(i -> i.withHeld(held));
        }
        if (!draining && node.drainRequested(id)) {
            draining = true;
            node.update(i -> i.withState(MemberInfo.DRAINING));
            worker.draining();
            log.accept("draining: the coordinator moves this worker's experts away");
        }
        if (draining && drained.getCount() > 0) {
            boolean attention = false;
            boolean heir = false;
            for (MemberInfo m : live) {
                attention |= m.isAttentionWorker();
                heir |= m.isExpertWorker() && m.id() != id && !m.draining();
            }
            if (!follower.placed() && allSwitched) {
                log.accept("drained: no placement uses this worker"
                        + (current == null ? "" : " (epoch " + current.epoch() + ")")
                        + " and every attention worker has switched");
                drained.countDown();
            } else if (!attention || !heir) {
                // Nothing in flight can be lost: nobody sends to it, or nobody could take its experts anyway.
                log.accept("drained: " + (!attention ? "no attention worker is left" : "no other expert worker can"
                        + " take its experts") + "; stopping with its experts placed");
                drained.countDown();
            }
        }
        long now = System.currentTimeMillis();
        if (now - lastGaugesMs >= GAUGES_MS) {
            lastGaugesMs = now;
            Map<String, Long> g = new LinkedHashMap<>();
            ExpertExecutor ex = worker.executor();
            g.put("experts_held", (long) worker.placement().size());
            g.put("mapped_bytes", worker.weights().mappedBytes());
            g.put("heap_max_bytes", Runtime.getRuntime().maxMemory());
            g.put("exchanges", ex.exchanges());
            g.put("rows_computed", ex.rowsComputed());
            g.put("waves", ex.waves());
            g.put("merged_exchanges", ex.mergedExchanges());
            g.put("rejected", ex.rejected());
            g.put("peers", (long) worker.peers());
            g.put("first_dispatch_ms", worker.firstDispatchMs());
            int metricsPort = worker.metrics().port();
            if (metricsPort >= 0) {
                g.put(MemberInfo.METRICS_PORT, (long) metricsPort);
            }
            node.update(i -> i.withGauges(g));
        }
    }

    /** Asks the coordinator to move this worker's experts away (idempotent). */
    void requestDrain() {
        node.requestDrain(id);
    }

    boolean drained() {
        return drained.getCount() == 0;
    }

    /** Counts down once drained. */
    CountDownLatch drainedLatch() {
        return drained;
    }

    boolean awaitDrained(long timeoutMs) throws InterruptedException {
        return drained.await(timeoutMs, TimeUnit.MILLISECONDS);
    }

    @Override
    public void close() {
        ticker.close();
        plane.close();
    }
}
