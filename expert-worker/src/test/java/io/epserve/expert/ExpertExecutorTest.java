package io.epserve.expert;

import io.epserve.cluster.Placement;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.Transformer;
import io.epserve.model.kernel.KernelSets;
import io.epserve.model.kernel.Kernels;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.weights.ExpertWeights;
import io.epserve.model.weights.ModelWeights;
import io.epserve.transport.CombineWriter;
import io.epserve.transport.DispatchWriter;
import io.epserve.transport.WireHandler;
import io.epserve.transport.sbe.DispatchDecoder;
import io.epserve.transport.sbe.ErrorCode;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The executor in-process on the golden tiny model: layer-1 MoE inputs routed by the engine, dispatched to a worker
 * holding experts 0..3, must give bit-identical outputs to the engine's own expert calls (Transformer.expert over all
 * of an expert's tokens at once, on the bf16 x) with both kernel sets; plus waves, counters, splitting and refusals.
 */
class ExpertExecutorTest {
    static Tiny.Layer1 golden;
    static ExpertWeights weights;
    static ModelConfig c;

    @BeforeAll
    static void load() {
        golden = new Tiny.Layer1();
        c = golden.c;
        weights = ExpertWeights.open(Tiny.dir(), Placement.ofSpec("0-3", c));
    }

    @AfterAll
    static void close() {
        weights.close();
    }

    /** Feeds every captured dispatch message to the executor; returns what came out. */
    private static Received run(ExpertExecutor ex, CaptureSink dispatches, AtomicReference<DispatchRejectedException> rejected) {
        CaptureSink combines = new CaptureSink(2 << 20);
        CombineWriter out = new CombineWriter(combines);
        dispatches.drainTo(new WireHandler() {
            @Override
            public void onDispatch(DispatchDecoder d) {
                try {
                    ex.run(d, 7, out);
                } catch (DispatchRejectedException e) {
                    if (rejected == null) {
                        throw e;
                    }
                    rejected.set(e);
                }
            }
        });
        Received r = new Received();
        combines.drainTo(r);
        return r;
    }

    /** Engine reference: each expert over all its tokens in one call, on the bf16 x, as Transformer.routedExperts does. */
    private static Map<Long, short[]> reference(Kernels k, List<Tiny.Row> rows) {
        Map<Long, short[]> out = new HashMap<>();
        int d = c.dim();
        int inter = c.moeInterDim();
        try (Checkpoint ck = Checkpoint.open(Tiny.dir())) {
            ModelWeights mw = new ModelWeights(c, ck, (l, e) -> l == Tiny.LAYER);
            Transformer tr = new Transformer(mw, k);
            for (int e = 0; e < c.nRoutedExperts(); e++) {
                List<Tiny.Slot> mine = new ArrayList<>();
                for (Tiny.Row r : rows) {
                    for (Tiny.Slot s : r.slots()) {
                        if (s.expert() == e) {
                            mine.add(s);
                        }
                    }
                }
                int n = mine.size();
                if (n == 0) {
                    continue;
                }
                float[] xs = new float[n * d];
                double[] w = new double[n];
                for (int i = 0; i < n; i++) {
                    System.arraycopy(golden.x, mine.get(i).token() * d, xs, i * d, d);
                    w[i] = mine.get(i).weight();
                }
                float[] y = new float[n * d];
                tr.expert(mw.layers[Tiny.LAYER].ffn().experts()[e], xs, n, w, new float[n * inter],
                        new float[n * inter], y);
                for (int i = 0; i < n; i++) {
                    short[] v = new short[d];
                    for (int j = 0; j < d; j++) {
                        int bits = Float.floatToRawIntBits(y[i * d + j]);
                        assertEquals(0, bits & 0xffff, "engine expert outputs are bf16");
                        v[j] = (short) (bits >>> 16);
                    }
                    out.put(key(mine.get(i).token(), mine.get(i).slot()), v);
                }
            }
        }
        return out;
    }

    private static long key(int token, int slot) {
        return (long) token << 8 | slot;
    }

    @ParameterizedTest
    @ValueSource(strings = {"exact", "fast"})
    void outputsAreBitIdenticalToTheEngineWithOneWavePerExpert(String kernels) {
        List<Tiny.Row> rows = golden.rows(e -> e < 4);
        int entries = rows.stream().mapToInt(r -> r.slots().size()).sum();
        assertTrue(rows.size() > 30 && entries > rows.size(), rows.size() + " rows, " + entries + " slots");
        try (Kernels k = KernelSets.create(kernels, 2)) {
            Map<Long, short[]> want = reference(k, rows);
            ExpertExecutor ex = new ExpertExecutor(weights, k, 1, 4096);
            CaptureSink sink = new CaptureSink(2 << 20);
            golden.dispatch(new DispatchWriter(sink), 11, 3, Tiny.LAYER, rows);
            Received got = run(ex, sink, null);

            assertEquals(entries, got.rows.size());
            Map<Long, Received.CombineRow> byKey = new HashMap<>();
            for (Received.CombineRow r : got.rows) {
                assertEquals(null, byKey.put(key(r.token(), r.slot()), r), "duplicate " + r.token() + "/" + r.slot());
                assertEquals(11, r.step());
                assertEquals(Tiny.LAYER, r.layer());
                assertEquals(7, r.source());
            }
            for (Tiny.Row row : rows) {
                for (Tiny.Slot s : row.slots()) {
                    Received.CombineRow r = byKey.get(key(s.token(), s.slot()));
                    assertEquals(s.expert(), r.expert());
                    short[] w = want.get(key(s.token(), s.slot()));
                    for (int j = 0; j < w.length; j++) {
                        if (w[j] != r.bf16()[j]) {
                            throw new AssertionError(kernels + ": token " + s.token() + " slot " + s.slot() + " expert "
                                    + s.expert() + " element " + j + ": " + Integer.toHexString(r.bf16()[j] & 0xffff)
                                    + " != engine " + Integer.toHexString(w[j] & 0xffff));
                        }
                    }
                }
            }
            // Counters: each expert once per exchange, one row per (token, slot) routed to it.
            for (int e = 0; e < c.nRoutedExperts(); e++) {
                int ee = e;
                long routed = rows.stream().flatMap(r -> r.slots().stream()).filter(s -> s.expert() == ee).count();
                assertEquals(routed, ex.rowsComputed(Tiny.LAYER, e), "rows of expert " + e);
                assertEquals(routed > 0 ? 1 : 0, ex.expertCalls(Tiny.LAYER, e), "calls of expert " + e);
            }
            assertEquals(entries, ex.rowsComputed());
            // Waves: one per active expert, ascending expert ids, each a complete exchange (last part flagged).
            int active = (int) rows.stream().flatMap(r -> r.slots().stream()).mapToInt(Tiny.Slot::expert).distinct().count();
            assertEquals(active, got.combines.size());
            int prevExpert = -1;
            for (int w = 0; w < active; w++) {
                assertEquals(w, got.combines.get(w).wave());
                assertTrue(got.combines.get(w).last());
                int ww = w;
                List<Integer> experts = got.rows.stream().filter(r -> r.wave() == ww).map(Received.CombineRow::expert)
                        .distinct().toList();
                assertEquals(1, experts.size());
                assertTrue(experts.get(0) > prevExpert);
                prevExpert = experts.get(0);
            }
            assertEquals(active, ex.waves());
            assertEquals(1, ex.exchanges());
        }
    }

    @Test
    void waveWidthAndSplitDispatchesGiveTheSameRows() {
        List<Tiny.Row> rows = golden.rows(e -> e < 4);
        try (Kernels k = KernelSets.create("exact", 1)) {
            Map<Long, short[]> want = reference(k, rows);
            for (int w : new int[] {0, 2, 3}) {
                ExpertExecutor ex = new ExpertExecutor(weights, k, w, 4096);
                CaptureSink sink = new CaptureSink(2 << 20);
                // Small messages: the exchange is split into many parts, each of a few rows.
                golden.dispatch(new DispatchWriter(sink, 1024), 5, 3, Tiny.LAYER, rows);
                assertTrue(sink.messages.size() > 10, sink.messages.size() + " parts");
                Received got = run(ex, sink, null);
                int waves = w == 0 ? 1 : (4 + w - 1) / w;
                assertEquals(waves, got.combines.size(), "waves of " + w + " experts");
                assertEquals(want.size(), got.rows.size());
                for (Received.CombineRow r : got.rows) {
                    assertTrue(java.util.Arrays.equals(want.get(key(r.token(), r.slot())), r.bf16()),
                            "token " + r.token() + " slot " + r.slot() + " with waves of " + w);
                }
            }
        }
    }

    @Test
    void refusesUnplacedExpertsWrongShapesTooManyTokensAndPartsOutOfOrder() {
        List<Tiny.Row> rows = golden.rows(e -> e < 4);
        try (Kernels k = KernelSets.create("exact", 1)) {
            ExpertExecutor ex = new ExpertExecutor(weights, k, 1, rows.size());
            AtomicReference<DispatchRejectedException> rejected = new AtomicReference<>();

            CaptureSink sink = new CaptureSink(2 << 20);
            golden.dispatch(new DispatchWriter(sink), 1, 3, Tiny.LAYER, golden.rows(e -> e == 5 || e < 2));
            Received got = run(ex, sink, rejected);
            assertEquals(ErrorCode.UNKNOWN_EXPERT, rejected.get().code());
            assertTrue(rejected.get().getMessage().contains("expert 5 of layer 1"), rejected.get().getMessage());
            assertTrue(rejected.get().getMessage().contains("experts 0-3 of layer 1"), rejected.get().getMessage());
            assertEquals(0, got.rows.size(), "nothing computed for a refused dispatch");
            assertEquals(0, ex.rowsComputed());

            rejected.set(null);
            List<Tiny.Row> tooMany = new ArrayList<>(rows);
            tooMany.add(rows.get(0));
            golden.dispatch(new DispatchWriter(sink), 2, 3, Tiny.LAYER, tooMany);
            run(ex, sink, rejected);
            assertEquals(ErrorCode.BAD_MESSAGE, rejected.get().code());
            assertTrue(rejected.get().getMessage().contains((rows.size() + 1) + " tokens"), rejected.get().getMessage());
            assertTrue(rejected.get().getMessage().contains("limit of " + rows.size()), rejected.get().getMessage());

            rejected.set(null);
            golden.dispatch(new DispatchWriter(sink), 3, 3, Tiny.LAYER, 128, rows.subList(0, 2));
            run(ex, sink, rejected);
            assertTrue(rejected.get().getMessage().contains("hiddenDim 128"), rejected.get().getMessage());

            rejected.set(null);
            golden.dispatch(new DispatchWriter(sink), 4, 3, ExpertWeights.layerCount(c), rows.subList(0, 2));
            run(ex, sink, rejected);
            assertTrue(rejected.get().getMessage().contains("layer 5"), rejected.get().getMessage());

            // A split exchange whose part 0 went missing: refused once, its other parts skipped.
            rejected.set(null);
            golden.dispatch(new DispatchWriter(sink, 4096), 6, 3, Tiny.LAYER, rows);
            sink.messages.remove(0);
            int[] refusals = {0};
            CaptureSink combines = new CaptureSink(2 << 20);
            CombineWriter out = new CombineWriter(combines);
            sink.drainTo(new WireHandler() {
                @Override
                public void onDispatch(DispatchDecoder d) {
                    try {
                        ex.run(d, 7, out);
                    } catch (DispatchRejectedException e) {
                        refusals[0]++;
                        assertTrue(e.getMessage().contains("part 1 of step 6"), e.getMessage());
                    }
                }
            });
            assertEquals(1, refusals[0]);
            assertEquals(0, combines.messages.size());
            assertEquals(0, ex.rowsComputed());

            // Still serving: a good dispatch afterwards is computed in full.
            golden.dispatch(new DispatchWriter(sink), 7, 3, Tiny.LAYER, rows);
            Received ok = run(ex, sink, null);
            assertEquals(rows.stream().mapToInt(r -> r.slots().size()).sum(), ok.rows.size());
            assertEquals(5, ex.rejected());
        }
    }

    /** Appends every captured dispatch message to {@code into} (an exchange of {@code ex}). */
    private static void appendAll(ExpertExecutor ex, ExpertExecutor.Exchange into, CaptureSink dispatches) {
        dispatches.drainTo(new WireHandler() {
            @Override
            public void onDispatch(DispatchDecoder d) {
                ex.append(into, d);
            }
        });
    }

    /**
     * Exchanges of one layer from three attention workers (sources 3, 4, 5; the last without rows) run together: each
     * expert once over all their rows, and each attention worker gets exactly what it gets alone, bit for bit, in
     * waves numbered from 0 that carry only its own rows; the empty exchange gets its one empty combine. A combine
     * that cannot be sent to one of them leaves the others served in full.
     */
    @ParameterizedTest
    @ValueSource(strings = {"exact", "fast"})
    void exchangesOfOneLayerRunTogetherAsIfAlone(String kernels) {
        List<List<Tiny.Row>> inputs = List.of(golden.rows(e -> e < 4), golden.rows(e -> e == 1 || e == 2), List.of());
        int n = inputs.size();
        try (Kernels k = KernelSets.create(kernels, 2)) {
            List<Received> alone = new ArrayList<>();
            for (int x = 0; x < n; x++) {
                ExpertExecutor ex = new ExpertExecutor(weights, k, 1, 4096);
                CaptureSink sink = new CaptureSink(2 << 20);
                golden.dispatch(new DispatchWriter(sink), 20 + x, 3 + x, Tiny.LAYER, inputs.get(x));
                alone.add(run(ex, sink, null));
            }
            for (boolean breakOne : new boolean[] {false, true}) {
                ExpertExecutor ex = new ExpertExecutor(weights, k, 1, 4096);
                ExpertExecutor.Exchange[] exs = new ExpertExecutor.Exchange[n];
                CombineWriter[] outs = new CombineWriter[n];
                CaptureSink[] combines = new CaptureSink[n];
                for (int x = 0; x < n; x++) {
                    exs[x] = ex.newExchange();
                    CaptureSink sink = new CaptureSink(2 << 20);
                    golden.dispatch(new DispatchWriter(sink), 20 + x, 3 + x, Tiny.LAYER, inputs.get(x));
                    appendAll(ex, exs[x], sink);
                    combines[x] = new CaptureSink(2 << 20);
                    outs[x] = new CombineWriter(combines[x]);
                }
                if (breakOne) {
                    outs[1] = new CombineWriter(new io.epserve.transport.MessageSink() {
                        @Override
                        public void send(org.agrona.DirectBuffer buffer, int offset, int length) {
                            throw new io.epserve.transport.TransportException("peer gone");
                        }

                        @Override
                        public int maxMessageLength() {
                            return 2 << 20;
                        }
                    });
                }
                RuntimeException[] failed = new RuntimeException[n];
                ex.execute(exs, outs, n, 7, failed);
                assertEquals(breakOne, failed[1] != null);
                assertEquals(null, failed[0]);
                assertEquals(null, failed[2]);
                for (int x = 0; x < n; x++) {
                    if (breakOne && x == 1) {
                        continue;
                    }
                    Received got = new Received();
                    combines[x].drainTo(got);
                    assertSameRows(alone.get(x), got, "exchange " + x);
                }
                long entries = inputs.stream().flatMap(List::stream).mapToLong(r -> r.slots().size()).sum();
                // Exchange 1's first wave (expert 1) cannot be sent: its rows of expert 2 are not computed.
                long skipped = breakOne ? inputs.get(1).stream().flatMap(r -> r.slots().stream())
                        .filter(s -> s.expert() == 2).count() : 0;
                assertEquals(entries - skipped, ex.rowsComputed());
                for (int e = 0; e < 4; e++) {
                    assertEquals(1, ex.expertCalls(Tiny.LAYER, e), "expert " + e + " runs once for all three");
                }
                // The exchange without rows is answered at once and shares no expert pass.
                assertEquals(n - 1, ex.mergedExchanges());
            }
        }
    }

    /**
     * An exchange joining a sweep under way (micro-batch B arriving while A's experts run) shares the experts still to
     * visit and gets the ones already passed after a full circle: both get exactly their rows alone, bit for bit, in
     * waves numbered from 0; the sweep ends when both are done, each told once. A cancelled joiner gets nothing more
     * and is not told; an exchange of another layer cannot join.
     */
    @ParameterizedTest
    @ValueSource(strings = {"exact", "fast"})
    void aLateJoinerSharesTheRestOfTheSweepAndGetsItsFirstExpertsAfterACircle(String kernels) {
        List<Tiny.Row> rowsA = golden.rows(e -> e < 4);
        List<Tiny.Row> rowsB = golden.rows(e -> e != 2 && e < 4);
        try (Kernels k = KernelSets.create(kernels, 2)) {
            Received aloneA = alone(k, rowsA, 40);
            Received aloneB = alone(k, rowsB, 41);
            for (boolean cancelB : new boolean[] {false, true}) {
                ExpertExecutor ex = new ExpertExecutor(weights, k, 1, 4096);
                ExpertExecutor.Exchange a = exchange(ex, rowsA, 40);
                ExpertExecutor.Exchange b = exchange(ex, rowsB, 41);
                CaptureSink sinkA = new CaptureSink(2 << 20);
                CaptureSink sinkB = new CaptureSink(2 << 20);
                List<String> told = new ArrayList<>();
                ExpertExecutor.ExchangeDone done = (x, failure) -> told.add((x == a ? "A" : "B") + " " + failure);
                assertEquals(0, ex.join(a, new CombineWriter(sinkA), 7, done));
                assertEquals(1, ex.runWave(), "expert 0");
                assertEquals(1, ex.runWave(), "expert 1");
                assertEquals(0, ex.join(b, new CombineWriter(sinkB), 7, done));
                assertEquals(1, ex.lateJoins());
                ExpertExecutor.Exchange other = ex.newExchange();
                CaptureSink otherLayer = new CaptureSink(2 << 20);
                golden.dispatch(new DispatchWriter(otherLayer), 42, 5, Tiny.LAYER + 1, List.of());
                appendAll(ex, other, otherLayer);
                assertThrows(IllegalArgumentException.class, () -> ex.join(other, new CombineWriter(sinkA), 7, done));
                assertEquals(1, ex.runWave(), "expert 2 is A's only");
                assertEquals(2, ex.runWave(), "expert 3 goes to both, one wave each");
                assertEquals(List.of("A null"), told, "A is done after its last expert");
                if (cancelB) {
                    ex.cancel(b);
                }
                while (ex.sweeping()) {
                    ex.runWave();
                }
                assertEquals(-1, ex.sweepLayer());
                assertEquals(cancelB ? List.of("A null") : List.of("A null", "B null"), told);
                CombineWriter[] two = {new CombineWriter(sinkA), new CombineWriter(sinkA)};
                assertThrows(IllegalArgumentException.class, () -> ex.execute(new ExpertExecutor.Exchange[] {a, other},
                        two, 2, 7, new RuntimeException[2]));
                assertEquals(-1, ex.sweepLayer(), "a refused execute starts no sweep");
                Received gotA = new Received();
                sinkA.drainTo(gotA);
                assertSameRows(aloneA, gotA, "A");
                Received gotB = new Received();
                sinkB.drainTo(gotB);
                if (cancelB) {
                    // B got expert 3's wave before the cancel, nothing after it.
                    assertEquals(List.of(3), gotB.rows.stream().map(Received.CombineRow::expert).distinct().toList());
                    continue;
                }
                // B's experts from the join on (3), then the circle's start (0, 1): one wave each, numbered from 0.
                assertEquals(List.of(3, 0, 1), gotB.rows.stream().map(Received.CombineRow::expert).distinct().toList());
                assertEquals(List.of(0, 1, 2), gotB.combines.stream().map(Received.Message::wave).toList());
                assertSameRowsByKey(aloneB, gotB, "B");
                assertEquals(2, ex.expertCalls(Tiny.LAYER, 0), "expert 0: A before the join, B after the circle");
                assertEquals(2, ex.expertCalls(Tiny.LAYER, 1));
                assertEquals(1, ex.expertCalls(Tiny.LAYER, 2));
                assertEquals(1, ex.expertCalls(Tiny.LAYER, 3), "expert 3 once for both");
                long entries = rowsA.stream().mapToLong(r -> r.slots().size()).sum()
                        + rowsB.stream().mapToLong(r -> r.slots().size()).sum();
                assertEquals(entries, ex.rowsComputed());
                assertEquals(2, ex.mergedExchanges());
            }
        }
    }

    private static Received alone(Kernels k, List<Tiny.Row> rows, long step) {
        CaptureSink sink = new CaptureSink(2 << 20);
        golden.dispatch(new DispatchWriter(sink), step, 3, Tiny.LAYER, rows);
        return run(new ExpertExecutor(weights, k, 1, 4096), sink, null);
    }

    private static ExpertExecutor.Exchange exchange(ExpertExecutor ex, List<Tiny.Row> rows, long step) {
        ExpertExecutor.Exchange x = ex.newExchange();
        CaptureSink sink = new CaptureSink(2 << 20);
        golden.dispatch(new DispatchWriter(sink), step, 3, Tiny.LAYER, rows);
        appendAll(ex, x, sink);
        return x;
    }

    /** The same combine messages and rows, in the same order, bit for bit. */
    private static void assertSameRows(Received want, Received got, String what) {
        assertEquals(want.combines, got.combines, "combine messages of " + what);
        assertEquals(want.rows.size(), got.rows.size(), "rows of " + what);
        for (int i = 0; i < want.rows.size(); i++) {
            Received.CombineRow a = want.rows.get(i);
            Received.CombineRow b = got.rows.get(i);
            assertEquals(List.of(a.step(), a.wave(), a.token(), a.expert(), a.slot()),
                    List.of(b.step(), b.wave(), b.token(), b.expert(), b.slot()), "row " + i + " of " + what);
            assertTrue(java.util.Arrays.equals(a.bf16(), b.bf16()), "bits of row " + i + " of " + what);
        }
    }

    /** The same (token, slot) rows, each from the same expert with the same bits, in any order. */
    private static void assertSameRowsByKey(Received want, Received got, String what) {
        assertEquals(want.rows.size(), got.rows.size(), "rows of " + what);
        Map<Long, Received.CombineRow> byKey = new HashMap<>();
        for (Received.CombineRow r : want.rows) {
            byKey.put(key(r.token(), r.slot()), r);
        }
        for (Received.CombineRow r : got.rows) {
            Received.CombineRow w = byKey.remove(key(r.token(), r.slot()));
            assertTrue(w != null, what + ": unexpected or repeated row " + r.token() + "/" + r.slot());
            assertEquals(w.expert(), r.expert());
            assertTrue(java.util.Arrays.equals(w.bf16(), r.bf16()), what + ": bits of " + r.token() + "/" + r.slot());
        }
    }

    @Test
    void anEmptyDispatchIsAnsweredByOneEmptyCombine() {
        try (Kernels k = KernelSets.create("exact", 1)) {
            ExpertExecutor ex = new ExpertExecutor(weights, k, 1, 16);
            CaptureSink sink = new CaptureSink(2 << 20);
            golden.dispatch(new DispatchWriter(sink), 9, 3, Tiny.LAYER, List.of());
            Received got = run(ex, sink, null);
            assertEquals(1, got.combines.size());
            assertEquals(0, got.combines.get(0).rows());
            assertTrue(got.combines.get(0).last());
        }
    }
}
