package io.epserve.router;

import io.epserve.cluster.metrics.MetricsFlags;
import java.nio.file.Path;
import java.util.List;
import io.epserve.cluster.ClusterFlags;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** The router's flags, declared once for {@link RouterMain} and the cli's {@code epserve router}. */
public final class RouterFlags {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Model directory (config.json, tokenizer.json).")
    Path model;

    @Option(names = "--attention-workers", split = ",", paramLabel = "HOST:PORT",
            description = "Without a cluster: the attention workers' gRPC addresses, comma-separated.")
    List<String> attentionWorkers = List.of();

    @Mixin
    ClusterFlags cluster = new ClusterFlags();

    @Option(names = "--advertise-host", paramLabel = "HOST",
            description = "In a cluster: the host this router is announced at (default: --host).")
    String advertiseHost;

    @Option(names = "--port", defaultValue = "50051", description = "gRPC port (0: any free port). Default: ${DEFAULT-VALUE}.")
    int port;

    @Option(names = "--host", defaultValue = "127.0.0.1", description = "Bind address. Default: ${DEFAULT-VALUE}.")
    String host;

    @Option(names = "--model-id", description = "The model's name in the API (default: the directory's name).")
    String modelId;

    @Option(names = "--max-in-flight", defaultValue = "1024", paramLabel = "N",
            description = "Requests in flight through this router (beyond: RESOURCE_EXHAUSTED). Default: ${DEFAULT-VALUE}.")
    int maxInFlight;

    @Option(names = "--max-resubmits", defaultValue = "3", paramLabel = "N",
            description = "Times one request is resubmitted to another attention worker (with the tokens generated so"
                    + " far) when its worker is lost; 0: never. Default: ${DEFAULT-VALUE}.")
    int maxResubmits;

    @Mixin
    MetricsFlags metrics = new MetricsFlags();

    public Router.Options toOptions() {
        Router.Options o = Router.options().model(model).attentionWorkers(attentionWorkers).port(port).host(host)
                .modelId(modelId).maxInFlight(maxInFlight).maxResubmits(maxResubmits).advertiseHost(advertiseHost)
                .metricsPort(metrics.port()).metricsHost(metrics.host());
        if (cluster.enabled()) {
            o.controlPlane(cluster.settings());
        }
        o.validate();
        return o;
    }
}
