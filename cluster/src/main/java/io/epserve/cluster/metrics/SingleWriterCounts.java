package io.epserve.cluster.metrics;

import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A rows x columns table of counts (per layer and expert, say) incremented by ONE thread with opaque stores and read
 * by the scrape thread with opaque loads: no allocation, no atomic read-modify-write on the writer's path. Exported
 * as one counter with two labels, every cell at every scrape.
 */
public final class SingleWriterCounts {
    private static final VarHandle LONGS = MethodHandles.arrayElementVarHandle(long[].class);

    private final long[][] counts;

    public SingleWriterCounts(int rows, int columns) {
        counts = new long[rows][columns];
    }

    public int rows() {
        return counts.length;
    }

    public int columns() {
        return counts.length == 0 ? 0 : counts[0].length;
    }

    /** Adds n to a cell. Only the owning thread may call this. */
    public void add(int row, int column, long n) {
        long[] r = counts[row];
        LONGS.setOpaque(r, column, r[column] + n);
    }

    /** A cell's count (any thread). */
    public long get(int row, int column) {
        return (long) LONGS.getOpaque(counts[row], column);
    }

    /** The sum over every cell (any thread). */
    public long total() {
        long s = 0;
        for (int r = 0; r < counts.length; r++) {
            for (int c = 0; c < counts[r].length; c++) {
                s += get(r, c);
            }
        }
        return s;
    }

    /** Registers the table as counter {@code name} with labels {@code rowLabel}, {@code columnLabel} (0-based ids). */
    public void register(PrometheusRegistry registry, String name, String help, String rowLabel, String columnLabel) {
        String[] rowIds = ids(rows());
        String[] columnIds = ids(columns());
        CounterWithCallback.builder().name(name).help(help).labelNames(rowLabel, columnLabel).callback(cb -> {
            for (int r = 0; r < counts.length; r++) {
                for (int c = 0; c < counts[r].length; c++) {
                    cb.call(get(r, c), rowIds[r], columnIds[c]);
                }
            }
        }).register(registry);
    }

    /** "0", "1", ... "n-1": label values made once. */
    public static String[] ids(int n) {
        String[] s = new String[n];
        for (int i = 0; i < n; i++) {
            s[i] = Integer.toString(i);
        }
        return s;
    }
}
