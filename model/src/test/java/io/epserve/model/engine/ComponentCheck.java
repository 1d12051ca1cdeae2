package io.epserve.model.engine;

import io.epserve.model.GoldenData;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.weights.ModelWeights.Layer;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * GOLDEN.md's component-isolated checks ("mode B"): each component of each layer recomputed from the golden inputs
 * of that component, so nothing propagates between positions or components, then compared with the golden output.
 */
final class ComponentCheck {
    /** Worst layer's fraction of values off by more than one bf16 ulp, and relative RMS of the difference. */
    record Deviation(double fractionOff, double relRms) {
        Deviation worst(Deviation o) {
            return new Deviation(Math.max(fractionOff, o.fractionOff), Math.max(relRms, o.relRms));
        }
    }

    final Map<String, Deviation> deviations = new LinkedHashMap<>();
    int changedCsaChoices;
    int changedExpertChoices;

    private final Transformer tr;
    private final ModelConfig c;
    private final GoldenData g;
    private final int T;
    private final int d;
    private final int hc;

    ComponentCheck(Transformer tr, GoldenData g) {
        this.tr = tr;
        this.c = tr.config();
        this.g = g;
        this.T = g.ints("tokens").length;
        this.d = c.dim();
        this.hc = c.hcMult();
    }

    static Deviation compare(float[] expected, float[] actual) {
        if (expected.length != actual.length) {
            throw new AssertionError("length " + actual.length + " != " + expected.length);
        }
        long off = 0;
        double num = 0;
        double den = 0;
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i];
            double a = actual[i];
            double diff = Math.abs(a - e);
            double ulp = e == 0 ? 0x1p-133 : Math.scalb(1.0, Math.getExponent((float) e) - 7);
            if (diff > ulp) {
                off++;
            }
            num += diff * diff;
            den += e * e;
        }
        return new Deviation((double) off / expected.length, den == 0 ? (num == 0 ? 0 : 1) : Math.sqrt(num / den));
    }

    private void record(String component, float[] expected, float[] actual) {
        deviations.merge(component, compare(expected, actual), Deviation::worst);
    }

    private static float[] rows(float[] all, int from, int to, int width) {
        return Arrays.copyOfRange(all, from * width, to * width);
    }

    void run() {
        int[] tokens = g.ints("tokens");
        long[] pos = new long[T];
        for (int i = 0; i < T; i++) {
            pos[i] = i;
        }
        for (int l = 0; l < c.nLayers(); l++) {
            Layer L = tr.weights().layers[l];
            String p = "layer" + l + ".";
            float[] in = g.floats(p + "input_streams");
            float[] attnIn = g.floats(p + "attn_in_all");
            float[] mid = g.floats(p + "mid_streams");
            float[] ffnIn = g.floats(p + "ffn_in_all");
            float[] next = l + 1 < c.nLayers() ? g.floats("layer" + (l + 1) + ".input_streams") : g.floats("final_streams");

            // attn_in: input_streams -> hc_pre -> attn_norm
            float[] x = new float[T * d];
            double[] post = new double[T * hc];
            double[] comb = new double[T * hc * hc];
            tr.hcPre(L.hcAttn(), in, T, x, post, comb);
            tr.rmsNorm(x, 0, T, d, L.attnNorm(), x, 0);
            record("attn_in", attnIn, x);

            // mid_streams: input_streams + attn_out_all -> hc_post (post/comb from the same hc_pre)
            float[] mine = new float[T * hc * d];
            tr.hcPost(g.floats(p + "attn_out_all"), in, post, comb, T, mine);
            record("mid_streams", mid, mine);

            // kv: attn_in_all -> wkv, kv_norm, RoPE, FP8 round trip
            float[] kv = tr.keyValues(L, attnIn, T, pos);
            for (int t = 0; t < T; t++) {
                tr.kvRoundTrip(kv, t * c.headDim());
            }
            float[] kvAll = g.floats(p + "kv_all");
            record("kv", kvAll, kv);

            int ratio = L.ratio();
            float[] compressed = ratio > 0 ? g.floats(p + "compressed") : null;
            if (ratio > 0) {
                record("comp", compressed, tr.compressAll(L.attn().compressor(), attnIn, T, false));
            }
            float[] qr = tr.queryLatent(L, attnIn, T);
            int[] selAll = null;
            if (ratio == 4) {
                float[] keys = g.floats(p + "index_keys");
                record("ikeys", keys, tr.compressAll(L.attn().indexer().compressor(), attnIn, T, true));
                float[] qi = tr.indexQueries(L, qr, T, pos);
                float[] wi = tr.indexWeights(L, attnIn, T);
                float[] goldScores = g.floats(p + "index_scores_all");
                int entries = goldScores.length / T;
                int topK = c.indexTopk();
                int[] goldSel = g.ints(p + "csa_selected_all");
                selAll = goldSel;
                int ih = c.indexHeads();
                int id = c.indexHeadDim();
                float[] scores = new float[entries];
                float[] expVisible = new float[0];
                float[] actVisible = new float[0];
                for (int t = 0; t < T; t++) {
                    int visible = (t + 1) / 4;
                    tr.kernels().indexScores(qi, t * ih * id, ih, id, wi, t * ih, keys, visible, scores);
                    expVisible = concat(expVisible, Arrays.copyOfRange(goldScores, t * entries, t * entries + visible));
                    actVisible = concat(actVisible, Arrays.copyOf(scores, visible));
                    int k = Math.min(topK, visible);
                    int[] sel = Transformer.topK(scores, visible, k);
                    int[] gold = Arrays.copyOfRange(goldSel, t * topK, t * topK + k);
                    if (!sameSet(sel, gold)) {
                        changedCsaChoices++;
                    }
                }
                record("index_scores", expVisible, actVisible);
            }

            // attn_out: golden attn_in, kv rows, compressed entries and indexer choice
            float[] q = tr.queries(L, qr, T, pos);
            int H = c.nHeads();
            int hd = c.headDim();
            int win = c.window();
            float[] attnOut = new float[T * d];
            for (int t = 0; t < T; t++) {
                int windowValid = Math.min(win, t + 1);
                int nComp = 0;
                int[] sel = null;
                if (ratio == 4) {
                    int topK = c.indexTopk();
                    sel = Arrays.stream(Arrays.copyOfRange(selAll, t * topK, (t + 1) * topK)).filter(i -> i >= 0).toArray();
                    nComp = sel.length;
                } else if (ratio > 0) {
                    nComp = (t + 1) / ratio;
                }
                float[] list = new float[(win + nComp) * hd];
                int first = t - windowValid + 1;
                System.arraycopy(kvAll, first * hd, list, 0, windowValid * hd);
                for (int i = 0; i < nComp; i++) {
                    int e = sel == null ? i : sel[i];
                    System.arraycopy(compressed, e * hd, list, (win + i) * hd, hd);
                }
                float[] out = tr.attendRows(L, Arrays.copyOfRange(q, t * H * hd, (t + 1) * H * hd), t, list, windowValid, nComp);
                System.arraycopy(out, 0, attnOut, t * d, d);
            }
            record("attn_out", g.floats(p + "attn_out_all"), attnOut);

            // ffn_in: mid_streams -> hc_pre -> ffn_norm; streams: mid + ffn_out -> hc_post
            tr.hcPre(L.hcFfn(), mid, T, x, post, comb);
            tr.rmsNorm(x, 0, T, d, L.ffnNorm(), x, 0);
            record("ffn_in", ffnIn, x);
            tr.hcPost(g.floats(p + "ffn_out_all"), mid, post, comb, T, mine);
            record("streams", next, mine);

            // experts: ffn_in_all -> routing; ffn_out: ffn_in_all -> MoE
            Transformer.Routing rt = tr.route(L, ffnIn, T, tokens);
            int[] goldTop = g.ints(p + "topk_all");
            int K = c.nActivatedExperts();
            for (int t = 0; t < T; t++) {
                if (!sameSet(Arrays.copyOfRange(rt.experts(), t * K, (t + 1) * K), Arrays.copyOfRange(goldTop, t * K, (t + 1) * K))) {
                    changedExpertChoices++;
                }
            }
            record("ffn_out", g.floats(p + "ffn_out_all"), tr.moe(L, l, ffnIn, T, tokens, pos));
        }
    }

    private static float[] concat(float[] a, float[] b) {
        float[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    private static boolean sameSet(int[] a, int[] b) {
        int[] x = a.clone();
        int[] y = b.clone();
        Arrays.sort(x);
        Arrays.sort(y);
        return Arrays.equals(x, y);
    }
}
