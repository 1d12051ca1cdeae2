package io.epserve.cluster.metrics;

import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;
import java.util.function.DoubleSupplier;
import java.util.function.LongSupplier;

/**
 * The names of every epserve metric (one place, so the processes, their tests and README's table agree), the bucket
 * layouts, and small builders over the Prometheus client. Conventions: {@code epserve_} prefix, then the role
 * ({@code router_}, {@code attention_}, {@code expert_}); seconds for time, bytes for sizes; counters end in
 * {@code _total} (the client adds it when it writes a counter). See README.md, "Metrics".
 */
public final class Metrics {
    private Metrics() {
    }

    // ---------------------------------------------------------------------------------------------- every process

    /** {@code epserve_build_info{role, version}} 1. */
    public static final String BUILD_INFO = "epserve_build_info";
    /** Failed Aeron offers of the process's senders, by result (back_pressured, admin_action, not_connected). */
    public static final String AERON_OFFER_FAILURES = "epserve_aeron_offer_failures_total";

    // ---------------------------------------------------------------------------------------------- router

    public static final String ROUTER_REQUESTS = "epserve_router_requests_total";
    public static final String ROUTER_REQUEST_DURATION = "epserve_router_request_duration_seconds";
    public static final String ROUTER_TTFT = "epserve_router_time_to_first_token_seconds";
    public static final String ROUTER_INTER_TOKEN = "epserve_router_inter_token_latency_seconds";
    public static final String ROUTER_PROMPT_TOKENS = "epserve_router_prompt_tokens_total";
    public static final String ROUTER_GENERATED_TOKENS = "epserve_router_generated_tokens_total";
    public static final String ROUTER_IN_FLIGHT = "epserve_router_requests_in_flight";
    public static final String ROUTER_WORKER_IN_FLIGHT = "epserve_router_worker_requests_in_flight";
    public static final String ROUTER_WORKER_WAITING = "epserve_router_worker_waiting_requests";
    public static final String ROUTER_WORKER_UP = "epserve_router_worker_up";
    public static final String ROUTER_WORKER_ERRORS = "epserve_router_worker_errors_total";

    // ---------------------------------------------------------------------------------------------- attention worker

    public static final String ATTENTION_WAITING = "epserve_attention_waiting_requests";
    public static final String ATTENTION_RUNNING = "epserve_attention_running_requests";
    public static final String ATTENTION_SEQUENCES = "epserve_attention_sequences";
    public static final String ATTENTION_KV_RESERVED = "epserve_attention_kv_reserved_bytes";
    public static final String ATTENTION_KV_BUDGET = "epserve_attention_kv_budget_bytes";
    public static final String ATTENTION_STEPS = "epserve_attention_steps_total";
    public static final String ATTENTION_FAILED_STEPS = "epserve_attention_failed_steps_total";
    public static final String ATTENTION_STEP_TOKENS = "epserve_attention_step_tokens_total";
    public static final String ATTENTION_STEP_DURATION = "epserve_attention_step_duration_seconds";
    /** Histogram: a Generate request's wait at the worker, arrival to joining the batch (its usage.queue_seconds). */
    public static final String ATTENTION_QUEUE = "epserve_attention_queue_seconds";
    /**
     * {@code {part}}: the engine thread's seconds in steps ({@code step}, wall time) and in their parts
     * ({@code attention}, {@code shared_expert}, {@code dispatch}, {@code exposed_wait}); monotonic, unlike the
     * worker API's StepTiming, which bench-cluster resets.
     */
    public static final String ATTENTION_ENGINE_SECONDS = "epserve_attention_engine_seconds_total";
    public static final String ATTENTION_DISPATCH = "epserve_attention_expert_dispatch_seconds";
    public static final String ATTENTION_ROUND_TRIP = "epserve_attention_expert_round_trip_seconds";
    public static final String ATTENTION_ROUTED_SLOTS = "epserve_attention_routed_slots_total";
    public static final String ATTENTION_DISPATCH_BYTES = "epserve_attention_dispatch_bytes_total";
    public static final String ATTENTION_COMBINE_BYTES = "epserve_attention_combine_bytes_total";
    public static final String ATTENTION_EXPERT_TOKENS = "epserve_attention_expert_tokens_total";
    public static final String ATTENTION_PLACEMENT_EPOCH = "epserve_attention_placement_epoch";

    // ---------------------------------------------------------------------------------------------- expert worker

    public static final String EXPERT_EXCHANGES = "epserve_expert_exchanges_total";
    public static final String EXPERT_ROWS = "epserve_expert_rows_total";
    public static final String EXPERT_WAVES = "epserve_expert_waves_total";
    public static final String EXPERT_MERGED = "epserve_expert_merged_exchanges_total";
    public static final String EXPERT_LATE_JOINS = "epserve_expert_late_joined_exchanges_total";
    public static final String EXPERT_BUSY_SECONDS = "epserve_expert_busy_seconds_total";
    public static final String EXPERT_REJECTED = "epserve_expert_rejected_dispatches_total";
    public static final String EXPERT_UNKNOWN_SOURCE = "epserve_expert_unknown_source_dispatches_total";
    public static final String EXPERT_MALFORMED = "epserve_expert_malformed_messages_total";
    public static final String EXPERT_PEERS = "epserve_expert_peers";

    // ---------------------------------------------------------------------------------------------- buckets

    /** Request, token and step latencies: 1 ms to 60 s (and +Inf). */
    public static final double[] LATENCY_SECONDS = {
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60};

    /** One layer's expert exchange (dispatch send, round trip): 10 us to 10 s (and +Inf). */
    public static final double[] EXCHANGE_SECONDS = {
        0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 10};

    // ---------------------------------------------------------------------------------------------- builders

    /** A counter (no exemplars); labelled when label names are given. */
    public static Counter counter(PrometheusRegistry r, String name, String help, String... labelNames) {
        return Counter.builder().name(name).help(help).labelNames(labelNames).withoutExemplars().register(r);
    }

    /**
     * A classic histogram (no native buckets, no exemplars) for observations from any thread. Its observe goes through
     * a capturing lambda (the JIT usually removes the allocation, nothing guarantees it) and atomic adders: on a
     * per-layer or per-token path of one thread use {@link NanosHistogram}, which never allocates.
     */
    public static Histogram histogram(PrometheusRegistry r, String name, String help, double[] bounds,
                                      String... labelNames) {
        return Histogram.builder().name(name).help(help).classicOnly().classicUpperBounds(bounds)
                .labelNames(labelNames).withoutExemplars().register(r);
    }

    /** A gauge read at scrape time. */
    public static void gauge(PrometheusRegistry r, String name, String help, DoubleSupplier value) {
        GaugeWithCallback.builder().name(name).help(help).callback(cb -> cb.call(value.getAsDouble())).register(r);
    }

    /** A counter read at scrape time from a monotonic source. */
    public static void counter(PrometheusRegistry r, String name, String help, DoubleSupplier value) {
        CounterWithCallback.builder().name(name).help(help).callback(cb -> cb.call(value.getAsDouble())).register(r);
    }

    /**
     * {@value #AERON_OFFER_FAILURES}{result} from the failed-offer counters of a process's Aeron senders (the
     * transport's OfferCounters): BACK_PRESSURED, ADMIN_ACTION and NOT_CONNECTED offers, each retry counted.
     */
    public static void offerFailures(PrometheusRegistry r, LongSupplier backPressured, LongSupplier adminActions,
                                     LongSupplier notConnected) {
        CounterWithCallback.builder().name(AERON_OFFER_FAILURES)
                .help("Aeron offers of this process's senders that did not go through (each retry counts), by result")
                .labelNames("result").callback(cb -> {
                    cb.call(backPressured.getAsLong(), "back_pressured");
                    cb.call(adminActions.getAsLong(), "admin_action");
                    cb.call(notConnected.getAsLong(), "not_connected");
                }).register(r);
    }

    /** The epserve version (of the cluster module's build), or "dev" when unknown. */
    public static String version() {
        try (InputStream in = Metrics.class.getResourceAsStream("build.properties")) {
            if (in != null) {
                Properties p = new Properties();
                p.load(in);
                String v = p.getProperty("version", "");
                if (!v.isEmpty() && !v.startsWith("${")) {
                    return v;
                }
            }
        } catch (IOException e) {
            // fall through
        }
        return "dev";
    }
}
