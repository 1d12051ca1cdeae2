package io.epserve.cluster;

import java.util.Arrays;

/**
 * DeepSeek's expert-parallel load balancer (EPLB), ported from {@code deepseek-ai/EPLB/eplb.py}.
 *
 * <h2>The port ({@link #balancedPacking}, {@link #replicateExperts}, {@link #rebalance})</h2>
 *
 * Same algorithm, same outputs as {@code rebalance_experts}: the hierarchical policy (expert groups packed onto nodes,
 * experts replicated within each node, replicas packed onto that node's GPUs) when {@code numGroups % numNodes == 0},
 * else the global policy (the same with one group and one node). Rules that decide ties, chosen to match the reference:
 *
 * <ul>
 *   <li><b>Arithmetic is float32.</b> The reference runs {@code weight.float()}: replica loads ({@code load / count})
 *       and pack sums are float32, so near-ties fall the same way only if we round the same way. Java float operations
 *       are IEEE binary32 like torch's on CPU. One residue: torch sums a group's loads in its own (vectorised) order,
 *       so for non-integer loads a group sum may differ in the last bit; integer token counts sum exactly in both.
 *   <li><b>Packing order:</b> items by weight descending, equal weights by ascending index (a stable sort). torch's
 *       default {@code sort} on CPU is {@code std::sort}: stable for rows of at most 16 items (insertion sort), in an
 *       unspecified order beyond. Replicas of one expert always tie; their order only decides which replica
 *       <em>rank</em> lands in which pack, so {@code phy2log} and {@code logcnt} still match the reference and
 *       {@code log2phy} matches up to the order of an expert's replica slots. Equal loads (or loads per replica) of
 *       different experts in rows over 16 items are the one case where the reference's own choice is unspecified.
 *   <li><b>Lightest pack:</b> the lowest pack index among equally light packs with room (Python's {@code min}).
 *   <li><b>One item per pack:</b> item i goes to pack i, without sorting (the reference's shortcut; the greedy would put
 *       the heaviest item in pack 0).
 *   <li><b>Replication:</b> the extra replica goes to the expert with the largest load per replica, the lowest expert
 *       index among equals ({@code torch.max} returns the first maximum).
 * </ul>
 *
 * <p>All methods are pure and validate their arguments ({@link IllegalArgumentException} naming the argument).
 */
public final class Eplb {
    private Eplb() {}

    /** {@link #balancedPacking}: the pack of each item, and its rank (arrival order) in that pack. */
    public record Packing(int[] pack, int[] rankInPack) {}

    /**
     * {@link #replicateExperts}: the logical expert of each physical slot, the slot's replica rank among that expert's
     * replicas, and the replica count of each logical expert.
     */
    public record Replication(int[] phy2log, int[] rank, int[] logcnt) {}

    /**
     * {@link #rebalance}, as the reference's {@code rebalance_experts}: {@code phy2log[layer][slot]} (slot / (slots
     * per GPU) = GPU), {@code log2phy[layer][expert][rank]} (the expert's slots, -1 padded to the largest replica
     * count over all layers) and {@code logcnt[layer][expert]}.
     */
    public record Rebalance(int[][] phy2log, int[][][] log2phy, int[][] logcnt) {}

    // ---------------------------------------------------------------------------------------------------------------
    // The port of eplb.py

    /**
     * {@code balanced_packing} for one row: {@code weights.length} items into {@code numPacks} packs of exactly
     * {@code weights.length / numPacks} items each, heaviest first into the lightest pack with room.
     */
    public static Packing balancedPacking(double[] weights, int numPacks) {
        float[] w = toFloat(requireLoads(weights, "weights"), "weights");
        if (numPacks <= 0 || w.length % numPacks != 0) {
            throw new IllegalArgumentException("numPacks " + numPacks + " must be positive and divide the "
                    + w.length + " weights");
        }
        return pack(w, numPacks);
    }

    /**
     * {@code replicate_experts} for one row: {@code numPhysical} slots for {@code weights.length} logical experts,
     * slot i < logical count holding expert i, each further slot a replica of the expert with the largest load per
     * replica at that point (minimising the largest replica load).
     */
    public static Replication replicateExperts(double[] weights, int numPhysical) {
        float[] w = toFloat(requireLoads(weights, "weights"), "weights");
        if (numPhysical < w.length) {
            throw new IllegalArgumentException("numPhysical " + numPhysical + " is below the " + w.length
                    + " logical experts");
        }
        return replicate(w, numPhysical);
    }

    /**
     * {@code rebalance_experts}: {@code weight[layer][logical expert]} = estimated load; {@code numReplicas} physical
     * slots per layer (a multiple of {@code numGpus}, at least the expert count); hierarchical policy if
     * {@code numGroups % numNodes == 0} (then the experts must split into {@code numGroups} equal groups and
     * {@code numGpus} into {@code numNodes} equal nodes), else global.
     */
    public static Rebalance rebalance(double[][] weight, int numReplicas, int numGroups, int numNodes, int numGpus) {
        int experts = requireMatrix(weight, "weight");
        if (numGroups <= 0 || numNodes <= 0 || numGpus <= 0) {
            throw new IllegalArgumentException("numGroups " + numGroups + ", numNodes " + numNodes + ", numGpus "
                    + numGpus + ": all must be positive");
        }
        if (numReplicas < experts || numReplicas % numGpus != 0) {
            throw new IllegalArgumentException("numReplicas " + numReplicas + " must be at least the " + experts
                    + " logical experts and a multiple of numGpus " + numGpus);
        }
        boolean hierarchical = numGroups % numNodes == 0;
        if (hierarchical && experts % numGroups != 0) {
            throw new IllegalArgumentException("numGroups " + numGroups + " must divide the " + experts
                    + " logical experts");
        }
        if (hierarchical && numGpus % numNodes != 0) {
            throw new IllegalArgumentException("numGpus " + numGpus + " must be a multiple of numNodes " + numNodes);
        }
        int layers = weight.length;
        LayerPlan[] plans = new LayerPlan[layers];
        int maxCount = 0;
        for (int l = 0; l < layers; l++) {
            float[] w = toFloat(weight[l], "weight[" + l + "]");
            plans[l] = hierarchical
                    ? hierarchical(w, numReplicas, numGroups, numNodes, numGpus)
                    : hierarchical(w, numReplicas, 1, 1, numGpus);
            for (int c : plans[l].logcnt) {
                maxCount = Math.max(maxCount, c);
            }
        }
        int[][] phy2log = new int[layers][];
        int[][] logcnt = new int[layers][];
        int[][][] log2phy = new int[layers][experts][maxCount];
        for (int l = 0; l < layers; l++) {
            phy2log[l] = plans[l].phy2log;
            logcnt[l] = plans[l].logcnt;
            for (int[] row : log2phy[l]) {
                Arrays.fill(row, -1);
            }
            for (int slot = 0; slot < numReplicas; slot++) {
                log2phy[l][phy2log[l][slot]][plans[l].phyRank[slot]] = slot;
            }
        }
        return new Rebalance(phy2log, log2phy, logcnt);
    }

    /** One layer of {@code rebalance_experts_hierarchical}: the expert and replica rank of each slot, replica counts. */
    private record LayerPlan(int[] phy2log, int[] phyRank, int[] logcnt) {}

    private static LayerPlan hierarchical(float[] w, int numPhysical, int numGroups, int numNodes, int numGpus) {
        int experts = w.length;
        int groupSize = experts / numGroups;
        int groupsPerNode = numGroups / numNodes;
        int expertsPerNode = experts / numNodes;
        int physicalPerNode = numPhysical / numNodes;
        int physicalPerGpu = numPhysical / numGpus;

        // Step 1: pack whole groups onto nodes (group-limited routing then mostly stays inside a node). Renumber the
        // experts node-major ("mlog": node, then the group's rank in the node, then the expert's offset in the group).
        float[] groupLoad = new float[numGroups];
        for (int e = 0; e < experts; e++) {
            groupLoad[e / groupSize] += w[e];
        }
        Packing groups = pack(groupLoad, numNodes);
        int[] mlog2log = new int[experts];
        for (int e = 0; e < experts; e++) {
            int g = e / groupSize;
            mlog2log[(groups.pack[g] * groupsPerNode + groups.rankInPack[g]) * groupSize + e % groupSize] = e;
        }

        int[] phy2log = new int[numPhysical];
        int[] phyRank = new int[numPhysical];
        int[] logcnt = new int[experts];
        for (int node = 0; node < numNodes; node++) {
            // Step 2: replicate within the node.
            float[] nodeLoad = new float[expertsPerNode];
            for (int j = 0; j < expertsPerNode; j++) {
                nodeLoad[j] = w[mlog2log[node * expertsPerNode + j]];
            }
            Replication rep = replicate(nodeLoad, physicalPerNode);
            // Step 3: pack the node's replicas onto its GPUs, a replica weighing its expert's load / replica count.
            float[] replicaLoad = new float[physicalPerNode];
            for (int k = 0; k < physicalPerNode; k++) {
                replicaLoad[k] = nodeLoad[rep.phy2log[k]] / rep.logcnt[rep.phy2log[k]];
            }
            Packing gpus = pack(replicaLoad, numGpus / numNodes);
            for (int k = 0; k < physicalPerNode; k++) {
                int slot = node * physicalPerNode + gpus.pack[k] * physicalPerGpu + gpus.rankInPack[k];
                phy2log[slot] = mlog2log[node * expertsPerNode + rep.phy2log[k]];
                phyRank[slot] = rep.rank[k];
            }
            for (int j = 0; j < expertsPerNode; j++) {
                logcnt[mlog2log[node * expertsPerNode + j]] = rep.logcnt[j];
            }
        }
        return new LayerPlan(phy2log, phyRank, logcnt);
    }

    private static Packing pack(float[] w, int numPacks) {
        int n = w.length;
        int perPack = n / numPacks;
        int[] pack = new int[n];
        int[] rank = new int[n];
        if (perPack == 1) {
            // The reference's shortcut: item i -> pack i.
            for (int i = 0; i < n; i++) {
                pack[i] = i;
            }
            return new Packing(pack, rank);
        }
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        // Arrays.sort on objects is stable: equal weights keep ascending index.
        Arrays.sort(order, (a, b) -> w[a] > w[b] ? -1 : w[a] < w[b] ? 1 : 0);
        float[] packLoad = new float[numPacks];
        int[] packItems = new int[numPacks];
        for (int item : order) {
            int best = -1;
            for (int p = 0; p < numPacks; p++) {
                if (packItems[p] < perPack && (best < 0 || packLoad[p] < packLoad[best])) {
                    best = p;
                }
            }
            pack[item] = best;
            rank[item] = packItems[best]++;
            packLoad[best] += w[item];
        }
        return new Packing(pack, rank);
    }

    private static Replication replicate(float[] w, int numPhysical) {
        int experts = w.length;
        int[] phy2log = new int[numPhysical];
        int[] rank = new int[numPhysical];
        int[] logcnt = new int[experts];
        Arrays.fill(logcnt, 1);
        for (int i = 0; i < experts; i++) {
            phy2log[i] = i;
        }
        for (int i = experts; i < numPhysical; i++) {
            int best = 0;
            for (int e = 1; e < experts; e++) {
                if (w[e] / logcnt[e] > w[best] / logcnt[best]) {
                    best = e;
                }
            }
            phy2log[i] = best;
            rank[i] = logcnt[best]++;
        }
        return new Replication(phy2log, rank, logcnt);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Argument checks

    private static double[] requireLoads(double[] row, String name) {
        if (row == null || row.length == 0) {
            throw new IllegalArgumentException(name + " must be a non-empty array");
        }
        for (int i = 0; i < row.length; i++) {
            if (!(row[i] >= 0) || Double.isInfinite(row[i])) {
                throw new IllegalArgumentException(name + "[" + i + "] = " + row[i] + " is not a finite load >= 0");
            }
        }
        return row;
    }

    /** Checks a [layers][experts] load matrix; returns the expert count. */
    private static int requireMatrix(double[][] m, String name) {
        if (m == null || m.length == 0) {
            throw new IllegalArgumentException(name + " must have at least one layer");
        }
        for (int l = 0; l < m.length; l++) {
            requireLoads(m[l], name + "[" + l + "]");
            if (m[l].length != m[0].length) {
                throw new IllegalArgumentException(name + "[" + l + "] has " + m[l].length + " experts, "
                        + name + "[0] has " + m[0].length);
            }
        }
        return m[0].length;
    }

    private static float[] toFloat(double[] row, String name) {
        float[] f = new float[row.length];
        for (int i = 0; i < row.length; i++) {
            f[i] = (float) row[i];
            if (Float.isInfinite(f[i])) {
                throw new IllegalArgumentException(name + "[" + i + "] = " + row[i] + " overflows float32");
            }
        }
        return f;
    }
}
