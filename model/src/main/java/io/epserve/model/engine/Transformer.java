package io.epserve.model.engine;

import io.epserve.model.config.ModelConfig;
import io.epserve.model.format.Bf16;
import io.epserve.model.kernel.HcPost;
import io.epserve.model.kernel.HcPre;
import io.epserve.model.kernel.Kernels;
import io.epserve.model.weights.ModelWeights;
import io.epserve.model.weights.ModelWeights.Compressor;
import io.epserve.model.weights.ModelWeights.HcWeights;
import io.epserve.model.weights.ModelWeights.Layer;
import java.util.Arrays;
import java.util.List;

/**
 * The DeepSeek-V4 forward pass (spec §3–§5) over a batch of token rows from several sequences at different positions.
 * Matrix work goes through {@link Kernels}; everything else follows the reference's rounding points in float64.
 * Each component is a public method over row-major batches so that it can be checked alone against golden inputs.
 *
 * <p>Not thread-safe: one forward pass at a time per instance (its scratch buffers are reused between calls).
 */
public final class Transformer {
    private final ModelConfig c;
    private final ModelWeights w;
    private final Kernels k;
    private final Rope plainRope;
    private final Rope compressedRope;
    private final KvRowCodec codec;
    private final int hc;
    private final int d;
    private final float attnScale;
    private Tap tap;
    private long routedExpertBytes;

    // Per-call scratch, grown on demand and reused.
    private final float[] cs;
    private final double[] pooled;
    private final float[] entry;
    private final double[] hadamardScratch;
    private float[] listRows = new float[0];
    private float[] keyRows = new float[0];
    private float[] scoreBuf = new float[0];
    /**
     * The activations of the layer call in progress (one at a time, engine thread), so that a decode step allocates
     * no arrays per layer: queries and attention outputs [T, H, hd], the query latent, KV rows, compressor and
     * indexer projections, the output projection's two stages, the shared expert's hidden rows, the gate logits.
     * The public component methods (tests, tools) still return arrays of their own.
     */
    private float[] qBuf = new float[0];
    private float[] oBuf = new float[0];
    private float[] qrBuf = new float[0];
    private float[] kvBuf = new float[0];
    private float[] qiBuf = new float[0];
    private float[] wiBuf = new float[0];
    private float[] zBuf = new float[0];
    private float[] aBuf = new float[0];
    private float[] sharedG = new float[0];
    private float[] sharedU = new float[0];
    private double[] ckBuf = new double[0];
    private double[] czBuf = new double[0];
    private double[] ikBuf = new double[0];
    private double[] izBuf = new double[0];
    private double[] mixBuf = new double[0];
    /** The head's rows, their hc_head output and their float64 logits (the returned float32 logits are new). */
    private float[] headRows = new float[0];
    private float[] headIn = new float[0];
    private double[] headLogits = new double[0];
    private double[] logitBuf = new double[0];
    private final double[] preW;
    private final double[] combW;
    private final double[] scoreW;
    private final double[] biasedW;
    private final float[] embedRow;
    private final int[] heap;
    private int[] selBuf = new int[0];
    /** The local experts' rows (single process): per expert its token rows, their inputs, hidden and output rows. */
    private int[] countBuf;
    private int[] rowsOfBuf = new int[0];
    private double[] wOfBuf = new double[0];
    private float[] xsBuf = new float[0];
    private float[] gBuf = new float[0];
    private float[] uBuf = new float[0];
    private float[] yBuf = new float[0];

    public Transformer(ModelWeights weights, Kernels kernels) {
        this.w = weights;
        this.c = weights.config;
        this.k = kernels;
        this.plainRope = Rope.plain(c);
        this.compressedRope = Rope.compressed(c);
        this.codec = new KvRowCodec(c.headDim(), c.ropeDim(), c.indexHeadDim());
        this.hc = c.hcMult();
        this.d = c.dim();
        this.attnScale = (float) (1.0 / Math.sqrt(c.headDim()));
        this.cs = new float[c.ropeDim()];
        this.pooled = new double[Math.max(c.headDim(), c.indexHeadDim())];
        this.entry = new float[Math.max(c.headDim(), c.indexHeadDim())];
        this.hadamardScratch = new double[c.indexHeadDim()];
        this.preW = new double[hc];
        this.combW = new double[hc * hc];
        this.scoreW = new double[c.nRoutedExperts()];
        this.biasedW = new double[c.nRoutedExperts()];
        this.embedRow = new float[d];
        this.heap = new int[Math.max(c.nActivatedExperts(), c.indexTopk())];
        this.countBuf = new int[c.nRoutedExperts()];
    }

    /** {@code a} if it holds n elements, else a new array of exactly n (a long prefill chunk should not double it). */
    private static float[] fit(float[] a, int n) {
        return a.length >= n ? a : new float[n];
    }

    private static double[] fit(double[] a, int n) {
        return a.length >= n ? a : new double[n];
    }

    private static int[] fit(int[] a, int n) {
        return a.length >= n ? a : new int[n];
    }

    public ModelConfig config() {
        return c;
    }

    public ModelWeights weights() {
        return w;
    }

    public Kernels kernels() {
        return k;
    }

    public void setTap(Tap tap) {
        this.tap = tap;
    }

    public SequenceCache newSequence(int maxLength) {
        if (maxLength <= 0 || maxLength > c.maxPositionEmbeddings()) {
            throw new IllegalArgumentException("max sequence length " + maxLength + " outside [1, max_position_embeddings = "
                    + c.maxPositionEmbeddings() + "]");
        }
        return new SequenceCache(c, codec, maxLength);
    }

    public Rope ropeFor(int ratio) {
        return ratio > 0 ? compressedRope : plainRope;
    }

    /** A run of tokens appended to one sequence. */
    public record Chunk(SequenceCache cache, int[] tokens) {}

    /**
     * The result of a forward pass: logits rows and the final residual streams of every token row (null when the
     * caller did not ask for them).
     */
    public record Output(float[] logits, int logitRows, float[] finalStreams, int tokens) {}

    /**
     * Appends each chunk's tokens to its sequence and returns the logits of every token (allLogits) or of the last
     * token of each chunk. Chunks must belong to distinct sequences.
     */
    public Output forward(List<Chunk> chunks, boolean allLogits) {
        return forward(chunks, allLogits, true);
    }

    /** {@link #forward(List, boolean)}, with the final streams in the output only if withStreams. */
    public Output forward(List<Chunk> chunks, boolean allLogits, boolean withStreams) {
        Pass p = begin(chunks);
        while (!p.done()) {
            attentionHalf(p);
            routedExperts(p.layerWeights(), p.ffnInput(), p.tokens(), p.routing(), p.routedSums());
            sharedExpert(p);
            ffnHalf(p);
        }
        return end(List.of(p), allLogits, withStreams);
    }

    /**
     * One batch on its way through the layers, for callers that run the routed experts elsewhere (the attention
     * worker): {@link #begin}, then per layer {@link #attentionHalf}, the routed experts summed into
     * {@link #routedSums()} in ascending expert id, {@link #sharedExpert} (in any order relative to the routed
     * experts), {@link #ffnHalf}; finally {@link #end}. {@link #forward} is exactly that sequence with local experts,
     * so a pass split across processes computes the same bits.
     */
    public final class Pass {
        private final List<Chunk> chunks;
        private final int T;
        private final int[] tokens;
        private final long[] pos;
        private final SequenceCache[] seqOf;
        /** Its arrays (streams, FFN input, routed sums, mixing weights, shared-expert output, routing). */
        private final PassBuffers b;
        private float[] shared;
        private Routing routing;
        private int layer;
        private int half; // 0: next is attentionHalf, 1: next is ffnHalf
        private boolean ended;

        private Pass(List<Chunk> chunks, int T, int[] tokens, long[] pos, SequenceCache[] seqOf, PassBuffers b) {
            this.chunks = chunks;
            this.T = T;
            this.tokens = tokens;
            this.pos = pos;
            this.seqOf = seqOf;
            this.b = b;
        }

        /** Token rows in this pass. */
        public int tokens() {
            return T;
        }

        /** The layer whose attention or FFN half runs next; nLayers when done. */
        public int layer() {
            return layer;
        }

        public boolean done() {
            return layer == c.nLayers();
        }

        public Layer layerWeights() {
            return w.layers[layer];
        }

        /** After {@link #attentionHalf}: the normalised FFN input [T, D] (bf16 values). */
        public float[] ffnInput() {
            return b.x;
        }

        /** After {@link #attentionHalf}: the routing of every row. */
        public Routing routing() {
            return routing;
        }

        /** After {@link #attentionHalf}: zeroed [T, D] float64 sums for the routed experts' weighted outputs. */
        public double[] routedSums() {
            return b.acc;
        }

        /** Token ids of the rows (hash layers route by token id). */
        public int token(int row) {
            return tokens[row];
        }
    }

    /**
     * The arrays of a pass of T rows. A decode step begins passes of the same sizes step after step, so {@link #end}
     * keeps the buffers of the passes it ends (a few, by row count) and {@link #begin} takes them again: a step
     * allocates no stream arrays. The final streams X leave with the {@link Output} and are replaced.
     */
    private final class PassBuffers {
        final int T;
        final double[] post;
        final double[] comb;
        final float[] x;
        final double[] acc;
        float[] X;
        final float[] X2;
        final float[] sharedOut;
        /** The routing of the current layer, [T, k]: rewritten by every layer (a layer's routing is spent first). */
        final int[] routeIds;
        final double[] routeWeights;

        PassBuffers(int T) {
            this.T = T;
            this.post = new double[T * hc];
            this.comb = new double[T * hc * hc];
            this.x = new float[T * d];
            this.acc = new double[T * d];
            this.X = new float[T * hc * d];
            this.X2 = new float[T * hc * d];
            this.sharedOut = new float[T * d];
            this.routeIds = new int[T * c.nActivatedExperts()];
            this.routeWeights = new double[T * c.nActivatedExperts()];
        }
    }

    /** Kept pass buffers: enough for the micro-batches of a step (at most 4) and some spare sizes. */
    private static final int KEPT_PASS_BUFFERS = 8;
    private final java.util.ArrayDeque<PassBuffers> keptPassBuffers = new java.util.ArrayDeque<>();

    private PassBuffers passBuffers(int T) {
        for (java.util.Iterator<PassBuffers> it = keptPassBuffers.iterator(); it.hasNext(); ) {
            PassBuffers b = it.next();
            if (b.T == T) {
                it.remove();
                if (b.X == null) {
                    b.X = new float[T * hc * d];
                }
                return b;
            }
        }
        return new PassBuffers(T);
    }

    private void keep(PassBuffers b) {
        if (keptPassBuffers.size() == KEPT_PASS_BUFFERS) {
            keptPassBuffers.removeLast();
        }
        keptPassBuffers.addFirst(b);
    }

    /** Validates the chunks and embeds their tokens; nothing is appended to a cache until {@link #end}. */
    public Pass begin(List<Chunk> chunks) {
        int total = 0;
        for (int i = 0; i < chunks.size(); i++) {
            Chunk ch = chunks.get(i);
            for (int j = 0; j < i; j++) {
                if (chunks.get(j).cache() == ch.cache()) {
                    throw new IllegalArgumentException("two chunks of one batch belong to the same sequence");
                }
            }
            if (ch.tokens().length == 0) {
                throw new IllegalArgumentException("empty chunk");
            }
            if (ch.cache().length + ch.tokens().length > ch.cache().maxLength) {
                throw new IllegalArgumentException("sequence of " + (ch.cache().length + ch.tokens().length)
                        + " tokens exceeds the context limit of " + ch.cache().maxLength);
            }
            for (int t : ch.tokens()) {
                if (t < 0 || t >= c.vocabSize()) {
                    throw new IllegalArgumentException("token id " + t + " outside the vocabulary [0, " + c.vocabSize() + ")");
                }
            }
            total += ch.tokens().length;
        }
        if (total == 0) {
            throw new IllegalArgumentException("empty batch");
        }
        int T = total;
        int[] tokens = new int[T];
        long[] pos = new long[T];
        SequenceCache[] seqOf = new SequenceCache[T];
        int r = 0;
        for (Chunk ch : chunks) {
            for (int j = 0; j < ch.tokens().length; j++) {
                tokens[r] = ch.tokens()[j];
                pos[r] = ch.cache().length + j;
                seqOf[r] = ch.cache();
                r++;
            }
        }
        Pass p = new Pass(List.copyOf(chunks), T, tokens, pos, seqOf, passBuffers(T));
        embed(tokens, p.b.X);
        return p;
    }

    /**
     * The attention sublayer of the pass's current layer, then the FFN's hc_pre, norm and gate: leaves the FFN input
     * and the routing in the pass and zeroes its routed sums.
     */
    public void attentionHalf(Pass p) {
        if (p.done() || p.half != 0) {
            throw new IllegalStateException("attentionHalf out of order (layer " + p.layer + ")");
        }
        Layer L = w.layers[p.layer];
        int li = p.layer;
        int T = p.T;
        float[] x = p.b.x;
        hcPre(L.hcAttn(), p.b.X, T, x, p.b.post, p.b.comb);
        rmsNorm(x, 0, T, d, L.attnNorm(), x, 0);
        tapRows(li, "attn_in", p.pos, x, d);
        float[] a = attention(L, li, x, T, p.pos, p.seqOf, false);
        tapRows(li, "attn_out", p.pos, a, d);
        hcPost(a, p.b.X, p.b.post, p.b.comb, T, p.b.X2);
        tapRows(li, "mid_streams", p.pos, p.b.X2, hc * d);
        hcPre(L.hcFfn(), p.b.X2, T, x, p.b.post, p.b.comb);
        rmsNorm(x, 0, T, d, L.ffnNorm(), x, 0);
        tapRows(li, "ffn_in", p.pos, x, d);
        p.routing = route(L, x, T, p.tokens, p.b.routeIds, p.b.routeWeights);
        tapRouting(li, p.pos, p.routing, T);
        Arrays.fill(p.b.acc, 0);
        p.shared = null;
        p.half = 1;
    }

    /** The shared expert of the current layer over the pass's FFN input (kept in the pass for {@link #ffnHalf}). */
    public void sharedExpert(Pass p) {
        if (p.half != 1) {
            throw new IllegalStateException("sharedExpert before attentionHalf (layer " + p.layer + ")");
        }
        p.shared = sharedExpert(w.layers[p.layer], p.b.x, p.T, p.b.sharedOut);
    }

    /** Adds the shared expert to the routed sums, rounds to bf16, applies hc_post and moves to the next layer. */
    public void ffnHalf(Pass p) {
        if (p.half != 1 || p.shared == null) {
            throw new IllegalStateException("ffnHalf before attentionHalf and sharedExpert (layer " + p.layer + ")");
        }
        int T = p.T;
        // No new arrays per layer: the FFN input x and the layer's input streams X are spent (the shared expert and
        // the dispatch have read x, attentionHalf's hc_post has read X), so they take the FFN output and the new
        // streams.
        float[] f = p.b.x;
        for (int i = 0; i < T * d; i++) {
            f[i] = Bf16.round(p.b.acc[i] + p.shared[i]);
        }
        tapRows(p.layer, "ffn_out", p.pos, f, d);
        hcPost(f, p.b.X2, p.b.post, p.b.comb, T, p.b.X);
        tapRows(p.layer, "streams", p.pos, p.b.X, hc * d);
        p.shared = null;
        p.routing = null;
        p.half = 0;
        p.layer++;
    }

    /**
     * Commits the pass's tokens to their sequences and returns the logits of every token (allLogits) or of the last
     * token of each chunk, with the final streams.
     */
    public Output end(Pass p, boolean allLogits) {
        return end(List.of(p), allLogits, true);
    }

    /**
     * Ends several finished passes with one pass over the head weights (micro-batches of one step): commits their
     * tokens and returns the logits of their rows in pass order, as if they had been one batch, with the final
     * streams.
     */
    public Output end(List<Pass> passes, boolean allLogits) {
        return end(passes, allLogits, true);
    }

    /**
     * {@link #end(List, boolean)}; without streams ({@link Output#finalStreams()} null) the passes' stream arrays stay
     * with their buffers for the next step, so a serving step allocates only its logits.
     */
    public Output end(List<Pass> passes, boolean allLogits, boolean withStreams) {
        int total = 0;
        int rowCount = 0;
        for (Pass p : passes) {
            if (!p.done()) {
                throw new IllegalStateException("pass ended at layer " + p.layer + " of " + c.nLayers());
            }
            if (p.ended) {
                throw new IllegalStateException("pass already ended");
            }
            total += p.T;
            rowCount += allLogits ? p.T : p.chunks.size();
        }
        int w0 = hc * d;
        float[] sel = headRows = fit(headRows, rowCount * w0);
        int r = 0;
        for (Pass p : passes) {
            for (Chunk ch : p.chunks) {
                ch.cache().length += ch.tokens().length;
            }
            if (allLogits) {
                System.arraycopy(p.b.X, 0, sel, r * w0, p.T * w0);
                r += p.T;
            } else {
                int last = 0;
                for (Chunk ch : p.chunks) {
                    last += ch.tokens().length;
                    System.arraycopy(p.b.X, (last - 1) * w0, sel, r++ * w0, w0);
                }
            }
        }
        float[] logits = head(sel, rowCount, w.hcHead, w.norm);
        float[] X = null;
        if (withStreams) {
            X = passes.size() == 1 ? passes.get(0).b.X : new float[total * w0];
            int base = 0;
            for (Pass p : passes) {
                if (passes.size() > 1) {
                    System.arraycopy(p.b.X, 0, X, base * w0, p.T * w0);
                } else {
                    p.b.X = null; // it is the output's finalStreams
                }
                base += p.T;
            }
        }
        for (Pass p : passes) {
            p.ended = true;
            keep(p.b);
        }
        return new Output(logits, rowCount, X, total);
    }

    /**
     * The MTP block (spec §4.11): streams [T, hc, D] of the main model (before hc_head) with the NEXT token of each
     * row, appended to the sequence's MTP cache; returns the MTP logits of every row.
     */
    public float[] mtpForward(SequenceCache cache, float[] streams, int[] nextTokens) {
        ModelWeights.Mtp m = w.mtp;
        if (m == null) {
            throw new IllegalStateException("this checkpoint has no MTP block");
        }
        int T = nextTokens.length;
        long[] pos = new long[T];
        SequenceCache[] seqOf = new SequenceCache[T];
        for (int i = 0; i < T; i++) {
            pos[i] = cache.mtpLength + i;
            seqOf[i] = cache;
        }
        float[] e = new float[T * d];
        embed1(nextTokens, e);
        rmsNorm(e, 0, T, d, m.enorm(), e, 0);
        float[] ep = new float[T * d];
        k.fp8Linear(m.eProj(), 0, d, e, 0, d, T, ep, 0, d);
        float[] xn = new float[T * hc * d];
        rmsNorm(streams, 0, T * hc, d, m.hnorm(), xn, 0);
        float[] hp = new float[T * hc * d];
        k.fp8Linear(m.hProj(), 0, d, xn, 0, d, T * hc, hp, 0, d);
        float[] X = new float[T * hc * d];
        for (int t = 0; t < T; t++) {
            for (int j = 0; j < hc; j++) {
                int o = (t * hc + j) * d;
                for (int i = 0; i < d; i++) {
                    X[o + i] = Bf16.round((double) ep[t * d + i] + hp[o + i]);
                }
            }
        }
        X = block(m.block(), c.nLayers(), X, T, nextTokens, pos, seqOf, true);
        cache.mtpLength += T;
        int[] rows = new int[T];
        for (int i = 0; i < T; i++) {
            rows[i] = i;
        }
        return logits(X, rows, m.hcHead(), m.norm());
    }

    private void embed(int[] tokens, float[] X) {
        float[] row = embedRow;
        for (int t = 0; t < tokens.length; t++) {
            w.embed.row(tokens[t], row, 0);
            for (int j = 0; j < hc; j++) {
                System.arraycopy(row, 0, X, (t * hc + j) * d, d);
            }
        }
    }

    private void embed1(int[] tokens, float[] x) {
        for (int t = 0; t < tokens.length; t++) {
            w.embed.row(tokens[t], x, t * d);
        }
    }

    // ------------------------------------------------------------------------------------------------ block

    private float[] block(Layer L, int li, float[] X, int T, int[] tokens, long[] pos, SequenceCache[] seqOf, boolean mtp) {
        float[] x = new float[T * d];
        double[] post = new double[T * hc];
        double[] comb = new double[T * hc * hc];
        hcPre(L.hcAttn(), X, T, x, post, comb);
        rmsNorm(x, 0, T, d, L.attnNorm(), x, 0);
        tapRows(li, "attn_in", pos, x, d);
        float[] a = attention(L, li, x, T, pos, seqOf, mtp);
        tapRows(li, "attn_out", pos, a, d);
        float[] X2 = new float[T * hc * d];
        hcPost(a, X, post, comb, T, X2);
        tapRows(li, "mid_streams", pos, X2, hc * d);
        hcPre(L.hcFfn(), X2, T, x, post, comb);
        rmsNorm(x, 0, T, d, L.ffnNorm(), x, 0);
        tapRows(li, "ffn_in", pos, x, d);
        float[] f = moe(L, li, x, T, tokens, pos);
        tapRows(li, "ffn_out", pos, f, d);
        float[] X3 = new float[T * hc * d];
        hcPost(f, X2, post, comb, T, X3);
        tapRows(li, "streams", pos, X3, hc * d);
        return X3;
    }

    private void tapRows(int layer, String name, long[] pos, float[] data, int width) {
        if (tap == null) {
            return;
        }
        for (int t = 0; t < pos.length; t++) {
            tap.row(layer, name, pos[t], data, t * width, width);
        }
    }

    // ------------------------------------------------------------------------------------------------ mHC

    /**
     * hc_pre (spec §4.3): from the streams X [T, hc, D] computes the sublayer input x [T, D] (bf16) and the post and
     * comb (Sinkhorn) mixing weights of every row.
     */
    public void hcPre(HcWeights hw, float[] X, int T, float[] x, double[] post, double[] comb) {
        int mix = hw.fn().rows();
        double[] m = mixBuf = fit(mixBuf, T * mix);
        k.f32LinearWide(hw.fn(), X, 0, hc * d, T, m, 0, mix);
        double eps = c.hcEps();
        double[] pre = preW;
        double[] C = combW;
        for (int t = 0; t < T; t++) {
            double rs = rsqrtMeanSquare(X, t * hc * d, hc * d);
            int mo = t * mix;
            for (int j = 0; j < hc; j++) {
                pre[j] = sigmoid(m[mo + j] * rs * hw.scale()[0] + hw.base()[j]) + eps;
                post[t * hc + j] = 2 * sigmoid(m[mo + hc + j] * rs * hw.scale()[1] + hw.base()[hc + j]);
            }
            for (int j = 0; j < hc; j++) {
                double mx = Double.NEGATIVE_INFINITY;
                for (int q = 0; q < hc; q++) {
                    int i = 2 * hc + j * hc + q;
                    C[j * hc + q] = m[mo + i] * rs * hw.scale()[2] + hw.base()[i];
                    mx = Math.max(mx, C[j * hc + q]);
                }
                double sum = 0;
                for (int q = 0; q < hc; q++) {
                    C[j * hc + q] = Math.exp(C[j * hc + q] - mx);
                    sum += C[j * hc + q];
                }
                for (int q = 0; q < hc; q++) {
                    C[j * hc + q] = C[j * hc + q] / sum + eps;
                }
            }
            normalizeColumns(C, eps);
            for (int it = 1; it < c.hcSinkhornIters(); it++) {
                normalizeRows(C, eps);
                normalizeColumns(C, eps);
            }
            System.arraycopy(C, 0, comb, t * hc * hc, hc * hc);
            HcPre.mix(X, t * hc * d, pre, hc, d, x, t * d);
        }
    }

    private void normalizeRows(double[] C, double eps) {
        for (int j = 0; j < hc; j++) {
            double s = 0;
            for (int q = 0; q < hc; q++) {
                s += C[j * hc + q];
            }
            for (int q = 0; q < hc; q++) {
                C[j * hc + q] /= s + eps;
            }
        }
    }

    private void normalizeColumns(double[] C, double eps) {
        for (int q = 0; q < hc; q++) {
            double s = 0;
            for (int j = 0; j < hc; j++) {
                s += C[j * hc + q];
            }
            for (int j = 0; j < hc; j++) {
                C[j * hc + q] /= s + eps;
            }
        }
    }

    /** hc_post: X'[k] = bf16(post_k * a + sum_j comb[j][k] * X[j]). */
    public void hcPost(float[] a, float[] X, double[] post, double[] comb, int T, float[] out) {
        HcPost.apply(a, X, post, comb, T, hc, d, out);
    }

    private double rsqrtMeanSquare(float[] x, int off, int n) {
        double s = 0;
        for (int i = 0; i < n; i++) {
            s += (double) x[off + i] * x[off + i];
        }
        return 1.0 / Math.sqrt(s / n + c.normEps());
    }

    private static double sigmoid(double v) {
        return 1.0 / (1.0 + Math.exp(-v));
    }

    /** Weighted RMSNorm of `rows` rows of width n: bf16(w * x / sqrt(mean(x^2) + eps)); in place allowed. */
    public void rmsNorm(float[] x, int off, int rows, int n, float[] weight, float[] out, int outOff) {
        for (int r = 0; r < rows; r++) {
            double rs = rsqrtMeanSquare(x, off + r * n, n);
            for (int i = 0; i < n; i++) {
                out[outOff + r * n + i] = Bf16.round((double) weight[i] * x[off + r * n + i] * rs);
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ attention

    /** q_norm(wq_a(x)) [T, q_lora]: the query low-rank activations (also the indexer's input). */
    public float[] queryLatent(Layer L, float[] x, int T) {
        return queryLatent(L, x, T, new float[T * c.qLoraRank()]);
    }

    private float[] queryLatent(Layer L, float[] x, int T, float[] qr) {
        int ql = c.qLoraRank();
        k.fp8Linear(L.attn().wqA(), 0, ql, x, 0, d, T, qr, 0, ql);
        rmsNorm(qr, 0, T, ql, L.attn().qNorm(), qr, 0);
        return qr;
    }

    /** Queries [T, H, hd]: wq_b, the unweighted per-head RMS norm in bf16 steps, RoPE on the rope dims. */
    public float[] queries(Layer L, float[] qr, int T, long[] pos) {
        return queries(L, qr, T, pos, new float[T * c.nHeads() * c.headDim()]);
    }

    /** {@link #queries(Layer, float[], int, long[])} into q (at least [T, H, hd]; the first T rows are written). */
    private float[] queries(Layer L, float[] qr, int T, long[] pos, float[] q) {
        int H = c.nHeads();
        int hd = c.headDim();
        k.fp8Linear(L.attn().wqB(), 0, H * hd, qr, 0, c.qLoraRank(), T, q, 0, H * hd);
        Rope rope = ropeFor(L.ratio());
        float eps = (float) c.normEps();
        k.headRmsNorm(q, 0, T * H, hd, eps);
        for (int t = 0; t < T; t++) {
            rope.table(pos[t], cs);
            for (int h = 0; h < H; h++) {
                rope.apply(q, (t * H + h) * hd, hd, cs, false);
            }
        }
        return q;
    }

    /** Window KV rows [T, hd] before the FP8 round trip of the nope dims: kv_norm(wkv(x)) with RoPE. */
    public float[] keyValues(Layer L, float[] x, int T, long[] pos) {
        return keyValues(L, x, T, pos, new float[T * c.headDim()]);
    }

    private float[] keyValues(Layer L, float[] x, int T, long[] pos, float[] kv) {
        int hd = c.headDim();
        k.fp8Linear(L.attn().wkv(), 0, hd, x, 0, d, T, kv, 0, hd);
        rmsNorm(kv, 0, T, hd, L.attn().kvNorm(), kv, 0);
        Rope rope = ropeFor(L.ratio());
        for (int t = 0; t < T; t++) {
            rope.table(pos[t], cs);
            rope.apply(kv, t * hd, hd, cs, false);
        }
        return kv;
    }

    /** The FP8 round trip of the nope dims of a KV row, in place (what the cache stores). */
    public void kvRoundTrip(float[] kv, int off) {
        byte[] tmp = new byte[codec.kvRowBytes()];
        codec.encodeKv(kv, off, tmp, 0);
        codec.decodeKv(tmp, 0, kv, off);
    }

    /** Compressor projections: k [T, c*dim] and gate scores z [T, c*dim] with ape[p mod m] added. */
    public void compressorProjections(Compressor cp, float[] x, int T, long[] pos, double[] kOut, double[] zOut) {
        int width = cp.wkv().rows();
        k.bf16LinearWide(cp.wkv(), x, 0, d, T, kOut, 0, width);
        k.bf16LinearWide(cp.wgate(), x, 0, d, T, zOut, 0, width);
        for (int t = 0; t < T; t++) {
            int row = (int) (pos[t] % cp.ratio());
            for (int i = 0; i < width; i++) {
                zOut[t * width + i] += cp.ape()[row * width + i];
            }
        }
    }

    /**
     * Post-processing of a pooled compressor entry (spec §4.6): bf16, RMSNorm, RoPE at the entry's first position.
     * The caller applies the FP8 (main) or Hadamard + FP4 (indexer) round trip by encoding it.
     */
    private void finishEntry(Compressor cp, double[] pooledEntry, long entryIndex, float[] out) {
        int dim = cp.dim();
        for (int i = 0; i < dim; i++) {
            out[i] = Bf16.round(pooledEntry[i]);
        }
        rmsNorm(out, 0, 1, dim, cp.norm(), out, 0);
        compressedRope.table(entryIndex * cp.ratio(), cs);
        compressedRope.apply(out, 0, dim, cs, false);
    }

    /** Pools a completed block into {@link #entry}: bf16, norm, RoPE, and for indexer keys the Hadamard rotation. */
    private void emitEntry(Compressor cp, CompressorState state, long index, boolean indexKey) {
        state.pool(pooled);
        finishEntry(cp, pooled, index, entry);
        if (indexKey) {
            hadamard(entry, 0, cp.dim(), hadamardScratch);
        }
    }

    /**
     * Runs a fresh compressor over positions 0..T-1 of x [T, D] and returns its entries [T / m, dim] as the cache
     * holds them (main: FP8 round trip of the nope dims; indexer: Hadamard + FP4 round trip).
     */
    public float[] compressAll(Compressor cp, float[] x, int T, boolean indexKeys) {
        long[] pos = new long[T];
        for (int i = 0; i < T; i++) {
            pos[i] = i;
        }
        int width = cp.wkv().rows();
        double[] kk = new double[T * width];
        double[] zz = new double[T * width];
        compressorProjections(cp, x, T, pos, kk, zz);
        CompressorState state = new CompressorState(cp.ratio(), cp.overlap(), cp.dim());
        int n = T / cp.ratio();
        float[] out = new float[n * cp.dim()];
        byte[] row = new byte[Math.max(codec.kvRowBytes(), codec.keyRowBytes())];
        for (int t = 0; t < T; t++) {
            if (state.push(t, kk, t * width, zz, t * width)) {
                long idx = t / cp.ratio();
                emitEntry(cp, state, idx, indexKeys);
                if (indexKeys) {
                    codec.encodeKey(entry, 0, row, 0);
                    codec.decodeKey(row, 0, out, (int) idx * cp.dim());
                } else {
                    codec.encodeKv(entry, 0, row, 0);
                    codec.decodeKv(row, 0, out, (int) idx * cp.dim());
                }
            }
        }
        return out;
    }

    /** Fast Walsh-Hadamard transform of 128 values in Sylvester order, scaled by 128^-0.5, bf16 out (spec §3.5). */
    public static void hadamard(float[] x, int off, int n, double[] v) {
        for (int i = 0; i < n; i++) {
            v[i] = x[off + i];
        }
        for (int h = 1; h < n; h <<= 1) {
            for (int i = 0; i < n; i += 2 * h) {
                for (int j = i; j < i + h; j++) {
                    double a = v[j];
                    double b = v[j + h];
                    v[j] = a + b;
                    v[j + h] = a - b;
                }
            }
        }
        double s = 1.0 / Math.sqrt(n);
        for (int i = 0; i < n; i++) {
            x[off + i] = Bf16.round(v[i] * s);
        }
    }

    /** Indexer queries [T, ih, 128] (RoPE, Hadamard, FP4 round trip) from the query latent. */
    public float[] indexQueries(Layer L, float[] qr, int T, long[] pos) {
        return indexQueries(L, qr, T, pos, new float[T * c.indexHeads() * c.indexHeadDim()]);
    }

    private float[] indexQueries(Layer L, float[] qr, int T, long[] pos, float[] qi) {
        int ih = c.indexHeads();
        int id = c.indexHeadDim();
        k.fp8Linear(L.attn().indexer().wqB(), 0, ih * id, qr, 0, c.qLoraRank(), T, qi, 0, ih * id);
        for (int t = 0; t < T; t++) {
            compressedRope.table(pos[t], cs);
            for (int h = 0; h < ih; h++) {
                int o = (t * ih + h) * id;
                compressedRope.apply(qi, o, id, cs, false);
                hadamard(qi, o, id, hadamardScratch);
                io.epserve.model.format.QuantSim.fp4RoundTrip(qi, o, id, KvRowCodec.KEY_BLOCK, qi, o);
            }
        }
        return qi;
    }

    /** Indexer head weights [T, ih]: bf16(bf16(x . weights_proj) * ihd^-0.5 * ih^-0.5). */
    public float[] indexWeights(Layer L, float[] x, int T) {
        return indexWeights(L, x, T, new float[T * c.indexHeads()]);
    }

    private float[] indexWeights(Layer L, float[] x, int T, float[] wi) {
        int ih = c.indexHeads();
        k.bf16Linear(L.attn().indexer().weightsProj(), x, 0, d, T, wi, 0, ih);
        double scale = 1.0 / Math.sqrt(c.indexHeadDim()) / Math.sqrt(ih);
        for (int i = 0; i < T * ih; i++) {
            wi[i] = Bf16.round(wi[i] * scale);
        }
        return wi;
    }

    /**
     * The attention sublayer for a batch: projections batched, then per token in order (cache writes, compressors,
     * indexer, attention), then the grouped output projection. Returns a [T, D].
     */
    private float[] attention(Layer L, int li, float[] x, int T, long[] pos, SequenceCache[] seqOf, boolean mtp) {
        int H = c.nHeads();
        int hd = c.headDim();
        int win = c.window();
        int ratio = L.ratio();
        float[] qr = queryLatent(L, x, T, qrBuf = fit(qrBuf, T * c.qLoraRank()));
        int n = T * H * hd;
        qBuf = fit(qBuf, n);
        oBuf = fit(oBuf, n);
        float[] q = queries(L, qr, T, pos, qBuf);
        float[] kv = keyValues(L, x, T, pos, kvBuf = fit(kvBuf, T * hd));
        Compressor cp = L.attn().compressor();
        double[] ck = null;
        double[] cz = null;
        if (cp != null) {
            ck = ckBuf = fit(ckBuf, T * cp.wkv().rows());
            cz = czBuf = fit(czBuf, T * cp.wkv().rows());
            compressorProjections(cp, x, T, pos, ck, cz);
        }
        Compressor icp = ratio == 4 ? L.attn().indexer().compressor() : null;
        float[] qi = null;
        float[] wi = null;
        double[] ik = null;
        double[] iz = null;
        if (icp != null) {
            qi = indexQueries(L, qr, T, pos, qiBuf = fit(qiBuf, T * c.indexHeads() * c.indexHeadDim()));
            wi = indexWeights(L, x, T, wiBuf = fit(wiBuf, T * c.indexHeads()));
            ik = ikBuf = fit(ikBuf, T * icp.wkv().rows());
            iz = izBuf = fit(izBuf, T * icp.wkv().rows());
            compressorProjections(icp, x, T, pos, ik, iz);
        }
        float[] o = oBuf; // every head of every token is written below
        int kvBytes = codec.kvRowBytes();
        for (int t = 0; t < T; t++) {
            SequenceCache seq = seqOf[t];
            LayerCache lc = mtp ? seq.mtp : seq.layers[li];
            long p = pos[t];
            codec.encodeKv(kv, t * hd, lc.window, (int) (p % win) * kvBytes);
            if (tap != null) {
                float[] row = new float[hd];
                codec.decodeKv(lc.window, (int) (p % win) * kvBytes, row, 0);
                tap.row(li, "kv", p, row, 0, hd);
            }
            if (icp != null && lc.indexCompressor.push(p, ik, t * icp.wkv().rows(), iz, t * icp.wkv().rows())) {
                long idx = p / ratio;
                emitEntry(icp, lc.indexCompressor, idx, true);
                int at = lc.appendKey(); // may grow lc.keys, so take it first
                codec.encodeKey(entry, 0, lc.keys, at);
                if (tap != null) {
                    float[] row = new float[icp.dim()];
                    codec.decodeKey(lc.keys, (lc.keyCount - 1) * lc.keyRowBytes, row, 0);
                    tap.row(li, "index_keys", idx, row, 0, row.length);
                }
            }
            if (cp != null && lc.compressor.push(p, ck, t * cp.wkv().rows(), cz, t * cp.wkv().rows())) {
                long idx = p / ratio;
                emitEntry(cp, lc.compressor, idx, false);
                int at = lc.appendCompressed(); // may grow lc.compressed
                codec.encodeKv(entry, 0, lc.compressed, at);
                if (tap != null) {
                    float[] row = new float[hd];
                    codec.decodeKv(lc.compressed, (lc.compressedCount - 1) * kvBytes, row, 0);
                    tap.row(li, "compressed", idx, row, 0, hd);
                }
            }
            // Index list: the window (oldest first, padded to `win` entries), then compressed entries.
            int windowValid = (int) Math.min(win, p + 1);
            int nVisible = ratio > 0 ? (int) ((p + 1) / ratio) : 0;
            int[] selected = null;
            int nComp = nVisible;
            if (ratio == 4) {
                nComp = selectEntries(li, p, qi, t, wi, lc, nVisible);
                selected = selBuf;
            }
            ensureList((win + nComp) * hd);
            long first = p - windowValid + 1;
            for (int i = 0; i < windowValid; i++) {
                codec.decodeKv(lc.window, (int) ((first + i) % win) * kvBytes, listRows, i * hd);
            }
            for (int i = 0; i < nComp; i++) {
                int e = selected == null ? i : selected[i];
                codec.decodeKv(lc.compressed, e * kvBytes, listRows, (win + i) * hd);
            }
            k.attention(q, t * H * hd, H, hd, listRows, windowValid, win, nComp, L.attn().sink(), attnScale, o, t * H * hd);
            ropeFor(ratio).table(p, cs);
            for (int h = 0; h < H; h++) {
                ropeFor(ratio).apply(o, (t * H + h) * hd, hd, cs, true);
            }
        }
        // a is read by hc_post before the next attention call reuses it
        return outputProjection(L, o, T, zBuf = fit(zBuf, T * c.oGroups() * c.oLoraRank()), aBuf = fit(aBuf, T * d));
    }

    /** wo_a per group (bf16 einsum) then wo_b: o [T, H*hd] -> [T, D]. */
    public float[] outputProjection(Layer L, float[] o, int T) {
        return outputProjection(L, o, T, new float[T * c.oGroups() * c.oLoraRank()], new float[T * d]);
    }

    private float[] outputProjection(Layer L, float[] o, int T, float[] z, float[] a) {
        int G = c.oGroups();
        int R = c.oLoraRank();
        int groupIn = c.nHeads() * c.headDim() / G;
        int Hhd = c.nHeads() * c.headDim();
        for (int g = 0; g < G; g++) {
            k.fp8DequantLinear(L.attn().woA(), g * R, R, o, g * groupIn, Hhd, T, z, g * R, G * R);
        }
        k.fp8Linear(L.attn().woB(), 0, d, z, 0, G * R, T, a, 0, d);
        return a;
    }

    /**
     * Attention for one token with explicitly given list rows (component tests): q [H, hd], window rows [win, hd]
     * with windowValid valid, compressed rows after them; returns the sublayer output [D].
     */
    public float[] attendRows(Layer L, float[] q, long p, float[] rows, int windowValid, int nComp) {
        int H = c.nHeads();
        int hd = c.headDim();
        float[] o = new float[H * hd];
        k.attention(q, 0, H, hd, rows, windowValid, c.window(), nComp, L.attn().sink(), attnScale, o, 0);
        ropeFor(L.ratio()).table(p, cs);
        for (int h = 0; h < H; h++) {
            ropeFor(L.ratio()).apply(o, h * hd, hd, cs, true);
        }
        return outputProjection(L, o, 1);
    }

    /** Selects the CSA entries of one token into {@link #selBuf} (best first) and returns how many. */
    private int selectEntries(int li, long p, float[] qi, int t, float[] wi, LayerCache lc, int nVisible) {
        int ih = c.indexHeads();
        int id = c.indexHeadDim();
        if (keyRows.length < nVisible * id) {
            keyRows = new float[Math.max(nVisible * id, keyRows.length * 2)];
        }
        for (int i = 0; i < nVisible; i++) {
            codec.decodeKey(lc.keys, i * lc.keyRowBytes, keyRows, i * id);
        }
        if (scoreBuf.length < nVisible) {
            scoreBuf = new float[Math.max(nVisible, scoreBuf.length * 2)];
        }
        k.indexScores(qi, t * ih * id, ih, id, wi, t * ih, keyRows, nVisible, scoreBuf);
        if (tap != null) {
            tap.row(li, "index_scores", p, scoreBuf, 0, nVisible);
        }
        int kk = Math.min(c.indexTopk(), nVisible);
        int[] sel = selBuf = fit(selBuf, kk);
        topK(scoreBuf, null, nVisible, kk, heap, sel, 0);
        if (tap != null) {
            float[] f = new float[kk];
            for (int i = 0; i < kk; i++) {
                f[i] = sel[i];
            }
            tap.row(li, "csa_selected", p, f, 0, f.length);
        }
        return kk;
    }

    /** Indices of the k largest values, descending; equal values: lower index first (torch.topk on CUDA). */
    public static int[] topK(float[] v, int n, int kk) {
        int[] out = new int[Math.max(0, Math.min(kk, n))];
        topK(v, null, n, kk, new int[out.length], out, 0);
        return out;
    }

    public static int[] topK(double[] v, int n, int kk) {
        int[] out = new int[Math.max(0, Math.min(kk, n))];
        topK(null, v, n, kk, new int[out.length], out, 0);
        return out;
    }

    /**
     * Bounded-heap selection, O(n log k), of the values of fv (or dv, when fv is null) into out[outOff..] (best
     * first), using heap (at least min(kk, n) long) as scratch; returns how many were written. The heap's root is
     * the worst kept entry (smallest value; among equal values the higher index), so an entry replaces it only when
     * strictly better. Primitive arrays and no comparator object: the engine calls this per token and layer.
     */
    static int topK(float[] fv, double[] dv, int n, int kk, int[] heap, int[] out, int outOff) {
        int size = 0;
        for (int i = 0; i < n; i++) {
            if (size < kk) {
                heap[size] = i;
                siftUp(fv, dv, heap, size++);
            } else if (kk > 0 && better(fv, dv, i, heap[0]) > 0) {
                heap[0] = i;
                siftDown(fv, dv, heap, size);
            }
        }
        int kept = size;
        for (int j = size - 1; j >= 0; j--) {
            out[outOff + j] = heap[0];
            heap[0] = heap[--size];
            siftDown(fv, dv, heap, size);
        }
        return kept;
    }

    /** > 0 if entry a ranks above entry b: the larger value (Float/Double.compare order), then the lower index. */
    private static int better(float[] fv, double[] dv, int a, int b) {
        int c = fv != null ? Float.compare(fv[a], fv[b]) : Double.compare(dv[a], dv[b]);
        return c != 0 ? c : Integer.compare(b, a);
    }

    private static void siftUp(float[] fv, double[] dv, int[] h, int i) {
        while (i > 0) {
            int parent = (i - 1) / 2;
            if (better(fv, dv, h[parent], h[i]) <= 0) {
                break;
            }
            int t = h[parent];
            h[parent] = h[i];
            h[i] = t;
            i = parent;
        }
    }

    private static void siftDown(float[] fv, double[] dv, int[] h, int size) {
        int i = 0;
        while (true) {
            int l = 2 * i + 1;
            int r = l + 1;
            int worst = i;
            if (l < size && better(fv, dv, h[l], h[worst]) < 0) {
                worst = l;
            }
            if (r < size && better(fv, dv, h[r], h[worst]) < 0) {
                worst = r;
            }
            if (worst == i) {
                return;
            }
            int t = h[worst];
            h[worst] = h[i];
            h[i] = t;
            i = worst;
        }
    }

    private void ensureList(int n) {
        if (listRows.length < n) {
            listRows = new float[Math.max(n, listRows.length * 2)];
        }
    }

    // ------------------------------------------------------------------------------------------------ MoE

    /** Routing of a batch: expert ids [T, k] (reference order) and their weights [T, k]. */
    public record Routing(int[] experts, double[] weights, int perToken) {}

    public Routing route(Layer L, float[] x, int T, int[] tokens) {
        int K = c.nActivatedExperts();
        return route(L, x, T, tokens, new int[T * K], new double[T * K]);
    }

    /** {@link #route(Layer, float[], int, int[])} into ids and wts (exactly [T, k] each). */
    private Routing route(Layer L, float[] x, int T, int[] tokens, int[] ids, double[] wts) {
        int E = c.nRoutedExperts();
        int K = c.nActivatedExperts();
        double[] logit = logitBuf = fit(logitBuf, T * E);
        k.bf16LinearWide(L.ffn().gate(), x, 0, d, T, logit, 0, E);
        double[] sc = scoreW;
        double[] biased = biasedW;
        for (int t = 0; t < T; t++) {
            for (int e = 0; e < E; e++) {
                double v = logit[t * E + e];
                double sp = v > 20 ? v : Math.log1p(Math.exp(v));
                sc[e] = Math.sqrt(sp);
            }
            if (L.hash()) {
                System.arraycopy(L.ffn().tid2eid(), tokens[t] * K, ids, t * K, K);
            } else {
                float[] bias = L.ffn().bias();
                for (int e = 0; e < E; e++) {
                    biased[e] = sc[e] + bias[e];
                }
                topK(null, biased, E, K, heap, ids, t * K);
            }
            double sum = 0;
            for (int i = 0; i < K; i++) {
                sum += sc[ids[t * K + i]];
            }
            for (int i = 0; i < K; i++) {
                wts[t * K + i] = sc[ids[t * K + i]] / sum * c.routeScale();
            }
        }
        return new Routing(ids, wts, K);
    }

    private void tapRouting(int li, long[] pos, Routing rt, int T) {
        if (tap == null) {
            return;
        }
        for (int t = 0; t < T; t++) {
            float[] f = new float[rt.perToken()];
            for (int i = 0; i < f.length; i++) {
                f[i] = rt.experts()[t * rt.perToken() + i];
            }
            tap.row(li, "topk", pos[t], f, 0, f.length);
        }
    }

    /** The MoE sublayer (spec §4.9) for a batch: routed experts plus the shared expert, bf16 [T, D]. */
    public float[] moe(Layer L, int li, float[] x, int T, int[] tokens, long[] pos) {
        Routing rt = route(L, x, T, tokens);
        tapRouting(li, pos, rt, T);
        double[] acc = new double[T * d];
        routedExperts(L, x, T, rt, acc);
        float[] s = sharedExpert(L, x, T);
        float[] f = new float[T * d];
        for (int i = 0; i < f.length; i++) {
            f[i] = Bf16.round(acc[i] + s[i]);
        }
        return f;
    }

    /**
     * Adds every routed expert's weighted output to acc [T, D], experts in ascending id order, each expert's tokens
     * in one kernel call (one pass over its weights).
     */
    public void routedExperts(Layer L, float[] x, int T, Routing rt, double[] acc) {
        int E = c.nRoutedExperts();
        int K = rt.perToken();
        int[] count = countBuf;
        Arrays.fill(count, 0);
        for (int i = 0; i < T * K; i++) {
            count[rt.experts()[i]]++;
        }
        int inter = c.moeInterDim();
        int maxCount = 0;
        for (int n : count) {
            maxCount = Math.max(maxCount, n);
        }
        float[] xs = xsBuf = fit(xsBuf, maxCount * d);
        float[] g = gBuf = fit(gBuf, maxCount * inter);
        float[] u = uBuf = fit(uBuf, maxCount * inter);
        float[] y = yBuf = fit(yBuf, maxCount * d);
        int[] rowsOf = rowsOfBuf = fit(rowsOfBuf, maxCount);
        double[] wOf = wOfBuf = fit(wOfBuf, maxCount);
        for (int e = 0; e < E; e++) {
            if (count[e] == 0) {
                continue;
            }
            ModelWeights.Expert ex = L.ffn().experts()[e];
            if (ex == null) {
                throw new IllegalStateException("routed expert " + e + " of layer " + L.index() + " is not mapped here");
            }
            int n = 0;
            for (int t = 0; t < T; t++) {
                for (int s = 0; s < K; s++) {
                    if (rt.experts()[t * K + s] == e) {
                        rowsOf[n] = t;
                        wOf[n] = rt.weights()[t * K + s];
                        System.arraycopy(x, t * d, xs, n * d, d);
                        n++;
                    }
                }
            }
            expert(ex, xs, n, wOf, g, u, y);
            routedExpertBytes += bytes(ex);
            for (int i = 0; i < n; i++) {
                int t = rowsOf[i];
                for (int j = 0; j < d; j++) {
                    acc[t * d + j] += y[i * d + j];
                }
            }
        }
    }

    private static long bytes(ModelWeights.Expert ex) {
        return ex.w1().data().byteSize() + ex.w1().scale().byteSize() + ex.w2().data().byteSize()
                + ex.w2().scale().byteSize() + ex.w3().data().byteSize() + ex.w3().scale().byteSize();
    }

    /** Stored bytes of routed-expert weights read since the last reset (each expert once per layer and pass). */
    public long routedExpertBytes() {
        return routedExpertBytes;
    }

    public void resetRoutedExpertBytes() {
        routedExpertBytes = 0;
    }

    /** One routed expert over n token rows: y = w2(bf16(silu(min(g, lim)) * clamp(u) * weight)). */
    public void expert(ModelWeights.Expert ex, float[] xs, int n, double[] weight, float[] g, float[] u, float[] y) {
        ExpertFfn.routed(k, c, ex, xs, n, weight, g, u, y);
    }

    /** The shared expert over all rows: [T, D] bf16. */
    public float[] sharedExpert(Layer L, float[] x, int T) {
        return sharedExpert(L, x, T, new float[T * d]);
    }

    /** {@link #sharedExpert(Layer, float[], int)} into y (at least [T, D]). */
    private float[] sharedExpert(Layer L, float[] x, int T, float[] y) {
        int inter = L.ffn().shared().w1().rows();
        sharedG = fit(sharedG, T * inter);
        sharedU = fit(sharedU, T * inter);
        ExpertFfn.shared(k, c, L.ffn().shared(), x, T, sharedG, sharedU, y);
        return y;
    }

    // ------------------------------------------------------------------------------------------------ head

    /** hc_head -> final norm -> lm head for the given rows of X; float32 logits [rows, vocab]. */
    public float[] logits(float[] X, int[] rows, HcWeights hh, float[] normWeight) {
        int n = rows.length;
        float[] sel = headRows = fit(headRows, n * hc * d);
        for (int i = 0; i < n; i++) {
            System.arraycopy(X, rows[i] * hc * d, sel, i * hc * d, hc * d);
        }
        return head(sel, n, hh, normWeight);
    }

    /** hc_head, the final norm and the head of n selected rows of streams [n, hc, D]. */
    private float[] head(float[] sel, int n, HcWeights hh, float[] normWeight) {
        float[] y = headIn = fit(headIn, n * d);
        hcHead(hh, sel, n, y);
        rmsNorm(y, 0, n, d, normWeight, y, 0);
        int V = c.vocabSize();
        double[] lg = headLogits = fit(headLogits, n * V);
        k.bf16LinearWide(w.head, y, 0, d, n, lg, 0, V);
        float[] out = new float[n * V];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) lg[i]; // lg may be longer than out
        }
        return out;
    }

    /** hc_head (spec §4.10): y = bf16(sum_j pre_j X_j), no Sinkhorn. */
    public void hcHead(HcWeights hh, float[] X, int T, float[] y) {
        double[] m = mixBuf = fit(mixBuf, T * hc);
        k.f32LinearWide(hh.fn(), X, 0, hc * d, T, m, 0, hc);
        double[] pre = preW;
        for (int t = 0; t < T; t++) {
            double rs = rsqrtMeanSquare(X, t * hc * d, hc * d);
            for (int j = 0; j < hc; j++) {
                pre[j] = sigmoid(m[t * hc + j] * rs * hh.scale()[0] + hh.base()[j]) + c.hcEps();
            }
            for (int i = 0; i < d; i++) {
                double s = 0;
                for (int j = 0; j < hc; j++) {
                    s += pre[j] * X[(t * hc + j) * d + i];
                }
                y[t * d + i] = Bf16.round(s);
            }
        }
    }
}
