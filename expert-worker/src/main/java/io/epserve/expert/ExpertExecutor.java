package io.epserve.expert;

import io.epserve.cluster.Placement;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.ExpertFfn;
import io.epserve.model.format.Fp8E4m3;
import io.epserve.model.kernel.Kernels;
import io.epserve.model.weights.ExpertWeights;
import io.epserve.transport.CombineWriter;
import io.epserve.transport.TransportException;
import io.epserve.transport.WireLayout;
import io.epserve.transport.sbe.BooleanType;
import io.epserve.transport.sbe.DispatchDecoder;
import io.epserve.transport.sbe.ErrorCode;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * The compute of an expert worker: takes the rows of a dispatch exchange, runs the routed experts they name and
 * writes the outputs as combine rows, in waves.
 *
 * <p><b>Decoding</b> ({@link #append}): each row's activation is decoded exactly, {@code e4m3(code) * 2^exponent}
 * (always representable in float), giving the FP8-quantised values {@code xq} the engine's expert linears compute from
 * {@code x}. The FP4 linears quantise their input again; on {@code xq} that round trip returns {@code xq} bit for bit
 * (see QuantIdempotenceTest), so the outputs are bit-identical to the single-process engine's. The dispatch's
 * hiddenDim, layer, topK and experts are checked against the model and the placement first; a refused dispatch
 * throws {@link DispatchRejectedException} and nothing is computed.
 *
 * <p><b>Compute</b> ({@link #execute}): the (row, slot) entries are grouped by expert, experts in ascending id, and
 * each expert runs {@link ExpertFfn#routed} once over all its rows (one pass over its weights per exchange). Complete
 * exchanges of the same layer from several attention workers can run together (one pass over each expert's weights
 * for all of them, each exchange answered as if alone). The
 * routing weight enters inside the SwiGLU, as in the engine, so each combine row is that expert's contribution to the
 * token, already weighted, not yet summed (the attention worker adds them in its fixed order).
 *
 * <p><b>Waves</b>: after every {@code waveExperts} experts (0: only at the end) the finished experts' rows are sent
 * as one combine exchange with wave number 0, 1, 2, ...: the offer copies them into the publication's term buffer and
 * the media driver's sender ships them while the next experts compute. Waves are a uint8 on the wire, so with more
 * than 256 active experts the wave width grows to keep at most 256 waves. An exchange whose rows name no expert
 * (zero rows) is answered by one empty combine (wave 0, last). The attention worker knows it is done with a worker
 * when it has received one combine row per (token, slot) it dispatched there.
 *
 * <p><b>Memory</b>: all scratch is preallocated and grows (doubling) to the largest exchange seen, bounded by
 * {@code maxTokens}; nothing is allocated per token or per message after that. The kernels keep their own scratch.
 *
 * <p><b>Counters</b>: rows computed and expert calls per (layer, expert), and the time spent executing, readable
 * from any thread.
 *
 * <p>Not thread-safe: one thread calls {@link #append} and {@link #execute} (the worker's agent thread); the kernels
 * may use their own pool inside a call.
 */
public final class ExpertExecutor {
    /** The combine wave is a uint8. */
    static final int MAX_WAVES = 256;
    private static final float[] FP8 = Fp8E4m3.table();
    private static final int INITIAL_TOKENS = 16;

    private final ModelConfig c;
    private ExpertWeights weights;
    private final Kernels kernels;
    private final int waveExperts;
    private final int maxTokens;
    private final int d;
    private final int inter;
    private final int topK;
    private final int experts;
    private final int layers;
    private final int scaleCount;

    private final AtomicLongArray rowsComputed;
    private final AtomicLongArray expertCalls;
    private final AtomicLong exchanges = new AtomicLong();
    private final AtomicLong wavesSent = new AtomicLong();
    private final AtomicLong busyNanos = new AtomicLong();
    private final AtomicLong rejected = new AtomicLong();
    private final AtomicLong merged = new AtomicLong();

    // Grouping and compute scratch.
    private final int[] count;
    private final int[] start;
    private final int[] cursor;
    private int[] order = new int[0];
    /** Which of the exchanges run together each ordered entry belongs to. */
    private int[] orderExchange = new int[0];
    /** Waves sent so far to each of the exchanges run together. */
    private int[] wavesOf = new int[1];
    private int computeRows;
    private float[] xs = new float[0];
    private float[] g = new float[0];
    private float[] u = new float[0];
    private float[] y = new float[0];
    private double[] wt = new double[0];
    private int waveCapacity;
    private int[] waveExchange = new int[0];
    private int[] waveToken = new int[0];
    private int[] waveExpert = new int[0];
    private int[] waveSlot = new int[0];
    private final UnsafeBuffer staging = new UnsafeBuffer(new byte[0]);
    private final UnsafeBuffer codesView = new UnsafeBuffer();
    private final UnsafeBuffer scalesView = new UnsafeBuffer();
    private final Exchange single;
    private final Exchange[] oneExchange = new Exchange[1];
    private final CombineWriter[] oneOut = new CombineWriter[1];
    private final RuntimeException[] oneFailed = new RuntimeException[1];

    /**
     * @param waveExperts experts per combine wave (1: send after every expert; 0: one wave at the end)
     * @param maxTokens most rows one dispatch exchange may carry (bounds the scratch)
     */
    public ExpertExecutor(ExpertWeights weights, Kernels kernels, int waveExperts, int maxTokens) {
        if (waveExperts < 0) {
            throw new IllegalArgumentException("waveExperts must be >= 0 (0 = one wave), got " + waveExperts);
        }
        if (maxTokens < 1) {
            throw new IllegalArgumentException("maxTokens must be >= 1, got " + maxTokens);
        }
        this.c = weights.config();
        this.weights = weights;
        this.kernels = kernels;
        this.waveExperts = waveExperts;
        this.maxTokens = maxTokens;
        this.d = c.dim();
        this.inter = c.moeInterDim();
        this.topK = c.nActivatedExperts();
        this.experts = c.nRoutedExperts();
        this.layers = weights.layerCount();
        this.scaleCount = WireLayout.scaleCount(d);
        this.rowsComputed = new AtomicLongArray(layers * experts);
        this.expertCalls = new AtomicLongArray(layers * experts);
        this.count = new int[experts];
        this.start = new int[experts];
        this.cursor = new int[experts];
        this.single = newExchange();
    }

    /**
     * Serves from {@code w} from now on (same model): the control plane changed what this worker holds. Only between
     * exchanges, on the thread that runs them; counters carry on.
     */
    public void weights(ExpertWeights w) {
        if (w.layerCount() != layers || w.config().nRoutedExperts() != experts) {
            throw new IllegalArgumentException("new expert weights cover " + w.layerCount() + " layers of "
                    + w.config().nRoutedExperts() + " experts, this executor " + layers + " of " + experts);
        }
        this.weights = w;
    }

    /** The rows of one dispatch exchange (all its parts), as received from one attention worker. */
    public final class Exchange {
        long epoch;
        long step;
        long source;
        int layer;
        int microBatch;
        int nextPart;
        boolean open;
        boolean failed;

        int rows;
        int[] tokenIndex = new int[0];
        float[] x = new float[0];
        int entries;
        int[] entryRow = new int[0];
        int[] entryExpert = new int[0];
        int[] entrySlot = new int[0];
        double[] entryWeight = new double[0];

        private Exchange() {
            grow(INITIAL_TOKENS);
        }

        public long epoch() {
            return epoch;
        }

        public long step() {
            return step;
        }

        public int layer() {
            return layer;
        }

        public int microBatch() {
            return microBatch;
        }

        /** Token rows received so far. */
        public int rows() {
            return rows;
        }

        /** (row, slot) entries received so far: expert computations to do. */
        public int entries() {
            return entries;
        }

        private void begin(long epoch, long step, long source, int layer, int microBatch) {
            this.epoch = epoch;
            this.step = step;
            this.source = source;
            this.layer = layer;
            this.microBatch = microBatch;
            this.nextPart = 0;
            this.open = true;
            this.failed = false;
            this.rows = 0;
            this.entries = 0;
        }

        private void ensure(int needRows) {
            if (needRows > tokenIndex.length) {
                grow(Math.min(maxTokens, Math.max(needRows, 2 * tokenIndex.length)));
            }
        }

        private void grow(int capacity) {
            tokenIndex = Arrays.copyOf(tokenIndex, capacity);
            x = Arrays.copyOf(x, capacity * d);
            int e = capacity * topK;
            entryRow = Arrays.copyOf(entryRow, e);
            entryExpert = Arrays.copyOf(entryExpert, e);
            entrySlot = Arrays.copyOf(entrySlot, e);
            entryWeight = Arrays.copyOf(entryWeight, e);
        }
    }

    /** A new, empty exchange (one per attention worker; reused for each of its exchanges). */
    public Exchange newExchange() {
        return new Exchange();
    }

    /**
     * Decodes one {@code Dispatch} message (one part of an exchange) into {@code ex}. Part 0 starts a new exchange;
     * later parts must follow in order. After a refused part, the rest of that exchange is skipped.
     *
     * @return true if this was the exchange's last part and the exchange is ready for {@link #execute}
     * @throws DispatchRejectedException if the dispatch does not fit the model or this worker's placement; the
     *     exchange's header fields (step, layer, micro-batch, epoch) name the refused step
     */
    public boolean append(Exchange ex, DispatchDecoder dispatch) {
        long epoch = dispatch.epoch();
        long step = dispatch.step();
        long source = dispatch.source();
        long hiddenDim = dispatch.hiddenDim();
        int layer = dispatch.layer();
        int part = dispatch.part();
        int microBatch = dispatch.microBatch();
        int k = dispatch.topK();
        boolean last = dispatch.lastRaw() == BooleanType.TRUE.value();
        boolean sameExchange = ex.open && ex.step == step && ex.layer == layer && ex.microBatch == microBatch
                && ex.source == source;
        if (part == 0) {
            ex.begin(epoch, step, source, layer, microBatch);
        } else if (sameExchange && ex.failed) {
            ex.open = !last;
            return false;
        } else if (!sameExchange || part != ex.nextPart) {
            String expected = sameExchange ? "part " + ex.nextPart : "part 0";
            ex.begin(epoch, step, source, layer, microBatch);
            fail(ex, last);
            throw new DispatchRejectedException(ErrorCode.BAD_MESSAGE, "dispatch part " + part + " of step " + step
                    + " layer " + layer + " micro-batch " + microBatch + " arrived where " + expected
                    + " was expected; the exchange is dropped");
        }
        try {
            if (hiddenDim != d) {
                throw new DispatchRejectedException(ErrorCode.BAD_MESSAGE, "dispatch with hiddenDim " + hiddenDim
                        + ", but the model's hidden size is " + d);
            }
            if (layer >= layers) {
                throw new DispatchRejectedException(ErrorCode.BAD_MESSAGE, "dispatch for layer " + layer
                        + ", outside the model's expert layers [0, " + layers + ")");
            }
            if (k != topK) {
                throw new DispatchRejectedException(ErrorCode.BAD_MESSAGE, "dispatch with topK " + k
                        + ", but the model routes each token to " + topK + " experts");
            }
            DispatchDecoder.RowsDecoder rows = dispatch.rows();
            int n = rows.count();
            if ((long) ex.rows + n > maxTokens) {
                throw new DispatchRejectedException(ErrorCode.BAD_MESSAGE, "dispatch of " + (ex.rows + n)
                        + (last ? "" : "+") + " tokens for step " + step + " layer " + layer + " exceeds this worker's"
                        + " limit of " + maxTokens + " tokens per dispatch (--max-tokens-per-dispatch)");
            }
            ex.ensure(ex.rows + n);
            while (rows.hasNext()) {
                rows.next();
                decodeRow(ex, rows, layer);
            }
        } catch (DispatchRejectedException e) {
            fail(ex, last);
            throw e;
        }
        ex.nextPart = part + 1;
        if (last) {
            ex.open = false;
            exchanges.incrementAndGet();
        }
        return last;
    }

    private void fail(Exchange ex, boolean last) {
        ex.failed = true;
        ex.open = !last;
        rejected.incrementAndGet();
    }

    private void decodeRow(Exchange ex, DispatchDecoder.RowsDecoder row, int layer) {
        long token = row.tokenIndex();
        if (token > Integer.MAX_VALUE) {
            throw new DispatchRejectedException(ErrorCode.BAD_MESSAGE, "token index " + token + " out of range");
        }
        int r = ex.rows;
        DispatchDecoder.RowsDecoder.SlotsDecoder slots = row.slots();
        while (slots.hasNext()) {
            slots.next();
            double weight = slots.weight();
            int expert = slots.expertId();
            int slot = slots.slot();
            if (!weights.has(layer, expert)) {
                throw new DispatchRejectedException(ErrorCode.UNKNOWN_EXPERT, "this expert worker does not hold"
                        + " expert " + expert + " of layer " + layer + " (it holds " + held(layer) + ")");
            }
            int e = ex.entries++;
            ex.entryRow[e] = r;
            ex.entryExpert[e] = expert;
            ex.entrySlot[e] = slot;
            ex.entryWeight[e] = weight;
        }
        row.wrapCodes(codesView);
        row.wrapScales(scalesView);
        float[] x = ex.x;
        int base = r * d;
        for (int b = 0; b < scaleCount; b++) {
            float scale = Math.scalb(1f, scalesView.getByte(b));
            int end = Math.min(d, (b + 1) * WireLayout.SCALE_BLOCK);
            for (int i = b * WireLayout.SCALE_BLOCK; i < end; i++) {
                x[base + i] = FP8[codesView.getByte(i) & 0xff] * scale;
            }
        }
        ex.tokenIndex[r] = (int) token;
        ex.rows = r + 1;
    }

    private String held(int layer) {
        int[] ids = weights.placedIn(layer);
        return ids.length == 0 ? "no experts of layer " + layer : "experts " + Placement.ranges(ids) + " of layer " + layer;
    }

    /**
     * Runs every expert of a complete exchange and sends the outputs to {@code out} in waves.
     *
     * @param source this worker's id, the combines' source
     * @return the number of combine waves sent
     * @throws io.epserve.transport.TransportException if a combine could not be sent
     */
    public int execute(Exchange ex, int source, CombineWriter out) {
        oneExchange[0] = ex;
        oneOut[0] = out;
        try {
            int waves = execute(oneExchange, oneOut, 1, source, oneFailed);
            if (oneFailed[0] != null) {
                throw oneFailed[0];
            }
            return waves;
        } finally {
            oneExchange[0] = null;
            oneOut[0] = null;
            oneFailed[0] = null;
        }
    }

    /**
     * Runs the experts of n complete exchanges of the same layer together (from different attention workers): each
     * expert once over the rows of all of them, so its weights are read once for all their tokens instead of once per
     * exchange. Exchange x's combines go to {@code outs[x]}, in waves numbered from 0 as if it ran alone (a wave
     * carries only its own rows; a wave in which it has none is not sent to it), and the rows have the same bits as
     * alone: the kernels compute each token alike in any batch. A combine that cannot be sent sets {@code failed[x]};
     * nothing more goes to x and the others go on.
     *
     * @param source this worker's id, the combines' source
     * @return the number of combine waves sent, over all exchanges
     */
    public int execute(Exchange[] exs, CombineWriter[] outs, int n, int source, RuntimeException[] failed) {
        long t0 = System.nanoTime();
        try {
            return executeExchanges(exs, outs, n, source, failed);
        } finally {
            busyNanos.addAndGet(System.nanoTime() - t0);
        }
    }

    private int executeExchanges(Exchange[] exs, CombineWriter[] outs, int n, int source, RuntimeException[] failed) {
        int layer = exs[0].layer;
        if (wavesOf.length < n) {
            wavesOf = new int[Math.max(n, 2 * wavesOf.length)];
        }
        Arrays.fill(count, 0);
        int total = 0;
        for (int x = 0; x < n; x++) {
            Exchange ex = exs[x];
            if (ex.layer != layer) {
                throw new IllegalArgumentException("exchanges of layers " + layer + " and " + ex.layer + " run apart");
            }
            failed[x] = null;
            wavesOf[x] = 0;
            for (int i = 0; i < ex.entries; i++) {
                count[ex.entryExpert[i]]++;
            }
            total += ex.entries;
        }
        int active = 0;
        int most = 0;
        for (int e = 0, pos = 0; e < experts; e++) {
            start[e] = pos;
            cursor[e] = pos;
            pos += count[e];
            if (count[e] > 0) {
                active++;
                most = Math.max(most, count[e]);
            }
        }
        if (order.length < total) {
            int cap = Math.max(total, 2 * order.length);
            order = new int[cap];
            orderExchange = new int[cap];
        }
        for (int x = 0; x < n; x++) {
            Exchange ex = exs[x];
            for (int i = 0; i < ex.entries; i++) {
                int p = cursor[ex.entryExpert[i]]++;
                order[p] = i;
                orderExchange[p] = x;
            }
        }
        if (n > 1) {
            merged.addAndGet(n);
        }
        int sent = 0;
        for (int x = 0; x < n; x++) {
            if (exs[x].entries == 0) {
                sent += send(exs[x], outs[x], source, 0, 0, -1, x, failed);
            }
        }
        if (active == 0) {
            return sent;
        }
        ensureCompute(most);
        int perWave = waveExperts == 0 ? active : Math.max(waveExperts, (active + MAX_WAVES - 1) / MAX_WAVES);
        ensureWave(Math.min(total, (long) perWave * most));
        int inWave = 0;
        int waveRows = 0;
        int done = 0;
        for (int e = 0; e < experts; e++) {
            int m = count[e];
            if (m == 0) {
                continue;
            }
            for (int j = 0; j < m; j++) {
                Exchange ex = exs[orderExchange[start[e] + j]];
                int i = order[start[e] + j];
                System.arraycopy(ex.x, ex.entryRow[i] * d, xs, j * d, d);
                wt[j] = ex.entryWeight[i];
            }
            ExpertFfn.routed(kernels, c, weights.expert(layer, e), xs, m, wt, g, u, y);
            rowsComputed.addAndGet(layer * experts + e, m);
            expertCalls.incrementAndGet(layer * experts + e);
            for (int j = 0; j < m; j++) {
                int x = orderExchange[start[e] + j];
                Exchange ex = exs[x];
                int i = order[start[e] + j];
                waveExchange[waveRows] = x;
                waveToken[waveRows] = ex.tokenIndex[ex.entryRow[i]];
                waveExpert[waveRows] = e;
                waveSlot[waveRows] = ex.entrySlot[i];
                toBf16(y, j * d, waveRows * 2 * d);
                waveRows++;
            }
            inWave++;
            done++;
            if (inWave == perWave || done == active) {
                for (int x = 0; x < n; x++) {
                    int rows = 0;
                    for (int w = 0; w < waveRows; w++) {
                        rows += waveExchange[w] == x ? 1 : 0;
                    }
                    if (rows > 0) {
                        sent += send(exs[x], outs[x], source, wavesOf[x]++, rows, waveRows, x, failed);
                    }
                }
                inWave = 0;
                waveRows = 0;
                if (allFailed(failed, n)) {
                    return sent; // nobody left to send the remaining experts to
                }
            }
        }
        return sent;
    }

    private static boolean allFailed(RuntimeException[] failed, int n) {
        for (int x = 0; x < n; x++) {
            if (failed[x] == null) {
                return false;
            }
        }
        return true;
    }

    /**
     * One combine wave to exchange x: its {@code rows} rows among the first {@code waveRows} staged (none: the empty
     * answer to an exchange without entries). Returns 1 if sent; a transport failure goes to failed[x].
     */
    private int send(Exchange ex, CombineWriter out, int source, int wave, int rows, int waveRows, int x,
                     RuntimeException[] failed) {
        if (failed[x] != null) {
            return 0;
        }
        try {
            out.begin(ex.epoch, source, ex.step, ex.layer, ex.microBatch, wave, d, rows);
            for (int w = 0; w < waveRows; w++) {
                if (waveExchange[w] == x) {
                    out.row(waveToken[w], waveExpert[w], waveSlot[w], staging, w * 2 * d);
                }
            }
            out.end();
        } catch (TransportException e) {
            failed[x] = e;
            return 0;
        }
        wavesSent.incrementAndGet();
        return 1;
    }

    /**
     * Convenience for a dispatch that is a whole exchange in one message (or the parts of one, in order): appends it
     * to an internal exchange and, on its last part, executes it.
     *
     * @return the number of waves sent (0 while parts are missing)
     */
    public int run(DispatchDecoder dispatch, int source, CombineWriter out) {
        return append(single, dispatch) ? execute(single, source, out) : 0;
    }

    private void toBf16(float[] v, int from, int byteOffset) {
        for (int i = 0; i < d; i++) {
            staging.putShort(byteOffset + 2 * i, (short) (Float.floatToRawIntBits(v[from + i]) >>> 16),
                    ByteOrder.LITTLE_ENDIAN);
        }
    }

    private void ensureCompute(int rows) {
        if (rows > computeRows) {
            int n = Math.max(rows, Math.min(maxTokens, 2 * computeRows));
            xs = new float[n * d];
            g = new float[n * inter];
            u = new float[n * inter];
            y = new float[n * d];
            wt = new double[n];
            computeRows = n;
        }
    }

    private void ensureWave(long rows) {
        if (rows > waveCapacity) {
            int n = (int) Math.max(rows, Math.min((long) maxTokens * topK, 2L * waveCapacity));
            waveExchange = new int[n];
            waveToken = new int[n];
            waveExpert = new int[n];
            waveSlot = new int[n];
            staging.wrap(new byte[Math.multiplyExact(n, 2 * d)]);
            waveCapacity = n;
        }
    }

    // ------------------------------------------------------------------------------------------------ counters

    /** Token rows computed by expert {@code e} of {@code layer} so far (one per (token, slot) routed to it). */
    public long rowsComputed(int layer, int e) {
        return rowsComputed.get(layer * experts + e);
    }

    /** {@link ExpertFfn#routed} calls for expert {@code e} of {@code layer} (one per exchange that used it). */
    public long expertCalls(int layer, int e) {
        return expertCalls.get(layer * experts + e);
    }

    /** Rows computed over all experts and layers. */
    public long rowsComputed() {
        long s = 0;
        for (int i = 0; i < rowsComputed.length(); i++) {
            s += rowsComputed.get(i);
        }
        return s;
    }

    /** Complete exchanges accepted. */
    public long exchanges() {
        return exchanges.get();
    }

    /** Combine waves sent. */
    public long waves() {
        return wavesSent.get();
    }

    /** Nanoseconds spent in {@link #execute}: running experts and offering their combines (any thread may read). */
    public long busyNanos() {
        return busyNanos.get();
    }

    /** Exchanges that ran together with others of the same layer ({@link #execute(Exchange[], CombineWriter[], int,
     *  int, RuntimeException[])} with more than one). */
    public long mergedExchanges() {
        return merged.get();
    }

    /** Dispatch messages refused. */
    public long rejected() {
        return rejected.get();
    }

    public int maxTokens() {
        return maxTokens;
    }

    public int waveExperts() {
        return waveExperts;
    }
}
