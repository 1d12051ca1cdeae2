package io.epserve.cluster.metrics;

import io.prometheus.metrics.model.registry.Collector;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.ClassicHistogramBuckets;
import io.prometheus.metrics.model.snapshots.HistogramSnapshot;
import io.prometheus.metrics.model.snapshots.HistogramSnapshot.HistogramDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.Labels;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A histogram of durations in nanoseconds written by ONE thread (an engine thread) and exported in seconds at scrape
 * time. {@link #record} is a short scan over the bucket bounds and two opaque stores: no allocation, no atomic
 * read-modify-write, no lock, so it can sit on a per-layer or per-token path. The scrape thread reads the counts
 * with opaque loads (never torn); a scrape during a record may see the bucket without the sum or the reverse.
 *
 * <p>A {@link Family} holds the histograms of one metric (one per label value set, created once at start-up and
 * kept in arrays by the caller) and is the collector registered with the registry.
 */
public final class NanosHistogram {
    private static final VarHandle LONGS = MethodHandles.arrayElementVarHandle(long[].class);
    private static final VarHandle SUM;

    static {
        try {
            SUM = MethodHandles.lookup().findVarHandle(NanosHistogram.class, "sumNs", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final Labels labels;
    private final long[] boundsNs;
    /** Per bucket (not cumulative); the last one is +Inf. */
    private final long[] counts;
    @SuppressWarnings("unused") // through SUM
    private long sumNs;

    private NanosHistogram(Labels labels, long[] boundsNs) {
        this.labels = labels;
        this.boundsNs = boundsNs;
        this.counts = new long[boundsNs.length + 1];
    }

    /** One duration (negative counts as 0). Only the owning thread may call this. */
    public void record(long ns) {
        long v = Math.max(0, ns);
        long[] b = boundsNs;
        int i = 0;
        while (i < b.length && v > b[i]) {
            i++;
        }
        LONGS.setOpaque(counts, i, counts[i] + 1);
        SUM.setOpaque(this, (long) SUM.get(this) + v);
    }

    /** Observations so far (any thread). */
    public long count() {
        long n = 0;
        for (int i = 0; i < counts.length; i++) {
            n += (long) LONGS.getOpaque(counts, i);
        }
        return n;
    }

    /** Sum of the observations in nanoseconds (any thread). */
    public long sumNs() {
        return (long) SUM.getOpaque(this);
    }

    private HistogramDataPointSnapshot snapshot(double[] boundsSeconds) {
        long[] c = new long[counts.length];
        for (int i = 0; i < c.length; i++) {
            c[i] = (long) LONGS.getOpaque(counts, i);
        }
        return HistogramDataPointSnapshot.builder()
                .classicHistogramBuckets(ClassicHistogramBuckets.of(boundsSeconds, c))
                .sum(sumNs() / 1e9)
                .labels(labels)
                .build();
    }

    /** The histograms of one metric name; the collector to register. */
    public static final class Family implements Collector {
        private final String name;
        private final String help;
        private final String[] labelNames;
        private final double[] boundsSeconds;
        private final long[] boundsNs;
        private final List<NanosHistogram> members = new CopyOnWriteArrayList<>();

        /**
         * @param name the metric name, ending in {@code _seconds}
         * @param bounds bucket upper bounds in seconds, ascending ({@code +Inf} is added)
         */
        public Family(String name, String help, double[] bounds, String... labelNames) {
            this.name = name;
            this.help = help;
            this.labelNames = labelNames.clone();
            this.boundsSeconds = new double[bounds.length + 1];
            this.boundsNs = new long[bounds.length];
            for (int i = 0; i < bounds.length; i++) {
                if (i > 0 && bounds[i] <= bounds[i - 1]) {
                    throw new IllegalArgumentException("bucket bounds must ascend: " + bounds[i - 1] + ", " + bounds[i]);
                }
                boundsSeconds[i] = bounds[i];
                boundsNs[i] = Math.round(bounds[i] * 1e9);
            }
            boundsSeconds[bounds.length] = Double.POSITIVE_INFINITY;
        }

        /** Creates the family and registers it. */
        public static Family register(PrometheusRegistry r, String name, String help, double[] bounds,
                                      String... labelNames) {
            Family f = new Family(name, help, bounds, labelNames);
            r.register(f);
            return f;
        }

        /** A new histogram of this family with these label values (one per label name); create once, keep it. */
        public NanosHistogram add(String... labelValues) {
            if (labelValues.length != labelNames.length) {
                throw new IllegalArgumentException(name + " has labels " + List.of(labelNames) + ", got "
                        + labelValues.length + " values");
            }
            String[] kv = new String[2 * labelNames.length];
            for (int i = 0; i < labelNames.length; i++) {
                kv[2 * i] = labelNames[i];
                kv[2 * i + 1] = labelValues[i];
            }
            NanosHistogram h = new NanosHistogram(Labels.of(kv), boundsNs);
            members.add(h);
            return h;
        }

        @Override
        public MetricSnapshot collect() {
            HistogramSnapshot.Builder b = HistogramSnapshot.builder().name(name).help(help);
            for (NanosHistogram h : members) {
                b.dataPoint(h.snapshot(boundsSeconds));
            }
            return b.build();
        }

        @Override
        public String getPrometheusName() {
            return name;
        }
    }
}
