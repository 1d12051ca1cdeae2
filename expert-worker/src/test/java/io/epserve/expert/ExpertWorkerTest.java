package io.epserve.expert;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.engine.ExpertFfn;
import io.epserve.model.kernel.ExactKernels;
import io.epserve.model.weights.ModelWeights;
import io.epserve.model.weights.ExpertWeights;
import io.epserve.transport.Channels;
import io.epserve.transport.MediaDriverHandle;
import io.epserve.transport.sbe.ErrorCode;
import io.epserve.transport.sbe.HelloStatus;
import io.epserve.transport.sbe.Role;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A real expert worker (its own embedded media driver) serving experts 0..3 of the golden tiny model, and a test-side
 * attention worker (its own driver) talking to it over UDP on 127.0.0.1.
 */
class ExpertWorkerTest {
    static final Duration TIMEOUT = Duration.ofSeconds(10);
    static final int MAX_TOKENS = 100;

    static Tiny.Layer1 golden;
    static ExpertWorker worker;
    static AttentionEndpoint attn;
    static final List<String> log = new CopyOnWriteArrayList<>();

    @BeforeAll
    static void start() {
        golden = new Tiny.Layer1();
        worker = ExpertWorker.start(ExpertWorker.options()
                .model(Tiny.dir())
                .experts("0-3")
                .listen("127.0.0.1:" + Channels.freeLoopbackPort())
                .kernels("exact")
                .threads(1)
                .maxTokensPerDispatch(MAX_TOKENS)
                .workerId(7)
                .log(log::add));
        attn = new AttentionEndpoint("attn", 42, worker.listenChannel(), worker.dispatchStream(),
                worker.controlStream());
        attn.hello(worker.modelFingerprint());
    }

    @AfterAll
    static void stop() {
        String dir = worker == null ? null : worker.aeronDirectoryName();
        try {
            if (attn != null) {
                attn.close();
            }
        } finally {
            if (worker != null) {
                worker.close();
                assertFalse(Files.exists(Path.of(dir)), "the worker's Aeron directory is deleted on close");
            }
        }
    }

    @Test
    void answersHelloWithReadyAndItsFingerprint() {
        Received.Hello h = attn.received.hellos.get(0);
        assertEquals(Role.EXPERT_WORKER, h.role());
        assertEquals(HelloStatus.READY, h.status());
        assertEquals(7, h.source());
        assertEquals(worker.modelFingerprint() + ";experts=*:0-3", h.fingerprint());
        assertEquals(worker.listenChannel(), h.replyChannel());
        assertEquals(Channels.DISPATCH_STREAM, h.replyStreamId());
        assertTrue(worker.readyLine().contains("experts 0-3 of 8 in each of 5 layers"), worker.readyLine());
        assertTrue(worker.readyLine().contains("127.0.0.1"), worker.readyLine());
        assertEquals(1, worker.peers());
    }

    @Test
    void combinesAreBitIdenticalToLocalExpertCallsAndEachSlotIsComputedOnce() {
        List<Tiny.Row> rows = golden.rows(e -> e < 4);
        int entries = rows.stream().mapToInt(r -> r.slots().size()).sum();
        long[] before = new long[8];
        for (int e = 0; e < 8; e++) {
            before[e] = worker.executor().rowsComputed(Tiny.LAYER, e);
        }
        long step = 100;
        golden.dispatch(attn.dispatchWriter, step, attn.source, Tiny.LAYER, rows);
        attn.await(() -> attn.received.rowsOf(step).size() >= entries, TIMEOUT, entries + " combine rows");
        attn.pollFor(Duration.ofMillis(50));
        List<Received.CombineRow> got = attn.received.rowsOf(step);
        assertEquals(entries, got.size(), "one combine row per (token, slot)");

        Set<Long> seen = new HashSet<>();
        int d = golden.d;
        int inter = golden.c.moeInterDim();
        try (ExactKernels k = new ExactKernels(); ExpertWeights local = ExpertWeights.open(Tiny.dir(),
                (l, e) -> l == Tiny.LAYER)) {
            for (Received.CombineRow r : got) {
                assertTrue(seen.add((long) r.token() << 8 | r.slot()), "duplicate (token, slot)");
                Tiny.Slot s = slotOf(rows, r.token(), r.slot());
                assertEquals(s.expert(), r.expert());
                assertEquals(Tiny.LAYER, r.layer());
                assertEquals(7, r.source());
                float[] x = new float[d];
                System.arraycopy(golden.x, r.token() * d, x, 0, d);
                float[] y = new float[d];
                ModelWeights.Expert ex = local.expert(Tiny.LAYER, s.expert());
                ExpertFfn.routed(k, golden.c, ex, x, 1, new double[] {s.weight()}, new float[inter],
                        new float[inter], y);
                short[] want = new short[d];
                for (int j = 0; j < d; j++) {
                    want[j] = (short) (Float.floatToRawIntBits(y[j]) >>> 16);
                }
                assertArrayEquals(want, r.bf16(), "token " + r.token() + " expert " + r.expert());
            }
        }
        for (int e = 0; e < 8; e++) {
            int ee = e;
            long routed = rows.stream().flatMap(r -> r.slots().stream()).filter(s -> s.expert() == ee).count();
            assertEquals(routed, worker.executor().rowsComputed(Tiny.LAYER, e) - before[e], "rows of expert " + e);
        }
        // Waves: one per expert, in increasing order, each expert's rows in one wave.
        List<Integer> waves = got.stream().map(Received.CombineRow::wave).distinct().toList();
        assertEquals(List.of(0, 1, 2, 3), waves);
        for (Received.CombineRow r : got) {
            assertEquals(r.expert(), got.stream().filter(o -> o.wave() == r.wave()).findFirst().orElseThrow().expert());
        }
    }

    @Test
    void anUnplacedExpertIsAnsweredWithAnErrorNamingLayerAndExpert() {
        long step = 200;
        int errors = attn.received.errors.size();
        List<Tiny.Row> rows = golden.rows(e -> e == 6);
        assertFalse(rows.isEmpty(), "some token routes to expert 6");
        golden.dispatch(attn.dispatchWriter, step, attn.source, Tiny.LAYER, rows);
        attn.await(() -> attn.received.errors.size() > errors, TIMEOUT, "an Error");
        Received.Error err = attn.received.errors.get(errors);
        assertEquals(ErrorCode.UNKNOWN_EXPERT, err.code());
        assertEquals(step, err.step());
        assertEquals(Tiny.LAYER, err.layer());
        assertTrue(err.message().contains("expert 6 of layer 1"), err.message());
        assertEquals(0, attn.received.rowsOf(step).size());
        stillServing(step + 1);
    }

    @Test
    void anOversizeDispatchIsAnsweredWithAnError() {
        long step = 300;
        List<Tiny.Row> rows = new ArrayList<>();
        List<Tiny.Row> all = golden.rows(e -> e < 4);
        while (rows.size() <= MAX_TOKENS) {
            rows.addAll(all);
        }
        int errors = attn.received.errors.size();
        golden.dispatch(attn.dispatchWriter, step, attn.source, Tiny.LAYER, rows);
        attn.await(() -> attn.received.errors.size() > errors, TIMEOUT, "an Error");
        Received.Error err = attn.received.errors.get(errors);
        assertEquals(ErrorCode.BAD_MESSAGE, err.code());
        assertEquals(step, err.step());
        assertTrue(err.message().contains(rows.size() + " tokens"), err.message());
        assertTrue(err.message().contains("limit of " + MAX_TOKENS), err.message());
        stillServing(step + 1);
    }

    @Test
    void aHelloForAnotherModelIsRefusedAndAnUnknownSourceIsDropped() {
        try (AttentionEndpoint other = new AttentionEndpoint("attn-other", 43, worker.listenChannel(),
                worker.dispatchStream(), worker.controlStream())) {
            other.hello("sha256:0123");
            Received.Error err = other.received.errors.get(0);
            assertEquals(ErrorCode.FINGERPRINT_MISMATCH, err.code());
            assertTrue(err.message().contains("sha256:0123"), err.message());

            long dropped = worker.unknownSourceDispatches();
            golden.dispatch(other.dispatchWriter, 400, other.source, Tiny.LAYER, golden.rows(e -> e == 0));
            other.await(() -> worker.unknownSourceDispatches() > dropped, TIMEOUT, "the dispatch to be dropped");
            assertTrue(log.stream().anyMatch(l -> l.contains("source 43")), log.toString());
            assertEquals(0, other.received.rows.size());
        }
    }

    /** An external (shared) media driver and IPC: the worker and the attention worker are clients of one driver. */
    @Test
    void servesOverIpcThroughAnExternalDriver() {
        try (MediaDriverHandle shared = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("shared"))) {
            String dir = shared.aeronDirectoryName();
            List<Tiny.Row> rows = golden.rows(e -> e == 1 || e == 6);
            int entries = rows.stream().mapToInt(r -> r.slots().size()).sum();
            try (ExpertWorker w = ExpertWorker.start(ExpertWorker.options().model(Tiny.dir()).experts("1,6")
                    .listen("ipc").externalDriver(dir).dispatchStream(2001).controlStream(2003).workerId(9)
                    .log(log::add));
                 AttentionEndpoint a = new AttentionEndpoint(MediaDriverHandle.attach(dir), Channels.ipc(), 50,
                         w.listenChannel(), 2001, 2003)) {
                assertTrue(w.readyLine().contains("(external driver)"), w.readyLine());
                assertEquals(dir, w.aeronDirectoryName());
                a.hello(w.modelFingerprint());
                assertEquals(HelloStatus.READY, a.received.hellos.get(0).status());
                assertEquals(2001, a.received.hellos.get(0).replyStreamId());
                golden.dispatch(a.dispatchWriter, 1, a.source, Tiny.LAYER, rows);
                a.await(() -> a.received.rows.size() >= entries, TIMEOUT, "combines over IPC");
                assertEquals(List.of(1, 6), a.received.rows.stream().map(Received.CombineRow::expert).distinct()
                        .toList());
            }
            assertTrue(Files.isDirectory(Path.of(dir)), "closing a worker leaves an external driver alone");
        }
    }

    private static void stillServing(long step) {
        List<Tiny.Row> rows = golden.rows(e -> e == 2);
        int entries = rows.stream().mapToInt(r -> r.slots().size()).sum();
        golden.dispatch(attn.dispatchWriter, step, attn.source, Tiny.LAYER, rows);
        attn.await(() -> attn.received.rowsOf(step).size() >= entries, TIMEOUT, "combines after an error");
    }

    private static Tiny.Slot slotOf(List<Tiny.Row> rows, int token, int slot) {
        for (Tiny.Row r : rows) {
            if (r.token() == token) {
                for (Tiny.Slot s : r.slots()) {
                    if (s.slot() == slot) {
                        return s;
                    }
                }
            }
        }
        throw new AssertionError("no slot " + slot + " of token " + token + " was dispatched");
    }
}
