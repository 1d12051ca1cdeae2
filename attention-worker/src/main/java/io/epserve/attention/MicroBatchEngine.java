package io.epserve.attention;

import io.epserve.model.engine.Transformer;
import io.epserve.model.engine.Transformer.Chunk;
import io.epserve.model.engine.Transformer.Output;
import io.epserve.model.engine.Transformer.Pass;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
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
    private final Transformer tr;
    private final ExpertClient experts;
    private final int microBatches;
    private final long expertTimeoutNs;
    private final IdleStrategy idle;
    private final StepStats stats;
    private final int source;
    private long nextStep = 1;
    private long failedSteps;

    MicroBatchEngine(Transformer tr, ExpertClient experts, int microBatches, long expertTimeoutNs, IdleStrategy idle,
                     int source) {
        if (microBatches < 1 || microBatches > 4) {
            throw new IllegalArgumentException("micro-batches must be 1..4, got " + microBatches);
        }
        this.tr = tr;
        this.experts = experts;
        this.microBatches = microBatches;
        this.expertTimeoutNs = expertTimeoutNs;
        this.idle = idle;
        this.source = source;
        this.stats = new StepStats(tr.config().nLayers());
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
    public Output step(List<Chunk> chunks, boolean allLogits) {
        long step = nextStep++;
        long t0 = System.nanoTime();
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
        ExpertMap map = experts.map();
        List<ExpertLink> links = experts.links();
        int done = 0;
        try {
            while (done < m) {
                boolean progressed = false;
                for (int i = 0; i < m; i++) {
                    Pass p = passes[i];
                    if (finished[i]) {
                        continue;
                    }
                    MoeExchange ex = experts.exchange(i);
                    if (!waiting[i]) {
                        long a = System.nanoTime();
                        tr.attentionHalf(p);
                        long b = System.nanoTime();
                        stats.dispatchBytes += ex.send(0, source, step, p, map, links, expertTimeoutNs);
                        long c = System.nanoTime();
                        tr.sharedExpert(p);
                        long e = System.nanoTime();
                        stats.attentionNs += b - a;
                        stats.dispatchSendNs += c - b;
                        stats.sharedNs += e - c;
                        stats.dispatched(p, c - b);
                        waiting[i] = true;
                        progressed = true;
                        experts.poll();
                    } else if (ex.failure != null) {
                        throw new ExpertsUnavailableException("step " + step + " failed at layer " + ex.layer
                                + " (micro-batch " + i + "): " + ex.failure);
                    } else if (ex.complete()) {
                        long a = System.nanoTime();
                        stats.combined(p.layer(), a - ex.sentNs, ex.tokens);
                        ex.sumInto(p.routedSums());
                        tr.ffnHalf(p);
                        waiting[i] = false;
                        if (p.done()) {
                            finished[i] = true;
                            done++;
                        }
                        stats.attentionNs += System.nanoTime() - a;
                        progressed = true;
                    }
                }
                if (!progressed) {
                    long a = System.nanoTime();
                    int work = experts.poll();
                    if (work == 0) {
                        checkDeadlines(step, m, waiting, a);
                        idle.idle();
                    } else {
                        idle.reset();
                    }
                    stats.waitNs += System.nanoTime() - a;
                }
            }
        } catch (RuntimeException e) {
            failedSteps++;
            for (int i = 0; i < m; i++) {
                experts.exchange(i).close();
            }
            throw e;
        }
        // One pass over the head weights for all micro-batches (the same bits as one per micro-batch).
        long h = System.nanoTime();
        Output out = tr.end(List.of(passes), allLogits);
        long e = System.nanoTime();
        stats.attentionNs += e - h;
        stats.steps++;
        stats.tokens += tokens;
        stats.wallNs += e - t0;
        return out;
    }

    private void checkDeadlines(long step, int m, boolean[] waiting, long now) {
        experts.checkLinks();
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
                throw new ExpertsUnavailableException("step " + step + " layer " + ex.layer + " (micro-batch " + i
                        + "): no answer within " + TimeUnit.NANOSECONDS.toMillis(expertTimeoutNs)
                        + " ms; expert outputs outstanding from " + who, null, true);
            }
        }
    }
}
