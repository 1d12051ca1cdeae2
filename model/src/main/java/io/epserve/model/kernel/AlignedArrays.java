package io.epserve.model.kernel;

import com.sun.management.HotSpotDiagnosticMXBean;
import java.lang.management.ManagementFactory;

/**
 * Heap float and double arrays whose element {@link #FLOAT_SKIP} (or {@link #DOUBLE_SKIP}) starts a 64-byte cache
 * line, for the kernels' activation buffers.
 *
 * <p>Why: a 512-bit load from an address that is not a multiple of 64 touches two cache lines, and the FP4 kernels
 * issue one activation load per FMA. Measured on FastKernels' 16-token FP4 tile: 46 GFLOP/s with the activations
 * misaligned, 72 aligned (same JVM, interleaved); +25 % at 4 tokens. Heap arrays are only 8-byte aligned and move
 * with the collector, but G1 places an array of at least half a region ("humongous") at the start of its own
 * regions and never moves it, so its data starts at a fixed offset from a region boundary. Under another collector
 * (or when the region size cannot be read) the arrays are ordinary and the skips are 0: slower, never wrong. The
 * project's JVM flags therefore select G1 explicitly: a JVM that sees one CPU (a worker pinned with taskset, a
 * one-CPU container) would pick Serial, and its FP4/FP8 tiles of 8 and 16 tokens then ran 1.45x slower.
 */
final class AlignedArrays {
    private AlignedArrays() {}

    static final int LINE = 64;
    /** Smallest array size in bytes that G1 allocates as a humongous object; 0 when not running on G1. */
    static final long HUMONGOUS_BYTES;
    static final int FLOAT_SKIP;
    static final int DOUBLE_SKIP;

    static {
        long humongous = 0;
        try {
            HotSpotDiagnosticMXBean vm = ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class);
            if (Boolean.parseBoolean(vm.getVMOption("UseG1GC").getValue())) {
                humongous = Long.parseLong(vm.getVMOption("G1HeapRegionSize").getValue()) / 2;
            }
        } catch (RuntimeException | LinkageError e) {
            humongous = 0; // no jdk.management or not HotSpot: plain arrays
        }
        HUMONGOUS_BYTES = humongous;
        FLOAT_SKIP = humongous > 0 ? skip(sun.misc.Unsafe.ARRAY_FLOAT_BASE_OFFSET, Float.BYTES) : 0;
        DOUBLE_SKIP = humongous > 0 ? skip(sun.misc.Unsafe.ARRAY_DOUBLE_BASE_OFFSET, Double.BYTES) : 0;
    }

    /** Elements from the array base offset to the next cache line (the base offset is a multiple of the size). */
    static int skip(int baseOffset, int elementBytes) {
        return (LINE - baseOffset % LINE) % LINE / elementBytes;
    }

    /** A float array with at least {@code n} usable elements from {@link #FLOAT_SKIP} on. */
    static float[] floats(long n) {
        return new float[(int) Math.max(n + FLOAT_SKIP, (HUMONGOUS_BYTES + Float.BYTES - 1) / Float.BYTES)];
    }

    /** A double array with at least {@code n} usable elements from {@link #DOUBLE_SKIP} on. */
    static double[] doubles(long n) {
        return new double[(int) Math.max(n + DOUBLE_SKIP, (HUMONGOUS_BYTES + Double.BYTES - 1) / Double.BYTES)];
    }
}
