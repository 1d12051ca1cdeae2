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
 * <p><b>Compute</b> ({@link #join}, {@link #runWave}): the experts run in a sweep over one layer, each once over the
 * rows of every exchange in the sweep that has rows for it (one pass over its weights for all of them). A sweep visits
 * the experts in a circle from expert 0; a complete exchange of the same layer may join a sweep under way (another
 * attention worker's, or another micro-batch of the same one) and leaves after its own full circle. The
 * routing weight enters inside the SwiGLU, as in the engine, so each combine row is that expert's contribution to the
 * token, already weighted, not yet summed (the attention worker adds them in its fixed order, so the order in which
 * an exchange meets its experts does not matter). {@link #execute} runs given exchanges in one sweep from start to
 * end.
 *
 * <p><b>Waves</b>: after every {@code waveExperts} experts with rows (0: only at the end) the staged rows are sent as
 * one combine exchange per exchange that has rows among them, and an exchange's rows as soon as it has had its last
 * expert, each with its own wave number 0, 1, 2, ...: the offer copies them into the publication's term buffer and the media
 * driver's sender ships them while the next experts compute. Waves are a uint8 on the wire, so with more than 256
 * experts the wave width grows to keep at most 256 waves per exchange. An exchange whose rows name no expert (zero
 * rows) is answered by one empty combine (wave 0, last). The attention worker knows it is done with a worker when it
 * has received one combine row per (token, slot) it dispatched there.
 *
 * <p><b>Memory</b>: all scratch is preallocated and grows (doubling) to the largest exchange and sweep seen (an
 * exchange holds at most {@code maxTokens} rows); nothing is allocated per token or per message after that. The kernels keep their own scratch.
 *
 * <p><b>Counters</b>: rows computed and expert calls per (layer, expert), and the time spent executing, readable
 * from any thread.
 *
 * <p>Not thread-safe: one thread calls {@link #append}, {@link #join}, {@link #runWave} and {@link #execute} (the
 * worker's agent thread); the kernels
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

    private final AtomicLong lateJoins = new AtomicLong();

    // The sweep under way (see join): its exchanges in join order, the next expert, the wave being staged.
    private Exchange[] active = new Exchange[4];
    private int activeCount;
    private int[] remap = new int[4];
    private int sweepLayer = -1;
    private int position;
    /** Experts the sweep has passed so far. */
    private long visited;
    private int inWave;
    private int waveRows;
    /** Experts per wave: waveExperts, or more where an exchange could otherwise get more waves than a uint8 holds. */
    private final int perWave;
    private Exchange[] doneList = new Exchange[4];
    private int doneCount;

    // Grouping and compute scratch.
    private final int[] cursor;
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
    // execute(Exchange[], ...): the call's exchanges and where their outcomes go.
    private Exchange[] syncExchanges;
    private RuntimeException[] syncFailed;
    private int syncCount;
    private RuntimeException syncComputeFailure;
    private final ExchangeDone syncDone = (ex, failure) -> {
        if (failure instanceof TransportException) {
            for (int x = 0; x < syncCount; x++) {
                if (syncExchanges[x] == ex) {
                    syncFailed[x] = failure;
                }
            }
        } else if (failure != null) {
            syncComputeFailure = failure;
        }
    };

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
        this.cursor = new int[experts];
        // An exchange's waves: at most ceil((experts - 1) / perWave) full ones before its last expert, plus its last.
        this.perWave = waveExperts == 0 ? Integer.MAX_VALUE
                : Math.max(waveExperts, (experts - 1 + MAX_WAVES - 2) / (MAX_WAVES - 1));
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

        // In a sweep: entries by expert (those of expert e at sorted[expertStart[e] .. expertStart[e + 1])), entries
        // not yet computed, waves sent, where its combines go and who is told when it leaves.
        int[] sorted = new int[0];
        final int[] expertStart = new int[experts + 1];
        int left;
        int waves;
        boolean inSweep;
        boolean mergeCounted;
        CombineWriter out;
        int replySource;
        ExchangeDone done;
        RuntimeException failure;

        private Exchange() {
            grow(INITIAL_TOKENS);
        }

        private void sortByExpert() {
            int[] st = expertStart;
            Arrays.fill(st, 0);
            for (int i = 0; i < entries; i++) {
                st[entryExpert[i] + 1]++;
            }
            for (int e = 0; e < experts; e++) {
                st[e + 1] += st[e];
            }
            if (sorted.length < entries) {
                sorted = new int[entryRow.length];
            }
            System.arraycopy(st, 0, cursor, 0, experts);
            for (int i = 0; i < entries; i++) {
                sorted[cursor[entryExpert[i]]++] = i;
            }
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
     * nothing more goes to x and the others go on. One sweep ({@link #join}, {@link #runWave}) from start to end;
     * not while another sweep is under way.
     *
     * @param source this worker's id, the combines' source
     * @return the number of combine waves sent, over all exchanges
     * @throws RuntimeException what the expert computation threw, after every exchange was taken out of the sweep
     */
    public int execute(Exchange[] exs, CombineWriter[] outs, int n, int source, RuntimeException[] failed) {
        if (sweeping()) {
            throw new IllegalStateException("a sweep over layer " + sweepLayer + " is under way");
        }
        for (int x = 1; x < n; x++) {
            if (exs[x].layer != exs[0].layer) {
                throw new IllegalArgumentException("exchanges of layers " + exs[0].layer + " and " + exs[x].layer
                        + " run apart");
            }
        }
        Arrays.fill(failed, 0, n, null);
        syncExchanges = exs;
        syncFailed = failed;
        syncCount = n;
        syncComputeFailure = null;
        try {
            int sent = 0;
            for (int x = 0; x < n; x++) {
                sent += join(exs[x], outs[x], source, syncDone);
            }
            while (sweeping()) {
                sent += runWave();
            }
            if (syncComputeFailure != null) {
                throw syncComputeFailure;
            }
            return sent;
        } finally {
            syncExchanges = null;
            syncFailed = null;
            syncComputeFailure = null;
        }
    }

    /** Told when an exchange leaves the sweep: all its rows sent, or not (see {@link #join}). */
    public interface ExchangeDone {
        /**
         * @param failure null when every row was sent; a {@link TransportException} when a combine could not be sent
         *     (nothing more went to that exchange); any other exception when the expert computation failed (every
         *     exchange in the sweep then leaves with it)
         */
        void exchangeDone(Exchange ex, RuntimeException failure);
    }

    /** Whether a sweep is under way: some joined exchange still has experts to run. */
    public boolean sweeping() {
        return activeCount > 0;
    }

    /** The layer of the sweep under way (-1: none). */
    public int sweepLayer() {
        return activeCount > 0 ? sweepLayer : -1;
    }

    /**
     * Adds a complete exchange to the sweep over its layer, starting one if none is under way. The sweep visits the
     * experts in a circle, from expert 0 when it starts; an exchange joining a sweep already under way starts at the
     * next expert to visit, shares every expert from there on with the exchanges already in it (one pass over the
     * weights for all of them), and leaves after a full circle, when its last expert's rows are sent. So an exchange
     * that arrives while this worker is behind is not held back until the sweep ends, and its combines carry the same
     * bits, in waves numbered from 0, as alone. An exchange without rows is answered at once by one empty combine and
     * does not join. {@code done} is told when the exchange leaves (from {@link #runWave}, or here for an empty one).
     *
     * @param source this worker's id, the combines' source
     * @return the number of combine waves sent now (1 for an empty exchange, else 0)
     * @throws IllegalArgumentException if a sweep over another layer is under way
     * @throws IllegalStateException if the exchange is in the sweep already
     */
    public int join(Exchange ex, CombineWriter out, int source, ExchangeDone done) {
        if (activeCount > 0 && ex.layer != sweepLayer) {
            throw new IllegalArgumentException("exchanges of layers " + sweepLayer + " and " + ex.layer + " run apart");
        }
        if (ex.inSweep) {
            throw new IllegalStateException("exchange of step " + ex.step + " layer " + ex.layer + " joined twice");
        }
        ex.out = out;
        ex.replySource = source;
        ex.done = done;
        ex.waves = 0;
        ex.failure = null;
        ex.mergeCounted = false;
        if (ex.entries == 0) {
            int sent = send(ex, 0, 0, -1);
            done.exchangeDone(ex, ex.failure);
            return sent;
        }
        ex.sortByExpert();
        ex.left = ex.entries;
        if (activeCount == 0) {
            sweepLayer = ex.layer;
            position = 0;
            visited = 0;
            inWave = 0;
            waveRows = 0;
        } else {
            if (visited > 0) {
                lateJoins.incrementAndGet();
            }
            for (int a = 0; a < activeCount; a++) {
                countMerged(active[a]);
            }
            countMerged(ex);
        }
        if (activeCount == active.length) {
            active = Arrays.copyOf(active, 2 * activeCount);
        }
        ex.inSweep = true;
        active[activeCount++] = ex;
        return 0;
    }

    private void countMerged(Exchange ex) {
        if (!ex.mergeCounted) {
            ex.mergeCounted = true;
            merged.incrementAndGet();
        }
    }

    /**
     * Takes an exchange out of the sweep without an answer (its attention worker is gone): its rows not yet computed
     * are not, its staged rows are not sent, and nobody is told. Does nothing for an exchange not in the sweep.
     */
    public void cancel(Exchange ex) {
        if (ex.inSweep) {
            ex.left = 0;
            ex.done = null;
            removeLeft();
        }
    }

    /**
     * Runs the sweep on to the end of its next wave (the next {@code waveExperts} experts with rows, or sooner where
     * an exchange has no rows left) and sends the wave's combines; exchanges that are done leave the sweep and their
     * {@link ExchangeDone} is told, after the sweep's state is consistent again (it may call {@link #cancel} or
     * {@link #join}).
     *
     * @return the number of combine waves sent
     */
    public int runWave() {
        if (activeCount == 0) {
            return 0;
        }
        long t0 = System.nanoTime();
        int sent = 0;
        try {
            sent = sweepOneWave();
        } catch (RuntimeException e) {
            for (int a = 0; a < activeCount; a++) {
                Exchange ex = active[a];
                if (ex.failure == null) {
                    ex.failure = e;
                }
                ex.left = 0;
            }
            waveRows = 0;
            inWave = 0;
        } finally {
            busyNanos.addAndGet(System.nanoTime() - t0);
        }
        removeLeft();
        notifyLeft();
        return sent;
    }

    private int sweepOneWave() {
        int layer = sweepLayer;
        int sent = 0;
        for (int step = 0; step < experts && activeCount > 0; step++) {
            visited++;
            int e = position;
            position = e + 1 == experts ? 0 : e + 1;
            int m = 0;
            for (int a = 0; a < activeCount; a++) {
                Exchange ex = active[a];
                if (ex.left > 0) {
                    m += ex.expertStart[e + 1] - ex.expertStart[e];
                }
            }
            if (m == 0) {
                continue;
            }
            ensureCompute(m);
            ensureWave(waveRows + m);
            int j = 0;
            for (int a = 0; a < activeCount; a++) {
                Exchange ex = active[a];
                if (ex.left > 0) {
                    for (int s = ex.expertStart[e], end = ex.expertStart[e + 1]; s < end; s++) {
                        int i = ex.sorted[s];
                        System.arraycopy(ex.x, ex.entryRow[i] * d, xs, j * d, d);
                        wt[j++] = ex.entryWeight[i];
                    }
                }
            }
            ExpertFfn.routed(kernels, c, weights.expert(layer, e), xs, m, wt, g, u, y);
            rowsComputed.addAndGet(layer * experts + e, m);
            expertCalls.incrementAndGet(layer * experts + e);
            j = 0;
            boolean someFinished = false;
            for (int a = 0; a < activeCount; a++) {
                Exchange ex = active[a];
                if (ex.left == 0) {
                    continue;
                }
                int from = ex.expertStart[e];
                int end = ex.expertStart[e + 1];
                for (int s = from; s < end; s++) {
                    int i = ex.sorted[s];
                    waveExchange[waveRows] = a;
                    waveToken[waveRows] = ex.tokenIndex[ex.entryRow[i]];
                    waveExpert[waveRows] = e;
                    waveSlot[waveRows] = ex.entrySlot[i];
                    toBf16(y, j++ * d, waveRows * 2 * d);
                    waveRows++;
                }
                ex.left -= end - from;
                someFinished |= end > from && ex.left == 0;
            }
            inWave++;
            if (inWave >= perWave) {
                for (int a = 0; a < activeCount; a++) {
                    sent += sendStaged(a);
                }
                inWave = 0;
                waveRows = 0;
                return sent;
            }
            if (someFinished) {
                // A finished exchange gets its last rows now, not with the wave's later experts.
                for (int a = 0; a < activeCount; a++) {
                    if (active[a].left == 0) {
                        sent += sendStaged(a);
                    }
                }
                if (allLeft()) {
                    inWave = 0;
                    waveRows = 0;
                    return sent;
                }
            }
        }
        return sent;
    }

    private boolean allLeft() {
        for (int a = 0; a < activeCount; a++) {
            if (active[a].left > 0) {
                return false;
            }
        }
        return true;
    }

    /** Sends active exchange a the rows staged for it (as one wave), if any, and marks them sent. */
    private int sendStaged(int a) {
        Exchange ex = active[a];
        int rows = 0;
        for (int w = 0; w < waveRows; w++) {
            rows += waveExchange[w] == a ? 1 : 0;
        }
        if (rows == 0) {
            return 0;
        }
        int sent = send(ex, ex.waves++, rows, a);
        for (int w = 0; w < waveRows; w++) {
            if (waveExchange[w] == a) {
                waveExchange[w] = -1;
            }
        }
        if (ex.failure != null) {
            ex.left = 0; // nothing more goes to it
        }
        return sent;
    }

    /** Moves the exchanges with no rows left from the active list to the done list, keeping the others' order. */
    private void removeLeft() {
        if (remap.length < activeCount) {
            remap = new int[active.length];
        }
        int kept = 0;
        for (int a = 0; a < activeCount; a++) {
            remap[a] = active[a].left > 0 ? kept++ : -1;
        }
        if (kept == activeCount) {
            return;
        }
        // Staged rows name active positions: renumber them; those of leaving exchanges were sent or are dropped.
        for (int w = 0; w < waveRows; w++) {
            int a = waveExchange[w];
            if (a >= 0) {
                waveExchange[w] = remap[a];
            }
        }
        for (int a = 0; a < activeCount; a++) {
            Exchange ex = active[a];
            if (remap[a] >= 0) {
                active[remap[a]] = ex;
                continue;
            }
            ex.inSweep = false;
            if (ex.done != null) {
                if (doneCount == doneList.length) {
                    doneList = Arrays.copyOf(doneList, 2 * doneCount);
                }
                doneList[doneCount++] = ex;
            } else {
                ex.out = null;
            }
        }
        Arrays.fill(active, kept, activeCount, null);
        activeCount = kept;
    }

    private void notifyLeft() {
        while (doneCount > 0) {
            Exchange ex = doneList[--doneCount];
            doneList[doneCount] = null;
            ExchangeDone done = ex.done;
            ex.done = null;
            ex.out = null;
            if (done != null) {
                done.exchangeDone(ex, ex.failure);
            }
        }
    }

    /**
     * One combine wave to {@code ex}: its {@code rows} rows among the staged ones marked for active position
     * {@code a} (none: the empty answer to an exchange without entries). Returns 1 if sent; a transport failure goes to
     * {@code ex.failure}.
     */
    private int send(Exchange ex, int wave, int rows, int a) {
        if (ex.failure != null) {
            return 0;
        }
        try {
            ex.out.begin(ex.epoch, ex.replySource, ex.step, ex.layer, ex.microBatch, wave, d, rows);
            for (int w = 0; w < waveRows && a >= 0; w++) {
                if (waveExchange[w] == a) {
                    ex.out.row(waveToken[w], waveExpert[w], waveSlot[w], staging, w * 2 * d);
                }
            }
            ex.out.end();
        } catch (TransportException e) {
            ex.failure = e;
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

    /** Room for {@code rows} staged rows, keeping those staged already. */
    private void ensureWave(int rows) {
        if (rows > waveCapacity) {
            int n = (int) Math.max(rows, Math.min((long) maxTokens * topK, 2L * waveCapacity));
            waveExchange = Arrays.copyOf(waveExchange, n);
            waveToken = Arrays.copyOf(waveToken, n);
            waveExpert = Arrays.copyOf(waveExpert, n);
            waveSlot = Arrays.copyOf(waveSlot, n);
            byte[] bytes = new byte[Math.multiplyExact(n, 2 * d)];
            staging.getBytes(0, bytes, 0, waveRows * 2 * d);
            staging.wrap(bytes);
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

    /** Exchanges that shared at least one expert's pass with another exchange of the same layer. */
    public long mergedExchanges() {
        return merged.get();
    }

    /** Exchanges that joined a sweep already under way (see {@link #join}). */
    public long lateJoins() {
        return lateJoins.get();
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
