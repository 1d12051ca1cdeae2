package io.epserve.attention;

import io.epserve.cluster.metrics.Metrics;
import io.epserve.cluster.metrics.NanosHistogram;
import io.epserve.cluster.metrics.ProcessMetrics;
import io.epserve.cluster.metrics.SingleWriterCounts;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.Transformer;
import io.epserve.transport.OfferCounters;
import io.prometheus.metrics.core.datapoints.CounterDataPoint;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.Gauge;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.IOException;
import java.util.List;
import java.util.function.IntSupplier;

/**
 * The attention worker's metrics. The engine thread's figures (steps, per-layer exchange latencies, per-expert
 * tokens, routed slots, bytes) are recorded where {@link StepStats} already records them, into single-writer
 * histograms and counters and pre-bound counter data points resolved once here: nothing is allocated per step, layer
 * or token. The engine thread's time split is read at scrape time from what {@link StepStats#publish} published
 * after the last step. Queue, KV and sequence gauges are read at scrape time from the scheduler's thread-safe fields.
 */
public final class AttentionMetrics implements AutoCloseable {
    private final ProcessMetrics process;
    private final PrometheusRegistry registry;
    private final int topK;
    private final long combineRowBytes;
    private final boolean remoteExperts;
    // Engine thread: steps.
    private final CounterDataPoint prefillSteps;
    private final CounterDataPoint decodeSteps;
    private final CounterDataPoint prefillTokens;
    private final CounterDataPoint decodeTokens;
    private final Counter failedSteps;
    private final NanosHistogram prefillStepTime;
    private final NanosHistogram decodeStepTime;
    // Engine thread: the scheduler admits generations there.
    private final NanosHistogram queueTime;
    // Engine thread: expert exchanges (remote experts only).
    private final NanosHistogram[] dispatch;
    private final NanosHistogram[] roundTrip;
    private final SingleWriterCounts expertTokens;
    private final Counter routedSlots;
    private final Counter dispatchBytes;
    private final Counter combineBytes;
    private final Gauge placementEpoch;

    AttentionMetrics(ModelConfig config, boolean remoteExperts) {
        this.process = ProcessMetrics.create("attention-worker");
        this.registry = process.registry();
        this.remoteExperts = remoteExperts;
        this.topK = config.nActivatedExperts();
        this.combineRowBytes = 2L * config.dim();
        PrometheusRegistry r = registry;
        Counter steps = Metrics.counter(r, Metrics.ATTENTION_STEPS, "Batched steps run, by kind (prefill: the step"
                + " holds a chunk of more than one token; decode: one token per sequence)", "kind");
        prefillSteps = steps.labelValues("prefill");
        decodeSteps = steps.labelValues("decode");
        Counter tokens = Metrics.counter(r, Metrics.ATTENTION_STEP_TOKENS, "Tokens computed by the steps, by kind",
                "kind");
        prefillTokens = tokens.labelValues("prefill");
        decodeTokens = tokens.labelValues("decode");
        failedSteps = Metrics.counter(r, Metrics.ATTENTION_FAILED_STEPS, "Steps that failed (expert workers lost or"
                + " late); their sequences were dropped");
        NanosHistogram.Family stepTime = NanosHistogram.Family.register(r, Metrics.ATTENTION_STEP_DURATION,
                "Wall time of a batched step, by kind", Metrics.LATENCY_SECONDS, "kind");
        prefillStepTime = stepTime.add("prefill");
        decodeStepTime = stepTime.add("decode");
        queueTime = NanosHistogram.Family.register(r, Metrics.ATTENTION_QUEUE, "Time a Generate request waited at"
                + " this worker, from its arrival to joining the running batch (the usage's queue_seconds)",
                Metrics.LATENCY_SECONDS).add();
        int layers = config.nLayers();
        String[] ids = SingleWriterCounts.ids(layers);
        dispatch = new NanosHistogram[remoteExperts ? layers : 0];
        roundTrip = new NanosHistogram[remoteExperts ? layers : 0];
        if (remoteExperts) {
            NanosHistogram.Family d = NanosHistogram.Family.register(r, Metrics.ATTENTION_DISPATCH, "Time to hand one"
                    + " micro-batch's dispatch of a layer to Aeron, by layer", Metrics.EXCHANGE_SECONDS, "layer");
            NanosHistogram.Family rt = NanosHistogram.Family.register(r, Metrics.ATTENTION_ROUND_TRIP, "From a"
                    + " micro-batch's dispatch of a layer to its last combine row, by layer", Metrics.EXCHANGE_SECONDS,
                    "layer");
            for (int l = 0; l < layers; l++) {
                dispatch[l] = d.add(ids[l]);
                roundTrip[l] = rt.add(ids[l]);
            }
            expertTokens = new SingleWriterCounts(layers, config.nRoutedExperts());
            expertTokens.register(r, Metrics.ATTENTION_EXPERT_TOKENS, "Tokens dispatched to each routed expert, by"
                    + " layer and expert (sum = tokens x top-k x layers)", "layer", "expert");
        } else {
            expertTokens = null;
        }
        routedSlots = Metrics.counter(r, Metrics.ATTENTION_ROUTED_SLOTS, "(token, expert) slots whose expert"
                + " outputs came back from expert workers");
        dispatchBytes = Metrics.counter(r, Metrics.ATTENTION_DISPATCH_BYTES, "Dispatch message bytes handed to Aeron");
        combineBytes = Metrics.counter(r, Metrics.ATTENTION_COMBINE_BYTES, "Expert output bytes received (bf16 rows)");
        placementEpoch = Gauge.builder().name(Metrics.ATTENTION_PLACEMENT_EPOCH)
                .help("Epoch of the expert placement table in use").register(r);
    }

    /** Gauges read at scrape time; the Aeron counters when the experts are remote (offers null: local experts). */
    void watch(GenerationScheduler generations, IntSupplier forwardSequences, OfferCounters offers) {
        PrometheusRegistry r = registry;
        Metrics.gauge(r, Metrics.ATTENTION_WAITING, "Generate requests waiting to join the batch",
                generations::waiting);
        Metrics.gauge(r, Metrics.ATTENTION_RUNNING, "Generate requests in the batch", generations::running);
        Metrics.gauge(r, Metrics.ATTENTION_SEQUENCES, "Sequences held (Forward/Decode sequences and running"
                + " generations)", () -> forwardSequences.getAsInt() + generations.running());
        Metrics.gauge(r, Metrics.ATTENTION_KV_RESERVED, "KV cache bytes reserved by running generations",
                generations::reservedBytes);
        Metrics.gauge(r, Metrics.ATTENTION_KV_BUDGET, "KV cache bytes generations may reserve (--kv-memory)",
                generations::budgetBytes);
        if (offers != null) {
            Metrics.offerFailures(r, offers::backPressured, offers::adminActions, offers::notConnected);
        }
    }

    /** Starts the endpoint (port -1: none). */
    void serve(String host, int port) throws IOException {
        process.serve(host, port);
    }

    /** The registry, for anything else this process wants to export. */
    public PrometheusRegistry registry() {
        return registry;
    }

    /** The endpoint's port, or -1 when not serving. */
    public int port() {
        return process.port();
    }

    String readySuffix() {
        return process.readySuffix();
    }

    /** The epoch of the placement table now in use (any thread). */
    public void placementEpoch(long epoch) {
        placementEpoch.set(epoch);
    }

    /**
     * Wraps a step engine so that its steps are counted and timed, attaches this to its {@link StepStats} and exports
     * their time split as {@value Metrics#ATTENTION_ENGINE_SECONDS}{part}.
     */
    StepEngine meter(StepEngine engine) {
        StepStats st = engine.stats();
        st.metrics = this;
        CounterWithCallback.builder().name(Metrics.ATTENTION_ENGINE_SECONDS).help("Seconds the engine thread spent in"
                + " steps (part step: their wall time), and in their parts: attention (and the rest of the dense"
                + " model), shared_expert, dispatch (handing dispatches to Aeron) and exposed_wait (waiting for"
                + " combines with nothing else to do)").labelNames("part").callback(cb -> {
                    cb.call(st.totalWallNs() / 1e9, "step");
                    cb.call(st.totalAttentionNs() / 1e9, "attention");
                    cb.call(st.totalSharedNs() / 1e9, "shared_expert");
                    cb.call(st.totalDispatchSendNs() / 1e9, "dispatch");
                    cb.call(st.totalWaitNs() / 1e9, "exposed_wait");
                }).register(registry);
        return new Metered(engine);
    }

    // ------------------------------------------------------------------------------------------ engine thread

    /** A Generate request joined the running batch ns after it arrived. */
    void queued(long ns) {
        queueTime.record(ns);
    }

    /** A micro-batch's dispatch of a layer went out: its send time, its tokens per expert, its bytes. */
    void dispatched(Transformer.Pass p, long ns, long bytes) {
        int layer = p.layer();
        if (layer < dispatch.length) {
            dispatch[layer].record(ns);
        }
        if (expertTokens != null && layer < expertTokens.rows()) {
            int[] experts = p.routing().experts();
            int slots = p.tokens() * topK;
            for (int i = 0; i < slots; i++) {
                expertTokens.add(layer, experts[i], 1);
            }
        }
        if (bytes > 0) {
            dispatchBytes.inc(bytes);
        }
    }

    /** A micro-batch's exchange of a layer completed: every (token, slot) of its tokens came back. */
    void combined(int layer, long ns, int tokens) {
        if (layer < roundTrip.length) {
            roundTrip[layer].record(ns);
        }
        long slots = (long) tokens * topK;
        routedSlots.inc(slots);
        combineBytes.inc(slots * combineRowBytes);
    }

    @Override
    public void close() {
        process.close();
    }

    /** Counts and times the steps of the engine it wraps; everything else is the engine's. */
    private final class Metered implements StepEngine {
        private final StepEngine engine;

        Metered(StepEngine engine) {
            this.engine = engine;
        }

        @Override
        public Transformer transformer() {
            return engine.transformer();
        }

        @Override
        public Transformer.Output step(List<Transformer.Chunk> chunks, boolean allLogits, int microBatches) {
            int tokens = tokens(chunks);
            boolean prefill = tokens > chunks.size();
            long t0 = System.nanoTime();
            Transformer.Output out;
            try {
                out = engine.step(chunks, allLogits, microBatches);
            } catch (RuntimeException e) {
                failedSteps.inc();
                throw e;
            } finally {
                engine.stats().publish();
            }
            countStep(prefill, tokens, System.nanoTime() - t0);
            return out;
        }

        /** The chunks' tokens; a step is a prefill when they outnumber the chunks (a chunk holds at least one). */
        private static int tokens(List<Transformer.Chunk> chunks) {
            int n = 0;
            for (int i = 0; i < chunks.size(); i++) {
                n += chunks.get(i).tokens().length;
            }
            return n;
        }

        private void countStep(boolean prefill, int tokens, long ns) {
            if (prefill) {
                prefillSteps.inc();
                prefillTokens.inc(tokens);
                prefillStepTime.record(ns);
            } else {
                decodeSteps.inc();
                decodeTokens.inc(tokens);
                decodeStepTime.record(ns);
            }
        }

        /** Each lane's pass counts as a step here: its time is from its start to its end (its tokens' latency). */
        @Override
        public void pipeline(int lanes, boolean allLogits, Lanes feed) {
            long[] started = new long[lanes];
            int[] tokens = new int[lanes];
            boolean[] prefill = new boolean[lanes];
            long failed = engine.failedSteps();
            try {
                engine.pipeline(lanes, allLogits, (lane, out) -> {
                    if (out != null) {
                        long ns = System.nanoTime() - started[lane];
                        countStep(prefill[lane], tokens[lane], ns);
                        engine.stats().publish();
                    }
                    List<Transformer.Chunk> next = feed.next(lane, out);
                    tokens[lane] = tokens(next);
                    prefill[lane] = tokens[lane] > next.size();
                    started[lane] = System.nanoTime();
                    return next;
                });
            } catch (RuntimeException e) {
                failedSteps.inc(Math.max(1, engine.failedSteps() - failed));
                throw e;
            } finally {
                engine.stats().publish();
            }
        }

        @Override
        public int microBatches() {
            return engine.microBatches();
        }

        @Override
        public StepStats stats() {
            return engine.stats();
        }

        @Override
        public long steps() {
            return engine.steps();
        }

        @Override
        public long failedSteps() {
            return engine.failedSteps();
        }

        @Override
        public long failovers() {
            return engine.failovers();
        }
    }
}
