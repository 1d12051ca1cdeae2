package io.epserve.attention;

import io.epserve.model.engine.Transformer;
import java.util.List;

/** Runs batched steps for the worker: with the routed experts on expert workers, or in this process. */
interface StepEngine {
    Transformer transformer();

    /**
     * One step over the chunks (distinct sequences), the same result as {@link Transformer#forward}. On failure
     * ({@link ExpertsUnavailableException}) nothing is committed, but the sequences' caches may hold parts of it.
     */
    default Transformer.Output step(List<Transformer.Chunk> chunks, boolean allLogits) {
        return step(chunks, allLogits, microBatches());
    }

    /** {@link #step(List, boolean)} cut into {@code microBatches} (1..4) micro-batches; ignored where nothing is remote. */
    Transformer.Output step(List<Transformer.Chunk> chunks, boolean allLogits, int microBatches);

    int microBatches();

    StepStats stats();

    long steps();

    long failedSteps();

    /** Steps that lost an expert worker and went on with the experts' new owners (control plane only). */
    default long failovers() {
        return 0;
    }
}
