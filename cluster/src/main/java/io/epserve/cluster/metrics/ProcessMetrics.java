package io.epserve.cluster.metrics;

import io.prometheus.metrics.core.metrics.Info;
import io.prometheus.metrics.exporter.httpserver.HTTPServer;
import io.prometheus.metrics.instrumentation.jvm.JvmMetrics;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.IOException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * One process's (or one in-process server's) metrics: its own registry (never the client's global default, so several
 * servers in one JVM, as in tests, do not clash) with the JVM metrics and {@code epserve_build_info{role, version}},
 * and the HTTP endpoint that serves it at {@code http://HOST:PORT/metrics}. The roles add their own metrics to
 * {@link #registry()}, then call {@link #serve}; {@link #close} stops the endpoint.
 */
public final class ProcessMetrics implements AutoCloseable {
    /** The --metrics-port value that serves no endpoint. */
    public static final int OFF = -1;

    private final String role;
    private final PrometheusRegistry registry = new PrometheusRegistry();
    private volatile HTTPServer server;
    private volatile String host;

    private ProcessMetrics(String role) {
        this.role = role;
        JvmMetrics.builder().register(registry);
        Info info = Info.builder().name(Metrics.BUILD_INFO).help("epserve build and role of this process (always 1)")
                .labelNames("role", "version").register(registry);
        info.addLabelValues(role, Metrics.version());
    }

    /** A registry with the JVM metrics and build info of {@code role} ("router", "attention-worker", ...). */
    public static ProcessMetrics create(String role) {
        return new ProcessMetrics(role);
    }

    public String role() {
        return role;
    }

    public PrometheusRegistry registry() {
        return registry;
    }

    /** Throws IllegalArgumentException unless port is {@link #OFF} (-1) or in 0..65535. */
    public static void validatePort(int port) {
        if (port < OFF || port > 65535) {
            throw new IllegalArgumentException("--metrics-port must be -1 (off), 0 (any free port) or 1..65535, got "
                    + port);
        }
    }

    /**
     * Serves {@code /metrics} on host:port (0: any free port); does nothing for port {@link #OFF}. Throws IOException
     * when the port cannot be bound.
     */
    public void serve(String host, int port) throws IOException {
        validatePort(port);
        if (port == OFF) {
            return;
        }
        if (server != null) {
            throw new IllegalStateException("already serving on port " + port());
        }
        ExecutorService pool = Executors.newFixedThreadPool(2, r -> {
            Thread t = new Thread(r, "epserve-metrics-http");
            t.setDaemon(true);
            return t;
        });
        try {
            this.server = HTTPServer.builder().hostname(host).port(port).registry(registry).executorService(pool)
                    .buildAndStart();
        } catch (IOException | RuntimeException e) {
            pool.shutdownNow();
            throw new IOException("cannot serve metrics on " + host + ":" + port + ": " + e.getMessage(), e);
        }
        this.host = host;
    }

    /** The endpoint's port, or -1 when not serving. */
    public int port() {
        HTTPServer s = server;
        return s == null ? OFF : s.getPort();
    }

    /** {@code "; metrics HOST:PORT"} for a ready line, or "" when not serving. */
    public String readySuffix() {
        HTTPServer s = server;
        return s == null ? "" : "; metrics " + host + ":" + s.getPort();
    }

    /** Stops the endpoint (idempotent); the registry stays usable. */
    @Override
    public void close() {
        HTTPServer s = server;
        server = null;
        if (s != null) {
            s.close();
        }
    }
}
