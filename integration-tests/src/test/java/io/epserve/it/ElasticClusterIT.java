package io.epserve.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.epserve.cli.cluster.LocalCluster;
import io.epserve.proto.admin.v1.AdminGrpc;
import io.epserve.proto.admin.v1.DrainRequest;
import io.epserve.proto.admin.v1.DrainResponse;
import io.epserve.proto.admin.v1.Member;
import io.epserve.proto.admin.v1.PlacementRequest;
import io.epserve.proto.admin.v1.PlacementResponse;
import io.epserve.proto.admin.v1.StatusRequest;
import io.epserve.proto.admin.v1.StatusResponse;
import io.epserve.proto.admin.v1.WorkerLoad;
import io.epserve.proto.v1.GenerateRequest;
import io.epserve.proto.v1.GenerateResponse;
import io.epserve.proto.v1.InferenceGrpc;
import io.epserve.proto.v1.SamplingParams;
import io.epserve.proto.worker.v1.AttentionWorkerGrpc;
import io.grpc.Channel;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The control plane with real processes started from the built distribution on 127.0.0.1, through the public gRPC
 * APIs only: expert workers join, drain and die (the first coordinator drained, the second killed) while requests
 * stream, and every request gets exactly the tokens of an undisturbed run; a router restarts; a process with another
 * model is refused; EPLB spreads a skewed load over replicas.
 */
class ElasticClusterIT {
    /** The golden tiny checkpoint (the model module's test resources). */
    static final Path TINY = Path.of(System.getProperty("epserve.model.tiny",
            "../model/src/test/resources/golden/tiny"));
    /** The cli module's target directory: epserve-cli.jar and lib/. */
    static final Path DIST = Path.of(System.getProperty("epserve.cli.target", "../cli/target"));

    /**
     * Small JVMs from the distribution, five of them on two cores. Exact kernels: scalar code that C2 compiles well;
     * under C1 only (-XX:TieredStopAtLevel=1, used here before) this class took 353 s instead of 215.
     */
    static LocalCluster.Options tinyCluster(Path logs) {
        return LocalCluster.options().artifacts(DIST).model(TINY).kernels("exact").attentionThreads(1)
                .expertThreads(1).jvmArg("-Xmx384m").readyTimeoutMs(90_000).logDir(logs).controlPlane(true);
    }

    /** Logs under -Depserve.test.logs=DIR (kept after the run) or the test's temporary directory. */
    Path logs(String name) {
        String keep = System.getProperty("epserve.test.logs");
        return keep != null ? Path.of(keep, name) : tmp.resolve(name);
    }

    @TempDir
    Path tmp;

    /** A streaming Generate whose tokens can be watched while it runs. */
    static final class Stream implements StreamObserver<GenerateResponse> {
        final List<Integer> ids = Collections.synchronizedList(new ArrayList<>());
        final List<Long> arrivals = Collections.synchronizedList(new ArrayList<>());
        final CompletableFuture<Status> done = new CompletableFuture<>();

        static Stream start(Channel ch, GenerateRequest req) {
            Stream s = new Stream();
            InferenceGrpc.newStub(ch).withDeadlineAfter(3, TimeUnit.MINUTES).generate(req, s);
            return s;
        }

        @Override
        public void onNext(GenerateResponse r) {
            if (r.hasDelta()) {
                ids.addAll(r.getDelta().getTokenIdsList());
                arrivals.add(System.nanoTime());
            }
        }

        @Override
        public void onError(Throwable t) {
            done.complete(Status.fromThrowable(t));
        }

        @Override
        public void onCompleted() {
            done.complete(Status.OK);
        }

        List<Integer> await() throws Exception {
            Status s = done.get(3, TimeUnit.MINUTES);
            assertEquals(Status.Code.OK, s.getCode(), "stream failed after " + ids.size() + " tokens: " + s);
            return List.copyOf(ids);
        }
    }

    /** Four greedy requests and one seeded sampling request, each long enough to span a placement change. */
    static List<GenerateRequest> requests(int tokens) {
        List<GenerateRequest> r = new ArrayList<>();
        String[] prompts = {"The quick brown fox", "Expert parallelism on CPUs", "Hello, world", "0 1 2 3 4 5"};
        for (String p : prompts) {
            r.add(GenerateRequest.newBuilder().setText(p).setSampling(SamplingParams.newBuilder()
                    .setMaxTokens(tokens).setIgnoreEos(true)).build());
        }
        r.add(GenerateRequest.newBuilder().setText("Sampling, seeded").setSampling(SamplingParams.newBuilder()
                .setMaxTokens(tokens).setIgnoreEos(true).setTemperature(0.8f).setTopP(0.9f).setSeed(7)).build());
        return r;
    }

    static List<Stream> startAll(Channel ch, List<GenerateRequest> reqs) {
        return reqs.stream().map(r -> Stream.start(ch, r)).toList();
    }

    static List<List<Integer>> awaitAll(List<Stream> streams) throws Exception {
        List<List<Integer>> out = new ArrayList<>();
        for (Stream s : streams) {
            out.add(s.await());
        }
        return out;
    }

    /** Until the placement spreads the experts over two expert workers and no change is under way. */
    static void awaitSettledPlacementOverTwo(AdminGrpc.AdminBlockingStub admin) throws InterruptedException {
        waitFor("a placement over expert workers 1 and 2", 60_000, () -> {
            try {
                PlacementResponse p = admin.placement(PlacementRequest.getDefaultInstance());
                return p.getWorkersCount() == 2 && p.getTargetEpoch() == 0;
            } catch (StatusRuntimeException e) {
                return false;
            }
        });
    }

    /** Until the router counts {@code n} attention workers as ready: before that it answers UNAVAILABLE, as it
     *  should, and the router learns of them through Hazelcast independently of the placement. */
    static void awaitReadyAttentionWorkers(AdminGrpc.AdminBlockingStub admin, int n) throws InterruptedException {
        waitFor(n + " attention worker(s) ready at the router", 60_000,
                () -> LocalCluster.readyAttentionWorkers(admin) == n);
    }

    static void waitFor(String what, long timeoutMs, BooleanSupplier cond) throws InterruptedException {
        long until = System.currentTimeMillis() + timeoutMs;
        while (!cond.getAsBoolean()) {
            if (System.currentTimeMillis() > until) {
                fail("timed out after " + timeoutMs + " ms waiting for " + what);
            }
            Thread.sleep(50);
        }
    }

    static boolean everyStreamHasTokens(List<Stream> streams, int n) {
        return streams.stream().allMatch(s -> s.ids.size() >= n || s.done.isDone());
    }

    static Member member(StatusResponse st, String role, int id) {
        return st.getMembersList().stream().filter(m -> m.getRole().equals(role) && m.getId() == id).findFirst()
                .orElse(null);
    }

    static String workers(PlacementResponse p) {
        return p.getWorkersList().stream().map(w -> Integer.toString(w.getWorkerId())).toList().toString();
    }

    @Test
    @Timeout(value = 8, unit = TimeUnit.MINUTES)
    void expertWorkersJoinDrainAndDieMidStreamAndEveryRequestKeepsItsTokens() throws Exception {
        try (LocalCluster cluster = LocalCluster.start(tinyCluster(logs("elastic")).expertWorkers(2)
                .attentionWorkers(1).microBatches(2).router(0))) {
            Channel ch = cluster.routerChannel();
            var admin = AdminGrpc.newBlockingStub(ch);
            awaitSettledPlacementOverTwo(admin);
            StatusResponse st = admin.status(StatusRequest.getDefaultInstance());
            assertTrue(member(st, "expert-worker", 1).getCoordinator(), "the oldest member coordinates: " + st);
            // The operator's command line over the same API.
            String routerAt = "127.0.0.1:" + cluster.router().grpcPort();
            LocalCluster.Exit status = cluster.run(List.of("admin", "--router", routerAt, "status"), 60_000);
            assertEquals(0, status.code(), status.output());
            assertTrue(status.output().contains("expert-worker") && status.output().contains("[coordinator]")
                    && status.output().contains("kv_budget_bytes="), status.output());
            LocalCluster.Exit placement = cluster.run(List.of("admin", "--router", routerAt, "placement"), 60_000);
            assertEquals(0, placement.code(), placement.output());
            assertTrue(placement.output().contains("expert worker 1: 20 experts"), placement.output());
            LocalCluster.Exit unknown = cluster.run(List.of("admin", "--router", routerAt, "drain", "99"), 60_000);
            assertEquals(1, unknown.code(), unknown.output());
            assertTrue(unknown.output().contains("NOT_FOUND: no expert worker 99"), unknown.output());
            assertEquals(4, st.getMembersCount(), st.toString());

            // A process serving another model is refused with a message naming both, and exits 1.
            Path other = tmp.resolve("other-model");
            Files.createDirectories(other);
            Path tiny = TINY;
            for (String f : new String[] {"model.safetensors", "tokenizer.json", "tokenizer_config.json"}) {
                Files.copy(tiny.resolve(f), other.resolve(f));
            }
            Files.writeString(other.resolve("config.json"), Files.readString(tiny.resolve("config.json")) + "\n");
            List<String> args = new ArrayList<>(List.of("expert-worker", "--model", other.toString(), "--listen",
                    "127.0.0.1:" + LocalCluster.freeUdpPort(), "--worker-id", "9"));
            args.addAll(cluster.clusterFlags());
            LocalCluster.Exit refused = cluster.run(args, 90_000);
            assertEquals(1, refused.code(), refused.output());
            assertTrue(refused.output().contains("serves model") && refused.output().contains("was started with model"),
                    refused.output());

            List<GenerateRequest> reqs = requests(48);
            List<List<Integer>> reference = awaitAll(startAll(ch, reqs));
            for (List<Integer> r : reference) {
                assertEquals(48, r.size());
            }

            // Scale up: a third expert worker joins while the requests stream.
            List<Stream> streams = startAll(ch, reqs);
            waitFor("first tokens", 60_000, () -> everyStreamHasTokens(streams, 2));
            long launched = System.currentTimeMillis();
            LocalCluster.Worker third = cluster.addExpertWorker();
            waitFor("a placement with expert worker 3", 60_000, () -> {
                PlacementResponse p = admin.placement(PlacementRequest.getDefaultInstance());
                return p.getWorkersCount() == 3 && p.getTargetEpoch() == 0;
            });
            assertEquals(reference, awaitAll(streams), "tokens changed by the scale-up");
            // Its first dispatch: it serves from the first step after the attention worker switched; short requests
            // keep steps coming until it reports one (its gauges are announced once a second).
            long[] firstDispatch = new long[1];
            GenerateRequest probe = reqs.get(0).toBuilder().setSampling(reqs.get(0).getSampling().toBuilder()
                    .setMaxTokens(2)).build();
            waitFor("expert worker 3's first dispatch", 60_000, () -> {
                Member m = member(admin.status(StatusRequest.getDefaultInstance()), "expert-worker", 3);
                firstDispatch[0] = m == null ? 0 : m.getGaugesOrDefault("first_dispatch_ms", 0);
                if (firstDispatch[0] == 0) {
                    try {
                        awaitAll(startAll(ch, List.of(probe)));
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                }
                return firstDispatch[0] > 0;
            });
            long joinToFirstDispatchMs = firstDispatch[0] - launched;

            // Drain the first coordinator: its experts move away, it exits 0, nothing changes for the client.
            List<Stream> during = startAll(ch, reqs);
            waitFor("first tokens", 60_000, () -> everyStreamHasTokens(during, 2));
            DrainResponse drained = admin.withDeadlineAfter(2, TimeUnit.MINUTES).drain(DrainRequest.newBuilder()
                    .setWorkerId(1).setWait(true).setTimeoutMs(100_000).build());
            assertTrue(drained.getDone(), drained.toString());
            LocalCluster.Worker first = cluster.expertWorkers().get(0);
            assertTrue(first.process.waitFor(30, TimeUnit.SECONDS), "expert worker 1 did not exit");
            assertEquals(0, first.process.exitValue(), first.logTail(20));
            assertEquals(reference, awaitAll(during), "tokens changed by the drain");
            PlacementResponse afterDrain = admin.placement(PlacementRequest.getDefaultInstance());
            assertEquals("[2, 3]", workers(afterDrain));

            // SIGKILL the coordinator now (expert worker 2) mid-generation: the steps waiting on it go to the
            // experts' new owner, another member takes over as coordinator, every request keeps its tokens.
            StatusResponse before = admin.status(StatusRequest.getDefaultInstance());
            assertTrue(member(before, "expert-worker", 2).getCoordinator(), before.toString());
            List<Stream> killed = startAll(ch, reqs);
            waitFor("first tokens", 60_000, () -> everyStreamHasTokens(killed, 4));
            LocalCluster.Worker second = cluster.expertWorkers().get(1);
            long killedAt = System.nanoTime();
            second.kill();
            assertEquals(reference, awaitAll(killed), "tokens changed by the failover");
            long nextToken = Long.MAX_VALUE;
            long widestGap = 0;
            for (Stream st2 : killed) {
                synchronized (st2.arrivals) {
                    long last = 0;
                    for (long t : st2.arrivals) {
                        if (t > killedAt) {
                            nextToken = Math.min(nextToken, t);
                            widestGap = Math.max(widestGap, last == 0 ? 0 : t - last);
                            break;
                        }
                        last = t;
                    }
                }
            }
            double killToNextTokenMs = (nextToken - killedAt) / 1e6;
            PlacementResponse afterKill = admin.placement(PlacementRequest.getDefaultInstance());
            assertEquals("[3]", workers(afterKill));
            for (WorkerLoad w : afterKill.getWorkersList()) {
                assertEquals(40, w.getExperts(), "expert worker 3 holds all 5 x 8 experts");
            }
            StatusResponse after = admin.status(StatusRequest.getDefaultInstance());
            assertTrue(after.getMembersList().stream().anyMatch(Member::getCoordinator), after.toString());
            String awLog = Files.readString(cluster.attentionWorkers().get(0).log);
            Matcher pause = Pattern.compile("re-dispatched to placement epoch \\d+ after ([0-9.]+) ms").matcher(awLog);
            double maxPauseMs = 0;
            boolean any = false;
            while (pause.find()) {
                any = true;
                maxPauseMs = Math.max(maxPauseMs, Double.parseDouble(pause.group(1)));
            }
            // The kill may land between steps (then the next step waits for the new placement instead).
            assertTrue(any || awLog.contains("waiting for a placement without it"), awLog);

            // The router dies and a new one starts: the cluster serves through it as before.
            cluster.router().kill();
            LocalCluster.Worker router = cluster.startRouter(0);
            ManagedChannel ch2 = ManagedChannelBuilder.forAddress("127.0.0.1", router.grpcPort()).usePlaintext()
                    .build();
            try {
                awaitReadyAttentionWorkers(admin(ch2), 1);
                assertEquals(reference.subList(0, 2), awaitAll(startAll(ch2, reqs.subList(0, 2))));
            } finally {
                ch2.shutdownNow();
            }
            System.out.printf(Locale.ROOT, "control plane figures: new expert worker start to first dispatch %d ms;"
                    + " SIGKILL of the coordinating expert worker to the next token %.1f ms, widest inter-token gap"
                    + " across it %.1f ms; longest re-dispatch pause %.1f ms%n", joinToFirstDispatchMs,
                    killToNextTokenMs, widestGap / 1e6, maxPauseMs);
        }
    }

    @Test
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    void eplbSpreadsASkewedLoadOverReplicasAndKeepsEveryToken() throws Exception {
        try (LocalCluster cluster = LocalCluster.start(tinyCluster(logs("eplb"))
                .clusterArg("--redundant-experts").clusterArg("2").expertWorkers(2).attentionWorkers(1)
                .microBatches(2).router(0))) {
            Channel ch = cluster.routerChannel();
            var admin = AdminGrpc.newBlockingStub(ch);
            awaitSettledPlacementOverTwo(admin);
            // Skewed: the same prompt eight times routes every step's tokens to the same few experts.
            List<GenerateRequest> skewed = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                skewed.add(GenerateRequest.newBuilder().setText("The same prompt, again and again").setSampling(
                        SamplingParams.newBuilder().setMaxTokens(24).setIgnoreEos(true)).build());
            }
            List<List<Integer>> reference = awaitAll(startAll(ch, skewed));
            // The attention worker reports its counts once a second.
            waitFor("the load to be reported", 10_000, () -> {
                PlacementResponse p = admin.placement(PlacementRequest.getDefaultInstance());
                return p.getMaxLoad() > 8 * 24;
            });
            Thread.sleep(1_200);
            PlacementResponse before = admin.placement(PlacementRequest.getDefaultInstance());
            var result = admin.withDeadlineAfter(1, TimeUnit.MINUTES).rebalance(
                    io.epserve.proto.admin.v1.RebalanceRequest.newBuilder().setTimeoutMs(50_000).build());
            PlacementResponse after = admin.placement(PlacementRequest.getDefaultInstance());
            System.out.printf(Locale.ROOT, "EPLB on a skewed load: balance (mean/max tokens per expert worker)"
                            + " %.3f -> %.3f (rebalance says %.3f -> %.3f, %d replicas moved, epoch %d -> %d)%n",
                    before.getBalance(), after.getBalance(), result.getBalanceBefore(), result.getBalanceAfter(),
                    result.getMoved(), before.getEpoch(), after.getEpoch());
            assertTrue(after.getEpoch() > before.getEpoch(), "no new placement for a skewed load: " + result);
            assertTrue(result.getBalanceAfter() > result.getBalanceBefore(), result.toString());
            // Hot experts have replicas on both workers; the tokens do not depend on which replica computed them.
            long replicated = after.getReplicasList().stream().filter(r -> r.getWorkersCount() > 1).count();
            assertTrue(replicated > 0, "no expert has two replicas: " + after);
            assertEquals(reference, awaitAll(startAll(ch, skewed)), "tokens changed by the rebalance");
        }
    }

    @Test
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    void anAttentionWorkerKilledMidStreamLosesNoRequestAndNoToken() throws Exception {
        try (LocalCluster cluster = LocalCluster.start(tinyCluster(logs("attention-loss")).expertWorkers(2)
                .attentionWorkers(2).microBatches(2).router(0))) {
            Channel ch = cluster.routerChannel();
            var admin = AdminGrpc.newBlockingStub(ch);
            awaitReadyAttentionWorkers(admin, 2);
            List<GenerateRequest> reqs = new ArrayList<>(requests(40));
            reqs.addAll(requests(40));
            List<List<Integer>> reference = awaitAll(startAll(ch, reqs));
            List<Stream> streams = startAll(ch, reqs);
            // Both workers run some of the requests (their gauges are announced once a second).
            waitFor("requests running on both attention workers", 60_000, () -> {
                StatusResponse st = admin.status(StatusRequest.getDefaultInstance());
                return st.getMembersList().stream().filter(m -> m.getRole().equals("attention-worker")
                        && m.getGaugesOrDefault("running", 0) > 0).count() == 2;
            });
            waitFor("first tokens", 60_000, () -> everyStreamHasTokens(streams, 3));
            // The victim is the worker with the most requests at this moment, asked directly: the router's status
            // carries gauges up to a second old, and a worker whose share has already finished would lose nothing.
            LocalCluster.Worker[] victim = new LocalCluster.Worker[1];
            waitFor("an attention worker with requests in progress", 60_000, () -> {
                int most = 0;
                for (LocalCluster.Worker w : cluster.attentionWorkers()) {
                    int n = requestsAt(w);
                    if (n > most) {
                        most = n;
                        victim[0] = w;
                    }
                }
                return most > 0;
            });
            victim[0].kill();
            assertEquals(reference, awaitAll(streams), "a stream changed when its attention worker died");
            waitFor("the router to forget the dead worker", 30_000, () -> admin.status(
                    StatusRequest.getDefaultInstance()).getMembersList().stream().filter(m ->
                    m.getRole().equals("attention-worker")).count() == 1);
            String routerLog = Files.readString(cluster.router().log);
            assertTrue(routerLog.contains("resubmitted to"), "no request was resubmitted:\n" + routerLog);
            // New requests go to the survivor.
            assertEquals(reference.subList(0, 2), awaitAll(startAll(ch, reqs.subList(0, 2))));
        }
    }

    /** Requests running or waiting at this attention worker, from its own Status. */
    static int requestsAt(LocalCluster.Worker w) {
        ManagedChannel ch = ManagedChannelBuilder.forAddress("127.0.0.1", w.grpcPort()).usePlaintext().build();
        try {
            var st = AttentionWorkerGrpc.newBlockingStub(ch).withDeadlineAfter(5, TimeUnit.SECONDS)
                    .status(io.epserve.proto.worker.v1.StatusRequest.getDefaultInstance());
            return st.getRunningRequests() + st.getWaitingRequests();
        } finally {
            ch.shutdownNow();
        }
    }

    static AdminGrpc.AdminBlockingStub admin(Channel ch) {
        return AdminGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS);
    }
}
