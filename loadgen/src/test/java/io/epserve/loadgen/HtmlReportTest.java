package io.epserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;

class HtmlReportTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final JsonNodeFactory F = JsonNodeFactory.instance;
    private static final Pattern SVG = Pattern.compile("<svg\\b.*?</svg>", Pattern.DOTALL);

    @Test
    void fullRun() throws Exception {
        String html = HtmlReport.run(result(true));
        write("html-report-sample.html", html);
        checkDocument(html);
        // 4 latency CDFs, 2 timeline charts, the expert heatmap, the round trip by layer
        assertEquals(8, svgs(html).size());
        assertTrue(html.contains("1,234.57"), "p99 TTFT");
        assertTrue(html.contains("<th>p99.9</th>") && html.contains("<th>p50</th>") && html.contains("<th>p99</th>"));
        assertTrue(html.contains("2,345.68"), "p99.9 TTFT");
        assertTrue(html.contains("12,345.68 tok/s"), "output throughput");
        assertTrue(html.contains("bench &lt;&amp;&gt; run"));
        assertFalse(html.contains("bench <&> run"));
        assertTrue(html.contains("<th>request rate</th><td class=\"t\">inf</td>"), "request_rate inf");
        assertTrue(html.contains("UNAVAILABLE: worker lost") && html.contains("<td>7</td>"), "failure reasons");
        assertTrue(html.contains("DEADLINE_EXCEEDED: --request-timeout"));
        assertTrue(html.contains("12.50 %"), "exposed communication fraction");
        assertTrue(html.contains("2025-06-01 12:34:56"), "date");
        assertTrue(html.contains("random (input_len=1,024, output_len=128)"), "dataset");
        assertTrue(html.contains("Tokens per expert (4 layers \u00d7 64 experts)"));
        assertEquals(4 * 64, count(html, "<title>layer "), "one heatmap cell per layer and expert");
        assertTrue(html.contains("Dispatch-to-combine round trip by layer"));
        assertTrue(html.contains("localhost:9400/metrics"), "endpoints");
        assertTrue(html.contains("connection refused &lt;timeout &amp; retry&gt;"), "endpoint error");
        assertTrue(html.contains(">UNAVAILABLE</td><td>7</td>"), "router status codes");
    }

    @Test
    void nullServer() throws Exception {
        ObjectNode r = result(false);
        ((ObjectNode) r.get("epserve")).putNull("server");
        String html = HtmlReport.run(r);
        checkDocument(html);
        assertEquals(6, svgs(html).size());
        assertFalse(html.contains("Server side"));
        assertFalse(html.contains("Expert load"));
    }

    @Test
    void missingAndBrokenFields() throws Exception {
        ObjectNode r = F.objectNode();
        r.put("label", "partial");
        r.put("completed", 3);
        r.putNull("failed");
        r.put("median_ttft_ms", 12.5);
        r.put("p99_ttft_ms", Double.NaN);
        r.put("mean_e2el_ms", Double.POSITIVE_INFINITY);
        r.put("request_rate", "inf");
        ObjectNode e = r.putObject("epserve");
        e.putObject("timeline").putArray("output_tokens");
        e.putObject("latency_samples_ms").putArray("tpot").add(5.0).add(Double.NaN).addNull().add(7.0);
        e.putObject("failures").put("count", 0).putObject("reasons").put("UNKNOWN: x", 0);
        ObjectNode s = e.putObject("server");
        s.putObject("queue_ms").put("count", 0);
        s.putObject("expert_load").putArray("layers").addObject().put("layer", 0).putNull("tokens");
        s.putArray("layers").addObject().put("layer", 1).putObject("round_trip_us").put("count", 0);
        String html = HtmlReport.run(r);
        checkDocument(html);
        assertEquals(1, svgs(html).size(), "only the TPOT CDF has data");
        assertTrue(html.contains("12.50"));
        assertFalse(html.contains("UNKNOWN: x"), "a reason counted 0 times is left out");

        for (JsonNode odd : List.of(F.objectNode(), F.arrayNode(), F.nullNode(), F.textNode("x"),
                JSON.readTree("{\"epserve\":null,\"label\":null,\"runs\":7}"))) {
            checkDocument(assertDoesNotThrow(() -> HtmlReport.run(odd)));
            checkDocument(assertDoesNotThrow(() -> HtmlReport.sweep(odd)));
        }
        checkDocument(HtmlReport.run(null));
        checkDocument(HtmlReport.sweep(null));
    }

    @Test
    void sweep() throws Exception {
        ObjectNode s = F.objectNode();
        ObjectNode sw = s.putObject("sweep");
        sw.put("variable", "request_rate");
        sw.putArray("values").add(1).add(4).add("inf");
        ArrayNode runs = s.putArray("runs");
        Object[] rates = {1, 4, "inf"};
        for (int i = 0; i < 3; i++) {
            ObjectNode r = result(false);
            ((ObjectNode) r.get("epserve")).putNull("server");
            if (rates[i] instanceof Integer k) r.put("request_rate", k); else r.put("request_rate", "inf");
            r.put("output_throughput", 1000.0 * (i + 1));
            r.put("median_ttft_ms", 50.0 * (i + 1));
            r.put("p99_ttft_ms", 300.0 * (i + 1) + 0.25);
            r.put("label", "run <" + i + ">");
            runs.add(r);
        }
        String html = HtmlReport.sweep(s);
        write("html-report-sweep-sample.html", html);
        checkDocument(html);
        // TTFT, TPOT and E2EL against throughput; then 6 charts per run
        assertEquals(3 + 3 * 6, svgs(html).size());
        assertTrue(html.contains("TTFT against output throughput"));
        assertTrue(html.contains("<td>inf</td>"), "sweep value inf in the table");
        assertTrue(html.contains("request_rate=inf"), "point label");
        assertTrue(html.contains("900.25"), "p99 TTFT of the third run");
        assertTrue(html.contains("run &lt;2&gt;"));
        assertEquals(3, count(html, "<section class=\"run\">"));
        assertEquals(1, count(html, "<!DOCTYPE html>"));
        assertEquals(1, count(html, "<style>"));
    }

    @Test
    void compareRealSweeps() throws Exception {
        List<JsonNode> sweeps = List.of(SweepComparisonTest.cluster(), SweepComparisonTest.single());
        ObjectNode c = SweepComparison.compare(sweeps);
        String html = HtmlReport.compare(c, sweeps);
        write("html-report-compare-sample.html", html);
        checkDocument(html);
        // median and p99 of TTFT, TPOT and E2EL against throughput, then throughput per load point
        List<String> svgs = svgs(html);
        assertEquals(7, svgs.size());
        for (String svg : svgs) {
            assertTrue(svg.contains(">cluster-1aw-2ew</text>") && svg.contains(">single-process</text>"),
                    "legend in every chart: " + svg);
            assertEquals(2, count(svg, "y=\"28.0\" width=\"12\" height=\"10\""), "two legend keys");
        }
        for (String m : List.of("TTFT", "TPOT", "E2EL")) {
            assertTrue(html.contains("<title>median " + m + " against output throughput</title>"), m);
            assertTrue(html.contains("<title>p99 " + m + " against output throughput</title>"), m);
        }
        // each line chart: one polyline and 4 labelled points per series
        for (int i = 0; i < 6; i++) {
            assertEquals(2, count(svgs.get(i), "<polyline"));
            assertEquals(8, count(svgs.get(i), "<circle"));
            assertTrue(svgs.get(i).contains("request_rate=inf: single-process"), "point titles name the value");
            assertTrue(svgs.get(i).contains(">0.2</text>") && svgs.get(i).contains(">inf</text>"), "point labels");
        }
        String bars = svgs.get(6);
        assertTrue(bars.contains("Output throughput per load point"));
        assertEquals(8, count(bars, "</title></rect>"), "a bar per series and load point");
        for (String v : List.of("0.2", "0.5", "1", "inf")) assertTrue(bars.contains(">" + v + "</text>"), v);
        assertTrue(bars.contains("single-process: inf \u2192 40.36"));
        // a table per load point, figures and ratios
        for (String v : List.of("0.2", "0.5", "1", "inf")) {
            assertTrue(html.contains("<h3>request_rate = " + v + "</h3>"), v);
        }
        assertEquals(4, count(html, ">\u00f7 baseline</td>"), "a ratio row per load point");
        assertTrue(html.contains("<td>40.36</td>") && html.contains("<td>34.29</td>"), "output throughput at inf");
        assertTrue(html.contains("<td>1.18\u00a0\u00d7</td>") && html.contains("<td>1.19\u00a0\u00d7</td>"),
                "ratios at inf and 1");
        assertTrue(html.contains("127.0.0.1:50061") && html.contains("baseline <b>cluster-1aw-2ew</b>"));
        assertEquals(1, count(html, "<!DOCTYPE html>"));
    }

    @Test
    void compareOddInput() throws Exception {
        ObjectNode base = SweepComparisonTest.cluster(), other = SweepComparisonTest.single();
        ((ObjectNode) other.at("/runs/0")).put("label", "single <&> \"process\"");
        ((ObjectNode) base.at("/runs/1")).remove(List.of("output_throughput", "median_ttft_ms"));
        ((ObjectNode) base.at("/runs/2")).put("p99_e2el_ms", Double.NaN);
        other.at("/runs").forEach(r -> ((ObjectNode) r).remove("median_tpot_ms"));
        ((ArrayNode) other.get("runs")).remove(3);
        ((ArrayNode) other.at("/sweep/values")).remove(3);
        ObjectNode c = SweepComparison.compare(List.of(base, other));
        String html = HtmlReport.compare(c, List.of(base, other));
        checkDocument(html);
        assertTrue(html.contains("single &lt;&amp;&gt; &quot;process&quot;"));
        assertFalse(html.contains("single <&>"));
        // median TPOT has only the baseline's line, so no legend there
        assertEquals(7, svgs(html).size());
        // eight series with long labels: the legend wraps onto a second row instead of running off the chart
        List<JsonNode> many = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            ObjectNode s = SweepComparisonTest.single();
            String label = "configuration number " + "x".repeat(i);
            s.get("runs").forEach(r -> ((ObjectNode) r).put("label", label));
            many.add(s);
        }
        String wide = HtmlReport.compare(SweepComparison.compare(many), many);
        checkDocument(wide);
        for (String svg : svgs(wide)) {
            assertEquals(8, count(svg, "width=\"12\" height=\"10\""), "eight legend keys");
            assertTrue(svg.contains("y=\"43.0\" width=\"12\" height=\"10\""), "a second legend row");
        }
        for (JsonNode odd : List.of(F.objectNode(), F.arrayNode(), F.nullNode(), F.textNode("x"),
                JSON.readTree("{\"variable\":null,\"series\":7,\"points\":[{\"value\":null,\"runs\":[{}]}]}"))) {
            checkDocument(assertDoesNotThrow(() -> HtmlReport.compare(odd, null)));
            checkDocument(assertDoesNotThrow(() -> HtmlReport.compare(odd, List.of())));
        }
        checkDocument(HtmlReport.compare(null, null));
    }

    @Test
    void heatmapSizes() throws Exception {
        for (int experts : new int[] {8, 256}) {
            ObjectNode r = result(true);
            ObjectNode server = (ObjectNode) r.get("epserve").get("server");
            server.set("expert_load", expertLoad(experts, 61, new Random(experts)));
            String html = HtmlReport.run(r);
            if (experts == 256) write("html-report-256-experts-sample.html", html);
            checkDocument(html);
            assertEquals(61 * experts, count(html, "<title>layer "));
            assertTrue(html.contains("61 layers \u00d7 " + experts + " experts"));
        }
    }

    @Test
    void numberFormat() {
        assertEquals("1,234.57", Html.fmt(1234.5678));
        assertEquals("12,345,678.00", Html.fmt(12345678.0));
        assertEquals("1,000,000,000,000,000,000.00", Html.fmt(1e18));
        assertEquals("0.00123", Html.fmt(0.0012345));
        assertEquals("0.00", Html.fmt(0));
        assertEquals("-3.14", Html.fmt(-3.14159));
        assertEquals("\u2013", Html.fmt(Double.NaN));
        assertEquals("inf", Html.fmt(Double.POSITIVE_INFINITY));
        assertEquals("&lt;a href=&quot;x&quot;&gt;&amp;&#39;", Html.esc("<a href=\"x\">&'\u0001"));
    }

    // ---- checks -----------------------------------------------------------------------------------------------

    private static void checkDocument(String html) throws Exception {
        assertTrue(html.startsWith("<!DOCTYPE html>"));
        assertFalse(Pattern.compile("(src|href)\\s*=\\s*[\"']?\\s*(https?:)?//", Pattern.CASE_INSENSITIVE)
                .matcher(html).find(), "no external references");
        assertFalse(html.toLowerCase().contains("<script"), "no scripts");
        assertFalse(html.contains("<link") || html.contains("@import") || html.contains("url("), "no external styles");
        assertFalse(html.contains("NaN") || html.contains("Infinity"), "no NaN/Infinity");
        assertFalse(html.contains("could not be rendered"), "every part rendered");
        for (String svg : svgs(html)) {
            Document d = parse(svg);
            assertEquals("svg", d.getDocumentElement().getLocalName());
        }
        parse(html); // the whole document is well-formed XML as well
    }

    private static Document parse(String xml) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature("http://apache.org/xml/features/nonvalidating/load-external-dtd", false);
        return f.newDocumentBuilder().parse(new ByteArrayInputStream(xml.getBytes(StandardCharsets.UTF_8)));
    }

    private static List<String> svgs(String html) {
        List<String> out = new ArrayList<>();
        Matcher m = SVG.matcher(html);
        while (m.find()) out.add(m.group());
        return out;
    }

    private static int count(String s, String what) {
        int n = 0;
        for (int i = s.indexOf(what); i >= 0; i = s.indexOf(what, i + what.length())) n++;
        return n;
    }

    private static void write(String name, String html) throws IOException {
        Path dir = Path.of("target");
        Files.createDirectories(dir);
        Files.writeString(dir.resolve(name), html);
    }

    // ---- a synthetic result -----------------------------------------------------------------------------------

    private static ObjectNode result(boolean server) {
        Random rnd = new Random(42);
        ObjectNode r = F.objectNode();
        r.put("date", "20250601-123456");
        r.put("backend", "epserve-grpc");
        r.put("endpoint_type", "epserve-grpc");
        r.put("label", "bench <&> run");
        r.put("model_id", "tiny-moe-64e");
        r.put("num_prompts", 1000);
        r.put("request_rate", "inf");
        r.put("burstiness", 1.0);
        r.put("max_concurrency", 64);
        r.put("duration", 60.5);
        r.put("completed", 990);
        r.put("failed", 10);
        r.put("total_input_tokens", 1013760);
        r.put("total_output_tokens", 126720);
        r.put("request_throughput", 16.36);
        r.put("output_throughput", 12345.678);
        r.put("total_token_throughput", 18851.23);
        r.put("request_goodput", 15.2);
        r.put("max_output_tokens_per_s", 2400.0);
        r.put("max_concurrent_requests", 64);
        double[] base = {250, 20, 18, 3000};
        String[] metrics = {"ttft", "tpot", "itl", "e2el"};
        for (int i = 0; i < 4; i++) {
            String m = metrics[i];
            r.put("mean_" + m + "_ms", base[i] * 1.1);
            r.put("median_" + m + "_ms", base[i]);
            r.put("std_" + m + "_ms", base[i] * 0.3);
            r.put("p50_" + m + "_ms", base[i]);
            r.put("p99_" + m + "_ms", base[i] * 4);
            r.put("p99.9_" + m + "_ms", base[i] * 8);
        }
        r.put("p99_ttft_ms", 1234.5678);
        r.put("p99.9_ttft_ms", 2345.678);
        ObjectNode e = r.putObject("epserve");
        e.put("target", "localhost:50051");
        e.putObject("dataset").put("name", "random").put("input_len", 1024).put("output_len", 128);
        e.put("seed", 0);
        e.put("ignore_eos", true);
        e.put("num_warmups", 4);
        e.putObject("goodput_slos").put("ttft", 500).put("tpot", 50);
        ObjectNode failures = e.putObject("failures");
        failures.put("count", 10);
        failures.putObject("reasons").put("UNAVAILABLE: worker lost", 7).put("DEADLINE_EXCEEDED: --request-timeout", 3);
        e.putObject("finish_reasons").put("stop", 900).put("length", 90);
        e.put("server_output_tokens", 126720);
        e.putObject("server_queue_ms").put("mean", 3.2).put("median", 2.0).put("p50", 2.0).put("p90", 7.5)
                .put("p99", 20.1);
        ObjectNode samples = e.putObject("latency_samples_ms");
        for (int i = 0; i < 4; i++) {
            double[] v = new double[500];
            for (int k = 0; k < v.length; k++) v[k] = base[i] * Math.exp(0.5 * rnd.nextGaussian());
            java.util.Arrays.sort(v);
            ArrayNode a = samples.putArray(metrics[i]);
            for (double x : v) a.add(x);
        }
        ObjectNode t = e.putObject("timeline");
        t.put("bucket_seconds", 1);
        ArrayNode out = t.putArray("output_tokens"), done = t.putArray("completed_requests");
        ArrayNode conc = t.putArray("concurrent_requests"), started = t.putArray("started_requests");
        for (int s = 0; s < 61; s++) {
            out.add(1800 + rnd.nextInt(600));
            done.add(14 + rnd.nextInt(5));
            conc.add(s == 60 ? 3 : 64);
            started.add(s < 59 ? 17 : 0);
        }
        if (server) e.set("server", server(rnd));
        else e.putNull("server");
        return r;
    }

    private static ObjectNode server(Random rnd) {
        ObjectNode s = F.objectNode();
        ArrayNode eps = s.putArray("endpoints");
        eps.addObject().put("url", "localhost:9400/metrics").put("role", "router").put("ok", true).putNull("error");
        eps.addObject().put("url", "10.0.0.2:9401/metrics").put("role", "attention").put("ok", false)
                .put("error", "connection refused <timeout & retry>");
        ObjectNode router = s.putObject("router");
        router.putObject("requests").put("OK", 990).put("UNAVAILABLE", 7).put("DEADLINE_EXCEEDED", 3);
        router.put("prompt_tokens", 1013760).put("generated_tokens", 126720);
        router.set("ttft_ms", hist(990, 240));
        router.set("inter_token_ms", hist(125730, 18));
        router.set("request_ms", hist(990, 3000));
        s.set("queue_ms", hist(1000, 2.5));
        s.putObject("prefill_step_ms").put("count", 0);
        s.set("decode_step_ms", hist(7800, 17.5));
        s.putObject("steps").put("prefill", 120).put("decode", 7800).put("failed", 0);
        s.putObject("step_tokens").put("prefill", 1013760).put("decode", 125730);
        s.put("decode_batch_mean", 16.12);
        s.putObject("time_split").put("step", 58.0).put("attention", 20.3).put("shared_expert", 4.1)
                .put("dispatch", 3.2).put("exposed_wait", 7.25).put("exposed_communication_fraction", 0.125);
        ArrayNode layers = s.putArray("layers");
        for (int l = 0; l < 4; l++) {
            ObjectNode o = layers.addObject();
            o.put("layer", l);
            o.set("dispatch_us", hist(7920, 12 + l));
            o.set("round_trip_us", hist(7920, 310 + 20 * l));
        }
        s.set("expert_load", expertLoad(64, 4, rnd));
        return s;
    }

    private static ObjectNode hist(long count, double p50) {
        return F.objectNode().put("count", count).put("mean", p50 * 1.15).put("p50", p50).put("p90", p50 * 2.1)
                .put("p99", p50 * 4.3);
    }

    private static ObjectNode expertLoad(int experts, int layers, Random rnd) {
        ObjectNode o = F.objectNode();
        o.put("experts", experts);
        ArrayNode ls = o.putArray("layers");
        double sum = 0;
        for (int l = 0; l < layers; l++) {
            ObjectNode layer = ls.addObject();
            layer.put("layer", l + 1);
            ArrayNode tok = layer.putArray("tokens");
            long total = 0, max = 0;
            for (int k = 0; k < experts; k++) {
                long v = (long) (1000 * Math.exp(0.6 * rnd.nextGaussian())) + (k == 3 ? 5000 : 0);
                tok.add(v);
                total += v;
                max = Math.max(max, v);
            }
            double balance = (double) total / experts / max;
            layer.put("balance", balance);
            sum += balance;
        }
        o.put("balance_mean", sum / layers);
        return o;
    }
}
