package io.epserve.attention;

import io.epserve.model.engine.Transformer;
import io.epserve.model.engine.Transformer.Chunk;
import io.epserve.model.engine.Transformer.Output;
import io.epserve.model.engine.Transformer.Pass;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.agrona.concurrent.IdleStrategy;

/**
 * Runs batched steps with the routed experts on expert workers, the batch cut into up to m micro-batches that
 * ping-pong on one thread (MegaScale-Infer, DeepSeek's dual micro-batch overlap): a micro-batch computes its
 * attention, sends its tokens to the experts and computes its shared expert, and while its routed experts are away
 * the next micro-batch does the same; a micro-batch whose expert outputs are all in adds them up and goes on to its
 * next layer. The engine thread waits only when no micro-batch can run.
 *
 * <p>Micro-batches hold whole chunks (a sequence's tokens of one step attend to each other, so they stay together),
 * contiguous in request order and balanced by token count. Each micro-batch computes exactly what the single-process
 * engine computes for it, and the engine's kernels are batch-invariant per token, so the split changes no bits.
 */
final class MicroBatchEngine implements StepEngine {
    /** The most micro-batches a step may be cut into. */
    static final int MAX_MICRO_BATCHES = 4;

    private final Transformer tr;
    private final ExpertClient experts;
    private final int microBatches;
    private final long expertTimeoutNs;
    private final IdleStrategy idle;
    private final StepStats stats;
    private final int source;
    private final long failoverTimeoutNs;
    private final Consumer<String> log;
    private long nextStep = 1;
    /** When the engine thread found no micro-batch able to move, or 0 while one moves. */
    private long waitingSince;
    private long failedSteps;
    private long failovers;

    MicroBatchEngine(Transformer tr, ExpertClient experts, int microBatches, long expertTimeoutNs, IdleStrategy idle,
                     int source) {
        this(tr, experts, microBatches, expertTimeoutNs, idle, source, expertTimeoutNs, s -> { });
    }

    /**
     * @param failoverTimeoutNs with the control plane: how long a step whose expert worker died waits for a placement
     *     without it before it fails
     */
    MicroBatchEngine(Transformer tr, ExpertClient experts, int microBatches, long expertTimeoutNs, IdleStrategy idle,
                     int source, long failoverTimeoutNs, Consumer<String> log) {
        checkMicroBatches(microBatches);
        this.tr = tr;
        this.experts = experts;
        this.microBatches = microBatches;
        this.expertTimeoutNs = expertTimeoutNs;
        this.idle = idle;
        this.source = source;
        this.failoverTimeoutNs = failoverTimeoutNs;
        this.log = log;
        this.stats = new StepStats(tr.config().nLayers());
    }

    @Override
    public long failovers() {
        return failovers;
    }

    @Override
    public Transformer transformer() {
        return tr;
    }

    @Override
    public int microBatches() {
        return microBatches;
    }

    @Override
    public StepStats stats() {
        return stats;
    }

    @Override
    public long steps() {
        return nextStep - 1;
    }

    @Override
    public long failedSteps() {
        return failedSteps;
    }

    private static void checkMicroBatches(int m) {
        if (m < 1 || m > MAX_MICRO_BATCHES) {
            throw new IllegalArgumentException("micro-batches must be 1.." + MAX_MICRO_BATCHES + ", got " + m);
        }
    }

    /** Splits chunks into at most m contiguous groups of about equal token counts (no group empty). */
    static List<List<Chunk>> split(List<Chunk> chunks, int m) {
        long total = 0;
        for (Chunk c : chunks) {
            total += c.tokens().length;
        }
        List<List<Chunk>> groups = new ArrayList<>();
        long before = 0;
        int current = -1;
        for (Chunk c : chunks) {
            int g = (int) Math.min(m - 1, before * m / Math.max(1, total));
            if (g != current) {
                groups.add(new ArrayList<>());
                current = g;
            }
            groups.get(groups.size() - 1).add(c);
            before += c.tokens().length;
        }
        return groups;
    }

    /**
     * One step over the chunks (distinct sequences): the same result as {@link Transformer#forward}. On failure
     * nothing is committed to the sequences, but their caches may hold parts of the step: the caller must drop them.
     */
    @Override
    public Output step(List<Chunk> chunks, boolean allLogits, int microBatches) {
        checkMicroBatches(microBatches);
        long step = nextStep++;
        long t0 = System.nanoTime();
        long b0 = StepStats.allocatedBytes();
        // Tables change only here, between steps (and in a failover): a step never mixes placements otherwise.
        experts.refresh(true);
        if (experts.elastic() && experts.mapUsesLost()) {
            awaitPlacement(step, "before it starts: the placement sends to an expert worker that is gone",
                    experts.map().epoch);
        }
        List<List<Chunk>> groups = split(chunks, microBatches);
        int m = groups.size();
        Pass[] passes = new Pass[m];
        boolean[] finished = new boolean[m];
        boolean[] waiting = new boolean[m];
        int tokens = 0;
        for (int i = 0; i < m; i++) {
            passes[i] = tr.begin(groups.get(i));
            tokens += passes[i].tokens();
        }
        int done = 0;
        long[] steps = new long[m];
        java.util.Arrays.fill(steps, step);
        try {
            while (done < m) {
                long round = System.nanoTime();
                boolean progressed = false;
                for (int i = 0; i < m; i++) {
                    if (finished[i]) {
                        continue;
                    }
                    if (advance(steps[i], i, passes[i], waiting)) {
                        progressed = true;
                        if (passes[i].done()) {
                            finished[i] = true;
                            done++;
                        }
                    }
                }
                if (!progressed) {
                    awaitWork(steps, m, waiting);
                } else {
                    endWait(round);
                }
            }
        } catch (RuntimeException e) {
            endWait(System.nanoTime());
            failedSteps++;
            // Its parts (mostly the wait that timed out) are already counted: so is its wall time, so that the
            // time split's parts never exceed the whole.
            stats.wallNs += System.nanoTime() - t0;
            stats.allocatedBytes += StepStats.allocatedBytes() - b0;
            for (int i = 0; i < m; i++) {
                experts.exchange(i).close();
            }
            throw e;
        }
        // One pass over the head weights for all micro-batches (the same bits as one per micro-batch).
        long h = System.nanoTime();
        Output out = tr.end(List.of(passes), allLogits, false);
        long e = System.nanoTime();
        stats.attentionNs += e - h;
        stats.steps++;
        stats.tokens += tokens;
        stats.wallNs += e - t0;
        stats.allocatedBytes += StepStats.allocatedBytes() - b0;
        return out;
    }

    /**
     * Moves micro-batch i's pass on by one half layer if it can: its attention half and dispatch (then the shared
     * expert) when it is not waiting, its combine and FFN half once every expert output is in. Returns whether it
     * moved (or failed over to a new placement).
     */
    private boolean advance(long step, int i, Pass p, boolean[] waiting) {
        MoeExchange ex = experts.exchange(i);
        if (!waiting[i]) {
            long a = System.nanoTime();
            tr.attentionHalf(p);
            long b = System.nanoTime();
            if (experts.elastic() && experts.mapUsesLost()) {
                awaitPlacement(step, "micro-batch " + i + " at layer " + p.layer()
                        + ": the placement sends to an expert worker that is gone", experts.map().epoch);
            }
            stats.dispatchBytes += ex.send(source, step, p, experts.map(), experts.links(), expertTimeoutNs,
                    experts.load);
            long c = System.nanoTime();
            tr.sharedExpert(p);
            long e = System.nanoTime();
            stats.attentionNs += b - a;
            stats.dispatchSendNs += c - b;
            stats.sharedNs += e - c;
            stats.dispatched(p, c - b);
            waiting[i] = true;
            experts.poll();
            return true;
        } else if (experts.elastic() && experts.lostPending(ex) != null) {
            failover(step, i, ex);
            return true;
        } else if (ex.failure != null) {
            throw new ExpertsUnavailableException("step " + step + " failed at layer " + ex.layer
                    + " (micro-batch " + i + "): " + ex.failure);
        } else if (ex.complete()) {
            long a = System.nanoTime();
            stats.combined(p.layer(), a - ex.sentNs, ex.tokens);
            ex.sumInto(p.routedSums());
            tr.ffnHalf(p);
            waiting[i] = false;
            stats.attentionNs += System.nanoTime() - a;
            return true;
        }
        return false;
    }

    /**
     * No micro-batch can move: polls the inbox once, checks the deadlines and idles if nothing came. The exposed wait
     * is counted from the first such call to the start of the loop round in which a micro-batch moves again
     * ({@link #endWait}), so the loop's own checks between the calls are in it too: timed call by call, with
     * busy-spinning pinned workers ~15 % of the step (m = 1) was in no figure at all.
     */
    private void awaitWork(long[] steps, int m, boolean[] waiting) {
        long a = System.nanoTime();
        if (waitingSince == 0) {
            waitingSince = a;
        }
        int work = experts.poll();
        if (work == 0) {
            checkDeadlines(steps, m, waiting, a);
            idle.idle();
        } else {
            idle.reset();
        }
    }

    /** A micro-batch moves again (or the step failed while waiting): the wait ended at {@code now}. */
    private void endWait(long now) {
        if (waitingSince != 0) {
            stats.waitNs += Math.max(0, now - waitingSince);
            waitingSince = 0;
        }
    }

    /**
     * Steps without lockstep: each lane's pass is a micro-batch, and a lane goes on to its next pass as soon as its
     * own pass is done, while the other lanes are still in theirs. With lockstep steps every micro-batch waits at
     * the end of a step for the slowest, and the expert workers idle from the last micro-batch's last dispatch until
     * the first micro-batch's first dispatch of the next step (its head, sampling and first attention half); here
     * the other lanes keep them busy meanwhile. Each lane's passes compute what the
     * same chunks in a lockstep step compute (the kernels are batch-invariant per token).
     *
     * <p>A new placement is taken only when no lane is in a pass: a lane that ends its pass while a newer table is
     * offered waits for the others to end theirs. On failure every lane in a pass fails with it; the passes that
     * ended before were handed to {@code feed} and stand.
     */
    @Override
    public void pipeline(int lanes, boolean allLogits, Lanes feed) {
        checkMicroBatches(lanes);
        long mark = System.nanoTime();
        long b0 = StepStats.allocatedBytes();
        Pass[] passes = new Pass[lanes];
        List<Chunk>[] parked = newChunkLists(lanes);
        long[] steps = new long[lanes];
        boolean[] waiting = new boolean[lanes];
        int inPass = 0;
        int ended = 0;
        try {
            for (int i = 0; i < lanes; i++) {
                List<Chunk> first = feed.next(i, null);
                parked[i] = first.isEmpty() ? null : first;
            }
            while (true) {
                long round = System.nanoTime();
                boolean boundary = inPass == 0;
                if (boundary) {
                    boolean any = false;
                    for (int i = 0; i < lanes; i++) {
                        any |= parked[i] != null;
                    }
                    if (!any) {
                        break;
                    }
                    // No exchange in flight: the one moment a lane may switch tables. Every waiting lane starts.
                    experts.refresh(true);
                    if (experts.elastic() && experts.mapUsesLost()) {
                        awaitPlacement(nextStep, "before it starts: the placement sends to an expert worker that is"
                                + " gone", experts.map().epoch);
                    }
                }
                boolean progressed = false;
                for (int i = 0; i < lanes; i++) {
                    if (parked[i] != null && (boundary || !experts.newerTableOffered()
                            && !(experts.elastic() && experts.mapUsesLost()))) {
                        steps[i] = nextStep++;
                        passes[i] = tr.begin(parked[i]);
                        parked[i] = null;
                        inPass++;
                        progressed = true;
                    }
                    Pass p = passes[i];
                    if (p == null || !advance(steps[i], i, p, waiting)) {
                        continue;
                    }
                    progressed = true;
                    if (p.done()) {
                        Output out = tr.end(List.of(p), allLogits, false);
                        passes[i] = null;
                        inPass--;
                        stats.tokens += p.tokens();
                        if (++ended % lanes == 0) {
                            stats.steps++;
                        }
                        long now = System.nanoTime();
                        stats.wallNs += now - mark;
                        mark = now;
                        List<Chunk> next = feed.next(i, out);
                        parked[i] = next.isEmpty() ? null : next;
                        for (int j = 0; j < lanes; j++) {
                            if (j != i && passes[j] == null && parked[j] == null) {
                                List<Chunk> more = feed.next(j, null);
                                parked[j] = more.isEmpty() ? null : more;
                            }
                        }
                    }
                }
                if (!progressed && inPass > 0) {
                    awaitWork(steps, lanes, waiting);
                } else if (progressed) {
                    endWait(round);
                }
            }
        } catch (RuntimeException e) {
            endWait(System.nanoTime());
            for (int i = 0; i < lanes; i++) {
                if (passes[i] != null) {
                    failedSteps++;
                    experts.exchange(i).close();
                }
            }
            throw e;
        } finally {
            stats.wallNs += System.nanoTime() - mark;
            stats.allocatedBytes += StepStats.allocatedBytes() - b0;
        }
    }

    @SuppressWarnings("unchecked")
    private static List<Chunk>[] newChunkLists(int n) {
        return (List<Chunk>[]) new List<?>[n];
    }

    /**
     * An expert worker this micro-batch waits on is gone: wait (bounded) for the coordinator's placement without it,
     * switch to it and send the missing slots to their new owners. The outputs are the same bits whoever computes
     * them, and those already received are kept, so the step's result does not change.
     */
    private void failover(long step, int i, MoeExchange ex) {
        String why = experts.lostPending(ex);
        long start = System.nanoTime();
        awaitPlacement(step, "layer " + ex.layer + " micro-batch " + i + ": " + why, ex.epoch);
        stats.dispatchBytes += ex.resend(source, experts.map(), experts.links(), expertTimeoutNs);
        failovers++;
        long pause = System.nanoTime() - start;
        log.accept(String.format(Locale.ROOT, "step %d layer %d micro-batch %d: re-dispatched to placement epoch %d"
                + " after %.1f ms", step, ex.layer, i, experts.map().epoch, pause / 1e6));
    }

    /** Waits (bounded by the failover timeout) until the map is newer than {@code epoch} and avoids lost workers. */
    private void awaitPlacement(long step, String why, long epoch) {
        long start = System.nanoTime();
        long deadline = start + failoverTimeoutNs;
        long sentEpoch = epoch;
        log.accept("step " + step + ", " + why + "; waiting for a placement without it");
        while (true) {
            int work = experts.poll();
            experts.refresh(true);
            if (experts.map().epoch > sentEpoch && !experts.mapUsesLost()) {
                break;
            }
            long now = System.nanoTime();
            if (now > deadline) {
                throw new ExpertsUnavailableException("step " + step + ", " + why + "; no placement without it within "
                        + TimeUnit.NANOSECONDS.toMillis(failoverTimeoutNs) + " ms", null, true);
            }
            if (work == 0) {
                idle.idle();
            } else {
                idle.reset();
            }
        }
        stats.waitNs += System.nanoTime() - start;
    }

    private void checkDeadlines(long[] steps, int m, boolean[] waiting, long now) {
        experts.checkLinks();
        experts.refresh(false);
        for (int i = 0; i < m; i++) {
            MoeExchange ex = experts.exchange(i);
            if (waiting[i] && ex.open && ex.failure == null && now > ex.deadlineNs) {
                StringBuilder who = new StringBuilder();
                for (ExpertLink link : experts.links()) {
                    int n = ex.pendingOn(link.index);
                    if (n > 0) {
                        who.append(who.isEmpty() ? "" : ", ").append(link.name()).append(": ").append(n);
                    }
                }
                throw new ExpertsUnavailableException("step " + steps[i] + " layer " + ex.layer + " (micro-batch " + i
                        + "): no answer within " + TimeUnit.NANOSECONDS.toMillis(expertTimeoutNs)
                        + " ms; expert outputs outstanding from " + who, null, true);
            }
        }
    }
}
