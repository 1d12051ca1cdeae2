package io.epserve.expert;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.cluster.metrics.Metrics;
import io.epserve.cluster.metrics.MetricsScrape;
import io.epserve.transport.Channels;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** An expert worker with --metrics-port 0 and a test-side attention worker: /metrics counts what it served. */
class ExpertWorkerMetricsTest {
    static final Duration TIMEOUT = Duration.ofSeconds(10);

    @Test
    void metricsCountExchangesRowsPerExpertWavesRejectionsAndPeers() throws Exception {
        Tiny.Layer1 golden = new Tiny.Layer1();
        int port;
        try (ExpertWorker worker = ExpertWorker.start(ExpertWorker.options().model(Tiny.dir()).experts("0-3")
                .listen("127.0.0.1:" + Channels.freeLoopbackPort()).kernels("exact").threads(1).workerId(9)
                .metricsPort(0).log(s -> { }))) {
            port = worker.metrics().port();
            assertTrue(port > 0);
            assertTrue(worker.readyLine().endsWith("; metrics 127.0.0.1:" + port), worker.readyLine());
            MetricsScrape idle = MetricsScrape.fetch("127.0.0.1", port);
            assertEquals(0, idle.value(Metrics.EXPERT_PEERS));
            assertEquals(0, idle.value(Metrics.EXPERT_EXCHANGES));
            assertEquals(0, idle.value(Metrics.EXPERT_BUSY_SECONDS));
            assertEquals(1, idle.value(Metrics.BUILD_INFO, "role", "expert-worker"));
            // One counter per placed (layer, expert): 4 experts in each of the tiny model's layers (MTP block included).
            assertEquals(4 * worker.placement().layerCount(), idle.samples(Metrics.EXPERT_ROWS).size());

            try (AttentionEndpoint attn = new AttentionEndpoint("attn-metrics", 42, worker.listenChannel(),
                    worker.dispatchStream(), worker.controlStream())) {
                attn.hello(worker.modelFingerprint());
                List<Tiny.Row> rows = golden.rows(e -> e < 4);
                int entries = rows.stream().mapToInt(r -> r.slots().size()).sum();
                long experts = rows.stream().flatMap(r -> r.slots().stream()).mapToInt(Tiny.Slot::expert).distinct()
                        .count();
                golden.dispatch(attn.dispatchWriter, 1, attn.source, Tiny.LAYER, rows);
                attn.await(() -> attn.received.rowsOf(1).size() >= entries, TIMEOUT, entries + " combine rows");
                // A refused one: expert 6 is not held here.
                golden.dispatch(attn.dispatchWriter, 2, attn.source, Tiny.LAYER, golden.rows(e -> e == 6));
                attn.await(() -> !attn.received.errors.isEmpty(), TIMEOUT, "an Error");

                MetricsScrape s = MetricsScrape.fetch("127.0.0.1", port);
                assertEquals(1, s.value(Metrics.EXPERT_PEERS));
                assertEquals(1, s.value(Metrics.EXPERT_EXCHANGES));
                double busy = s.value(Metrics.EXPERT_BUSY_SECONDS);
                assertTrue(busy > 0 && busy < TIMEOUT.toSeconds(), "busy seconds of one exchange: " + busy);
                assertEquals(1, s.value(Metrics.EXPERT_REJECTED));
                assertEquals(experts, s.value(Metrics.EXPERT_WAVES), "one wave per expert with rows");
                assertEquals(entries, s.sum(Metrics.EXPERT_ROWS), "one row per (token, slot) sent here");
                assertEquals(entries, s.sum(Metrics.EXPERT_ROWS, "layer", String.valueOf(Tiny.LAYER)));
                for (int e = 0; e < 4; e++) {
                    int ee = e;
                    long routed = rows.stream().flatMap(r -> r.slots().stream()).filter(x -> x.expert() == ee).count();
                    assertEquals(routed, s.value(Metrics.EXPERT_ROWS, "layer", String.valueOf(Tiny.LAYER), "expert",
                            String.valueOf(e)), "rows of expert " + e);
                }
                assertEquals(0, s.value(Metrics.EXPERT_UNKNOWN_SOURCE));
                assertEquals(3, s.samples(Metrics.AERON_OFFER_FAILURES).size());
                assertTrue(s.value(Metrics.AERON_OFFER_FAILURES, "result", "back_pressured") >= 0);
                assertTrue(s.has("jvm_threads_current"), "JVM metrics");

                attn.goodbye();
                long until = System.nanoTime() + TIMEOUT.toNanos();
                while (worker.peers() != 0 && System.nanoTime() < until) {
                    Thread.sleep(10);
                }
                assertEquals(0, MetricsScrape.fetch("127.0.0.1", port).value(Metrics.EXPERT_PEERS));
            }
        }
        assertThrows(IOException.class, () -> MetricsScrape.fetch("127.0.0.1", port), "closed with the worker");
    }

    @Test
    void theFlagsCarryTheMetricsPortAndHost() {
        ExpertWorkerMain main = new ExpertWorkerMain();
        new CommandLine(main).parseArgs("--model", Tiny.dir().toString(), "--experts", "0-3", "--listen",
                "127.0.0.1:40999", "--metrics-port", "0", "--metrics-host", "0.0.0.0");
        ExpertWorker.Options o = main.flags.toOptions();
        assertEquals(0, o.metricsPort);
        assertEquals("0.0.0.0", o.metricsHost);
        ExpertWorkerMain off = new ExpertWorkerMain();
        new CommandLine(off).parseArgs("--model", Tiny.dir().toString(), "--experts", "0-3", "--listen",
                "127.0.0.1:40999");
        assertEquals(-1, off.flags.toOptions().metricsPort);
        ExpertWorkerMain bad = new ExpertWorkerMain();
        new CommandLine(bad).parseArgs("--model", Tiny.dir().toString(), "--experts", "0-3", "--listen",
                "127.0.0.1:40999", "--metrics-port", "-5");
        assertThrows(IllegalArgumentException.class, () -> bad.flags.toOptions());
    }

    @Test
    void exchangesOfOneLayerRunTogetherUnlessTurnedOff() {
        ExpertWorkerMain on = new ExpertWorkerMain();
        new CommandLine(on).parseArgs("--model", Tiny.dir().toString(), "--experts", "0-3", "--listen",
                "127.0.0.1:40999");
        assertTrue(on.flags.toOptions().mergeExchanges);
        ExpertWorkerMain off = new ExpertWorkerMain();
        new CommandLine(off).parseArgs("--model", Tiny.dir().toString(), "--experts", "0-3", "--listen",
                "127.0.0.1:40999", "--no-merge-exchanges");
        assertFalse(off.flags.toOptions().mergeExchanges);
    }
}
