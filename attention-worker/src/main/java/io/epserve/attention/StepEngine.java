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

    /** The caller's side of a {@link #pipeline} (engine thread). */
    interface Lanes {
        /**
         * The chunks (distinct sequences, none in another lane's pass) of the lane's next pass. {@code last} is the
         * output of the lane's pass that just ended, or null while the lane is idle: before its first pass, and
         * after it returned an empty list (an idle lane is asked again each time another lane's pass ends). The run
         * ends when every lane is idle at once.
         */
        List<Transformer.Chunk> next(int lane, Transformer.Output last);
    }

    /**
     * Runs passes in {@code lanes} (1..4) lanes: each lane's next pass is asked for when its last one ends, and each
     * pass computes what a {@link #step} of its chunks computes. This default runs the passes one after another; an
     * engine with remote experts overlaps them. On failure the passes in progress fail (nothing of them is
     * committed, but their sequences' caches may hold parts of them: drop them); passes already handed to
     * {@code feed} stand.
     */
    default void pipeline(int lanes, boolean allLogits, Lanes feed) {
        List<List<Transformer.Chunk>> next = new java.util.ArrayList<>();
        for (int i = 0; i < lanes; i++) {
            next.add(feed.next(i, null));
        }
        boolean ran = true;
        while (ran) {
            ran = false;
            for (int i = 0; i < lanes; i++) {
                if (next.get(i).isEmpty()) {
                    continue;
                }
                next.set(i, feed.next(i, step(next.get(i), allLogits, 1)));
                ran = true;
                for (int j = 0; j < lanes; j++) {
                    if (j != i && next.get(j).isEmpty()) {
                        next.set(j, feed.next(j, null));
                    }
                }
            }
        }
    }

    StepStats stats();

    long steps();

    long failedSteps();

    /** Steps that lost an expert worker and went on with the experts' new owners (control plane only). */
    default long failovers() {
        return 0;
    }
}
