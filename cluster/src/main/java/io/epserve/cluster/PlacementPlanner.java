package io.epserve.cluster;

import java.util.Arrays;
import java.util.Set;
import java.util.stream.IntStream;

/**
 * The coordinator's placement decisions, as pure functions of worker ids, the current table and the measured load
 * (routed tokens per [layer][expert]; uniform when nothing is measured yet):
 *
 * <ul>
 *   <li>{@link #plan}: DeepSeek's EPLB ({@link Eplb}) over the given workers, each with the same number of expert slots
 *       per layer ({@link #slotsPerWorker}), relabelled to move as few experts as it can from the current table;
 *   <li>{@link #withoutWorkers}: the smallest change that stops using some workers (failed or draining): an expert
 *       that still has a replica elsewhere just loses one; an expert with none left goes to the remaining worker with
 *       the least load in that layer. Nothing else moves, so a failover maps only the lost experts.
 * </ul>
 */
public final class PlacementPlanner {
    private PlacementPlanner() {
    }

    /** Expert slots per worker and layer: enough for every expert, plus {@code redundant} replica slots each. */
    public static int slotsPerWorker(int experts, int workers, int redundant) {
        return (experts + workers - 1) / workers + redundant;
    }

    /** Uniform load: what EPLB balances before anything is measured. */
    public static double[][] uniform(int layers, int experts) {
        double[][] w = new double[layers][experts];
        for (double[] row : w) {
            Arrays.fill(row, 1);
        }
        return w;
    }

    /**
     * EPLB over {@code workers} (ids, ascending), keeping as much of {@code current} (may be null) as it can.
     *
     * @return [layer][expert] -> worker ids
     */
    public static int[][][] plan(double[][] load, int[] workers, int redundant, PlacementTable current) {
        int layers = load.length;
        int experts = load[0].length;
        int slots = slotsPerWorker(experts, workers.length, redundant);
        int[][][] cur = current == null ? null : toIndices(current, workers);
        Eplb.Plan p = Eplb.plan(load, workers.length, slots, cur);
        int[][][] byIndex = p.replicas();
        int[][][] out = new int[layers][experts][];
        for (int l = 0; l < layers; l++) {
            for (int e = 0; e < experts; e++) {
                // EPLB may give a very hot expert more replicas than there are workers; two on one worker are one.
                out[l][e] = Arrays.stream(byIndex[l][e]).map(i -> workers[i]).distinct().sorted().toArray();
            }
        }
        return out;
    }

    /** The current table's replicas as indices into {@code workers}; replicas on other workers are left out. */
    static int[][][] toIndices(PlacementTable t, int[] workers) {
        int[][][] out = new int[t.layerCount()][t.expertsPerLayer()][];
        for (int l = 0; l < out.length; l++) {
            for (int e = 0; e < out[l].length; e++) {
                out[l][e] = Arrays.stream(t.replicas(l, e)).map(w -> Arrays.binarySearch(workers, w))
                        .filter(i -> i >= 0).toArray();
            }
        }
        return out;
    }

    /**
     * {@code current} without the {@code gone} workers; experts left with no replica go, layer by layer, to the
     * {@code remaining} worker (ids, ascending; must be non-empty) with the least load in that layer (ties: fewest
     * experts, then lowest id).
     */
    public static int[][][] withoutWorkers(PlacementTable current, Set<Integer> gone, int[] remaining, double[][] load) {
        if (remaining.length == 0) {
            throw new IllegalArgumentException("no expert worker remains to take the experts");
        }
        int[][][] r = current.replicas();
        for (int l = 0; l < r.length; l++) {
            double[] workerLoad = new double[remaining.length];
            int[] held = new int[remaining.length];
            int[][] kept = new int[r[l].length][];
            for (int e = 0; e < r[l].length; e++) {
                kept[e] = Arrays.stream(r[l][e]).filter(w -> !gone.contains(w)
                        && Arrays.binarySearch(remaining, w) >= 0).toArray();
                for (int w : kept[e]) {
                    int i = Arrays.binarySearch(remaining, w);
                    workerLoad[i] += load[l][e] / kept[e].length;
                    held[i]++;
                }
            }
            // Heaviest orphans first, so they spread before the light ones fill the gaps.
            double[] layerLoad = load[l];
            Integer[] orphans = IntStream.range(0, r[l].length).filter(e -> kept[e].length == 0).boxed()
                    .sorted((a, b) -> Double.compare(layerLoad[b], layerLoad[a])).toArray(Integer[]::new);
            for (int e : orphans) {
                int best = 0;
                for (int i = 1; i < remaining.length; i++) {
                    if (workerLoad[i] < workerLoad[best]
                            || (workerLoad[i] == workerLoad[best] && held[i] < held[best])) {
                        best = i;
                    }
                }
                kept[e] = new int[] {remaining[best]};
                workerLoad[best] += load[l][e];
                held[best]++;
            }
            r[l] = kept;
        }
        return r;
    }

    /** Mean over max of the per-worker token load (1 = perfectly balanced), over all layers. */
    public static double balance(double[][] load, PlacementTable t) {
        int[] workers = t.workers();
        return Eplb.balance(load, toIndices(t, workers), workers.length).overall();
    }

    /** Per-worker token load of {@code t} (an expert's load split evenly over its replicas), summed over layers. */
    public static double[] workerLoad(double[][] load, PlacementTable t) {
        int[] workers = t.workers();
        double[] w = new double[workers.length];
        for (double[] layer : Eplb.balance(load, toIndices(t, workers), workers.length).workerLoad()) {
            for (int i = 0; i < w.length; i++) {
                w[i] += layer[i];
            }
        }
        return w;
    }
}
