package io.epserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpServer;
import io.epserve.cluster.MemberInfo;
import io.epserve.proto.admin.v1.AdminGrpc;
import io.epserve.proto.admin.v1.Member;
import io.epserve.proto.admin.v1.StatusRequest;
import io.epserve.proto.admin.v1.StatusResponse;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The server view's arithmetic on hand-computed figures: a router and two attention workers (the second restarted
 * during the run, so every one of its series went down) scraped over HTTP before and after, plus endpoints that
 * cannot be scraped.
 */
class ServerViewTest {
    private static final double EPS = 1e-9;

    // ------------------------------------------------------------------------------------------ texts

    /** A classic histogram series in the text format: cumulative counts per upper bound, then +Inf, count, sum. */
    static String hist(String name, String labels, double[] bounds, long[] cumulative, double sum) {
        StringBuilder b = new StringBuilder("# TYPE " + name + " histogram\n");
        String sep = labels.isEmpty() ? "" : labels + ",";
        for (int i = 0; i < bounds.length; i++) {
            b.append(name).append("_bucket{").append(sep).append("le=\"").append(bounds[i]).append("\"} ")
                    .append(cumulative[i]).append('\n');
        }
        long total = cumulative[cumulative.length - 1];
        b.append(name).append("_bucket{").append(sep).append("le=\"+Inf\"} ").append(total).append('\n');
        String l = labels.isEmpty() ? "" : "{" + labels + "}";
        b.append(name).append("_count").append(l).append(' ').append(total).append('\n');
        b.append(name).append("_sum").append(l).append(' ').append(sum).append('\n');
        return b.toString();
    }

    static final double[] MS = {0.001, 0.01, 0.1};
    static final double[] SLOW = {1, 10};
    static final double[] Q = {0.001, 0.01, 0.1, 1};
    static final double[] US = {0.00001, 0.0001};

    static String routerBefore() {
        return """
                # TYPE epserve_build_info gauge
                epserve_build_info{role="router",version="dev"} 1
                # TYPE epserve_router_requests_total counter
                epserve_router_requests_total{rpc="Generate",code="OK"} 10.0
                epserve_router_requests_total{rpc="Generate",code="CANCELLED"} 1.0
                epserve_router_requests_total{rpc="ListModels",code="OK"} 1.0
                epserve_router_prompt_tokens_total 100.0
                epserve_router_generated_tokens_total 50.0
                """
                + hist("epserve_router_time_to_first_token_seconds", "", MS, new long[] {0, 0, 0, 0}, 0)
                + hist("epserve_router_inter_token_latency_seconds", "", MS, new long[] {2, 2, 2, 2}, 0.001)
                + hist("epserve_router_request_duration_seconds", "rpc=\"Generate\"", SLOW, new long[] {0, 1, 1}, 3)
                + hist("epserve_router_request_duration_seconds", "rpc=\"Tokenize\"", SLOW, new long[] {0, 0, 0}, 0);
    }

    static String routerAfter() {
        return """
                # TYPE epserve_build_info gauge
                epserve_build_info{role="router",version="dev"} 1
                # TYPE epserve_router_requests_total counter
                epserve_router_requests_total{rpc="Generate",code="OK"} 30.0
                epserve_router_requests_total{rpc="Generate",code="CANCELLED"} 1.0
                epserve_router_requests_total{rpc="Generate",code="UNAVAILABLE"} 2.0
                epserve_router_requests_total{rpc="Chat",code="OK"} 5.0
                epserve_router_requests_total{rpc="ListModels",code="OK"} 3.0
                epserve_router_prompt_tokens_total 400.0
                epserve_router_generated_tokens_total 250.0
                """
                + hist("epserve_router_time_to_first_token_seconds", "", MS, new long[] {0, 4, 16, 20}, 1.0)
                + hist("epserve_router_inter_token_latency_seconds", "", MS, new long[] {7, 12, 12, 12}, 0.041)
                + hist("epserve_router_request_duration_seconds", "rpc=\"Generate\"", SLOW, new long[] {0, 3, 3}, 11)
                + hist("epserve_router_request_duration_seconds", "rpc=\"Chat\"", SLOW, new long[] {2, 2, 2}, 1)
                + hist("epserve_router_request_duration_seconds", "rpc=\"Tokenize\"", SLOW, new long[] {5, 5, 5}, 0.5);
    }

    /** An attention worker's text: steps, tokens, engine seconds, and whatever histograms and tables are given. */
    static String attention(long prefill, long decode, long failed, long prefillTokens, long decodeTokens,
                            double step, double attention, double shared, double dispatch, double wait, String more) {
        return "# TYPE epserve_build_info gauge\n"
                + "epserve_build_info{role=\"attention-worker\",version=\"dev\"} 1\n"
                + "# TYPE epserve_attention_steps_total counter\n"
                + "epserve_attention_steps_total{kind=\"prefill\"} " + prefill + "\n"
                + "epserve_attention_steps_total{kind=\"decode\"} " + decode + "\n"
                + "epserve_attention_failed_steps_total " + failed + "\n"
                + "epserve_attention_step_tokens_total{kind=\"prefill\"} " + prefillTokens + "\n"
                + "epserve_attention_step_tokens_total{kind=\"decode\"} " + decodeTokens + "\n"
                + "# TYPE epserve_attention_engine_seconds_total counter\n"
                + "epserve_attention_engine_seconds_total{part=\"step\"} " + step + "\n"
                + "epserve_attention_engine_seconds_total{part=\"attention\"} " + attention + "\n"
                + "epserve_attention_engine_seconds_total{part=\"shared_expert\"} " + shared + "\n"
                + "epserve_attention_engine_seconds_total{part=\"dispatch\"} " + dispatch + "\n"
                + "epserve_attention_engine_seconds_total{part=\"exposed_wait\"} " + wait + "\n"
                + more;
    }

    static String tokens(int layer, long... perExpert) {
        StringBuilder b = new StringBuilder();
        for (int e = 0; e < perExpert.length; e++) {
            b.append("epserve_attention_expert_tokens_total{layer=\"").append(layer).append("\",expert=\"").append(e)
                    .append("\"} ").append(perExpert[e]).append(".0\n");
        }
        return b.toString();
    }

    static String a1Before() {
        return attention(2, 10, 0, 100, 40, 1.0, 0.5, 0.1, 0.05, 0.2,
                hist("epserve_attention_queue_seconds", "", Q, new long[] {1, 1, 1, 1, 1}, 0.0005)
                + hist("epserve_attention_step_duration_seconds", "kind=\"prefill\"", new double[] {0.1, 1},
                        new long[] {0, 0, 2}, 20)
                + hist("epserve_attention_step_duration_seconds", "kind=\"decode\"", new double[] {0.1, 1},
                        new long[] {10, 10, 10}, 0.5)
                + hist("epserve_attention_expert_dispatch_seconds", "layer=\"0\"", US, new long[] {1, 1, 1}, 0.000005)
                + hist("epserve_attention_expert_round_trip_seconds", "layer=\"0\"", US, new long[] {0, 1, 1}, 0.00005)
                + tokens(0, 1, 1, 1, 1) + tokens(1, 0, 0, 0, 0));
    }

    static String a1After() {
        return attention(5, 30, 1, 300, 120, 3.0, 1.5, 0.3, 0.15, 0.7,
                hist("epserve_attention_queue_seconds", "", Q, new long[] {1, 3, 5, 5, 5}, 0.0805)
                + hist("epserve_attention_step_duration_seconds", "kind=\"prefill\"", new double[] {0.1, 1},
                        new long[] {1, 1, 5}, 35.05)
                + hist("epserve_attention_step_duration_seconds", "kind=\"decode\"", new double[] {0.1, 1},
                        new long[] {10, 10, 10}, 0.5)
                + hist("epserve_attention_expert_dispatch_seconds", "layer=\"0\"", US, new long[] {3, 5, 5}, 0.000205)
                + hist("epserve_attention_expert_round_trip_seconds", "layer=\"0\"", US, new long[] {0, 3, 3}, 0.00015)
                + tokens(0, 5, 5, 5, 5) + tokens(1, 0, 0, 0, 0));
    }

    /** Before it restarted: every figure above what it reports after. */
    static String a2Before() {
        return attention(7, 100, 3, 500, 400, 10, 6, 1, 0.5, 2,
                hist("epserve_attention_queue_seconds", "", Q, new long[] {0, 0, 10, 10, 10}, 0.5)
                + tokens(0, 10, 10, 10, 10) + tokens(2, 0, 0, 0, 0));
    }

    static String a2After() {
        return attention(1, 20, 0, 50, 60, 2.0, 1.0, 0.2, 0.1, 0.5,
                hist("epserve_attention_queue_seconds", "", Q, new long[] {0, 2, 4, 6, 6}, 1.0)
                + hist("epserve_attention_expert_round_trip_seconds", "layer=\"1\"", US, new long[] {1, 1, 1}, 0.000005)
                + tokens(0, 2, 0, 2, 4) + tokens(2, 0, 3, 0, 1));
    }

    // ------------------------------------------------------------------------------------------ the servers

    /** Serves /r, /a1 and /a2 (each .../metrics) with the "before" texts, or the "after" ones once flipped. */
    static final class Servers implements AutoCloseable {
        final HttpServer http;
        final AtomicBoolean after = new AtomicBoolean();

        Servers() throws Exception {
            http = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
            serve("/r/metrics", routerBefore(), routerAfter());
            serve("/a1/metrics", a1Before(), a1After());
            serve("/a2/metrics", a2Before(), a2After());
            http.createContext("/broken/metrics", x -> {
                x.sendResponseHeaders(500, -1);
                x.close();
            });
            http.start();
        }

        private void serve(String path, String before, String after) {
            http.createContext(path, x -> {
                byte[] b = (this.after.get() ? after : before).getBytes(StandardCharsets.UTF_8);
                x.getResponseHeaders().add("Content-Type", "text/plain; version=0.0.4");
                x.sendResponseHeaders(200, b.length);
                try (OutputStream o = x.getResponseBody()) {
                    o.write(b);
                }
            });
        }

        String url(String path) {
            return "http://127.0.0.1:" + http.getAddress().getPort() + path + "/metrics";
        }

        @Override
        public void close() {
            http.stop(0);
        }
    }

    static int closedPort() throws Exception {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    // ------------------------------------------------------------------------------------------ tests

    @Test
    @Timeout(30)
    void theDifferenceOfTwoScrapesAddsUpPerFieldAcrossEndpointsAndRestarts() throws Exception {
        int closed = closedPort();
        try (Servers s = new Servers();
             ServerSocket silent = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
            List<ServerView.Endpoint> eps = List.of(new ServerView.Endpoint(s.url("/r"), "router"),
                    new ServerView.Endpoint(s.url("/a1"), "attention-worker"),
                    // No role given: the scrape's epserve_build_info names it.
                    new ServerView.Endpoint(s.url("/a2"), ""),
                    new ServerView.Endpoint("http://127.0.0.1:" + closed + "/metrics", "expert-worker"),
                    // Accepts the connection (the kernel's backlog) and never answers: bounded by the timeout.
                    new ServerView.Endpoint("http://127.0.0.1:" + silent.getLocalPort() + "/metrics", "expert-worker"),
                    new ServerView.Endpoint(s.url("/broken"), "expert-worker"));
            Duration timeout = Duration.ofMillis(700);
            long t0 = System.nanoTime();
            ServerView.Snapshot before = ServerView.scrape(eps, timeout);
            long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            assertTrue(tookMs < 5_000, "scrape took " + tookMs + " ms; every fetch is bounded by 700 ms");
            assertEquals(6, before.endpoints().size());
            assertTrue(before.endpoints().get(0).ok() && before.endpoints().get(1).ok()
                    && before.endpoints().get(2).ok());
            assertEquals("attention-worker", before.endpoints().get(2).role());
            for (int i = 3; i < 6; i++) {
                assertFalse(before.endpoints().get(i).ok(), before.endpoints().get(i).toString());
                assertNotNull(before.endpoints().get(i).error());
            }
            assertTrue(before.endpoints().get(4).error().contains("700 ms")
                    || before.endpoints().get(4).error().contains("Timeout"), before.endpoints().get(4).error());
            assertEquals("HTTP 500", before.endpoints().get(5).error());
            s.after.set(true);
            ServerView.Snapshot after = ServerView.scrape(eps, timeout);

            ObjectNode d = ServerView.delta(before, after);
            checkEndpoints(d, s, closed);
            checkRouter(d.get("router"));
            checkAttention(d);
        }
    }

    private static void checkEndpoints(JsonNode d, Servers s, int closed) {
        JsonNode e = d.get("endpoints");
        assertEquals(6, e.size());
        assertEquals(s.url("/r"), e.get(0).get("url").asText());
        assertEquals("router", e.get(0).get("role").asText());
        assertTrue(e.get(0).get("ok").asBoolean());
        assertTrue(e.get(0).get("error").isNull());
        assertEquals("attention-worker", e.get(2).get("role").asText(), "from epserve_build_info");
        assertEquals("http://127.0.0.1:" + closed + "/metrics", e.get(3).get("url").asText());
        assertEquals("expert-worker", e.get(3).get("role").asText());
        assertFalse(e.get(3).get("ok").asBoolean());
        assertTrue(e.get(3).get("error").asText().startsWith("before the run: "), e.get(3).toString());
    }

    private static void checkRouter(JsonNode r) {
        // Generate and Chat only: ListModels left out; CANCELLED did not grow.
        assertEquals(Map.of("OK", 25L, "UNAVAILABLE", 2L), Map.of("OK", r.get("requests").get("OK").asLong(),
                "UNAVAILABLE", r.get("requests").get("UNAVAILABLE").asLong()));
        assertEquals(2, r.get("requests").size(), r.get("requests").toString());
        assertEquals(300, r.get("prompt_tokens").asLong());
        assertEquals(200, r.get("generated_tokens").asLong());
        // TTFT: 4 in (1 ms, 10 ms], 12 in (10, 100], 4 above 100 ms; 1 s in all.
        JsonNode ttft = r.get("ttft_ms");
        assertEquals(20, ttft.get("count").asLong());
        assertEquals(50, ttft.get("mean").asDouble(), EPS);
        assertEquals(55, ttft.get("p50").asDouble(), EPS, "rank 10: 6th of 12 in (10, 100] -> 10 + 90 * 6/12");
        assertEquals(100, ttft.get("p90").asDouble(), EPS, "rank 18 is in +Inf: the largest finite bound");
        assertEquals(100, ttft.get("p99").asDouble(), EPS);
        // Inter-token: 5 in [0, 1 ms], 5 in (1, 10 ms]; 40 ms in all.
        JsonNode itl = r.get("inter_token_ms");
        assertEquals(10, itl.get("count").asLong());
        assertEquals(4, itl.get("mean").asDouble(), EPS);
        assertEquals(1, itl.get("p50").asDouble(), EPS, "rank 5: the 5th of the first bucket, 0 + 1 * 5/5");
        assertEquals(8.2, itl.get("p90").asDouble(), EPS, "rank 9: 1 + 9 * 4/5");
        assertEquals(9.82, itl.get("p99").asDouble(), EPS, "rank 9.9: 1 + 9 * 4.9/5");
        // Generate (2 in (1 s, 10 s], 8 s) and Chat (2 in [0, 1 s], 1 s); Tokenize left out.
        JsonNode req = r.get("request_ms");
        assertEquals(4, req.get("count").asLong());
        assertEquals(2250, req.get("mean").asDouble(), EPS);
        assertEquals(1000, req.get("p50").asDouble(), EPS);
        assertEquals(8200, req.get("p90").asDouble(), EPS, "rank 3.6: 1000 + 9000 * 1.6/2");
    }

    private static void checkAttention(JsonNode d) {
        // Queue: worker 1 grew by 2 in (1, 10 ms] and 2 in (10, 100 ms]; worker 2 restarted and counts from 0 with
        // 2, 2 and 2 in (1 ms, 10 ms], (10, 100 ms], (100 ms, 1 s]. Together 4, 4, 2 of them; 80 ms + 1 s.
        JsonNode q = d.get("queue_ms");
        assertEquals(10, q.get("count").asLong());
        assertEquals(108, q.get("mean").asDouble(), EPS);
        assertEquals(32.5, q.get("p50").asDouble(), EPS, "rank 5: 10 + 90 * 1/4");
        assertEquals(550, q.get("p90").asDouble(), EPS, "rank 9: 100 + 900 * 1/2");
        assertEquals(955, q.get("p99").asDouble(), EPS, "rank 9.9: 100 + 900 * 1.9/2");
        // Prefill steps: 1 of 3 below 100 ms, 2 above 1 s: the median is in +Inf.
        JsonNode prefill = d.get("prefill_step_ms");
        assertEquals(3, prefill.get("count").asLong());
        assertEquals(15050.0 / 3, prefill.get("mean").asDouble(), 1e-6);
        assertEquals(1000, prefill.get("p50").asDouble(), EPS);
        assertEquals(1000, prefill.get("p99").asDouble(), EPS);
        assertEquals("{\"count\":0}", d.get("decode_step_ms").toString(), "no new decode observations");

        assertEquals(4, d.get("steps").get("prefill").asLong(), "3 + 1 (restarted: from 0)");
        assertEquals(40, d.get("steps").get("decode").asLong(), "20 + 20");
        assertEquals(1, d.get("steps").get("failed").asLong(), "1 + 0 (restarted)");
        assertEquals(250, d.get("step_tokens").get("prefill").asLong());
        assertEquals(140, d.get("step_tokens").get("decode").asLong());
        assertEquals(3.5, d.get("decode_batch_mean").asDouble(), EPS);

        JsonNode t = d.get("time_split");
        assertEquals(4.0, t.get("step").asDouble(), EPS);
        assertEquals(2.0, t.get("attention").asDouble(), EPS);
        assertEquals(0.4, t.get("shared_expert").asDouble(), EPS);
        assertEquals(0.2, t.get("dispatch").asDouble(), EPS);
        assertEquals(1.0, t.get("exposed_wait").asDouble(), EPS);
        assertEquals(0.25, t.get("exposed_communication_fraction").asDouble(), EPS);

        JsonNode layers = d.get("layers");
        assertEquals(2, layers.size());
        JsonNode l0 = layers.get(0);
        assertEquals(0, l0.get("layer").asInt());
        // Dispatch of layer 0: 2 in [0, 10 us], 2 in (10, 100 us]; 200 us in all.
        assertEquals(4, l0.get("dispatch_us").get("count").asLong());
        assertEquals(50, l0.get("dispatch_us").get("mean").asDouble(), 1e-6);
        assertEquals(10, l0.get("dispatch_us").get("p50").asDouble(), 1e-6);
        assertEquals(82, l0.get("dispatch_us").get("p90").asDouble(), 1e-6);
        assertEquals(98.2, l0.get("dispatch_us").get("p99").asDouble(), 1e-6);
        assertEquals(2, l0.get("round_trip_us").get("count").asLong());
        assertEquals(50, l0.get("round_trip_us").get("mean").asDouble(), 1e-6);
        assertEquals(55, l0.get("round_trip_us").get("p50").asDouble(), 1e-6, "rank 1 of 2 in (10, 100 us]");
        JsonNode l1 = layers.get(1);
        assertEquals(1, l1.get("layer").asInt());
        assertEquals("{\"count\":0}", l1.get("dispatch_us").toString());
        assertEquals(1, l1.get("round_trip_us").get("count").asLong(), "a series new after the restart counts whole");
        assertEquals(5, l1.get("round_trip_us").get("p50").asDouble(), 1e-6);

        // Tokens per expert: layer 0 is 4 each from worker 1 plus worker 2's counts since its restart (2, 0, 2, 4);
        // layer 1 got none (left out); layer 2 only from worker 2.
        JsonNode load = d.get("expert_load");
        assertEquals(4, load.get("experts").asInt());
        assertEquals(2, load.get("layers").size());
        assertEquals(0, load.get("layers").get(0).get("layer").asInt());
        assertEquals("[6,4,6,8]", load.get("layers").get(0).get("tokens").toString());
        assertEquals(0.75, load.get("layers").get(0).get("balance").asDouble(), EPS, "mean 6 / max 8");
        assertEquals(2, load.get("layers").get(1).get("layer").asInt());
        assertEquals("[0,3,0,1]", load.get("layers").get(1).get("tokens").toString());
        assertEquals(1.0 / 3, load.get("layers").get(1).get("balance").asDouble(), EPS);
        assertEquals((0.75 + 1.0 / 3) / 2, load.get("balance_mean").asDouble(), EPS);
    }

    @Test
    void withoutAttentionWorkersOrExpertTablesTheirFieldsAreNull() {
        ServerView.Endpoint r = new ServerView.Endpoint("http://r/metrics", "router");
        ServerView.Endpoint a = new ServerView.Endpoint("http://a/metrics", "attention-worker");
        ObjectNode onlyRouter = ServerView.delta(
                new ServerView.Snapshot(List.of(scraped(r, routerBefore()))),
                new ServerView.Snapshot(List.of(scraped(r, routerAfter()))));
        assertEquals(300, onlyRouter.get("router").get("prompt_tokens").asLong());
        assertTrue(onlyRouter.get("queue_ms").isNull() && onlyRouter.get("expert_load").isNull());
        // Every expert in the worker's process (single-process server): no table, no layers.
        String local = attention(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, "");
        String localAfter = attention(1, 2, 0, 10, 2, 0.5, 0.5, 0, 0, 0, "");
        ObjectNode onlyWorker = ServerView.delta(new ServerView.Snapshot(List.of(scraped(a, local))),
                new ServerView.Snapshot(List.of(scraped(a, localAfter))));
        assertTrue(onlyWorker.get("router").isNull());
        assertTrue(onlyWorker.get("expert_load").isNull());
        assertEquals(0, onlyWorker.get("layers").size());
        assertEquals("{\"count\":0}", onlyWorker.get("queue_ms").toString());
        assertEquals(0.0, onlyWorker.get("time_split").get("exposed_communication_fraction").asDouble());
        assertEquals(1.0, onlyWorker.get("decode_batch_mean").asDouble(), EPS);
        ObjectNode idle = ServerView.delta(new ServerView.Snapshot(List.of(scraped(a, local))),
                new ServerView.Snapshot(List.of(scraped(a, local))));
        assertEquals(0.0, idle.get("time_split").get("exposed_communication_fraction").asDouble(), "0 steps: 0");
        assertEquals(0.0, idle.get("decode_batch_mean").asDouble());
    }

    static ServerView.Scraped scraped(ServerView.Endpoint e, String text) {
        return new ServerView.Scraped(e, io.epserve.cluster.metrics.MetricsScrape.parse(text), null);
    }

    @Test
    void interpolatesLikeHistogramQuantile() {
        ServerView.Hist h = new ServerView.Hist();
        h.buckets.put(0.5, 2.0);
        h.buckets.put(1.0, 6.0);
        h.buckets.put(2.0, 8.0);
        h.buckets.put(Double.POSITIVE_INFINITY, 10.0);
        assertEquals(0.25, h.quantile(0.1), EPS, "rank 1 of 2 in [0, 0.5]");
        assertEquals(0.875, h.quantile(0.5), EPS, "rank 5: 3rd of 4 in (0.5, 1]");
        assertEquals(1.5, h.quantile(0.7), EPS, "rank 7: 1st of 2 in (1, 2]");
        assertEquals(2.0, h.quantile(0.8), EPS, "rank 8: the top of (1, 2]");
        assertEquals(2.0, h.quantile(0.81), EPS, "+Inf: the largest finite bound");
        assertEquals(2.0, h.quantile(0.99), EPS);
        assertEquals(5.0, ServerView.increase(10, 5), "a counter that went down counts from 0");
        assertEquals(3.0, ServerView.increase(10, 13));
    }

    // ------------------------------------------------------------------------------------------ discovery

    /** Admin/Status answering a fixed member list. */
    static final class FakeAdmin extends AdminGrpc.AdminImplBase {
        final StatusResponse answer;

        FakeAdmin(StatusResponse answer) {
            this.answer = answer;
        }

        @Override
        public void status(StatusRequest req, StreamObserver<StatusResponse> obs) {
            obs.onNext(answer);
            obs.onCompleted();
        }
    }

    static Member member(String role, int id, String grpc, String aeron, Long metricsPort) {
        Member.Builder b = Member.newBuilder().setRole(role).setId(id).setGrpc(grpc).setAeron(aeron)
                .putGauges("steps", 12);
        if (metricsPort != null) {
            b.putGauges(MemberInfo.METRICS_PORT, metricsPort);
        }
        return b.build();
    }

    @Test
    @Timeout(30)
    void discoversEveryAnnouncedEndpointAtItsMembersHost() throws Exception {
        StatusResponse st = StatusResponse.newBuilder()
                .addMembers(member("expert-worker", 2, "", "10.0.0.3:40001", 9402L))
                .addMembers(member("attention-worker", 1, "10.0.0.2:50100", "10.0.0.2:40100", 9401L))
                .addMembers(member("attention-worker", 0, "10.0.0.5:50100", "10.0.0.5:40100", null))
                .addMembers(member("expert-worker", 1, "", "aeron:udp?endpoint=10.0.0.4:40002|mtu=8k", 9403L))
                .addMembers(member("expert-worker", 3, "", "ipc", 9404L))
                .addMembers(member("router", 0, "0.0.0.0:50051", "", 9400L))
                .build();
        Server admin = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
                .addService(new FakeAdmin(st)).build().start();
        Server bare = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0)).build().start();
        ManagedChannel ch = ManagedChannelBuilder.forAddress("127.0.0.1", admin.getPort()).usePlaintext().build();
        ManagedChannel bareCh = ManagedChannelBuilder.forAddress("127.0.0.1", bare.getPort()).usePlaintext().build();
        try {
            List<ServerView.Endpoint> eps = ServerView.discover(ch, Duration.ofSeconds(10));
            assertEquals(List.of(
                    // A wildcard or no host at all: the host the router was reached at.
                    new ServerView.Endpoint("http://127.0.0.1:9400/metrics", "router"),
                    new ServerView.Endpoint("http://10.0.0.2:9401/metrics", "attention-worker"),
                    new ServerView.Endpoint("http://10.0.0.4:9403/metrics", "expert-worker"),
                    new ServerView.Endpoint("http://10.0.0.3:9402/metrics", "expert-worker"),
                    new ServerView.Endpoint("http://127.0.0.1:9404/metrics", "expert-worker")), eps);
            assertEquals(List.of(), ServerView.discover(bareCh, Duration.ofSeconds(10)), "no admin API: none");
        } finally {
            ch.shutdownNow();
            bareCh.shutdownNow();
            admin.shutdownNow();
            bare.shutdownNow();
        }
    }
}
