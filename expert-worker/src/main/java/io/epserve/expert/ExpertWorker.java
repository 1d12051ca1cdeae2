package io.epserve.expert;

import io.epserve.transport.IdleStrategies;
import io.epserve.cluster.Fingerprint;
import io.epserve.cluster.Placement;
import io.epserve.cluster.metrics.ProcessMetrics;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.kernel.KernelSets;
import io.epserve.model.kernel.Kernels;
import io.epserve.model.safetensors.WeightMemory;
import io.epserve.model.weights.ExpertWeights;
import io.epserve.transport.Channels;
import io.epserve.transport.CombineWriter;
import io.epserve.transport.ControlWriter;
import io.epserve.transport.MediaDriverHandle;
import io.epserve.transport.MessageReceiver;
import io.epserve.transport.MessageSender;
import io.epserve.transport.TransportException;
import io.epserve.transport.WireFormatException;
import io.epserve.transport.WireHandler;
import io.epserve.transport.sbe.DispatchDecoder;
import io.epserve.transport.sbe.ErrorCode;
import io.epserve.transport.sbe.ErrorDecoder;
import io.epserve.transport.sbe.HelloDecoder;
import io.epserve.transport.sbe.HelloStatus;
import io.epserve.transport.sbe.Role;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import io.epserve.cluster.ControlPlane;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.agrona.CloseHelper;
import org.agrona.collections.Long2ObjectHashMap;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.AgentRunner;
import org.agrona.concurrent.BackoffIdleStrategy;

/**
 * The expert worker process core: serves the routed experts of its placement to attention workers over Aeron.
 *
 * <p><b>Wiring.</b> A media driver embedded in the process (its own directory, deleted on close) or an external one.
 * The worker subscribes on its listen channel (UDP {@code host:port}, or IPC with a shared driver) to the dispatch
 * stream (1001) and the control stream (1003); both accept {@code Hello} and {@code Dispatch}.
 *
 * <p><b>Handshake.</b> An attention worker sends {@code Hello} (role ATTENTION_WORKER, status HELLO, its model
 * fingerprint, the channel and stream where it receives). If the model part of its fingerprint matches
 * ({@link Fingerprint}), the worker opens an exclusive publication to that channel and answers {@code Hello} READY
 * (role EXPERT_WORKER, fingerprint = model + experts served, reply channel = its listen channel, reply stream = its
 * dispatch stream); otherwise it answers {@code Error} FINGERPRINT_MISMATCH. Combines and errors for that attention
 * worker go on the same publication, in order. {@code Hello} GOODBYE forgets the peer.
 *
 * <p><b>Dispatches</b> are matched to their peer by the {@code source} field, decoded and run by the
 * {@link ExpertExecutor} (combines in waves). A refused dispatch (an expert not held here, wrong hidden size, layer or
 * topK, more than {@code maxTokensPerDispatch} tokens, parts out of order) is answered by an {@code Error} naming the
 * step, layer and expert; the worker never stops for a bad message. A dispatch from a source that never said Hello
 * cannot be answered: it is dropped and logged.
 *
 * <p><b>Threads.</b> One Agrona agent (an {@link AgentRunner} thread with a configurable idle strategy, backoff by
 * default so an idle worker does not burn one of two cores) polls both subscriptions and computes on the same thread,
 * with the kernel set's own pool for the fast kernels. Sending a wave is an offer into the publication's term buffer;
 * the media driver's thread puts it on the wire while the agent computes the next experts.
 *
 * <p>{@link #close()} (also on SIGTERM through {@link ExpertWorkerMain}) says GOODBYE to connected peers, closes the
 * publications and subscriptions, the kernels, the mapped checkpoint and the driver (an embedded driver's directory is
 * deleted).
 */
public final class ExpertWorker implements AutoCloseable {
    /** Fragments polled per subscription per duty cycle. */
    static final int FRAGMENT_LIMIT = 16;
    /** {@code --health-port} value for no health server. */
    public static final int HEALTH_OFF = -1;

    /** Settings; every setter returns this. */
    public static final class Options {
        Path model;
        String expertsSpec;
        Path placementFile;
        Placement placement;
        String listen;
        String aeronDir;
        String externalDriver;
        String kernels = "exact";
        int threads = Runtime.getRuntime().availableProcessors();
        int waveExperts = 1;
        boolean mergeExchanges = true;
        int maxTokensPerDispatch = 4096;
        int workerId;
        String idle = "backoff";
        int dispatchStream = Channels.DISPATCH_STREAM;
        int controlStream = Channels.CONTROL_STREAM;
        long sendTimeoutNs = MessageSender.DEFAULT_TIMEOUT_NS;
        Consumer<String> log = System.err::println;
        ControlPlane.Settings controlPlane;
        String advertise;
        long drainTimeoutMs = 120_000;
        int metricsPort = ProcessMetrics.OFF;
        String metricsHost = "127.0.0.1";
        int healthPort = HEALTH_OFF;
        String healthHost = "127.0.0.1";

        /** The model directory (config.json and the checkpoint). */
        public Options model(Path dir) {
            this.model = dir;
            return this;
        }

        /** The same experts in every layer: "0-3,7" or "all". */
        public Options experts(String spec) {
            this.expertsSpec = spec;
            return this;
        }

        /** A JSON placement file (see {@link Placement}). */
        public Options placementFile(Path file) {
            this.placementFile = file;
            return this;
        }

        /** A placement already built. */
        public Options placement(Placement placement) {
            this.placement = placement;
            return this;
        }

        /** Where to receive: "HOST:PORT" (UDP), "ipc" (shared driver) or a full "aeron:" channel URI. */
        public Options listen(String listen) {
            this.listen = listen;
            return this;
        }

        /** The embedded driver's directory (default: /dev/shm/aeron-epserve-PID-N-expert-ID). */
        public Options aeronDir(String dir) {
            this.aeronDir = dir;
            return this;
        }

        /** Use the external media driver running in this directory instead of an embedded one. */
        public Options externalDriver(String dir) {
            this.externalDriver = dir;
            return this;
        }

        /** "exact" or "fast". */
        public Options kernels(String kernels) {
            this.kernels = kernels;
            return this;
        }

        /** Compute threads of the fast kernels (the agent thread included). */
        public Options threads(int threads) {
            this.threads = threads;
            return this;
        }

        /** Experts per combine wave (1: after every expert; 0: one wave at the end). */
        public Options waveExperts(int w) {
            this.waveExperts = w;
            return this;
        }

        /**
         * Whether the exchanges of one layer that several attention workers have waiting run together (each expert
         * once over all their rows) or one at a time.
         */
        public Options mergeExchanges(boolean m) {
            this.mergeExchanges = m;
            return this;
        }

        /** Most token rows one dispatch exchange may carry; more is answered with an Error. */
        public Options maxTokensPerDispatch(int n) {
            this.maxTokensPerDispatch = n;
            return this;
        }

        /** This worker's id: the {@code source} of its messages. */
        public Options workerId(int id) {
            this.workerId = id;
            return this;
        }

        /** The agent's idle strategy: {@link IdleStrategies#NAMES}. */
        public Options idle(String idle) {
            this.idle = idle;
            return this;
        }

        public Options dispatchStream(int stream) {
            this.dispatchStream = stream;
            return this;
        }

        public Options controlStream(int stream) {
            this.controlStream = stream;
            return this;
        }

        /** Deadline of one send (connection or back-pressure) before the peer is given up. */
        public Options sendTimeoutNs(long ns) {
            this.sendTimeoutNs = ns;
            return this;
        }

        /** Join the cluster: the coordinator assigns the experts (instead of --experts or --placement). */
        public Options controlPlane(ControlPlane.Settings s) {
            this.controlPlane = s;
            return this;
        }

        /** The endpoint attention workers send to, announced in the cluster (default: --listen). */
        public Options advertise(String endpoint) {
            this.advertise = endpoint;
            return this;
        }

        /** How long a drain (SIGTERM in a cluster, or `admin drain`) may wait for the experts to move away. */
        public Options drainTimeoutMs(long ms) {
            this.drainTimeoutMs = ms;
            return this;
        }

        /** Port of the Prometheus endpoint (0: any free port; -1, the default: none). */
        public Options metricsPort(int port) {
            this.metricsPort = port;
            return this;
        }

        /** Bind address of the Prometheus endpoint (default 127.0.0.1). */
        public Options metricsHost(String host) {
            this.metricsHost = host;
            return this;
        }

        /** Port of the gRPC health service (0: any free port; -1, the default: none). See {@link HealthEndpoint}. */
        public Options healthPort(int port) {
            this.healthPort = port;
            return this;
        }

        /** Bind address of the gRPC health service (default 127.0.0.1). */
        public Options healthHost(String host) {
            this.healthHost = host;
            return this;
        }

        /** Where log lines go (default stderr). */
        public Options log(Consumer<String> log) {
            this.log = log;
            return this;
        }

        /** Checks everything that needs no files; throws IllegalArgumentException naming the flag. */
        void validate() {
            if (model == null) {
                throw new IllegalArgumentException("--model is required");
            }
            int sources = (expertsSpec != null ? 1 : 0) + (placementFile != null ? 1 : 0) + (placement != null ? 1 : 0);
            if (controlPlane != null) {
                if (sources != 0) {
                    throw new IllegalArgumentException("in a cluster (--cluster-members) the coordinator assigns the"
                            + " experts: --experts and --placement are for expert workers without a control plane");
                }
                controlPlane.validate();
            } else if (sources != 1) {
                throw new IllegalArgumentException("give exactly one of --experts SPEC and --placement FILE"
                        + " (or join a cluster with --cluster-members)");
            }
            if (drainTimeoutMs <= 0) {
                throw new IllegalArgumentException("--drain-timeout-ms must be positive");
            }
            if (listen == null) {
                throw new IllegalArgumentException("--listen is required (HOST:PORT, ipc, or an aeron: URI)");
            }
            listenChannel(listen);
            if (advertise != null) {
                Channels.ofEndpoint(advertise);
            }
            if (aeronDir != null && externalDriver != null) {
                throw new IllegalArgumentException("--aeron-dir (embedded driver) and --external-driver exclude each other");
            }
            if (!KernelSets.NAMES.contains(kernels)) {
                throw new IllegalArgumentException("--kernels must be one of " + KernelSets.NAMES + ", got '" + kernels + "'");
            }
            if (threads < 1) {
                throw new IllegalArgumentException("--threads must be at least 1, got " + threads);
            }
            if (waveExperts < 0) {
                throw new IllegalArgumentException("--wave-experts must be >= 0 (0 = one wave), got " + waveExperts);
            }
            if (maxTokensPerDispatch < 1) {
                throw new IllegalArgumentException("--max-tokens-per-dispatch must be at least 1, got "
                        + maxTokensPerDispatch);
            }
            if (workerId < 0) {
                throw new IllegalArgumentException("--worker-id must be non-negative, got " + workerId);
            }
            IdleStrategies.of(idle);
            if (dispatchStream == controlStream) {
                throw new IllegalArgumentException("the dispatch and control streams must differ");
            }
            if (sendTimeoutNs <= 0) {
                throw new IllegalArgumentException("the send timeout must be positive");
            }
            ProcessMetrics.validatePort(metricsPort);
            if (healthPort < HEALTH_OFF || healthPort > 65535) {
                throw new IllegalArgumentException("--health-port must be -1 (off), 0 (any free port) or 1..65535, got "
                        + healthPort);
            }
        }
    }

    public static Options options() {
        return new Options();
    }

    /** The Aeron channel of a {@code --listen} value: HOST:PORT (UDP), "ipc", or an "aeron:" URI as given. */
    public static String listenChannel(String listen) {
        try {
            return Channels.ofEndpoint(listen);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--listen: " + e.getMessage(), e);
        }
    }

    private final Options options;
    private final ModelConfig config;
    private volatile Placement placement;
    private final String modelFingerprint;
    private volatile String fingerprint;
    private volatile ExpertWeights weights;
    /** New holdings for the agent to switch to between exchanges, and who waits for it. */
    private final AtomicReference<Holding> nextHolding = new AtomicReference<>();
    private ExpertMembership membership;
    private final Kernels kernels;
    private final MediaDriverHandle driver;
    private final String channel;
    private final ExpertExecutor executor;
    private final WorkerAgent agent;
    private final AgentRunner runner;
    private final AtomicBoolean closed = new AtomicBoolean();
    private final ProcessMetrics metrics;
    private volatile HealthEndpoint health;

    private ExpertWorker(Options o, ModelConfig config, Placement placement, String modelFingerprint,
                         ExpertWeights weights, Kernels kernels, MediaDriverHandle driver) {
        this.options = o;
        this.config = config;
        this.placement = placement;
        this.modelFingerprint = modelFingerprint;
        this.fingerprint = Fingerprint.expertWorker(modelFingerprint, placement);
        this.weights = weights;
        this.kernels = kernels;
        this.driver = driver;
        this.channel = listenChannel(o.listen);
        this.executor = new ExpertExecutor(weights, kernels, o.waveExperts, o.maxTokensPerDispatch);
        this.agent = new WorkerAgent();
        this.runner = new AgentRunner(IdleStrategies.of(o.idle), t -> o.log.accept(prefix() + "agent error: " + t),
                null, agent);
        this.metrics = ExpertWorkerMetrics.create(this, executor, driver.offerCounters());
    }

    /**
     * Maps the placed experts, creates the kernels, starts or attaches to the media driver, subscribes on the listen
     * channel and starts the agent thread. Returns once the worker is serving.
     *
     * @throws IllegalArgumentException for bad options (naming the flag)
     * @throws io.epserve.model.config.ConfigException or {@link io.epserve.model.safetensors.CheckpointException}
     *     for an unusable model
     * @throws TransportException if the driver or the subscriptions cannot be set up
     */
    public static ExpertWorker start(Options o) {
        o.validate();
        ModelConfig config = ModelConfig.load(o.model);
        Placement placement = o.controlPlane != null ? Placement.none(ExpertWeights.layerCount(config),
                        config.nMtpLayers() > 0, config.nRoutedExperts())
                : o.placement != null ? o.placement
                : o.expertsSpec != null ? Placement.ofSpec(o.expertsSpec, config)
                : Placement.ofFile(o.placementFile, config);
        if (placement.layerCount() != ExpertWeights.layerCount(config)
                || placement.expertsPerLayer() != config.nRoutedExperts()) {
            throw new IllegalArgumentException("the placement covers " + placement.layerCount() + " layers of "
                    + placement.expertsPerLayer() + " experts, the model " + ExpertWeights.layerCount(config) + " of "
                    + config.nRoutedExperts());
        }
        // Workers exchange activations only within one checkpoint: config and weights.
        String modelFingerprint = Fingerprint.checkpoint(o.model);
        List<AutoCloseable> opened = new ArrayList<>();
        try {
            ExpertWeights weights = ExpertWeights.open(o.model, config, placement);
            opened.add(weights);
            Kernels kernels = KernelSets.create(o.kernels, o.threads);
            opened.add(kernels);
            MediaDriverHandle driver;
            if (o.externalDriver != null) {
                driver = MediaDriverHandle.attach(o.externalDriver);
            } else {
                MediaDriverHandle.Options d = MediaDriverHandle.options().name("expert-" + o.workerId);
                if (o.aeronDir != null) {
                    d.directory(o.aeronDir);
                }
                driver = MediaDriverHandle.launchEmbedded(d);
            }
            opened.add(driver);
            ExpertWorker w = new ExpertWorker(o, config, placement, modelFingerprint, weights, kernels, driver);
            w.agent.subscribe();
            opened.add(w.agent::closeReceivers);
            try {
                w.metrics.serve(o.metricsHost, o.metricsPort);
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
            opened.add(w.metrics);
            AgentRunner.startOnThread(w.runner, r -> {
                Thread t = new Thread(r, "epserve-expert-worker-" + o.workerId);
                t.setDaemon(false);
                return t;
            });
            opened.add(w.runner);
            if (o.controlPlane != null) {
                w.membership = ExpertMembership.join(w, o.controlPlane, Fingerprint.model(o.model), modelFingerprint,
                        o.advertise != null ? o.advertise : o.listen, m -> o.log.accept(w.prefix() + m));
                opened.add(w.membership);
            }
            if (o.healthPort != HEALTH_OFF) {
                // Last: SERVING means everything above is up.
                w.health = HealthEndpoint.start(o.healthHost, o.healthPort);
            }
            return w;
        } catch (RuntimeException e) {
            for (int i = opened.size() - 1; i >= 0; i--) {
                CloseHelper.quietClose(opened.get(i));
            }
            throw e;
        }
    }

    /**
     * Calls {@code listener} once, from another thread, if this worker's Aeron client closes by itself (the reason
     * says why: see {@link MediaDriverHandle}): no dispatch can reach it again, so the process should stop.
     */
    public void onTransportLoss(java.util.function.Consumer<String> listener) {
        driver.onLoss(listener);
    }

    /** One line for people and scripts: what is mapped, where it listens. */
    public String readyLine() {
        int files = weights.mappedFiles().size();
        return String.format(Locale.ROOT, "expert-worker %d ready: model %s (%s), %s = %d experts, %.1f MiB of expert "
                        + "weights in %d mapped file%s (%.1f MiB mapped), %s, kernels %s x%d, waves of %s, %s, max %d "
                        + "tokens per dispatch; listening on %s (dispatch stream %d, control stream %d); aeron dir %s "
                        + "(%s driver); pid %d",
                options.workerId, options.model, modelFingerprint.substring(0, Math.min(19, modelFingerprint.length())),
                placement.describe(), placement.size(), weights.expertBytes() / 1048576.0, files, files == 1 ? "" : "s",
                weights.mappedBytes() / 1048576.0, weights.checkpoint().memoryDescription(), kernels.name(),
                options.threads,
                options.waveExperts == 0 ? "all experts" : options.waveExperts + " expert"
                        + (options.waveExperts == 1 ? "" : "s"),
                options.mergeExchanges ? "one layer's waiting exchanges together" : "one exchange at a time",
                options.maxTokensPerDispatch, channel, options.dispatchStream, options.controlStream,
                driver.aeronDirectoryName(), driver.isEmbedded() ? "embedded" : "external",
                ProcessHandle.current().pid()) + (membership == null ? "" : "; " + membership.describe())
                + metrics.readySuffix() + (health == null ? "" : health.describe());
    }

    public ModelConfig config() {
        return config;
    }

    public Placement placement() {
        return placement;
    }

    /** Whether it is a member of a cluster (its experts come from the coordinator). */
    public boolean clustered() {
        return membership != null;
    }

    ExpertMembership membership() {
        return membership;
    }

    /**
     * Serves exactly the experts of {@code p} from now on: maps them (on the calling thread), has the agent switch
     * between exchanges and tell every attention worker (a READY with the new experts), then unmaps the old ones.
     * Returns once the agent has switched; throws if it does not within 10 s.
     */
    void hold(Placement p) {
        if (p.equals(placement)) {
            return;
        }
        // Mapped, not copied: old and new experts are both held until the switch, and as views of the files the
        // experts they share are in memory once (the pod's memory limit allows a quarter of the weights extra, not
        // a second copy of all of them).
        ExpertWeights w = ExpertWeights.open(options.model, config, p, WeightMemory.MAPPED);
        Holding h = new Holding(p, w);
        Holding replaced = nextHolding.getAndSet(h);
        if (replaced != null) {
            replaced.weights.close();
            replaced.done.completeExceptionally(new IllegalStateException("superseded"));
        }
        try {
            h.done.get(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while switching experts", e);
        } catch (ExecutionException | TimeoutException e) {
            throw new IllegalStateException("the agent did not switch to " + p.describe() + ": " + e, e);
        }
    }

    /** Experts to switch to. */
    private record Holding(Placement placement, ExpertWeights weights, CompletableFuture<Void> done) {
        Holding(Placement placement, ExpertWeights weights) {
            this(placement, weights, new CompletableFuture<>());
        }
    }

    public ExpertWeights weights() {
        return weights;
    }

    /** What it did, for its stop line: exchanges, expert rows (token, slot) computed, waves, refusals. */
    public String summaryLine() {
        long calls = 0;
        for (int l = 0; l < placement.layerCount(); l++) {
            for (int e = 0; e < placement.expertsPerLayer(); e++) {
                calls += executor.expertCalls(l, e);
            }
        }
        return String.format(Locale.ROOT, "expert-worker %d: served %d exchanges, %d expert rows computed in %d expert "
                        + "calls (%d exchanges shared experts with others of their layer, %d joined a sweep under way),"
                        + " %d waves; %d refused, %d malformed, %d from unknown sources",
                options.workerId, executor.exchanges(), executor.rowsComputed(), calls, executor.mergedExchanges(),
                executor.lateJoins(), executor.waves(),
                executor.rejected(), malformedMessages(), unknownSourceDispatches());
    }

    public ExpertExecutor executor() {
        return executor;
    }

    /** The model fingerprint (hash of config.json). */
    public String modelFingerprint() {
        return modelFingerprint;
    }

    /** This worker's fingerprint: model and experts served. */
    public String fingerprint() {
        return fingerprint;
    }

    /** The channel dispatches and Hellos are received on. */
    public String listenChannel() {
        return channel;
    }

    public int dispatchStream() {
        return options.dispatchStream;
    }

    public int controlStream() {
        return options.controlStream;
    }

    public int workerId() {
        return options.workerId;
    }

    public String aeronDirectoryName() {
        return driver.aeronDirectoryName();
    }

    /** Attention workers currently connected by Hello. */
    public int peers() {
        return agent.peerCount;
    }

    /** Dispatch messages dropped because their source never said Hello. */
    public long unknownSourceDispatches() {
        return agent.unknownSource;
    }

    /** Wall-clock time of the first dispatch received (0: none yet): when a new worker starts to serve. */
    public long firstDispatchMs() {
        return agent.firstDispatchMs;
    }

    /** Messages that could not be decoded (logged and skipped). */
    public long malformedMessages() {
        return agent.malformed;
    }

    /** This worker's metrics (its registry; the endpoint when --metrics-port was given). */
    public ProcessMetrics metrics() {
        return metrics;
    }

    public boolean isClosed() {
        return closed.get();
    }

    /** Stops the agent (GOODBYE to peers, publications and subscriptions closed), then kernels, weights, driver. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        HealthEndpoint h = health;
        if (h != null) {
            h.notServing();
        }
        metrics.close();
        try {
            if (membership != null) {
                membership.close();
            }
            CloseHelper.close(runner);
        } finally {
            Holding pending = nextHolding.getAndSet(null);
            if (pending != null) {
                pending.weights.close();
            }
            CloseHelper.quietCloseAll(kernels, weights);
            try {
                driver.close();
            } finally {
                CloseHelper.quietClose(h);
            }
        }
    }

    /** The port of the gRPC health service, or {@link #HEALTH_OFF}. */
    public int healthPort() {
        HealthEndpoint h = health;
        return h == null ? HEALTH_OFF : h.port();
    }

    /** A drain started: readiness goes NOT_SERVING (liveness stays SERVING until close). */
    void draining() {
        HealthEndpoint h = health;
        if (h != null) {
            h.draining();
        }
    }

    private String prefix() {
        return "expert-worker " + options.workerId + ": ";
    }

    private void log(String message) {
        options.log.accept(prefix() + message);
    }

    /** Most exchanges of one attention worker held at once (being received, waiting or in the sweep). */
    static final int MAX_EXCHANGES_PER_PEER = 8;

    /**
     * One attention worker: where its combines and errors go, and its exchanges: the one being received, and those
     * complete (waiting in the ready list or in the sweep), one per micro-batch in flight.
     */
    private final class Peer implements AutoCloseable, ExpertExecutor.ExchangeDone {
        final long source;
        final String replyChannel;
        final int replyStream;
        final MessageSender sender;
        final CombineWriter combines;
        final ControlWriter control;
        /** The exchange whose parts are arriving (null between exchanges). */
        ExpertExecutor.Exchange receiving;
        /** Every exchange this peer has; the first {@code spareCount} of {@code spare} are free. */
        private ExpertExecutor.Exchange[] owned = new ExpertExecutor.Exchange[2];
        private int ownedCount;
        private ExpertExecutor.Exchange[] spare = new ExpertExecutor.Exchange[2];
        private int spareCount;
        boolean closed;

        Peer(long source, String replyChannel, int replyStream) {
            this.source = source;
            this.replyChannel = replyChannel;
            this.replyStream = replyStream;
            this.sender = driver.newSender(replyChannel, replyStream, new BackoffIdleStrategy(), options.sendTimeoutNs);
            this.combines = new CombineWriter(sender);
            this.control = new ControlWriter(sender);
        }

        boolean hasSpare() {
            return spareCount > 0 || ownedCount < MAX_EXCHANGES_PER_PEER;
        }

        /** A free exchange to receive into; a new one while fewer than the most are held (see hasSpare). */
        ExpertExecutor.Exchange take() {
            if (spareCount > 0) {
                return spare[--spareCount];
            }
            ExpertExecutor.Exchange ex = executor.newExchange();
            if (ownedCount == owned.length) {
                owned = Arrays.copyOf(owned, 2 * ownedCount);
                spare = Arrays.copyOf(spare, 2 * ownedCount);
            }
            owned[ownedCount++] = ex;
            return ex;
        }

        void giveBack(ExpertExecutor.Exchange ex) {
            spare[spareCount++] = ex;
        }

        @Override
        public void exchangeDone(ExpertExecutor.Exchange ex, RuntimeException failure) {
            giveBack(ex);
            if (closed || failure == null) {
                return;
            }
            if (failure instanceof TransportException) {
                agent.dropPeer(source, "combine send failed: " + failure.getMessage());
            } else {
                log("dispatch of step " + ex.step() + " layer " + ex.layer() + " from attention worker " + source
                        + " failed: " + failure);
                agent.sendError(this, ex, ErrorCode.INTERNAL, "expert computation failed: " + failure);
            }
        }

        /** Forgets its exchanges in the sweep (nobody to answer) and closes its publication. */
        @Override
        public void close() {
            closed = true;
            for (int i = 0; i < ownedCount; i++) {
                executor.cancel(owned[i]);
            }
            sender.close();
        }
    }

    /**
     * Polls both subscriptions and computes, one combine wave per duty cycle. A complete exchange does not run inside
     * the fragment handler: it joins the executor's sweep when that sweep is over its layer
     * ({@link ExpertExecutor#join}: it shares every expert the sweep has still to visit, and gets the others after a
     * full circle), or else waits in the ready list, and when no sweep is under way the oldest ready exchange's layer
     * starts one with every ready exchange of that layer. So exchanges of one layer meet whenever this worker is
     * behind: from several attention workers, and the micro-batches of one (micro-batch B's dispatch for layer l
     * arrives while A's layer l is in the sweep). Nothing is held back to wait for others; with
     * {@code --no-merge-exchanges} every exchange runs alone, in arrival order.
     */
    private final class WorkerAgent implements Agent, WireHandler {
        private final Long2ObjectHashMap<Peer> peers = new Long2ObjectHashMap<>();
        private final Set<Long> unknownSources = new HashSet<>();
        // Complete exchanges waiting for a sweep over their layer, and their peers, oldest first.
        private ExpertExecutor.Exchange[] ready = new ExpertExecutor.Exchange[4];
        private Peer[] readyPeer = new Peer[4];
        private int readyCount;
        private MessageReceiver dispatchIn;
        private MessageReceiver controlIn;
        volatile int peerCount;
        volatile long unknownSource;
        volatile long malformed;
        volatile long firstDispatchMs;

        void subscribe() {
            dispatchIn = driver.newReceiver(channel, options.dispatchStream, this);
            controlIn = driver.newReceiver(channel, options.controlStream, this);
        }

        void closeReceivers() {
            CloseHelper.quietCloseAll(dispatchIn, controlIn);
        }

        @Override
        public String roleName() {
            return "epserve-expert-worker-" + options.workerId;
        }

        @Override
        public int doWork() {
            Holding h = nextHolding.get();
            if (h != null && nextHolding.compareAndSet(h, null)) {
                runAll(); // what was accepted under the old experts runs on them
                switchTo(h);
                return 1;
            }
            int work = poll(controlIn) + poll(dispatchIn);
            if (advance()) {
                work++;
            }
            return work;
        }

        /** One wave of the sweep under way, or a new sweep from the ready list; false if there was nothing to run. */
        private boolean advance() {
            if (!executor.sweeping()) {
                if (readyCount == 0) {
                    return false;
                }
                startSweep();
            }
            executor.runWave();
            return true;
        }

        /** Runs until no sweep is under way and nothing is ready. */
        private void runAll() {
            while (advance()) {
                // each call runs one wave
            }
        }

        /** Joins the oldest ready exchange and (when merging) every other ready one of its layer into a new sweep. */
        private void startSweep() {
            int layer = ready[0].layer();
            int kept = 0;
            boolean first = true;
            for (int i = 0; i < readyCount; i++) {
                ExpertExecutor.Exchange ex = ready[i];
                Peer p = readyPeer[i];
                ready[i] = null;
                readyPeer[i] = null;
                if (p.closed) {
                    p.giveBack(ex); // said goodbye or was given up meanwhile: nobody to answer
                } else if (ex.layer() == layer && (first || options.mergeExchanges)) {
                    first = false;
                    executor.join(ex, p.combines, options.workerId, p);
                } else {
                    ready[kept] = ex;
                    readyPeer[kept++] = p;
                }
            }
            readyCount = kept;
        }

        private void makeReady(Peer peer, ExpertExecutor.Exchange ex) {
            if (options.mergeExchanges && executor.sweepLayer() == ex.layer()) {
                executor.join(ex, peer.combines, options.workerId, peer);
                return;
            }
            if (readyCount == ready.length) {
                ready = Arrays.copyOf(ready, 2 * readyCount);
                readyPeer = Arrays.copyOf(readyPeer, 2 * readyCount);
            }
            ready[readyCount] = ex;
            readyPeer[readyCount++] = peer;
        }

        /** Between exchanges: serve the new experts, tell the attention workers, unmap the old ones. */
        private void switchTo(Holding h) {
            ExpertWeights old = weights;
            executor.weights(h.weights);
            weights = h.weights;
            placement = h.placement;
            fingerprint = Fingerprint.expertWorker(modelFingerprint, h.placement);
            for (Peer peer : peers.values()) {
                try {
                    peer.control.hello(0, options.workerId, Role.EXPERT_WORKER, HelloStatus.READY, fingerprint,
                            channel, options.dispatchStream);
                } catch (RuntimeException e) {
                    log("could not tell attention worker " + peer.source + " about the new experts: " + e.getMessage());
                }
            }
            CloseHelper.quietClose(old);
            log("now holds " + h.placement.describe());
            h.done.complete(null);
        }

        private int poll(MessageReceiver in) {
            try {
                return in.poll(FRAGMENT_LIMIT);
            } catch (WireFormatException e) {
                log("skipped a malformed message: " + e.getMessage());
                malformed++;
                return 1;
            } catch (RuntimeException e) {
                log("message handling failed (message skipped): " + e);
                return 1;
            }
        }

        @Override
        public void onHello(HelloDecoder hello) {
            long epoch = hello.epoch();
            long source = hello.source();
            int replyStream = hello.replyStreamId();
            Role role = hello.role();
            HelloStatus status = hello.status();
            String peerFingerprint = hello.fingerprint();
            String replyChannel = hello.replyChannel();
            if (role != Role.ATTENTION_WORKER) {
                log("ignored a Hello from " + role + " " + source + " (only attention workers dispatch here)");
                return;
            }
            if (status == HelloStatus.GOODBYE) {
                Peer gone = peers.remove(source);
                peerCount = peers.size();
                if (gone != null) {
                    gone.close();
                    log("attention worker " + source + " said goodbye");
                }
                return;
            }
            if (replyChannel.isEmpty()) {
                log("ignored a Hello from attention worker " + source + " without a reply channel");
                return;
            }
            if (!Fingerprint.modelPart(peerFingerprint).equals(modelFingerprint)) {
                rejectHello(epoch, source, replyChannel, replyStream, peerFingerprint);
                return;
            }
            Peer peer = peers.get(source);
            if (peer != null && (!peer.replyChannel.equals(replyChannel) || peer.replyStream != replyStream)) {
                peers.remove(source);
                peer.close();
                peer = null;
            }
            try {
                boolean added = peer == null;
                if (added) {
                    peer = new Peer(source, replyChannel, replyStream);
                    peers.put(source, peer);
                    peerCount = peers.size();
                }
                peer.control.hello(epoch, options.workerId, Role.EXPERT_WORKER, HelloStatus.READY, fingerprint,
                        channel, options.dispatchStream);
                unknownSources.remove(source);
                // An attention worker repeats its Hello every 200 ms until the answer arrives: one line per peer.
                if (added) {
                    log("serving attention worker " + source + " (replies to " + replyChannel + " stream "
                            + replyStream + ")");
                }
            } catch (RuntimeException e) {
                dropPeer(source, "could not answer its Hello: " + e.getMessage());
            }
        }

        private void rejectHello(long epoch, long source, String replyChannel, int replyStream, String theirs) {
            String why = "model fingerprint mismatch: this expert worker serves " + modelFingerprint
                    + ", the attention worker sent " + theirs;
            log("refused attention worker " + source + ": " + why);
            try (MessageSender s = driver.newSender(replyChannel, replyStream, new BackoffIdleStrategy(),
                    options.sendTimeoutNs)) {
                new ControlWriter(s).error(epoch, options.workerId, 0, 0, 0, ErrorCode.FINGERPRINT_MISMATCH, why);
            } catch (RuntimeException e) {
                log("could not send the refusal to attention worker " + source + ": " + e.getMessage());
            }
        }

        @Override
        public void onDispatch(DispatchDecoder dispatch) {
            if (firstDispatchMs == 0) {
                firstDispatchMs = System.currentTimeMillis();
            }
            long source = dispatch.source();
            Peer peer = peers.get(source);
            if (peer != null && peer.receiving == null && !peer.hasSpare()) {
                // More exchanges than micro-batches in flight: run what is there until one is free.
                while (!peer.hasSpare() && advance()) {
                    // each call runs one wave
                }
                peer = peers.get(source); // gone if its combines could not be sent
            }
            if (peer == null) {
                // Log before counting, so anyone who sees the count also sees the reason.
                if (unknownSources.add(source)) {
                    log("dropped a dispatch from source " + source + ", which has not said Hello (no reply channel)");
                }
                unknownSource++;
                return;
            }
            ExpertExecutor.Exchange ex = peer.receiving;
            if (ex == null) {
                ex = peer.take();
                peer.receiving = ex;
            }
            try {
                if (executor.append(ex, dispatch)) {
                    peer.receiving = null;
                    makeReady(peer, ex);
                }
            } catch (DispatchRejectedException e) {
                sendError(peer, ex, e.code(), e.getMessage());
            } catch (RuntimeException e) {
                log("dispatch of step " + ex.step() + " layer " + ex.layer() + " failed: " + e);
                sendError(peer, ex, ErrorCode.INTERNAL, "dispatch could not be read: " + e);
            }
        }

        void sendError(Peer peer, ExpertExecutor.Exchange ex, ErrorCode code, String message) {
            try {
                peer.control.error(ex.epoch(), options.workerId, ex.step(), ex.layer(), ex.microBatch(), code, message);
            } catch (RuntimeException e) {
                dropPeer(peer.source, "could not send an error (" + message + "): " + e.getMessage());
            }
        }

        void dropPeer(long source, String why) {
            Peer peer = peers.remove(source);
            peerCount = peers.size();
            if (peer != null) {
                CloseHelper.quietClose(peer);
            }
            log("gave up attention worker " + source + ": " + why);
        }

        @Override
        public void onError(ErrorDecoder error) {
            long source = error.source();
            ErrorCode code = error.code();
            log("attention worker " + source + " reported " + code + ": " + error.message());
        }

        @Override
        public void onClose() {
            for (Peer peer : peers.values()) {
                try {
                    if (peer.sender.isConnected()) {
                        peer.control.hello(0, options.workerId, Role.EXPERT_WORKER, HelloStatus.GOODBYE, fingerprint,
                                channel, options.dispatchStream);
                    }
                } catch (RuntimeException ignored) {
                    // best effort: the peer may be gone
                }
                CloseHelper.quietClose(peer);
            }
            peers.clear();
            peerCount = 0;
            closeReceivers();
        }
    }
}
