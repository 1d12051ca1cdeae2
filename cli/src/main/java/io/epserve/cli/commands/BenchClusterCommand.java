package io.epserve.cli.commands;

import io.epserve.cli.cluster.LocalCluster;
import io.epserve.cluster.metrics.Metrics;
import io.epserve.cluster.metrics.MetricsScrape;
import io.epserve.model.config.ConfigException;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.LocalModel;
import io.epserve.model.engine.Sampler;
import io.epserve.model.engine.SequenceCache;
import io.epserve.model.engine.Transformer;
import io.epserve.proto.worker.v1.AttentionWorkerGrpc;
import io.epserve.proto.worker.v1.Chunk;
import io.epserve.proto.worker.v1.DecodeRequest;
import io.epserve.proto.worker.v1.DecodeResponse;
import io.epserve.proto.worker.v1.LayerLatency;
import io.epserve.proto.worker.v1.StepTiming;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.DoubleSupplier;
import java.util.function.Supplier;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "bench-cluster", mixinStandardHelpOptions = true,
        description = {
            "Starts a local cluster (--attention-workers attention workers, default 1, and --expert-workers expert"
                    + " workers), decodes a batch of random prompts inside each attention worker and prints decode"
                    + " tokens/s, where the attention worker's"
                    + " time went per step (attention, shared expert, dispatch, exposed wait for combines), the expert"
                    + " workers' own busy time per step (read from their /metrics, the prefill's share subtracted) and"
                    + " per-layer dispatch and round-trip latency percentiles.",
            "--pin puts the attention workers on CPU 0 and the expert workers on CPU 1 (taskset). --compare-local then"
                    + " runs the single-process engine on the same batch in this process, with the cluster stopped,"
                    + " for the ratio.",
            "With --pin, before the cluster starts, a CPU check runs the expert workers' kernel on CPU 0 alone, on"
                    + " CPU 1 alone and on both at once (--no-cpu-check skips it): overlap needs both CPUs busy at"
                    + " the same time, so if two busy CPUs run at, say, 65 %% of their speed alone (hyperthread"
                    + " siblings, or other tenants of the host), m = 2 cannot reach the ratios of a quiet machine.",
            "Several --micro-batches values (e.g. 1,2) and --rounds N measure each m (in reverse order every other"
                    + " round), then the single process, in turn, N times over, and end with a table of the ratios of"
                    + " each round and, from 3 rounds, their medians: on a machine whose speed drifts, only figures"
                    + " measured side by side compare. With --compare-local each round starts (and warms up) its own"
                    + " cluster, stopped before the single process runs."
        })
public final class BenchClusterCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "Model directory.")
    Path model;

    @Option(names = "--batch", defaultValue = "16", description = "Sequences decoded together. Default: ${DEFAULT-VALUE}.")
    int batch;

    @Option(names = "--tokens", defaultValue = "32", description = "Decode steps measured. Default: ${DEFAULT-VALUE}.")
    int tokens;

    @Option(names = "--prompt-tokens", defaultValue = "16", description = "Prompt length. Default: ${DEFAULT-VALUE}.")
    int promptTokens;

    @Option(names = "--warmup", defaultValue = "8",
            description = "Unmeasured decode steps of a warm-up run (a separate batch) at every m. Default: ${DEFAULT-VALUE}.")
    int warmup;

    @Option(names = "--warmup-max-seconds", defaultValue = "120",
            description = "After the --warmup steps of every m, more warm-up runs follow until the JIT compilers have"
                    + " settled (the workers' compilation time grew by less than " + JIT_SETTLED_PERCENT + " percent of the"
                    + " last run's wall time), for at most this long; the same for the single process. 0: the"
                    + " --warmup steps only. Default: ${DEFAULT-VALUE}.")
    int warmupMaxSeconds;

    @Option(names = "--micro-batches", defaultValue = "2", split = ",", paramLabel = "M",
            description = "1..4, or several (e.g. 1,2), measured in turn. Default: ${DEFAULT-VALUE}.")
    List<Integer> microBatches;

    @Option(names = "--lockstep", negatable = true, defaultValue = "false", fallbackValue = "true",
            description = "Also measure each m > 1 with lockstep steps (every micro-batch ends step s before any"
                    + " starts s + 1), beside the default pipelined steps (each micro-batch goes on as soon as its own"
                    + " step is done). Default: ${DEFAULT-VALUE}.")
    boolean lockstep;

    @Option(names = "--rounds", defaultValue = "1",
            description = "Times each m (and the single process) is measured, in turn. Default: ${DEFAULT-VALUE}.")
    int rounds;

    @Option(names = "--expert-workers", defaultValue = "1", paramLabel = "N", description = "Default: ${DEFAULT-VALUE}.")
    int expertWorkers;

    @Option(names = "--attention-workers", defaultValue = "1", paramLabel = "N",
            description = "Attention workers sharing the expert workers, each decoding its own batch of --batch"
                    + " sequences; their runs go at once, and the cluster figure is all their tokens over the slowest"
                    + " run's time. Default: ${DEFAULT-VALUE}.")
    int attentionWorkers;

    @Option(names = "--kernels", defaultValue = "fast", description = "exact or fast. Default: ${DEFAULT-VALUE}.")
    String kernels;

    @Option(names = "--threads", description = "Compute threads per worker (default: 1 with --pin, else available cores).")
    Integer threads;

    @Option(names = "--pin", description = "taskset: attention worker on CPU 0, expert workers on CPU 1.")
    boolean pin;

    @Option(names = "--cpu-check", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "With --pin: measure how much CPUs 0 and 1 slow each other when both compute, before each"
                    + " cluster starts. Default: ${DEFAULT-VALUE}.")
    boolean cpuCheck;

    @Option(names = "--ipc", description = "The expert worker shares the attention worker's media driver and both talk"
            + " over Aeron IPC instead of UDP (shared memory; needs --expert-workers 1).")
    boolean ipc;

    @Option(names = "--idle", description = "How the workers wait: backoff, busy-spin, yielding, sleeping or noop."
            + " Default: yielding with --pin (the CPU never halts, since a CPU that was allowed to halt between"
            + " layers computed 1.5-3x slower after waking on a VM, yet the worker's media driver thread, which"
            + " shares that CPU, gets it whenever it has a message to move; busy-spin made it wait for the"
            + " scheduler's tick), else backoff.")
    String idle;

    /** --idle, or its default: yielding with --pin, else backoff. */
    private String idleStrategy() {
        return idle != null ? idle : pin ? "yielding" : "backoff";
    }

    @Option(names = "--compare-local", description = "Also run the single-process engine on the same batch and print the ratio.")
    boolean compareLocal;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the random prompts. Default: ${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--log-dir", description = "Where the workers' logs go (default: a new temporary directory).")
    Path logDir;

    @Option(names = "--expert-worker-arg", paramLabel = "ARG",
            description = "Extra flag for every expert worker (repeatable), e.g. --no-merge-exchanges.")
    List<String> expertWorkerArgs = new ArrayList<>();

    @Option(names = "--worker-jvm-arg", paramLabel = "ARG",
            description = "Extra JVM option for every worker process (repeatable), e.g. -XX:+PrintCompilation.")
    List<String> workerJvmArgs = new ArrayList<>();

    @Override
    public Integer call() {
        if (batch < 1 || tokens < 1 || promptTokens < 1 || warmup < 0 || rounds < 1 || warmupMaxSeconds < 0) {
            return CliErrors.usage("--batch, --tokens, --prompt-tokens and --rounds must be >= 1, --warmup and"
                    + " --warmup-max-seconds >= 0");
        }
        if (ipc && expertWorkers != 1) {
            return CliErrors.usage("--ipc runs one expert worker, got --expert-workers " + expertWorkers);
        }
        if (attentionWorkers < 1 || attentionWorkers > 1 && (ipc || compareLocal)) {
            return CliErrors.usage("--attention-workers must be >= 1, and 1 with --ipc or --compare-local, got "
                    + attentionWorkers);
        }
        for (int m : microBatches) {
            if (m < 1 || m > 4) {
                return CliErrors.usage("--micro-batches must be 1..4, got " + m);
            }
        }
        ModelConfig c;
        try {
            c = ModelConfig.load(model);
        } catch (ConfigException | IllegalArgumentException e) {
            return CliErrors.usage("cannot use model " + model + ": " + e.getMessage());
        }
        if (promptTokens + Math.max(warmup, tokens) + 1 > c.maxPositionEmbeddings()) {
            return CliErrors.usage("prompt + decode steps exceed the context of " + c.maxPositionEmbeddings());
        }
        Integer perWorker = threads != null ? threads : (pin ? Integer.valueOf(1) : null);
        int[][] prompts = prompts(c, batch, promptTokens, seed);
        List<Integer> runM = new ArrayList<>();
        List<Boolean> runLockstep = new ArrayList<>();
        for (int m : microBatches) {
            runM.add(m);
            runLockstep.add(false);
            if (lockstep && m > 1) {
                runM.add(m);
                runLockstep.add(true);
            }
        }
        int ms = runM.size();
        double[][] clusterTps = new double[rounds][ms];
        double[] localTps = new double[rounds];
        double[] cpuPair = new double[rounds];
        Arrays.fill(cpuPair, Double.NaN);
        LocalCluster.Options o = LocalCluster.options().model(model).expertWorkers(expertWorkers)
                .microBatches(microBatches.get(0)).kernels(kernels).attentionThreads(perWorker)
                .expertThreads(perWorker).pin(pin).idle(idleStrategy()).logDir(logDir).expertTimeoutMs(60_000).metrics(true)
                .ipc(ipc).attentionWorkers(attentionWorkers);
        workerJvmArgs.forEach(o::jvmArg);
        expertWorkerArgs.forEach(o::expertArg);
        // With --compare-local the single process runs here between the cluster's runs, so that every round measures
        // both in the same minutes, and with the cluster stopped: its idle processes (the embedded media drivers'
        // polling above all) used 17-26 % of one core meanwhile, a handicap for the single process. So each round
        // starts a cluster, warms it up, measures each m, stops it and then measures the single process.
        LocalCluster cluster = null;
        try (LocalModel local = compareLocal ? CliErrors.openModel(model, kernels, perWorker == null ? null
                : 2 * perWorker) : null) {
            if (local != null && warmup > 0) {
                warmUpLocal(local, prompts);
            }
            for (int round = 0; round < rounds; round++) {
                if (cluster == null) {
                    if (pin && cpuCheck) {
                        cpuPair[round] = checkCpus();
                    }
                    cluster = LocalCluster.start(o);
                    if (warmup > 0) {
                        warmUp(cluster, prompts);
                    }
                }
                // Every other round runs the m's in reverse order, so that a drift of the machine's speed within a
                // round favours neither end of the ratios.
                for (int n = 0; n < ms; n++) {
                    int k = round % 2 == 0 ? n : ms - 1 - n;
                    int m = runM.get(k);
                    boolean ls = runLockstep.get(k);
                    // The measured request prefills too: the experts' busy time of the same prefill alone is
                    // subtracted.
                    double[] b0 = expertBusySeconds(cluster);
                    decodeAll(cluster, request("prefill", prompts, 0, m, ls));
                    double[] b1 = expertBusySeconds(cluster);
                    List<DecodeResponse> rs = decodeAll(cluster, request("run", prompts, tokens, m, ls));
                    double[] b2 = expertBusySeconds(cluster);
                    double[] decodeBusy = null;
                    if (b0 != null && b1 != null && b2 != null) {
                        decodeBusy = new double[b2.length];
                        for (int i = 0; i < b2.length; i++) {
                            decodeBusy[i] = Math.max(0, (b2[i] - b1[i]) - (b1[i] - b0[i]));
                        }
                    }
                    if (rounds > 1) {
                        System.out.printf("-- round %d of %d%n", round + 1, rounds);
                    }
                    long allTokens = 0;
                    double slowest = 0;
                    for (int i = 0; i < rs.size(); i++) {
                        StepTiming t = rs.get(i).getTiming();
                        allTokens += t.getTokens();
                        slowest = Math.max(slowest, t.getWallSeconds());
                        if (rs.size() > 1) {
                            System.out.printf("attention worker %d of %d:%n", i + 1, rs.size());
                        }
                        print(t, c, decodeBusy, ls);
                    }
                    clusterTps[round][k] = allTokens / slowest;
                    if (rs.size() > 1) {
                        System.out.printf("%d attention workers together: %.2f tokens/s (%d tokens, the slowest run"
                                + " %.2f s)%n", rs.size(), clusterTps[round][k], allTokens, slowest);
                    }
                }
                if (local != null) {
                    cluster.close();
                    cluster = null;
                    double seconds = decodeLocal(local, prompts, tokens);
                    localTps[round] = (double) prompts.length * tokens / seconds;
                    System.out.printf("single process (same batch, %s kernels, the cluster stopped): %.2f tokens/s;"
                            + " cluster / single process = %s%n", kernels, localTps[round],
                            ratios(clusterTps[round], localTps[round]));
                }
            }
        } catch (StatusRuntimeException e) {
            if (LocalCluster.closedByShutdown()) {
                System.err.println("epserve bench-cluster: stopped (this process is shutting down; its cluster was closed)");
                return 1;
            }
            System.err.println("epserve bench-cluster: the attention worker failed: " + e.getStatus());
            return 1;
        } catch (IllegalStateException e) {
            System.err.println("epserve bench-cluster: " + e.getMessage());
            return 1;
        } catch (IOException e) {
            System.err.println("epserve bench-cluster: " + e.getMessage());
            return 1;
        } finally {
            if (cluster != null) {
                cluster.close();
            }
        }
        if (ms > 1 || rounds > 1) {
            List<String> labels = new ArrayList<>();
            for (int k = 0; k < ms; k++) {
                labels.add("m" + runM.get(k) + (runLockstep.get(k) ? "ls" : ""));
            }
            summary(labels, clusterTps, compareLocal ? localTps : null, pin && cpuCheck ? cpuPair : null);
        }
        return 0;
    }

    /** The same decode request to every attention worker, all at once; their answers in worker order. */
    private static List<DecodeResponse> decodeAll(LocalCluster cluster, DecodeRequest request) {
        int n = cluster.attentionWorkers().size();
        List<DecodeResponse> answers = new ArrayList<>(Collections.nCopies(n, null));
        List<Thread> threads = new ArrayList<>();
        AtomicReference<StatusRuntimeException> failed = new AtomicReference<>();
        for (int i = 0; i < n; i++) {
            var stub = AttentionWorkerGrpc.newBlockingStub(cluster.channel(i));
            int at = i;
            threads.add(Thread.ofVirtual().start(() -> {
                try {
                    answers.set(at, stub.withDeadlineAfter(30, TimeUnit.MINUTES).decode(request));
                } catch (StatusRuntimeException e) {
                    failed.compareAndSet(null, e);
                }
            }));
        }
        for (Thread t : threads) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while the attention workers decode");
            }
        }
        if (failed.get() != null) {
            throw failed.get();
        }
        return answers;
    }

    /**
     * Warm-up runs of --warmup steps at every m until the workers' JIT compilers have settled or --warmup-max-seconds
     * have passed. A step count alone ended warm-up while C2 was still compiling: pinned workers give their compiler
     * threads only what the busy engine thread leaves of one CPU, and on a 2-vCPU VM the cluster's compilation went
     * on for 1-3 minutes, its decode speed creeping up meanwhile.
     */
    private void warmUp(LocalCluster cluster, int[][] prompts) {
        warmUp("cluster", () -> {
            StringBuilder speeds = new StringBuilder();
            for (int m : microBatches) {
                StepTiming t = decodeAll(cluster, request("warm", prompts, warmup, m, false)).get(0).getTiming();
                speeds.append(String.format(Locale.ROOT, " m%d %.1f", m, t.getTokens() / t.getWallSeconds()));
            }
            return speeds.toString();
        }, () -> jitSeconds(cluster));
    }

    /** {@link #warmUp} for the single process in this JVM (its own compilation time). */
    private void warmUpLocal(LocalModel local, int[][] prompts) {
        CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
        boolean timed = jit != null && jit.isCompilationTimeMonitoringSupported();
        warmUp("single process",
                () -> String.format(Locale.ROOT, " %.1f", prompts.length * warmup / decodeLocal(local, prompts, warmup)),
                () -> timed ? jit.getTotalCompilationTime() / 1e3 : Double.NaN);
    }

    /**
     * Warm-up runs until {@link #warmUpDone}: each run returns its decode speeds as text, jitSeconds reads the
     * accumulated compilation time (NaN if it cannot).
     */
    private void warmUp(String who, Supplier<String> run, DoubleSupplier jitSeconds) {
        long start = System.nanoTime();
        for (int n = 1; ; n++) {
            double c0 = jitSeconds.getAsDouble();
            long t0 = System.nanoTime();
            String speeds = run.get();
            double wall = (System.nanoTime() - t0) / 1e9;
            double grew = jitSeconds.getAsDouble() - c0;
            System.out.printf("  warm-up run %d: tokens/s%s; JIT compilation %.0f ms of the run's %.1f s%n", n,
                    speeds, 1e3 * grew, wall);
            if (warmUpDone(who, n, (System.nanoTime() - start) / 1e9, wall, grew)) {
                return;
            }
        }
    }

    /** Whether warm-up ends after this run; prints a line when it does. */
    private boolean warmUpDone(String who, int runs, double elapsed, double lastWall, double lastJitGrowth) {
        boolean settled = jitSettled(lastJitGrowth, lastWall);
        if (!settled && warmupMaxSeconds > 0 && elapsed < warmupMaxSeconds && !Double.isNaN(lastJitGrowth)) {
            return false;
        }
        System.out.printf("warm-up (%s): %d run%s of %d steps%s in %.1f s; JIT compilation in the last run %s%n", who,
                runs, runs == 1 ? "" : "s", warmup, who.equals("cluster") ? " at every m" : "", elapsed,
                Double.isNaN(lastJitGrowth) ? "unknown" : String.format(Locale.ROOT, "%.0f ms (%s)",
                        1e3 * lastJitGrowth, settled ? "settled" : warmupMaxSeconds == 0 ? "not waited for"
                                : "not settled within --warmup-max-seconds"));
        return true;
    }

    /**
     * The share of a run's wall time below which the JIT compilers count as settled. Not near zero: pinned workers on
     * a 2-vCPU VM kept compiling 3-10 % of each 12 s run for minutes (two thirds C1 code of rarely taken paths: gRPC,
     * metrics, the end-of-run report; a compile's time also counts while the busy engine thread holds its CPU), their
     * decode speed flat after the first minute or so.
     */
    static final int JIT_SETTLED_PERCENT = 5;

    /** Whether compilation time grown during a run of wallSeconds is small enough to call the JIT settled. */
    static boolean jitSettled(double compileSecondsGrown, double wallSeconds) {
        return compileSecondsGrown >= 0 && compileSecondsGrown < JIT_SETTLED_PERCENT / 100.0 * wallSeconds;
    }

    /** The JIT compilation time of all workers together, seconds, or NaN if one cannot be read. */
    private static double jitSeconds(LocalCluster cluster) {
        double s = 0;
        List<LocalCluster.Worker> workers = new ArrayList<>(cluster.attentionWorkers());
        workers.addAll(cluster.expertWorkers());
        try {
            for (LocalCluster.Worker w : workers) {
                s += MetricsScrape.fetch("127.0.0.1", w.metricsPort()).value(JIT_SECONDS);
            }
        } catch (IOException | RuntimeException e) {
            System.err.println("epserve bench-cluster: cannot read the workers' JIT compilation time: "
                    + e.getMessage());
            return Double.NaN;
        }
        return s;
    }

    /** The JVM metric (Prometheus' JVM instrumentation) of HotSpot's accumulated compilation time. */
    private static final String JIT_SECONDS = "jvm_compilation_time_seconds_total";

    /** Prints and returns how fast CPUs 0 and 1 compute together relative to alone (NaN if it cannot tell). */
    private static double checkCpus() {
        try (CpuPairProbe probe = new CpuPairProbe(0, 1)) {
            CpuPairProbe.Result r = probe.measure(3000, 1000);
            System.out.printf("CPU check (one-token FP4 expert product, from cache): CPU 0 alone %.1f,"
                    + " CPU 1 alone %.1f, both at once %.1f + %.1f GFLOP/s: two busy CPUs run at %.0f%% of their"
                    + " speed alone%n",
                    r.alone0(), r.alone1(), r.together0(), r.together1(), 100 * r.ratio());
            return r.ratio();
        } catch (IllegalStateException e) {
            System.err.println("epserve bench-cluster: no CPU check: " + e.getMessage());
            return Double.NaN;
        }
    }

    /** Each expert worker's {@code epserve_expert_busy_seconds_total}, or null if one cannot be read. */
    private static double[] expertBusySeconds(LocalCluster cluster) {
        List<LocalCluster.Worker> ws = cluster.expertWorkers();
        double[] busy = new double[ws.size()];
        try {
            for (int i = 0; i < busy.length; i++) {
                busy[i] = MetricsScrape.fetch("127.0.0.1", ws.get(i).metricsPort()).value(Metrics.EXPERT_BUSY_SECONDS);
            }
        } catch (IOException | RuntimeException e) {
            System.err.println("epserve bench-cluster: cannot read the expert workers' busy time: " + e.getMessage());
            return null;
        }
        return busy;
    }

    private void print(StepTiming t, ModelConfig c, double[] expertBusy, boolean lockstep) {
        double steps = t.getSteps();
        System.out.printf("model %s, %s kernels, batch %d, prompt %d, %d decode steps, %d micro-batch%s%s, %d expert worker%s%s%n",
                model, kernels, batch, promptTokens, t.getSteps(), t.getMicroBatches(), t.getMicroBatches() == 1 ? "" : "es",
                t.getMicroBatches() == 1 ? "" : lockstep ? " in lockstep" : " pipelined",
                expertWorkers, expertWorkers == 1 ? "" : "s", (ipc ? ", over IPC" : ", over UDP")
                        + (pin ? ", pinned (attention CPU 0, experts CPU 1)" : "") + ", idle " + idleStrategy());
        System.out.printf("cluster decode: %.2f tokens/s (%.2f ms per step)%n", t.getTokens() / t.getWallSeconds(),
                1e3 * t.getWallSeconds() / steps);
        double wall = t.getWallSeconds();
        double expertRt = 0;
        for (LayerLatency l : t.getLayersList()) {
            expertRt += l.getRoundTripMeanUs() * l.getExchanges() / 1e6;
        }
        System.out.printf("per step: attention %.2f ms, shared expert %.2f ms, dispatch %.2f ms, exposed wait %.2f ms "
                        + "(%.1f%% of the step); experts' round trips %.2f ms summed over layers and micro-batches%n",
                1e3 * t.getAttentionSeconds() / steps, 1e3 * t.getSharedExpertSeconds() / steps,
                1e3 * t.getDispatchSeconds() / steps, 1e3 * t.getExposedWaitSeconds() / steps,
                100 * t.getExposedWaitSeconds() / wall, 1e3 * expertRt / steps);
        if (expertBusy != null) {
            StringBuilder b = new StringBuilder("expert workers' own time per step (running experts, offering"
                    + " combines):");
            for (int i = 0; i < expertBusy.length; i++) {
                b.append(String.format(Locale.ROOT, "%s %.2f ms (busy %.1f%% of the step)", i == 0 ? "" : ";",
                        1e3 * expertBusy[i] / steps, 100 * expertBusy[i] / wall));
            }
            System.out.println(b);
        }
        System.out.printf("traffic per step: dispatch %.1f KB, combine %.1f KB, %d routed (token, slot) pairs;"
                        + " the attention worker's engine thread allocated %.1f KB per step%n",
                t.getDispatchBytes() / steps / 1e3, t.getCombineBytes() / steps / 1e3,
                Math.round(t.getRoutedSlots() / steps), t.getEngineAllocatedBytes() / steps / 1e3);
        System.out.println("layer  exchanges  dispatch p50/p99 us  round trip p50/p90/p99 us");
        for (LayerLatency l : t.getLayersList()) {
            System.out.printf("%5d  %9d  %8.0f / %-8.0f  %8.0f / %.0f / %.0f%n", l.getLayer(), l.getExchanges(),
                    l.getDispatchP50Us(), l.getDispatchP99Us(), l.getRoundTripP50Us(), l.getRoundTripP90Us(),
                    l.getRoundTripP99Us());
        }
    }

    /** "a / b / c" of each cluster figure over the single process's. */
    private static String ratios(double[] cluster, double local) {
        StringBuilder b = new StringBuilder();
        for (double t : cluster) {
            b.append(b.isEmpty() ? "" : " / ").append(String.format(Locale.ROOT, "%.2f", t / local));
        }
        return b.toString();
    }

    /** The median over the rounds of a per-round figure (the mean of the middle two for an even count). */
    static double median(int rounds, java.util.function.IntToDoubleFunction perRound) {
        double[] v = new double[rounds];
        for (int r = 0; r < v.length; r++) {
            v[r] = perRound.applyAsDouble(r);
        }
        Arrays.sort(v);
        int n = v.length;
        return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    }

    /**
     * One line per round: tokens/s of each run (m, "ls" for lockstep steps), each over the first, over the single
     * process, and the CPU check's together-over-alone speed before the round (where it ran); then, from 3 rounds,
     * the median of each column (of the ratios themselves, not the ratio of medians).
     */
    private static void summary(List<String> labels, double[][] cluster, double[] local, double[] cpuPair) {
        int ms = labels.size();
        StringBuilder h = new StringBuilder("round");
        for (String l : labels) {
            h.append(String.format(Locale.ROOT, "  %8s", l));
        }
        for (int k = 1; k < ms; k++) {
            h.append(String.format(Locale.ROOT, "  %9s", labels.get(k) + "/" + labels.get(0)));
        }
        if (local != null) {
            h.append(String.format(Locale.ROOT, "  %8s", "single"));
            for (String l : labels) {
                h.append(String.format(Locale.ROOT, "  %10s", l + "/single"));
            }
        }
        if (cpuPair != null) {
            h.append(String.format(Locale.ROOT, "  %9s", "cpus both"));
        }
        System.out.println("side by side (decode tokens/s, each round measured in the same minutes):");
        System.out.println(h);
        for (int r = 0; r < cluster.length; r++) {
            StringBuilder b = new StringBuilder(String.format(Locale.ROOT, "%5d", r + 1));
            for (double t : cluster[r]) {
                b.append(String.format(Locale.ROOT, "  %8.2f", t));
            }
            for (int k = 1; k < ms; k++) {
                b.append(String.format(Locale.ROOT, "  %9.2f", cluster[r][k] / cluster[r][0]));
            }
            if (local != null) {
                b.append(String.format(Locale.ROOT, "  %8.2f", local[r]));
                for (double t : cluster[r]) {
                    b.append(String.format(Locale.ROOT, "  %10.2f", t / local[r]));
                }
            }
            if (cpuPair != null) {
                b.append(Double.isNaN(cpuPair[r]) ? String.format(Locale.ROOT, "  %9s", "-")
                        : String.format(Locale.ROOT, "  %8.0f%%", 100 * cpuPair[r]));
            }
            System.out.println(b);
        }
        int n = cluster.length;
        if (n >= 3) {
            StringBuilder b = new StringBuilder("median");
            for (int k = 0; k < ms; k++) {
                int at = k;
                b.append(String.format(Locale.ROOT, k == 0 ? " %8.2f" : "  %8.2f", median(n, r -> cluster[r][at])));
            }
            for (int k = 1; k < ms; k++) {
                int at = k;
                b.append(String.format(Locale.ROOT, "  %9.2f", median(n, r -> cluster[r][at] / cluster[r][0])));
            }
            if (local != null) {
                b.append(String.format(Locale.ROOT, "  %8.2f", median(n, r -> local[r])));
                for (int k = 0; k < ms; k++) {
                    int at = k;
                    b.append(String.format(Locale.ROOT, "  %10.2f", median(n, r -> cluster[r][at] / local[r])));
                }
            }
            System.out.println(b);
        }
        System.out.println("mN: N micro-batches, pipelined steps; mNls: the same in lockstep");
        if (cpuPair != null) {
            System.out.println("cpus both: before the round's cluster started, CPUs 0 and 1 computing at once, their"
                    + " speed over their speed alone (100% = no interference)");
        }
    }

    private static DecodeRequest request(String prefix, int[][] prompts, int steps, int microBatches,
                                         boolean lockstep) {
        DecodeRequest.Builder b = DecodeRequest.newBuilder().setSteps(steps).setRelease(true)
                .setMicroBatches(microBatches).setLockstep(lockstep);
        for (int i = 0; i < prompts.length; i++) {
            Chunk.Builder ch = Chunk.newBuilder().setSequenceId(prefix + "-" + i);
            for (int t : prompts[i]) {
                ch.addTokens(t);
            }
            b.addPrompts(ch);
        }
        return b.build();
    }

    static int[][] prompts(ModelConfig c, int batch, int length, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        int[][] p = new int[batch][length];
        for (int b = 0; b < batch; b++) {
            p[b][0] = c.bosTokenId();
            for (int i = 1; i < length; i++) {
                p[b][i] = 3 + rnd.nextInt(Math.min(256, c.vocabSize() - 3));
            }
        }
        return p;
    }

    /** Runs prefill plus steps decode steps; returns the seconds of the decode steps. */
    private static double decodeLocal(LocalModel m, int[][] prompts, int steps) {
        Transformer tr = m.transformer();
        int vocab = m.config().vocabSize();
        List<SequenceCache> seqs = new ArrayList<>();
        List<Transformer.Chunk> prefill = new ArrayList<>();
        for (int[] p : prompts) {
            SequenceCache s = tr.newSequence(m.contextLimit());
            seqs.add(s);
            prefill.add(new Transformer.Chunk(s, p));
        }
        float[] logits = tr.forward(prefill, false, false).logits();
        long t0 = System.nanoTime();
        for (int step = 0; step < steps; step++) {
            List<Transformer.Chunk> chunks = new ArrayList<>(seqs.size());
            for (int b = 0; b < seqs.size(); b++) {
                chunks.add(new Transformer.Chunk(seqs.get(b), new int[] {Sampler.argmax(logits, b * vocab, vocab)}));
            }
            logits = tr.forward(chunks, false, false).logits();
        }
        return (System.nanoTime() - t0) / 1e9;
    }
}
