package io.epserve.attention;

import io.epserve.cluster.metrics.MetricsFlags;
import java.nio.file.Path;
import java.util.List;
import io.epserve.cluster.ClusterFlags;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * The attention worker's command-line flags, declared once and mixed into {@link AttentionWorkerMain} and the cli's
 * {@code epserve attention-worker}.
 */
public final class AttentionWorkerFlags {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Model directory (config.json, safetensors).")
    Path model;

    @Option(names = "--expert-workers", split = ",", paramLabel = "ENDPOINT",
            description = "Without a cluster: the expert workers' --listen endpoints, comma-separated (HOST:PORT, ipc"
                    + " or aeron: URIs). An expert held by several goes to the first listed.")
    List<String> expertWorkers = List.of();

    @Mixin
    ClusterFlags cluster = new ClusterFlags();

    @Option(names = "--advertise-host", paramLabel = "HOST",
            description = "The host others reach this worker at, when it binds all interfaces (e.g. a pod's IP): the"
                    + " router's gRPC address and the combine inbox expert workers send to (default: --host, --listen).")
    String advertiseHost;

    @Option(names = "--failover-timeout-ms", defaultValue = "30000", paramLabel = "MS",
            description = "In a cluster: how long a step that lost an expert worker waits for its experts' new owners."
                    + " Default: ${DEFAULT-VALUE}.")
    long failoverTimeoutMs;

    @Option(names = "--load-window-s", defaultValue = "60", paramLabel = "S",
            description = "In a cluster: the sliding window of routed-token counts reported for EPLB. Default: ${DEFAULT-VALUE}.")
    int loadWindowSeconds;

    @Option(names = "--listen", required = true, paramLabel = "ENDPOINT",
            description = "This worker's combine inbox: HOST:PORT (UDP), ipc (shared external driver) or an aeron: URI.")
    String listen;

    @Option(names = "--port", defaultValue = "0", paramLabel = "N",
            description = "gRPC port of the worker API (0: any free port, printed in the ready line). Default: ${DEFAULT-VALUE}.")
    int port;

    @Option(names = "--host", defaultValue = "127.0.0.1", description = "gRPC bind address. Default: ${DEFAULT-VALUE}.")
    String host;

    @Option(names = "--micro-batches", defaultValue = "2", paramLabel = "M",
            description = "Micro-batches that ping-pong per step (1..4). Default: ${DEFAULT-VALUE}.")
    int microBatches;

    @Option(names = "--kernels", defaultValue = "exact", description = "exact or fast. Default: ${DEFAULT-VALUE}.")
    String kernels;

    @Option(names = "--threads", description = "Compute threads of the fast kernels (default: available cores).")
    Integer threads;

    @Option(names = "--worker-id", defaultValue = "0", paramLabel = "ID",
            description = "This worker's id (the source of its dispatches; distinct per attention worker). Default: ${DEFAULT-VALUE}.")
    int workerId;

    @Option(names = "--aeron-dir", paramLabel = "DIR",
            description = "Directory of the embedded media driver (default /dev/shm/aeron-epserve-PID-N-attention-ID); deleted on exit.")
    String aeronDir;

    @Option(names = "--external-driver", paramLabel = "DIR",
            description = "Use the external media driver running in DIR instead of an embedded one.")
    String externalDriver;

    @Option(names = "--expert-timeout-ms", defaultValue = "10000", paramLabel = "MS",
            description = "Fail a step whose expert outputs are not all back this long after its dispatch. Default: ${DEFAULT-VALUE}.")
    long expertTimeoutMs;

    @Option(names = "--connect-timeout-ms", defaultValue = "60000", paramLabel = "MS",
            description = "How long to wait at start for every expert worker to answer READY. Default: ${DEFAULT-VALUE}.")
    long connectTimeoutMs;

    @Option(names = "--max-sequences", defaultValue = "256", paramLabel = "N",
            description = "Sequences held at once (beyond: RESOURCE_EXHAUSTED). Default: ${DEFAULT-VALUE}.")
    int maxSequences;

    @Option(names = "--max-queued-requests", defaultValue = "64", paramLabel = "N",
            description = "Requests waiting for the engine thread (beyond: RESOURCE_EXHAUSTED). Default: ${DEFAULT-VALUE}.")
    int maxQueuedRequests;

    @Option(names = "--max-waiting", defaultValue = "256", paramLabel = "N",
            description = "Generate requests waiting to join the batch (beyond: RESOURCE_EXHAUSTED). Default: ${DEFAULT-VALUE}.")
    int maxWaiting;

    @Option(names = "--max-step-tokens", defaultValue = "512", paramLabel = "N",
            description = "Tokens per batched step: decodes first, then prompt chunks up to this. Default: ${DEFAULT-VALUE}.")
    int maxStepTokens;

    @Option(names = "--kv-memory", paramLabel = "BYTES",
            description = "KV cache memory the running requests may reserve (each: the compact cache of prompt +"
                    + " max_tokens positions), e.g. 4g; admission waits beyond it. Default: half the heap.")
    String kvMemory;

    @Option(names = "--drain-timeout-ms", defaultValue = "30000", paramLabel = "MS",
            description = "At SIGTERM, how long running generations may take to finish. Default: ${DEFAULT-VALUE}.")
    long drainTimeoutMs;

    @Option(names = "--idle", defaultValue = "backoff",
            description = "How the engine thread waits for combines: backoff, busy-spin, yielding, sleeping or noop."
                    + " On a CPU of its own, yielding: the CPU never halts and the embedded media driver, which"
                    + " shares it, still runs as soon as it wakes (busy-spin starves it). Default: ${DEFAULT-VALUE}.")
    String idle;

    @Mixin
    MetricsFlags metrics = new MetricsFlags();

    /** The options these flags ask for; throws IllegalArgumentException naming a bad flag. */
    public AttentionWorker.Options toOptions() {
        AttentionWorker.Options o = AttentionWorker.options()
                .model(model)
                .expertWorkers(expertWorkers)
                .listen(listen)
                .port(port)
                .host(host)
                .microBatches(microBatches)
                .kernels(kernels)
                .workerId(workerId)
                .aeronDir(aeronDir)
                .externalDriver(externalDriver)
                .expertTimeoutMs(expertTimeoutMs)
                .connectTimeoutMs(connectTimeoutMs)
                .maxSequences(maxSequences)
                .maxQueuedRequests(maxQueuedRequests)
                .maxWaitingGenerations(maxWaiting)
                .maxStepTokens(maxStepTokens)
                .kvMemoryBytes(kvMemory == null ? Runtime.getRuntime().maxMemory() / 2 : bytes(kvMemory, "--kv-memory"))
                .drainTimeoutMs(drainTimeoutMs)
                .idle(idle)
                .metricsPort(metrics.port())
                .metricsHost(metrics.host());
        if (threads != null) {
            o.threads(threads);
        }
        if (cluster.enabled()) {
            o.controlPlane(cluster.settings());
        }
        o.advertiseHost(advertiseHost).failoverTimeoutMs(failoverTimeoutMs).loadWindowSeconds(loadWindowSeconds);
        o.validate();
        return o;
    }

    /** "4g", "512m", "65536k" or plain bytes. */
    static long bytes(String v, String flag) {
        String t = v.trim().toLowerCase(java.util.Locale.ROOT);
        long mult = 1;
        if (t.endsWith("k") || t.endsWith("m") || t.endsWith("g") || t.endsWith("t")) {
            mult = switch (t.charAt(t.length() - 1)) {
                case 'k' -> 1L << 10;
                case 'm' -> 1L << 20;
                case 'g' -> 1L << 30;
                default -> 1L << 40;
            };
            t = t.substring(0, t.length() - 1);
        }
        try {
            long n = Long.parseLong(t);
            if (n <= 0) {
                throw new NumberFormatException();
            }
            return Math.multiplyExact(n, mult);
        } catch (NumberFormatException | ArithmeticException e) {
            throw new IllegalArgumentException(flag + " must be a positive size like 4g, 512m or 1048576, got '" + v + "'");
        }
    }
}
