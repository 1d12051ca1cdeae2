package io.epserve.cluster;

import java.util.Arrays;

/**
 * DeepSeek's expert-parallel load balancer (EPLB), ported from {@code deepseek-ai/EPLB/eplb.py}, plus the placement
 * planner our cluster needs on top of it.
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
 * <h2>Our planner ({@link #plan}, {@link #balance}, {@link #moves})</h2>
 *
 * Each expert worker is one "GPU" and its own node, with {@code slotsPerWorker} expert slots per layer; so per layer
 * the global policy runs with {@code workers * slotsPerWorker} replicas on {@code workers} GPUs. Three steps follow,
 * because a worker is a process whose expert weights must be loaded (over the network) before it can serve them:
 *
 * <ol>
 *   <li><b>No worker holds two replicas of one expert when avoidable.</b> EPLB can pack two replicas of an expert
 *       into one GPU (a second copy there buys nothing: the worker serves the expert's tokens either way). Such a
 *       replica is swapped with a replica on another worker that lacks the expert (and whose expert the first worker
 *       lacks), choosing the swap that keeps the heavier of the two workers lightest (ties: lowest worker, then
 *       lowest slot). Each swap removes a duplicate and creates none; a duplicate stays only if no such swap exists
 *       (always when an expert has more replicas than there are workers; it is then listed twice). Not rare: for 64
 *       skewed experts on 8 workers x 9 slots, EPLB co-locates replicas in about half of the random loads tried.
 *   <li><b>Packs are relabelled onto workers to keep weights where they are.</b> EPLB's pack numbering is arbitrary,
 *       so per layer we pick the pack-to-worker permutation that keeps the most (expert, worker) entries of
 *       {@code current}: an exact maximum-weight matching (Hungarian algorithm, O(workers³) per layer). Re-planning
 *       the same load on the same workers therefore moves nothing.
 *   <li><b>Swaps that keep more in place without raising the peak.</b> Relabelling alone keeps little when the
 *       packing itself changes (adding a worker repacks everything: measured, it saves only 15-45% of a fresh
 *       plan's moves). So two replicas on two workers are swapped when that keeps more entries of {@code current},
 *       creates no duplicate, and leaves both workers at or below the layer's busiest worker: for each replica not
 *       kept in turn, the swap keeping the most entries (ties: lowest worker, then lowest slot), in passes until none
 *       is left (each pass O(slots²) per layer). The peak never rises and the mean is fixed, so every layer stays at
 *       least as balanced as step 1 left it. Adding a worker then moves 45-60% of what a fresh plan would (see the
 *       tests); a planner that traded balance for moves could do better, EPLB's packing is kept as is here.
 * </ol>
 *
 * Balance is {@code mean / max} of per-worker token load, an expert's load split evenly over its replicas
 * (1.0 = perfect).
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

    /**
     * Balance of a placement: {@code workerLoad[layer][worker]} (an expert's load split evenly over its replicas),
     * {@code layerBalance[layer] = mean / max} of that row (1.0 for a layer without load), and {@code overall = sum of
     * the layers' means / sum of their maxima} — layers run one after another and each waits for its busiest worker,
     * so this is ideal time over actual time.
     */
    public record Balance(double[][] workerLoad, double[] layerBalance, double overall) {}

    /**
     * {@link #plan}: {@code replicas[layer][expert]} = the workers holding it, ascending (a worker is repeated only if
     * it holds two replicas, see the class comment); {@code moves} = (layer, expert, worker) entries not in the
     * current placement, i.e. expert weights to load; {@code balance} of the given load under this placement.
     */
    public record Plan(int[][][] replicas, int moves, Balance balance) {}

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
    // Our planner

    /**
     * A placement for {@code load[layer][expert]} on {@code workers} expert workers with {@code slotsPerWorker} expert
     * slots each per layer ({@code workers * slotsPerWorker} at least the expert count): EPLB's global policy per
     * layer, duplicates on one worker swapped away, packs relabelled onto workers and replicas swapped to keep as many
     * of {@code current[layer][expert]} (the workers holding each expert now; {@code null} = nothing placed yet, then
     * pack k goes to worker k) as possible without raising a layer's peak (see the class comment). Worker indices in {@code current} at or above {@code workers} (workers going away) are allowed and
     * simply never kept.
     */
    public static Plan plan(double[][] load, int workers, int slotsPerWorker, int[][][] current) {
        int experts = requireMatrix(load, "load");
        if (workers <= 0 || slotsPerWorker <= 0) {
            throw new IllegalArgumentException("workers " + workers + " and slotsPerWorker " + slotsPerWorker
                    + " must be positive");
        }
        long slots = (long) workers * slotsPerWorker;
        if (slots < experts) {
            throw new IllegalArgumentException("slotsPerWorker " + slotsPerWorker + " x workers " + workers + " = "
                    + slots + " slots per layer, fewer than the " + experts + " experts");
        }
        if (slots > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("slotsPerWorker " + slotsPerWorker + " x workers " + workers
                    + " overflows an int");
        }
        requirePlacement(current, "current", load.length, experts, Integer.MAX_VALUE);
        int layers = load.length;
        int[][][] replicas = new int[layers][][];
        for (int l = 0; l < layers; l++) {
            LayerPlan eplb = hierarchical(toFloat(load[l], "load[" + l + "]"), (int) slots, 1, 1, workers);
            int[][] packs = new int[workers][];
            for (int k = 0; k < workers; k++) {
                packs[k] = Arrays.copyOfRange(eplb.phy2log, k * slotsPerWorker, (k + 1) * slotsPerWorker);
            }
            double[] share = new double[experts];
            for (int e = 0; e < experts; e++) {
                share[e] = load[l][e] / eplb.logcnt[e];
            }
            separateReplicas(packs, share);
            if (current == null) {
                replicas[l] = toReplicas(packs, experts);
                continue;
            }
            int[][] held = new int[workers][experts]; // replicas of each expert each worker holds now
            for (int e = 0; e < experts; e++) {
                for (int w : current[l][e]) {
                    if (w < workers) {
                        held[w][e]++;
                    }
                }
            }
            int[] workerOfPack = maxAssignment(kept(packs, held));
            int[][] byWorker = new int[workers][];
            for (int k = 0; k < workers; k++) {
                byWorker[workerOfPack[k]] = packs[k];
            }
            keepMoreInPlace(byWorker, share, held);
            replicas[l] = toReplicas(byWorker, experts);
        }
        return new Plan(replicas, moves(current, replicas), balance(load, replicas, workers));
    }

    /**
     * Swaps replicas between packs until no pack holds an expert twice, or no swap can fix one: a duplicate of e in
     * pack p trades places with a replica x in a pack q that lacks e, where p lacks x's expert, picking the swap with
     * the lightest heavier pack afterwards (ties: lowest q, then lowest position in q).
     */
    private static void separateReplicas(int[][] packs, double[] share) {
        int n = packs.length;
        double[] packLoad = new double[n];
        int[][] count = new int[n][share.length];
        for (int k = 0; k < n; k++) {
            for (int e : packs[k]) {
                packLoad[k] += share[e];
                count[k][e]++;
            }
        }
        boolean changed = true;
        while (changed) {
            changed = false;
            for (int p = 0; p < n; p++) {
                for (int i = 0; i < packs[p].length; i++) {
                    int e = packs[p][i];
                    if (count[p][e] < 2) {
                        continue;
                    }
                    int bestQ = -1;
                    int bestJ = -1;
                    double bestPeak = Double.POSITIVE_INFINITY;
                    for (int q = 0; q < n; q++) {
                        if (q == p || count[q][e] > 0) {
                            continue;
                        }
                        for (int j = 0; j < packs[q].length; j++) {
                            int x = packs[q][j];
                            if (count[p][x] > 0) {
                                continue;
                            }
                            double delta = share[x] - share[e];
                            double peak = Math.max(packLoad[p] + delta, packLoad[q] - delta);
                            if (peak < bestPeak) {
                                bestPeak = peak;
                                bestQ = q;
                                bestJ = j;
                            }
                        }
                    }
                    if (bestQ < 0) {
                        continue; // unavoidable here: every other pack already holds e, or holds only p's experts
                    }
                    int x = packs[bestQ][bestJ];
                    packs[p][i] = x;
                    packs[bestQ][bestJ] = e;
                    count[p][e]--;
                    count[p][x]++;
                    count[bestQ][x]--;
                    count[bestQ][e]++;
                    double delta = share[x] - share[e];
                    packLoad[p] += delta;
                    packLoad[bestQ] -= delta;
                    changed = true;
                }
            }
        }
    }

    /** {@code [pack][worker]}: the entries of {@code held} kept if that worker takes that pack. */
    private static int[][] kept(int[][] packs, int[][] held) {
        int n = packs.length;
        int[][] kept = new int[n][n];
        for (int k = 0; k < n; k++) {
            int[] need = new int[held[0].length];
            for (int e : packs[k]) {
                need[e]++;
            }
            for (int w = 0; w < n; w++) {
                for (int e = 0; e < need.length; e++) {
                    kept[k][w] += Math.min(need[e], held[w][e]);
                }
            }
        }
        return kept;
    }

    /**
     * After the relabelling: swaps replicas between two workers when that keeps more entries of {@code held} in place,
     * creates no duplicate, and leaves both workers at or below the layer's peak load. The peak never rises and the
     * mean is fixed, so the layer's balance stays at least what EPLB gave. Every swap keeps at least one more entry,
     * so this ends. A replica not held where it sits is tried against the workers holding its expert now.
     */
    private static void keepMoreInPlace(int[][] byWorker, double[] share, int[][] held) {
        int n = byWorker.length;
        int experts = share.length;
        double[] load = new double[n];
        int[][] need = new int[n][experts];
        for (int w = 0; w < n; w++) {
            for (int e : byWorker[w]) {
                load[w] += share[e];
                need[w][e]++;
            }
        }
        double peak = Arrays.stream(load).max().orElse(0);
        boolean changed = true;
        while (changed) {
            changed = false;
            for (int a = 0; a < n; a++) {
                for (int i = 0; i < byWorker[a].length; i++) {
                    int x = byWorker[a][i];
                    if (need[a][x] <= held[a][x]) {
                        continue; // this replica is already where a current one is
                    }
                    int bestB = -1;
                    int bestJ = -1;
                    int bestGain = 0;
                    for (int b = 0; b < n; b++) {
                        if (b == a || need[b][x] > 0) {
                            continue; // would put two replicas of x on b
                        }
                        for (int j = 0; j < byWorker[b].length; j++) {
                            int y = byWorker[b][j];
                            if (y == x || need[a][y] > 0) {
                                continue; // would put two replicas of y on a
                            }
                            double delta = share[y] - share[x];
                            if (load[a] + delta > peak || load[b] - delta > peak) {
                                continue;
                            }
                            // x is not kept on a, so moving it loses nothing; y may be kept on b
                            int gain = (held[b][x] > 0 ? 1 : 0) + (held[a][y] > 0 ? 1 : 0)
                                    - (need[b][y] <= held[b][y] ? 1 : 0);
                            if (gain > bestGain) {
                                bestGain = gain;
                                bestB = b;
                                bestJ = j;
                            }
                        }
                    }
                    if (bestB < 0) {
                        continue;
                    }
                    int y = byWorker[bestB][bestJ];
                    byWorker[a][i] = y;
                    byWorker[bestB][bestJ] = x;
                    need[a][x]--;
                    need[a][y]++;
                    need[bestB][y]--;
                    need[bestB][x]++;
                    double delta = share[y] - share[x];
                    load[a] += delta;
                    load[bestB] -= delta;
                    changed = true;
                }
            }
        }
    }

    /**
     * Hungarian algorithm (the shortest-augmenting-path form with potentials, O(n³)) on an n x n gain matrix: the
     * column of each row maximising the total gain.
     */
    static int[] maxAssignment(int[][] gain) {
        int n = gain.length;
        // 1-based; column 0 is a virtual start. Minimises cost = -gain.
        long[] u = new long[n + 1];
        long[] v = new long[n + 1];
        int[] rowOfCol = new int[n + 1];
        int[] prev = new int[n + 1];
        for (int row = 1; row <= n; row++) {
            rowOfCol[0] = row;
            int col = 0;
            long[] minSlack = new long[n + 1];
            Arrays.fill(minSlack, Long.MAX_VALUE);
            boolean[] used = new boolean[n + 1];
            do {
                used[col] = true;
                int r = rowOfCol[col];
                long delta = Long.MAX_VALUE;
                int next = 0;
                for (int c = 1; c <= n; c++) {
                    if (!used[c]) {
                        long slack = -gain[r - 1][c - 1] - u[r] - v[c];
                        if (slack < minSlack[c]) {
                            minSlack[c] = slack;
                            prev[c] = col;
                        }
                        if (minSlack[c] < delta) {
                            delta = minSlack[c];
                            next = c;
                        }
                    }
                }
                for (int c = 0; c <= n; c++) {
                    if (used[c]) {
                        u[rowOfCol[c]] += delta;
                        v[c] -= delta;
                    } else {
                        minSlack[c] -= delta;
                    }
                }
                col = next;
            } while (rowOfCol[col] != 0);
            do { // flip the augmenting path
                int p = prev[col];
                rowOfCol[col] = rowOfCol[p];
                col = p;
            } while (col != 0);
        }
        int[] colOfRow = new int[n];
        for (int c = 1; c <= n; c++) {
            colOfRow[rowOfCol[c] - 1] = c - 1;
        }
        return colOfRow;
    }

    /** {@code byWorker[worker]} = its experts -> {@code [expert]} = its workers, ascending. */
    private static int[][] toReplicas(int[][] byWorker, int experts) {
        int[] count = new int[experts];
        for (int[] pack : byWorker) {
            for (int e : pack) {
                count[e]++;
            }
        }
        int[][] out = new int[experts][];
        for (int e = 0; e < experts; e++) {
            out[e] = new int[count[e]];
            count[e] = 0;
        }
        for (int w = 0; w < byWorker.length; w++) {
            for (int e : byWorker[w]) {
                out[e][count[e]++] = w;
            }
        }
        for (int[] row : out) {
            Arrays.sort(row);
        }
        return out;
    }

    /**
     * Entries of {@code to} (layer, expert, worker; counted with multiplicity) not in {@code from}: the expert
     * weights a switch from {@code from} to {@code to} must load. {@code from == null}: every entry of {@code to}.
     */
    public static int moves(int[][][] from, int[][][] to) {
        if (to == null) {
            throw new IllegalArgumentException("to must not be null");
        }
        int layers = to.length;
        int experts = layers == 0 || to[0] == null ? 0 : to[0].length;
        requirePlacement(to, "to", layers, experts, Integer.MAX_VALUE);
        requirePlacement(from, "from", layers, experts, Integer.MAX_VALUE);
        int added = 0;
        for (int l = 0; l < layers; l++) {
            for (int e = 0; e < to[l].length; e++) {
                int[] was = from == null ? new int[0] : from[l][e].clone();
                Arrays.sort(was);
                int[] now = to[l][e].clone();
                Arrays.sort(now);
                // multiset difference of two sorted arrays
                int i = 0;
                for (int w : now) {
                    while (i < was.length && was[i] < w) {
                        i++;
                    }
                    if (i < was.length && was[i] == w) {
                        i++;
                    } else {
                        added++;
                    }
                }
            }
        }
        return added;
    }

    /**
     * The balance of any placement ({@code replicas[layer][expert]} = worker indices in [0, workers)) under
     * {@code load[layer][expert]}; an expert with load must have a replica.
     */
    public static Balance balance(double[][] load, int[][][] replicas, int workers) {
        int experts = requireMatrix(load, "load");
        if (workers <= 0) {
            throw new IllegalArgumentException("workers " + workers + " must be positive");
        }
        if (replicas == null) {
            throw new IllegalArgumentException("replicas must not be null");
        }
        requirePlacement(replicas, "replicas", load.length, experts, workers);
        int layers = load.length;
        double[][] workerLoad = new double[layers][workers];
        double[] layerBalance = new double[layers];
        double sumMean = 0;
        double sumMax = 0;
        for (int l = 0; l < layers; l++) {
            for (int e = 0; e < experts; e++) {
                int[] at = replicas[l][e];
                if (at.length == 0 && load[l][e] > 0) {
                    throw new IllegalArgumentException("replicas[" + l + "][" + e + "] is empty but load[" + l + "]["
                            + e + "] = " + load[l][e]);
                }
                for (int w : at) {
                    workerLoad[l][w] += load[l][e] / at.length;
                }
            }
            double max = Arrays.stream(workerLoad[l]).max().orElse(0);
            double mean = Arrays.stream(workerLoad[l]).sum() / workers;
            layerBalance[l] = max == 0 ? 1.0 : mean / max;
            sumMean += mean;
            sumMax += max;
        }
        return new Balance(workerLoad, layerBalance, sumMax == 0 ? 1.0 : sumMean / sumMax);
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

    /** Checks a placement [layers][experts][replicas] of worker indices in [0, maxWorker); null passes. */
    private static void requirePlacement(int[][][] p, String name, int layers, int experts, int maxWorker) {
        if (p == null) {
            return;
        }
        if (p.length != layers) {
            throw new IllegalArgumentException(name + " has " + p.length + " layers, expected " + layers);
        }
        for (int l = 0; l < p.length; l++) {
            if (p[l] == null || p[l].length != experts) {
                throw new IllegalArgumentException(name + "[" + l + "] has " + (p[l] == null ? "no" : p[l].length)
                        + " experts, expected " + experts);
            }
            for (int e = 0; e < p[l].length; e++) {
                if (p[l][e] == null) {
                    throw new IllegalArgumentException(name + "[" + l + "][" + e + "] is null (use an empty array)");
                }
                for (int w : p[l][e]) {
                    if (w < 0 || w >= maxWorker) {
                        throw new IllegalArgumentException(name + "[" + l + "][" + e + "] holds worker " + w
                                + ", outside [0, " + maxWorker + ")");
                    }
                }
            }
        }
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
