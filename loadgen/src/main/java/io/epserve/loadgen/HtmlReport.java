package io.epserve.loadgen;

import static io.epserve.loadgen.Html.DASH;
import static io.epserve.loadgen.Html.charts;
import static io.epserve.loadgen.Html.close;
import static io.epserve.loadgen.Html.date;
import static io.epserve.loadgen.Html.dbl;
import static io.epserve.loadgen.Html.doubles;
import static io.epserve.loadgen.Html.esc;
import static io.epserve.loadgen.Html.fmt;
import static io.epserve.loadgen.Html.heading;
import static io.epserve.loadgen.Html.kvTable;
import static io.epserve.loadgen.Html.num;
import static io.epserve.loadgen.Html.open;
import static io.epserve.loadgen.Html.or;
import static io.epserve.loadgen.Html.orMissing;
import static io.epserve.loadgen.Html.section;
import static io.epserve.loadgen.Html.str;
import static io.epserve.loadgen.Html.suffix;
import static io.epserve.loadgen.Html.table;
import static io.epserve.loadgen.Html.val;
import static io.epserve.loadgen.Html.whole;
import static io.epserve.loadgen.Svg.px;
import static io.epserve.loadgen.Svg.svgOpen;
import static io.epserve.loadgen.Svg.text;

import com.fasterxml.jackson.databind.JsonNode;
import io.epserve.loadgen.Svg.Chart;
import io.epserve.loadgen.Svg.Series;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The self-contained HTML reports of {@code epserve bench} and {@code epserve bench-compare}: one file, styles inline,
 * every chart an inline SVG drawn by {@link Svg}, nothing fetched at view time. It reads only the fields described in
 * {@code loadgen/RESULT.md}; any of them may be missing or null (older or partial results), and what is missing is
 * left out. The document is also
 * well-formed XML (void elements closed, only numeric character references), so each SVG can be cut out as is.
 */
public final class HtmlReport {

    private static final List<String> METRICS = List.of("ttft", "tpot", "itl", "e2el");
    private static final Pattern PERCENTILE = Pattern.compile("p([0-9.]+)_(ttft|tpot|itl|e2el)_ms");
    private static final Pattern PERCENTILE_KEY = Pattern.compile("(median|p99)_(\\w+)_ms");

    private HtmlReport() {
    }

    /** The report of one run result. */
    public static String run(JsonNode result) {
        JsonNode r = orMissing(result);
        String label = str(r.path("label"));
        StringBuilder b = new StringBuilder(1 << 16);
        open(b, "epserve bench" + (label == null ? "" : " \u2014 " + label));
        b.append("<h1>epserve bench").append(label == null ? "" : ": " + esc(label)).append("</h1>\n");
        runBody(b, r, 2);
        return close(b);
    }

    /** The report of a sweep result: {@code {"sweep": {"variable", "values"}, "runs": [...]}}. */
    public static String sweep(JsonNode sweepResult) {
        JsonNode s = orMissing(sweepResult);
        String variable = str(s.path("sweep").path("variable"));
        String var = variable == null ? "value" : variable;
        JsonNode values = s.path("sweep").path("values");
        List<JsonNode> runs = new ArrayList<>();
        if (s.path("runs").isArray()) s.path("runs").forEach(runs::add);
        List<String> points = new ArrayList<>();
        for (int i = 0; i < runs.size(); i++) {
            String v = val(values.path(i));
            points.add(v != null ? v : or(val(runs.get(i).path(var)), String.valueOf(i + 1)));
        }
        StringBuilder b = new StringBuilder(1 << 17);
        open(b, "epserve bench sweep" + (variable == null ? "" : " over " + variable));
        b.append("<h1>epserve bench sweep").append(variable == null ? "" : " over " + esc(variable)).append("</h1>\n");
        List<String> vs = new ArrayList<>();
        if (values.isArray()) values.forEach(v -> vs.add(or(val(v), DASH)));
        b.append("<p>").append(runs.size()).append(" run(s)");
        if (!vs.isEmpty()) b.append("; ").append(esc(var)).append(" = ").append(esc(String.join(", ", vs)));
        b.append("</p>\n");
        section(b, "sweep table", x -> sweepTable(x, runs, points, var));
        section(b, "sweep charts", x -> sweepCharts(x, runs, points, var));
        for (int i = 0; i < runs.size(); i++) {
            JsonNode run = runs.get(i);
            String label = str(run.path("label"));
            b.append("<section class=\"run\">\n<h2>Run ").append(i + 1).append(": ").append(esc(var)).append(" = ")
                    .append(esc(points.get(i))).append(label == null ? "" : " (" + esc(label) + ")").append("</h2>\n");
            runBody(b, run, 3);
            b.append("</section>\n");
        }
        return close(b);
    }

    // ---- one run ----------------------------------------------------------------------------------------------

    private static void runBody(StringBuilder b, JsonNode r, int h) {
        section(b, "header", x -> header(x, r));
        section(b, "summary", x -> summary(x, r, h));
        section(b, "failures", x -> failures(x, r.path("epserve"), h));
        section(b, "latency", x -> latencyCdfs(x, r.path("epserve").path("latency_samples_ms"), h));
        section(b, "timeline", x -> timeline(x, r.path("epserve").path("timeline"), h));
        JsonNode server = r.path("epserve").path("server");
        section(b, "expert load", x -> expertLoad(x, server.path("expert_load"), h));
        section(b, "server", x -> server(x, server, h));
    }

    private static void header(StringBuilder b, JsonNode r) {
        JsonNode e = r.path("epserve");
        Map<String, String> kv = new LinkedHashMap<>();
        kv.put("label", str(r.path("label")));
        kv.put("model", str(r.path("model_id")));
        kv.put("date", date(str(r.path("date"))));
        kv.put("target", str(e.path("target")));
        kv.put("backend", str(r.path("backend")));
        JsonNode ds = e.path("dataset");
        if (ds.isObject()) {
            StringBuilder d = new StringBuilder(or(str(ds.path("name")), "?"));
            List<String> params = new ArrayList<>();
            ds.properties().forEach(p -> {
                if (!p.getKey().equals("name")) params.add(p.getKey() + "=" + or(val(p.getValue()), "null"));
            });
            if (!params.isEmpty()) d.append(" (").append(String.join(", ", params)).append(')');
            kv.put("dataset", d.toString());
        }
        kv.put("prompts", val(r.path("num_prompts")));
        kv.put("request rate", suffix(val(r.path("request_rate")), " req/s"));
        kv.put("burstiness", val(r.path("burstiness")));
        if (r.has("max_concurrency")) kv.put("max concurrency", or(val(r.path("max_concurrency")), "none"));
        kv.put("duration", suffix(val(r.path("duration")), " s"));
        kv.put("seed", val(e.path("seed")));
        kv.put("ignore_eos", val(e.path("ignore_eos")));
        kv.put("warm-ups", val(e.path("num_warmups")));
        kv.put("goodput SLOs (ms)", val(e.path("goodput_slos")));
        kvTable(b, kv);
    }

    private static void summary(StringBuilder b, JsonNode r, int h) {
        Map<String, String> kv = new LinkedHashMap<>();
        kv.put("completed requests", val(r.path("completed")));
        kv.put("failed requests", val(r.path("failed")));
        kv.put("total input tokens", val(r.path("total_input_tokens")));
        kv.put("total output tokens", val(r.path("total_output_tokens")));
        kv.put("server output tokens", val(r.path("epserve").path("server_output_tokens")));
        kv.put("request throughput", suffix(val(r.path("request_throughput")), " req/s"));
        kv.put("output token throughput", suffix(val(r.path("output_throughput")), " tok/s"));
        kv.put("total token throughput", suffix(val(r.path("total_token_throughput")), " tok/s"));
        kv.put("request goodput", suffix(val(r.path("request_goodput")), " req/s"));
        kv.put("peak output tokens in 1 s", suffix(val(r.path("max_output_tokens_per_s")), " tok/s"));
        kv.put("peak concurrent requests", val(r.path("max_concurrent_requests")));
        // pN keys as present, sorted numerically ("99" < "99.9")
        TreeMap<BigDecimal, String> ps = new TreeMap<>();
        r.fieldNames().forEachRemaining(f -> {
            Matcher m = PERCENTILE.matcher(f);
            if (m.matches()) {
                try {
                    ps.putIfAbsent(new BigDecimal(m.group(1)), m.group(1));
                } catch (NumberFormatException ignored) {
                    // "p9.9.9_ttft_ms": not a percentile
                }
            }
        });
        List<String> cols = new ArrayList<>(List.of("mean", "median", "std"));
        ps.values().forEach(p -> cols.add("p" + p));
        List<List<String>> rows = new ArrayList<>();
        for (String m : METRICS) {
            List<String> row = new ArrayList<>(List.of(m.toUpperCase(Locale.ROOT) + " (ms)"));
            boolean any = false;
            for (String c : cols) {
                String v = num(r.path(c + "_" + m + "_ms"));
                any |= v != null;
                row.add(or(v, ""));
            }
            if (any) rows.add(row);
        }
        JsonNode q = r.path("epserve").path("server_queue_ms");
        if (q.isObject()) {
            List<String> row = new ArrayList<>(List.of("server queue (ms)"));
            for (String c : cols) row.add(or(num(q.path(c)), ""));
            if (row.stream().skip(1).anyMatch(s -> !s.isEmpty())) rows.add(row);
        }
        if (kv.values().stream().allMatch(v -> v == null) && rows.isEmpty()) return;
        heading(b, h, "Summary");
        kvTable(b, kv);
        List<String> head = new ArrayList<>(List.of("metric"));
        head.addAll(cols);
        table(b, head, rows);
    }

    private static void failures(StringBuilder b, JsonNode e, int h) {
        JsonNode f = e.path("failures");
        List<List<String>> reasons = counts(f.path("reasons"));
        List<List<String>> finish = counts(e.path("finish_reasons"));
        String count = val(f.path("count"));
        if (reasons.isEmpty() && finish.isEmpty() && count == null) return;
        heading(b, h, "Failures and finish reasons");
        if (count != null) b.append("<p>failed requests: ").append(esc(count)).append("</p>\n");
        table(b, List.of("failure reason", "requests"), reasons);
        table(b, List.of("finish reason", "requests"), finish);
    }

    /** Rows (key, count) of an object of counts, count > 0, largest first. */
    private static List<List<String>> counts(JsonNode o) {
        List<Map.Entry<String, JsonNode>> es = new ArrayList<>();
        if (o.isObject()) o.properties().forEach(p -> {
            if (dbl(p.getValue()) > 0) es.add(p);
        });
        es.sort(Comparator.comparingDouble((Map.Entry<String, JsonNode> p) -> -dbl(p.getValue())));
        List<List<String>> rows = new ArrayList<>();
        es.forEach(p -> rows.add(List.of(p.getKey(), val(p.getValue()))));
        return rows;
    }

    private static void latencyCdfs(StringBuilder b, JsonNode samples, int h) {
        List<String> svgs = new ArrayList<>();
        for (String m : METRICS) {
            double[] xs = doubles(samples.path(m));
            if (xs.length == 0) continue;
            double[] ys = new double[xs.length];
            for (int i = 0; i < xs.length; i++) ys[i] = xs.length == 1 ? 1 : (double) i / (xs.length - 1);
            Chart c = new Chart(m.toUpperCase(Locale.ROOT) + " CDF (" + xs.length + " samples)", "ms", "fraction");
            c.yFixed(0, 1).add(new Series(m.toUpperCase(Locale.ROOT), xs, ys, false, false));
            svgs.add(c.svg());
        }
        charts(b, h, "Latency distributions", svgs);
    }

    private static void timeline(StringBuilder b, JsonNode t, int h) {
        double bucket = dbl(t.path("bucket_seconds"));
        if (!(bucket > 0)) bucket = 1;
        List<String> svgs = new ArrayList<>();
        double[] out = perSecond(doubles(t.path("output_tokens")), bucket);
        if (out.length > 0) {
            Chart c = new Chart("Output tokens per second", "time since first send (s)", "tokens/s");
            svgs.add(c.add(new Series("output tokens/s", mids(out.length, bucket), out, true, false)).svg());
        }
        Chart c = new Chart("Requests over time", "time since first send (s)", "requests");
        double[] conc = doubles(t.path("concurrent_requests"));
        double[] done = perSecond(doubles(t.path("completed_requests")), bucket);
        double[] started = perSecond(doubles(t.path("started_requests")), bucket);
        if (conc.length > 0) c.add(new Series("in flight", mids(conc.length, bucket), conc, false, false));
        if (done.length > 0) c.add(new Series("completed/s", mids(done.length, bucket), done, false, false));
        if (started.length > 0) c.add(new Series("started/s", mids(started.length, bucket), started, false, false));
        svgs.add(c.svg());
        charts(b, h, "Over time", svgs);
    }

    private static void expertLoad(StringBuilder b, JsonNode load, int h) {
        String svg = load.path("layers").isArray() ? heatmap(load) : "";
        if (svg.isEmpty()) return;
        heading(b, h, "Expert load");
        String mean = num(load.path("balance_mean"));
        b.append("<p>tokens routed to each expert during the run; colour = tokens relative to the layer's busiest"
                + " expert; balance = mean / max per layer (1 = perfectly even)")
                .append(mean == null ? "" : "; mean balance <b>" + esc(mean) + "</b>").append("</p>\n");
        b.append("<div class=\"charts\">").append(svg).append("</div>\n");
        List<List<String>> rows = new ArrayList<>();
        int i = 0;
        for (JsonNode l : load.path("layers")) {
            double[] tok = doubles(l.path("tokens"));
            double sum = 0, max = 0;
            for (double v : tok) if (Double.isFinite(v)) { sum += v; max = Math.max(max, v); }
            rows.add(List.of(or(val(l.path("layer")), String.valueOf(i++)), whole(sum), whole(max),
                    or(num(l.path("balance")), "")));
        }
        table(b, List.of("layer", "tokens", "busiest expert", "balance"), rows);
    }

    private static void server(StringBuilder b, JsonNode s, int h) {
        if (!s.isObject()) return;
        heading(b, h, "Server side");
        List<List<String>> hist = new ArrayList<>();
        histRow(hist, "queue (ms)", s.path("queue_ms"));
        histRow(hist, "prefill step (ms)", s.path("prefill_step_ms"));
        histRow(hist, "decode step (ms)", s.path("decode_step_ms"));
        table(b, List.of("attention workers", "count", "mean", "p50", "p90", "p99"), hist);
        Map<String, String> kv = new LinkedHashMap<>();
        JsonNode steps = s.path("steps"), tokens = s.path("step_tokens");
        kv.put("prefill steps", val(steps.path("prefill")));
        kv.put("decode steps", val(steps.path("decode")));
        kv.put("failed steps", val(steps.path("failed")));
        kv.put("prefill step tokens", val(tokens.path("prefill")));
        kv.put("decode step tokens", val(tokens.path("decode")));
        kv.put("mean decode batch", val(s.path("decode_batch_mean")));
        JsonNode ts = s.path("time_split");
        double step = dbl(ts.path("step"));
        for (String k : List.of("step", "attention", "shared_expert", "dispatch", "exposed_wait")) {
            String v = suffix(num(ts.path(k)), " s");
            double x = dbl(ts.path(k));
            if (v != null && !k.equals("step") && step > 0 && Double.isFinite(x)) {
                v += " (" + fmt(100 * x / step) + " % of step)";
            }
            kv.put("engine time: " + k.replace('_', ' '), v);
        }
        double frac = dbl(ts.path("exposed_communication_fraction"));
        kv.put("exposed communication", Double.isFinite(frac) ? fmt(100 * frac) + " %" : null);
        kvTable(b, kv);
        layers(b, s.path("layers"), h + 1);
        JsonNode router = s.path("router");
        if (router.isObject()) {
            heading(b, h + 1, "Router");
            table(b, List.of("status", "requests"), counts(router.path("requests")));
            Map<String, String> rk = new LinkedHashMap<>();
            rk.put("prompt tokens", val(router.path("prompt_tokens")));
            rk.put("generated tokens", val(router.path("generated_tokens")));
            kvTable(b, rk);
            List<List<String>> rh = new ArrayList<>();
            histRow(rh, "TTFT (ms)", router.path("ttft_ms"));
            histRow(rh, "inter-token (ms)", router.path("inter_token_ms"));
            histRow(rh, "request (ms)", router.path("request_ms"));
            table(b, List.of("router", "count", "mean", "p50", "p90", "p99"), rh);
        }
        List<List<String>> eps = new ArrayList<>();
        if (s.path("endpoints").isArray()) for (JsonNode ep : s.path("endpoints")) {
            JsonNode ok = ep.path("ok");
            String st = ok.isBoolean() ? (ok.booleanValue() ? "ok" : "error") : or(val(ok), "");
            eps.add(List.of(or(str(ep.path("url")), ""), or(str(ep.path("role")), ""), st,
                    or(str(ep.path("error")), "")));
        }
        if (!eps.isEmpty()) {
            heading(b, h + 1, "Metrics endpoints");
            table(b, List.of("url", "role", "scrape", "error"), eps);
        }
    }

    private static void layers(StringBuilder b, JsonNode layers, int h) {
        if (!layers.isArray() || layers.isEmpty()) return;
        heading(b, h, "Per-layer dispatch and round trip (\u00b5s)");
        List<List<String>> rows = new ArrayList<>();
        List<double[]> pts = new ArrayList<>();
        int i = 0;
        for (JsonNode l : layers) {
            JsonNode d = l.path("dispatch_us"), rt = l.path("round_trip_us");
            String layer = or(val(l.path("layer")), String.valueOf(i));
            double lx = l.path("layer").isNumber() ? l.path("layer").doubleValue() : i;
            i++;
            rows.add(List.of(layer, c(d, "count"), c(d, "mean"), c(d, "p50"), c(d, "p99"), c(rt, "count"),
                    c(rt, "mean"), c(rt, "p50"), c(rt, "p90"), c(rt, "p99")));
            if (dbl(rt.path("count")) > 0) pts.add(new double[] {lx, dbl(rt.path("p50")), dbl(rt.path("p99"))});
        }
        table(b, List.of("layer", "dispatch n", "mean", "p50", "p99", "round trip n", "mean", "p50", "p90", "p99"),
                rows);
        if (pts.isEmpty()) return;
        double[] xs = new double[pts.size()], p50 = new double[pts.size()], p99 = new double[pts.size()];
        for (int k = 0; k < pts.size(); k++) {
            xs[k] = pts.get(k)[0];
            p50[k] = pts.get(k)[1];
            p99[k] = pts.get(k)[2];
        }
        Chart ch = new Chart("Dispatch-to-combine round trip by layer", "layer", "\u00b5s").integerX();
        ch.add(new Series("p50", xs, p50, true, false)).add(new Series("p99", xs, p99, true, false));
        b.append("<div class=\"charts\">").append(ch.svg()).append("</div>\n");
    }

    private static String c(JsonNode hist, String k) {
        if (!k.equals("count") && hist.path("count").isNumber() && hist.path("count").doubleValue() == 0) return DASH;
        return or(num(hist.path(k)), "");
    }

    private static void histRow(List<List<String>> rows, String name, JsonNode hst) {
        if (!hst.isObject()) return;
        rows.add(List.of(name, c(hst, "count"), c(hst, "mean"), c(hst, "p50"), c(hst, "p90"), c(hst, "p99")));
    }

    // ---- sweep ------------------------------------------------------------------------------------------------

    private static void sweepTable(StringBuilder b, List<JsonNode> runs, List<String> points, String var) {
        List<String> keys = new ArrayList<>(List.of("completed", "failed", "request_throughput", "output_throughput"));
        for (String m : List.of("ttft", "tpot", "e2el"))
            for (String s : List.of("median", "p99")) {
                String k = s + "_" + m + "_ms";
                if (runs.stream().anyMatch(r -> r.path(k).isNumber())) keys.add(k);
            }
        List<List<String>> rows = new ArrayList<>();
        for (int i = 0; i < runs.size(); i++) {
            List<String> row = new ArrayList<>(List.of(points.get(i)));
            for (String k : keys) row.add(or(val(runs.get(i).path(k)), ""));
            rows.add(row);
        }
        List<String> head = new ArrayList<>(List.of(var));
        for (String k : keys) {
            Matcher m = PERCENTILE_KEY.matcher(k);
            String metric = m.matches() ? m.group(2).toUpperCase(Locale.ROOT) : null;
            head.add(metric != null ? m.group(1) + " " + metric + " (ms)" : k.replace('_', ' '));
        }
        table(b, head, rows);
    }

    private static void sweepCharts(StringBuilder b, List<JsonNode> runs, List<String> points, String var) {
        List<String> svgs = new ArrayList<>();
        double[] xs = runs.stream().mapToDouble(r -> dbl(r.path("output_throughput"))).toArray();
        String[] labels = points.toArray(String[]::new);
        for (String m : List.of("ttft", "tpot", "e2el")) {
            String name = m.toUpperCase(Locale.ROOT);
            Chart c = new Chart(name + " against output throughput", "output throughput (tok/s)", name + " (ms)")
                    .pointName(var);
            for (String s : List.of("median", "p99")) {
                double[] ys = runs.stream().mapToDouble(r -> dbl(r.path(s + "_" + m + "_ms"))).toArray();
                c.add(new Series(s, xs, ys, false, true).labels(labels));
            }
            svgs.add(c.svg());
        }
        charts(b, 2, "Latency against throughput", svgs);
    }

    // ---- comparison -------------------------------------------------------------------------------------------

    private static final List<String> COMPARE_HEAD = List.of("completed", "failed", "req/s", "out tok/s",
            "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "ITL p50", "ITL p99", "E2EL p50", "E2EL p99",
            "goodput req/s");

    /**
     * The report of a comparison of sweeps ({@link SweepComparison#compare}): the series, a table per load point
     * with each series' figures and its ratios to the baseline, latency against output throughput with a line per
     * series, and output throughput per load point. {@code sweeps} (the compared results, in the comparison's order;
     * may be null) only add each series' model, dataset and date.
     */
    public static String compare(JsonNode comparison, List<JsonNode> sweeps) {
        JsonNode c = orMissing(comparison);
        String variable = str(c.path("variable"));
        String var = variable == null ? "value" : variable;
        List<String> labels = new ArrayList<>();
        for (JsonNode s : c.path("series")) labels.add(or(str(s.path("label")), "sweep " + (labels.size() + 1)));
        List<JsonNode> points = new ArrayList<>();
        if (c.path("points").isArray()) c.path("points").forEach(points::add);
        String[] names = points.stream().map(p -> SweepComparison.valueText(p.path("value"))).toArray(String[]::new);
        StringBuilder b = new StringBuilder(1 << 16);
        String title = "epserve bench comparison" + (variable == null ? "" : " over " + variable);
        open(b, title);
        b.append("<h1>").append(esc(title)).append("</h1>\n");
        b.append("<p>").append(labels.size()).append(" series");
        if (!labels.isEmpty()) b.append("; baseline <b>").append(esc(labels.get(0))).append("</b>");
        b.append("; ratios are series / baseline (above 1: more throughput, or more latency)</p>\n");
        section(b, "series", x -> compareSeries(x, c.path("series"), labels, sweeps));
        section(b, "load points", x -> comparePoints(x, points, names, var));
        section(b, "comparison charts", x -> compareCharts(x, points, names, labels, var));
        return close(b);
    }

    private static void compareSeries(StringBuilder b, JsonNode series, List<String> labels, List<JsonNode> sweeps) {
        boolean more = sweeps != null && sweeps.size() == labels.size();
        List<List<String>> rows = new ArrayList<>();
        for (int i = 0; i < labels.size(); i++) {
            List<String> row = new ArrayList<>(List.of(labels.get(i), i == 0 ? "baseline" : "",
                    or(str(series.path(i).path("target")), "")));
            if (more) {
                JsonNode run = orMissing(sweeps.get(i)).path("runs").path(0);
                JsonNode ds = run.path("epserve").path("dataset");
                row.add(or(str(run.path("model_id")), ""));
                row.add(ds.isObject() ? or(str(ds.path("name")), "") : "");
                row.add(or(val(run.path("num_prompts")), ""));
                row.add(or(date(str(run.path("date"))), ""));
            }
            rows.add(row);
        }
        List<String> head = new ArrayList<>(List.of("series", "role", "target"));
        if (more) head.addAll(List.of("model", "dataset", "prompts per point", "first run"));
        table(b, head, rows);
    }

    private static void comparePoints(StringBuilder b, List<JsonNode> points, String[] names, String var) {
        if (points.isEmpty()) return;
        heading(b, 2, "Load points");
        b.append("<p>latencies in ms (p50: median); a \u00f7 baseline row holds the series above divided by the"
                + " baseline</p>\n");
        for (int i = 0; i < points.size(); i++) {
            JsonNode p = points.get(i);
            heading(b, 3, var + " = " + names[i]);
            List<List<String>> rows = new ArrayList<>();
            for (JsonNode r : p.path("runs")) {
                String label = or(str(r.path("label")), "");
                List<String> row = new ArrayList<>(List.of(label));
                for (String f : SweepComparison.FIELDS) row.add(or(num(r.path(f)), ""));
                rows.add(row);
                for (JsonNode q : p.path("ratios")) {
                    if (!label.equals(str(q.path("label")))) continue;
                    List<String> ratio = new ArrayList<>(List.of("\u00f7 baseline"));
                    for (String f : SweepComparison.FIELDS) {
                        String v = SweepComparison.RATIOS.contains(f) ? num(q.path(f)) : null;
                        ratio.add(v == null ? "" : v + "\u00a0\u00d7");
                    }
                    rows.add(ratio);
                }
            }
            List<String> head = new ArrayList<>(List.of("series"));
            head.addAll(COMPARE_HEAD);
            // thirteen figures can outgrow a narrow window; the table scrolls instead of the page
            b.append("<div class=\"wide\">\n");
            table(b, head, rows);
            b.append("</div>\n");
        }
    }

    private static void compareCharts(StringBuilder b, List<JsonNode> points, String[] names, List<String> labels,
            String var) {
        List<String> svgs = new ArrayList<>();
        for (String m : List.of("ttft", "tpot", "e2el")) {
            for (String s : List.of("median", "p99")) {
                String name = s + " " + m.toUpperCase(Locale.ROOT);
                Chart c = new Chart(name + " against output throughput", "output throughput (tok/s)",
                        name + " (ms)").pointName(var);
                for (String label : labels) {
                    c.add(new Series(label, figures(points, label, "output_throughput"),
                            figures(points, label, s + "_" + m + "_ms"), false, true).labels(names));
                }
                svgs.add(c.svg());
            }
        }
        charts(b, 2, "Latency against throughput", svgs);
        double[] at = new double[points.size()];
        for (int i = 0; i < at.length; i++) at[i] = i;
        Chart bars = new Chart("Output throughput per load point", var, "tok/s").xCategories(names);
        for (String label : labels) {
            bars.add(new Series(label, at, figures(points, label, "output_throughput"), true, false));
        }
        charts(b, 2, "Output throughput", new ArrayList<>(List.of(bars.svg())));
    }

    /** One series' figure at every load point, NaN where the series has no run there. */
    private static double[] figures(List<JsonNode> points, String label, String field) {
        double[] v = new double[points.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = Double.NaN;
            for (JsonNode r : points.get(i).path("runs")) {
                if (label.equals(str(r.path("label")))) {
                    v[i] = dbl(r.path(field));
                    break;
                }
            }
        }
        return v;
    }

    private static double[] perSecond(double[] v, double bucket) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) d[i] = v[i] / bucket;
        return d;
    }

    private static double[] mids(int n, double bucket) {
        double[] d = new double[n];
        for (int i = 0; i < n; i++) d[i] = (i + 0.5) * bucket;
        return d;
    }


    /** Heatmap of tokens per expert: a row per layer, colour relative to the row's busiest expert. */
    private static String heatmap(JsonNode load) {
        List<JsonNode> layers = new ArrayList<>();
        load.path("layers").forEach(layers::add);
        int experts = (int) Math.max(0, dbl(load.path("experts")) > 0 ? dbl(load.path("experts")) : 0);
        for (JsonNode l : layers) experts = Math.max(experts, l.path("tokens").size());
        experts = Math.min(experts, 4096);
        if (experts == 0) return "";
        int rows = layers.size(), left = 56, right = 56, top = 38, bottom = 58, w = 1040, pw = w - left - right;
        double cw = (double) pw / experts, rh = rows <= 8 ? 22 : rows <= 32 ? 14 : Math.max(3, 480.0 / rows);
        int h = (int) Math.ceil(top + rows * rh + bottom);
        StringBuilder b = new StringBuilder(64 * experts * rows + 2048);
        svgOpen(b, w, h, "Tokens per expert (" + rows + " layers \u00d7 " + experts + " experts)");
        int rowEvery = (int) Math.ceil(11 / rh);
        b.append("<g shape-rendering=\"crispEdges\">\n");
        for (int r = 0; r < rows; r++) {
            JsonNode l = layers.get(r);
            String name = or(val(l.path("layer")), String.valueOf(r));
            double[] tok = doubles(l.path("tokens"));
            double max = 0;
            for (double v : tok) if (Double.isFinite(v)) max = Math.max(max, v);
            double y = top + r * rh;
            for (int e = 0; e < experts; e++) {
                double v = e < tok.length ? tok[e] : Double.NaN;
                double t = Double.isFinite(v) && max > 0 ? Math.max(0, Math.min(1, v / max)) : 0;
                b.append("<rect x=\"").append(px(left + e * cw)).append("\" y=\"").append(px(y)).append("\" width=\"")
                        .append(px(cw + 0.05)).append("\" height=\"").append(px(rh + 0.05)).append("\" fill=\"")
                        .append(Double.isFinite(v) ? heat(t) : "#cccccc").append("\"><title>")
                        .append(esc("layer " + name + ", expert " + e + ": " + (Double.isFinite(v) ? fmt(v)
                                + " tokens (" + fmt(100 * t) + " % of the layer's max)" : "no data")))
                        .append("</title></rect>\n");
            }
            if (r % rowEvery == 0) text(b, left - 4, y + rh / 2 + 4, "end", name, "");
            String bal = num(l.path("balance"));
            if (bal != null && r % rowEvery == 0) text(b, w - right + 4, y + rh / 2 + 4, "start", bal, "");
        }
        b.append("</g>\n");
        int colEvery = 1;
        while (experts / colEvery > 16) colEvery *= 2;
        double base = top + rows * rh;
        for (int e = 0; e < experts; e += colEvery) text(b, left + (e + 0.5) * cw, base + 13, "middle", "" + e, "");
        text(b, left + pw / 2.0, base + 27, "middle", "expert", "");
        text(b, left - 4, top - 4, "end", "layer", "");
        text(b, w - right + 4, top - 4, "start", "balance", "");
        for (int i = 0; i <= 10; i++)
            b.append("<rect x=\"").append(left + 80 + i * 14).append("\" y=\"").append(px(base + 36))
                    .append("\" width=\"14\" height=\"10\" fill=\"").append(heat(i / 10.0)).append("\"/>\n");
        text(b, left + 76, base + 45, "end", "0", "");
        text(b, left + 80 + 11 * 14 + 4, base + 45, "start", "layer's busiest expert", "");
        return b.append("</svg>\n").toString();
    }

    /** Light to dark blue for 0..1. */
    private static String heat(double t) {
        double u = Double.isFinite(t) ? Math.max(0, Math.min(1, t)) : 0;
        return String.format(Locale.ROOT, "#%02x%02x%02x", Math.round(240 + (8 - 240) * u),
                Math.round(244 + (48 - 244) * u), Math.round(255 + (107 - 255) * u));
    }
}

