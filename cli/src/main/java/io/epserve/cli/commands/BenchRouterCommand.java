package io.epserve.cli.commands;

import io.epserve.cli.cluster.LocalCluster;
import io.epserve.model.config.ModelConfig;
import io.epserve.proto.v1.GenerateRequest;
import io.epserve.proto.v1.InferenceGrpc;
import io.epserve.proto.v1.SamplingParams;
import io.epserve.proto.v1.TokenIds;
import io.epserve.proto.worker.v1.AttentionWorkerGrpc;
import io.grpc.Channel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.HdrHistogram.Histogram;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "bench-router", mixinStandardHelpOptions = true,
        description = "Router overhead: starts a local cluster with a router, then streams the same greedy requests"
                + " through the router (epserve.v1 Generate) and straight to the attention worker (worker Generate),"
                + " side by side, at each concurrency; prints time to first token and inter-token latency p50/p99.")
public final class BenchRouterCommand implements Callable<Integer> {
    @Option(names = "--model", description = "Model directory; default: the embedded random-weight tiny model.")
    Path model;

    @Option(names = "--concurrency", split = ",", defaultValue = "1,32", description = "Default: ${DEFAULT-VALUE}.")
    int[] concurrency;

    @Option(names = "--requests", defaultValue = "64", description = "Requests per concurrency and path. Default: ${DEFAULT-VALUE}.")
    int requests;

    @Option(names = "--prompt-tokens", defaultValue = "16", description = "Default: ${DEFAULT-VALUE}.")
    int promptTokens;

    @Option(names = "--max-tokens", defaultValue = "32", description = "Default: ${DEFAULT-VALUE}.")
    int maxTokens;

    @Option(names = "--kernels", defaultValue = "fast", description = "Default: ${DEFAULT-VALUE}.")
    String kernels;

    @Option(names = "--expert-workers", defaultValue = "2", description = "Default: ${DEFAULT-VALUE}.")
    int expertWorkers;

    @Option(names = "--log-dir", description = "Where the processes' logs go.")
    Path logDir;

    @Override
    public Integer call() throws Exception {
        if (requests < 1 || promptTokens < 1 || maxTokens < 2) {
            return CliErrors.usage("--requests and --prompt-tokens must be >= 1, --max-tokens >= 2");
        }
        Path dir = model != null ? model : EmbeddedModel.ensure(System.err);
        ModelConfig c = ModelConfig.load(dir);
        int[][] prompts = BenchClusterCommand.prompts(c, requests, promptTokens, 1);
        try (LocalCluster cluster = LocalCluster.start(LocalCluster.options().model(dir).expertWorkers(expertWorkers)
                .kernels(kernels).logDir(logDir).router(0))) {
            Channel router = cluster.routerChannel();
            Channel worker = cluster.channel(0);
            run(router, worker, prompts, Math.min(8, requests), 1, false); // warm-up, both paths
            run(router, worker, prompts, Math.min(8, requests), 1, true);
            System.out.printf("model %s, %s kernels, %d expert workers, prompt %d, %d tokens, %d requests per cell%n",
                    dir, kernels, expertWorkers, promptTokens, maxTokens, requests);
            System.out.println("concurrency  path     TTFT p50/p99 ms      ITL p50/p99 ms");
            for (int conc : concurrency) {
                Histogram[] viaWorker = run(router, worker, prompts, requests, conc, false);
                Histogram[] viaRouter = run(router, worker, prompts, requests, conc, true);
                print(conc, "worker", viaWorker);
                print(conc, "router", viaRouter);
            }
        }
        return 0;
    }

    private static void print(int conc, String path, Histogram[] h) {
        System.out.printf("%11d  %-6s  %8.2f / %-8.2f  %8.2f / %-8.2f%n", conc, path, h[0].getValueAtPercentile(50) / 1e6,
                h[0].getValueAtPercentile(99) / 1e6, h[1].getValueAtPercentile(50) / 1e6, h[1].getValueAtPercentile(99) / 1e6);
    }

    /** Runs the requests at the concurrency; returns TTFT and ITL histograms (ns). */
    private Histogram[] run(Channel router, Channel worker, int[][] prompts, int n, int conc, boolean viaRouter)
            throws Exception {
        Histogram ttft = new Histogram(1_000, TimeUnit.MINUTES.toNanos(10), 3);
        Histogram itl = new Histogram(1_000, TimeUnit.MINUTES.toNanos(10), 3);
        ExecutorService pool = Executors.newFixedThreadPool(conc);
        try {
            List<Future<long[]>> futures = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                int[] p = prompts[r % prompts.length];
                String id = (viaRouter ? "r" : "w") + System.nanoTime() + "-" + r;
                futures.add(pool.submit(() -> viaRouter ? router(router, p, id) : worker(worker, p, id)));
            }
            for (Future<long[]> f : futures) {
                long[] times = f.get(10, TimeUnit.MINUTES);
                ttft.recordValue(Math.max(1_000, times[1] - times[0]));
                for (int i = 2; i < times.length; i++) {
                    itl.recordValue(Math.max(1_000, times[i] - times[i - 1]));
                }
            }
        } finally {
            pool.shutdownNow();
        }
        return new Histogram[] {ttft, itl};
    }

    /** [start, token 1, token 2, ...] arrival times in ns. */
    private long[] router(Channel ch, int[] prompt, String id) {
        TokenIds.Builder ids = TokenIds.newBuilder();
        for (int t : prompt) {
            ids.addIds(t);
        }
        long[] t = new long[maxTokens + 1];
        int k = 0;
        t[k++] = System.nanoTime();
        var it = InferenceGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.MINUTES).generate(GenerateRequest
                .newBuilder().setRequestId(id).setTokenIds(ids).setSampling(SamplingParams.newBuilder()
                        .setMaxTokens(maxTokens).setIgnoreEos(true)).build());
        while (it.hasNext()) {
            var r = it.next();
            if (r.hasDelta() && k < t.length) {
                t[k++] = System.nanoTime();
            }
        }
        return java.util.Arrays.copyOf(t, k);
    }

    private long[] worker(Channel ch, int[] prompt, String id) {
        var req = io.epserve.proto.worker.v1.GenerateRequest.newBuilder().setRequestId(id)
                .setSampling(io.epserve.proto.worker.v1.SamplingParams.newBuilder().setMaxTokens(maxTokens).setIgnoreEos(true));
        for (int p : prompt) {
            req.addPromptTokens(p);
        }
        long[] t = new long[maxTokens + 1];
        int k = 0;
        t[k++] = System.nanoTime();
        var it = AttentionWorkerGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.MINUTES).generate(req.build());
        while (it.hasNext()) {
            var r = it.next();
            if (r.hasToken() && k < t.length) {
                t[k++] = System.nanoTime();
            }
        }
        return java.util.Arrays.copyOf(t, k);
    }
}
