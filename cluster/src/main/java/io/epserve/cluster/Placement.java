package io.epserve.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.weights.ExpertWeights;
import io.epserve.model.weights.ModelWeights;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Iterator;
import java.util.Map;

/**
 * Which routed experts an expert worker serves: a set of (layer, expert) pairs over the layers with routed experts,
 * 0..nLayers-1 and the MTP block at index nLayers. Given on the command line for now (the live placement table comes
 * with the control plane):
 *
 * <ul>
 *   <li>{@code --experts 0-3,7}: the same experts in every layer, MTP block included ({@code all} = every expert);
 *   <li>{@code --placement FILE}: JSON {@code {"layers": {"0": [0, 1], "1": "2-3", "mtp": [5]}}}; a layer is named by
 *       its index (the MTP block by nLayers or "mtp"), its experts by an array of ids or a spec string as above;
 *       layers not named get no experts.
 * </ul>
 *
 * Every error names the offending item and the valid range. Immutable. Only the control plane makes empty placements
 * ({@link #none}: an expert worker waiting for its assignment).
 */
public final class Placement implements ModelWeights.ExpertFilter {
    /** The canonical text of the empty placement. */
    public static final String NONE = "none";
    private final boolean[][] placed;
    /** Whether the last layer index is the MTP block. */
    private final boolean mtp;
    private final int size;

    private Placement(boolean[][] placed, boolean mtp) {
        this.placed = placed;
        this.mtp = mtp;
        int n = 0;
        for (boolean[] row : placed) {
            for (boolean b : row) {
                n += b ? 1 : 0;
            }
        }
        this.size = n;
    }

    /** Placements people give must place something; an expert worker waiting for its assignment holds nothing. */
    private static Placement nonEmpty(Placement p) {
        if (p.size == 0) {
            throw new IllegalArgumentException("the placement selects no experts");
        }
        return p;
    }

    /** A copy of {@code placed} [layer][expert]; may be empty. */
    public static Placement of(boolean[][] placed, boolean mtp) {
        boolean[][] copy = new boolean[placed.length][];
        for (int l = 0; l < placed.length; l++) {
            copy[l] = placed[l].clone();
        }
        return new Placement(copy, mtp);
    }

    /** No experts at all: what an expert worker holds before the control plane assigns it some. */
    public static Placement none(int layers, boolean mtp, int experts) {
        return new Placement(new boolean[layers][experts], mtp);
    }

    /** Everything in this placement or in {@code other} (same shape). */
    public Placement union(Placement other) {
        boolean[][] u = new boolean[placed.length][];
        for (int l = 0; l < placed.length; l++) {
            u[l] = placed[l].clone();
            for (int e = 0; e < u[l].length; e++) {
                u[l][e] |= other.wants(l, e);
            }
        }
        return new Placement(u, mtp);
    }

    /** Whether every expert of {@code other} is in this placement. */
    public boolean containsAll(Placement other) {
        for (int l = 0; l < other.placed.length; l++) {
            for (int e = 0; e < other.placed[l].length; e++) {
                if (other.placed[l][e] && !wants(l, e)) {
                    return false;
                }
            }
        }
        return true;
    }

    public boolean isEmpty() {
        return size == 0;
    }

    /** {@code --experts SPEC} for the model of {@code c}: the same experts in all its expert layers. */
    public static Placement ofSpec(String spec, ModelConfig c) {
        return ofSpec(spec, ExpertWeights.layerCount(c), c.nMtpLayers() > 0, c.nRoutedExperts());
    }

    /**
     * The experts of {@code spec} ("0-3,7" or "all") in each of {@code layers} layers of {@code experts} experts;
     * {@code mtp}: the last layer is the MTP block.
     */
    public static Placement ofSpec(String spec, int layers, boolean mtp, int experts) {
        boolean[] set = parseSpec(spec, experts, "--experts");
        boolean[][] placed = new boolean[layers][];
        for (int l = 0; l < layers; l++) {
            placed[l] = set.clone();
        }
        return nonEmpty(new Placement(placed, mtp));
    }

    /**
     * The placement in its {@link #canonical()} text (what an expert worker announces in its READY fingerprint):
     * {@code "*:0-3,7"} or {@code "0:0-1;1:2-3"}.
     */
    public static Placement ofCanonical(String text, int layers, boolean mtp, int experts) {
        if (text.equals(NONE)) {
            return none(layers, mtp, experts);
        }
        if (text.startsWith("*:")) {
            return ofSpec(text.substring(2), layers, mtp, experts);
        }
        boolean[][] placed = new boolean[layers][experts];
        for (String part : text.split(";")) {
            int colon = part.indexOf(':');
            if (colon <= 0) {
                throw new IllegalArgumentException("placement '" + text + "': '" + part + "' is not LAYER:EXPERTS");
            }
            int layer = parseLayer(part.substring(0, colon), layers, mtp, "placement '" + text + "'");
            placed[layer] = parseSpec(part.substring(colon + 1), experts, "placement '" + text + "' layer " + layer);
        }
        return nonEmpty(new Placement(placed, mtp));
    }

    /** {@code --placement FILE} for the model of {@code c}. */
    public static Placement ofFile(Path file, ModelConfig c) {
        return ofFile(file, ExpertWeights.layerCount(c), c.nMtpLayers() > 0, c.nRoutedExperts());
    }

    public static Placement ofFile(Path file, int layers, boolean mtp, int experts) {
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read placement file " + file + ": " + e.getMessage(), e);
        }
        return ofJson(text, file.toString(), layers, mtp, experts);
    }

    /** A placement from JSON text; {@code source} names it in errors. */
    public static Placement ofJson(String json, String source, int layers, boolean mtp, int experts) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(json);
        } catch (IOException e) {
            throw new IllegalArgumentException(source + ": not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException(source + ": expected a JSON object {\"layers\": {...}}");
        }
        for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
            String key = it.next();
            if (!key.equals("layers")) {
                throw new IllegalArgumentException(source + ": unknown key '" + key + "' (expected only \"layers\")");
            }
        }
        JsonNode map = root.get("layers");
        if (map == null || !map.isObject()) {
            throw new IllegalArgumentException(source + ": \"layers\" must be an object of layer -> experts");
        }
        boolean[][] placed = new boolean[layers][experts];
        for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            int layer = parseLayer(e.getKey(), layers, mtp, source);
            String where = source + ": layer " + e.getKey();
            JsonNode v = e.getValue();
            if (v.isTextual()) {
                placed[layer] = parseSpec(v.asText(), experts, where);
            } else if (v.isArray()) {
                for (JsonNode x : v) {
                    if (!x.isIntegralNumber() || !x.canConvertToInt()) {
                        throw new IllegalArgumentException(where + ": expert " + x + " is not an integer");
                    }
                    placed[layer][checkExpert(x.asInt(), experts, where)] = true;
                }
            } else {
                throw new IllegalArgumentException(where + ": expected an array of expert ids or a spec like \"0-3,7\"");
            }
        }
        return nonEmpty(new Placement(placed, mtp));
    }

    private static int parseLayer(String key, int layers, boolean mtp, String source) {
        if (key.equals("mtp")) {
            if (!mtp) {
                throw new IllegalArgumentException(source + ": layer \"mtp\" named, but the model has no MTP block");
            }
            return layers - 1;
        }
        int layer;
        try {
            layer = Integer.parseInt(key.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(source + ": layer '" + key + "' is not a layer index (0.."
                    + (layers - 1) + (mtp ? ", or \"mtp\")" : ")"));
        }
        if (layer < 0 || layer >= layers) {
            throw new IllegalArgumentException(source + ": layer " + layer + " is outside [0, " + layers + ")"
                    + (mtp ? " (the model's " + (layers - 1) + " layers and its MTP block " + (layers - 1) + ")" : ""));
        }
        return layer;
    }

    /** "0-3,7" -> a set over [0, experts); "all" -> every expert. */
    static boolean[] parseSpec(String spec, int experts, String where) {
        if (spec == null || spec.isBlank()) {
            throw new IllegalArgumentException(where + ": empty expert list (e.g. 0-3,7 or all)");
        }
        boolean[] set = new boolean[experts];
        if (spec.trim().equals("all")) {
            Arrays.fill(set, true);
            return set;
        }
        for (String item : spec.split(",", -1)) {
            String s = item.trim();
            if (s.isEmpty()) {
                throw new IllegalArgumentException(where + ": empty item in expert list '" + spec + "'");
            }
            int dash = s.indexOf('-', 1);
            int lo;
            int hi;
            try {
                lo = Integer.parseInt((dash < 0 ? s : s.substring(0, dash)).trim());
                hi = dash < 0 ? lo : Integer.parseInt(s.substring(dash + 1).trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(where + ": '" + s + "' is not an expert id or range (e.g. 0-3,7)");
            }
            if (lo > hi) {
                throw new IllegalArgumentException(where + ": range '" + s + "' is empty (start > end)");
            }
            checkExpert(lo, experts, where);
            checkExpert(hi, experts, where);
            for (int e = lo; e <= hi; e++) {
                set[e] = true;
            }
        }
        return set;
    }

    private static int checkExpert(int e, int experts, String where) {
        if (e < 0 || e >= experts) {
            throw new IllegalArgumentException(where + ": expert " + e + " is outside [0, " + experts
                    + ") (the model has " + experts + " routed experts)");
        }
        return e;
    }

    @Override
    public boolean wants(int layer, int expert) {
        return layer >= 0 && layer < placed.length && expert >= 0 && expert < placed[layer].length
                && placed[layer][expert];
    }

    /** Layers covered (the model's nLayers + 1 with an MTP block). */
    public int layerCount() {
        return placed.length;
    }

    /** Routed experts per layer in the model. */
    public int expertsPerLayer() {
        return placed.length == 0 ? 0 : placed[0].length;
    }

    /** Number of (layer, expert) pairs. */
    public int size() {
        return size;
    }

    /** The experts placed in {@code layer}, ascending. */
    public int[] experts(int layer) {
        boolean[] row = placed[layer];
        int n = 0;
        for (boolean b : row) {
            n += b ? 1 : 0;
        }
        int[] out = new int[n];
        n = 0;
        for (int e = 0; e < row.length; e++) {
            if (row[e]) {
                out[n++] = e;
            }
        }
        return out;
    }

    /** Whether every layer has the same experts. */
    public boolean uniform() {
        for (boolean[] row : placed) {
            if (!Arrays.equals(row, placed[0])) {
                return false;
            }
        }
        return true;
    }

    /**
     * A canonical text form: {@code "*:0-3,7"} when every layer has the same experts, else
     * {@code "0:0-1;1:2-3;4:5"} (layers without experts left out). Equal placements give equal text.
     */
    public String canonical() {
        if (size == 0) {
            return NONE;
        }
        if (uniform()) {
            return "*:" + ranges(experts(0));
        }
        StringBuilder sb = new StringBuilder();
        for (int l = 0; l < placed.length; l++) {
            int[] ids = experts(l);
            if (ids.length > 0) {
                if (sb.length() > 0) {
                    sb.append(';');
                }
                sb.append(l).append(':').append(ranges(ids));
            }
        }
        return sb.toString();
    }

    /** For people: "experts 0-3 of 8 in each of 5 layers (0-3, MTP 4)" or the per-layer list. */
    public String describe() {
        if (size == 0) {
            return "no experts";
        }
        int mtpIndex = mtp ? placed.length - 1 : -1;
        if (uniform()) {
            return "experts " + ranges(experts(0)) + " of " + expertsPerLayer() + " in each of " + placed.length
                    + " layers" + (mtp ? " (0-" + (mtpIndex - 1) + ", MTP " + mtpIndex + ")" : "");
        }
        StringBuilder sb = new StringBuilder();
        for (int l = 0; l < placed.length; l++) {
            int[] ids = experts(l);
            if (ids.length > 0) {
                sb.append(sb.length() > 0 ? "; " : "").append(l == mtpIndex ? "MTP " + l : "layer " + l).append(": ")
                        .append(ranges(ids));
            }
        }
        return size + " experts (" + sb + ")";
    }

    @Override
    public String toString() {
        return canonical();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Placement p && mtp == p.mtp && Arrays.deepEquals(placed, p.placed);
    }

    @Override
    public int hashCode() {
        return Arrays.deepHashCode(placed);
    }

    /** "0-3,7" from ascending ids. */
    public static String ranges(int[] ids) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < ids.length; ) {
            int j = i;
            while (j + 1 < ids.length && ids[j + 1] == ids[j] + 1) {
                j++;
            }
            if (i > 0) {
                sb.append(',');
            }
            sb.append(ids[i]);
            if (j > i) {
                sb.append('-').append(ids[j]);
            }
            i = j + 1;
        }
        return sb.toString();
    }
}
