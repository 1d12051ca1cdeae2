package io.epserve.cli.commands;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.cli.cluster.LocalCluster;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.LocalModel;
import io.epserve.model.engine.Sampler;
import io.epserve.model.engine.SequenceCache;
import io.epserve.model.engine.Transformer;
import io.epserve.model.safetensors.SafetensorsFile;
import io.epserve.model.safetensors.TensorInfo;
import io.epserve.proto.worker.v1.AttentionWorkerGrpc;
import io.epserve.proto.worker.v1.Chunk;
import io.epserve.proto.worker.v1.DecodeRequest;
import io.epserve.proto.worker.v1.DecodeResponse;
import io.epserve.proto.worker.v1.ForwardRequest;
import io.epserve.proto.worker.v1.ForwardResponse;
import io.epserve.proto.worker.v1.GenerateEvent;
import io.epserve.proto.worker.v1.GenerateRequest;
import io.epserve.proto.worker.v1.SamplingParams;
import io.epserve.proto.worker.v1.StatusRequest;
import io.epserve.transport.MediaDriverHandle;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Real processes on 127.0.0.1: expert workers with the routed experts split between them and attention workers with
 * 1, 2 and 3 micro-batches sharing them, on the golden tiny model. The cluster must compute exactly what the
 * single-process engine computes with the same kernels, every routed expert exactly once per token and slot, and a
 * killed expert worker must fail a step within a bounded time.
 */
class ClusterTest {
    static final Path TINY = EngineCommandsTest.TINY;
    static final Pattern ROWS = Pattern.compile("served (\\d+) exchanges, (\\d+) expert rows computed");

    @TempDir
    Path tmp;

    /**
     * Small JVMs: the tiny model needs little heap, and five JVMs share two cores. Both kernel sets need C2: the
     * Vector API boxes every vector op without it, and the scalar exact kernels under C1 alone made the tests that
     * generate through a cluster about 1.6x slower (ElasticClusterIT: 353 s under C1, 215 s with C2).
     */
    static LocalCluster.Options tinyCluster(Path logs, String kernels) {
        return LocalCluster.options().model(TINY).kernels(kernels).attentionThreads(1).expertThreads(1)
                .jvmArg("-Xmx384m").readyTimeoutMs(90_000).logDir(logs);
    }

    /**
     * An attention worker with every expert in its own JVM, exact kernels, one thread: the single-process engine
     * whose bits the exact cluster must reproduce, used by the tests for their reference tokens.
     */
    static io.epserve.attention.AttentionWorker.Options singleProcess() {
        return io.epserve.attention.AttentionWorker.options().model(TINY).localExperts(true).kernels("exact")
                .threads(1).port(0);
    }

    /** The batches every attention worker runs: a prefill step of four sequences, then three decode steps. */
    record Workload(List<List<Chunk>> steps) {}

    /** Four sequences of different lengths (the golden prompt and three other prompts), prefilled together. */
    static List<Chunk> prefill(String prefix) {
        int[] g = EngineCommandsTest.goldenTokens();
        int[][] prompts = {g, Arrays.copyOfRange(g, 0, 17), Arrays.copyOfRange(g, 40, 45), {0, 259, 100, 101, 102}};
        List<Chunk> out = new ArrayList<>();
        for (int i = 0; i < prompts.length; i++) {
            out.add(chunk(prefix + i, prompts[i]));
        }
        return out;
    }

    static Chunk chunk(String id, int... tokens) {
        Chunk.Builder b = Chunk.newBuilder().setSequenceId(id);
        for (int t : tokens) {
            b.addTokens(t);
        }
        return b.build();
    }

    static float[] floats(ForwardResponse r) {
        int n = 0;
        for (var l : r.getLogitsList()) {
            n += l.getRows() * r.getVocabSize();
        }
        float[] v = new float[n];
        int o = 0;
        for (var l : r.getLogitsList()) {
            ByteBuffer b = l.getValues().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
            int k = l.getRows() * r.getVocabSize();
            b.asFloatBuffer().get(v, o, k);
            o += k;
        }
        return v;
    }

    /**
     * Runs the workload on one attention worker: the prefill (all logits), then decode steps on the greedy tokens.
     * Returns the logits of every step, concatenated.
     */
    static List<float[]> runRemote(AttentionWorkerGrpc.AttentionWorkerBlockingStub stub, String prefix, int decodeSteps) {
        List<float[]> out = new ArrayList<>();
        List<Chunk> pre = prefill(prefix);
        ForwardResponse r = stub.withDeadlineAfter(2, TimeUnit.MINUTES)
                .forward(ForwardRequest.newBuilder().addAllChunks(pre).setAllLogits(true).build());
        float[] lg = floats(r);
        out.add(lg);
        int vocab = r.getVocabSize();
        int[] last = lastRows(pre);
        int[] next = new int[pre.size()];
        for (int i = 0; i < pre.size(); i++) {
            next[i] = Sampler.argmax(lg, last[i] * vocab, vocab);
        }
        for (int s = 0; s < decodeSteps; s++) {
            ForwardRequest.Builder b = ForwardRequest.newBuilder();
            for (int i = 0; i < pre.size(); i++) {
                b.addChunks(chunk(prefix + i, next[i]));
            }
            lg = floats(stub.withDeadlineAfter(2, TimeUnit.MINUTES).forward(b.build()));
            out.add(lg);
            for (int i = 0; i < pre.size(); i++) {
                next[i] = Sampler.argmax(lg, i * vocab, vocab);
            }
        }
        return out;
    }

    /** The same workload on the single-process engine. */
    static List<float[]> runLocal(LocalModel m, int decodeSteps) {
        Transformer tr = m.transformer();
        int vocab = m.config().vocabSize();
        List<Chunk> pre = prefill("x");
        List<SequenceCache> seqs = new ArrayList<>();
        List<Transformer.Chunk> chunks = new ArrayList<>();
        for (Chunk c : pre) {
            SequenceCache s = tr.newSequence(m.contextLimit());
            seqs.add(s);
            chunks.add(new Transformer.Chunk(s, c.getTokensList().stream().mapToInt(Integer::intValue).toArray()));
        }
        List<float[]> out = new ArrayList<>();
        float[] lg = tr.forward(chunks, true).logits();
        out.add(lg);
        int[] last = lastRows(pre);
        int[] next = new int[pre.size()];
        for (int i = 0; i < pre.size(); i++) {
            next[i] = Sampler.argmax(lg, last[i] * vocab, vocab);
        }
        for (int s = 0; s < decodeSteps; s++) {
            List<Transformer.Chunk> step = new ArrayList<>();
            for (int i = 0; i < pre.size(); i++) {
                step.add(new Transformer.Chunk(seqs.get(i), new int[] {next[i]}));
            }
            lg = tr.forward(step, false).logits();
            out.add(lg);
            for (int i = 0; i < pre.size(); i++) {
                next[i] = Sampler.argmax(lg, i * vocab, vocab);
            }
        }
        return out;
    }

    static int[] lastRows(List<Chunk> pre) {
        int[] last = new int[pre.size()];
        int acc = 0;
        for (int i = 0; i < pre.size(); i++) {
            acc += pre.get(i).getTokensCount();
            last[i] = acc - 1;
        }
        return last;
    }

    static long tokensOf(int decodeSteps) {
        long n = 0;
        for (Chunk c : prefill("x")) {
            n += c.getTokensCount();
        }
        return n + (long) decodeSteps * 4;
    }

    /** Expert rows computed, summed over the expert workers' stop lines. */
    static long expertRowsComputed(LocalCluster cluster) throws IOException {
        long rows = 0;
        for (LocalCluster.Worker w : cluster.expertWorkers()) {
            String log = Files.readString(w.log);
            Matcher m = ROWS.matcher(log);
            assertTrue(m.find(), "no summary line in " + w + ":\n" + log);
            rows += Long.parseLong(m.group(2));
            System.out.println(log.lines().filter(l -> l.contains("served ")).findFirst().orElse(""));
        }
        return rows;
    }

    static void assertIdentical(List<float[]> expected, List<float[]> actual, String what) {
        assertEquals(expected.size(), actual.size(), what);
        for (int i = 0; i < expected.size(); i++) {
            float[] e = expected.get(i);
            float[] a = actual.get(i);
            assertEquals(e.length, a.length, what + " step " + i);
            for (int j = 0; j < e.length; j++) {
                if (Float.floatToRawIntBits(e[j]) != Float.floatToRawIntBits(a[j])) {
                    throw new AssertionError(what + ": step " + i + " logit " + j + " is " + a[j] + ", single process "
                            + e[j]);
                }
            }
        }
    }

    /** Each attention worker runs the workload concurrently, so the expert workers serve them interleaved. */
    static Map<Integer, List<float[]>> runAll(LocalCluster cluster, int decodeSteps) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(cluster.attentionWorkers().size());
        try {
            Map<Integer, Future<List<float[]>>> futures = new LinkedHashMap<>();
            for (int i = 0; i < cluster.attentionWorkers().size(); i++) {
                var stub = AttentionWorkerGrpc.newBlockingStub(cluster.channel(i));
                int aw = i;
                futures.put(i, pool.submit(() -> runRemote(stub, "aw" + aw + "-", decodeSteps)));
            }
            Map<Integer, List<float[]>> out = new LinkedHashMap<>();
            for (var e : futures.entrySet()) {
                out.put(e.getKey(), e.getValue().get(3, TimeUnit.MINUTES));
            }
            return out;
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    @Timeout(value = 6, unit = TimeUnit.MINUTES)
    void exactClusterComputesWhatTheSingleProcessEngineComputesWithOneTwoAndThreeMicroBatches() throws Exception {
        int decodeSteps = 3;
        ModelConfig c = ModelConfig.load(TINY);
        List<float[]> local;
        try (LocalModel m = LocalModel.open(TINY, "exact", 1)) {
            local = runLocal(m, decodeSteps);
        }
        // The golden prompt is sequence 0 of the prefill: its rows are the first 96 of the logits.
        float[] golden = EngineCommandsTest.goldenLogits();
        float[] pre = local.get(0);
        for (int i = 0; i < golden.length; i++) {
            assertTrue(Math.abs(golden[i] - pre[i]) <= 1e-4, "single process vs golden at " + i);
        }
        LocalCluster cluster = LocalCluster.start(tinyCluster(tmp.resolve("logs"), "exact").expertWorkers(2)
                .microBatchesPerWorker(1, 2, 3));
        long awSlots = 0;
        try (cluster) {
            Map<Integer, List<float[]>> remote = runAll(cluster, decodeSteps);
            for (var e : remote.entrySet()) {
                assertIdentical(local, e.getValue(), "attention worker " + e.getKey() + " (" + (e.getKey() + 1)
                        + " micro-batches)");
            }
            // Greedy decoding inside the worker gives the golden continuation.
            DecodeResponse d = AttentionWorkerGrpc.newBlockingStub(cluster.channel(1)).withDeadlineAfter(2, TimeUnit.MINUTES)
                    .decode(DecodeRequest.newBuilder().addPrompts(chunk("greedy", EngineCommandsTest.goldenTokens()))
                            .setSteps(23).setRelease(true).build());
            int[] greedy = d.getSequences(0).getTokensList().stream().mapToInt(Integer::intValue).toArray();
            assertArrayEquals(goldenInts("greedy"), greedy);
            for (int i = 0; i < 3; i++) {
                awSlots += AttentionWorkerGrpc.newBlockingStub(cluster.channel(i)).status(StatusRequest.getDefaultInstance())
                        .getRoutedSlots();
            }
        }
        long expected = (3 * tokensOf(decodeSteps) + 96 + 23) * c.nLayers() * c.nActivatedExperts();
        assertEquals(expected, awSlots, "expert outputs added up by the attention workers");
        assertEquals(expected, expertRowsComputed(cluster), "expert rows computed by the expert workers");
    }

    /**
     * IPC: the expert worker uses the attention worker's media driver; the same bits as over UDP. Then the driver's
     * process is killed; and an attention worker loses its driver while it starts.
     */
    @Test
    @Timeout(value = 4, unit = TimeUnit.MINUTES)
    void overIpcWithASharedMediaDriverTheClusterComputesTheSameBits() throws Exception {
        List<float[]> local;
        try (LocalModel m = LocalModel.open(TINY, "exact", 1)) {
            local = runLocal(m, 2);
        }
        try (LocalCluster cluster = LocalCluster.start(tinyCluster(tmp.resolve("logs"), "exact").expertWorkers(1)
                .microBatches(2).ipc(true))) {
            assertTrue(cluster.attentionWorkers().get(0).readyLine().contains("combine inbox aeron:ipc"),
                    cluster.attentionWorkers().get(0).readyLine());
            assertTrue(cluster.expertWorkers().get(0).readyLine().contains("external driver"),
                    cluster.expertWorkers().get(0).readyLine());
            assertIdentical(local, runRemote(AttentionWorkerGrpc.newBlockingStub(cluster.channel(0)), "ipc-", 2), "IPC");

            // The driver's process dies: the expert worker's Aeron client can never work again. It stops by itself
            // within its driver timeout (10 s), exit code 1, saying why (it used to idle on a dead client).
            LocalCluster.Worker ew = cluster.expertWorkers().get(0);
            cluster.attentionWorkers().get(0).kill();
            assertTrue(ew.process.waitFor(40, TimeUnit.SECONDS), "the expert worker still runs:\n" + ew.logTail(20));
            String log = ew.logTail(20);
            assertEquals(1, ew.process.exitValue(), log);
            assertTrue(log.contains("cannot serve any more, stopping: Aeron client of the media driver in")
                    && log.contains("DriverTimeoutException"), log);
            assertTrue(log.contains("expert-worker 1: stopped"), log);

            // An attention worker whose driver goes while it waits for its expert workers (as at a container's start)
            // stops at once, exit code 1, saying why; not after --connect-timeout-ms (here 5 minutes).
            try (MediaDriverHandle driver = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("aw"))) {
                int before = clientsOf(driver);
                CompletableFuture<LocalCluster.Exit> aw = CompletableFuture.supplyAsync(() -> {
                    try {
                        return cluster.run(List.of("attention-worker", "--model", TINY.toString(), "--expert-workers",
                                "127.0.0.1:" + LocalCluster.freeUdpPort(), "--listen",
                                "127.0.0.1:" + LocalCluster.freeUdpPort(), "--external-driver",
                                driver.aeronDirectoryName(), "--connect-timeout-ms", "300000", "--threads", "1"),
                                120_000);
                    } catch (IOException | InterruptedException e) {
                        throw new IllegalStateException(e);
                    }
                });
                long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                while (clientsOf(driver) == before && !aw.isDone() && System.nanoTime() < until) {
                    Thread.sleep(50);
                }
                assertEquals(before + 1, clientsOf(driver), () -> "the attention worker did not attach to the driver: "
                        + (aw.isDone() ? aw.join().output() : "still running"));
                Thread.sleep(500); // into its wait for the expert workers
                long closed = System.nanoTime();
                driver.close();
                LocalCluster.Exit exit = aw.get(60, TimeUnit.SECONDS);
                long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - closed);
                assertEquals(1, exit.code(), exit.output());
                assertTrue(exit.output().contains("epserve attention-worker: Aeron client of the media driver in "
                        + driver.aeronDirectoryName() + " is gone"), exit.output());
                assertTrue(ms < 30_000, "exited " + ms + " ms after its driver closed");
            }
        }
    }

    /** Heartbeat counters of a driver's clients (one per client that attached to it: its own may have none). */
    static int clientsOf(MediaDriverHandle driver) {
        int[] n = {0};
        driver.aeron().countersReader().forEach((id, type, key, label) -> {
            if (type == io.aeron.AeronCounters.DRIVER_HEARTBEAT_TYPE_ID) {
                n[0]++;
            }
        });
        return n[0];
    }

    @Test
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    void fastClusterIsBitIdenticalToTheFastSingleProcessEngine() throws Exception {
        int decodeSteps = 3;
        List<float[]> local;
        try (LocalModel m = LocalModel.open(TINY, "fast", 2)) {
            local = runLocal(m, decodeSteps);
        }
        try (LocalCluster cluster = LocalCluster.start(tinyCluster(tmp.resolve("logs"), "fast").expertWorkers(3)
                .microBatchesPerWorker(2, 3))) {
            Map<Integer, List<float[]>> remote = runAll(cluster, decodeSteps);
            for (var e : remote.entrySet()) {
                assertIdentical(local, e.getValue(), "fast attention worker " + e.getKey());
            }
            // One worker, another m per request (how bench-cluster compares m side by side): the same tokens.
            var stub = AttentionWorkerGrpc.newBlockingStub(cluster.channel(0));
            List<List<Integer>> first = null;
            // Pipelined (default) and lockstep steps: the same tokens.
            for (int m : new int[] {0, 1, 3, 4, -2, -3}) {
                DecodeRequest.Builder req = DecodeRequest.newBuilder().setSteps(4).setRelease(true)
                        .setMicroBatches(Math.abs(m)).setLockstep(m < 0);
                for (int i = 0; i < 5; i++) {
                    req.addPrompts(chunk("m" + m + "-" + i, 0, 5 + i, 17, 3 * i + 2));
                }
                DecodeResponse d = stub.withDeadlineAfter(2, TimeUnit.MINUTES).decode(req.build());
                assertEquals(m == 0 ? 2 : Math.abs(m), d.getTiming().getMicroBatches(), "micro-batches asked for: " + m);
                assertEquals(4, d.getTiming().getSteps(), "steps counted with " + m + " micro-batches");
                List<List<Integer>> tokens = d.getSequencesList().stream().map(g -> g.getTokensList()).toList();
                if (first == null) {
                    first = tokens;
                } else {
                    assertEquals(first, tokens, m + " micro-batches instead of the worker's 2");
                }
            }
            assertStatus(Status.Code.INVALID_ARGUMENT, "micro_batches", () -> stub.decode(DecodeRequest.newBuilder()
                    .addPrompts(chunk("m5", 1)).setSteps(1).setMicroBatches(5).build()));
        }
    }

    @Test
    @Timeout(value = 4, unit = TimeUnit.MINUTES)
    void badInputGetsItsStatusAndAKilledExpertWorkerFailsTheStepWithinTheDeadline() throws Exception {
        try (LocalCluster cluster = LocalCluster.start(tinyCluster(tmp.resolve("logs"), "exact").expertWorkers(2)
                .microBatches(2).expertTimeoutMs(2_000))) {
            var stub = AttentionWorkerGrpc.newBlockingStub(cluster.channel(0)).withDeadlineAfter(1, TimeUnit.MINUTES);
            ForwardResponse ok = stub.forward(ForwardRequest.newBuilder().addAllChunks(prefill("a")).build());
            assertEquals(4, ok.getLogitsCount());
            // Bad input: the right status and a message, and nothing changes.
            assertStatus(Status.Code.INVALID_ARGUMENT, "outside the vocabulary",
                    () -> stub.forward(ForwardRequest.newBuilder().addChunks(chunk("bad", 0, 512)).build()));
            assertStatus(Status.Code.INVALID_ARGUMENT, "appears twice",
                    () -> stub.forward(ForwardRequest.newBuilder().addChunks(chunk("d", 1)).addChunks(chunk("d", 2)).build()));
            assertStatus(Status.Code.INVALID_ARGUMENT, "no chunks", () -> stub.forward(ForwardRequest.getDefaultInstance()));
            assertStatus(Status.Code.INVALID_ARGUMENT, "no tokens",
                    () -> stub.forward(ForwardRequest.newBuilder().addChunks(chunk("e")).build()));
            assertStatus(Status.Code.OUT_OF_RANGE, "beyond the context",
                    () -> stub.forward(ForwardRequest.newBuilder().addChunks(chunk("long", new int[ModelConfig.load(TINY)
                            .maxPositionEmbeddings() + 1])).build()));
            assertStatus(Status.Code.ALREADY_EXISTS, "in use", () -> stub.decode(DecodeRequest.newBuilder()
                    .addPrompts(chunk("a0", 1)).setSteps(1).build()));
            assertEquals(4, AttentionWorkerGrpc.newBlockingStub(cluster.channel(0)).status(StatusRequest.getDefaultInstance())
                    .getSequences());
            cluster.expertWorkers().get(1).kill();
            long t0 = System.nanoTime();
            StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                    () -> stub.forward(ForwardRequest.newBuilder().addChunks(chunk("b", 0, 259, 100)).build()));
            double seconds = (System.nanoTime() - t0) / 1e9;
            Status.Code code = e.getStatus().getCode();
            assertTrue(code == Status.Code.DEADLINE_EXCEEDED || code == Status.Code.UNAVAILABLE, e.getStatus().toString());
            String msg = e.getStatus().getDescription();
            assertNotNull(msg);
            assertTrue(msg.contains("expert worker 2"), msg);
            assertTrue(msg.contains("dropped"), msg);
            assertTrue(seconds < 15, "the step failed after " + seconds + " s");
            // The worker is still there and says what it holds; the failed sequence is gone, the others are not.
            var status = AttentionWorkerGrpc.newBlockingStub(cluster.channel(0)).status(StatusRequest.getDefaultInstance());
            assertEquals(4, status.getSequences());
            assertEquals(1, status.getFailedSteps());
            assertTrue(cluster.attentionWorkers().get(0).process.isAlive());
        }
    }

    /** All events of one Generate call: its tokens, then the finish reason (or the error status). */
    record Streamed(List<Integer> tokens, String reason, Status status) {}

    static Streamed generate(io.grpc.Channel ch, String id, int[] prompt, SamplingParams sampling) {
        List<Integer> tokens = new ArrayList<>();
        GenerateRequest.Builder b = GenerateRequest.newBuilder().setRequestId(id).setSampling(sampling);
        for (int t : prompt) {
            b.addPromptTokens(t);
        }
        try {
            var it = AttentionWorkerGrpc.newBlockingStub(ch).withDeadlineAfter(2, TimeUnit.MINUTES).generate(b.build());
            String reason = null;
            while (it.hasNext()) {
                GenerateEvent e = it.next();
                if (e.hasToken()) {
                    tokens.add(e.getToken().getTokenId());
                } else {
                    reason = e.getFinished().getReason();
                    assertEquals(prompt.length, e.getFinished().getPromptTokens());
                    assertEquals(tokens.size(), e.getFinished().getCompletionTokens());
                }
            }
            return new Streamed(tokens, reason, Status.OK);
        } catch (StatusRuntimeException e) {
            return new Streamed(tokens, null, e.getStatus());
        }
    }

    @Test
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    void generateStreamsTheGoldenTokensAndEveryRequestGetsItsOwnTokensUnderConcurrentLoad() throws Exception {
        int[] golden = EngineCommandsTest.goldenTokens();
        int[] goldenGreedy = goldenInts("greedy");
        try (LocalCluster cluster = LocalCluster.start(tinyCluster(tmp.resolve("logs"), "exact").expertWorkers(2)
                .microBatches(2))) {
            var ch = cluster.channel(0);
            SamplingParams greedy = SamplingParams.newBuilder().setMaxTokens(goldenGreedy.length).setIgnoreEos(true).build();
            Streamed alone = generate(ch, "g0", golden, greedy);
            assertEquals(Status.OK, alone.status());
            assertEquals("length", alone.reason());
            assertArrayEquals(goldenGreedy, alone.tokens().stream().mapToInt(Integer::intValue).toArray());

            // Each request alone, then 16 at once (greedy and seeded sampling, prompts of different lengths): the
            // same tokens, whatever else is in the batch.
            int n = 16;
            List<int[]> prompts = new ArrayList<>();
            List<SamplingParams> params = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                prompts.add(Arrays.copyOfRange(golden, 0, 5 + 5 * i));
                SamplingParams.Builder sp = SamplingParams.newBuilder().setMaxTokens(6 + i % 5).setIgnoreEos(true);
                if (i % 2 == 1) {
                    sp.setTemperature(0.8f).setTopP(0.9f).setTopK(50).setSeed(1000 + i).setPresencePenalty(0.5f);
                }
                params.add(sp.build());
            }
            // Alone: in the single-process engine in this JVM (the exact cluster computes its bits, see above), which
            // takes a fraction of the time of 16 requests in turn through the cluster's three processes.
            List<Streamed> single = new ArrayList<>();
            try (var local = io.epserve.attention.AttentionWorker.start(singleProcess())) {
                var lch = io.grpc.ManagedChannelBuilder.forAddress("127.0.0.1", local.port()).usePlaintext().build();
                try {
                    for (int i = 0; i < n; i++) {
                        single.add(generate(lch, "s" + i, prompts.get(i), params.get(i)));
                        assertEquals(Status.OK, single.get(i).status(), "request " + i);
                        assertEquals(params.get(i).getMaxTokens(), single.get(i).tokens().size());
                    }
                } finally {
                    lch.shutdownNow();
                }
            }
            ExecutorService pool = Executors.newFixedThreadPool(n);
            try {
                List<Future<Streamed>> together = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    int k = i;
                    together.add(pool.submit(() -> generate(ch, "c" + k, prompts.get(k), params.get(k))));
                }
                for (int i = 0; i < n; i++) {
                    Streamed t = together.get(i).get(3, TimeUnit.MINUTES);
                    assertEquals(Status.OK, t.status(), "concurrent request " + i);
                    assertEquals(single.get(i).tokens(), t.tokens(),
                            "request " + i + " alone (single process) vs in a batch of " + n + " (cluster)");
                }
            } finally {
                pool.shutdownNow();
            }

            // Invalid parameters: INVALID_ARGUMENT with a message, and the worker keeps serving.
            assertEquals(Status.Code.INVALID_ARGUMENT, generate(ch, "x1", new int[0], greedy).status().getCode());
            assertEquals(Status.Code.INVALID_ARGUMENT, generate(ch, "x2", golden,
                    greedy.toBuilder().setMaxTokens(0).build()).status().getCode());
            assertEquals(Status.Code.INVALID_ARGUMENT, generate(ch, "x3", golden,
                    greedy.toBuilder().setTemperature(-1).build()).status().getCode());
            assertEquals(Status.Code.INVALID_ARGUMENT, generate(ch, "x4", golden,
                    greedy.toBuilder().setTopP(1.5f).build()).status().getCode());
            assertEquals(Status.Code.INVALID_ARGUMENT, generate(ch, "x5",
                    new int[ModelConfig.load(TINY).maxPositionEmbeddings()], greedy).status().getCode());
            assertEquals(Status.Code.INVALID_ARGUMENT, generate(ch, "x6", new int[] {0, 99999}, greedy).status().getCode());

            // Other requests interleave with running generations: the generations' steps give way to a Decode, which
            // ends while a long generation still streams.
            var longCall = new java.util.concurrent.atomic.AtomicReference<io.grpc.stub.ClientCallStreamObserver<GenerateRequest>>();
            var started = new java.util.concurrent.CountDownLatch(3);
            var ended = new java.util.concurrent.CountDownLatch(1);
            AttentionWorkerGrpc.newStub(ch).generate(GenerateRequest.newBuilder().setRequestId("long").addAllPromptTokens(
                    java.util.stream.IntStream.of(golden).boxed().toList()).setSampling(greedy.toBuilder()
                    .setMaxTokens(3000)).build(), new io.grpc.stub.ClientResponseObserver<GenerateRequest, GenerateEvent>() {
                @Override
                public void beforeStart(io.grpc.stub.ClientCallStreamObserver<GenerateRequest> r) {
                    longCall.set(r);
                }

                @Override
                public void onNext(GenerateEvent e) {
                    started.countDown();
                }

                @Override
                public void onError(Throwable t) {
                    ended.countDown();
                }

                @Override
                public void onCompleted() {
                    ended.countDown();
                }
            });
            assertTrue(started.await(1, TimeUnit.MINUTES), "the long generation streams");
            DecodeResponse meanwhile = AttentionWorkerGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES)
                    .decode(DecodeRequest.newBuilder().addPrompts(chunk("meanwhile", golden)).setSteps(2)
                            .setRelease(true).build());
            assertArrayEquals(Arrays.copyOf(goldenGreedy, 3), meanwhile.getSequences(0).getTokensList().stream()
                    .mapToInt(Integer::intValue).toArray());
            assertEquals(1, ended.getCount(), "the Decode waited for the whole generation");
            longCall.get().cancel("done", null);
            assertTrue(ended.await(1, TimeUnit.MINUTES));

            // Cancelling a stream frees its sequence within a step.
            var it = AttentionWorkerGrpc.newStub(ch);
            var done = new java.util.concurrent.CountDownLatch(1);
            var call = new java.util.concurrent.atomic.AtomicReference<io.grpc.stub.ClientCallStreamObserver<GenerateRequest>>();
            it.generate(GenerateRequest.newBuilder().setRequestId("cancel-me").addAllPromptTokens(
                    java.util.stream.IntStream.of(golden).boxed().toList()).setSampling(greedy.toBuilder()
                    .setMaxTokens(2000)).build(), new io.grpc.stub.ClientResponseObserver<GenerateRequest, GenerateEvent>() {
                int seen;

                @Override
                public void beforeStart(io.grpc.stub.ClientCallStreamObserver<GenerateRequest> r) {
                    call.set(r);
                }

                @Override
                public void onNext(GenerateEvent e) {
                    if (++seen == 3) {
                        call.get().cancel("enough", null);
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
            var status = AttentionWorkerGrpc.newBlockingStub(ch);
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            int running;
            do {
                running = status.status(StatusRequest.getDefaultInstance()).getRunningRequests();
            } while (running > 0 && System.nanoTime() < until);
            assertEquals(0, running, "the cancelled request still runs");
        }
    }

    static int[] goldenInts(String name) {
        try (SafetensorsFile f = SafetensorsFile.open(TINY.resolve("golden.safetensors"))) {
            TensorInfo t = f.tensors().get(name);
            int[] v = new int[(int) t.elementCount()];
            for (int i = 0; i < v.length; i++) {
                v[i] = t.data().get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 4L * i);
            }
            return v;
        }
    }

    static void assertStatus(Status.Code code, String text, org.junit.jupiter.api.function.Executable call) {
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call);
        assertEquals(code, e.getStatus().getCode(), e.getStatus().toString());
        assertTrue(e.getStatus().getDescription() != null && e.getStatus().getDescription().contains(text),
                e.getStatus().toString());
    }
}
