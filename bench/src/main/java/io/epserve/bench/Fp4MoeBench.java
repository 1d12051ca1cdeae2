package io.epserve.bench;

import io.epserve.model.kernel.FastKernels;
import io.epserve.model.weights.Fp4Matrix;
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
 * One MoE projection the way the engine and the expert workers run it: tokens grouped by expert, each used expert's
 * rows gathered and multiplied in one {@code fp4Linear} call (its weights read once for all its tokens), results
 * scattered back. The shape of llama.cpp's MUL_MAT_ID comparison (bench/LLAMACPP.md): 142 experts of 2048x4096
 * (625 MB, so weights come from DRAM), 8 used per token; {@code distinct}: no two tokens share an expert (each
 * expert gets one token), {@code shared}: all tokens use the same 8 experts. The experts used move on every call.
 *
 * <p>"gflops" counts 2 * rows * cols per (token, expert) pair; "gbytes" the FP4 bytes of the experts touched.
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
public class Fp4MoeBench {
    static final int EXPERTS = 142, USED = 8, ROWS = 2048, COLS = 4096;

    @Param({"1", "4", "16"})
    public int tokens;

    @Param({"distinct", "shared"})
    public String routing;

    @Param({"2"})
    public int threads;

    private Arena arena;
    private Fp4Matrix[] experts;
    private FastKernels kernels;
    private float[] x;
    private float[] y;
    private float[] xs;
    private float[] ys;
    private int[] rowsOf;
    private int first;
    private double gbPerCall;
    private double gflopPerCall;

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        SplittableRandom r = new SplittableRandom(42);
        experts = new Fp4Matrix[EXPERTS];
        for (int e = 0; e < EXPERTS; e++) {
            experts[e] = BenchData.fp4(arena, ROWS, COLS, r);
        }
        x = BenchData.activations(tokens, COLS, r);
        y = new float[tokens * USED * ROWS];
        xs = new float[tokens * COLS];
        ys = new float[tokens * ROWS];
        rowsOf = new int[tokens];
        kernels = new FastKernels(threads);
        int touched = "shared".equals(routing) ? USED : USED * tokens;
        gbPerCall = touched * BenchData.fp4Bytes(ROWS, COLS) / 1e9;
        gflopPerCall = 2.0 * ROWS * COLS * tokens * USED / 1e9;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        kernels.close();
        arena.close();
    }

    @Benchmark
    public float[] moe(LinearCounters c) {
        boolean shared = "shared".equals(routing);
        int groups = shared ? USED : USED * tokens;
        for (int g = 0; g < groups; g++) {
            Fp4Matrix w = experts[(first + g) % EXPERTS];
            // distinct: expert g serves token g / USED alone; shared: every token
            int n = 0;
            for (int t = 0; t < tokens; t++) {
                if (shared || t == g / USED) {
                    System.arraycopy(x, t * COLS, xs, n * COLS, COLS);
                    rowsOf[n++] = t;
                }
            }
            kernels.fp4Linear(w, xs, 0, COLS, n, ys, 0, ROWS);
            for (int i = 0; i < n; i++) {
                int slot = shared ? g : g % USED;
                System.arraycopy(ys, i * ROWS, y, (rowsOf[i] * USED + slot) * ROWS, ROWS);
            }
        }
        first = (first + groups) % EXPERTS;
        c.gbytes += gbPerCall;
        c.gflops += gflopPerCall;
        return y;
    }
}
