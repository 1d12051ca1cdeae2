package io.epserve.attention;

import io.epserve.model.engine.Transformer;
import java.util.List;

/** Steps with every expert in this process (`epserve up --single-process`): the single-process engine's forward. */
final class LocalStepEngine implements StepEngine {
    private final Transformer tr;
    private final StepStats stats;
    private long steps;

    LocalStepEngine(Transformer tr) {
        this.tr = tr;
        this.stats = new StepStats(tr.config().nLayers());
    }

    @Override
    public Transformer transformer() {
        return tr;
    }

    @Override
    public Transformer.Output step(List<Transformer.Chunk> chunks, boolean allLogits, int microBatches) {
        long t0 = System.nanoTime();
        long b0 = StepStats.allocatedBytes();
        Transformer.Output out = tr.forward(chunks, allLogits, false);
        stats.allocatedBytes += StepStats.allocatedBytes() - b0;
        long ns = System.nanoTime() - t0;
        steps++;
        stats.steps++;
        stats.tokens += out.tokens();
        stats.attentionNs += ns;
        stats.wallNs += ns;
        return out;
    }

    @Override
    public int microBatches() {
        return 1;
    }

    @Override
    public StepStats stats() {
        return stats;
    }

    @Override
    public long steps() {
        return steps;
    }

    @Override
    public long failedSteps() {
        return 0;
    }
}
