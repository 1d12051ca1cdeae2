package io.epserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Comparisons of two real sweeps (loadgen/src/test/resources/io/epserve/loadgen): a router + 1 attention worker + 2
 * expert workers against the same API from one process, same workload, request rates 0.2, 0.5, 1, inf.
 */
class SweepComparisonTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    static ObjectNode sweep(String name) throws IOException {
        try (InputStream in = SweepComparisonTest.class.getResourceAsStream(name)) {
            return (ObjectNode) JSON.readTree(in);
        }
    }

    static ObjectNode cluster() throws IOException {
        return sweep("sweep-cluster.json");
    }

    static ObjectNode single() throws IOException {
        return sweep("sweep-single.json");
    }

    @Test
    void realSweepsRatiosByHand() throws Exception {
        ObjectNode c = SweepComparison.compare(List.of(cluster(), single()));
        assertEquals("request_rate", c.get("variable").asText());
        assertEquals("[0.2,0.5,1.0,\"inf\"]", c.get("values").toString());
        assertEquals("[{\"label\":\"cluster-1aw-2ew\",\"target\":\"127.0.0.1:50061\"},"
                + "{\"label\":\"single-process\",\"target\":\"127.0.0.1:50062\"}]", c.get("series").toString());
        JsonNode points = c.get("points");
        assertEquals(4, points.size());
        for (JsonNode p : points) {
            assertEquals(2, p.get("runs").size());
            assertEquals("cluster-1aw-2ew", p.at("/runs/0/label").asText());
            assertEquals("single-process", p.at("/runs/1/label").asText());
            assertEquals(1, p.get("ratios").size(), "one ratio entry per non-baseline series");
            assertEquals("single-process", p.at("/ratios/0/label").asText());
            List<String> fields = new ArrayList<>();
            p.at("/runs/0").fieldNames().forEachRemaining(fields::add);
            List<String> expected = new ArrayList<>(List.of("label"));
            expected.addAll(SweepComparison.FIELDS);
            assertEquals(expected, fields);
        }

        // rate 1: output_throughput 27.414368189317063 (single) / 22.962100137168058 (cluster)
        JsonNode one = points.get(2);
        assertEquals(1.0, one.get("value").asDouble());
        assertEquals(1.19389, one.at("/ratios/0/output_throughput").asDouble(), 1e-5);
        assertEquals(27.414368189317063 / 22.962100137168058, one.at("/ratios/0/output_throughput").asDouble(), 1e-15);
        // median TPOT 90.0519423548387 / 275.6237484354839
        assertEquals(0.32672, one.at("/ratios/0/median_tpot_ms").asDouble(), 1e-5);
        // p99 E2EL 6157.968123649999 / 10855.512326200002
        assertEquals(0.56727, one.at("/ratios/0/p99_e2el_ms").asDouble(), 1e-5);

        // inf: output_throughput 40.36378287869273 / 34.29314327211002, median TTFT 4124.1408405 / 5115.530658
        JsonNode inf = points.get(3);
        assertEquals("inf", inf.get("value").asText());
        assertEquals(1.17702, inf.at("/ratios/0/output_throughput").asDouble(), 1e-5);
        assertEquals(40.36378287869273 / 34.29314327211002, inf.at("/ratios/0/output_throughput").asDouble(), 1e-15);
        assertEquals(0.80620, inf.at("/ratios/0/median_ttft_ms").asDouble(), 1e-5);
        // p99 TTFT 5548.872120450001 / 5123.68383235: the single process waits longer at the tail
        assertEquals(1.08298, inf.at("/ratios/0/p99_ttft_ms").asDouble(), 1e-5);
        // the figures are the runs' own
        assertEquals(16, inf.at("/runs/0/completed").asInt());
        assertTrue(inf.at("/runs/0/completed").isIntegralNumber());
        assertEquals(0.06697879545333989, inf.at("/runs/0/request_goodput").asDouble());
        assertEquals(231.24323750000002, inf.at("/runs/1/median_itl_ms").asDouble());
        assertEquals(0.2, points.get(0).get("value").asDouble());
        assertEquals(6.193728257885401, points.get(0).at("/runs/0/output_throughput").asDouble());

        String text = JSON.writeValueAsString(c);
        assertFalse(text.contains("NaN") || text.contains("Infinity"), text);
    }

    @Test
    void valuesMatchWhateverWayTheyAreWritten() throws Exception {
        ObjectNode other = single();
        ArrayNode values = (ArrayNode) other.at("/sweep/values");
        values.removeAll();
        values.add(0.20).add(new java.math.BigDecimal("0.50")).add(1).add("Infinity");
        ObjectNode c = SweepComparison.compare(List.of(cluster(), other));
        assertEquals("[0.2,0.5,1.0,\"inf\"]", c.get("values").toString(), "the baseline's spelling");
        for (JsonNode p : c.get("points")) assertEquals(2, p.get("runs").size(), p.toString());

        // no values at all: each run's own request_rate ("inf" included)
        ((ObjectNode) other.get("sweep")).remove("values");
        c = SweepComparison.compare(List.of(cluster(), other));
        assertEquals(4, c.get("points").size());
        assertEquals(2, c.at("/points/3/runs").size());
        assertEquals("inf", c.at("/points/3/value").asText());
    }

    @Test
    void partialOverlapKeepsEveryPoint() throws Exception {
        ObjectNode other = single();
        ArrayNode runs = (ArrayNode) other.get("runs");
        ArrayNode values = (ArrayNode) other.at("/sweep/values");
        // the single process measured 1, inf and 2, not 0.2 and 0.5
        ObjectNode two = ((ObjectNode) runs.get(3).deepCopy()).put("request_rate", 2.0).put("output_throughput", 50.0);
        runs.remove(0);
        runs.remove(0);
        runs.add(two);
        values.removeAll();
        values.add(1.0).add("inf").add(2);
        ObjectNode c = SweepComparison.compare(List.of(cluster(), other));
        assertEquals("[0.2,0.5,1.0,2,\"inf\"]", c.get("values").toString(), "numbers ascending, inf last");
        JsonNode p = c.get("points");
        assertEquals(1, p.at("/0/runs").size());
        assertEquals("cluster-1aw-2ew", p.at("/0/runs/0/label").asText());
        assertEquals(0, p.at("/0/ratios").size(), "no other series at 0.2");
        assertEquals(2, p.at("/2/runs").size());
        assertEquals(27.414368189317063 / 22.962100137168058, p.at("/2/ratios/0/output_throughput").asDouble(), 1e-15);
        // 2: only the other series; its ratios have no baseline
        assertEquals(1, p.at("/3/runs").size());
        assertEquals("single-process", p.at("/3/runs/0/label").asText());
        assertEquals(50.0, p.at("/3/runs/0/output_throughput").asDouble());
        for (String f : SweepComparison.RATIOS) assertTrue(p.at("/3/ratios/0/" + f).isNull(), f);
        assertEquals(2, p.at("/4/runs").size());
    }

    @Test
    void rejectsWhatCannotBeCompared() throws Exception {
        ObjectNode other = single();
        ((ObjectNode) other.get("sweep")).put("variable", "max_concurrency");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> SweepComparison.compare(List.of(cluster(), other)));
        assertTrue(e.getMessage().contains("different variables") && e.getMessage().contains("request_rate")
                && e.getMessage().contains("max_concurrency") && e.getMessage().contains("single-process"),
                e.getMessage());

        JsonNode run = cluster().at("/runs/0");
        e = assertThrows(IllegalArgumentException.class, () -> SweepComparison.compare(List.of(cluster(), run)));
        assertTrue(e.getMessage().startsWith("sweep 2 is not a sweep result"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> SweepComparison.compare(List.of()));
        assertThrows(IllegalArgumentException.class, () -> SweepComparison.compare(null));
        assertThrows(IllegalArgumentException.class,
                () -> SweepComparison.compare(Arrays.asList(cluster(), null)));
        assertThrows(IllegalArgumentException.class,
                () -> SweepComparison.compare(List.of(JSON.readTree("{\"sweep\":{\"variable\":7},\"runs\":[]}"))));

        ObjectNode noValue = single();
        ((ObjectNode) noValue.get("sweep")).remove("values");
        ((ObjectNode) noValue.at("/runs/1")).remove("request_rate");
        e = assertThrows(IllegalArgumentException.class, () -> SweepComparison.compare(List.of(cluster(), noValue)));
        assertTrue(e.getMessage().contains("run 2 has no value of request_rate"), e.getMessage());
    }

    @Test
    void missingFiguresAreNull() throws Exception {
        ObjectNode base = cluster(), other = single();
        ObjectNode b0 = (ObjectNode) base.at("/runs/0"), b1 = (ObjectNode) base.at("/runs/1");
        b0.remove("p99_tpot_ms");
        b0.put("median_ttft_ms", Double.NaN);
        b1.put("output_throughput", 0);
        ObjectNode o0 = (ObjectNode) other.at("/runs/0");
        o0.remove("median_e2el_ms");
        o0.putNull("p99_e2el_ms");
        o0.put("completed", "sixteen");
        ObjectNode c = SweepComparison.compare(List.of(base, other));
        JsonNode p0 = c.at("/points/0"), p1 = c.at("/points/1");
        assertTrue(p0.at("/runs/0/p99_tpot_ms").isNull());
        assertTrue(p0.at("/runs/0/median_ttft_ms").isNull(), "NaN is null");
        assertTrue(p0.at("/runs/1/median_e2el_ms").isNull());
        assertTrue(p0.at("/runs/1/completed").isNull(), "not a number");
        assertTrue(p0.at("/ratios/0/p99_tpot_ms").isNull(), "no baseline");
        assertTrue(p0.at("/ratios/0/median_ttft_ms").isNull(), "NaN baseline");
        assertTrue(p0.at("/ratios/0/p99_e2el_ms").isNull(), "no figure");
        assertTrue(p0.at("/ratios/0/output_throughput").isNumber());
        assertEquals(0, p1.at("/runs/0/output_throughput").asDouble());
        assertTrue(p1.at("/ratios/0/output_throughput").isNull(), "zero baseline");
        String text = JSON.writeValueAsString(c);
        assertFalse(text.contains("NaN") || text.contains("Infinity"), text);
    }

    @Test
    void labelsFallBackAndStayDistinct() throws Exception {
        ObjectNode a = cluster(), b = cluster(), d = single();
        for (JsonNode r : d.get("runs")) ((ObjectNode) r).remove("label");
        ObjectNode c = SweepComparison.compare(List.of(a, b, d));
        List<String> labels = new ArrayList<>();
        c.get("series").forEach(s -> labels.add(s.get("label").asText()));
        assertEquals(List.of("cluster-1aw-2ew", "cluster-1aw-2ew (sweep 2)", "sweep 3"), labels);
        JsonNode p = c.at("/points/2");
        assertEquals(3, p.get("runs").size());
        assertEquals(2, p.get("ratios").size());
        assertEquals(1.0, p.at("/ratios/0/output_throughput").asDouble(), 1e-15, "a sweep against itself");
        assertEquals("sweep 3", p.at("/ratios/1/label").asText());
    }

    @Test
    void textTable() throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        SweepComparison.print(SweepComparison.compare(List.of(cluster(), single())),
                new PrintStream(bytes, true, StandardCharsets.UTF_8));
        String out = bytes.toString(StandardCharsets.UTF_8);
        List<String> lines = out.lines().toList();
        assertTrue(lines.get(0).contains(" Sweep comparison over request_rate "), out);
        assertTrue(out.contains("series: cluster-1aw-2ew (baseline, 127.0.0.1:50061), single-process"
                + " (127.0.0.1:50062)"), out);
        for (String v : List.of("0.2", "0.5", "1", "inf")) assertTrue(lines.contains("request_rate = " + v), out);
        assertTrue(out.contains("cluster-1aw-2ew") && out.contains("  / baseline"), out);
        // rate 1: 22.96 tok/s, median TTFT 794.9 ms, median TPOT 275.6 ms, p99 E2EL 10855.5 ms
        assertTrue(lines.stream().anyMatch(
                l -> l.matches(" +cluster-1aw-2ew +16 +0 +22\\.96 +794\\.9 +275\\.6 +10855\\.5")), out);
        assertTrue(lines.stream().anyMatch(l -> l.matches(" +/ baseline +1\\.19x +0\\.61x +0\\.33x +0\\.57x")), out);
        // inf: 1.18x the throughput
        assertTrue(lines.stream().anyMatch(l -> l.matches(" +/ baseline +1\\.18x +0\\.81x +0\\.86x +0\\.85x")), out);
    }
}
