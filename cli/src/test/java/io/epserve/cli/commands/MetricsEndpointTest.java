package io.epserve.cli.commands;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.attention.AttentionWorker;
import io.epserve.cli.cluster.LocalCluster;
import io.epserve.cluster.MemberInfo;
import io.epserve.cluster.metrics.Metrics;
import io.epserve.cluster.metrics.MetricsScrape;
import io.epserve.model.config.ModelConfig;
import io.epserve.proto.admin.v1.AdminGrpc;
import io.epserve.proto.admin.v1.Member;
import io.epserve.proto.admin.v1.StatusRequest;
import io.epserve.proto.admin.v1.StatusResponse;
import io.epserve.proto.v1.InferenceGrpc;
import io.epserve.proto.v1.SamplingParams;
import io.epserve.proto.v1.TokenizeRequest;
import io.epserve.proto.worker.v1.AttentionWorkerGrpc;
import io.epserve.proto.worker.v1.DecodeRequest;
import io.epserve.proto.worker.v1.DecodeResponse;
import io.epserve.router.Router;
import io.grpc.Channel;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every process's /metrics after known traffic: the router counts what the client saw, the attention worker what its
 * steps computed, the expert workers what they were sent, and the three agree with each other.
 */
class MetricsEndpointTest {
    @TempDir
    Path tmp;

    /** Prompts of 3 lengths and their max_tokens (EOS ignored, so each generates exactly that many). */
    static final int[][] PROMPTS = {Arrays.copyOfRange(EngineCommandsTest.goldenTokens(), 0, 9),
        Arrays.copyOfRange(EngineCommandsTest.goldenTokens(), 5, 12), Arrays.copyOfRange(EngineCommandsTest.goldenTokens(), 20, 33)};
    static final int[] MAX_TOKENS = {4, 6, 5};

    /** Runs the workload; returns {prompt tokens, generated tokens, tokens the steps compute}. */
    static long[] workload(Channel ch) {
        long prompt = 0;
        long generated = 0;
        for (int i = 0; i < PROMPTS.length; i++) {
            RouterTest.Result r = RouterTest.generate(ch, RouterTest.tokens(PROMPTS[i],
                    SamplingParams.newBuilder().setMaxTokens(MAX_TOKENS[i]).setIgnoreEos(true).build()));
            assertEquals(Status.OK, r.status(), "request " + i);
            assertEquals(MAX_TOKENS[i], r.ids().size());
            prompt += PROMPTS[i].length;
            generated += r.ids().size();
        }
        // The last token of each stream is sampled, never fed back.
        return new long[] {prompt, generated, prompt + generated - PROMPTS.length};
    }

    /** What the router must report after {@link #workload} plus one bad Generate and one Tokenize. */
    /**
     * The router's scrape once its gauge of requests waiting at the worker (the worker's Status as the router last
     * polled it, every Router.POLL_MS) has caught up with the finished workload: a poll made while the workload ran
     * may still say 1 (seen in CI). At most 10 s; assertRouter then checks the gauge like every other figure.
     */
    static MetricsScrape settledRouterScrape(int routerPort, String worker) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        MetricsScrape s = MetricsScrape.fetch("127.0.0.1", routerPort);
        while (s.value(Metrics.ROUTER_WORKER_WAITING, "worker", worker) != 0 && System.nanoTime() < deadline) {
            Thread.sleep(50);
            s = MetricsScrape.fetch("127.0.0.1", routerPort);
        }
        return s;
    }

    static void assertRouter(MetricsScrape s, long[] w, String worker) {
        int n = PROMPTS.length;
        assertEquals(n, s.value(Metrics.ROUTER_REQUESTS, "rpc", "Generate", "code", "OK"));
        assertEquals(1, s.value(Metrics.ROUTER_REQUESTS, "rpc", "Generate", "code", "INVALID_ARGUMENT"));
        assertEquals(1, s.value(Metrics.ROUTER_REQUESTS, "rpc", "Tokenize", "code", "OK"));
        assertEquals(n + 2, s.sum(Metrics.ROUTER_REQUESTS));
        assertEquals(n + 1, s.value(Metrics.ROUTER_REQUEST_DURATION + "_count", "rpc", "Generate"));
        assertEquals(n + 1, s.value(Metrics.ROUTER_REQUEST_DURATION + "_bucket", "rpc", "Generate", "le", "+Inf"));
        assertEquals(1, s.value(Metrics.ROUTER_REQUEST_DURATION + "_count", "rpc", "Tokenize"));
        assertEquals(n, s.value(Metrics.ROUTER_TTFT + "_count"));
        assertTrue(s.value(Metrics.ROUTER_TTFT + "_sum") > 0);
        assertEquals(w[1] - n, s.value(Metrics.ROUTER_INTER_TOKEN + "_count"), "one gap per token after the first");
        assertEquals(w[0], s.value(Metrics.ROUTER_PROMPT_TOKENS));
        assertEquals(w[1], s.value(Metrics.ROUTER_GENERATED_TOKENS));
        assertEquals(0, s.value(Metrics.ROUTER_IN_FLIGHT));
        assertEquals(0, s.value(Metrics.ROUTER_WORKER_IN_FLIGHT, "worker", worker));
        assertEquals(1, s.value(Metrics.ROUTER_WORKER_UP, "worker", worker));
        assertEquals(0, s.value(Metrics.ROUTER_WORKER_WAITING, "worker", worker));
        assertEquals(0, s.sum(Metrics.ROUTER_WORKER_ERRORS));
        assertEquals(1, s.value(Metrics.BUILD_INFO, "role", "router"));
        assertTrue(s.has("jvm_memory_used_bytes"));
    }

    /** The parts of {@value Metrics#ATTENTION_ENGINE_SECONDS}, the whole first. */
    static final List<String> ENGINE_PARTS = List.of("step", "attention", "shared_expert", "dispatch", "exposed_wait");

    /**
     * What an attention worker's queue and engine-time metrics must show between a scrape before {@link #workload}
     * and one after: each request waited once, the engine's time grew, and its parts fit in the steps' wall time.
     */
    static void assertQueueAndEngineTime(MetricsScrape before, MetricsScrape after, boolean remoteExperts) {
        String queue = Metrics.ATTENTION_QUEUE;
        assertEquals(PROMPTS.length, after.value(queue + "_count") - before.value(queue + "_count"),
                "one queue time per Generate request");
        assertEquals(after.value(queue + "_count"), after.value(queue + "_bucket", "le", "+Inf"));
        assertTrue(after.value(queue + "_sum") >= before.value(queue + "_sum"));
        for (String part : ENGINE_PARTS) {
            before.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", part); // present before any step
        }
        double step = after.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", "step");
        double attention = after.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", "attention");
        assertTrue(step > before.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", "step"), "step time grew: " + step);
        assertTrue(attention > before.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", "attention"));
        double parts = 0;
        for (String part : ENGINE_PARTS.subList(1, ENGINE_PARTS.size())) {
            double v = after.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", part);
            assertTrue(v >= before.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", part), part + " went down");
            parts += v;
        }
        assertTrue(parts <= step * (1 + 1e-9), "parts " + parts + " s within the steps' " + step + " s");
        if (remoteExperts) {
            assertTrue(after.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", "dispatch") > 0);
            assertTrue(after.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", "shared_expert") > 0);
        } else {
            assertEquals(step, attention, 1e-9, "every expert local: the forward is all attention");
        }
    }

    /** What any attention worker must report after {@link #workload}: its steps computed w[2] tokens. */
    static void assertAttentionSteps(MetricsScrape s, long[] w) {
        double prefill = s.value(Metrics.ATTENTION_STEPS, "kind", "prefill");
        double decode = s.value(Metrics.ATTENTION_STEPS, "kind", "decode");
        assertTrue(prefill >= 1 && decode >= 1, prefill + " prefill and " + decode + " decode steps");
        assertEquals(w[2], s.sum(Metrics.ATTENTION_STEP_TOKENS));
        assertEquals(prefill, s.value(Metrics.ATTENTION_STEP_DURATION + "_count", "kind", "prefill"));
        assertEquals(decode, s.value(Metrics.ATTENTION_STEP_DURATION + "_count", "kind", "decode"));
        assertEquals(0, s.value(Metrics.ATTENTION_FAILED_STEPS));
        assertEquals(0, s.value(Metrics.ATTENTION_WAITING));
        assertEquals(0, s.value(Metrics.ATTENTION_RUNNING));
        assertEquals(0, s.value(Metrics.ATTENTION_SEQUENCES));
        assertEquals(0, s.value(Metrics.ATTENTION_KV_RESERVED));
        assertTrue(s.value(Metrics.ATTENTION_KV_BUDGET) > 0);
        assertEquals(0, s.value(Metrics.ATTENTION_PLACEMENT_EPOCH));
        assertEquals(1, s.value(Metrics.BUILD_INFO, "role", "attention-worker"));
    }

    @Test
    @Timeout(value = 6, unit = TimeUnit.MINUTES)
    void routerAttentionAndExpertWorkersReportTrafficThatAddsUp() throws Exception {
        ModelConfig c = ModelConfig.load(ClusterTest.TINY);
        int routerPort;
        try (LocalCluster cluster = LocalCluster.start(ClusterTest.tinyCluster(tmp.resolve("logs"), "exact")
                .expertWorkers(2).attentionWorkers(1).microBatches(2).router(0).metrics(true))) {
            LocalCluster.Worker aw = cluster.attentionWorkers().get(0);
            routerPort = cluster.router().metricsPort();
            assertTrue(routerPort > 0, cluster.router().readyLine());
            assertTrue(aw.metricsPort() > 0, aw.readyLine());
            for (LocalCluster.Worker ew : cluster.expertWorkers()) {
                assertTrue(ew.metricsPort() > 0, ew.readyLine());
            }
            Channel ch = cluster.routerChannel();
            MetricsScrape idle = MetricsScrape.fetch("127.0.0.1", aw.metricsPort());
            long[] w = workload(ch);
            RouterTest.Result bad = RouterTest.generate(ch, RouterTest.tokens(PROMPTS[0],
                    SamplingParams.newBuilder().setMaxTokens(0).build()));
            assertEquals(Status.Code.INVALID_ARGUMENT, bad.status().getCode());
            InferenceGrpc.newBlockingStub(ch).tokenize(TokenizeRequest.newBuilder().setText("hello").build());

            String target = "127.0.0.1:" + aw.grpcPort();
            assertRouter(settledRouterScrape(routerPort, target), w, target);

            MetricsScrape a = MetricsScrape.fetch("127.0.0.1", aw.metricsPort());
            assertAttentionSteps(a, w);
            assertQueueAndEngineTime(idle, a, true);
            long slots = w[2] * c.nActivatedExperts() * c.nLayers();
            assertEquals(slots, a.sum(Metrics.ATTENTION_EXPERT_TOKENS), "tokens x top-k x layers");
            assertEquals(slots, a.value(Metrics.ATTENTION_ROUTED_SLOTS));
            assertEquals(slots * 2L * c.dim(), a.value(Metrics.ATTENTION_COMBINE_BYTES), "bf16 rows");
            assertTrue(a.value(Metrics.ATTENTION_DISPATCH_BYTES) > w[2] * c.dim(), "FP8 rows at least");
            double exchanges = a.value(Metrics.ATTENTION_ROUND_TRIP + "_count", "layer", "0");
            assertTrue(exchanges >= a.sum(Metrics.ATTENTION_STEPS), exchanges + " exchanges of layer 0");
            for (int l = 0; l < c.nLayers(); l++) {
                String layer = String.valueOf(l);
                assertEquals(exchanges, a.value(Metrics.ATTENTION_ROUND_TRIP + "_count", "layer", layer));
                assertEquals(exchanges, a.value(Metrics.ATTENTION_DISPATCH + "_count", "layer", layer));
                assertEquals(w[2] * c.nActivatedExperts(), a.sum(Metrics.ATTENTION_EXPERT_TOKENS, "layer", layer));
            }
            assertEquals(3, a.samples(Metrics.AERON_OFFER_FAILURES).size());

            // The expert workers computed exactly the rows the attention worker sent each (layer, expert).
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (true) {
                double rows = 0;
                double exchangesServed = 0;
                for (LocalCluster.Worker ew : cluster.expertWorkers()) {
                    MetricsScrape e = MetricsScrape.fetch("127.0.0.1", ew.metricsPort());
                    rows += e.sum(Metrics.EXPERT_ROWS);
                    exchangesServed += e.value(Metrics.EXPERT_EXCHANGES);
                }
                if (rows == slots || System.nanoTime() > deadline) {
                    assertEquals(slots, rows, "rows computed over the expert workers");
                    assertTrue(exchangesServed >= exchanges, exchangesServed + " exchanges served");
                    break;
                }
                Thread.sleep(50);
            }
            for (LocalCluster.Worker ew : cluster.expertWorkers()) {
                MetricsScrape e = MetricsScrape.fetch("127.0.0.1", ew.metricsPort());
                assertEquals(1, e.value(Metrics.EXPERT_PEERS));
                assertEquals(0, e.value(Metrics.EXPERT_REJECTED));
                assertTrue(e.value(Metrics.EXPERT_BUSY_SECONDS) > 0, "an expert worker that served was busy");
                assertEquals(1, e.value(Metrics.BUILD_INFO, "role", "expert-worker"));
                for (MetricsScrape.Sample r : e.samples(Metrics.EXPERT_ROWS)) {
                    String l = r.labels().get("layer");
                    if (Integer.parseInt(l) < c.nLayers()) {
                        assertEquals(a.value(Metrics.ATTENTION_EXPERT_TOKENS, "layer", l, "expert",
                                r.labels().get("expert")), r.value(), "layer " + l + " expert " + r.labels());
                    } else {
                        assertEquals(0, r.value(), "the MTP block is not run by generation");
                    }
                }
            }
        }
        assertThrows(IOException.class, () -> MetricsScrape.fetch("127.0.0.1", routerPort), "stopped with the router");
    }

    /**
     * In a cluster every process announces its metrics port in its member gauges, so that a client of the router's
     * admin API (epserve bench) finds every endpoint: at the member's host, serving that member's role.
     */
    @Test
    @Timeout(value = 6, unit = TimeUnit.MINUTES)
    void inAClusterEveryMemberAnnouncesItsMetricsPort() throws Exception {
        try (LocalCluster cluster = LocalCluster.start(ClusterTest.tinyCluster(tmp.resolve("logs"), "exact")
                .controlPlane(true).expertWorkers(2).attentionWorkers(1).microBatches(1).router(0).metrics(true))) {
            List<LocalCluster.Worker> processes = new java.util.ArrayList<>(cluster.expertWorkers());
            processes.addAll(cluster.attentionWorkers());
            processes.add(cluster.router());
            var admin = AdminGrpc.newBlockingStub(cluster.routerChannel());
            StatusResponse st = null;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (System.nanoTime() < deadline) {
                try {
                    st = admin.withDeadlineAfter(10, TimeUnit.SECONDS).status(StatusRequest.getDefaultInstance());
                    if (st.getMembersCount() == processes.size() && st.getMembersList().stream()
                            .allMatch(m -> m.getGaugesMap().containsKey(MemberInfo.METRICS_PORT))) {
                        break;
                    }
                } catch (StatusRuntimeException e) {
                    // the router's view of the cluster is still forming
                }
                Thread.sleep(100);
            }
            assertTrue(st != null && st.getMembersCount() == processes.size(), String.valueOf(st));
            for (LocalCluster.Worker p : processes) {
                Member m = st.getMembersList().stream().filter(x -> x.getRole().equals(p.role) && x.getId() == p.id)
                        .findFirst().orElseThrow(() -> new AssertionError("no member " + p.role + " " + p.id));
                assertTrue(p.metricsPort() > 0, p.readyLine());
                assertEquals(p.metricsPort(), m.getGaugesMap().getOrDefault(MemberInfo.METRICS_PORT, -1L),
                        p.role + " " + p.id + ": " + m);
                String host = MemberInfo.host(m.getGrpc(), m.getAeron());
                assertEquals("127.0.0.1", host, m.toString());
                MetricsScrape s = MetricsScrape.fetch(host, (int) m.getGaugesMap().get(MemberInfo.METRICS_PORT)
                        .longValue());
                assertEquals(1, s.value(Metrics.BUILD_INFO, "role", p.role), "the member's own endpoint");
            }
        }
    }

    /** up --single-process: a router and an attention worker with every expert in one JVM, each with its endpoint. */
    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void inOneProcessTheRouterAndALocalExpertsWorkerServeSeparateRegistries() throws Exception {
        int routerPort;
        int workerPort;
        try (AttentionWorker worker = AttentionWorker.start(AttentionWorker.options().model(ClusterTest.TINY)
                .localExperts(true).threads(1).port(0).metricsPort(0));
             Router router = Router.start(Router.options().model(ClusterTest.TINY)
                     .attentionWorker("127.0.0.1:" + worker.port()).port(0).metricsPort(0))) {
            routerPort = router.metricsPort();
            workerPort = worker.metrics().port();
            assertTrue(routerPort > 0 && workerPort > 0);
            assertNotEquals(routerPort, workerPort);
            assertTrue(router.readyLine().endsWith("; metrics 127.0.0.1:" + routerPort), router.readyLine());
            assertTrue(worker.readyLine().endsWith("; metrics 127.0.0.1:" + workerPort), worker.readyLine());
            ManagedChannel ch = ManagedChannelBuilder.forAddress("127.0.0.1", router.port()).usePlaintext().build();
            ManagedChannel direct = ManagedChannelBuilder.forAddress("127.0.0.1", worker.port()).usePlaintext()
                    .build();
            try {
                MetricsScrape idle = MetricsScrape.fetch("127.0.0.1", workerPort);
                long[] w = workload(ch);
                RouterTest.Result bad = RouterTest.generate(ch, RouterTest.tokens(PROMPTS[0],
                        SamplingParams.newBuilder().setMaxTokens(0).build()));
                assertEquals(Status.Code.INVALID_ARGUMENT, bad.status().getCode());
                InferenceGrpc.newBlockingStub(ch).tokenize(TokenizeRequest.newBuilder().setText("hello").build());
                String target = "127.0.0.1:" + worker.port();
                assertRouter(settledRouterScrape(routerPort, target), w, target);
                worker.metrics().placementEpoch(7);
                MetricsScrape a = MetricsScrape.fetch("127.0.0.1", workerPort);
                assertEquals(7, a.value(Metrics.ATTENTION_PLACEMENT_EPOCH));
                worker.metrics().placementEpoch(0);
                MetricsScrape served = MetricsScrape.fetch("127.0.0.1", workerPort);
                assertAttentionSteps(served, w);
                assertQueueAndEngineTime(idle, served, false);
                // Every expert in this process: no exchanges, so no per-layer exchange series.
                assertTrue(!a.has(Metrics.ATTENTION_EXPERT_TOKENS) && !a.has(Metrics.ATTENTION_ROUND_TRIP + "_count"));
                assertEquals(0, a.value(Metrics.ATTENTION_ROUTED_SLOTS));
                assertTrue(!a.has(Metrics.AERON_OFFER_FAILURES));
                assertEquals(0, a.samples(Metrics.BUILD_INFO, "role", "router").size(), "its own registry");

                // The worker API's Decode resets the engine's timing (bench-cluster reads it per run): the exported
                // totals must still only grow.
                DecodeResponse d = AttentionWorkerGrpc.newBlockingStub(direct).withDeadlineAfter(1, TimeUnit.MINUTES)
                        .decode(DecodeRequest.newBuilder().addPrompts(ClusterTest.chunk("reset", PROMPTS[0]))
                                .setSteps(2).setRelease(true).build());
                assertEquals(2, d.getTiming().getSteps(), "the timing covers this call's decode steps only");
                MetricsScrape later = MetricsScrape.fetch("127.0.0.1", workerPort);
                for (String part : ENGINE_PARTS) {
                    double v = later.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", part);
                    assertTrue(v >= served.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", part), part + " went down");
                }
                assertTrue(later.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", "step")
                        > served.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", "step"));
                assertTrue(later.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", "step")
                        >= served.value(Metrics.ATTENTION_ENGINE_SECONDS, "part", "step")
                        + d.getTiming().getWallSeconds() - 1e-9, "this call's steps added on top");
                assertEquals(PROMPTS.length, later.value(Metrics.ATTENTION_QUEUE + "_count"),
                        "Decode is not a Generate: it does not queue");
            } finally {
                ch.shutdownNow();
                direct.shutdownNow();
            }
        }
        assertThrows(IOException.class, () -> MetricsScrape.fetch("127.0.0.1", routerPort));
        assertThrows(IOException.class, () -> MetricsScrape.fetch("127.0.0.1", workerPort));
    }

    @Test
    void everyServingCommandTakesTheMetricsFlagsAndRefusesABadPortWithExitTwo() {
        String model = ClusterTest.TINY.toString();
        for (String role : List.of("router", "attention-worker", "expert-worker")) {
            EngineCommandsTest.Run help = EngineCommandsTest.run(role, "--help");
            assertEquals(0, help.exit(), help.err());
            assertTrue(help.out().contains("--metrics-port") && help.out().contains("--metrics-host"), help.out());
        }
        List<List<String>> bad = List.of(
                List.of("router", "--model", model, "--attention-workers", "127.0.0.1:1", "--metrics-port", "70000"),
                List.of("attention-worker", "--model", model, "--expert-workers", "127.0.0.1:40001", "--listen",
                        "127.0.0.1:40002", "--metrics-port", "-2"),
                List.of("expert-worker", "--model", model, "--experts", "0-3", "--listen", "127.0.0.1:40003",
                        "--metrics-port", "65536"));
        for (List<String> args : bad) {
            EngineCommandsTest.Run r = EngineCommandsTest.run(args.toArray(String[]::new));
            assertEquals(2, r.exit(), args + ": " + r.err());
            assertTrue(r.err().contains("--metrics-port"), r.err());
        }
    }
}
