package io.epserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.GoldenData;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.kernel.ExactKernels;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.weights.ModelWeights;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The exact kernel set against the golden data of GOLDEN.md ("mode A"): logits within 1e-4, every bf16 debugging
 * tensor identical, expert and indexer choices identical, through one-shot prefill, token-by-token decode, chunked
 * prefill mixed with decode, greedy continuation, batches of sequences at different positions, and the MTP block.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ExactGoldenTest {
    static final double LOGIT_TOL = 1e-4;

    private final java.util.Map<String, Model> models = new java.util.HashMap<>();

    record Model(GoldenData golden, Checkpoint checkpoint, ModelConfig config, Transformer engine) {}

    @BeforeAll
    void load() {
        for (String name : List.of("tiny", "wide")) {
            GoldenData g = GoldenData.open(name);
            Checkpoint ck = Checkpoint.open(g.dir);
            ModelConfig c = ModelConfig.load(g.dir);
            models.put(name, new Model(g, ck, c, new Transformer(new ModelWeights(c, ck, ModelWeights.ExpertFilter.ALL), new ExactKernels())));
        }
    }

    @AfterAll
    void close() {
        models.values().forEach(m -> {
            m.checkpoint().close();
            m.golden().close();
        });
    }

    static void assertLogits(float[] expected, int expOff, float[] actual, int actOff, int n, String what) {
        double max = 0;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, Math.abs(expected[expOff + i] - actual[actOff + i]));
        }
        assertTrue(max <= LOGIT_TOL, what + ": max |logit diff| = " + max);
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny", "wide"})
    void prefillMatchesLogitsAndEveryIntermediate(String name) {
        Model m = models.get(name);
        GoldenData g = m.golden();
        Transformer tr = m.engine();
        TapRecorder rec = new TapRecorder();
        tr.setTap(rec);
        int[] tokens = g.ints("tokens");
        Transformer.Output out;
        try {
            out = tr.forward(List.of(new Transformer.Chunk(tr.newSequence(4096), tokens)), true);
        } finally {
            tr.setTap(null);
        }
        int V = m.config().vocabSize();
        int T = tokens.length;
        assertLogits(g.floats("logits"), 0, out.logits(), 0, T * V, name + " prefill logits");
        assertArrayEquals(g.floats("final_streams"), out.finalStreams(), name + " final_streams");

        String[][] pairs = {
            {"attn_in", "attn_in_all"}, {"kv", "kv_all"}, {"attn_out", "attn_out_all"}, {"mid_streams", "mid_streams"},
            {"ffn_in", "ffn_in_all"}, {"ffn_out", "ffn_out_all"}, {"compressed", "compressed"}, {"index_keys", "index_keys"},
        };
        int checked = 0;
        for (int l = 0; l < m.config().nLayers(); l++) {
            for (String[] p : pairs) {
                String gk = "layer" + l + "." + p[1];
                if (!g.has(gk)) {
                    continue;
                }
                float[] ref = g.floats(gk);
                long[] shape = g.shape(gk);
                int rows = (int) shape[0];
                int width = ref.length / rows;
                for (int r = 0; r < rows; r++) {
                    float[] mine = rec.row("layer" + l + "." + p[0], r);
                    assertArrayEquals(Arrays.copyOfRange(ref, r * width, (r + 1) * width), mine, gk + " row " + r);
                }
                checked++;
            }
            // streams after block l = input_streams of block l + 1
            if (l + 1 < m.config().nLayers()) {
                float[] ref = g.floats("layer" + (l + 1) + ".input_streams");
                int width = ref.length / T;
                for (int r = 0; r < T; r++) {
                    assertArrayEquals(Arrays.copyOfRange(ref, r * width, (r + 1) * width), rec.row("layer" + l + ".streams", r),
                            "layer" + l + " streams row " + r);
                }
            }
            int[] topk = g.ints("layer" + l + ".topk_all");
            int K = m.config().nActivatedExperts();
            for (int r = 0; r < T; r++) {
                float[] mine = rec.row("layer" + l + ".topk", r);
                for (int s = 0; s < K; s++) {
                    assertEquals(topk[r * K + s], (int) mine[s], "layer" + l + " topk row " + r);
                }
            }
            if (m.config().compressRatio(l) == 4) {
                int[] sel = g.ints("layer" + l + ".csa_selected_all");
                float[] scores = g.floats("layer" + l + ".index_scores_all");
                int topK = m.config().indexTopk();
                int entries = scores.length / T;
                for (int r = 0; r < T; r++) {
                    int visible = (r + 1) / 4;
                    float[] mySel = rec.row("layer" + l + ".csa_selected", r);
                    float[] myScores = rec.row("layer" + l + ".index_scores", r);
                    if (visible == 0) {
                        assertTrue(mySel == null || mySel.length == 0, "nothing visible yet at " + r);
                        assertEquals(-1, sel[r * topK], "golden selects nothing at " + r);
                        continue;
                    }
                    for (int s = 0; s < topK; s++) {
                        int expected = sel[r * topK + s];
                        int actual = s < mySel.length ? (int) mySel[s] : -1;
                        assertEquals(expected, actual, "layer" + l + " csa_selected row " + r + " slot " + s);
                    }
                    for (int e = 0; e < entries; e++) {
                        float expected = scores[r * entries + e];
                        if (e < visible) {
                            assertEquals(expected, myScores[e], "layer" + l + " index score row " + r + " entry " + e);
                        } else {
                            assertEquals(Float.NEGATIVE_INFINITY, expected, "golden masks invisible entries");
                        }
                    }
                }
                checked++;
            }
        }
        assertTrue(checked >= 10, "intermediate tensors checked: " + checked);
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny", "wide"})
    void tokenByTokenDecodeMatchesDecodeLogits(String name) {
        Model m = models.get(name);
        Transformer tr = m.engine();
        int[] tokens = m.golden().ints("tokens");
        int V = m.config().vocabSize();
        float[] expected = m.golden().floats("decode_logits");
        SequenceCache s = tr.newSequence(4096);
        for (int t = 0; t < tokens.length; t++) {
            Transformer.Output out = tr.forward(List.of(new Transformer.Chunk(s, new int[] {tokens[t]})), false);
            assertLogits(expected, t * V, out.logits(), 0, V, name + " decode position " + t);
        }
        assertEquals(tokens.length, s.length());
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny", "wide"})
    void chunkedPrefillWithOddChunksMixedWithDecode(String name) {
        Model m = models.get(name);
        Transformer tr = m.engine();
        int[] tokens = m.golden().ints("tokens");
        int V = m.config().vocabSize();
        float[] expected = m.golden().floats("logits");
        SequenceCache s = tr.newSequence(4096);
        int[] pattern = {7, 13, 1, 1, 7, 1, 13, 13, 7};
        int pos = 0;
        for (int i = 0; pos < tokens.length; i++) {
            int n = Math.min(pattern[i % pattern.length], tokens.length - pos);
            Transformer.Output out = tr.forward(List.of(new Transformer.Chunk(s, Arrays.copyOfRange(tokens, pos, pos + n))), true);
            assertLogits(expected, pos * V, out.logits(), 0, n * V, name + " chunk at " + pos + " of " + n);
            pos += n;
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny", "wide"})
    void batchOfSequencesAtDifferentPositions(String name) {
        Model m = models.get(name);
        Transformer tr = m.engine();
        int[] tokens = m.golden().ints("tokens");
        int V = m.config().vocabSize();
        float[] expected = m.golden().floats("logits");
        // A runs ahead with chunks of 13; B starts later and decodes one token per step; C prefills in chunks of 7.
        SequenceCache a = tr.newSequence(4096);
        SequenceCache b = tr.newSequence(4096);
        SequenceCache c = tr.newSequence(4096);
        int pa = 0;
        int pb = 0;
        int pc = 0;
        int T = tokens.length;
        while (pa < T || pb < T || pc < T) {
            List<Transformer.Chunk> chunks = new ArrayList<>();
            List<int[]> spans = new ArrayList<>();
            if (pa < T) {
                int n = Math.min(13, T - pa);
                chunks.add(new Transformer.Chunk(a, Arrays.copyOfRange(tokens, pa, pa + n)));
                spans.add(new int[] {pa, n});
                pa += n;
            }
            if (pa > 20 && pb < T) {
                chunks.add(new Transformer.Chunk(b, new int[] {tokens[pb]}));
                spans.add(new int[] {pb, 1});
                pb += 1;
            }
            if (pc < T && pb > 3) {
                int n = Math.min(7, T - pc);
                chunks.add(new Transformer.Chunk(c, Arrays.copyOfRange(tokens, pc, pc + n)));
                spans.add(new int[] {pc, n});
                pc += n;
            }
            if (chunks.isEmpty()) {
                break;
            }
            Transformer.Output out = tr.forward(chunks, true);
            int row = 0;
            for (int[] sp : spans) {
                assertLogits(expected, sp[0] * V, out.logits(), row * V, sp[1] * V, name + " batched rows at " + sp[0]);
                row += sp[1];
            }
            if (pb >= 40 && name.equals("wide")) {
                break; // B's decode alone would take 300 steps; 40 mixed steps cover the interleaving
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny", "wide"})
    void greedyContinuation(String name) {
        Model m = models.get(name);
        Transformer tr = m.engine();
        int[] tokens = m.golden().ints("tokens");
        int[] greedy = m.golden().ints("greedy");
        float[] greedyLogits = m.golden().floats("greedy_logits");
        int V = m.config().vocabSize();
        SequenceCache s = tr.newSequence(4096);
        Transformer.Output out = tr.forward(List.of(new Transformer.Chunk(s, tokens)), false);
        float[] logits = out.logits();
        for (int i = 0; i < greedy.length; i++) {
            assertLogits(greedyLogits, i * V, logits, 0, V, name + " greedy step " + i);
            int next = Sampler.argmax(logits, 0, V);
            assertEquals(greedy[i], next, name + " greedy token " + i);
            logits = tr.forward(List.of(new Transformer.Chunk(s, new int[] {next})), false).logits();
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny", "wide"})
    void mtpBlock(String name) {
        Model m = models.get(name);
        Transformer tr = m.engine();
        int[] tokens = m.golden().ints("tokens");
        int T = tokens.length;
        int V = m.config().vocabSize();
        int w = m.config().hcMult() * m.config().dim();
        float[] streams = Arrays.copyOf(m.golden().floats("final_streams"), (T - 1) * w);
        float[] expected = m.golden().floats("mtp_logits");
        SequenceCache s = tr.newSequence(4096);
        float[] out = tr.mtpForward(s, streams, Arrays.copyOfRange(tokens, 1, T));
        assertLogits(expected, 0, out, 0, (T - 1) * V, name + " mtp logits (one pass)");
        // token by token through the MTP block's own window cache
        SequenceCache s2 = tr.newSequence(4096);
        for (int t = 0; t < T - 1; t += 37) {
            int n = Math.min(37, T - 1 - t);
            float[] part = tr.mtpForward(s2, Arrays.copyOfRange(streams, t * w, (t + n) * w), Arrays.copyOfRange(tokens, t + 1, t + 1 + n));
            assertLogits(expected, t * V, part, 0, n * V, name + " mtp logits chunk at " + t);
        }
    }
}
