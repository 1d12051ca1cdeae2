package io.epserve.bench;

import io.epserve.model.format.Fp8E4m3;
import io.epserve.model.safetensors.WeightMemory;
import io.epserve.model.weights.Fp4Matrix;
import io.epserve.model.weights.Fp8Matrix;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * Weight sets for the linear benchmarks, built in native memory (as a mapped checkpoint would be), and sized so
 * that cycling through them streams from DRAM: the working set is at least twice the last-level cache, read from
 * sysfs because this VM reports a 300 MiB L3 where the machine notes assumed 32 MiB.
 */
final class BenchData {
    private BenchData() {}

    /**
     * The memory the benchmarks' weights live in: the engine's ({@link WeightMemory#configured()}, huge pages where
     * the kernel offers them; {@code EPSERVE_WEIGHTS=mapped} for ordinary pages), so a cold benchmark streams
     * weights from DRAM the way a serving step does.
     */
    static final WeightMemory WEIGHTS = WeightMemory.configured();

    /** Last-level cache size in bytes (sysfs), or 32 MiB when unknown. */
    static long llcBytes() {
        for (int i = 3; i >= 2; i--) {
            Path p = Path.of("/sys/devices/system/cpu/cpu0/cache/index" + i + "/size");
            try {
                String s = Files.readString(p).trim();
                long mul = s.endsWith("K") ? 1L << 10 : s.endsWith("M") ? 1L << 20 : 1;
                return Long.parseLong(s.replaceAll("[^0-9]", "")) * mul;
            } catch (IOException | RuntimeException e) {
                // try the next level
            }
        }
        return 32L << 20;
    }

    /** How many distinct matrices of the given size to cycle through: "hot" = 1, "cold" = over 2x LLC, >= min. */
    static int copies(String set, long bytesEach, int min) {
        if (set.equals("hot")) {
            return 1;
        }
        long target = 2 * Math.max(llcBytes(), 32L << 20);
        return (int) Math.max(min, (target + bytesEach - 1) / bytesEach);
    }

    static int[] shape(String s) {
        String[] p = s.split("x");
        return new int[] {Integer.parseInt(p[0]), Integer.parseInt(p[1])};
    }

    static MemorySegment randomBytes(Arena arena, long n, SplittableRandom r, long mask) {
        MemorySegment m = WEIGHTS.allocate(n, arena);
        long i = 0;
        for (; i + 8 <= n; i += 8) {
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, i, r.nextLong() & mask);
        }
        for (; i < n; i++) {
            m.set(ValueLayout.JAVA_BYTE, i, (byte) (r.nextInt() & mask));
        }
        return m;
    }

    /** E8M0 scales around 2^-4: no 0 / 0xFF codes, which the fast kernel sends to its scalar path. */
    static MemorySegment scales(Arena arena, long n, SplittableRandom r) {
        MemorySegment m = WEIGHTS.allocate(n, arena);
        for (long i = 0; i < n; i++) {
            m.set(ValueLayout.JAVA_BYTE, i, (byte) (120 + r.nextInt(8)));
        }
        return m;
    }

    static Fp4Matrix fp4(Arena arena, int rows, int cols, SplittableRandom r) {
        MemorySegment[] s = fp4Segments(arena, rows, cols, r);
        return new Fp4Matrix("bench.fp4", rows, cols, s[0], s[1]);
    }

    /** The codes and scales of {@link #fp4}. */
    static MemorySegment[] fp4Segments(Arena arena, int rows, int cols, SplittableRandom r) {
        return new MemorySegment[] {randomBytes(arena, (long) rows * cols / 2, r, -1L),
            scales(arena, (long) rows * cols / 32, r)};
    }

    static long fp4Bytes(int rows, int cols) {
        return (long) rows * cols / 2 + (long) rows * cols / 32;
    }

    /**
     * e4m3 codes as a checkpoint holds them: Gaussian weights quantised to a block maximum of 448 at 4.5 standard
     * deviations, so about 1.5 codes in 10^4 are subnormal (the {@code small} checkpoint: 1.5 in 10^4, in 1.8 % of
     * the 128-code groups), which matters because the fast kernels decode groups holding one the long way. Uniformly
     * random codes, as before, put a subnormal in every group. A pool of 1 MiB of codes is copied at random offsets.
     */
    static Fp8Matrix fp8(Arena arena, int rows, int cols, SplittableRandom r) {
        MemorySegment[] s = fp8Segments(arena, rows, cols, r);
        return new Fp8Matrix("bench.fp8", rows, cols, s[0], s[1]);
    }

    /** The codes and block scales of {@link #fp8}. */
    static MemorySegment[] fp8Segments(Arena arena, int rows, int cols, SplittableRandom r) {
        long sr = (rows + 127) / 128;
        long sc = (cols + 127) / 128;
        byte[] pool = new byte[1 << 20];
        for (int i = 0; i < pool.length; i++) {
            pool[i] = Fp8E4m3.encode(Math.max(-448, Math.min(448, r.nextGaussian() * (448 / 4.5))));
        }
        long n = (long) rows * cols;
        MemorySegment data = WEIGHTS.allocate(n, arena);
        int chunk = pool.length / 2;
        for (long off = 0; off < n; off += chunk) {
            MemorySegment.copy(pool, r.nextInt(pool.length - chunk), data, ValueLayout.JAVA_BYTE, off,
                    (int) Math.min(chunk, n - off));
        }
        return new MemorySegment[] {data, scales(arena, sr * sc, r)};
    }

    static long fp8Bytes(int rows, int cols) {
        return (long) rows * cols + (long) ((rows + 127) / 128) * ((cols + 127) / 128);
    }

    /** bf16 (or float32) weights ~ N(0, 0.05), as {@link Bf16LinearBench} makes them. */
    static MemorySegment wideWeights(Arena arena, int rows, int cols, boolean bf16, SplittableRandom r) {
        long n = (long) rows * cols;
        MemorySegment m = WEIGHTS.allocate(n * (bf16 ? 2 : 4), arena);
        for (long i = 0; i < n; i++) {
            float v = (float) (r.nextGaussian() * 0.05);
            if (bf16) {
                m.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2 * i, (short) (Float.floatToRawIntBits(v) >>> 16));
            } else {
                m.set(ValueLayout.JAVA_FLOAT_UNALIGNED, 4 * i, v);
            }
        }
        return m;
    }

    /** bf16-valued activations, as the engine passes them. */
    static float[] activations(int tokens, int cols, SplittableRandom r) {
        float[] x = new float[tokens * cols];
        for (int i = 0; i < x.length; i++) {
            x[i] = Float.intBitsToFloat(Float.floatToRawIntBits((float) r.nextGaussian()) & 0xffff0000);
        }
        return x;
    }
}
