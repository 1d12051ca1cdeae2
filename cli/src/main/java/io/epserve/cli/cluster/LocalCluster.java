package io.epserve.cli.cluster;

import io.epserve.cluster.TerminationSignals;
import io.epserve.model.config.ModelConfig;
import io.epserve.proto.admin.v1.AdminGrpc;
import io.epserve.proto.admin.v1.StatusRequest;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A cluster of real worker processes on 127.0.0.1, started the way an operator would start them
 * ({@code java ... io.epserve.cli.Main expert-worker|attention-worker ...}): N expert workers with the routed experts
 * split into contiguous ranges, then attention workers that connect to all of them. Each process's output goes to
 * a log file; start waits for every ready line, and {@link #close} stops them with SIGTERM (SIGKILL after a grace
 * period).
 */
public final class LocalCluster implements AutoCloseable {
    private static final Pattern GRPC_PORT = Pattern.compile("grpc [^ ;]+:(\\d+);");
    private static final Pattern ROUTER_PORT = Pattern.compile("grpc [^ ,]+:(\\d+),");
    private static final Pattern METRICS_PORT = Pattern.compile("; metrics [^ ;,]+:(\\d+)");

    /** Settings; every setter returns this. */
    public static final class Options {
        Path model;
        int expertWorkers = 2;
        int attentionWorkers = 1;
        int microBatches = 2;
        int[] microBatchesPerWorker;
        String kernels = "exact";
        Integer attentionThreads;
        Integer expertThreads;
        long expertTimeoutMs = 10_000;
        long readyTimeoutMs = 120_000;
        int waveExperts = 1;
        boolean pin;
        String idle = "backoff";
        final List<String> jvmArgs = new ArrayList<>();
        final List<String> expertArgs = new ArrayList<>();
        Path logDir;
        Integer routerPort;
        boolean ipc;
        boolean controlPlane;
        Path artifacts;
        String clusterName;
        final List<String> clusterArgs = new ArrayList<>();
        boolean metrics;

        /** Every process serves /metrics on a free port ({@code --metrics-port 0}): {@link Worker#metricsPort()}. */
        public Options metrics(boolean v) { metrics = v; return this; }

        /**
         * One attention worker and one expert worker over Aeron IPC: the attention worker's embedded media driver is
         * shared with the expert worker ({@code --external-driver}), both listening on {@code ipc}.
         */
        public Options ipc(boolean v) { ipc = v; return this; }
        /**
         * Every process joins one Hazelcast cluster (its own name and ports): the coordinator places the experts,
         * attention workers and the router find each other there. Expert workers start one after the other, so
         * expert worker 1 is the oldest member, i.e. the first coordinator.
         */
        public Options controlPlane(boolean v) { controlPlane = v; return this; }
        /** More flags for every process of a control-plane cluster (e.g. --redundant-experts 1). */
        public Options clusterArg(String v) { clusterArgs.add(v); return this; }
        /**
         * Run the processes from the built distribution, as an operator would: {@code DIR/epserve-cli.jar} and
         * {@code DIR/lib/*} (the cli module's target directory), instead of this JVM's class path.
         */
        public Options artifacts(Path cliTarget) { artifacts = cliTarget; return this; }
        /** The cluster's name (default: one of its own, so that test clusters never meet). */
        public Options clusterName(String v) { clusterName = v; return this; }

        /** Also start a router on this port (0: any free port) in front of the attention workers. */
        public Options router(int port) { routerPort = port; return this; }
        public Options model(Path v) { model = v; return this; }
        public Options expertWorkers(int v) { expertWorkers = v; return this; }
        public Options attentionWorkers(int v) { attentionWorkers = v; return this; }
        public Options microBatches(int v) { microBatches = v; return this; }
        /** One attention worker per value, each with that many micro-batches (overrides attentionWorkers). */
        public Options microBatchesPerWorker(int... v) { microBatchesPerWorker = v.clone(); attentionWorkers = v.length; return this; }
        public Options kernels(String v) { kernels = v; return this; }
        public Options attentionThreads(Integer v) { attentionThreads = v; return this; }
        public Options expertThreads(Integer v) { expertThreads = v; return this; }
        public Options expertTimeoutMs(long v) { expertTimeoutMs = v; return this; }
        public Options readyTimeoutMs(long v) { readyTimeoutMs = v; return this; }
        public Options waveExperts(int v) { waveExperts = v; return this; }
        /** Pins attention workers to CPU 0 and expert workers to CPU 1 with taskset (two-core overlap figures). */
        public Options pin(boolean v) { pin = v; return this; }
        public Options idle(String v) { idle = v; return this; }
        public Options jvmArg(String v) { jvmArgs.add(v); return this; }
        /** One more flag for every expert worker (e.g. --no-merge-exchanges). */
        public Options expertArg(String v) { expertArgs.add(v); return this; }
        public Options logDir(Path v) { logDir = v; return this; }
    }

    public static Options options() {
        return new Options();
    }

    /** One worker process. */
    public static final class Worker {
        public final String role;
        public final int id;
        public final Process process;
        public final Path log;
        /** Aeron endpoint (HOST:PORT) of its inbox (attention) or listen channel (expert). */
        public final String endpoint;
        public final List<String> command;
        volatile String readyLine;
        volatile int grpcPort = -1;
        volatile int metricsPort = -1;
        Thread pump;

        Worker(String role, int id, Process process, Path log, String endpoint, List<String> command) {
            this.role = role;
            this.id = id;
            this.process = process;
            this.log = log;
            this.endpoint = endpoint;
            this.command = command;
        }

        public String readyLine() {
            return readyLine;
        }

        /** The attention worker's gRPC port. */
        public int grpcPort() {
            return grpcPort;
        }

        /** The port of its /metrics endpoint (from its ready line), or -1 when it has none. */
        public int metricsPort() {
            return metricsPort;
        }

        public long pid() {
            return process.pid();
        }

        /** SIGKILL, as a machine failure would. */
        public void kill() {
            // Through the handle: Process.destroy* would also close our end of its output, losing the log's tail.
            process.toHandle().destroyForcibly();
            try {
                process.waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        /** The last lines of its log, for error messages. */
        public String logTail(int lines) {
            try {
                List<String> all = Files.readAllLines(log, StandardCharsets.UTF_8);
                return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
            } catch (IOException e) {
                return "(log unreadable: " + e.getMessage() + ")";
            }
        }

        @Override
        public String toString() {
            return role + " " + id + " (pid " + process.pid() + ", log " + log + ")";
        }
    }

    private final Options o;
    private final List<Worker> experts = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final List<Worker> attention = new ArrayList<>();
    private volatile Worker router;
    private final List<ManagedChannel> channels = new ArrayList<>();

    private String clusterName;
    private int clusterPort;
    private Path logs;

    private final AtomicBoolean closed = new AtomicBoolean();
    /**
     * Stops the workers when this JVM ends without {@link #close()} (SIGTERM or Ctrl-C of a command that does not
     * take the signals over itself, an uncaught error): they would outlive it otherwise. A SIGKILL runs no hook;
     * the workers then see their parent gone ({@link TerminationSignals#PARENT_PID_ENV}).
     */
    private final Thread shutdownHook = new Thread(this::close, "epserve-local-cluster-stop");
    private static volatile boolean closedByShutdown;

    private LocalCluster(Options o) {
        this.o = o;
    }

    /** The flags that make a process join this cluster's control plane (empty without one). */
    public List<String> clusterFlags() {
        if (clusterName == null) {
            return List.of();
        }
        List<String> f = new ArrayList<>(List.of("--cluster-name", clusterName, "--cluster-port",
                String.valueOf(clusterPort), "--cluster-members", "127.0.0.1:" + clusterPort + "-" + (clusterPort + 9)));
        f.addAll(o.clusterArgs);
        return f;
    }

    /** A free range of 10 TCP ports for the Hazelcast members, away from the default 5701. */
    private static int freeClusterPorts() throws IOException {
        java.util.Random r = new java.util.Random();
        for (int attempt = 0; attempt < 50; attempt++) {
            int base = 20_000 + r.nextInt(2_000) * 10;
            boolean free = true;
            for (int p = base; p < base + 10 && free; p++) {
                try (ServerSocket t = new ServerSocket(p, 1, InetAddress.getLoopbackAddress())) {
                    t.getLocalPort();
                } catch (IOException e) {
                    free = false;
                }
            }
            if (free) {
                return base;
            }
        }
        throw new IOException("no free range of 10 TCP ports for the cluster's members");
    }

    /** Expert worker {@code id} in the cluster (its experts come from the coordinator). */
    private Worker launchClusterExpert(int id) throws IOException {
        String ep = "127.0.0.1:" + freeUdpPort();
        List<String> args = new ArrayList<>(List.of("expert-worker", "--model", o.model.toString(), "--listen", ep,
                "--worker-id", String.valueOf(id), "--kernels", o.kernels, "--wave-experts",
                String.valueOf(o.waveExperts), "--idle", o.idle));
        if (o.expertThreads != null) {
            args.addAll(List.of("--threads", o.expertThreads.toString()));
        }
        args.addAll(clusterFlags());
        args.addAll(o.expertArgs);
        return launch("expert-worker", id, ep, args, logs, 1);
    }

    /**
     * Scale-up: starts one more expert worker (the next id) and waits for its ready line; the coordinator then gives
     * it experts.
     */
    public synchronized Worker addExpertWorker() throws IOException {
        if (clusterName == null) {
            throw new IllegalStateException("expert workers join at run time only with the control plane");
        }
        int id = experts.stream().mapToInt(w -> w.id).max().orElse(0) + 1;
        Worker w = launchClusterExpert(id);
        experts.add(w);
        awaitReady(w);
        return w;
    }

    /** java, the runtime's flags, the class path and the main class: everything before the subcommand. */
    private List<String> javaCommand() {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(jvmFlags());
        cmd.addAll(o.jvmArgs);
        String cp;
        if (o.artifacts != null) {
            Path jar = o.artifacts.resolve("epserve-cli.jar");
            if (!Files.isRegularFile(jar) || !Files.isDirectory(o.artifacts.resolve("lib"))) {
                throw new IllegalStateException("no built distribution in " + o.artifacts + " (epserve-cli.jar and lib/;"
                        + " build it with ./mvnw -DskipTests package)");
            }
            cp = jar + java.io.File.pathSeparator + o.artifacts.resolve("lib") + java.io.File.separator + "*";
        } else {
            cp = System.getProperty("java.class.path");
        }
        cmd.addAll(List.of("-cp", cp, "io.epserve.cli.Main"));
        return cmd;
    }

    /** What a short-lived epserve process did: its exit code and output. */
    public record Exit(int code, String output) {
    }

    /** Runs {@code ./epserve ARGS} (this JVM's class path and flags) to completion, bounded by {@code timeoutMs}. */
    public Exit run(List<String> args, long timeoutMs) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(javaCommand());
        cmd.addAll(args);
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        CompletableFuture<String> out = CompletableFuture.supplyAsync(() -> {
            try {
                return new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                return "(output unreadable: " + e + ")";
            }
        });
        if (!p.waitFor(timeoutMs, TimeUnit.MILLISECONDS)) {
            p.toHandle().destroyForcibly();
            p.waitFor(10, TimeUnit.SECONDS);
            throw new IllegalStateException("epserve " + args + " did not finish within " + timeoutMs + " ms");
        }
        try {
            return new Exit(p.exitValue(), out.get(10, TimeUnit.SECONDS));
        } catch (java.util.concurrent.ExecutionException | TimeoutException e) {
            return new Exit(p.exitValue(), "(output unreadable: " + e + ")");
        }
    }

    /** Starts a router (after a crash of the old one, say) on {@code port} in this cluster; waits for it. */
    public synchronized Worker startRouter(int port) throws IOException {
        List<String> args = new ArrayList<>(List.of("router", "--model", o.model.toString(), "--port",
                String.valueOf(port)));
        if (clusterName != null) {
            args.addAll(clusterFlags());
        } else {
            args.addAll(List.of("--attention-workers", String.join(",",
                    attention.stream().map(w -> "127.0.0.1:" + w.grpcPort).toList())));
        }
        router = launch("router", 0, "", args, logs, 0);
        awaitPort(router, ROUTER_PORT);
        if (clusterName != null) {
            awaitRouterSeesAttentionWorkers();
        }
        return router;
    }

    /**
     * A clustered router learns of the attention workers through Hazelcast, after its own ready line, and answers
     * UNAVAILABLE until it has one: the cluster is ready for its users only when the router counts every live
     * attention worker as ready.
     */
    private void awaitRouterSeesAttentionWorkers() {
        long live = attention.stream().filter(w -> w.process.isAlive()).count();
        ManagedChannel ch = ManagedChannelBuilder.forAddress("127.0.0.1", router.grpcPort).usePlaintext().build();
        try {
            var admin = AdminGrpc.newBlockingStub(ch);
            awaitWhileAlive(router, "its count of ready attention workers to reach " + live,
                    () -> readyAttentionWorkers(admin) >= live);
        } finally {
            ch.shutdownNow();
        }
    }

    /** How many attention workers the router behind admin counts as ready; -1 while it does not answer. */
    public static long readyAttentionWorkers(AdminGrpc.AdminBlockingStub admin) {
        try {
            return admin.withDeadlineAfter(5, TimeUnit.SECONDS).status(StatusRequest.getDefaultInstance())
                    .getMembersList().stream().filter(m -> m.getRole().equals("attention-worker")
                            && m.getState().equals("ready")).count();
        } catch (StatusRuntimeException e) {
            return -1;
        }
    }

    /** Starts the expert workers, waits for them, then the attention workers; throws (after stopping all) on failure. */
    public static LocalCluster start(Options o) throws IOException {
        if (o.model == null) {
            throw new IllegalArgumentException("no model");
        }
        ModelConfig c = ModelConfig.load(o.model);
        int experts = c.nRoutedExperts();
        if (o.expertWorkers < 1 || o.expertWorkers > experts) {
            throw new IllegalArgumentException("--expert-workers must be in 1.." + experts + " (the model's routed experts), got "
                    + o.expertWorkers);
        }
        if (o.attentionWorkers < 1) {
            throw new IllegalArgumentException("at least one attention worker, got " + o.attentionWorkers);
        }
        Path logs = o.logDir != null ? o.logDir : Files.createTempDirectory("epserve-cluster-");
        Files.createDirectories(logs);
        if (o.ipc && (o.expertWorkers != 1 || o.attentionWorkers != 1)) {
            throw new IllegalArgumentException("an IPC cluster has one attention worker and one expert worker");
        }
        if (o.ipc && o.controlPlane) {
            throw new IllegalArgumentException("the IPC pair runs without the control plane");
        }
        LocalCluster cl = new LocalCluster(o);
        cl.logs = logs;
        Runtime.getRuntime().addShutdownHook(cl.shutdownHook);
        try {
            if (o.ipc) {
                cl.startIpc(logs);
                return cl;
            }
            if (o.controlPlane) {
                cl.startClustered();
                return cl;
            }
            for (int i = 0; i < o.expertWorkers; i++) {
                int lo = i * experts / o.expertWorkers;
                int hi = (i + 1) * experts / o.expertWorkers - 1;
                String ep = "127.0.0.1:" + freeUdpPort();
                List<String> args = new ArrayList<>(List.of("expert-worker", "--model", o.model.toString(),
                        "--experts", lo + "-" + hi, "--listen", ep, "--worker-id", String.valueOf(i + 1),
                        "--kernels", o.kernels, "--wave-experts", String.valueOf(o.waveExperts), "--idle", o.idle));
                if (o.expertThreads != null) {
                    args.addAll(List.of("--threads", o.expertThreads.toString()));
                }
                args.addAll(o.expertArgs);
                cl.experts.add(cl.launch("expert-worker", i + 1, ep, args, logs, 1));
            }
            for (Worker w : cl.experts) {
                cl.awaitReady(w);
            }
            List<String> eps = cl.experts.stream().map(w -> w.endpoint).toList();
            for (int i = 0; i < o.attentionWorkers; i++) {
                String ep = "127.0.0.1:" + freeUdpPort();
                List<String> args = new ArrayList<>(List.of("attention-worker", "--model", o.model.toString(),
                        "--expert-workers", String.join(",", eps), "--listen", ep, "--port", "0",
                        "--worker-id", String.valueOf(100 + i), "--micro-batches",
                        String.valueOf(o.microBatchesPerWorker != null ? o.microBatchesPerWorker[i] : o.microBatches),
                        "--kernels", o.kernels, "--expert-timeout-ms", String.valueOf(o.expertTimeoutMs),
                        "--idle", o.idle));
                if (o.attentionThreads != null) {
                    args.addAll(List.of("--threads", o.attentionThreads.toString()));
                }
                cl.attention.add(cl.launch("attention-worker", 100 + i, ep, args, logs, 0));
            }
            for (Worker w : cl.attention) {
                cl.awaitPort(w, GRPC_PORT);
            }
            if (o.routerPort != null) {
                List<String> targets = cl.attention.stream().map(w -> "127.0.0.1:" + w.grpcPort).toList();
                List<String> args = List.of("router", "--model", o.model.toString(), "--attention-workers",
                        String.join(",", targets), "--port", String.valueOf(o.routerPort));
                cl.router = cl.launch("router", 0, "", args, logs, 0);
                cl.awaitPort(cl.router, ROUTER_PORT);
            }
            return cl;
        } catch (IOException | RuntimeException e) {
            cl.close();
            throw e;
        }
    }

    /** Expert workers one by one (join order = coordinator order), then the attention workers, then the router. */
    private void startClustered() throws IOException {
        clusterName = o.clusterName != null ? o.clusterName
                : "epserve-local-" + ProcessHandle.current().pid() + "-" + Long.toHexString(System.nanoTime());
        clusterPort = freeClusterPorts();
        for (int i = 0; i < o.expertWorkers; i++) {
            Worker w = launchClusterExpert(i + 1);
            experts.add(w);
            awaitReady(w);
        }
        for (int i = 0; i < o.attentionWorkers; i++) {
            String ep = "127.0.0.1:" + freeUdpPort();
            List<String> args = new ArrayList<>(List.of("attention-worker", "--model", o.model.toString(),
                    "--listen", ep, "--port", "0", "--worker-id", String.valueOf(100 + i), "--micro-batches",
                    String.valueOf(o.microBatchesPerWorker != null ? o.microBatchesPerWorker[i] : o.microBatches),
                    "--kernels", o.kernels, "--expert-timeout-ms", String.valueOf(o.expertTimeoutMs),
                    "--idle", o.idle));
            if (o.attentionThreads != null) {
                args.addAll(List.of("--threads", o.attentionThreads.toString()));
            }
            args.addAll(clusterFlags());
            attention.add(launch("attention-worker", 100 + i, ep, args, logs, 0));
        }
        for (Worker w : attention) {
            awaitPort(w, GRPC_PORT);
        }
        if (o.routerPort != null) {
            startRouter(o.routerPort);
        }
    }

    /** The IPC pair: the attention worker first (its driver), then the expert worker attached to that driver. */
    private void startIpc(Path logs) throws IOException {
        String dir = Path.of(io.epserve.transport.MediaDriverHandle.defaultBaseDir().toString(),
                io.epserve.transport.MediaDriverHandle.DIR_PREFIX + ProcessHandle.current().pid() + "-ipc-"
                        + freeUdpPort()).toString();
        List<String> aw = new ArrayList<>(List.of("attention-worker", "--model", o.model.toString(), "--expert-workers",
                "ipc", "--listen", "ipc", "--aeron-dir", dir, "--port", "0", "--worker-id", "100", "--micro-batches",
                String.valueOf(o.microBatches), "--kernels", o.kernels, "--expert-timeout-ms",
                String.valueOf(o.expertTimeoutMs), "--idle", o.idle));
        if (o.attentionThreads != null) {
            aw.addAll(List.of("--threads", o.attentionThreads.toString()));
        }
        attention.add(launch("attention-worker", 100, "ipc", aw, logs, 0));
        // The expert worker needs the driver the attention worker starts: wait for its directory to be usable.
        awaitWhileAlive(attention.get(0), "its media driver (cnc.dat)",
                () -> java.nio.file.Files.exists(Path.of(dir, "cnc.dat")));
        List<String> ew = new ArrayList<>(List.of("expert-worker", "--model", o.model.toString(), "--experts", "all",
                "--listen", "ipc", "--external-driver", dir, "--worker-id", "1", "--kernels", o.kernels,
                "--wave-experts", String.valueOf(o.waveExperts), "--idle", o.idle));
        if (o.expertThreads != null) {
            ew.addAll(List.of("--threads", o.expertThreads.toString()));
        }
        ew.addAll(o.expertArgs);
        experts.add(launch("expert-worker", 1, "ipc", ew, logs, 1));
        awaitReady(experts.get(0));
        awaitPort(attention.get(0), GRPC_PORT);
    }

    public List<Worker> expertWorkers() {
        return experts;
    }

    public List<Worker> attentionWorkers() {
        return attention;
    }

    /** A process of the cluster that is no longer running and not in {@code known}, or null. */
    public Worker firstDead(java.util.Set<Worker> known) {
        List<Worker> all = new ArrayList<>(experts);
        all.addAll(attention);
        if (router != null) {
            all.add(router);
        }
        for (Worker w : all) {
            if (!w.process.isAlive() && !known.contains(w)) {
                return w;
            }
        }
        return null;
    }

    /** A process of the cluster that is no longer running, or null. */
    public Worker firstDead() {
        return firstDead(java.util.Set.of());
    }

    /** The router process, or null when none was asked for. */
    public Worker router() {
        return router;
    }

    /** A plaintext gRPC channel to the router (closed with the cluster). */
    public synchronized ManagedChannel routerChannel() {
        ManagedChannel ch = ManagedChannelBuilder.forAddress("127.0.0.1", router.grpcPort).usePlaintext()
                .maxInboundMessageSize(256 << 20).build();
        channels.add(ch);
        return ch;
    }

    /** A plaintext gRPC channel to attention worker i (closed with the cluster). */
    public synchronized ManagedChannel channel(int i) {
        ManagedChannel ch = ManagedChannelBuilder.forAddress("127.0.0.1", attention.get(i).grpcPort)
                .usePlaintext()
                .maxInboundMessageSize(256 << 20)
                .build();
        channels.add(ch);
        return ch;
    }

    private Worker launch(String role, int id, String endpoint, List<String> args, Path logs, int cpu)
            throws IOException {
        List<String> cmd = new ArrayList<>();
        if (o.pin) {
            cmd.addAll(List.of("taskset", "-c", String.valueOf(cpu)));
        }
        cmd.addAll(javaCommand());
        cmd.addAll(args);
        if (o.metrics) {
            cmd.addAll(List.of("--metrics-port", "0"));
        }
        Path log = logs.resolve(role + "-" + id + ".log");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().put(TerminationSignals.PARENT_PID_ENV, String.valueOf(ProcessHandle.current().pid()));
        Process p = pb.start();
        Worker w = new Worker(role, id, p, log, endpoint, cmd);
        Thread pump = new Thread(() -> pump(w, p.getInputStream()), "epserve-log-" + role + "-" + id);
        pump.setDaemon(true);
        w.pump = pump;
        pump.start();
        return w;
    }

    /** Copies a child's output to its log, noting its ready line. */
    private static void pump(Worker w, InputStream in) {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
             var out = Files.newBufferedWriter(w.log, StandardCharsets.UTF_8)) {
            String line;
            while ((line = r.readLine()) != null) {
                out.write(line);
                out.newLine();
                out.flush();
                if (w.readyLine == null && line.startsWith(w.role + " ") && line.contains(" ready: ")) {
                    w.readyLine = line;
                }
            }
        } catch (IOException e) {
            // The process went away; its exit is noticed by whoever waits for it.
        }
    }

    /** Waits for the ready line and reads the gRPC port from it. */
    private void awaitPort(Worker w, Pattern port) {
        awaitReady(w);
        Matcher m = port.matcher(w.readyLine);
        if (!m.find()) {
            throw new IllegalStateException("no gRPC port in the ready line of " + w + ": " + w.readyLine);
        }
        w.grpcPort = Integer.parseInt(m.group(1));
    }

    private void awaitReady(Worker w) {
        awaitWhileAlive(w, "its ready line", () -> w.readyLine != null);
        Matcher m = METRICS_PORT.matcher(w.readyLine);
        if (m.find()) {
            w.metricsPort = Integer.parseInt(m.group(1));
        }
    }

    /** Polls done every 20 ms until it holds; fails, with w's log tail, if w exits first or the ready timeout passes. */
    private void awaitWhileAlive(Worker w, String what, BooleanSupplier done) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(o.readyTimeoutMs);
        while (!done.getAsBoolean()) {
            if (!w.process.isAlive()) {
                throw new IllegalStateException(w + " exited with code " + w.process.exitValue()
                        + " while waiting for " + what + ":\n" + w.logTail(20));
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(w + ": waited " + o.readyTimeoutMs + " ms for " + what
                        + ", in vain:\n" + w.logTail(20));
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for " + what + " of " + w);
            }
        }
    }

    static List<String> jvmFlags() {
        try (InputStream in = LocalCluster.class.getResourceAsStream("/io/epserve/cli/jvm.flags")) {
            if (in == null) {
                return List.of();
            }
            String s = new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
            return s.isEmpty() || s.startsWith("${") ? List.of() : Arrays.asList(s.split("\\s+"));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A UDP port on 127.0.0.1 that is free now, and free for TCP too. */
    public static int freeUdpPort() throws IOException {
        try (DatagramSocket s = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            int port = s.getLocalPort();
            // Also free for TCP, so the same number is usable by either.
            try (ServerSocket t = new ServerSocket(port, 1, InetAddress.getLoopbackAddress())) {
                return port;
            } catch (IOException e) {
                return freeUdpPort();
            }
        }
    }

    private static void stopAndWait(List<Worker> ws) {
        for (Worker w : ws) {
            w.process.toHandle().destroy();
        }
        for (Worker w : ws) {
            try {
                w.process.waitFor(20, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /**
     * Whether a cluster of this JVM was closed by its shutdown hook: a request that then fails failed because this
     * process is stopping (a signal), not because a worker did.
     */
    public static boolean closedByShutdown() {
        return closedByShutdown;
    }

    /**
     * SIGTERM to every process (attention workers first), SIGKILL to those still running after 20 s. Idempotent; also
     * run by a shutdown hook if this JVM ends first.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        if (Thread.currentThread() == shutdownHook) {
            closedByShutdown = true;
        } else {
            try {
                Runtime.getRuntime().removeShutdownHook(shutdownHook);
            } catch (IllegalStateException shuttingDown) {
                // the hook runs or has run: this close is the only one that does anything
            }
        }
        for (ManagedChannel ch : channels) {
            ch.shutdownNow();
        }
        List<Worker> all = new ArrayList<>();
        if (router != null) {
            all.add(router);
        }
        all.addAll(attention);
        all.addAll(experts);
        if (o.ipc) {
            // The expert worker is a client of the attention worker's driver: stop it first.
            stopAndWait(experts);
        }
        for (Worker w : all) {
            // SIGTERM through the handle: Process.destroy() would close our end of its output before its stop lines.
            w.process.toHandle().destroy();
        }
        List<CompletableFuture<Process>> exits = all.stream().map(w -> w.process.onExit()).toList();
        try {
            CompletableFuture.allOf(exits.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
        } catch (TimeoutException | java.util.concurrent.ExecutionException e) {
            // fall through to SIGKILL
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (Worker w : all) {
            if (w.process.isAlive()) {
                w.process.toHandle().destroyForcibly();
            }
        }
        // The logs are complete (stop lines included) once the pumps have read to the end of the output.
        for (Worker w : all) {
            try {
                w.pump.join(5_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
