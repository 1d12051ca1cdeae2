package io.epserve.router;

import io.epserve.cluster.metrics.MetricsFlags;
import java.nio.file.Path;
import java.util.List;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** The router's flags, declared once for {@link RouterMain} and the cli's {@code epserve router}. */
public final class RouterFlags {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Model directory (config.json, tokenizer.json).")
    Path model;

    @Option(names = "--attention-workers", required = true, split = ",", paramLabel = "HOST:PORT",
            description = "The attention workers' gRPC addresses, comma-separated.")
    List<String> attentionWorkers;

    @Option(names = "--port", defaultValue = "50051", description = "gRPC port (0: any free port). Default: ${DEFAULT-VALUE}.")
    int port;

    @Option(names = "--host", defaultValue = "127.0.0.1", description = "Bind address. Default: ${DEFAULT-VALUE}.")
    String host;

    @Option(names = "--model-id", description = "The model's name in the API (default: the directory's name).")
    String modelId;

    @Option(names = "--max-in-flight", defaultValue = "1024", paramLabel = "N",
            description = "Requests in flight through this router (beyond: RESOURCE_EXHAUSTED). Default: ${DEFAULT-VALUE}.")
    int maxInFlight;

    @Mixin
    MetricsFlags metrics = new MetricsFlags();

    public Router.Options toOptions() {
        Router.Options o = Router.options().model(model).attentionWorkers(attentionWorkers).port(port).host(host)
                .modelId(modelId).maxInFlight(maxInFlight).metricsPort(metrics.port()).metricsHost(metrics.host());
        o.validate();
        return o;
    }
}
