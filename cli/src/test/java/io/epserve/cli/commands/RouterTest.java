package io.epserve.cli.commands;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.cli.cluster.LocalCluster;
import io.epserve.model.config.ModelConfig;
import io.epserve.proto.v1.DetokenizeRequest;
import io.epserve.proto.v1.FinishReason;
import io.epserve.proto.v1.GenerateRequest;
import io.epserve.proto.v1.GenerateResponse;
import io.epserve.proto.v1.InferenceGrpc;
import io.epserve.proto.v1.ListModelsRequest;
import io.epserve.proto.v1.SamplingParams;
import io.epserve.proto.v1.TokenIds;
import io.epserve.proto.v1.TokenizeRequest;
import io.epserve.proto.worker.v1.AttentionWorkerGrpc;
import io.epserve.proto.worker.v1.StatusRequest;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** End to end through a real router, attention worker and expert workers on 127.0.0.1, public API only. */
class RouterTest {
    @TempDir
    Path tmp;

    record Result(List<Integer> ids, String text, io.epserve.proto.v1.Final fin, Status status) {}

    static Result generate(Channel ch, GenerateRequest req) {
        List<Integer> ids = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        try {
            var it = InferenceGrpc.newBlockingStub(ch).withDeadlineAfter(2, TimeUnit.MINUTES).generate(req);
            io.epserve.proto.v1.Final fin = null;
            while (it.hasNext()) {
                GenerateResponse r = it.next();
                if (r.hasDelta()) {
                    ids.addAll(r.getDelta().getTokenIdsList());
                    text.append(r.getDelta().getText());
                } else {
                    fin = r.getFinal();
                }
            }
            return new Result(ids, text.toString(), fin, Status.OK);
        } catch (StatusRuntimeException e) {
            return new Result(ids, text.toString(), null, e.getStatus());
        }
    }

    static GenerateRequest tokens(int[] prompt, SamplingParams s) {
        return GenerateRequest.newBuilder().setTokenIds(TokenIds.newBuilder()
                .addAllIds(Arrays.stream(prompt).boxed().toList())).setSampling(s).build();
    }

    @Test
    @Timeout(value = 6, unit = TimeUnit.MINUTES)
    void generateThroughTheRouterGivesTheGoldenTokensAndConcurrentStreamsTheirOwn() throws Exception {
        int[] golden = EngineCommandsTest.goldenTokens();
        int[] greedy = ClusterTest.goldenInts("greedy");
        // 32 requests, each with the tokens it gets alone: from the single-process engine, one request at a time. The
        // exact cluster computes its bits (ClusterTest), and this JVM computes them in a fraction of the time that
        // 32 requests in turn through the cluster's five processes took (most of this test's time before).
        int n = 32;
        List<GenerateRequest> reqs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            SamplingParams.Builder s = SamplingParams.newBuilder().setMaxTokens(4 + i % 4).setIgnoreEos(true);
            if (i % 3 == 0) {
                s.setTemperature(0.7f).setSeed(i).setTopK(20);
            }
            reqs.add(tokens(Arrays.copyOfRange(golden, i, i + 6 + i % 9), s.build()));
        }
        List<Result> single = new ArrayList<>();
        try (var worker = io.epserve.attention.AttentionWorker.start(ClusterTest.singleProcess());
             var router = io.epserve.router.Router.start(io.epserve.router.Router.options().model(ClusterTest.TINY)
                     .attentionWorker("127.0.0.1:" + worker.port()).port(0))) {
            var ch = io.grpc.ManagedChannelBuilder.forAddress("127.0.0.1", router.port()).usePlaintext().build();
            try {
                for (GenerateRequest r : reqs) {
                    single.add(generate(ch, r));
                    assertEquals(Status.OK, single.getLast().status());
                }
                // Chat is the router's (template, parser), the same in both modes; its prompt (system, tools) is
                // ~1000 tokens, which took the exact cluster (then compiled by C1 only) 37 s to prefill.
                chatStreamsDeltasThatAddUpToTheParsedMessage(ch);
            } finally {
                ch.shutdownNow();
            }
        }
        try (LocalCluster cluster = LocalCluster.start(ClusterTest.tinyCluster(tmp.resolve("logs"), "exact")
                .expertWorkers(2).attentionWorkers(2).microBatches(2).router(0))) {
            Channel ch = cluster.routerChannel();
            SamplingParams g = SamplingParams.newBuilder().setMaxTokens(greedy.length).setIgnoreEos(true).build();
            Result alone = generate(ch, tokens(golden, g));
            assertEquals(Status.OK, alone.status());
            assertArrayEquals(greedy, alone.ids().stream().mapToInt(Integer::intValue).toArray());
            assertEquals(FinishReason.LENGTH, alone.fin().getFinishReason());
            assertEquals(golden.length, alone.fin().getUsage().getPromptTokens());
            assertEquals(greedy.length, alone.fin().getUsage().getCompletionTokens());
            // The text is the detokenised ids, streamed without splitting a character.
            String whole = InferenceGrpc.newBlockingStub(ch).detokenize(DetokenizeRequest.newBuilder()
                    .addAllTokenIds(alone.ids()).setSkipSpecialTokens(true).build()).getText();
            assertEquals(whole, alone.text());

            // 32 concurrent streams over two attention workers: each gets the tokens it gets alone.
            ExecutorService pool = Executors.newFixedThreadPool(n);
            try {
                List<Future<Result>> together = new ArrayList<>();
                for (GenerateRequest r : reqs) {
                    together.add(pool.submit(() -> generate(ch, r)));
                }
                for (int i = 0; i < n; i++) {
                    Result t = together.get(i).get(3, TimeUnit.MINUTES);
                    assertEquals(Status.OK, t.status(), "stream " + i);
                    assertEquals(single.get(i).ids(), t.ids(), "stream " + i + ": alone in the single-process engine vs with 31 others in the cluster");
                }
            } finally {
                pool.shutdownNow();
            }

            // A stop string ends the stream before it, and is reported.
            String stop = alone.text().length() > 3 ? alone.text().substring(2, 3) : null;
            if (stop != null && !stop.isBlank()) {
                Result st = generate(ch, tokens(golden, g.toBuilder().addStop(stop).build()));
                assertEquals(FinishReason.STOP, st.fin().getFinishReason());
                assertEquals(stop, st.fin().getStop());
                assertFalse(st.text().contains(stop));
                assertTrue(alone.text().startsWith(st.text()));
            }

            // Invalid input: INVALID_ARGUMENT, and the router keeps serving.
            int context = ModelConfig.load(ClusterTest.TINY).maxPositionEmbeddings();
            List<GenerateRequest> bad = List.of(
                    tokens(new int[0], g),
                    tokens(new int[context], g),
                    tokens(golden, g.toBuilder().setTemperature(-0.5f).build()),
                    tokens(golden, g.toBuilder().setTopP(0f).build()),
                    tokens(golden, g.toBuilder().setTopP(1.5f).build()),
                    tokens(golden, g.toBuilder().setMaxTokens(0).build()),
                    tokens(golden, g.toBuilder().setMaxTokens(-3).build()),
                    tokens(golden, g).toBuilder().setModel("no-such-model").build(),
                    GenerateRequest.newBuilder().setText("").setSampling(g).build());
            for (GenerateRequest r : bad) {
                Result res = generate(ch, r);
                assertEquals(Status.Code.INVALID_ARGUMENT, res.status().getCode(), r.toString());
                assertTrue(res.status().getDescription() != null && !res.status().getDescription().isEmpty());
            }
            assertEquals(Status.OK, generate(ch, tokens(golden, g.toBuilder().setMaxTokens(2).build())).status());

            // Cancelling mid-stream frees the sequence on the worker.
            var call = InferenceGrpc.newStub(ch);
            var done = new java.util.concurrent.CountDownLatch(1);
            call.generate(tokens(golden, g.toBuilder().setMaxTokens(1500).build()),
                    new io.grpc.stub.ClientResponseObserver<GenerateRequest, GenerateResponse>() {
                        io.grpc.stub.ClientCallStreamObserver<GenerateRequest> c;
                        int seen;

                        @Override
                        public void beforeStart(io.grpc.stub.ClientCallStreamObserver<GenerateRequest> c) {
                            this.c = c;
                        }

                        @Override
                        public void onNext(GenerateResponse r) {
                            if (++seen == 3) {
                                c.cancel("enough", null);
                            }
                        }

                        @Override
                        public void onError(Throwable t) {
                            done.countDown();
                        }

                        @Override
                        public void onCompleted() {
                            done.countDown();
                        }
                    });
            assertTrue(done.await(1, TimeUnit.MINUTES));
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            int running;
            do {
                running = 0;
                for (int i = 0; i < 2; i++) {
                    running += AttentionWorkerGrpc.newBlockingStub(cluster.channel(i))
                            .status(StatusRequest.getDefaultInstance()).getRunningRequests();
                }
            } while (running > 0 && System.nanoTime() < until);
            assertEquals(0, running);


            // Tokenize, Detokenize, ListModels.
            var stub = InferenceGrpc.newBlockingStub(ch);
            var models = stub.listModels(ListModelsRequest.getDefaultInstance());
            assertEquals("tiny", models.getModels(0).getId());
            assertEquals(context, models.getModels(0).getContextLength());
            var ids = stub.tokenize(TokenizeRequest.newBuilder().setText("hello").build()).getTokenIdsList();
            assertFalse(ids.isEmpty());
            assertEquals("hello", stub.detokenize(DetokenizeRequest.newBuilder().addAllTokenIds(ids).build()).getText());
        }
    }

    /** `epserve up --single-process`: the same API and the same tokens from one process. */
    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void theSingleProcessModeServesTheSameApiAndTokens() throws Exception {
        int[] golden = EngineCommandsTest.goldenTokens();
        int[] greedy = ClusterTest.goldenInts("greedy");
        // KV memory for one golden request (prompt + 24 tokens) and a half: a second one waits for the first.
        long one = (long) Math.ceil(io.epserve.model.engine.CacheLayout.of(ModelConfig.load(ClusterTest.TINY))
                .bytesFor(golden.length + greedy.length));
        try (var worker = io.epserve.attention.AttentionWorker.start(ClusterTest.singleProcess()
                .kvMemoryBytes(one + one / 2));
             var router = io.epserve.router.Router.start(io.epserve.router.Router.options().model(ClusterTest.TINY)
                     .attentionWorker("127.0.0.1:" + worker.port()).port(0))) {
            var ch = io.grpc.ManagedChannelBuilder.forAddress("127.0.0.1", router.port()).usePlaintext().build();
            try {
                SamplingParams g = SamplingParams.newBuilder().setMaxTokens(greedy.length).setIgnoreEos(true).build();
                Result r = generate(ch, tokens(golden, g));
                assertEquals(Status.OK, r.status());
                assertArrayEquals(greedy, r.ids().stream().mapToInt(Integer::intValue).toArray());
                assertEquals(Status.Code.INVALID_ARGUMENT, generate(ch, tokens(new int[0], g)).status().getCode());
                // Admission by KV memory: two at once still both finish with the golden tokens (one waits).
                ExecutorService pool = Executors.newFixedThreadPool(2);
                try {
                    var a = pool.submit(() -> generate(ch, tokens(golden, g)));
                    var b = pool.submit(() -> generate(ch, tokens(golden, g)));
                    for (var f : List.of(a, b)) {
                        Result x = f.get(2, TimeUnit.MINUTES);
                        assertEquals(Status.OK, x.status());
                        assertArrayEquals(greedy, x.ids().stream().mapToInt(Integer::intValue).toArray());
                    }
                } finally {
                    pool.shutdownNow();
                }
                // More than the whole KV memory: refused with the reason, not queued forever.
                Result tooBig = generate(ch, tokens(golden, g.toBuilder().setMaxTokens(10_000).build()));
                assertEquals(Status.Code.INVALID_ARGUMENT, tooBig.status().getCode());
                assertTrue(tooBig.status().getDescription().contains("KV memory"), tooBig.status().toString());
            } finally {
                ch.shutdownNow();
            }
        }
    }

    /** Chat: the deltas of each kind add up to the final parsed message; bad conversations are INVALID_ARGUMENT. */
    static void chatStreamsDeltasThatAddUpToTheParsedMessage(Channel ch) {
        var stub = InferenceGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES);
        for (var mode : new io.epserve.proto.v1.ThinkingMode[] {io.epserve.proto.v1.ThinkingMode.CHAT,
                io.epserve.proto.v1.ThinkingMode.THINKING}) {
            var req = io.epserve.proto.v1.ChatRequest.newBuilder().setThinking(mode)
                    .setSampling(SamplingParams.newBuilder().setMaxTokens(12).setSeed(3).setTemperature(1f))
                    .addMessages(io.epserve.proto.v1.ChatMessage.newBuilder().setRole("system").setContent("Be brief."))
                    .addMessages(io.epserve.proto.v1.ChatMessage.newBuilder().setRole("user").setContent("Hi there"))
                    .addToolsJson("{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\":"
                            + " \"Weather\", \"parameters\": {\"type\": \"object\", \"properties\": {}}}}")
                    .build();
            StringBuilder reasoning = new StringBuilder();
            StringBuilder content = new StringBuilder();
            io.epserve.proto.v1.ChatFinal fin = null;
            int tokens = 0;
            for (var it = stub.chat(req); it.hasNext(); ) {
                var r = it.next();
                if (r.hasDelta()) {
                    reasoning.append(r.getDelta().getReasoning());
                    content.append(r.getDelta().getContent());
                    tokens += r.getDelta().getTokenIdsCount();
                } else {
                    fin = r.getFinal();
                }
            }
            assertTrue(fin != null, "no final message");
            assertEquals("assistant", fin.getMessage().getRole());
            assertEquals(fin.getUsage().getCompletionTokens(), tokens);
            if (!fin.getMalformed()) {
                assertEquals(fin.getMessage().getReasoningContent(), reasoning.toString(), mode.toString());
                assertEquals(fin.getMessage().getContent(), content.toString(), mode.toString());
            }
            if (mode == io.epserve.proto.v1.ThinkingMode.CHAT) {
                assertEquals("", fin.getMessage().getReasoningContent());
            }
        }
        for (var bad : List.of(
                io.epserve.proto.v1.ChatRequest.getDefaultInstance(),
                io.epserve.proto.v1.ChatRequest.newBuilder().addMessages(io.epserve.proto.v1.ChatMessage.newBuilder()
                        .setRole("wizard").setContent("x")).build(),
                io.epserve.proto.v1.ChatRequest.newBuilder().addMessages(io.epserve.proto.v1.ChatMessage.newBuilder()
                        .setRole("user").setContent("x")).addToolsJson("{not json").build())) {
            StatusRuntimeException e = org.junit.jupiter.api.Assertions.assertThrows(StatusRuntimeException.class,
                    () -> stub.chat(bad).forEachRemaining(r -> { }));
            assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e.getStatus().toString());
        }
    }
}
