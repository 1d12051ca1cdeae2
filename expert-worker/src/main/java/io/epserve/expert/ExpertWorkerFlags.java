package io.epserve.expert;

import io.epserve.cluster.metrics.MetricsFlags;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import io.epserve.cluster.ClusterFlags;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * The expert worker's command-line flags, declared once and mixed into both entry points: {@link ExpertWorkerMain}
 * and the cli's {@code epserve expert-worker}.
 */
public final class ExpertWorkerFlags {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Model directory (config.json, safetensors).")
    Path model;

    @Option(names = "--experts", paramLabel = "SPEC",
            description = "Experts served in every layer (MTP block included): ids and ranges, e.g. 0-3,7, or all.")
    String experts;

    @Option(names = "--placement", paramLabel = "FILE",
            description = "JSON placement instead of --experts: {\"layers\": {\"0\": [0, 1], \"1\": \"2-3\", \"mtp\": [5]}}.")
    Path placement;

    @Option(names = "--listen", required = true, paramLabel = "ENDPOINT",
            description = "Where dispatches arrive: HOST:PORT (UDP, e.g. 127.0.0.1:40123), ipc (with a shared external"
                    + " driver), or an aeron: channel URI.")
    String listen;

    @Option(names = "--aeron-dir", paramLabel = "DIR",
            description = "Directory of the embedded media driver (default /dev/shm/aeron-epserve-PID-N-expert-ID);"
                    + " deleted on exit.")
    String aeronDir;

    @Option(names = "--external-driver", paramLabel = "DIR",
            description = "Use the external media driver running in DIR instead of an embedded one.")
    String externalDriver;

    @Option(names = "--kernels", defaultValue = "exact", description = "exact or fast. Default: ${DEFAULT-VALUE}.")
    String kernels;

    @Option(names = "--threads", description = "Compute threads of the fast kernels (default: available cores).")
    Integer threads;

    @Option(names = "--wave-experts", defaultValue = "1", paramLabel = "W",
            description = "Send a combine wave after every W experts (0: one wave at the end). Default: ${DEFAULT-VALUE}.")
    int waveExperts;

    @Option(names = "--merge-exchanges", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Run the exchanges of one layer that several attention workers have waiting together, each"
                    + " expert once over all their rows (--no-merge-exchanges: one exchange at a time, each expert's"
                    + " weights read once per attention worker). Default: ${DEFAULT-VALUE}.")
    boolean mergeExchanges;

    @Option(names = "--max-tokens-per-dispatch", defaultValue = "4096", paramLabel = "N",
            description = "Refuse (with an Error message) a dispatch of more token rows. Default: ${DEFAULT-VALUE}.")
    int maxTokensPerDispatch;

    @Option(names = "--worker-id", defaultValue = "0", paramLabel = "ID",
            description = "This worker's id (the source of its messages). Default: ${DEFAULT-VALUE}.")
    int workerId;

    @Option(names = "--idle", defaultValue = "backoff",
            description = "Agent idle strategy: backoff, busy-spin, yielding, sleeping or noop. On a CPU of its own,"
                    + " yielding: the CPU never halts and the embedded media driver, which shares it, still runs as"
                    + " soon as it wakes (busy-spin starves it). Default: ${DEFAULT-VALUE}.")
    String idle;

    @Option(names = "--dispatch-stream", defaultValue = "1001", paramLabel = "ID",
            description = "Aeron stream of dispatches. Default: ${DEFAULT-VALUE}.")
    int dispatchStream;

    @Option(names = "--control-stream", defaultValue = "1003", paramLabel = "ID",
            description = "Aeron stream of Hello messages. Default: ${DEFAULT-VALUE}.")
    int controlStream;

    @Option(names = "--send-timeout-ms", defaultValue = "5000", paramLabel = "MS",
            description = "Give up an attention worker whose sends stay blocked this long. Default: ${DEFAULT-VALUE}.")
    long sendTimeoutMs;

    @Option(names = "--advertise", paramLabel = "ENDPOINT",
            description = "In a cluster: the endpoint attention workers send to, if not --listen (e.g. the pod's"
                    + " address when listening on 0.0.0.0).")
    String advertise;

    @Option(names = "--drain-timeout-ms", defaultValue = "120000", paramLabel = "MS",
            description = "In a cluster, SIGTERM first moves this worker's experts away; give up waiting after this."
                    + " Default: ${DEFAULT-VALUE}.")
    long drainTimeoutMs;

    @Option(names = "--health-port", defaultValue = "-1", paramLabel = "PORT",
            description = "Serve the gRPC health service (grpc.health.v1) on this port, for Kubernetes grpc probes:"
                    + " service \"\" is SERVING while the worker serves and NOT_SERVING once it drains, service"
                    + " \"liveness\" until it stops (0: any free port, printed in the ready line; -1: none)."
                    + " Default: ${DEFAULT-VALUE}.")
    int healthPort;

    @Option(names = "--health-host", defaultValue = "127.0.0.1", paramLabel = "HOST",
            description = "Bind address of the health service (0.0.0.0 in a pod). Default: ${DEFAULT-VALUE}.")
    String healthHost;

    @Mixin
    ClusterFlags cluster = new ClusterFlags();
    @Mixin
    MetricsFlags metrics = new MetricsFlags();

    /** The worker options these flags ask for; throws IllegalArgumentException naming a bad flag. */
    public ExpertWorker.Options toOptions() {
        ExpertWorker.Options o = ExpertWorker.options()
                .model(model)
                .listen(listen)
                .aeronDir(aeronDir)
                .externalDriver(externalDriver)
                .kernels(kernels)
                .waveExperts(waveExperts)
                .mergeExchanges(mergeExchanges)
                .maxTokensPerDispatch(maxTokensPerDispatch)
                .workerId(workerId)
                .idle(idle)
                .dispatchStream(dispatchStream)
                .controlStream(controlStream)
                .metricsPort(metrics.port())
                .metricsHost(metrics.host())
                .healthPort(healthPort)
                .healthHost(healthHost);
        if (experts != null) {
            o.experts(experts);
        }
        if (cluster.enabled()) {
            o.controlPlane(cluster.settings());
        }
        if (advertise != null) {
            o.advertise(advertise);
        }
        o.drainTimeoutMs(drainTimeoutMs);
        if (placement != null) {
            o.placementFile(placement);
        }
        if (threads != null) {
            o.threads(threads);
        }
        if (sendTimeoutMs <= 0) {
            throw new IllegalArgumentException("--send-timeout-ms must be positive, got " + sendTimeoutMs);
        }
        o.sendTimeoutNs(TimeUnit.MILLISECONDS.toNanos(sendTimeoutMs));
        o.validate();
        return o;
    }
}
