package io.epserve.model.kernel;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Measures the machine's sustained read bandwidth the way the kernels read weights: Vector API loads over an
 * off-heap segment far larger than the caches, split over threads. The reference figure for "fraction of bandwidth".
 */
public final class MemoryBandwidth {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

    /** Where results go so that the JIT cannot drop the summing loops. */
    static volatile float sink;

    private MemoryBandwidth() {}

    /** Best of a few passes over a 512 MiB buffer, in bytes per second. */
    public static double measureReadBytesPerSecond(int threads) {
        long bytes = 512L << 20;
        try (Arena arena = Arena.ofShared(); ExecutorService pool = Executors.newFixedThreadPool(threads)) {
            MemorySegment seg = arena.allocate(bytes, 64);
            seg.fill((byte) 1);
            float warm = 0;
            for (int i = 0; i < 200; i++) {
                warm += sum(seg.asSlice(0, 1 << 20)); // compile sum() before timing it
            }
            sink = warm;
            double best = 0;
            for (int pass = 0; pass < 6; pass++) {
                long t0 = System.nanoTime();
                List<Future<Float>> parts = new ArrayList<>();
                long slice = bytes / threads / 256 * 256;
                for (int t = 0; t < threads; t++) {
                    MemorySegment part = seg.asSlice(t * slice, slice);
                    parts.add(pool.submit(() -> sum(part)));
                }
                float sink = 0;
                for (Future<Float> f : parts) {
                    sink += f.get();
                }
                long dt = System.nanoTime() - t0;
                MemoryBandwidth.sink = sink; // keeps the sums alive
                best = Math.max(best, (double) slice * threads / (dt / 1e9));
            }
            return best;
        } catch (Exception e) {
            throw new IllegalStateException("bandwidth measurement failed", e);
        }
    }

    /** Sum of a segment's floats with four independent accumulators. */
    public static float sum(MemorySegment seg) {
        long n = seg.byteSize();
        long step = 4L * S.vectorByteSize();
        FloatVector a0 = FloatVector.zero(S);
        FloatVector a1 = FloatVector.zero(S);
        FloatVector a2 = FloatVector.zero(S);
        FloatVector a3 = FloatVector.zero(S);
        int vb = S.vectorByteSize();
        for (long off = 0; off + step <= n; off += step) {
            a0 = a0.add(FloatVector.fromMemorySegment(S, seg, off, ByteOrder.LITTLE_ENDIAN));
            a1 = a1.add(FloatVector.fromMemorySegment(S, seg, off + vb, ByteOrder.LITTLE_ENDIAN));
            a2 = a2.add(FloatVector.fromMemorySegment(S, seg, off + 2L * vb, ByteOrder.LITTLE_ENDIAN));
            a3 = a3.add(FloatVector.fromMemorySegment(S, seg, off + 3L * vb, ByteOrder.LITTLE_ENDIAN));
        }
        return a0.add(a1).add(a2).add(a3).reduceLanes(VectorOperators.ADD);
    }
}
