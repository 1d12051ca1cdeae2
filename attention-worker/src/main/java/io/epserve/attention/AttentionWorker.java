package io.epserve.attention;

import com.google.protobuf.ByteString;
import io.epserve.cluster.ClusterNode;
import io.epserve.cluster.ControlPlane;
import io.epserve.cluster.Fingerprint;
import io.epserve.cluster.metrics.ProcessMetrics;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.Sampler;
import io.epserve.model.engine.SequenceCache;
import io.epserve.model.engine.Transformer;
import io.epserve.model.kernel.KernelSets;
import io.epserve.model.kernel.Kernels;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.weights.ModelWeights;
import io.epserve.proto.worker.v1.AttentionWorkerGrpc;
import io.epserve.proto.worker.v1.Chunk;
import io.epserve.proto.worker.v1.DecodeRequest;
import io.epserve.proto.worker.v1.DecodeResponse;
import io.epserve.proto.worker.v1.ExpertWorkerStatus;
import io.epserve.proto.worker.v1.ForwardRequest;
import io.epserve.proto.worker.v1.ForwardResponse;
import io.epserve.proto.worker.v1.GenerateEvent;
import io.epserve.proto.worker.v1.GenerateRequest;
import io.epserve.proto.worker.v1.Generated;
import io.epserve.proto.worker.v1.Logits;
import io.epserve.proto.worker.v1.ReleaseRequest;
import io.epserve.proto.worker.v1.ReleaseResponse;
import io.epserve.proto.worker.v1.StatusRequest;
import io.epserve.proto.worker.v1.StatusResponse;
import io.epserve.transport.Channels;
import io.epserve.transport.IdleStrategies;
import io.epserve.transport.MediaDriverHandle;
import io.grpc.Context;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.Callable;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * The attention worker: owns sequences and their caches, maps every weight except the routed experts, and runs
 * steps with {@link MicroBatchEngine} against its expert workers. Requests arrive over gRPC (epserve.worker.v1) and
 * run one at a time on the engine thread, queued up to a bound (beyond it: RESOURCE_EXHAUSTED).
 */
public final class AttentionWorker implements AutoCloseable {
    /** Settings; every setter returns this. */
    public static final class Options {
        Path model;
        String listen;
        final List<String> expertWorkers = new ArrayList<>();
        String aeronDir;
        String externalDriver;
        String kernels = "exact";
        int threads = Math.max(1, Runtime.getRuntime().availableProcessors());
        int microBatches = 2;
        int workerId = 0;
        String host = "127.0.0.1";
        int port = 0;
        long expertTimeoutMs = 10_000;
        long connectTimeoutMs = 30_000;
        long sendTimeoutMs = 5_000;
        int maxSequences = 256;
        int maxQueuedRequests = 64;
        int maxWaitingGenerations = 256;
        int maxStepTokens = 512;
        /** Bytes of KV cache the running generations may reserve; default half the heap. */
        long kvMemoryBytes = Runtime.getRuntime().maxMemory() / 2;
        long drainTimeoutMs = 30_000;
        boolean localExperts;
        ControlPlane.Settings controlPlane;
        String advertiseHost;
        long failoverTimeoutMs = 30_000;
        int loadWindowSeconds = 60;
        String idle = "backoff";
        Consumer<String> log = s -> { };
        int metricsPort = ProcessMetrics.OFF;
        String metricsHost = "127.0.0.1";

        public Options model(Path v) { model = v; return this; }
        public Options listen(String v) { listen = v; return this; }
        public Options expertWorker(String v) { expertWorkers.add(v); return this; }
        public Options expertWorkers(List<String> v) { expertWorkers.addAll(v); return this; }
        public Options aeronDir(String v) { aeronDir = v; return this; }
        public Options externalDriver(String v) { externalDriver = v; return this; }
        public Options kernels(String v) { kernels = v; return this; }
        public Options threads(int v) { threads = v; return this; }
        public Options microBatches(int v) { microBatches = v; return this; }
        public Options workerId(int v) { workerId = v; return this; }
        public Options host(String v) { host = v; return this; }
        public Options port(int v) { port = v; return this; }
        public Options expertTimeoutMs(long v) { expertTimeoutMs = v; return this; }
        public Options connectTimeoutMs(long v) { connectTimeoutMs = v; return this; }
        public Options sendTimeoutMs(long v) { sendTimeoutMs = v; return this; }
        public Options maxSequences(int v) { maxSequences = v; return this; }
        public Options maxQueuedRequests(int v) { maxQueuedRequests = v; return this; }
        public Options maxWaitingGenerations(int v) { maxWaitingGenerations = v; return this; }
        public Options maxStepTokens(int v) { maxStepTokens = v; return this; }
        public Options kvMemoryBytes(long v) { kvMemoryBytes = v; return this; }
        public Options drainTimeoutMs(long v) { drainTimeoutMs = v; return this; }
        /** Every routed expert in this process, no expert workers, no Aeron (`epserve up --single-process`). */
        public Options localExperts(boolean v) { localExperts = v; return this; }
        /** Join the cluster: expert workers and the placement come from the control plane (no --expert-workers). */
        public Options controlPlane(ControlPlane.Settings v) { controlPlane = v; return this; }
        /** The host the router is told to reach the gRPC port at (default: --host). */
        public Options advertiseHost(String v) { advertiseHost = v; return this; }
        /** With the control plane: how long a step that lost an expert worker waits for the experts' new owners. */
        public Options failoverTimeoutMs(long v) { failoverTimeoutMs = v; return this; }
        /** With the control plane: the sliding window of routed-token counts reported for EPLB. */
        public Options loadWindowSeconds(int v) { loadWindowSeconds = v; return this; }
        public Options idle(String v) { idle = v; return this; }
        public Options log(Consumer<String> v) { log = v; return this; }
        /** Port of the Prometheus endpoint (0: any free port; -1, the default: none). */
        public Options metricsPort(int v) { metricsPort = v; return this; }
        public Options metricsHost(String v) { metricsHost = v; return this; }

        /** Throws IllegalArgumentException naming the first bad setting. */
        public void validate() {
            if (model == null) {
                throw new IllegalArgumentException("--model is required");
            }
            if (localExperts) {
                if (!expertWorkers.isEmpty() || controlPlane != null) {
                    throw new IllegalArgumentException("local experts exclude --expert-workers and a cluster");
                }
            } else {
                if (listen == null) {
                    throw new IllegalArgumentException("--listen (this worker's combine inbox) is required");
                }
                Channels.ofEndpoint(listen);
                if (controlPlane != null) {
                    if (!expertWorkers.isEmpty()) {
                        throw new IllegalArgumentException("in a cluster (--cluster-members) the expert workers come"
                                + " from the control plane: leave out --expert-workers");
                    }
                    controlPlane.validate();
                    if (failoverTimeoutMs <= 0 || loadWindowSeconds < 1) {
                        throw new IllegalArgumentException("--failover-timeout-ms and --load-window-s must be positive");
                    }
                } else if (expertWorkers.isEmpty()) {
                    throw new IllegalArgumentException("--expert-workers: at least one expert worker endpoint is"
                            + " required (or join a cluster with --cluster-members)");
                }
                for (String ep : expertWorkers) {
                    Channels.ofEndpoint(ep);
                }
            }
            if (!KernelSets.NAMES.contains(kernels)) {
                throw new IllegalArgumentException("--kernels must be one of " + KernelSets.NAMES + ", got " + kernels);
            }
            if (threads < 1) {
                throw new IllegalArgumentException("--threads must be at least 1, got " + threads);
            }
            if (microBatches < 1 || microBatches > 4) {
                throw new IllegalArgumentException("--micro-batches must be 1..4, got " + microBatches);
            }
            if (workerId < 0 || workerId > 0xFFFF) {
                throw new IllegalArgumentException("--worker-id must be in 0..65535, got " + workerId);
            }
            if (port < 0 || port > 65535) {
                throw new IllegalArgumentException("--port must be in 0..65535, got " + port);
            }
            if (expertTimeoutMs <= 0 || connectTimeoutMs <= 0 || sendTimeoutMs <= 0) {
                throw new IllegalArgumentException("timeouts must be positive");
            }
            if (maxSequences < 1 || maxQueuedRequests < 1 || maxWaitingGenerations < 1) {
                throw new IllegalArgumentException("--max-sequences, --max-queued-requests and --max-waiting must be positive");
            }
            if (maxStepTokens < 1 || kvMemoryBytes < 1 || drainTimeoutMs < 0) {
                throw new IllegalArgumentException("--max-step-tokens and --kv-memory must be positive");
            }
            if (aeronDir != null && externalDriver != null) {
                throw new IllegalArgumentException("--aeron-dir and --external-driver exclude each other");
            }
            IdleStrategies.of(idle);
            ProcessMetrics.validatePort(metricsPort);
        }
    }

    public static Options options() {
        return new Options();
    }

    private final Options o;
    private final ModelConfig config;
    private final String fingerprint;
    private final Checkpoint checkpoint;
    private final Kernels kernels;
    private final MediaDriverHandle driver;
    private final ExpertClient experts;
    private final AttentionMembership membership;
    private final StepEngine engine;
    private final ThreadPoolExecutor engineThread;
    private final AtomicInteger queuedRequests = new AtomicInteger();
    private final GenerationScheduler generations;
    private final Map<String, SequenceCache> sequences = new LinkedHashMap<>();
    private final HealthStatusManager health = new HealthStatusManager();
    private final Server server;
    private final AttentionMetrics metrics;
    /** sequences.size() as of the engine thread's last request, for the metrics. */
    private volatile int sequencesHeld;
    /** Positions cached by the Forward/Decode API's sequences, as of the last engine task (for Status). */
    private volatile long cachedTokens;

    private AttentionWorker(Options o) throws IOException {
        this.o = o;
        this.config = ModelConfig.load(o.model);
        // Workers exchange activations only within one checkpoint: config and weights.
        this.fingerprint = Fingerprint.checkpoint(o.model);
        this.metrics = new AttentionMetrics(config, !o.localExperts);
        // Everything but the routed experts: of a sharded checkpoint, shards holding only experts are not mapped.
        Checkpoint ck = o.localExperts ? Checkpoint.open(o.model)
                : Checkpoint.open(o.model, name -> !name.contains(".ffn.experts."));
        Kernels k = null;
        MediaDriverHandle d = null;
        ExpertClient ec = null;
        AttentionMembership am = null;
        ThreadPoolExecutor ex = null;
        try {
            ModelWeights w = new ModelWeights(config, ck,
                    o.localExperts ? ModelWeights.ExpertFilter.ALL : ModelWeights.ExpertFilter.NONE);
            k = KernelSets.create(o.kernels, o.threads);
            Transformer tr = new Transformer(w, k);
            if (o.localExperts) {
                this.engine = metrics.meter(new LocalStepEngine(tr));
            } else {
                d = o.externalDriver != null ? MediaDriverHandle.attach(o.externalDriver)
                        : MediaDriverHandle.launchEmbedded(o.aeronDir != null
                                ? MediaDriverHandle.options().directory(o.aeronDir)
                                : MediaDriverHandle.options().name("attention-" + o.workerId));
                ec = new ExpertClient(config, o.workerId, fingerprint, d, o.expertWorkers, o.controlPlane != null,
                        o.listen, advertisedInbox(o), Channels.DISPATCH_STREAM, Channels.COMBINE_STREAM,
                        TimeUnit.MILLISECONDS.toNanos(o.sendTimeoutMs), o.log);
                if (o.controlPlane != null) {
                    String inbox = advertisedInbox(o) != null ? advertisedInbox(o) : o.listen;
                    am = AttentionMembership.join(o.controlPlane, ClusterNode.ModelIdentity.of(
                                    Fingerprint.model(o.model), config).withCheckpoint(fingerprint),
                            ec, o.workerId, inbox, o.loadWindowSeconds, this::gauges, metrics::placementEpoch,
                            this::switchWhenIdle,
                            m -> o.log.accept("attention-worker " + o.workerId + ": " + m));
                }
                ec.connect(TimeUnit.MILLISECONDS.toNanos(o.connectTimeoutMs));
                this.engine = metrics.meter(new MicroBatchEngine(tr, ec, o.microBatches,
                        TimeUnit.MILLISECONDS.toNanos(o.expertTimeoutMs), IdleStrategies.of(o.idle), o.workerId,
                        TimeUnit.MILLISECONDS.toNanos(o.failoverTimeoutMs),
                        m -> o.log.accept("attention-worker " + o.workerId + ": " + m)));
            }
            // Unbounded queue: requests are bounded by queuedRequests (--max-queued-requests), generation steps by the
            // scheduler (at most one queued), so a step can always re-queue itself.
            ex = new ThreadPoolExecutor(1, 1, 0, TimeUnit.MILLISECONDS, new LinkedBlockingQueue<>(),
                    r -> {
                        Thread t = new Thread(r, "epserve-attention-engine");
                        t.setDaemon(true);
                        return t;
                    });
            ThreadPoolExecutor engineEx = ex;
            // The generations' lanes give way to the worker's other requests, and stop when the worker does.
            this.generations = new GenerationScheduler(engine, ex, o.maxWaitingGenerations, o.maxStepTokens,
                    o.kvMemoryBytes, o.maxSequences, sequences::size, metrics::queued,
                    () -> engineEx.isShutdown() || !engineEx.getQueue().isEmpty(), o.log);
            metrics.watch(generations, () -> sequencesHeld, d == null ? null : d.offerCounters());
            metrics.serve(o.metricsHost, o.metricsPort);
            this.server = NettyServerBuilder.forAddress(new InetSocketAddress(o.host, o.port))
                    .addService(new Service())
                    .addService(health.getHealthService())
                    .addService(ProtoReflectionServiceV1.newInstance())
                    .maxInboundMessageSize(256 << 20)
                    .build()
                    .start();
        } catch (IOException | RuntimeException e) {
            metrics.close();
            if (ex != null) {
                ex.shutdownNow();
            }
            if (am != null) {
                am.close();
            }
            if (ec != null) {
                ec.close();
            }
            if (d != null) {
                d.close();
            }
            if (k != null) {
                k.close();
            }
            ck.close();
            throw e;
        }
        this.checkpoint = ck;
        this.kernels = k;
        this.driver = d;
        this.experts = ec;
        this.membership = am;
        this.engineThread = ex;
        health.setStatus("", io.grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING);
        health.setStatus(AttentionWorkerGrpc.SERVICE_NAME, io.grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING);
        if (am != null) {
            am.ready((o.advertiseHost != null ? o.advertiseHost : o.host) + ":" + server.getPort());
        }
    }

    private final java.util.concurrent.atomic.AtomicBoolean switchQueued =
            new java.util.concurrent.atomic.AtomicBoolean();

    /**
     * Membership thread, after each look at the cluster: with a newer table waiting and no step to switch at (an idle
     * worker), a short task on the engine thread, between steps like any, connects to new expert workers and
     * switches. Expert workers unmap old experts, and drained ones leave, only once every attention worker switched.
     */
    private void switchWhenIdle() {
        ExpertClient ec = experts;
        ThreadPoolExecutor engine = engineThread;
        if (ec == null || engine == null || !ec.newerTableOffered() || !switchQueued.compareAndSet(false, true)) {
            return;
        }
        try {
            engine.execute(() -> {
                try {
                    long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(20);
                    do {
                        ec.poll();
                        if (ec.refresh(true)) {
                            break;
                        }
                    } while (System.nanoTime() < until);
                } finally {
                    switchQueued.set(false);
                }
            });
        } catch (RejectedExecutionException e) {
            switchQueued.set(false);
        }
    }

    /**
     * With --advertise-host and a HOST:PORT inbox listening on all interfaces (say 0.0.0.0:40100 in a pod): the same
     * port at the advertised host, which expert workers can reach; else null (the inbox as given).
     */
    static String advertisedInbox(Options o) {
        if (o.advertiseHost == null || o.listen == null || o.listen.startsWith("aeron:") || o.listen.equals("ipc")) {
            return null;
        }
        int colon = o.listen.lastIndexOf(':');
        return colon < 0 ? null : o.advertiseHost + o.listen.substring(colon);
    }

    /** The operator's numbers, announced in the cluster (membership thread: only racy reads of engine counters). */
    private Map<String, Long> gauges() {
        Map<String, Long> g = new LinkedHashMap<>();
        GenerationScheduler gen = generations;
        if (gen != null) {
            g.put("waiting", (long) gen.waiting());
            g.put("running", (long) gen.running());
            g.put("kv_reserved_bytes", gen.reservedBytes());
            g.put("kv_budget_bytes", gen.budgetBytes());
        }
        StepEngine e = engine;
        if (e != null) {
            g.put("steps", e.steps());
            g.put("failed_steps", e.failedSteps());
            g.put("failovers", e.failovers());
        }
        g.put("queued_requests", (long) queuedRequests.get());
        int metricsPort = metrics.port();
        if (metricsPort >= 0) {
            g.put(io.epserve.cluster.MemberInfo.METRICS_PORT, (long) metricsPort);
        }
        return g;
    }

    /** Loads the model, starts the media driver, connects to every expert worker, then serves gRPC. */
    public static AttentionWorker start(Options o) throws IOException {
        o.validate();
        return new AttentionWorker(o);
    }

    public int port() {
        return server.getPort();
    }

    public int workerId() {
        return o.workerId;
    }

    public String readyLine() {
        if (experts == null) {
            return String.format(Locale.ROOT, "attention-worker %d ready: model %s (%s), kernels %s x%d, %s, every"
                            + " expert in this process; grpc %s:%d; pid %d", o.workerId, o.model,
                    fingerprint.substring(0, Math.min(19, fingerprint.length())), kernels.name(), o.threads,
                    checkpoint.memoryDescription(), o.host, port(), ProcessHandle.current().pid())
                    + metrics.readySuffix();
        }
        StringBuilder ew = new StringBuilder();
        for (ExpertLink l : List.copyOf(experts.links())) {
            if (l.lost == null && l.placement != null) {
                ew.append(ew.isEmpty() ? "" : ", ").append(l.workerId).append('@').append(l.endpoint).append(" [")
                        .append(l.placement.canonical()).append(']');
            }
        }
        return String.format(Locale.ROOT, "attention-worker %d ready: model %s (%s), kernels %s x%d, %s, %d "
                        + "micro-batch%s; grpc %s:%d; combine inbox %s; expert workers %s; aeron dir %s (%s driver); "
                        + "pid %d",
                o.workerId, o.model, fingerprint.substring(0, Math.min(19, fingerprint.length())), kernels.name(),
                o.threads, checkpoint.memoryDescription(), o.microBatches, o.microBatches == 1 ? "" : "es", o.host,
                port(), experts.inboxChannel(), ew,
                driver.aeronDirectoryName(), driver.isEmbedded() ? "embedded" : "external",
                ProcessHandle.current().pid()) + (membership == null ? "" : "; " + membership.describe()
                + ", placement epoch " + experts.epoch()) + metrics.readySuffix();
    }

    /**
     * Calls {@code listener} once, from another thread, if this worker's Aeron client closes by itself (the reason
     * says why: see {@link MediaDriverHandle}): it can never reach an expert worker again, so the process should stop.
     * Never called for a worker with every expert in-process.
     */
    public void onTransportLoss(java.util.function.Consumer<String> listener) {
        if (driver != null) {
            driver.onLoss(listener);
        }
    }

    /** This worker's metrics (its registry, the placement epoch gauge; the endpoint when --metrics-port was given). */
    public AttentionMetrics metrics() {
        return metrics;
    }

    /** Stops accepting requests, lets the running one finish (bounded), says GOODBYE, closes everything. */
    @Override
    public void close() {
        if (membership != null) {
            try {
                membership.node().update(i -> i.withState(io.epserve.cluster.MemberInfo.DRAINING));
            } catch (RuntimeException e) {
                // leaving anyway
            }
        }
        health.enterTerminalState();
        // Running generations finish (bounded by --drain-timeout-ms); new ones are refused meanwhile.
        generations.drain();
        long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(o.drainTimeoutMs);
        while (!generations.idle() && System.nanoTime() < until) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        server.shutdown();
        engineThread.shutdown();
        try {
            if (!engineThread.awaitTermination(o.expertTimeoutMs + 5_000, TimeUnit.MILLISECONDS)) {
                engineThread.shutdownNow();
            }
            if (!server.awaitTermination(2, TimeUnit.SECONDS)) {
                server.shutdownNow();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            engineThread.shutdownNow();
            server.shutdownNow();
        }
        if (membership != null) {
            membership.close();
        }
        if (experts != null) {
            experts.close();
            driver.close();
        }
        kernels.close();
        checkpoint.close();
        metrics.close();
    }

    // ------------------------------------------------------------------------------------------ engine-thread work

    private ForwardResponse forward(ForwardRequest req) {
        List<Transformer.Chunk> chunks = chunksOf(req.getChunksList(), true);
        Transformer.Output out = step(chunks, req.getAllLogits(), req.getChunksList());
        int vocab = config.vocabSize();
        ForwardResponse.Builder b = ForwardResponse.newBuilder().setVocabSize(vocab);
        ByteBuffer buf = ByteBuffer.allocate(0).order(ByteOrder.LITTLE_ENDIAN);
        int row = 0;
        for (Chunk c : req.getChunksList()) {
            int rows = req.getAllLogits() ? c.getTokensCount() : 1;
            if (buf.capacity() < rows * vocab * 4) {
                buf = ByteBuffer.allocate(rows * vocab * 4).order(ByteOrder.LITTLE_ENDIAN);
            }
            buf.clear();
            buf.asFloatBuffer().put(out.logits(), row * vocab, rows * vocab);
            b.addLogits(Logits.newBuilder().setSequenceId(c.getSequenceId()).setRows(rows)
                    .setValues(ByteString.copyFrom(buf.array(), 0, rows * vocab * 4)));
            row += rows;
        }
        return b.build();
    }

    private DecodeResponse decode(DecodeRequest req) {
        if (req.getSteps() < 0) {
            throw Status.INVALID_ARGUMENT.withDescription("steps must be non-negative, got " + req.getSteps()).asRuntimeException();
        }
        if (req.getMicroBatches() < 0 || req.getMicroBatches() > MicroBatchEngine.MAX_MICRO_BATCHES) {
            throw Status.INVALID_ARGUMENT.withDescription("micro_batches must be 0 (this worker's "
                    + engine.microBatches() + ") or 1.." + MicroBatchEngine.MAX_MICRO_BATCHES + ", got "
                    + req.getMicroBatches()).asRuntimeException();
        }
        // With the experts in this process there is nothing to overlap: one micro-batch.
        int m = experts == null ? 1 : req.getMicroBatches() == 0 ? engine.microBatches() : req.getMicroBatches();
        for (Chunk c : req.getPromptsList()) {
            if (sequences.containsKey(c.getSequenceId())) {
                throw Status.ALREADY_EXISTS.withDescription("sequence '" + c.getSequenceId() + "' is in use").asRuntimeException();
            }
        }
        List<Transformer.Chunk> chunks = chunksOf(req.getPromptsList(), true);
        int n = chunks.size();
        int vocab = config.vocabSize();
        int[][] generated = new int[n][req.getSteps() + 1];
        try {
            Transformer.Output out = step(chunks, false, req.getPromptsList(), m);
            for (int i = 0; i < n; i++) {
                generated[i][0] = Sampler.argmax(out.logits(), i * vocab, vocab);
            }
            engine.stats().reset();
            long c0 = experts == null ? 0 : experts.combineBytes;
            long r0 = experts == null ? 0 : experts.routedSlots;
            if (req.getLockstep() || m == 1) {
                for (int s = 0; s < req.getSteps(); s++) {
                    List<Transformer.Chunk> next = new ArrayList<>(n);
                    for (int i = 0; i < n; i++) {
                        next.add(new Transformer.Chunk(chunks.get(i).cache(), new int[] {generated[i][s]}));
                    }
                    out = step(next, false, req.getPromptsList(), m);
                    for (int i = 0; i < n; i++) {
                        generated[i][s + 1] = Sampler.argmax(out.logits(), i * vocab, vocab);
                    }
                }
            } else if (req.getSteps() > 0) {
                decodeInLanes(chunks, generated, req.getSteps(), m, req.getPromptsList());
            }
            StepStats st = engine.stats();
            st.combineBytes = experts == null ? 0 : experts.combineBytes - c0;
            st.routedSlots = experts == null ? 0 : experts.routedSlots - r0;
            DecodeResponse.Builder b = DecodeResponse.newBuilder().setTiming(st.toProto(m));
            for (int i = 0; i < n; i++) {
                Generated.Builder g = Generated.newBuilder().setSequenceId(req.getPrompts(i).getSequenceId());
                for (int t : generated[i]) {
                    g.addTokens(t);
                }
                b.addSequences(g);
            }
            return b.build();
        } finally {
            if (req.getRelease()) {
                for (Chunk c : req.getPromptsList()) {
                    sequences.remove(c.getSequenceId());
                }
            }
        }
    }

    /**
     * The decode steps of {@link #decode} as a {@link StepEngine#pipeline}: the sequences cut into up to m lanes
     * (contiguous, as micro-batches are), each lane taking its next step as soon as its own is done.
     */
    private void decodeInLanes(List<Transformer.Chunk> chunks, int[][] generated, int steps, int m, List<Chunk> named) {
        List<List<Transformer.Chunk>> groups = MicroBatchEngine.split(chunks, m);
        int[] firstOf = new int[groups.size()];
        for (int g = 1; g < groups.size(); g++) {
            firstOf[g] = firstOf[g - 1] + groups.get(g - 1).size();
        }
        int[] done = new int[groups.size()];
        int vocab = config.vocabSize();
        runMapped(named, () -> engine.pipeline(groups.size(), false, (lane, out) -> {
            List<Transformer.Chunk> group = groups.get(lane);
            int s = done[lane];
            if (out != null) {
                for (int j = 0; j < group.size(); j++) {
                    generated[firstOf[lane] + j][s + 1] = Sampler.argmax(out.logits(), j * vocab, vocab);
                }
                s = ++done[lane];
            }
            if (s == steps) {
                return List.of();
            }
            List<Transformer.Chunk> next = new ArrayList<>(group.size());
            for (int j = 0; j < group.size(); j++) {
                next.add(new Transformer.Chunk(group.get(j).cache(), new int[] {generated[firstOf[lane] + j][s]}));
            }
            return next;
        }));
    }

    /** Runs one step; on failure drops the step's sequences (their caches hold part of it) and maps the error. */
    private Transformer.Output step(List<Transformer.Chunk> chunks, boolean allLogits, List<Chunk> named) {
        return step(chunks, allLogits, named, engine.microBatches());
    }

    /** {@link #step}, cut into {@code microBatches} micro-batches (where the experts are remote). */
    private Transformer.Output step(List<Transformer.Chunk> chunks, boolean allLogits, List<Chunk> named,
                                    int microBatches) {
        Transformer.Output[] out = new Transformer.Output[1];
        runMapped(named, () -> out[0] = engine.step(chunks, allLogits, microBatches));
        return out[0];
    }

    /** Runs engine work on the named sequences; on failure drops them (their caches hold part of it), maps the error. */
    private void runMapped(List<Chunk> named, Runnable work) {
        try {
            work.run();
        } catch (ExpertsUnavailableException e) {
            Set<String> dropped = new HashSet<>();
            for (Chunk c : named) {
                if (sequences.remove(c.getSequenceId()) != null) {
                    dropped.add(c.getSequenceId());
                }
            }
            o.log.accept("attention-worker " + o.workerId + ": " + e.getMessage() + "; dropped sequences " + dropped);
            String msg = e.getMessage() + " (sequences " + dropped + " were dropped: submit them again from their first token)";
            throw (e.isTimeout() ? Status.DEADLINE_EXCEEDED : Status.UNAVAILABLE).withDescription(msg).asRuntimeException();
        }
    }

    /** Validates the chunks and binds them to sequences (creating new ones when allowed). */
    private List<Transformer.Chunk> chunksOf(List<Chunk> list, boolean create) {
        if (list.isEmpty()) {
            throw invalid("no chunks");
        }
        Set<String> seen = new HashSet<>();
        int fresh = 0;
        for (Chunk c : list) {
            String id = c.getSequenceId();
            if (id.isEmpty()) {
                throw invalid("a chunk has no sequence_id");
            }
            if (!seen.add(id)) {
                throw invalid("sequence '" + id + "' appears twice in one step");
            }
            if (c.getTokensCount() == 0) {
                throw invalid("sequence '" + id + "': no tokens");
            }
            for (int t : c.getTokensList()) {
                if (t < 0 || t >= config.vocabSize()) {
                    throw invalid("sequence '" + id + "': token id " + t + " outside the vocabulary [0, "
                            + config.vocabSize() + ")");
                }
            }
            SequenceCache s = sequences.get(id);
            long length = s == null ? 0 : s.length();
            if (length + c.getTokensCount() > config.maxPositionEmbeddings()) {
                throw Status.OUT_OF_RANGE.withDescription("sequence '" + id + "' would reach " + (length + c.getTokensCount())
                        + " tokens, beyond the context of " + config.maxPositionEmbeddings()).asRuntimeException();
            }
            if (s == null) {
                fresh++;
            }
        }
        int held = sequences.size() + generations.running();
        if (fresh > 0 && (!create || held + fresh > o.maxSequences)) {
            throw Status.RESOURCE_EXHAUSTED.withDescription("this attention worker holds " + held
                    + " sequences; " + fresh + " more would pass its limit of " + o.maxSequences).asRuntimeException();
        }
        List<Transformer.Chunk> chunks = new ArrayList<>(list.size());
        for (Chunk c : list) {
            SequenceCache s = sequences.computeIfAbsent(c.getSequenceId(),
                    id -> engine.transformer().newSequence(config.maxPositionEmbeddings()));
            int[] tokens = new int[c.getTokensCount()];
            for (int i = 0; i < tokens.length; i++) {
                tokens[i] = c.getTokens(i);
            }
            chunks.add(new Transformer.Chunk(s, tokens));
        }
        return chunks;
    }

    private static StatusRuntimeException invalid(String why) {
        return Status.INVALID_ARGUMENT.withDescription(why).asRuntimeException();
    }

    private ReleaseResponse release(ReleaseRequest req) {
        int n = 0;
        for (String id : req.getSequenceIdsList()) {
            if (sequences.remove(id) != null) {
                n++;
            }
        }
        return ReleaseResponse.newBuilder().setReleased(n).build();
    }

    /**
     * Answered on the gRPC thread, from values the engine thread publishes: the router polls every 250 ms and must
     * not wait behind steps (a busy worker would look unreachable).
     */
    private StatusResponse status() {
        StatusResponse.Builder b = StatusResponse.newBuilder()
                .setWorkerId(o.workerId)
                .setModelFingerprint(fingerprint)
                .setSequences(sequencesHeld)
                .setCachedTokens(cachedTokens)
                .setSteps(engine.steps())
                .setFailedSteps(engine.failedSteps())
                .setStaleCombines(experts == null ? 0 : experts.staleCombines)
                .setMicroBatches(engine.microBatches())
                .setKernels(kernels.name())
                .setRoutedSlots(experts == null ? 0 : experts.routedSlots)
                .setWaitingRequests(generations.waiting())
                .setRunningRequests(generations.running())
                .setKvReservedBytes(generations.reservedBytes())
                .setKvBudgetBytes(generations.budgetBytes());
        for (ExpertLink l : experts == null ? List.<ExpertLink>of() : experts.links()) {
            b.addExpertWorkers(ExpertWorkerStatus.newBuilder().setWorkerId(l.workerId).setChannel(l.channel)
                    .setPlacement(l.placement == null ? "" : l.placement.canonical())
                    .setConnected(l.lost == null && l.sender.isConnected()));
        }
        return b.build();
    }

    // ------------------------------------------------------------------------------------------ gRPC

    private <T> void run(StreamObserver<T> obs, String what, Callable<T> work) {
        Context ctx = Context.current();
        if (queuedRequests.incrementAndGet() > o.maxQueuedRequests) {
            queuedRequests.decrementAndGet();
            obs.onError(Status.RESOURCE_EXHAUSTED.withDescription("attention worker " + o.workerId + " has "
                    + o.maxQueuedRequests + " requests queued").asRuntimeException());
            return;
        }
        try {
            engineThread.execute(() -> {
                queuedRequests.decrementAndGet();
                if (ctx.isCancelled()) {
                    obs.onError(Status.CANCELLED.withDescription(what + " cancelled or past its deadline before it ran")
                            .asRuntimeException());
                    return;
                }
                T result;
                try {
                    result = work.call();
                } catch (StatusRuntimeException e) {
                    obs.onError(e);
                    return;
                } catch (IllegalArgumentException e) {
                    obs.onError(Status.INVALID_ARGUMENT.withDescription(e.getMessage()).asRuntimeException());
                    return;
                } catch (Exception | Error e) {
                    o.log.accept("attention-worker " + o.workerId + ": " + what + " failed: " + e);
                    obs.onError(Status.INTERNAL.withDescription(what + " failed: " + e).asRuntimeException());
                    return;
                } finally {
                    sequencesHeld = sequences.size();
                    long cached = 0;
                    for (SequenceCache sc : sequences.values()) {
                        cached += sc.length();
                    }
                    cachedTokens = cached;
                }
                obs.onNext(result);
                obs.onCompleted();
            });
        } catch (RejectedExecutionException e) {
            queuedRequests.decrementAndGet();
            obs.onError(Status.UNAVAILABLE.withDescription("attention worker " + o.workerId + " is stopping")
                    .asRuntimeException());
        }
    }

    private final class Service extends AttentionWorkerGrpc.AttentionWorkerImplBase {
        @Override
        public void forward(ForwardRequest req, StreamObserver<ForwardResponse> obs) {
            run(obs, "Forward", () -> AttentionWorker.this.forward(req));
        }

        @Override
        public void decode(DecodeRequest req, StreamObserver<DecodeResponse> obs) {
            run(obs, "Decode", () -> AttentionWorker.this.decode(req));
        }

        @Override
        public void release(ReleaseRequest req, StreamObserver<ReleaseResponse> obs) {
            run(obs, "Release", () -> AttentionWorker.this.release(req));
        }

        @Override
        public void status(StatusRequest req, StreamObserver<StatusResponse> obs) {
            obs.onNext(AttentionWorker.this.status());
            obs.onCompleted();
        }

        @Override
        public void generate(GenerateRequest req, StreamObserver<GenerateEvent> obs) {
            try {
                generations.submit(req, (ServerCallStreamObserver<GenerateEvent>) obs);
            } catch (StatusRuntimeException e) {
                obs.onError(e);
            }
        }
    }
}
