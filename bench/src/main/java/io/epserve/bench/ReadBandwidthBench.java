package io.epserve.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The memory-read ceiling the linear kernels are measured against: each thread sums its own buffer (larger than
 * the LLC) with the Vector API, as fast as loads allow. Integer adds, because random bytes read as floats would
 * include subnormals, which cost microcode assists on this CPU. "gbytes" reads as GB/s summed over threads.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = {
    "--add-modules", "jdk.incubator.vector,java.se", "--enable-native-access=ALL-UNNAMED",
    "--sun-misc-unsafe-memory-access=allow", "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.base/jdk.internal.ref=ALL-UNNAMED", "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED", "--add-opens", "java.management/sun.management=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED", "-XX:+UseG1GC",
    "-XX:CompileCommand=quiet", "-XX:CompileCommand=dontinline,*AttentionJob::weights",
    "-XX:CompileCommand=dontinline,*AttentionJob::scores", "-XX:CompileCommand=dontinline,*IndexJob::weigh4"})
public class ReadBandwidthBench {
    static final VectorSpecies<Integer> IS = IntVector.SPECIES_PREFERRED;

    @State(Scope.Thread)
    public static class Buffer {
        Arena arena;
        MemorySegment data;
        double gbPerCall;

        @Setup(Level.Trial)
        public void setup() {
            long bytes = Math.max(2 * BenchData.llcBytes(), 256L << 20) / IS.vectorByteSize() / 4
                    * IS.vectorByteSize() * 4;
            arena = Arena.ofConfined();
            data = BenchData.WEIGHTS.allocate(bytes, arena);
            for (long i = 0; i < bytes; i += 8) {
                data.set(ValueLayout.JAVA_LONG_UNALIGNED, i, i * 0x9E3779B97F4A7C15L);
            }
            gbPerCall = bytes / 1e9;
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            arena.close();
        }
    }

    static int sum(MemorySegment m) {
        IntVector a0 = IntVector.zero(IS);
        IntVector a1 = IntVector.zero(IS);
        IntVector a2 = IntVector.zero(IS);
        IntVector a3 = IntVector.zero(IS);
        long step = IS.vectorByteSize();
        long n = m.byteSize();
        for (long i = 0; i < n; i += 4 * step) {
            a0 = a0.add(IntVector.fromMemorySegment(IS, m, i, ByteOrder.LITTLE_ENDIAN));
            a1 = a1.add(IntVector.fromMemorySegment(IS, m, i + step, ByteOrder.LITTLE_ENDIAN));
            a2 = a2.add(IntVector.fromMemorySegment(IS, m, i + 2 * step, ByteOrder.LITTLE_ENDIAN));
            a3 = a3.add(IntVector.fromMemorySegment(IS, m, i + 3 * step, ByteOrder.LITTLE_ENDIAN));
        }
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
    }

    @Benchmark
    @Threads(1)
    public int oneThread(Buffer b, LinearCounters c) {
        c.gbytes += b.gbPerCall;
        return sum(b.data);
    }

    @Benchmark
    @Threads(2)
    public int twoThreads(Buffer b, LinearCounters c) {
        c.gbytes += b.gbPerCall;
        return sum(b.data);
    }
}
