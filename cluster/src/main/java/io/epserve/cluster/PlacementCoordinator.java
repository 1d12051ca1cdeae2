package io.epserve.cluster;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * Owns placement changes. Runs in every process and acts only while its member is the oldest of the cluster, so a new
 * coordinator takes over by itself when the old one leaves or dies; it keeps no state that matters outside Hazelcast
 * (only timers), so the new one carries on from the tables there.
 *
 * <p>A change is two-phase, make-before-break: the coordinator publishes a <em>target</em> table (epoch + 1); every
 * expert worker maps what the target gives it while keeping what the current table gives it and reports what it
 * holds; once every worker of the target holds its share, the target becomes <em>current</em>. Attention workers
 * switch to the new current table between steps, and expert workers unmap what they no longer need only after every
 * attention worker has switched — so no step ever finds an expert missing.
 *
 * <p>Triggers, in order of precedence: a worker of the current table gone (dead, or draining on request) → the
 * smallest change without it ({@link PlacementPlanner#withoutWorkers}); a new expert worker → EPLB over all of them,
 * moving as little as it can; an operator's rebalance request → EPLB on the measured load; the rebalance schedule
 * (if set) → EPLB when it improves the balance by more than the configured gain.
 */
public final class PlacementCoordinator implements AutoCloseable {
    /** Settings; every setter returns this. */
    public static final class Options {
        int redundant;
        long settleMs = 1_000;
        long rebalanceIntervalMs;
        double rebalanceGain = 0.05;
        long targetTimeoutMs = 120_000;
        long tickMs = 50;

        /** Extra replica slots per expert worker and layer, for EPLB's redundant copies of hot experts. */
        public Options redundant(int v) { redundant = v; return this; }
        /** How long the expert-worker set must be unchanged before a first placement or a scale-up plan. */
        public Options settleMs(long v) { settleMs = v; return this; }
        /** Scheduled EPLB rebalancing (0: only on request). */
        public Options rebalanceIntervalMs(long v) { rebalanceIntervalMs = v; return this; }
        /** Least improvement of mean/max load for a scheduled rebalance to be applied. */
        public Options rebalanceGain(double v) { rebalanceGain = v; return this; }
        /** A target whose workers do not all report their experts within this is dropped and planned again. */
        public Options targetTimeoutMs(long v) { targetTimeoutMs = v; return this; }
        public Options tickMs(long v) { tickMs = v; return this; }

        public void validate() {
            if (redundant < 0) {
                throw new IllegalArgumentException("--redundant-experts must be >= 0, got " + redundant);
            }
            if (settleMs < 0 || rebalanceIntervalMs < 0 || targetTimeoutMs <= 0 || tickMs <= 0) {
                throw new IllegalArgumentException("coordinator intervals must be positive");
            }
        }
    }

    public static Options options() {
        return new Options();
    }

    private final ClusterNode node;
    private final Options o;
    private final Consumer<String> log;
    private final ScheduledExecutorService timer;
    private boolean coordinating;
    private Set<Integer> lastWorkers = Set.of();
    private long workersChangedMs;
    private long targetSinceMs;
    private long lastTargetEpoch;
    private long lastRebalanceMs = System.currentTimeMillis();
    private long lastHousekeepingMs;
    private String lastWarning;

    public PlacementCoordinator(ClusterNode node, Options o, Consumer<String> log) {
        o.validate();
        this.node = node;
        this.o = o;
        this.log = log;
        this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "epserve-coordinator");
            t.setDaemon(true);
            return t;
        });
    }

    public PlacementCoordinator start() {
        timer.scheduleWithFixedDelay(this::tick, 0, o.tickMs, TimeUnit.MILLISECONDS);
        node.onMembershipChange(() -> {
            try {
                timer.execute(this::tick);
            } catch (java.util.concurrent.RejectedExecutionException e) {
                // closing
            }
        });
        return this;
    }

    synchronized void tick() {
        try {
            if (!node.isCoordinator()) {
                coordinating = false;
                return;
            }
            if (!coordinating) {
                coordinating = true;
                log.accept("this member is the placement coordinator (" + node.describeMembers() + ")");
            }
            decide(System.currentTimeMillis());
        } catch (RuntimeException e) {
            // Hazelcast refuses operations while a member leaves or partitions migrate: try again at the next tick.
            if (!timer.isShutdown()) {
                warnOnce("coordinator: " + e);
            }
        }
    }

    private void decide(long now) {
        List<MemberInfo> live = node.liveMembers();
        if (now - lastHousekeepingMs > 5_000) {
            lastHousekeepingMs = now;
            node.forgetDeparted();
        }
        TreeSet<Integer> experts = new TreeSet<>();
        for (MemberInfo m : live) {
            if (m.isExpertWorker()) {
                experts.add(m.id());
            }
        }
        Set<Integer> drains = node.drainRequests();
        for (int id : drains) {
            if (!experts.contains(id)) {
                node.forgetDrain(id);
            }
        }
        TreeSet<Integer> eligible = new TreeSet<>(experts);
        eligible.removeAll(drains);
        if (!eligible.equals(lastWorkers)) {
            lastWorkers = Set.copyOf(eligible);
            workersChangedMs = now;
        }
        var infos = ClusterNode.byId(live, MemberInfo.EXPERT_WORKER);
        PlacementTable current = node.current();
        PlacementTable target = node.target();
        if (target != null) {
            List<Integer> unusable = new ArrayList<>();
            for (int w : target.workers()) {
                if (!eligible.contains(w)) {
                    unusable.add(w);
                }
            }
            if (!unusable.isEmpty()) {
                log.accept("dropped target epoch " + target.epoch() + ": expert worker(s) " + unusable
                        + " left or are draining");
                node.clearTarget();
                target = null;
            } else {
                if (target.epoch() != lastTargetEpoch) {
                    lastTargetEpoch = target.epoch();
                    targetSinceMs = now;
                }
                List<Integer> waiting = new ArrayList<>();
                for (int w : target.workers()) {
                    MemberInfo m = infos.get(w);
                    Placement held = Placement.ofCanonical(m.held(), target.layerCount(), target.mtp(),
                            target.expertsPerLayer());
                    if (!held.containsAll(target.assignment(w))) {
                        waiting.add(w);
                    }
                }
                if (waiting.isEmpty()) {
                    node.putCurrent(target);
                    log.accept("placement epoch " + target.epoch() + " is current: " + target.describe());
                    return;
                }
                if (now - targetSinceMs > o.targetTimeoutMs) {
                    log.accept("dropped target epoch " + target.epoch() + ": expert worker(s) " + waiting
                            + " did not map their experts within " + o.targetTimeoutMs + " ms");
                    node.clearTarget();
                }
                return;
            }
        }
        if (eligible.isEmpty()) {
            if (current != null) {
                warnOnce("no expert worker is available for the placement (epoch " + current.epoch() + " stays)");
            }
            return;
        }
        int[] workers = eligible.stream().mapToInt(Integer::intValue).toArray();
        ClusterNode.ModelIdentity model = node.model();
        double[][] measured = node.load(live);
        double[][] load = measured != null && total(measured) > 0 ? measured
                : PlacementPlanner.uniform(model.layers(), model.experts());
        if (current == null) {
            if (now - workersChangedMs >= o.settleMs) {
                publish(new PlacementTable(1, model.mtp(), PlacementPlanner.plan(load, workers, o.redundant, null)),
                        null, load, "first placement over expert workers " + Arrays.toString(workers), now);
            }
            return;
        }
        TreeSet<Integer> gone = new TreeSet<>();
        for (int w : current.workers()) {
            if (!eligible.contains(w)) {
                gone.add(w);
            }
        }
        if (!gone.isEmpty()) {
            List<String> why = new ArrayList<>();
            for (int w : gone) {
                why.add(w + (experts.contains(w) ? " (draining)" : " (gone)"));
            }
            publish(new PlacementTable(current.epoch() + 1, model.mtp(),
                            PlacementPlanner.withoutWorkers(current, gone, workers, load)), current, load,
                    "without expert worker(s) " + String.join(", ", why), now);
            return;
        }
        boolean grown = false;
        for (int w : workers) {
            grown |= !current.contains(w);
        }
        if (grown) {
            if (now - workersChangedMs >= o.settleMs) {
                publish(new PlacementTable(current.epoch() + 1, model.mtp(),
                                PlacementPlanner.plan(load, workers, o.redundant, current)), current, load,
                        "scale-up to expert workers " + Arrays.toString(workers), now);
            }
            return;
        }
        if (node.takeRebalanceRequest()) {
            lastRebalanceMs = now;
            try {
                PlacementTable t = new PlacementTable(current.epoch() + 1, model.mtp(),
                        PlacementPlanner.plan(load, workers, o.redundant, current));
                boolean changed = publish(t, current, load, "rebalance requested"
                        + (measured == null ? " (no load measured yet: uniform)" : ""), now);
                node.rebalanceResult(changed ? "target " + t.epoch() : "unchanged " + current.epoch());
            } catch (RuntimeException e) {
                node.rebalanceResult("failed: " + e.getMessage());
                throw e;
            }
            return;
        }
        if (o.rebalanceIntervalMs > 0 && measured != null && now - lastRebalanceMs >= o.rebalanceIntervalMs) {
            lastRebalanceMs = now;
            PlacementTable candidate = new PlacementTable(current.epoch() + 1, model.mtp(),
                    PlacementPlanner.plan(load, workers, o.redundant, current));
            double before = PlacementPlanner.balance(load, current);
            double after = PlacementPlanner.balance(load, candidate);
            if (after - before > o.rebalanceGain) {
                publish(candidate, current, load, "scheduled rebalance", now);
            }
        }
    }

    /** Publishes {@code t} as the target unless it places the same as {@code current}; returns whether it did. */
    private boolean publish(PlacementTable t, PlacementTable current, double[][] load, String reason, long now) {
        if (t.samePlacement(current)) {
            log.accept(reason + ": the placement stays as it is (epoch " + current.epoch() + ")");
            return false;
        }
        node.putTarget(t);
        lastTargetEpoch = t.epoch();
        targetSinceMs = now;
        lastWarning = null;
        log.accept(String.format(Locale.ROOT, "target epoch %d (%s): %s; balance %s -> %.3f", t.epoch(), reason,
                t.describe(), current == null ? "-" : String.format(Locale.ROOT, "%.3f",
                        PlacementPlanner.balance(load, current)), PlacementPlanner.balance(load, t)));
        return true;
    }

    private static double total(double[][] load) {
        double s = 0;
        for (double[] row : load) {
            for (double v : row) {
                s += v;
            }
        }
        return s;
    }

    private void warnOnce(String message) {
        if (!message.equals(lastWarning)) {
            lastWarning = message;
            log.accept(message);
        }
    }

    @Override
    public void close() {
        timer.shutdownNow();
        try {
            timer.awaitTermination(2, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
