package io.epserve.router;

import io.epserve.cluster.metrics.Metrics;
import io.epserve.cluster.metrics.ProcessMetrics;
import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.prometheus.metrics.core.datapoints.CounterDataPoint;
import io.prometheus.metrics.core.datapoints.DistributionDataPoint;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntSupplier;

/**
 * The router's metrics. Requests are counted by an interceptor on the Inference service (every RPC, by method and
 * final gRPC status; a client's cancel counts as CANCELLED), which also times them end to end; the token stream is
 * timed where {@link WorkerStream} already times it; load and reachability are read at scrape time from the polled
 * backends. All of it is thread-safe (gRPC threads write, the scrape thread reads).
 */
final class RouterMetrics implements AutoCloseable {
    private final ProcessMetrics process = ProcessMetrics.create("router");
    private final Counter requests;
    private final Histogram duration;
    private final DistributionDataPoint ttft;
    private final DistributionDataPoint interToken;
    private final CounterDataPoint promptTokens;
    private final CounterDataPoint generatedTokens;
    private final Counter workerErrors;

    RouterMetrics(List<Router.Backend> backends, IntSupplier inFlight) {
        PrometheusRegistry r = process.registry();
        requests = Metrics.counter(r, Metrics.ROUTER_REQUESTS, "Client RPCs finished, by method and gRPC status code",
                "rpc", "code");
        duration = Metrics.histogram(r, Metrics.ROUTER_REQUEST_DURATION, "Client RPCs from arrival to their final"
                + " status (a whole stream for Generate and Chat), by method", Metrics.LATENCY_SECONDS, "rpc");
        ttft = Metrics.histogram(r, Metrics.ROUTER_TTFT, "From a Generate or Chat request's admission to its first"
                + " token from the attention worker", Metrics.LATENCY_SECONDS).labelValues();
        interToken = Metrics.histogram(r, Metrics.ROUTER_INTER_TOKEN, "Between consecutive tokens of one stream",
                Metrics.LATENCY_SECONDS).labelValues();
        promptTokens = Metrics.counter(r, Metrics.ROUTER_PROMPT_TOKENS, "Prompt tokens of the requests sent to"
                + " attention workers").labelValues();
        generatedTokens = Metrics.counter(r, Metrics.ROUTER_GENERATED_TOKENS, "Tokens received from attention"
                + " workers").labelValues();
        workerErrors = Metrics.counter(r, Metrics.ROUTER_WORKER_ERRORS, "Worker streams that failed (the worker's"
                + " status; INTERNAL for a stream that ended without its final event), by worker", "worker", "code");
        Metrics.gauge(r, Metrics.ROUTER_IN_FLIGHT, "Generate and Chat requests in flight through this router",
                inFlight::getAsInt);
        GaugeWithCallback.builder().name(Metrics.ROUTER_WORKER_IN_FLIGHT)
                .help("Requests in flight from this router to each attention worker").labelNames("worker")
                .callback(cb -> backends.forEach(b -> cb.call(b.inFlight.get(), b.target))).register(r);
        GaugeWithCallback.builder().name(Metrics.ROUTER_WORKER_WAITING)
                .help("Requests waiting at each attention worker (its last polled Status)").labelNames("worker")
                .callback(cb -> backends.forEach(b -> cb.call(b.waiting, b.target))).register(r);
        GaugeWithCallback.builder().name(Metrics.ROUTER_WORKER_UP)
                .help("1 when the attention worker answered its last Status poll, else 0").labelNames("worker")
                .callback(cb -> backends.forEach(b -> cb.call(b.reachable ? 1 : 0, b.target))).register(r);
    }

    PrometheusRegistry registry() {
        return process.registry();
    }

    void serve(String host, int port) throws IOException {
        process.serve(host, port);
    }

    int port() {
        return process.port();
    }

    String readySuffix() {
        return process.readySuffix();
    }

    @Override
    public void close() {
        process.close();
    }

    // ------------------------------------------------------------------------------------------ WorkerStream hooks

    /** A request with this many prompt tokens goes to a worker. */
    void prompt(int tokens) {
        promptTokens.inc(tokens);
    }

    /**
     * A token arrived at {@code now}: the first of its stream (lastNs == 0, timed from startNs) or a later one (timed
     * from lastNs).
     */
    void token(long startNs, long lastNs, long now) {
        if (lastNs == 0) {
            ttft.observe((now - startNs) / 1e9);
        } else {
            interToken.observe((now - lastNs) / 1e9);
        }
        generatedTokens.inc();
    }

    /** A worker stream failed with this status. */
    void workerError(String worker, Status.Code code) {
        workerErrors.labelValues(worker, code.name()).inc();
    }

    // ------------------------------------------------------------------------------------------ every RPC

    /** Counts and times every call of the service it is applied to. */
    ServerInterceptor interceptor() {
        return new ServerInterceptor() {
            @Override
            public <Q, A> ServerCall.Listener<Q> interceptCall(ServerCall<Q, A> call, Metadata headers,
                                                              ServerCallHandler<Q, A> next) {
                String rpc = call.getMethodDescriptor().getBareMethodName();
                long start = System.nanoTime();
                AtomicBoolean counted = new AtomicBoolean();
                ServerCall<Q, A> counting = new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
                    @Override
                    public void close(Status status, Metadata trailers) {
                        finished(rpc, status.getCode(), start, counted);
                        super.close(status, trailers);
                    }
                };
                return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(
                        next.startCall(counting, headers)) {
                    @Override
                    public void onCancel() {
                        finished(rpc, Status.Code.CANCELLED, start, counted);
                        super.onCancel();
                    }
                };
            }
        };
    }

    private void finished(String rpc, Status.Code code, long startNs, AtomicBoolean counted) {
        if (counted.compareAndSet(false, true)) {
            requests.labelValues(rpc, code.name()).inc();
            duration.labelValues(rpc).observe((System.nanoTime() - startNs) / 1e9);
        }
    }
}
