package io.epserve.bench;

import io.epserve.model.kernel.FastKernels;
import io.epserve.model.weights.Fp8Matrix;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * FastKernels.fp8Linear (e4m3 weights with 128x128 E8M0 block scales, FP8-quantised activations, bf16 out) on the
 * same shapes as {@link Fp4LinearBench}, cold by default ("-p set=hot" reuses one matrix). Read "gbytes" and
 * "gflops" as GB/s of stored weight bytes and GFLOP/s (see {@link LinearCounters}).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@State(Scope.Benchmark)
@Warmup(iterations = 5, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = {
    "--add-modules", "jdk.incubator.vector,java.se", "--enable-native-access=ALL-UNNAMED",
    "--sun-misc-unsafe-memory-access=allow", "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.base/jdk.internal.ref=ALL-UNNAMED", "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED", "--add-opens", "java.management/sun.management=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED", "-XX:+UseG1GC",
    "-XX:CompileCommand=quiet", "-XX:CompileCommand=dontinline,*AttentionJob::weights",
    "-XX:CompileCommand=dontinline,*AttentionJob::scores", "-XX:CompileCommand=dontinline,*IndexJob::weigh4"})
public class Fp8LinearBench {
    @Param({"1", "4", "16"})
    public int tokens;

    @Param({"16384x8192", "2048x4096", "4096x2048"})
    public String shape;

    @Param({"cold"})
    public String set;

    @Param({"2"})
    public int threads;

    private Arena arena;
    private Fp8Matrix[] w;
    private FastKernels kernels;
    private float[] x;
    private float[] y;
    private int next;
    private int rows;
    private int cols;
    private double gbPerCall;
    private double gflopPerCall;

    @Setup(Level.Trial)
    public void setup() {
        int[] s = BenchData.shape(shape);
        rows = s[0];
        cols = s[1];
        long bytes = BenchData.fp8Bytes(rows, cols);
        arena = Arena.ofShared();
        SplittableRandom r = new SplittableRandom(42);
        w = new Fp8Matrix[BenchData.copies(set, bytes, bytes < (16 << 20) ? 32 : 2)];
        for (int i = 0; i < w.length; i++) {
            w[i] = BenchData.fp8(arena, rows, cols, r);
        }
        x = BenchData.activations(tokens, cols, r);
        y = new float[tokens * rows];
        kernels = new FastKernels(threads);
        gbPerCall = bytes / 1e9;
        gflopPerCall = 2.0 * rows * cols * tokens / 1e9;
        System.out.printf("%n[fp8 %s %s] %d matrices, %.1f MiB%n", shape, set, w.length, w.length * bytes / 1048576.0);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        kernels.close();
        arena.close();
    }

    @Benchmark
    public float[] linear(LinearCounters c) {
        Fp8Matrix m = w[next];
        next = next + 1 == w.length ? 0 : next + 1;
        kernels.fp8Linear(m, 0, rows, x, 0, cols, tokens, y, 0, rows);
        c.gbytes += gbPerCall;
        c.gflops += gflopPerCall;
        return y;
    }
}
