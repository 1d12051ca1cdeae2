package io.epserve.bench;

import io.epserve.model.kernel.FastKernels;
import io.epserve.model.weights.Bf16Matrix;
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
 * FastKernels' bf16-weight linears: {@code wide} = bf16LinearWide (float64 accumulation, unrounded double results:
 * compressor wkv/wgate, MoE gate, lm head) and {@code bf16} = bf16Linear (float32 accumulation, bf16 out: indexer
 * weights_proj), on the same matrices, to show what the float64 accumulation costs. Counters as in
 * {@link Fp4LinearBench}.
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
public class Bf16LinearBench {
    @Param({"1", "16"})
    public int tokens;

    @Param({"1024x4096"})
    public String shape;

    @Param({"wide", "bf16"})
    public String method;

    @Param({"hot", "cold"})
    public String set;

    @Param({"2"})
    public int threads;

    private Arena arena;
    private Bf16Matrix[] w;
    private FastKernels kernels;
    private float[] x;
    private float[] y;
    private double[] yd;
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
        long bytes = 2L * rows * cols;
        arena = Arena.ofShared();
        SplittableRandom r = new SplittableRandom(42);
        w = new Bf16Matrix[BenchData.copies(set, bytes, 2)];
        for (int i = 0; i < w.length; i++) {
            w[i] = new Bf16Matrix("bench.bf16", rows, cols, BenchData.wideWeights(arena, rows, cols, true, r));
        }
        x = BenchData.activations(tokens, cols, r);
        y = new float[tokens * rows];
        yd = new double[tokens * rows];
        kernels = new FastKernels(threads);
        gbPerCall = bytes / 1e9;
        gflopPerCall = 2.0 * rows * cols * tokens / 1e9;
        System.out.printf("%n[bf16 %s %s] %d matrices, %.1f MiB%n", shape, set, w.length, w.length * bytes / 1048576.0);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        kernels.close();
        arena.close();
    }

    @Benchmark
    public Object linear(LinearCounters c) {
        Bf16Matrix m = w[next];
        next = next + 1 == w.length ? 0 : next + 1;
        Object out;
        if (method.equals("wide")) {
            kernels.bf16LinearWide(m, x, 0, cols, tokens, yd, 0, rows);
            out = yd;
        } else {
            kernels.bf16Linear(m, x, 0, cols, tokens, y, 0, rows);
            out = y;
        }
        c.gbytes += gbPerCall;
        c.gflops += gflopPerCall;
        return out;
    }
}
