package io.epserve.cluster.metrics;

import picocli.CommandLine.Option;

/** {@code --metrics-port} and {@code --metrics-host}, mixed into every serving process's flags. */
public final class MetricsFlags {
    @Option(names = "--metrics-port", defaultValue = "-1", paramLabel = "PORT",
            description = "Serve Prometheus metrics at http://HOST:PORT/metrics (0: any free port, printed in the"
                    + " ready line as 'metrics HOST:PORT'; -1: no endpoint). Default: ${DEFAULT-VALUE}.")
    int port = ProcessMetrics.OFF;

    @Option(names = "--metrics-host", defaultValue = "127.0.0.1", paramLabel = "HOST",
            description = "Bind address of the metrics endpoint. Default: ${DEFAULT-VALUE}.")
    String host = "127.0.0.1";

    public int port() {
        return port;
    }

    public String host() {
        return host;
    }
}
