package io.epserve.cli.commands;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code epserve bench-compare} on the loadgen module's two real sweeps: a cluster and a single process. */
class BenchCompareCommandTest {
    private static final Path SWEEPS = Path.of("../loadgen/src/test/resources/io/epserve/loadgen").toAbsolutePath()
            .normalize();
    private static final String CLUSTER = SWEEPS.resolve("sweep-cluster.json").toString();
    private static final String SINGLE = SWEEPS.resolve("sweep-single.json").toString();

    @TempDir
    Path tmp;

    @Test
    void comparesTheTwoSweeps() throws Exception {
        Path html = tmp.resolve("out/compare.html"), json = tmp.resolve("out/compare.json");
        EngineCommandsTest.Run r = EngineCommandsTest.run("bench-compare", CLUSTER, SINGLE, "--html", html.toString(),
                "--json", json.toString());
        assertEquals(0, r.exit(), r.err() + r.out());
        List<String> lines = r.out().lines().toList();
        assertTrue(lines.get(0).contains(" Sweep comparison over request_rate "), r.out());
        assertTrue(lines.contains("series: cluster-1aw-2ew (baseline, 127.0.0.1:50061), single-process"
                + " (127.0.0.1:50062)"), r.out());
        for (String v : List.of("0.2", "0.5", "1", "inf")) {
            assertTrue(lines.contains("request_rate = " + v), r.out());
        }
        // rate 1 and inf: output tok/s, median TTFT, median TPOT, p99 E2EL, then the single process / the cluster
        assertTrue(lines.contains("  cluster-1aw-2ew        16      0      22.96      794.9      275.6    10855.5"),
                r.out());
        assertTrue(lines.contains("  single-process         16      0      27.41      481.3       90.1     6158.0"),
                r.out());
        assertTrue(lines.contains("    / baseline                          1.19x      0.61x      0.33x      0.57x"),
                r.out());
        assertTrue(lines.contains("  single-process         16      0      40.36     4124.1      273.1    12676.7"),
                r.out());
        assertTrue(lines.contains("    / baseline                          1.18x      0.81x      0.86x      0.85x"),
                r.out());
        assertTrue(r.out().contains("Comparison: " + json.toAbsolutePath().normalize()), r.out());
        assertTrue(r.out().contains("Report: " + html.toAbsolutePath().normalize()), r.out());

        JsonNode c = new ObjectMapper().readTree(json.toFile());
        assertEquals("request_rate", c.get("variable").asText());
        assertEquals("[0.2,0.5,1.0,\"inf\"]", c.get("values").toString());
        assertEquals(4, c.get("points").size());
        assertEquals(40.36378287869273 / 34.29314327211002, c.at("/points/3/ratios/0/output_throughput").asDouble(),
                1e-15);
        String page = Files.readString(html);
        assertTrue(page.startsWith("<!DOCTYPE html>"), "HTML report");
        assertTrue(page.contains("single-process") && page.contains("Output throughput per load point"));
        assertFalse(page.contains("NaN"));
    }

    @Test
    void writesOnlyWhatIsAskedFor() throws Exception {
        EngineCommandsTest.Run r = EngineCommandsTest.run("bench-compare", SINGLE, CLUSTER);
        assertEquals(0, r.exit(), r.err() + r.out());
        assertTrue(r.out().contains("series: single-process (baseline, 127.0.0.1:50062), cluster-1aw-2ew"), r.out());
        assertFalse(r.out().contains("Report:") || r.out().contains("Comparison:"), r.out());
    }

    @Test
    void badInputIsExitCode2() throws Exception {
        String absent = tmp.resolve("absent.json").toString();
        EngineCommandsTest.Run r = EngineCommandsTest.run("bench-compare", CLUSTER, absent);
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("no such file") && r.err().contains("absent.json"), r.err());

        // a single run's result is not a sweep
        Path run = tmp.resolve("run.json");
        Files.writeString(run, new ObjectMapper().readTree(Path.of(SINGLE).toFile()).at("/runs/0").toString());
        r = EngineCommandsTest.run("bench-compare", CLUSTER, run.toString(), "--html",
                tmp.resolve("x.html").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains(run + " is not a sweep result"), r.err());
        assertFalse(Files.exists(tmp.resolve("x.html")), "nothing written");

        Path broken = tmp.resolve("broken.json");
        Files.writeString(broken, "{\"sweep\": ");
        r = EngineCommandsTest.run("bench-compare", broken.toString(), CLUSTER);
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("cannot read " + broken), r.err());

        Path other = tmp.resolve("concurrency.json");
        Files.writeString(other, Files.readString(Path.of(SINGLE)).replace("\"variable\" : \"request_rate\"",
                "\"variable\" : \"max_concurrency\"").replace("\"variable\": \"request_rate\"",
                "\"variable\": \"max_concurrency\""));
        r = EngineCommandsTest.run("bench-compare", CLUSTER, other.toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("different variables"), r.err());

        assertEquals(2, EngineCommandsTest.run("bench-compare", CLUSTER).exit(), "one file compares with nothing");
    }
}
