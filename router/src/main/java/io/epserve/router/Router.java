package io.epserve.router;

import io.epserve.cluster.ClusterNode;
import io.epserve.cluster.ControlPlane;
import io.epserve.cluster.Fingerprint;
import io.epserve.cluster.MemberInfo;
import io.epserve.cluster.metrics.ProcessMetrics;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.text.Tokenizer;
import io.epserve.proto.v1.DetokenizeRequest;
import io.epserve.proto.v1.DetokenizeResponse;
import io.epserve.proto.v1.InferenceGrpc;
import io.epserve.proto.v1.ListModelsRequest;
import io.epserve.proto.v1.ListModelsResponse;
import io.epserve.proto.v1.Model;
import io.epserve.proto.v1.TokenizeRequest;
import io.epserve.proto.v1.TokenizeResponse;
import io.epserve.proto.worker.v1.AttentionWorkerGrpc;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Server;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;

/**
 * The router: serves {@code epserve.v1.Inference} to clients and spreads their requests over attention workers
 * (the worker API's {@code Generate}), choosing the worker with the fewest requests in flight from this router.
 * It tokenises prompts, detokenises the token streams (never half a character), applies stop strings, and maps
 * worker failures to the client's status. A request whose worker is lost mid-stream is resubmitted, with the tokens
 * streamed so far, to another worker, which continues it (see {@link WorkerStream}); {@link #resubmissions()} counts
 * them.
 */
public final class Router implements AutoCloseable {
    /** Settings; every setter returns this. */
    public static final class Options {
        Path model;
        String modelId;
        final List<String> attentionWorkers = new ArrayList<>();
        String host = "127.0.0.1";
        int port = 50051;
        int maxInFlight = 1024;
        int maxResubmits = 3;
        ControlPlane.Settings controlPlane;
        String advertiseHost;
        Consumer<String> log = s -> { };
        int metricsPort = ProcessMetrics.OFF;
        String metricsHost = "127.0.0.1";

        public Options model(Path v) { model = v; return this; }
        public Options modelId(String v) { modelId = v; return this; }
        public Options attentionWorker(String v) { attentionWorkers.add(v); return this; }
        public Options attentionWorkers(List<String> v) { attentionWorkers.addAll(v); return this; }
        public Options host(String v) { host = v; return this; }
        public Options port(int v) { port = v; return this; }
        public Options maxInFlight(int v) { maxInFlight = v; return this; }
        /** Resubmissions of one request to another attention worker when its worker is lost (0: none). */
        public Options maxResubmits(int v) { maxResubmits = v; return this; }
        public Options log(Consumer<String> v) { log = v; return this; }
        /** Join the cluster: attention workers come from the control plane; serves the Admin API too. */
        public Options controlPlane(ControlPlane.Settings v) { controlPlane = v; return this; }
        /** The host this router announces in the cluster (default: --host). */
        public Options advertiseHost(String v) { advertiseHost = v; return this; }
        /** Port of the Prometheus endpoint (0: any free port; -1, the default: none). */
        public Options metricsPort(int v) { metricsPort = v; return this; }
        public Options metricsHost(String v) { metricsHost = v; return this; }

        public void validate() {
            if (model == null) {
                throw new IllegalArgumentException("--model is required");
            }
            if (controlPlane != null) {
                if (!attentionWorkers.isEmpty()) {
                    throw new IllegalArgumentException("in a cluster (--cluster-members) the attention workers come"
                            + " from the control plane: leave out --attention-workers");
                }
                controlPlane.validate();
            } else if (attentionWorkers.isEmpty()) {
                throw new IllegalArgumentException("--attention-workers: at least one HOST:PORT is required (or join"
                        + " a cluster with --cluster-members)");
            }
            for (String t : attentionWorkers) {
                int c = t.lastIndexOf(':');
                if (c <= 0 || c == t.length() - 1) {
                    throw new IllegalArgumentException("attention worker '" + t + "' is not HOST:PORT");
                }
                try {
                    Integer.parseInt(t.substring(c + 1));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("attention worker '" + t + "': port is not a number");
                }
            }
            if (port < 0 || port > 65535) {
                throw new IllegalArgumentException("--port must be in 0..65535, got " + port);
            }
            if (maxInFlight < 1) {
                throw new IllegalArgumentException("--max-in-flight must be positive, got " + maxInFlight);
            }
            if (maxResubmits < 0) {
                throw new IllegalArgumentException("--max-resubmits must be >= 0, got " + maxResubmits);
            }
            ProcessMetrics.validatePort(metricsPort);
        }
    }

    public static Options options() {
        return new Options();
    }

    /** One attention worker as the router sees it. */
    static final class Backend {
        final String target;
        final ManagedChannel channel;
        final AttentionWorkerGrpc.AttentionWorkerStub stub;
        final AtomicInteger inFlight = new AtomicInteger();
        // From its Status, polled every POLL_MS: requests waiting there, free KV memory, and whether it answered.
        volatile int waiting;
        volatile long kvFree = Long.MAX_VALUE;
        volatile boolean reachable = true;
        // Streams to it that failed as if it were gone: only a poll sent after the last of them may count it back in.
        final AtomicInteger downs = new AtomicInteger();

        Backend(String target) {
            this.target = target;
            this.channel = ManagedChannelBuilder.forTarget(target).usePlaintext().maxInboundMessageSize(256 << 20).build();
            this.stub = AttentionWorkerGrpc.newStub(channel);
        }
    }

    private final Options o;
    private final ModelConfig config;
    private final Tokenizer tokenizer;
    private final String modelId;
    private final String fingerprint;
    private final List<Backend> backends = new CopyOnWriteArrayList<>();
    private final ControlPlane plane;
    private final AtomicInteger inFlight = new AtomicInteger();
    private final AtomicInteger roundRobin = new AtomicInteger();
    private final java.util.concurrent.atomic.AtomicLong resubmissions = new java.util.concurrent.atomic.AtomicLong();
    private final HealthStatusManager health = new HealthStatusManager();
    private final java.util.concurrent.ScheduledExecutorService poller;
    static final long POLL_MS = 250;
    private final Server server;
    private final RouterMetrics metrics;

    private Router(Options o) throws IOException {
        this.o = o;
        this.config = ModelConfig.load(o.model);
        this.fingerprint = Fingerprint.model(o.model);
        this.modelId = o.modelId != null ? o.modelId : o.model.toAbsolutePath().normalize().getFileName().toString();
        this.tokenizer = Tokenizer.load(o.model);
        this.metrics = new RouterMetrics(backends, inFlight::get);
        ControlPlane cp = null;
        try {
            for (String t : o.attentionWorkers) {
                backends.add(new Backend(t));
            }
            if (o.controlPlane != null) {
                cp = ControlPlane.join(o.controlPlane, ClusterNode.ModelIdentity.of(fingerprint, config),
                        MemberInfo.of(MemberInfo.ROUTER, 0, "", "", fingerprint), m -> o.log.accept("router: " + m));
            }
            metrics.serve(o.metricsHost, o.metricsPort);
            NettyServerBuilder sb = NettyServerBuilder.forAddress(new InetSocketAddress(o.host, o.port))
                    .addService(ServerInterceptors.intercept(new Service(), metrics.interceptor()))
                    .addService(health.getHealthService())
                    .addService(ProtoReflectionServiceV1.newInstance());
            if (cp != null) {
                sb.addService(new AdminService(cp.node()));
            }
            server = sb.build().start();
        } catch (IOException | RuntimeException e) {
            metrics.close();
            backends.forEach(b -> b.channel.shutdownNow());
            if (cp != null) {
                cp.close();
            }
            tokenizer.close();
            throw e;
        }
        this.plane = cp;
        if (cp != null) {
            String at = (o.advertiseHost != null ? o.advertiseHost : o.host) + ":" + server.getPort();
            int mp = metrics.port();
            cp.node().update(i -> (mp < 0 ? i : i.withGauges(java.util.Map.of(MemberInfo.METRICS_PORT, (long) mp)))
                    .withGrpc(at).withState(MemberInfo.READY));
            syncBackends();
        }
        poller = java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "epserve-router-poller");
            t.setDaemon(true);
            return t;
        });
        poller.scheduleWithFixedDelay(this::poll, 0, POLL_MS, TimeUnit.MILLISECONDS);
        health.setStatus("", ServingStatus.SERVING);
        health.setStatus(InferenceGrpc.SERVICE_NAME, ServingStatus.SERVING);
    }

    /** Refreshes every worker's load from its Status (a worker that does not answer within 1 s is unreachable). */
    private void poll() {
        if (plane != null) {
            try {
                syncBackends();
            } catch (RuntimeException e) {
                o.log.accept("router: cannot read the cluster's members: " + e);
            }
        }
        for (Backend b : backends) {
            try {
                int downs = b.downs.get();
                var st = AttentionWorkerGrpc.newBlockingStub(b.channel).withDeadlineAfter(1, TimeUnit.SECONDS)
                        .status(io.epserve.proto.worker.v1.StatusRequest.getDefaultInstance());
                b.waiting = st.getWaitingRequests();
                b.kvFree = st.getKvBudgetBytes() - st.getKvReservedBytes();
                if (b.downs.get() != downs) {
                    continue; // a stream failed after this poll was sent: the next poll decides
                }
                if (!b.reachable) {
                    o.log.accept("router: attention worker " + b.target + " answers again");
                }
                b.reachable = true;
                if (b.downs.get() != downs) {
                    b.reachable = false; // a stream failed meanwhile
                }
            } catch (RuntimeException e) {
                if (b.reachable) {
                    o.log.accept("router: attention worker " + b.target + " does not answer: " + e.getMessage());
                }
                b.reachable = false;
            }
        }
    }

    /**
     * With the control plane: the ready attention workers of the cluster become backends, the departed or draining
     * stop getting new requests (their channels close gracefully, so streams in flight end on their own).
     */
    private synchronized void syncBackends() {
        java.util.Set<String> ready = new java.util.HashSet<>();
        for (MemberInfo m : plane.node().liveMembers()) {
            if (m.isAttentionWorker() && m.ready() && !m.grpc().isEmpty()) {
                ready.add(m.grpc());
            }
        }
        for (Backend b : backends) {
            if (!ready.contains(b.target)) {
                backends.remove(b);
                b.channel.shutdown();
                o.log.accept("router: attention worker " + b.target + " left the cluster or is draining");
            }
        }
        for (String t : ready) {
            if (backends.stream().noneMatch(b -> b.target.equals(t))) {
                backends.add(new Backend(t));
                o.log.accept("router: attention worker " + t + " joined");
            }
        }
    }

    public static Router start(Options o) throws IOException {
        o.validate();
        return new Router(o);
    }

    public int port() {
        return server.getPort();
    }

    public String readyLine() {
        return String.format(Locale.ROOT, "router ready: model %s (%s, %s), grpc %s:%d, attention workers %s; pid %d",
                modelId, o.model, fingerprint.substring(0, Math.min(19, fingerprint.length())), o.host, port(),
                plane == null ? String.join(",", o.attentionWorkers) : "from cluster '" + plane.node().clusterName()
                        + "' (member " + plane.node().address() + ", admin API on the same port)",
                ProcessHandle.current().pid()) + metrics.readySuffix();
    }

    /** The metrics endpoint's port, or -1 when there is none. */
    public int metricsPort() {
        return metrics.port();
    }

    RouterMetrics metrics() {
        return metrics;
    }

    ModelConfig config() {
        return config;
    }

    Tokenizer tokenizer() {
        return tokenizer;
    }

    String modelId() {
        return modelId;
    }

    /**
     * The reachable worker with the shortest queue (requests in flight from here plus those waiting there), then the
     * most free KV memory; ties go round-robin. If none answered its last poll, any of them (the call then fails with
     * the worker's status, UNAVAILABLE when it is down).
     */
    Backend pick() {
        return pick(java.util.Set.of());
    }

    /** As {@link #pick()}, never one of these (the workers that already failed a request); null if that leaves none. */
    Backend pick(java.util.Set<Backend> except) {
        List<Backend> backends = List.copyOf(this.backends);
        int n = backends.size();
        if (n == 0) {
            return null;
        }
        int start = Math.floorMod(roundRobin.getAndIncrement(), n);
        Backend best = null;
        for (int pass = 0; pass < 2 && best == null; pass++) {
            for (int i = 0; i < n; i++) {
                Backend b = backends.get((start + i) % n);
                if (pass == 0 && !b.reachable || except.contains(b)) {
                    continue;
                }
                if (best == null || load(b) < load(best) || load(b) == load(best) && b.kvFree > best.kvFree) {
                    best = b;
                }
            }
        }
        return best;
    }

    private static int load(Backend b) {
        return b.inFlight.get() + b.waiting;
    }

    /** Counts a request in; false when the router is full. */
    boolean admit() {
        if (inFlight.incrementAndGet() > o.maxInFlight) {
            inFlight.decrementAndGet();
            return false;
        }
        return true;
    }

    void release() {
        inFlight.decrementAndGet();
    }

    int maxInFlight() {
        return o.maxInFlight;
    }

    int maxResubmits() {
        return o.maxResubmits;
    }

    /** Requests resubmitted to another attention worker after theirs was lost, since start. */
    public long resubmissions() {
        return resubmissions.get();
    }

    long countResubmission() {
        return resubmissions.incrementAndGet();
    }

    /** A stream to b failed as if b were gone: no new requests go there until a later Status poll answers. */
    void markDown(Backend b, Status why) {
        b.downs.incrementAndGet();
        if (b.reachable) {
            b.reachable = false;
            o.log.accept("router: attention worker " + b.target + " left out until it answers a Status poll (a stream"
                    + " failed: " + why.getCode() + ": " + why.getDescription() + ")");
        }
    }

    Consumer<String> log() {
        return o.log;
    }

    /** Stops accepting calls, lets running streams finish (up to 30 s), closes the worker channels. */
    @Override
    public void close() {
        health.enterTerminalState();
        poller.shutdownNow();
        server.shutdown();
        try {
            if (!server.awaitTermination(30, TimeUnit.SECONDS)) {
                server.shutdownNow();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            server.shutdownNow();
        }
        for (Backend b : backends) {
            b.channel.shutdownNow();
        }
        if (plane != null) {
            plane.close();
        }
        tokenizer.close();
        metrics.close();
    }

    private final class Service extends InferenceGrpc.InferenceImplBase {
        @Override
        public void generate(io.epserve.proto.v1.GenerateRequest req, StreamObserver<io.epserve.proto.v1.GenerateResponse> obs) {
            GenerateCall.start(Router.this, req, obs);
        }

        @Override
        public void chat(io.epserve.proto.v1.ChatRequest req, StreamObserver<io.epserve.proto.v1.ChatResponse> obs) {
            ChatCall.start(Router.this, req, obs);
        }

        @Override
        public void tokenize(TokenizeRequest req, StreamObserver<TokenizeResponse> obs) {
            if (!checkModel(req.getModel(), obs)) {
                return;
            }
            int[] ids = tokenizer.encode(req.getText());
            TokenizeResponse.Builder b = TokenizeResponse.newBuilder();
            for (int id : ids) {
                b.addTokenIds(id);
            }
            obs.onNext(b.build());
            obs.onCompleted();
        }

        @Override
        public void detokenize(DetokenizeRequest req, StreamObserver<DetokenizeResponse> obs) {
            if (!checkModel(req.getModel(), obs)) {
                return;
            }
            int[] ids = req.getTokenIdsList().stream().mapToInt(Integer::intValue).toArray();
            for (int id : ids) {
                if (id < 0 || id >= config.vocabSize()) {
                    obs.onError(Status.INVALID_ARGUMENT.withDescription("token id " + id + " is outside the vocabulary [0, "
                            + config.vocabSize() + ")").asRuntimeException());
                    return;
                }
            }
            obs.onNext(DetokenizeResponse.newBuilder()
                    .setText(tokenizer.decode(ids, 0, ids.length, req.getSkipSpecialTokens())).build());
            obs.onCompleted();
        }

        @Override
        public void listModels(ListModelsRequest req, StreamObserver<ListModelsResponse> obs) {
            obs.onNext(ListModelsResponse.newBuilder().addModels(Model.newBuilder().setId(modelId)
                    .setContextLength(config.maxPositionEmbeddings()).setVocabSize(config.vocabSize())
                    .setFingerprint(fingerprint)).build());
            obs.onCompleted();
        }
    }

    /** INVALID_ARGUMENT (and false) for a model this router does not serve; empty means ours. */
    <T> boolean checkModel(String model, StreamObserver<T> obs) {
        if (!model.isEmpty() && !model.equals(modelId)) {
            obs.onError(Status.INVALID_ARGUMENT.withDescription("unknown model '" + model + "'; this router serves '"
                    + modelId + "'").asRuntimeException());
            return false;
        }
        return true;
    }
}
