package io.epserve.expert;

import io.epserve.cluster.Placement;
import io.epserve.cluster.metrics.Metrics;
import io.epserve.cluster.metrics.ProcessMetrics;
import io.epserve.cluster.metrics.SingleWriterCounts;
import io.epserve.transport.OfferCounters;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.model.registry.PrometheusRegistry;

/**
 * The expert worker's metrics, all read at scrape time from counters the agent thread keeps anyway (the executor's
 * atomics, the agent's volatiles, the driver handle's offer counters): nothing is added to the dispatch path.
 */
final class ExpertWorkerMetrics {
    private ExpertWorkerMetrics() {
    }

    static ProcessMetrics create(ExpertWorker w, ExpertExecutor executor, OfferCounters offers) {
        ProcessMetrics m = ProcessMetrics.create("expert-worker");
        PrometheusRegistry r = m.registry();
        Metrics.counter(r, Metrics.EXPERT_EXCHANGES, "Complete dispatch exchanges accepted (one per attention worker,"
                + " step, layer and micro-batch)", executor::exchanges);
        Metrics.counter(r, Metrics.EXPERT_WAVES, "Combine waves sent", executor::waves);
        Metrics.counter(r, Metrics.EXPERT_MERGED, "Exchanges that shared experts with others of the same layer (other"
                + " attention workers, or other micro-batches of one): each shared expert read its weights once for all"
                + " of them", executor::mergedExchanges);
        Metrics.counter(r, Metrics.EXPERT_LATE_JOINS, "Exchanges that joined a sweep over their layer already under"
                + " way", executor::lateJoins);
        Metrics.counter(r, Metrics.EXPERT_BUSY_SECONDS, "Seconds spent executing exchanges: running the experts and"
                + " offering their combines", () -> executor.busyNanos() / 1e9);
        Metrics.counter(r, Metrics.EXPERT_REJECTED, "Dispatch messages refused with an Error (expert not held here,"
                + " wrong shape, too many tokens, parts out of order)", executor::rejected);
        Metrics.counter(r, Metrics.EXPERT_UNKNOWN_SOURCE, "Dispatch messages dropped because their source never said"
                + " Hello", w::unknownSourceDispatches);
        Metrics.counter(r, Metrics.EXPERT_MALFORMED, "Messages that could not be decoded (skipped)",
                w::malformedMessages);
        Metrics.gauge(r, Metrics.EXPERT_PEERS, "Attention workers connected (said Hello, not yet Goodbye)", w::peers);
        Placement p = w.placement();
        String[] ids = SingleWriterCounts.ids(Math.max(p.layerCount(), p.expertsPerLayer()));
        CounterWithCallback.builder().name(Metrics.EXPERT_ROWS)
                .help("Token rows (token, slot) computed per layer and expert held here; layer n_layers is the MTP"
                        + " block")
                .labelNames("layer", "expert").callback(cb -> {
                    for (int l = 0; l < p.layerCount(); l++) {
                        for (int e : p.experts(l)) {
                            cb.call(executor.rowsComputed(l, e), ids[l], ids[e]);
                        }
                    }
                }).register(r);
        Metrics.offerFailures(r, offers::backPressured, offers::adminActions, offers::notConnected);
        return m;
    }
}
