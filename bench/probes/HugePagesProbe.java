// A probe, not part of the build: FP4 products with the weights in 4 KiB pages against the same weights in
// transparent huge pages (bench/README, fourteenth pass). Two 600 MiB anonymous regions, one madvise(MADV_HUGEPAGE)d
// before it is touched, the same random matrices in both, alternating 0.5 s rounds; prints us per call.
//
//   ./mvnw -q -B -pl model -am install -DskipTests
//   javac --add-modules jdk.incubator.vector -cp model/target/classes -d /tmp/probe bench/probes/HugePagesProbe.java
//   taskset -c 1 $JAVA_HOME/bin/java -XX:+UseG1GC --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
//       -cp model/target/classes:/tmp/probe:$(ls ~/.m2/repository/com/fasterxml/jackson/core/jackson-databind/*/*.jar | head -1) \
//       HugePagesProbe 2048 4096 1          # rows, cols, kernel threads
import io.epserve.model.kernel.FastKernels;
import io.epserve.model.weights.Fp4Matrix;
import java.lang.foreign.*;
import java.lang.invoke.MethodHandle;
import java.util.SplittableRandom;

public class HugePagesProbe {
    static final Linker LK = Linker.nativeLinker();
    static final MethodHandle MMAP = LK.downcallHandle(LK.defaultLookup().find("mmap").orElseThrow(),
        FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT,
            ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
    static final MethodHandle MADVISE = LK.downcallHandle(LK.defaultLookup().find("madvise").orElseThrow(),
        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));

    static MemorySegment region(long len, boolean huge) throws Throwable {
        long two = 2L << 20;
        MemorySegment p = (MemorySegment) MMAP.invokeExact(MemorySegment.NULL, len + two, 3, 0x22, -1, 0L);
        long a = (p.address() + two - 1) & -two;
        MemorySegment s = MemorySegment.ofAddress(a).reinterpret(len);
        if (huge) {
            int rc = (int) MADVISE.invokeExact(s, len, 14);
            if (rc != 0) throw new IllegalStateException("madvise " + rc);
        }
        return s;
    }

    public static void main(String[] args) throws Throwable {
        int rows = Integer.parseInt(args[0]), cols = Integer.parseInt(args[1]);
        int[] tokensList = {1, 4};
        long dataB = (long) rows * cols / 2, scB = (long) rows * cols / 32;
        long each = (dataB + scB + 4095) & -4096L;
        int n = (int) ((600L << 20) / each);
        SplittableRandom r = new SplittableRandom(1);
        Fp4Matrix[][] sets = new Fp4Matrix[2][n];
        for (int h = 0; h < 2; h++) {
            MemorySegment reg = region(each * n, h == 1);
            for (int i = 0; i < n; i++) {
                MemorySegment d = reg.asSlice(i * each, dataB);
                MemorySegment s = reg.asSlice(i * each + dataB, scB);
                for (long o = 0; o < dataB; o += 8) d.set(ValueLayout.JAVA_LONG_UNALIGNED, o, r.nextLong());
                for (long o = 0; o < scB; o++) s.set(ValueLayout.JAVA_BYTE, o, (byte) (120 + r.nextInt(8)));
                sets[h][i] = new Fp4Matrix("m", rows, cols, d, s);
            }
        }
        System.out.println(n + " matrices per set; " + new String(java.nio.file.Files.readAllBytes(java.nio.file.Path.of("/proc/meminfo"))).lines().filter(l -> l.startsWith("AnonHuge")).findFirst().get());
        FastKernels k = new FastKernels(Integer.parseInt(args[2]));
        float[] x = new float[16 * cols];
        for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
        float[] y = new float[16 * rows];
        for (int round = 0; round < 8; round++) {
            StringBuilder sb = new StringBuilder("round " + round);
            for (int tokens : tokensList) {
                for (int h = 0; h < 2; h++) {
                    long t0 = System.nanoTime(), calls = 0;
                    int i = 0;
                    while (System.nanoTime() - t0 < 500_000_000L) {
                        k.fp4Linear(sets[h][i], x, 0, cols, tokens, y, 0, rows);
                        i = (i + 1) % n;
                        calls++;
                    }
                    double us = (System.nanoTime() - t0) / 1e3 / calls;
                    sb.append(String.format("  t%d %s %.1f us (%.1f GFLOP/s)", tokens, h == 1 ? "huge" : "4k", us, 2.0 * rows * cols * tokens / us / 1e3));
                }
            }
            System.out.println(sb);
        }
    }
}
