package io.epserve.cluster.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ServerSocket;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class ProcessMetricsTest {
    @Test
    void servesItsOwnRegistryOnAnEphemeralPortAndStopsOnClose() throws Exception {
        int port;
        try (ProcessMetrics a = ProcessMetrics.create("router"); ProcessMetrics b = ProcessMetrics.create("expert-worker")) {
            // Two in one JVM: the same names in two registries do not clash.
            var ca = Metrics.counter(a.registry(), Metrics.ROUTER_REQUESTS, "requests", "rpc", "code");
            Metrics.counter(b.registry(), Metrics.ROUTER_REQUESTS, "requests", "rpc", "code");
            AtomicLong polled = new AtomicLong(7);
            Metrics.gauge(a.registry(), Metrics.ROUTER_IN_FLIGHT, "in flight", polled::get);
            ca.labelValues("Generate", "OK").inc();
            ca.labelValues("Generate", "OK").inc();
            ca.labelValues("Chat", "CANCELLED").inc();
            assertEquals(-1, a.port());
            assertEquals("", a.readySuffix());
            a.serve("127.0.0.1", 0);
            b.serve("127.0.0.1", ProcessMetrics.OFF);
            port = a.port();
            assertTrue(port > 0);
            assertEquals("; metrics 127.0.0.1:" + port, a.readySuffix());
            assertEquals(-1, b.port());

            MetricsScrape s = MetricsScrape.fetch("127.0.0.1", port);
            assertEquals(2, s.value(Metrics.ROUTER_REQUESTS, "rpc", "Generate", "code", "OK"));
            assertEquals(1, s.value(Metrics.ROUTER_REQUESTS, "rpc", "Chat"));
            assertEquals(3, s.sum(Metrics.ROUTER_REQUESTS));
            assertEquals(7, s.value(Metrics.ROUTER_IN_FLIGHT));
            assertEquals(1, s.value(Metrics.BUILD_INFO, "role", "router"));
            assertEquals(0, s.samples(Metrics.BUILD_INFO, "role", "expert-worker").size());
            assertTrue(s.has("jvm_memory_used_bytes"), "JVM metrics");
            assertTrue(s.has("process_cpu_seconds_total"), "process metrics");
            polled.set(3);
            assertEquals(3, MetricsScrape.fetch("127.0.0.1", port).value(Metrics.ROUTER_IN_FLIGHT));
        }
        // Closed: the port is free again.
        assertThrows(IOException.class, () -> MetricsScrape.fetch("127.0.0.1", port));
        try (ServerSocket again = new ServerSocket(port, 1, java.net.InetAddress.getLoopbackAddress())) {
            assertEquals(port, again.getLocalPort());
        }
    }

    @Test
    void singleWriterHistogramsAndCountsAreExportedInSeconds() throws Exception {
        try (ProcessMetrics m = ProcessMetrics.create("attention-worker")) {
            NanosHistogram.Family f = NanosHistogram.Family.register(m.registry(), Metrics.ATTENTION_ROUND_TRIP,
                    "round trip", Metrics.EXCHANGE_SECONDS, "layer");
            NanosHistogram l0 = f.add("0");
            NanosHistogram l1 = f.add("1");
            l0.record(5_000);         // 5 us: first bucket (10 us)
            l0.record(20_000);        // 20 us: 25 us bucket
            l0.record(20_000_000_000L); // 20 s: +Inf
            l1.record(-3);            // counts as 0
            SingleWriterCounts c = new SingleWriterCounts(2, 3);
            c.add(0, 2, 5);
            c.add(1, 0, 1);
            c.add(1, 0, 1);
            c.register(m.registry(), Metrics.ATTENTION_EXPERT_TOKENS, "tokens", "layer", "expert");
            assertEquals(7, c.total());
            m.serve("127.0.0.1", 0);
            MetricsScrape s = MetricsScrape.fetch("127.0.0.1", m.port());
            String h = Metrics.ATTENTION_ROUND_TRIP;
            assertEquals(3, s.value(h + "_count", "layer", "0"));
            assertEquals(1, s.value(h + "_count", "layer", "1"));
            assertEquals(20.000025, s.value(h + "_sum", "layer", "0"), 1e-9);
            assertEquals(1, s.value(h + "_bucket", "layer", "0", "le", "1.0E-5"));
            assertEquals(2, s.value(h + "_bucket", "layer", "0", "le", "2.5E-5"));
            assertEquals(2, s.value(h + "_bucket", "layer", "0", "le", "10.0"));
            assertEquals(3, s.value(h + "_bucket", "layer", "0", "le", "+Inf"));
            assertEquals(5, s.value("epserve_attention_expert_tokens_total", "layer", "0", "expert", "2"));
            assertEquals(2, s.value("epserve_attention_expert_tokens_total", "layer", "1", "expert", "0"));
            assertEquals(6, s.samples("epserve_attention_expert_tokens_total").size());
        }
    }

    @Test
    void badPortsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> ProcessMetrics.validatePort(-2));
        assertThrows(IllegalArgumentException.class, () -> ProcessMetrics.validatePort(65536));
        ProcessMetrics.validatePort(-1);
        ProcessMetrics.validatePort(0);
    }

    @Test
    void parsesEscapedLabelValues() {
        MetricsScrape s = MetricsScrape.parse("# HELP x y\nx_total{a=\"q\\\"uo,te\",b=\"2\"} 4.0\ny 1.5e3\n");
        assertEquals(4, s.value("x_total", "a", "q\"uo,te", "b", "2"));
        assertEquals(1500, s.value("y"));
    }
}
