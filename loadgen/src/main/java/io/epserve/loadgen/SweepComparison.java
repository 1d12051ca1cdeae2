package io.epserve.loadgen;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintStream;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Sweep results ({@code epserve bench --sweep}) side by side, load point by load point, with each series' figures as
 * ratios to the first sweep (the baseline). Layout of the result: "Comparisons" in {@code loadgen/RESULT.md}.
 */
public final class SweepComparison {

    /** The figures of a run carried into a comparison, in this order. */
    public static final List<String> FIELDS = List.of("completed", "failed", "request_throughput",
            "output_throughput", "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms", "p99_tpot_ms", "median_itl_ms",
            "p99_itl_ms", "median_e2el_ms", "p99_e2el_ms", "request_goodput");

    /** The figures given as series / baseline. */
    public static final List<String> RATIOS = List.of("output_throughput", "median_tpot_ms", "p99_tpot_ms",
            "median_ttft_ms", "p99_ttft_ms", "p99_e2el_ms");

    private static final JsonNodeFactory F = JsonNodeFactory.instance;

    private SweepComparison() {
    }

    /**
     * Compares sweep results over the same variable; the first is the baseline. Load points are matched by their
     * value (1 and 1.0 match, as do "inf" and "Infinity"); a point only some sweeps have is kept with the runs that
     * have it. Missing or non-finite figures are null, and so is a ratio without a finite, non-zero baseline.
     *
     * @throws IllegalArgumentException no sweeps, an input that is not a sweep result, sweeps over different
     *     variables, or a run whose load point is not known
     */
    public static ObjectNode compare(List<JsonNode> sweeps) {
        return compare(sweeps, null);
    }

    /**
     * As {@link #compare(List)}; {@code names} (e.g. the files read, in the same order; may be null) name the sweeps
     * in error messages, which otherwise say "sweep N".
     */
    public static ObjectNode compare(List<JsonNode> sweeps, List<String> names) {
        if (sweeps == null || sweeps.isEmpty()) {
            throw new IllegalArgumentException("no sweep results to compare");
        }
        String variable = null;
        List<String> labels = new ArrayList<>();
        Set<String> used = new HashSet<>();
        List<Map<Key, JsonNode>> byPoint = new ArrayList<>();
        Map<Key, JsonNode> values = new LinkedHashMap<>();
        for (int i = 0; i < sweeps.size(); i++) {
            JsonNode s = sweeps.get(i);
            String fallback = "sweep " + (i + 1);
            String name = names != null && i < names.size() && names.get(i) != null ? names.get(i) : fallback;
            JsonNode var = s == null ? null : s.path("sweep").path("variable");
            if (s == null || !s.path("runs").isArray() || !var.isTextual() || var.textValue().isEmpty()) {
                throw new IllegalArgumentException(name + " is not a sweep result: it needs {\"sweep\": {\"variable\","
                        + " \"values\"}, \"runs\": [...]} as `epserve bench --sweep` writes");
            }
            String label = label(s, fallback);
            // two runs of the same setup are often labelled alike; the table and the legend must still tell them apart
            if (!used.add(label)) {
                label = label + " (" + fallback + ")";
                used.add(label);
            }
            labels.add(label);
            if (variable == null) {
                variable = var.textValue();
            } else if (!variable.equals(var.textValue())) {
                String first = names != null && !names.isEmpty() && names.get(0) != null ? names.get(0) : "sweep 1";
                throw new IllegalArgumentException("sweeps over different variables cannot be compared: " + first
                        + " (" + labels.get(0) + ") varies " + variable + ", " + name + " (" + label + ") varies "
                        + var.textValue());
            }
            Map<Key, JsonNode> runs = new LinkedHashMap<>();
            Map<String, Integer> seen = new LinkedHashMap<>();
            JsonNode vs = s.path("sweep").path("values");
            for (int j = 0; j < s.path("runs").size(); j++) {
                JsonNode run = s.path("runs").get(j);
                JsonNode v = has(vs.path(j)) ? vs.path(j) : run.path(variable);
                String k = key(v);
                if (k == null) {
                    throw new IllegalArgumentException(name + " (" + label + "): run " + (j + 1) + " has no value of "
                            + variable);
                }
                // a value repeated within a sweep pairs its n-th run with the other sweeps' n-th run of that value
                Key key = new Key(k, seen.merge(k, 1, Integer::sum) - 1);
                runs.put(key, run);
                values.putIfAbsent(key, value(v));
            }
            byPoint.add(runs);
        }
        List<Key> order = new ArrayList<>(values.keySet());
        order.sort(Comparator.comparingInt(Key::rank).thenComparing(Key.byNumber())
                .thenComparingInt(Key::occurrence));

        ObjectNode out = F.objectNode();
        out.put("variable", variable);
        ArrayNode vs = out.putArray("values");
        order.forEach(k -> vs.add(values.get(k)));
        ArrayNode series = out.putArray("series");
        for (int i = 0; i < sweeps.size(); i++) {
            JsonNode target = firstRun(sweeps.get(i)).path("epserve").path("target");
            series.addObject().put("label", labels.get(i)).put("target", target.isTextual() ? target.textValue()
                    : null);
        }
        ArrayNode points = out.putArray("points");
        for (Key k : order) {
            ObjectNode p = points.addObject();
            p.set("value", values.get(k));
            ArrayNode runs = p.putArray("runs");
            ArrayNode ratios = p.putArray("ratios");
            JsonNode base = byPoint.get(0).get(k);
            for (int i = 0; i < sweeps.size(); i++) {
                JsonNode run = byPoint.get(i).get(k);
                if (run == null) continue;
                ObjectNode r = runs.addObject().put("label", labels.get(i));
                for (String f : FIELDS) r.set(f, figure(run.path(f)));
                if (i == 0) continue;
                ObjectNode q = ratios.addObject().put("label", labels.get(i));
                for (String f : RATIOS) q.set(f, ratio(run.path(f), base == null ? null : base.path(f)));
            }
        }
        return out;
    }

    /**
     * The comparison as a plain-text table: per load point, each series' output throughput, median TTFT and TPOT and
     * p99 E2EL, each non-baseline series followed by its ratios to the baseline.
     */
    public static void print(JsonNode comparison, PrintStream out) {
        String var = comparison.path("variable").asText("value");
        List<String> labels = new ArrayList<>();
        comparison.path("series").forEach(s -> labels.add(s.path("label").asText()));
        String ratioLabel = "  / baseline";
        int w = Math.max("series".length(), ratioLabel.length());
        for (String l : labels) w = Math.max(w, l.length());
        String row = "  %-" + w + "s %9s %6s %10s %10s %10s %10s%n";
        String title = " Sweep comparison over " + var + " ";
        int width = Math.max(w + 63, title.length() + 8);
        int left = (width - title.length()) / 2;
        out.println("=".repeat(left) + title + "=".repeat(width - left - title.length()));
        List<String> named = new ArrayList<>();
        for (int i = 0; i < labels.size(); i++) {
            JsonNode t = comparison.path("series").path(i).path("target");
            named.add(labels.get(i) + (i == 0 ? " (baseline" + (t.isTextual() ? ", " + t.textValue() : "") + ")"
                    : t.isTextual() ? " (" + t.textValue() + ")" : ""));
        }
        out.println("series: " + String.join(", ", named));
        out.println("ratios: series / baseline (above 1: more throughput, or more latency)");
        for (JsonNode p : comparison.path("points")) {
            out.println();
            out.println(var + " = " + valueText(p.path("value")));
            out.printf(Locale.ROOT, row, "series", "completed", "failed", "out tok/s", "TTFT p50", "TPOT p50",
                    "E2EL p99");
            for (JsonNode r : p.path("runs")) {
                String label = r.path("label").asText();
                out.printf(Locale.ROOT, row, label, fixed(r.path("completed"), 0), fixed(r.path("failed"), 0),
                        fixed(r.path("output_throughput"), 2), fixed(r.path("median_ttft_ms"), 1),
                        fixed(r.path("median_tpot_ms"), 1), fixed(r.path("p99_e2el_ms"), 1));
                for (JsonNode q : p.path("ratios")) {
                    if (!q.path("label").asText().equals(label)) continue;
                    out.printf(Locale.ROOT, row, ratioLabel, "", "", times(q.path("output_throughput")),
                            times(q.path("median_ttft_ms")), times(q.path("median_tpot_ms")),
                            times(q.path("p99_e2el_ms")));
                }
            }
        }
        out.println("=".repeat(width));
    }

    /** A load point as people write it: 0.2, 1 (not 1.0), inf. */
    static String valueText(JsonNode v) {
        if (v == null || v.isMissingNode() || v.isNull()) return "-";
        if (v.isNumber()) {
            if (v.isFloatingPointNumber() && !Double.isFinite(v.doubleValue())) {
                return Double.isNaN(v.doubleValue()) ? "-" : v.doubleValue() > 0 ? "inf" : "-inf";
            }
            return v.decimalValue().stripTrailingZeros().toPlainString();
        }
        String k = key(v);
        return k != null && k.equals("inf") ? "inf" : v.asText();
    }

    // ---- values -----------------------------------------------------------------------------------------------

    /** A load point: rank 0 numbers (by value), 1 inf, 2 anything else (in order of appearance). */
    private record Key(String text, int occurrence) {
        int rank() {
            return text.equals("inf") ? 1 : number() != null ? 0 : 2;
        }

        BigDecimal number() {
            try {
                return new BigDecimal(text);
            } catch (NumberFormatException e) {
                return null;
            }
        }

        static Comparator<Key> byNumber() {
            return Comparator.comparing(Key::number, Comparator.nullsLast(Comparator.naturalOrder()));
        }
    }

    /** The matching key of a load point value: its number without trailing zeros, "inf", or its text. */
    private static String key(JsonNode v) {
        if (!has(v)) return null;
        if (v.isNumber()) {
            if (v.isFloatingPointNumber() && !Double.isFinite(v.doubleValue())) {
                return Double.isNaN(v.doubleValue()) ? null : v.doubleValue() > 0 ? "inf" : "-inf";
            }
            return v.decimalValue().stripTrailingZeros().toPlainString();
        }
        if (!v.isTextual()) return v.toString();
        String t = v.textValue().trim();
        switch (t.toLowerCase(Locale.ROOT)) {
            case "inf", "+inf", "infinity", "+infinity" -> {
                return "inf";
            }
            case "", "nan" -> {
                return null;
            }
            default -> {
                try {
                    return new BigDecimal(t).stripTrailingZeros().toPlainString();
                } catch (NumberFormatException e) {
                    return t;
                }
            }
        }
    }

    /** The value written for a point: the number as the sweep wrote it, or "inf". */
    private static JsonNode value(JsonNode v) {
        String k = key(v);
        return "inf".equals(k) ? F.textNode("inf") : v.isNumber() ? v : F.textNode(v.asText());
    }

    private static String label(JsonNode sweep, String fallback) {
        for (JsonNode run : sweep.path("runs")) {
            JsonNode l = run.path("label");
            if (l.isTextual() && !l.textValue().isBlank()) return l.textValue();
        }
        return fallback;
    }

    private static JsonNode firstRun(JsonNode sweep) {
        return sweep.path("runs").path(0);
    }

    private static boolean has(JsonNode n) {
        return n != null && !n.isMissingNode() && !n.isNull();
    }

    private static boolean finite(JsonNode n) {
        return n != null && n.isNumber() && Double.isFinite(n.doubleValue());
    }

    private static JsonNode figure(JsonNode n) {
        return finite(n) ? n : F.nullNode();
    }

    private static JsonNode ratio(JsonNode x, JsonNode base) {
        if (!finite(x) || !finite(base) || base.doubleValue() == 0) return F.nullNode();
        double r = x.doubleValue() / base.doubleValue();
        return Double.isFinite(r) ? F.numberNode(r) : F.nullNode();
    }

    private static String fixed(JsonNode n, int decimals) {
        return finite(n) ? String.format(Locale.ROOT, "%." + decimals + "f", n.doubleValue()) : "-";
    }

    private static String times(JsonNode n) {
        return finite(n) ? String.format(Locale.ROOT, "%.2fx", n.doubleValue()) : "-";
    }
}
