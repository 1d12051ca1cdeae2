package io.epserve.attention;

import java.util.List;

/**
 * Which expert worker computes each (layer, routed expert): the first ready worker, in the order the workers were
 * given, whose placement holds it. Every expert of every layer must be held by some worker.
 */
final class ExpertMap {
    private final int[][] owner;

    ExpertMap(List<ExpertLink> links, int layers, int experts) {
        owner = new int[layers][experts];
        StringBuilder missing = new StringBuilder();
        int nMissing = 0;
        for (int l = 0; l < layers; l++) {
            for (int e = 0; e < experts; e++) {
                owner[l][e] = -1;
                for (ExpertLink link : links) {
                    if (link.placement != null && link.placement.wants(l, e)) {
                        owner[l][e] = link.index;
                        break;
                    }
                }
                if (owner[l][e] < 0) {
                    if (nMissing++ < 8) {
                        missing.append(missing.isEmpty() ? "" : ", ").append("layer ").append(l).append(" expert ").append(e);
                    }
                }
            }
        }
        if (nMissing > 0) {
            throw new IllegalStateException(nMissing + " routed expert(s) are served by no expert worker: " + missing
                    + (nMissing > 8 ? ", ..." : ""));
        }
    }

    /** The link index serving expert e of layer l. */
    int owner(int layer, int expert) {
        return owner[layer][expert];
    }
}
