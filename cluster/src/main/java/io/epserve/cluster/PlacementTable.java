package io.epserve.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.util.Arrays;
import java.util.Locale;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The cluster's live placement: for each layer (the MTP block last) and each logical routed expert, the expert
 * workers (by worker id, ascending) that hold a replica of it, versioned by an epoch. The coordinator publishes a new
 * table only after every worker in it holds its share; attention workers switch tables between steps. Immutable.
 *
 * <p>Stored in Hazelcast as JSON: {@code {"epoch": 3, "mtp": true, "replicas": [[[0], [1, 2]], ...]}}.
 */
public final class PlacementTable {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final long epoch;
    private final boolean mtp;
    private final int[][][] replicas;

    /** @param replicas [layer][expert] -> worker ids; copied, each list sorted; every expert needs one replica */
    public PlacementTable(long epoch, boolean mtp, int[][][] replicas) {
        if (epoch < 1) {
            throw new IllegalArgumentException("placement epochs start at 1, got " + epoch);
        }
        if (replicas.length == 0) {
            throw new IllegalArgumentException("a placement table needs at least one layer");
        }
        this.epoch = epoch;
        this.mtp = mtp;
        this.replicas = new int[replicas.length][][];
        for (int l = 0; l < replicas.length; l++) {
            if (replicas[l].length != replicas[0].length) {
                throw new IllegalArgumentException("layer " + l + " has " + replicas[l].length + " experts, layer 0 "
                        + replicas[0].length);
            }
            this.replicas[l] = new int[replicas[l].length][];
            for (int e = 0; e < replicas[l].length; e++) {
                int[] r = replicas[l][e].clone();
                Arrays.sort(r);
                if (r.length == 0) {
                    throw new IllegalArgumentException("expert " + e + " of layer " + l + " has no replica");
                }
                for (int i = 1; i < r.length; i++) {
                    if (r[i] == r[i - 1]) {
                        throw new IllegalArgumentException("expert " + e + " of layer " + l + " lists worker " + r[i]
                                + " twice");
                    }
                }
                this.replicas[l][e] = r;
            }
        }
    }

    public long epoch() {
        return epoch;
    }

    public boolean mtp() {
        return mtp;
    }

    public int layerCount() {
        return replicas.length;
    }

    public int expertsPerLayer() {
        return replicas[0].length;
    }

    /** The workers holding expert {@code e} of layer {@code l}, ascending; do not modify. */
    public int[] replicas(int l, int e) {
        return replicas[l][e];
    }

    /** A copy of the whole [layer][expert] -> workers array. */
    public int[][][] replicas() {
        int[][][] copy = new int[replicas.length][][];
        for (int l = 0; l < replicas.length; l++) {
            copy[l] = new int[replicas[l].length][];
            for (int e = 0; e < replicas[l].length; e++) {
                copy[l][e] = replicas[l][e].clone();
            }
        }
        return copy;
    }

    /** The same placement under another epoch. */
    public PlacementTable withEpoch(long newEpoch) {
        return new PlacementTable(newEpoch, mtp, replicas);
    }

    /** Every worker id in the table, ascending. */
    public int[] workers() {
        TreeSet<Integer> ids = new TreeSet<>();
        for (int[][] layer : replicas) {
            for (int[] r : layer) {
                for (int w : r) {
                    ids.add(w);
                }
            }
        }
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    public boolean contains(int worker) {
        for (int[][] layer : replicas) {
            for (int[] r : layer) {
                if (Arrays.binarySearch(r, worker) >= 0) {
                    return true;
                }
            }
        }
        return false;
    }

    /** What {@code worker} must hold under this table (possibly nothing). */
    public Placement assignment(int worker) {
        boolean[][] placed = new boolean[replicas.length][expertsPerLayer()];
        for (int l = 0; l < replicas.length; l++) {
            for (int e = 0; e < replicas[l].length; e++) {
                placed[l][e] = Arrays.binarySearch(replicas[l][e], worker) >= 0;
            }
        }
        return Placement.of(placed, mtp);
    }

    /** (layer, expert) entries per worker. */
    public TreeMap<Integer, Integer> entriesPerWorker() {
        TreeMap<Integer, Integer> n = new TreeMap<>();
        for (int[][] layer : replicas) {
            for (int[] r : layer) {
                for (int w : r) {
                    n.merge(w, 1, Integer::sum);
                }
            }
        }
        return n;
    }

    /** Replicas beyond one per expert. */
    public int redundantReplicas() {
        int n = 0;
        for (int[][] layer : replicas) {
            for (int[] r : layer) {
                n += r.length - 1;
            }
        }
        return n;
    }

    /** For people: "epoch 3: worker 0 holds 20, worker 1 holds 20 (4 redundant)". */
    public String describe() {
        StringBuilder sb = new StringBuilder("epoch ").append(epoch).append(": ");
        boolean first = true;
        for (var e : entriesPerWorker().entrySet()) {
            sb.append(first ? "" : ", ").append("worker ").append(e.getKey()).append(" holds ").append(e.getValue());
            first = false;
        }
        int red = redundantReplicas();
        return sb.append(String.format(Locale.ROOT, " of %d layers x %d experts%s", replicas.length, expertsPerLayer(),
                red > 0 ? " (" + red + " redundant)" : "")).toString();
    }

    public String toJson() {
        ObjectNode root = JSON.createObjectNode();
        root.put("epoch", epoch);
        root.put("mtp", mtp);
        ArrayNode layers = root.putArray("replicas");
        for (int[][] layer : replicas) {
            ArrayNode experts = layers.addArray();
            for (int[] r : layer) {
                ArrayNode ws = experts.addArray();
                for (int w : r) {
                    ws.add(w);
                }
            }
        }
        return root.toString();
    }

    /** Parses {@link #toJson()}; throws IllegalArgumentException for anything else. */
    public static PlacementTable fromJson(String json) {
        try {
            JsonNode root = JSON.readTree(json);
            JsonNode layers = root.get("replicas");
            if (layers == null || !layers.isArray() || !root.path("epoch").canConvertToLong()) {
                throw new IllegalArgumentException("not a placement table: " + abbreviate(json));
            }
            int[][][] r = new int[layers.size()][][];
            for (int l = 0; l < r.length; l++) {
                JsonNode experts = layers.get(l);
                r[l] = new int[experts.size()][];
                for (int e = 0; e < r[l].length; e++) {
                    JsonNode ws = experts.get(e);
                    r[l][e] = new int[ws.size()];
                    for (int i = 0; i < r[l][e].length; i++) {
                        r[l][e][i] = ws.get(i).asInt();
                    }
                }
            }
            return new PlacementTable(root.get("epoch").asLong(), root.path("mtp").asBoolean(), r);
        } catch (IOException e) {
            throw new IllegalArgumentException("not a placement table: " + e.getMessage(), e);
        }
    }

    private static String abbreviate(String s) {
        return s.length() > 80 ? s.substring(0, 80) + "..." : s;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PlacementTable t && t.epoch == epoch && t.mtp == mtp && Arrays.deepEquals(t.replicas, replicas);
    }

    /** Same replicas, whatever the epoch. */
    public boolean samePlacement(PlacementTable t) {
        return t != null && t.mtp == mtp && Arrays.deepEquals(t.replicas, replicas);
    }

    @Override
    public int hashCode() {
        return Long.hashCode(epoch) * 31 + Arrays.deepHashCode(replicas);
    }

    @Override
    public String toString() {
        return describe();
    }
}
