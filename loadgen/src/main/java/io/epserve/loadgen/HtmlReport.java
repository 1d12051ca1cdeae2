package io.epserve.loadgen;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.MissingNode;
import java.math.BigDecimal;
import java.math.MathContext;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The self-contained HTML report of {@code epserve bench}: one file, styles inline, every chart an inline SVG drawn
 * here, nothing fetched at view time. It reads only the fields described in {@code loadgen/RESULT.md}; any of them
 * may be missing or null (older or partial results), and what is missing is left out. The document is also
 * well-formed XML (void elements closed, only numeric character references), so each SVG can be cut out as is.
 */
public final class HtmlReport {

    private static final List<String> METRICS = List.of("ttft", "tpot", "itl", "e2el");
    private static final Pattern PERCENTILE = Pattern.compile("p([0-9.]+)_(ttft|tpot|itl|e2el)_ms");
    private static final Pattern PERCENTILE_KEY = Pattern.compile("(median|p99)_(\\w+)_ms");
    private static final Pattern DATE = Pattern.compile("(\\d{4})(\\d{2})(\\d{2})-(\\d{2})(\\d{2})(\\d{2})");
    private static final String[] COLOURS = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
    private static final String DASH = "\u2013";
    private static final Pattern NUMERIC = Pattern.compile("|[-+]?[0-9][0-9,.]*( .*)?|\u2013|-?inf");
    private static final String STYLE = """
            body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;\
            max-width:1120px;margin:0 auto;padding:1rem 1.5rem 3rem;color:#222;line-height:1.4}
            h1{font-size:1.6rem;margin:.5rem 0 1rem}h2{font-size:1.3rem;margin-top:2rem;border-bottom:1px solid #ddd}
            h3{font-size:1.1rem;margin-top:1.5rem}h4{font-size:1rem;margin-top:1.2rem}
            table{border-collapse:collapse;margin:.4rem 0 1rem;font-variant-numeric:tabular-nums;font-size:.9rem}
            th,td{border:1px solid #ddd;padding:.2rem .6rem;text-align:right;vertical-align:top}
            th{background:#f4f6f8}th:first-child,td:first-child{text-align:left}td.t,th.t{text-align:left}
            .charts{display:flex;flex-wrap:wrap;gap:.8rem}.charts svg{border:1px solid #eee;background:#fff}
            svg{max-width:100%;height:auto}.muted{color:#777}.bad{color:#b00020}
            section.run{margin-top:2.5rem;padding-top:.5rem;border-top:3px solid #ccd}
            """;

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

    // ---- HTML helpers -----------------------------------------------------------------------------------------

    private static void open(StringBuilder b, String title) {
        b.append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n")
                .append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>")
                .append(esc(title)).append("</title>\n<style>\n").append(STYLE).append("</style>\n</head>\n<body>\n");
    }

    private static String close(StringBuilder b) {
        return b.append("<p class=\"muted\">Generated by epserve bench. Field definitions: loadgen/RESULT.md.</p>\n")
                .append("</body>\n</html>\n").toString();
    }

    /** Renders one part; a bug in one part costs that part, not the report. */
    private static void section(StringBuilder b, String name, Consumer<StringBuilder> part) {
        StringBuilder x = new StringBuilder();
        try {
            part.accept(x);
            b.append(x);
        } catch (RuntimeException e) {
            b.append("<p class=\"bad\">The ").append(esc(name)).append(" part could not be rendered: ")
                    .append(esc(String.valueOf(e))).append("</p>\n");
        }
    }

    private static void heading(StringBuilder b, int h, String text) {
        int l = Math.min(h, 6);
        b.append("<h").append(l).append('>').append(esc(text)).append("</h").append(l).append(">\n");
    }

    private static void charts(StringBuilder b, int h, String title, List<String> svgs) {
        svgs.removeIf(String::isEmpty);
        if (svgs.isEmpty()) return;
        heading(b, h, title);
        b.append("<div class=\"charts\">\n");
        svgs.forEach(b::append);
        b.append("</div>\n");
    }

    private static void kvTable(StringBuilder b, Map<String, String> kv) {
        List<List<String>> rows = new ArrayList<>();
        kv.forEach((k, v) -> {
            if (v != null) rows.add(List.of(k, v));
        });
        if (rows.isEmpty()) return;
        b.append("<table>\n");
        rows.forEach(r -> b.append("<tr><th>").append(esc(r.get(0))).append("</th><td class=\"t\">")
                .append(esc(r.get(1))).append("</td></tr>\n"));
        b.append("</table>\n");
    }

    private static void table(StringBuilder b, List<String> head, List<List<String>> rows) {
        if (rows.isEmpty()) return;
        b.append("<table>\n<tr>");
        for (int i = 0; i < head.size(); i++) {
            boolean text = i > 0 && i < rows.get(0).size() && !NUMERIC.matcher(rows.get(0).get(i)).matches();
            b.append(text ? "<th class=\"t\">" : "<th>").append(esc(head.get(i))).append("</th>");
        }
        b.append("</tr>\n");
        for (List<String> r : rows) {
            b.append("<tr>");
            r.forEach(x -> b.append(NUMERIC.matcher(x).matches() ? "<td>" : "<td class=\"t\">").append(esc(x))
                    .append("</td>"));
            b.append("</tr>\n");
        }
        b.append("</table>\n");
    }

    // ---- values -----------------------------------------------------------------------------------------------

    private static JsonNode orMissing(JsonNode n) {
        return n == null ? MissingNode.getInstance() : n;
    }

    private static boolean has(JsonNode n) {
        return n != null && !n.isMissingNode() && !n.isNull();
    }

    /** A string field as is (or a non-string value as JSON), null when missing or null. */
    private static String str(JsonNode n) {
        if (!has(n)) return null;
        return n.isTextual() ? n.textValue() : val(n);
    }

    /** Display text of any value: numbers formatted, "inf" kept, objects as k=v lists; null when absent. */
    private static String val(JsonNode n) {
        if (!has(n)) return null;
        if (n.isNumber()) return num(n);
        if (n.isTextual()) {
            String t = n.textValue().trim().toLowerCase(Locale.ROOT);
            return switch (t) {
                case "inf", "+inf", "infinity", "+infinity" -> "inf";
                case "-inf", "-infinity" -> "-inf";
                case "nan" -> DASH;
                default -> n.textValue();
            };
        }
        if (n.isBoolean()) return n.booleanValue() ? "yes" : "no";
        if (n.isObject()) {
            List<String> parts = new ArrayList<>();
            n.properties().forEach(p -> parts.add(p.getKey() + "=" + or(val(p.getValue()), "null")));
            return String.join(", ", parts);
        }
        if (n.isArray()) {
            List<String> parts = new ArrayList<>();
            n.forEach(x -> parts.add(or(val(x), "null")));
            return "[" + String.join(", ", parts) + "]";
        }
        return n.asText();
    }

    /** A number field formatted, null when missing or not a number. */
    private static String num(JsonNode n) {
        if (!has(n) || !n.isNumber()) return null;
        if (n.isIntegralNumber()) return String.format(Locale.ROOT, "%,d", n.bigIntegerValue());
        return fmt(n.doubleValue());
    }

    private static String whole(double v) {
        return Double.isFinite(v) && Math.abs(v) < 1e18 ? String.format(Locale.ROOT, "%,d", Math.round(v)) : fmt(v);
    }

    private static String suffix(String v, String unit) {
        return v == null || v.equals(DASH) || v.equals("inf") ? v : v + unit;
    }

    /** 2 decimals with thousands separators, 3 significant digits below 0.01; never scientific, never NaN. */
    static String fmt(double v) {
        if (!Double.isFinite(v)) return Double.isNaN(v) ? DASH : v > 0 ? "inf" : "-inf";
        if (v == 0 || Math.abs(v) >= 0.01) return String.format(Locale.ROOT, "%,.2f", v);
        return new BigDecimal(v).round(new MathContext(3)).stripTrailingZeros().toPlainString();
    }

    private static double dbl(JsonNode n) {
        return n != null && n.isNumber() ? n.doubleValue() : Double.NaN;
    }

    /** The numbers of an array (non-numbers as NaN), empty when not an array. */
    private static double[] doubles(JsonNode a) {
        if (a == null || !a.isArray()) return new double[0];
        double[] d = new double[a.size()];
        for (int i = 0; i < d.length; i++) d[i] = dbl(a.get(i));
        return d;
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

    private static String date(String d) {
        if (d == null) return null;
        Matcher m = DATE.matcher(d);
        return m.matches() ? m.group(1) + "-" + m.group(2) + "-" + m.group(3) + " " + m.group(4) + ":" + m.group(5)
                + ":" + m.group(6) : d;
    }

    /** Escapes text for HTML and XML (text and attribute values) and drops characters XML 1.0 does not allow. */
    static String esc(String s) {
        if (s == null) return "";
        StringBuilder b = new StringBuilder(s.length() + 16);
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            switch (ch) {
                case '<' -> b.append("&lt;");
                case '>' -> b.append("&gt;");
                case '&' -> b.append("&amp;");
                case '"' -> b.append("&quot;");
                case '\'' -> b.append("&#39;");
                default -> {
                    if (ch >= 0x20 && ch != 0xFFFE && ch != 0xFFFF || ch == '\t' || ch == '\n' || ch == '\r') {
                        b.append(ch);
                    }
                }
            }
        }
        return b.toString();
    }

    private static String or(String a, String b) {
        return a != null ? a : b;
    }

    // ---- SVG --------------------------------------------------------------------------------------------------

    /** SVG coordinate: one decimal, 0 for anything not finite. */
    private static String px(double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%.1f", v) : "0";
    }

    private static void svgOpen(StringBuilder b, int w, int h, String title) {
        b.append("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 ").append(w).append(' ').append(h)
                .append("\" width=\"").append(w).append("\" height=\"").append(h)
                .append("\" role=\"img\" font-family=\"system-ui,sans-serif\" font-size=\"11\">\n<title>")
                .append(esc(title)).append("</title>\n<text x=\"").append(w / 2).append("\" y=\"18\" text-anchor=")
                .append("\"middle\" font-size=\"13\" font-weight=\"600\">").append(esc(title)).append("</text>\n");
    }

    private static void text(StringBuilder b, double x, double y, String anchor, String s, String extra) {
        b.append("<text x=\"").append(px(x)).append("\" y=\"").append(px(y)).append("\" text-anchor=\"")
                .append(anchor).append('"').append(extra).append('>').append(esc(s)).append("</text>\n");
    }

    private record Series(String name, double[] xs, double[] ys, boolean bars, boolean marks, String[] pointLabels) {
        Series(String name, double[] xs, double[] ys, boolean bars, boolean marks) {
            this(name, xs, ys, bars, marks, null);
        }

        Series labels(String[] l) {
            return new Series(name, xs, ys, bars, marks, l);
        }

        boolean ok(int i) {
            return i < xs.length && i < ys.length && Double.isFinite(xs[i]) && Double.isFinite(ys[i]);
        }
    }

    /** An x/y chart of lines (optionally with marked, labelled points) and grouped bars. */
    private static final class Chart {
        private static final int W = 520, H = 300, L = 64, B = 44;
        private final String title, xLabel, yLabel;
        private final List<Series> series = new ArrayList<>();
        private double yLo = Double.NaN, yHi = Double.NaN;
        private boolean integerX;
        private String pointName = "";

        Chart(String title, String xLabel, String yLabel) {
            this.title = title;
            this.xLabel = xLabel;
            this.yLabel = yLabel;
        }

        Chart add(Series s) {
            series.add(s);
            return this;
        }

        Chart yFixed(double lo, double hi) {
            yLo = lo;
            yHi = hi;
            return this;
        }

        Chart pointName(String name) {
            pointName = name;
            return this;
        }

        Chart integerX() {
            integerX = true;
            return this;
        }

        /** The SVG, or "" when no series has a finite point. */
        String svg() {
            List<Series> live = series.stream().filter(s -> {
                for (int i = 0; i < s.xs.length; i++) if (s.ok(i)) return true;
                return false;
            }).toList();
            if (live.isEmpty()) return "";
            double x0 = Double.POSITIVE_INFINITY, x1 = Double.NEGATIVE_INFINITY, y0 = 0, y1 = Double.NEGATIVE_INFINITY;
            double spacing = Double.POSITIVE_INFINITY;
            List<Double> barXs = new ArrayList<>();
            for (Series s : live)
                for (int i = 0; i < s.xs.length; i++) {
                    if (!s.ok(i)) continue;
                    x0 = Math.min(x0, s.xs[i]);
                    x1 = Math.max(x1, s.xs[i]);
                    y0 = Math.min(y0, s.ys[i]);
                    y1 = Math.max(y1, s.ys[i]);
                    if (s.bars) barXs.add(s.xs[i]);
                }
            int nBars = (int) live.stream().filter(Series::bars).count();
            if (nBars > 0) {
                List<Double> sorted = barXs.stream().sorted().distinct().toList();
                for (int i = 1; i < sorted.size(); i++) spacing = Math.min(spacing, sorted.get(i) - sorted.get(i - 1));
                if (!Double.isFinite(spacing)) spacing = 1;
                x0 -= spacing / 2;
                x1 += spacing / 2;
            }
            boolean marked = live.stream().anyMatch(Series::marks), tight = nBars > 0 || marked;
            if (marked) { // room for the points and their labels
                double d = x1 > x0 ? (x1 - x0) * 0.06 : Math.max(Math.abs(x0) * 0.1, 1);
                x0 -= d;
                x1 += d;
            }
            if (!Double.isNaN(yLo)) {
                y0 = yLo;
                y1 = yHi;
            } else {
                y1 += (y1 - y0) * 0.06;
            }
            double[] xt = ticks(x0, x1, 6, integerX), yt = ticks(y0, y1, 5, false);
            double ax0 = tight ? x0 : xt[0], ax1 = tight ? x1 : xt[xt.length - 1];
            double ay0 = yt[0], ay1 = yt[yt.length - 1];
            boolean legend = live.size() > 1;
            int T = legend ? 46 : 30, pw = W - L - 28, ph = H - T - B;
            StringBuilder b = new StringBuilder(4096);
            svgOpen(b, W, H, title);
            java.util.function.DoubleUnaryOperator fx = x -> L + (x - ax0) / (ax1 - ax0) * pw;
            java.util.function.DoubleUnaryOperator fy = y -> T + ph - (y - ay0) / (ay1 - ay0) * ph;
            b.append("<g stroke=\"#e5e5e5\" stroke-width=\"1\">\n");
            for (double y : yt) line(b, L, fy.applyAsDouble(y), L + pw, fy.applyAsDouble(y));
            for (double x : xt) if (x >= ax0 && x <= ax1) line(b, fx.applyAsDouble(x), T, fx.applyAsDouble(x), T + ph);
            b.append("</g>\n<g stroke=\"#444\" stroke-width=\"1\">\n");
            line(b, L, T + ph, L + pw, T + ph);
            line(b, L, T, L, T + ph);
            b.append("</g>\n");
            int yd = decimals(yt), xd = decimals(xt);
            for (double y : yt) text(b, L - 6, fy.applyAsDouble(y) + 4, "end", tick(y, yd), "");
            for (double x : xt)
                if (x >= ax0 && x <= ax1) text(b, fx.applyAsDouble(x), T + ph + 15, "middle", tick(x, xd), "");
            text(b, L + pw / 2.0, H - 8, "middle", xLabel, "");
            text(b, 14, T + ph / 2.0, "middle", yLabel, " transform=\"rotate(-90 14 " + px(T + ph / 2.0) + ")\"");
            int bar = 0;
            for (int k = 0; k < live.size(); k++) {
                Series s = live.get(k);
                String col = COLOURS[series.indexOf(s) % COLOURS.length];
                if (s.bars) {
                    double full = spacing / (ax1 - ax0) * pw * 0.85, w = full / nBars;
                    b.append("<g fill=\"").append(col).append("\">\n");
                    for (int i = 0; i < s.xs.length; i++) {
                        if (!s.ok(i)) continue;
                        double x = fx.applyAsDouble(s.xs[i]) - full / 2 + bar * w;
                        double ya = fy.applyAsDouble(Math.max(0, ay0)), yb = fy.applyAsDouble(s.ys[i]);
                        b.append("<rect x=\"").append(px(x)).append("\" y=\"").append(px(Math.min(ya, yb)))
                                .append("\" width=\"").append(px(Math.max(w, 0.5))).append("\" height=\"")
                                .append(px(Math.abs(ya - yb))).append("\"><title>").append(esc(s.name + ": "
                                        + fmt(s.xs[i]) + " \u2192 " + fmt(s.ys[i]))).append("</title></rect>\n");
                    }
                    b.append("</g>\n");
                    bar++;
                    continue;
                }
                b.append("<polyline fill=\"none\" stroke=\"").append(col).append("\" stroke-width=\"1.8\" points=\"");
                for (int i = 0; i < s.xs.length; i++)
                    if (s.ok(i)) b.append(px(fx.applyAsDouble(s.xs[i]))).append(',')
                            .append(px(fy.applyAsDouble(s.ys[i]))).append(' ');
                b.append("\"/>\n");
                if (!s.marks) continue;
                for (int i = 0; i < s.xs.length; i++) {
                    if (!s.ok(i)) continue;
                    double x = fx.applyAsDouble(s.xs[i]), y = fy.applyAsDouble(s.ys[i]);
                    String lab = s.pointLabels != null && i < s.pointLabels.length ? s.pointLabels[i] : null;
                    b.append("<circle cx=\"").append(px(x)).append("\" cy=\"").append(px(y)).append("\" r=\"3.5\" ")
                            .append("fill=\"").append(col).append("\"><title>").append(esc((lab == null ? "" : pointName
                                    + "=" + lab + ": ") + s.name + " " + fmt(s.ys[i]) + " at " + fmt(s.xs[i])))
                            .append("</title></circle>\n");
                    boolean right = x > L + pw * 0.85;
                    if (lab != null) text(b, right ? x - 6 : x + 6, y - 6, right ? "end" : "start", lab,
                            " fill=\"" + col + "\" font-size=\"10\"");
                }
            }
            double lx = L;
            for (int k = 0; legend && k < live.size(); k++) {
                String col = COLOURS[series.indexOf(live.get(k)) % COLOURS.length];
                b.append("<rect x=\"").append(px(lx)).append("\" y=\"28\" width=\"12\" height=\"10\" fill=\"")
                        .append(col).append("\"/>\n");
                text(b, lx + 16, 37, "start", live.get(k).name, "");
                lx += 30 + 6.5 * live.get(k).name.length();
            }
            return b.append("</svg>\n").toString();
        }

        private static void line(StringBuilder b, double x1, double y1, double x2, double y2) {
            b.append("<line x1=\"").append(px(x1)).append("\" y1=\"").append(px(y1)).append("\" x2=\"")
                    .append(px(x2)).append("\" y2=\"").append(px(y2)).append("\"/>\n");
        }
    }

    /** Round tick values covering [lo, hi], about n of them. */
    private static double[] ticks(double lo, double hi, int n, boolean integer) {
        if (!Double.isFinite(lo) || !Double.isFinite(hi)) return new double[] {0, 1};
        if (hi <= lo) {
            double d = lo == 0 ? 1 : Math.abs(lo) * 0.1;
            hi = lo + d;
            if (lo != 0) lo -= d;
        }
        double raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / mag;
        double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
        if (integer) step = Math.max(1, step);
        double s = Math.floor(lo / step) * step, e = Math.ceil(hi / step) * step;
        long count = Math.round((e - s) / step);
        if (!Double.isFinite(step) || step <= 0 || count < 1 || count > 100) return new double[] {lo, hi};
        double[] t = new double[(int) count + 1];
        for (int i = 0; i <= count; i++) t[i] = Math.abs(s + i * step) < step * 1e-9 ? 0 : s + i * step;
        return t;
    }

    private static int decimals(double[] ticks) {
        double step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
        return step >= 1 || step <= 0 ? 0 : (int) Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
    }

    private static String tick(double v, int decimals) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%,." + decimals + "f", v) : "";
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
