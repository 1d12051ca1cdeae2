package io.epserve.attention;

import io.epserve.cluster.PlacementTable;
import java.util.List;
import java.util.Map;

/**
 * Which expert worker computes each (layer, routed expert) for this attention worker's steps, as indices into its
 * links. With the control plane it is the current {@link PlacementTable} (an expert with several replicas is spread
 * over them by token, deterministically); without, the first ready worker, in the order the workers were given, that
 * holds the expert. Every expert of every layer has an owner.
 */
final class ExpertMap {
    /** [layer][expert] -> link indices of its replicas. */
    private final int[][][] owners;
    /** The placement epoch (0 without the control plane). */
    final long epoch;

    private ExpertMap(int[][][] owners, long epoch) {
        this.owners = owners;
        this.epoch = epoch;
    }

    /** Without a control plane: the first link, in the given order, whose announced placement holds the expert. */
    static ExpertMap firstHolder(List<ExpertLink> links, int layers, int experts) {
        int[][][] owners = new int[layers][experts][];
        StringBuilder missing = new StringBuilder();
        int nMissing = 0;
        for (int l = 0; l < layers; l++) {
            for (int e = 0; e < experts; e++) {
                for (ExpertLink link : links) {
                    if (link.placement != null && link.placement.wants(l, e)) {
                        owners[l][e] = new int[] {link.index};
                        break;
                    }
                }
                if (owners[l][e] == null && nMissing++ < 8) {
                    missing.append(missing.isEmpty() ? "" : ", ").append("layer ").append(l).append(" expert ").append(e);
                }
            }
        }
        if (nMissing > 0) {
            throw new IllegalStateException(nMissing + " routed expert(s) are served by no expert worker: " + missing
                    + (nMissing > 8 ? ", ..." : ""));
        }
        return new ExpertMap(owners, 0);
    }

    /**
     * The table over the links of its workers; null (not usable yet) unless every worker of the table has a ready,
     * usable link whose announced experts include its share.
     */
    static ExpertMap of(PlacementTable t, Map<Integer, ExpertLink> byWorker) {
        for (int w : t.workers()) {
            ExpertLink link = byWorker.get(w);
            if (link == null || !link.ready || link.lost != null || link.placement == null
                    || !link.placement.containsAll(t.assignment(w))) {
                return null;
            }
        }
        int[][][] owners = new int[t.layerCount()][t.expertsPerLayer()][];
        for (int l = 0; l < owners.length; l++) {
            for (int e = 0; e < owners[l].length; e++) {
                int[] r = t.replicas(l, e);
                owners[l][e] = new int[r.length];
                for (int i = 0; i < r.length; i++) {
                    owners[l][e][i] = byWorker.get(r[i]).index;
                }
            }
        }
        return new ExpertMap(owners, t.epoch());
    }

    /** The link serving expert {@code expert} of {@code layer} for token {@code token} of a micro-batch. */
    int owner(int layer, int expert, int token) {
        int[] o = owners[layer][expert];
        return o.length == 1 ? o[0] : o[token % o.length];
    }

    /** Whether any expert goes to link {@code index}. */
    boolean uses(int index) {
        for (int[][] layer : owners) {
            for (int[] o : layer) {
                for (int i : o) {
                    if (i == index) {
                        return true;
                    }
                }
            }
        }
        return false;
    }
}
