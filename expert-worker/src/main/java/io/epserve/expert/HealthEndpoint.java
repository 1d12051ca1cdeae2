package io.epserve.expert;

import io.grpc.Server;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The expert worker's only gRPC server (its traffic goes over Aeron): the standard health service
 * {@code grpc.health.v1.Health}, for Kubernetes {@code grpc:} probes and any other health checker.
 *
 * <ul>
 *   <li>service {@code ""} (readiness): SERVING once the worker serves; NOT_SERVING from the start of a drain
 *       (SIGTERM in a cluster, or {@code admin drain}) and once it closes;</li>
 *   <li>service {@value #LIVENESS} (liveness): SERVING until the worker closes, draining included, so a liveness
 *       probe never restarts a worker that is handing its experts over.</li>
 * </ul>
 */
final class HealthEndpoint implements AutoCloseable {
    /** The service name a liveness probe asks for. */
    static final String LIVENESS = "liveness";

    private final HealthStatusManager health;
    private final Server server;
    private final String host;
    private final AtomicBoolean terminal = new AtomicBoolean();

    private HealthEndpoint(HealthStatusManager health, Server server, String host) {
        this.health = health;
        this.server = server;
        this.host = host;
    }

    /** Serves on host:port (0: any free port), both services SERVING. */
    static HealthEndpoint start(String host, int port) {
        HealthStatusManager health = new HealthStatusManager();
        health.setStatus(HealthStatusManager.SERVICE_NAME_ALL_SERVICES, ServingStatus.SERVING);
        health.setStatus(LIVENESS, ServingStatus.SERVING);
        try {
            Server s = NettyServerBuilder.forAddress(new InetSocketAddress(host, port))
                    .addService(health.getHealthService())
                    .build()
                    .start();
            return new HealthEndpoint(health, s, host);
        } catch (IOException e) {
            throw new UncheckedIOException("--health-port: cannot serve gRPC health on " + host + ":" + port + ": "
                    + e.getMessage(), e);
        }
    }

    /** Readiness off: the worker is draining. Liveness stays SERVING. */
    void draining() {
        health.setStatus(HealthStatusManager.SERVICE_NAME_ALL_SERVICES, ServingStatus.NOT_SERVING);
    }

    /** Every service NOT_SERVING (watchers are told), for good. Idempotent. */
    void notServing() {
        if (terminal.compareAndSet(false, true)) {
            health.enterTerminalState();
        }
    }

    int port() {
        return server.getPort();
    }

    String describe() {
        return "; health " + host + ":" + port();
    }

    /** NOT_SERVING, then stops the server. Idempotent. */
    @Override
    public void close() {
        notServing();
        server.shutdown();
        try {
            if (!server.awaitTermination(2, TimeUnit.SECONDS)) {
                server.shutdownNow();
            }
        } catch (InterruptedException e) {
            server.shutdownNow();
            Thread.currentThread().interrupt();
        }
    }
}
