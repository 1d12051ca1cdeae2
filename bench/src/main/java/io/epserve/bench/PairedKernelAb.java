package io.epserve.bench;

import java.io.File;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.reflect.Constructor;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Two builds of the model's kernels compared side by side in one JVM: each build's classes in its own class loader,
 * the same weights (native memory, shared) and activations, short rounds of A and B alternating (ABBA), and the
 * answer as the median of the per-round ratios B/A with its interquartile range.
 *
 * <p>Why not JMH runs of each build: on the VMs this project is measured on, a core's speed moves by ±30 % within
 * seconds, so two benchmark runs a minute apart differ by more than most kernel changes. Rounds of 0.05-0.25 s that
 * alternate see the same machine state, and the median of their ratios is stable to a few per cent.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -cp bench/target/benchmarks.jar \
 *     io.epserve.bench.PairedKernelAb --a /tmp/old/model/target/classes --b model/target/classes \
 *     --kind fp4 --shapes 512x1024,1024x512 --tokens 1,8 --set cold --threads 1 --rounds 40
 * </pre>
 * Run it under {@code taskset -c N} for one core (the forks inherit it). Each (shape, tokens) case runs in a JVM of
 * its own ({@code --no-fork} runs them all here), with G1 unless this JVM names a collector: the kernels' aligned
 * buffers need it (see AlignedArrays), and a JVM pinned to one CPU would otherwise pick Serial. Before the timed
 * rounds each build computes the product once and the outputs are compared bit for bit (printed, not enforced: a
 * change may be meant to alter bits).
 */
public final class PairedKernelAb {
    private PairedKernelAb() {}

    /** One build's kernels, called by reflection (its classes are not this loader's). */
    private static final class Build implements AutoCloseable {
        final String name;
        final URLClassLoader loader;
        final Object kernels;
        final Method linear;
        final Constructor<?> matrix;
        final String kind;

        Build(String name, String path, String kind, int threads) throws Exception {
            this.name = name;
            this.kind = kind;
            List<URL> urls = new ArrayList<>();
            for (String p : path.split(File.pathSeparator)) {
                urls.add(new File(p).toURI().toURL());
            }
            loader = new URLClassLoader(name, urls.toArray(URL[]::new), ClassLoader.getPlatformClassLoader());
            Class<?> k;
            try {
                k = loader.loadClass("io.epserve.model.kernel.FastKernels");
            } catch (ClassNotFoundException e) {
                throw new IllegalArgumentException(name + ": " + path + " does not hold the model's classes"
                        + " (a model/target/classes directory or the model jar)", e);
            }
            kernels = k.getConstructor(int.class).newInstance(threads);
            switch (kind) {
                case "fp4" -> {
                    Class<?> m = loader.loadClass("io.epserve.model.weights.Fp4Matrix");
                    matrix = m.getConstructor(String.class, int.class, int.class, MemorySegment.class,
                            MemorySegment.class);
                    linear = k.getMethod("fp4Linear", m, float[].class, int.class, int.class, int.class,
                            float[].class, int.class, int.class);
                }
                case "fp8" -> {
                    Class<?> m = loader.loadClass("io.epserve.model.weights.Fp8Matrix");
                    matrix = m.getConstructor(String.class, int.class, int.class, MemorySegment.class,
                            MemorySegment.class);
                    linear = k.getMethod("fp8Linear", m, int.class, int.class, float[].class, int.class, int.class,
                            int.class, float[].class, int.class, int.class);
                }
                default -> { // "wide" (bf16 weights) or "f32wide": the float64 linears, double results
                    Class<?> m = loader.loadClass(kind.equals("wide") ? "io.epserve.model.weights.Bf16Matrix"
                            : "io.epserve.model.weights.F32Matrix");
                    matrix = m.getConstructor(String.class, int.class, int.class, MemorySegment.class);
                    linear = k.getMethod(kind.equals("wide") ? "bf16LinearWide" : "f32LinearWide", m,
                            float[].class, int.class, int.class, int.class, double[].class, int.class, int.class);
                }
            }
        }

        Object matrix(int rows, int cols, MemorySegment data, MemorySegment scales) throws Exception {
            return scales == null ? matrix.newInstance("ab." + kind, rows, cols, data)
                    : matrix.newInstance("ab." + kind, rows, cols, data, scales);
        }

        void run(Object m, int rows, int cols, float[] x, int tokens, Object y) throws Exception {
            switch (kind) {
                case "fp4" -> linear.invoke(kernels, m, x, 0, cols, tokens, y, 0, rows);
                case "fp8" -> linear.invoke(kernels, m, 0, rows, x, 0, cols, tokens, y, 0, rows);
                default -> linear.invoke(kernels, m, x, 0, cols, tokens, y, 0, rows);
            }
        }

        @Override
        public void close() throws Exception {
            ((AutoCloseable) kernels).close();
            loader.close();
        }
    }

    public static void main(String[] args) throws Exception {
        try {
            run(args, System.out);
        } catch (IllegalArgumentException e) {
            System.err.println("PairedKernelAb: " + e.getMessage() + "\nusage: --a CLASSES --b CLASSES [--kind fp4|fp8|wide|f32wide]"
                    + " [--set cold|hot] [--shapes RxC,...] [--tokens N,...] [--threads N] [--rounds N]"
                    + " [--round-seconds S] [--warmup-seconds S] [--no-fork]");
            System.exit(2);
        }
    }

    /** Runs the comparison, printing to {@code out}; bad arguments throw {@link IllegalArgumentException}. */
    static void run(String[] args, PrintStream out) throws Exception {
        String a = null;
        String b = null;
        String kind = "fp4";
        String set = "cold";
        List<String> shapes = List.of("512x1024", "1024x512");
        int[] tokenCounts = {1};
        int threads = 1;
        int rounds = 40;
        double roundSeconds = 0.1;
        double warmupSeconds = 3;
        boolean fork = true;
        boolean child = false;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--no-fork") || args[i].equals("--child")) {
                fork = false;
                child |= args[i].equals("--child");
                continue;
            }
            String v = i + 1 < args.length ? args[i + 1] : null;
            if (v == null) {
                usage(args[i] + " needs a value");
            }
            try {
                switch (args[i]) {
                    case "--a" -> a = v;
                    case "--b" -> b = v;
                    case "--kind" -> kind = v;
                    case "--set" -> set = v;
                    case "--shapes" -> shapes = Arrays.asList(v.split(","));
                    case "--tokens" -> tokenCounts = Arrays.stream(v.split(",")).mapToInt(Integer::parseInt).toArray();
                    case "--threads" -> threads = Integer.parseInt(v);
                    case "--rounds" -> rounds = Integer.parseInt(v);
                    case "--round-seconds" -> roundSeconds = Double.parseDouble(v);
                    case "--warmup-seconds" -> warmupSeconds = Double.parseDouble(v);
                    default -> usage("unknown option " + args[i]);
                }
            } catch (NumberFormatException e) {
                usage(args[i] + ": not a number: " + v);
            }
            i++;
        }
        if (a == null || b == null) {
            usage("--a and --b are required");
        }
        if (!List.of("fp4", "fp8", "wide", "f32wide").contains(kind) || !set.equals("hot") && !set.equals("cold")) {
            usage("--kind is fp4, fp8, wide or f32wide, --set hot or cold");
        }
        if (rounds < 4 || roundSeconds <= 0 || threads < 1) {
            usage("--rounds >= 4, --round-seconds > 0, --threads >= 1");
        }
        if (!child) {
            out.printf(Locale.ROOT, "A = %s%nB = %s%n%s, %s weights, %d thread(s), %d rounds of %.2f s each"
                    + " side, %s%n", a, b, kind, set, threads, rounds, roundSeconds,
                    fork ? "each case in its own JVM" : "all cases in this JVM");
            if (!fork && !g1()) {
                out.println("note: this JVM does not run G1, so the kernels' activation and scratch buffers are not"
                        + " cache-line aligned (AlignedArrays) and run slower than in epserve's JVMs; add"
                        + " -XX:+UseG1GC");
            }
            out.println("shape      tokens  A us/call  B us/call  B/A median [IQR]  bits");
        }
        if (fork) {
            try (Build ba = new Build("A", a, kind, threads); Build bb = new Build("B", b, kind, threads)) {
                // only to fail here, with the reason, rather than in every fork
            }
            for (String shape : shapes) {
                for (int tokens : tokenCounts) {
                    forkCase(args, shape, tokens, out);
                }
            }
            return;
        }
        try (Build ba = new Build("A", a, kind, threads); Build bb = new Build("B", b, kind, threads)) {
            for (String shape : shapes) {
                for (int tokens : tokenCounts) {
                    out.println(compare(ba, bb, kind, set, shape, tokens, rounds, roundSeconds, warmupSeconds));
                }
            }
        }
    }

    /**
     * Runs one case in a new JVM (this one's flags and class path): the JIT compiles a kernel for the cases it has
     * seen, so in one JVM a case's figures depend on the cases before it (measured: an 8-token product's ratio went
     * from 0.71 to 1.02 when a 2-token case ran first).
     */
    private static void forkCase(String[] args, String shape, int tokens, PrintStream out) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        List<String> jvmArgs = java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments();
        cmd.addAll(jvmArgs);
        // The project's JVMs select G1 explicitly (AlignedArrays aligns buffers only under G1); a JVM that sees one
        // CPU, as under taskset -c N, would pick Serial, and the kernels measured 1.1-1.65x slower there.
        if (jvmArgs.stream().noneMatch(f -> f.startsWith("-XX:+Use") && f.endsWith("GC"))) {
            cmd.add("-XX:+UseG1GC");
        }
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(PairedKernelAb.class.getName());
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--shapes") || args[i].equals("--tokens")) {
                i++;
            } else {
                cmd.add(args[i]);
            }
        }
        cmd.addAll(List.of("--shapes", shape, "--tokens", Integer.toString(tokens), "--child"));
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        out.print(new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8));
        int rc = p.waitFor();
        if (rc != 0) {
            out.printf(Locale.ROOT, "%-10s %6d  failed (exit %d): run it with --no-fork to see why%n", shape,
                    tokens, rc);
        }
    }

    /** Whether this JVM runs G1. */
    static boolean g1() {
        try {
            return Boolean.parseBoolean(java.lang.management.ManagementFactory.getPlatformMXBean(
                    com.sun.management.HotSpotDiagnosticMXBean.class).getVMOption("UseG1GC").getValue());
        } catch (RuntimeException | LinkageError e) {
            return false;
        }
    }

    private static void usage(String why) {
        throw new IllegalArgumentException(why);
    }

    /** One case's result line. */
    private static String compare(Build a, Build b, String kind, String set, String shape, int tokens, int rounds,
                                  double roundSeconds, double warmupSeconds) throws Exception {
        int[] s = BenchData.shape(shape);
        int rows = s[0];
        int cols = s[1];
        SplittableRandom r = new SplittableRandom(42);
        try (Arena arena = Arena.ofShared()) {
            long bytes = switch (kind) {
                case "fp4" -> BenchData.fp4Bytes(rows, cols);
                case "fp8" -> BenchData.fp8Bytes(rows, cols);
                case "wide" -> 2L * rows * cols;
                default -> 4L * rows * cols;
            };
            int n = BenchData.copies(set, bytes, bytes < (16 << 20) ? 32 : 2);
            Object[] ma = new Object[n];
            Object[] mb = new Object[n];
            for (int i = 0; i < n; i++) {
                MemorySegment[] w = switch (kind) {
                    case "fp4" -> BenchData.fp4Segments(arena, rows, cols, r);
                    case "fp8" -> BenchData.fp8Segments(arena, rows, cols, r);
                    default -> new MemorySegment[] {BenchData.wideWeights(arena, rows, cols, kind.equals("wide"), r),
                        null};
                };
                ma[i] = a.matrix(rows, cols, w[0], w[1]);
                mb[i] = b.matrix(rows, cols, w[0], w[1]);
            }
            float[] x = BenchData.activations(tokens, cols, r);
            boolean wide = kind.endsWith("wide");
            Object ya = wide ? new double[tokens * rows] : new float[tokens * rows];
            Object yb = wide ? new double[tokens * rows] : new float[tokens * rows];
            a.run(ma[0], rows, cols, x, tokens, ya);
            b.run(mb[0], rows, cols, x, tokens, yb);
            boolean same = wide ? Arrays.equals((double[]) ya, (double[]) yb) : Arrays.equals((float[]) ya, (float[]) yb);
            long warmEnd = System.nanoTime() + (long) (warmupSeconds * 1e9);
            while (System.nanoTime() < warmEnd) {
                time(a, ma, rows, cols, x, tokens, ya, 0.05);
                time(b, mb, rows, cols, x, tokens, yb, 0.05);
            }
            double[] ratio = new double[rounds];
            double[] ta = new double[rounds];
            double[] tb = new double[rounds];
            for (int k = 0; k < rounds; k++) {
                // ABBA: neither side always runs first, after the other has warmed the caches or the clock
                if (k % 2 == 0) {
                    ta[k] = time(a, ma, rows, cols, x, tokens, ya, roundSeconds);
                    tb[k] = time(b, mb, rows, cols, x, tokens, yb, roundSeconds);
                } else {
                    tb[k] = time(b, mb, rows, cols, x, tokens, yb, roundSeconds);
                    ta[k] = time(a, ma, rows, cols, x, tokens, ya, roundSeconds);
                }
                ratio[k] = tb[k] / ta[k];
            }
            Arrays.sort(ratio);
            Arrays.sort(ta);
            Arrays.sort(tb);
            return String.format(Locale.ROOT, "%-10s %6d  %9.2f  %9.2f  %5.3f [%5.3f-%5.3f]  %s", shape, tokens,
                    1e6 * quantile(ta, 0.5), 1e6 * quantile(tb, 0.5), quantile(ratio, 0.5), quantile(ratio, 0.25),
                    quantile(ratio, 0.75), same ? "identical" : "DIFFER");
        }
    }

    /** Seconds per call over a round of about {@code seconds}, cycling through the matrices. */
    private static double time(Build build, Object[] m, int rows, int cols, float[] x, int tokens, Object y,
                               double seconds) throws Exception {
        long t0 = System.nanoTime();
        long end = t0 + (long) (seconds * 1e9);
        long calls = 0;
        long now;
        int next = 0;
        do {
            build.run(m[next], rows, cols, x, tokens, y);
            next = next + 1 == m.length ? 0 : next + 1;
            calls++;
        } while ((now = System.nanoTime()) < end);
        return (now - t0) / 1e9 / calls;
    }

    /** Linear interpolation between the sorted values around q. */
    static double quantile(double[] sorted, double q) {
        double pos = q * (sorted.length - 1);
        int lo = (int) Math.floor(pos);
        int hi = Math.min(sorted.length - 1, lo + 1);
        return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
    }
}
