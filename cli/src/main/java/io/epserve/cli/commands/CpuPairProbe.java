package io.epserve.cli.commands;

import io.epserve.model.kernel.FastKernels;
import io.epserve.model.weights.Fp4Matrix;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.SplittableRandom;
import java.util.concurrent.CyclicBarrier;

/**
 * How much two CPUs slow each other down when both compute: the expert workers' kernel (a one-token FP4 product
 * on an expert-sized matrix, from cache) on each CPU alone, then on both at once, each thread pinned with
 * {@code sched_setaffinity}. Micro-batch overlap needs both CPUs busy at the same time, so if two busy CPUs run
 * at 65 % of their speed alone (hyperthread siblings, or a host whose other tenants share the cores), no m can
 * reach 2x m = 1, and a ratio measured in such minutes says more about the host than about the cluster.
 */
final class CpuPairProbe implements AutoCloseable {
    /** Speeds in GFLOP/s: each CPU alone, then each while the other also runs. */
    record Result(double alone0, double alone1, double together0, double together1) {
        /** Both CPUs' speed together over their speed alone (1 = no interference). */
        double ratio() {
            return (together0 + together1) / (alone0 + alone1);
        }
    }

    private static final int ROWS = 512;
    private static final int COLS = 1024;
    private static final MethodHandle SET_AFFINITY = setAffinityHandle();

    private final int cpu0;
    private final int cpu1;
    private final Arena arena = Arena.ofShared();
    private final Fp4Matrix matrix;

    CpuPairProbe(int cpu0, int cpu1) {
        if (SET_AFFINITY == null) {
            throw new IllegalStateException("sched_setaffinity is not available on this system");
        }
        this.cpu0 = cpu0;
        this.cpu1 = cpu1;
        SplittableRandom r = new SplittableRandom(7);
        MemorySegment data = arena.allocate((long) ROWS * COLS / 2, 64);
        for (long i = 0; i < data.byteSize(); i += 8) {
            data.set(ValueLayout.JAVA_LONG_UNALIGNED, i, r.nextLong());
        }
        MemorySegment scale = arena.allocate((long) ROWS * COLS / Fp4Matrix.BLOCK, 64);
        for (long i = 0; i < scale.byteSize(); i++) {
            scale.set(ValueLayout.JAVA_BYTE, i, (byte) (120 + r.nextInt(8))); // no 0 / 0xFF: the vector path
        }
        this.matrix = new Fp4Matrix("cpu-probe", ROWS, COLS, data, scale);
    }

    /** Pins the calling thread to one CPU (Linux). */
    static void pinCurrentThread(int cpu) {
        if (cpu < 0) {
            throw new IllegalArgumentException("CPU " + cpu + " does not exist");
        }
        if (SET_AFFINITY == null) {
            throw new IllegalStateException("sched_setaffinity is not available on this system");
        }
        try (Arena a = Arena.ofConfined()) {
            long bytes = 8L * (cpu / 64 + 1);
            MemorySegment mask = a.allocate(bytes, 8);
            mask.set(ValueLayout.JAVA_LONG, 8L * (cpu / 64), 1L << (cpu % 64));
            int rc = (int) SET_AFFINITY.invokeExact(0, bytes, mask);
            if (rc != 0) {
                throw new IllegalStateException("sched_setaffinity to CPU " + cpu + " failed (is it online and"
                        + " allowed for this process?)");
            }
        } catch (IllegalStateException e) {
            throw e;
        } catch (Throwable e) {
            throw new IllegalStateException("sched_setaffinity to CPU " + cpu + " failed: " + e, e);
        }
    }

    private static MethodHandle setAffinityHandle() {
        try {
            Linker linker = Linker.nativeLinker();
            return linker.defaultLookup().find("sched_setaffinity")
                    .map(f -> linker.downcallHandle(f, FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                            ValueLayout.JAVA_LONG, ValueLayout.ADDRESS)))
                    .orElse(null);
        } catch (RuntimeException e) {
            return null;
        }
    }

    /**
     * Warms the kernel up on both CPUs at once (not reported), then measures each CPU alone and both together, each
     * phase {@code phaseMillis} long, twice over (alone, alone, both, both, alone, alone), keeping each figure's
     * better run: a single phase can catch the JIT or the host at a bad moment.
     */
    Result measure(long warmupMillis, long phaseMillis) {
        run(true, true, warmupMillis);
        double a0 = run(true, false, phaseMillis)[0];
        double a1 = run(false, true, phaseMillis)[1];
        double[] both = run(true, true, phaseMillis);
        double[] again = run(true, true, phaseMillis);
        a0 = Math.max(a0, run(true, false, phaseMillis)[0]);
        a1 = Math.max(a1, run(false, true, phaseMillis)[1]);
        return new Result(a0, a1, Math.max(both[0], again[0]), Math.max(both[1], again[1]));
    }

    /**
     * Runs the kernel on the selected CPUs over the same wall-clock window, one new thread per CPU that pins itself
     * first (the compiled kernel is shared by all threads); GFLOP/s per CPU, 0 where it did not run.
     */
    private double[] run(boolean on0, boolean on1, long millis) {
        int[] cpus = {cpu0, cpu1};
        boolean[] on = {on0, on1};
        CyclicBarrier start = new CyclicBarrier((on0 ? 1 : 0) + (on1 ? 1 : 0));
        double[] speed = new double[2];
        Throwable[] failure = new Throwable[2];
        Thread[] ts = new Thread[2];
        for (int i = 0; i < 2; i++) {
            if (!on[i]) {
                continue;
            }
            int k = i;
            ts[i] = new Thread(() -> {
                try (FastKernels kernels = new FastKernels(1)) {
                    try {
                        pinCurrentThread(cpus[k]);
                    } catch (RuntimeException e) {
                        failure[k] = e;
                    }
                    start.await(); // every thread arrives, pinned or not, so none waits for one that failed
                    if (failure[0] == null && failure[1] == null) {
                        speed[k] = spin(kernels, millis);
                    }
                } catch (Throwable e) {
                    failure[k] = e;
                }
            }, "epserve-cpu-probe-" + cpus[i]);
            ts[i].setDaemon(true);
            ts[i].start();
        }
        for (int i = 0; i < 2; i++) {
            if (ts[i] == null) {
                continue;
            }
            try {
                ts[i].join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while probing the CPUs", e);
            }
        }
        for (Throwable e : failure) {
            if (e instanceof RuntimeException re) {
                throw re;
            }
            if (e != null) {
                throw new IllegalStateException("CPU probe failed: " + e, e);
            }
        }
        return speed;
    }

    private double spin(FastKernels k, long millis) {
        float[] x = new float[COLS];
        SplittableRandom r = new SplittableRandom(3);
        for (int i = 0; i < COLS; i++) {
            x[i] = (float) r.nextGaussian();
        }
        float[] y = new float[ROWS];
        long calls = 0;
        long t0 = System.nanoTime();
        long end = t0 + millis * 1_000_000L;
        long t;
        do {
            k.fp4Linear(matrix, x, 0, COLS, 1, y, 0, ROWS);
            calls++;
            t = System.nanoTime();
        } while (t < end);
        return 2.0 * ROWS * COLS * calls / (t - t0);
    }

    @Override
    public void close() {
        arena.close();
    }
}
