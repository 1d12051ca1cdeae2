package io.epserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.proto.v1.Delta;
import io.epserve.proto.v1.Final;
import io.epserve.proto.v1.FinishReason;
import io.epserve.proto.v1.GenerateRequest;
import io.epserve.proto.v1.GenerateResponse;
import io.epserve.proto.v1.InferenceGrpc;
import io.epserve.proto.v1.SamplingParams;
import io.epserve.proto.v1.Usage;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The runner against a real gRPC server on 127.0.0.1 whose streams have known timings and known failures: the
 * recorded times respect the server's pauses, every failure keeps its row with the status it ended with, the
 * concurrency cap holds, and a run over its time limit ends with every request accounted for.
 */
@Timeout(60)
class LoadRunnerTest {
    private static final AtomicInteger running = new AtomicInteger();
    private static final AtomicInteger peak = new AtomicInteger();
    private static final AtomicInteger cancelled = new AtomicInteger();
    private static Server server;
    private static ManagedChannel channel;

    /**
     * text "reject": RESOURCE_EXHAUSTED; "hang": never answers; "nofinal": tokens, then the end without a final;
     * "counted": as any other text (max_tokens tokens 30 ms apart after 60 ms), its cancellations counted.
     */
    static final class Scripted extends InferenceGrpc.InferenceImplBase {
        @Override
        public void generate(GenerateRequest r, StreamObserver<GenerateResponse> out) {
            ServerCallStreamObserver<GenerateResponse> call = (ServerCallStreamObserver<GenerateResponse>) out;
            // Counted for one test's requests only: other tests' hanging calls are cancelled at times of their own.
            call.setOnCancelHandler(() -> {
                if (r.getText().equals("counted")) {
                    cancelled.incrementAndGet();
                }
            });
            int now = running.incrementAndGet();
            peak.accumulateAndGet(now, Math::max);
            try {
                switch (r.getText()) {
                    case "reject" -> {
                        out.onError(Status.RESOURCE_EXHAUSTED.withDescription("queue full").asRuntimeException());
                        return;
                    }
                    case "hang" -> {
                        return;
                    }
                    default -> {
                    }
                }
                int n = r.getSampling().getMaxTokens();
                Thread.sleep(60);
                for (int i = 0; i < n && !call.isCancelled(); i++) {
                    if (i > 0) {
                        Thread.sleep(30);
                    }
                    out.onNext(GenerateResponse.newBuilder().setDelta(Delta.newBuilder().setText("x").addTokenIds(7))
                            .build());
                }
                if (!r.getText().equals("nofinal")) {
                    out.onNext(GenerateResponse.newBuilder().setFinal(Final.newBuilder()
                            .setFinishReason(FinishReason.LENGTH).setUsage(Usage.newBuilder().setPromptTokens(5)
                                    .setCompletionTokens(n).setQueueSeconds(0.001))).build());
                }
                out.onCompleted();
            } catch (InterruptedException e) {
                out.onError(Status.CANCELLED.asRuntimeException());
            } finally {
                running.decrementAndGet();
            }
        }
    }

    @BeforeAll
    static void start() throws Exception {
        server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0)).addService(new Scripted())
                .build().start();
        channel = ManagedChannelBuilder.forTarget("127.0.0.1:" + server.getPort()).usePlaintext().build();
    }

    @AfterAll
    static void stop() throws Exception {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    private static BenchRequest text(String t, int tokens) {
        return BenchRequest.generate(GenerateRequest.newBuilder().setText(t)
                .setSampling(SamplingParams.newBuilder().setMaxTokens(tokens)).build(), 5);
    }

    @Test
    void recordsTimingsAndKeepsEveryFailure() throws Exception {
        List<BenchRequest> reqs = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            reqs.add(text("ok", 4));
        }
        reqs.add(text("reject", 4));
        reqs.add(text("nofinal", 2));
        peak.set(0);
        LoadRunner.Run run = LoadRunner.run(channel, reqs, new LoadRunner.Settings(new double[reqs.size()], 2,
                Duration.ofSeconds(20), Duration.ofSeconds(30)), null, "");
        assertTrue(peak.get() <= 2, "at most 2 in flight, saw " + peak.get());
        for (int i = 0; i < 4; i++) {
            RequestOutcome o = run.outcomes().get(i);
            assertTrue(o.success(), o.error());
            assertEquals(4, o.outputTokens());
            // Only what the server's pauses guarantee, whatever the machine's load: nothing before 60 ms, the last
            // token not before 60 + 3 x 30 ms (delivery may bunch messages, so single gaps prove nothing).
            assertTrue(o.ttft() >= 0.060, "TTFT " + o.ttft());
            double[] itl = o.itl();
            assertEquals(3, itl.length);
            double last = o.ttft();
            for (double g : itl) {
                assertTrue(g >= 0, "gap " + g);
                last += g;
            }
            assertTrue(last >= 0.150, "last token at " + last);
            assertTrue(o.tpot() > 0);
            assertEquals(5, o.promptTokens);
            assertEquals(4, o.serverCompletionTokens);
            assertEquals("length", o.finishReason);
        }
        assertEquals("RESOURCE_EXHAUSTED: queue full", run.outcomes().get(4).error());
        assertEquals("INTERNAL: the stream ended without a final message", run.outcomes().get(5).error());
        assertTrue(run.durationSeconds() > 0);
    }

    @Test
    void cancelsMidStreamWhenAsked() throws Exception {
        cancelled.set(0);
        LoadRunner.Run run = LoadRunner.run(channel, List.of(text("counted", 6), text("counted", 6),
                text("counted", 6)),
                new LoadRunner.Settings(new double[3], 0, Duration.ofSeconds(20), Duration.ofSeconds(30),
                        new int[] {2, 0, 1}), null, "");
        assertEquals(LoadRunner.CLIENT_CANCEL, run.outcomes().get(0).error());
        assertEquals(2, run.outcomes().get(0).outputTokens());
        assertTrue(run.outcomes().get(1).success());
        assertEquals(6, run.outcomes().get(1).outputTokens());
        assertEquals(LoadRunner.CLIENT_CANCEL, run.outcomes().get(2).error());
        assertEquals(1, run.outcomes().get(2).outputTokens());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (cancelled.get() < 2 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(2, cancelled.get(), "the server saw both cancellations");
    }

    @Test
    void requestTimeoutAndMaxDurationBoundTheRun() throws Exception {
        // Request timeout: a hanging stream fails DEADLINE_EXCEEDED.
        LoadRunner.Run timedOut = LoadRunner.run(channel, List.of(text("hang", 1), text("ok", 1)),
                new LoadRunner.Settings(new double[2], 0, Duration.ofSeconds(3), Duration.ofSeconds(30)), null, "");
        assertEquals(LoadRunner.REQUEST_TIMEOUT, timedOut.outcomes().get(0).error());
        assertTrue(timedOut.outcomes().get(1).success(), timedOut.outcomes().get(1).error());

        // Max duration: two hang (cancelled), the third is scheduled after the end (never sent); all three rows stay.
        long t0 = System.nanoTime();
        LoadRunner.Run over = LoadRunner.run(channel, List.of(text("hang", 1), text("hang", 1), text("ok", 1)),
                new LoadRunner.Settings(new double[] {0, 0, 5}, 0, Duration.ofSeconds(60), Duration.ofSeconds(1)),
                null, "");
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(15));
        assertEquals(3, over.outcomes().size());
        assertEquals(LoadRunner.MAX_DURATION, over.outcomes().get(0).error());
        assertEquals(LoadRunner.MAX_DURATION, over.outcomes().get(1).error());
        assertEquals("CANCELLED: not sent before --max-duration", over.outcomes().get(2).error());
    }
}
