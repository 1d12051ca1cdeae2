package io.epserve.model.checkpoint;

import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.Tap;
import io.epserve.model.engine.Transformer;
import io.epserve.model.kernel.Kernels;
import io.epserve.model.weights.ModelWeights;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Health statistics of a forward pass (the GOLDEN.md "Activations" figures): per-block RMS of the attention and FFN
 * outputs and of the residual streams, logit spread, how often the SwiGLU clamp fires, how much softmax mass the
 * attention sinks take and how peaked attention is, the sign of the indexer head weights, and the expert usage.
 * Blocks 0..L-1 are the main layers; block L (when present) is the MTP block, fed with the final streams of positions
 * 0..T-2 and the tokens 1..T-1.
 *
 * <p>Quantities the engine does not expose (gate/up values, attention probabilities, indexer weights) are recomputed
 * from the tapped inputs of each component with the engine's own public component methods and kernels.
 */
public record ActivationStats(
        int tokens,
        double[] attnOutRms,
        double[] ffnOutRms,
        double[] streamRms,
        double logitStd,
        double logitMin,
        double logitMax,
        double mtpLogitStd,
        double clampRoutedGate,
        double clampRoutedUp,
        double clampSharedGate,
        double clampSharedUp,
        double sinkShare,
        double[] sinkShareByBlock,
        double meanTopProb,
        double meanEntropyRatio,
        double indexWeightPositive,
        int[][] expertUsage) {

    /** Runs the tokens as one prefill (and the MTP block over them) with a tap and measures. */
    public static ActivationStats measure(Transformer tr, int[] tokens) {
        ModelConfig c = tr.config();
        ModelWeights w = tr.weights();
        int T = tokens.length;
        int L = c.nLayers();
        int d = c.dim();
        int hc = c.hcMult();
        Recorder rec = new Recorder();
        tr.setTap(rec);
        float[] logits;
        float[] mtpLogits = null;
        try {
            var seq = tr.newSequence(T);
            Transformer.Output out = tr.forward(List.of(new Transformer.Chunk(seq, tokens)), true);
            logits = out.logits();
            if (w.mtp != null && T > 1) {
                mtpLogits = tr.mtpForward(seq, Arrays.copyOf(out.finalStreams(), (T - 1) * hc * d),
                        Arrays.copyOfRange(tokens, 1, T));
            }
        } finally {
            tr.setTap(null);
        }
        int blocks = mtpLogits != null ? L + 1 : L;
        double[] attnRms = new double[blocks];
        double[] ffnRms = new double[blocks];
        double[] streamRms = new double[blocks];
        double[] sinkBy = new double[blocks];
        int[][] usage = new int[blocks][];
        Acc sink = new Acc();
        Acc top = new Acc();
        Acc entropy = new Acc();
        long[] clamp = new long[8];
        long idxPos = 0;
        long idxAll = 0;
        for (int b = 0; b < blocks; b++) {
            ModelWeights.Layer lw = b < L ? w.layers[b] : w.mtp.block();
            int n = b < L ? T : T - 1;
            attnRms[b] = rms(rec.matrix(b, "attn_out", n));
            ffnRms[b] = rms(rec.matrix(b, "ffn_out", n));
            streamRms[b] = rms(rec.matrix(b, "streams", n));
            float[] x = rec.matrix(b, "attn_in", n);
            Acc blockSink = new Acc();
            attention(tr, lw, rec, b, x, n, blockSink, top, entropy);
            sink.add(blockSink);
            sinkBy[b] = blockSink.mean();
            if (lw.ratio() == 4) {
                float[] wi = tr.indexWeights(lw, x, n);
                for (float v : wi) {
                    idxAll++;
                    if (v > 0) {
                        idxPos++;
                    }
                }
            }
            usage[b] = new int[c.nRoutedExperts()];
            float[] xf = rec.matrix(b, "ffn_in", n);
            int[] topk = new int[n * c.nActivatedExperts()];
            for (int t = 0; t < n; t++) {
                float[] r = rec.row(b, "topk", t);
                for (int s = 0; s < r.length; s++) {
                    topk[t * r.length + s] = (int) r[s];
                    usage[b][(int) r[s]]++;
                }
            }
            clamps(tr, lw, xf, n, topk, clamp);
        }
        double mean = 0;
        double min = Double.POSITIVE_INFINITY;
        double max = Double.NEGATIVE_INFINITY;
        for (float v : logits) {
            mean += v;
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        mean /= logits.length;
        return new ActivationStats(T, attnRms, ffnRms, streamRms, std(logits), min, max,
                mtpLogits == null ? Double.NaN : std(mtpLogits),
                clamp[0] / (double) clamp[1], clamp[2] / (double) clamp[3], clamp[4] / (double) clamp[5],
                clamp[6] / (double) clamp[7], sink.mean(), sinkBy, top.mean(), entropy.mean(),
                idxAll == 0 ? Double.NaN : idxPos / (double) idxAll, usage);
    }

    /** Sink share, top probability and normalised entropy of every head of every row, recomputed in float64. */
    private static void attention(Transformer tr, ModelWeights.Layer lw, Recorder rec, int b, float[] x, int n,
                                  Acc sink, Acc top, Acc entropy) {
        ModelConfig c = tr.config();
        int H = c.nHeads();
        int hd = c.headDim();
        int win = c.window();
        int ratio = lw.ratio();
        long[] pos = new long[n];
        for (int t = 0; t < n; t++) {
            pos[t] = t;
        }
        float[] q = tr.queries(lw, tr.queryLatent(lw, x, n), n, pos);
        double scale = (float) (1.0 / Math.sqrt(hd));
        float[] sinks = lw.attn().sink();
        for (int t = 0; t < n; t++) {
            List<float[]> list = new java.util.ArrayList<>();
            for (int p = Math.max(0, t - win + 1); p <= t; p++) {
                list.add(rec.row(b, "kv", p));
            }
            if (ratio == 4) {
                float[] sel = rec.row(b, "csa_selected", t);
                if (sel != null) {
                    for (float e : sel) {
                        list.add(rec.row(b, "compressed", (long) e));
                    }
                }
            } else if (ratio > 0) {
                for (int i = 0; i < (t + 1) / ratio; i++) {
                    list.add(rec.row(b, "compressed", i));
                }
            }
            double[] s = new double[list.size()];
            for (int h = 0; h < H; h++) {
                int qo = (t * H + h) * hd;
                double m = Double.NEGATIVE_INFINITY;
                for (int i = 0; i < s.length; i++) {
                    float[] k = list.get(i);
                    double dot = 0;
                    for (int j = 0; j < hd; j++) {
                        dot += (double) q[qo + j] * k[j];
                    }
                    s[i] = dot * scale;
                    m = Math.max(m, s[i]);
                }
                double sum = 0;
                for (int i = 0; i < s.length; i++) {
                    s[i] = Math.exp(s[i] - m);
                    sum += s[i];
                }
                double sk = Math.exp(sinks[h] - m);
                sink.add(sk / (sk + sum));
                double best = 0;
                double ent = 0;
                for (double v : s) {
                    double p = v / sum;
                    best = Math.max(best, p);
                    if (p > 0) {
                        ent -= p * Math.log(p);
                    }
                }
                top.add(best);
                if (s.length > 1) {
                    entropy.add(ent / Math.log(s.length));
                }
            }
        }
    }

    /** Counts gate values above the limit and up values beyond +-limit, routed (by expert) and shared. */
    private static void clamps(Transformer tr, ModelWeights.Layer lw, float[] x, int n, int[] topk, long[] acc) {
        ModelConfig c = tr.config();
        Kernels k = tr.kernels();
        double lim = c.swigluLimit();
        int d = c.dim();
        int inter = c.moeInterDim();
        int K = c.nActivatedExperts();
        float[] xs = new float[n * d];
        float[] g = new float[n * inter];
        float[] u = new float[n * inter];
        for (int e = 0; e < c.nRoutedExperts(); e++) {
            int m = 0;
            for (int t = 0; t < n; t++) {
                for (int s = 0; s < K; s++) {
                    if (topk[t * K + s] == e) {
                        System.arraycopy(x, t * d, xs, m * d, d);
                        m++;
                    }
                }
            }
            if (m == 0) {
                continue;
            }
            ModelWeights.Expert ex = lw.ffn().experts()[e];
            k.fp4Linear(ex.w1(), xs, 0, d, m, g, 0, inter);
            k.fp4Linear(ex.w3(), xs, 0, d, m, u, 0, inter);
            count(g, u, m * inter, lim, acc, 0);
        }
        ModelWeights.SharedExpert se = lw.ffn().shared();
        int si = se.w1().rows();
        float[] gs = new float[n * si];
        float[] us = new float[n * si];
        k.fp8Linear(se.w1(), 0, si, x, 0, d, n, gs, 0, si);
        k.fp8Linear(se.w3(), 0, si, x, 0, d, n, us, 0, si);
        count(gs, us, n * si, lim, acc, 4);
    }

    private static void count(float[] g, float[] u, int len, double lim, long[] acc, int at) {
        for (int i = 0; i < len; i++) {
            if (g[i] > lim) {
                acc[at]++;
            }
            if (Math.abs(u[i]) > lim) {
                acc[at + 2]++;
            }
        }
        acc[at + 1] += len;
        acc[at + 3] += len;
    }

    private static double rms(float[] v) {
        double s = 0;
        for (float x : v) {
            s += (double) x * x;
        }
        return Math.sqrt(s / v.length);
    }

    private static double std(float[] v) {
        double m = 0;
        for (float x : v) {
            m += x;
        }
        m /= v.length;
        double s = 0;
        for (float x : v) {
            s += (x - m) * (x - m);
        }
        return Math.sqrt(s / v.length);
    }

    /** Smallest and largest number of assignments any expert of the block received. */
    public int[] usageRange(int block) {
        int[] u = expertUsage[block];
        return new int[] {Arrays.stream(u).min().orElse(0), Arrays.stream(u).max().orElse(0)};
    }

    public String format() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "tokens %d%n", tokens));
        sb.append("attn_out rms  ").append(fmt(attnOutRms)).append('\n');
        sb.append("ffn_out rms   ").append(fmt(ffnOutRms)).append('\n');
        sb.append("streams rms   ").append(fmt(streamRms)).append('\n');
        sb.append(String.format(Locale.ROOT, "logits std %.3f range [%.2f, %.2f]; MTP logits std %.3f%n", logitStd,
                logitMin, logitMax, mtpLogitStd));
        sb.append(String.format(Locale.ROOT, "swiglu clamp: routed gate %.3f%% up %.3f%%, shared gate %.3f%% up %.3f%%%n",
                100 * clampRoutedGate, 100 * clampRoutedUp, 100 * clampSharedGate, 100 * clampSharedUp));
        sb.append(String.format(Locale.ROOT, "attention: sink share %.1f%% (per block %s), mean top prob %.3f, "
                + "entropy / ln(n) %.3f%n", 100 * sinkShare, fmt(sinkShareByBlock), meanTopProb, meanEntropyRatio));
        sb.append(String.format(Locale.ROOT, "indexer head weights > 0: %.1f%%%n", 100 * indexWeightPositive));
        for (int b = 0; b < expertUsage.length; b++) {
            int used = (int) Arrays.stream(expertUsage[b]).filter(v -> v > 0).count();
            int[] r = usageRange(b);
            sb.append(String.format(Locale.ROOT, "experts block %d: %d/%d used, assignments %d..%d%n", b, used,
                    expertUsage[b].length, r[0], r[1]));
        }
        return sb.toString();
    }

    private static String fmt(double[] v) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < v.length; i++) {
            sb.append(i > 0 ? ", " : "").append(String.format(Locale.ROOT, "%.3f", v[i]));
        }
        return sb.append(']').toString();
    }

    private static final class Acc {
        double sum;
        long n;

        void add(double v) {
            sum += v;
            n++;
        }

        void add(Acc o) {
            sum += o.sum;
            n += o.n;
        }

        double mean() {
            return n == 0 ? Double.NaN : sum / n;
        }
    }

    /** Tapped rows by block, name and position. */
    private static final class Recorder implements Tap {
        private final Map<String, Map<Long, float[]>> rows = new HashMap<>();

        @Override
        public void row(int layer, String name, long position, float[] row, int off, int len) {
            rows.computeIfAbsent(layer + "." + name, k -> new HashMap<>())
                    .put(position, Arrays.copyOfRange(row, off, off + len));
        }

        float[] row(int block, String name, long position) {
            Map<Long, float[]> m = rows.get(block + "." + name);
            return m == null ? null : m.get(position);
        }

        /** Rows 0..n-1 concatenated. */
        float[] matrix(int block, String name, int n) {
            float[] first = row(block, name, 0);
            if (first == null) {
                throw new IllegalStateException("no '" + name + "' rows were tapped in block " + block);
            }
            float[] out = new float[n * first.length];
            for (int t = 0; t < n; t++) {
                float[] r = row(block, name, t);
                System.arraycopy(r, 0, out, t * first.length, first.length);
            }
            return out;
        }
    }
}
