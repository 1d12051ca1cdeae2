package io.epserve.model.kernel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.format.Bf16;
import io.epserve.model.format.Fp8E4m3;
import io.epserve.model.format.QuantSim;
import io.epserve.model.weights.Bf16Matrix;
import io.epserve.model.weights.F32Matrix;
import io.epserve.model.weights.Fp4Matrix;
import io.epserve.model.weights.Fp8Matrix;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * FastKernels against the exact oracle on random in-memory matrices. Float32 accumulation may move a bf16 result
 * across a rounding boundary, so bf16 outputs are compared statistically (relative RMS, share of elements more
 * than one bf16 ulp apart) and wide (float64) outputs relative to the largest magnitude. Every comparison is also shown to
 * fail on a deliberately corrupted input, so a kernel that ignores part of its weights cannot pass.
 */
@org.junit.jupiter.api.TestMethodOrder(org.junit.jupiter.api.MethodOrderer.OrderAnnotation.class)
class FastKernelsTest {
    static final double MAX_REL_RMS = 1e-3;
    static final double MAX_FRAC_OFF = 0.005;
    /** The wide linears accumulate in float64: only the summation order differs from the exact set. */
    static final double WIDE_REL = 1e-14;

    static final ExactKernels EXACT = new ExactKernels();
    static FastKernels single;
    static FastKernels multi;

    @BeforeAll
    static void start() {
        single = new FastKernels(1);
        multi = new FastKernels(2);
    }

    @AfterAll
    static void stop() {
        single.close();
        multi.close();
    }

    static FastKernels kernels(boolean mt) {
        return mt ? multi : single;
    }

    // ------------------------------------------------------------------------------------------ random inputs

    /** bf16 activations with a different magnitude per 64 values, a few exact zeros and tiny values. */
    static float[] activations(SplittableRandom r, int n) {
        float[] x = new float[n];
        float gain = 1f;
        for (int i = 0; i < n; i++) {
            if (i % 64 == 0) {
                gain = (float) Math.scalb(1.0, r.nextInt(-6, 5));
            }
            double v = r.nextGaussian() * gain;
            int kind = r.nextInt(50);
            if (kind == 0) {
                v = 0;
            } else if (kind == 1) {
                v *= 1e-4;
            }
            x[i] = Bf16.round(v);
        }
        return x;
    }

    static Fp4Matrix fp4(SplittableRandom r, int rows, int cols) {
        byte[] data = new byte[rows * cols / 2];
        r.nextBytes(data);
        byte[] scale = new byte[rows * cols / 32];
        for (int i = 0; i < scale.length; i++) {
            scale[i] = (byte) (127 + r.nextInt(-9, 3));
        }
        return new Fp4Matrix("fp4", rows, cols, MemorySegment.ofArray(data), MemorySegment.ofArray(scale));
    }

    /**
     * Uniformly random codes, except that odd rows hold no subnormal code (the smallest normal instead): rows with
     * and without subnormal codes side by side in every strip (see Fp8PanelKernels, "Decoding").
     */
    static Fp8Matrix fp8(SplittableRandom r, int rows, int cols) {
        byte[] data = new byte[rows * cols];
        for (int i = 0; i < data.length; i++) {
            int c;
            do {
                c = r.nextInt(256);
            } while ((c & 0x7f) == 0x7f); // e4m3 NaN codes do not occur in checkpoints
            if ((i / cols) % 2 == 1 && (c & 0x78) == 0 && (c & 7) != 0) {
                c = (c & 0x80) | 0x08;
            }
            data[i] = (byte) c;
        }
        int sr = (rows + 127) / 128;
        int sc = (cols + 127) / 128;
        byte[] scale = new byte[sr * sc];
        for (int i = 0; i < scale.length; i++) {
            scale[i] = (byte) (127 + r.nextInt(-12, 2));
        }
        return new Fp8Matrix("fp8", rows, cols, MemorySegment.ofArray(data), MemorySegment.ofArray(scale));
    }

    static Bf16Matrix bf16(SplittableRandom r, int rows, int cols) {
        ByteBuffer b = ByteBuffer.allocate(rows * cols * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < rows * cols; i++) {
            b.putShort(Bf16.bits((float) (r.nextGaussian() * 0.05)));
        }
        return new Bf16Matrix("bf16", rows, cols, MemorySegment.ofArray(b.array()));
    }

    static F32Matrix f32(SplittableRandom r, int rows, int cols) {
        ByteBuffer b = ByteBuffer.allocate(rows * cols * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < rows * cols; i++) {
            b.putFloat((float) r.nextGaussian());
        }
        return new F32Matrix("f32", rows, cols, MemorySegment.ofArray(b.array()));
    }

    static byte[] bytes(MemorySegment s) {
        return (byte[]) s.heapBase().orElseThrow();
    }

    // ------------------------------------------------------------------------------------------ comparisons

    record Diff(double relRms, double fracOff, int compared) {
        boolean ok() {
            return relRms <= MAX_REL_RMS && fracOff <= MAX_FRAC_OFF;
        }
    }

    /** Compares the bf16 values of row-major [tokens][n] blocks stored with the given offset and stride. */
    static Diff bf16Diff(float[] exact, float[] fast, int off, int stride, int tokens, int n) {
        double se = 0;
        double sd = 0;
        int off1 = 0;
        int count = 0;
        for (int t = 0; t < tokens; t++) {
            for (int i = 0; i < n; i++) {
                float e = exact[off + t * stride + i];
                float f = fast[off + t * stride + i];
                if (Float.isNaN(e) || Float.isNaN(f)) {
                    assertEquals(Float.isNaN(e), Float.isNaN(f), "NaN mismatch at token " + t + " element " + i);
                    continue;
                }
                assertEquals(e, Bf16.round(e), "exact output not bf16");
                assertEquals(f, Bf16.round(f), "fast output not bf16 at token " + t + " element " + i);
                se += (double) e * e;
                sd += ((double) e - f) * ((double) e - f);
                if (Math.abs(ordinal(e) - ordinal(f)) > 1) {
                    off1++;
                }
                count++;
            }
        }
        return new Diff(se == 0 ? (sd == 0 ? 0 : Double.POSITIVE_INFINITY) : Math.sqrt(sd / se),
                (double) off1 / Math.max(1, count), count);
    }

    /** Position of a bf16 value on the number line, so that neighbours differ by 1 (also across zero). */
    static int ordinal(float v) {
        int b = Float.floatToRawIntBits(v) >> 16;
        return b < 0 ? -(b & 0x7fff) : b;
    }

    static void assertBf16Close(float[] exact, float[] fast, int off, int stride, int tokens, int n, String what) {
        Diff d = bf16Diff(exact, fast, off, stride, tokens, n);
        assertTrue(d.compared > 0, what + ": nothing compared");
        assertTrue(d.ok(), what + ": " + d);
    }

    static double wideError(double[] exact, double[] fast, int off, int stride, int tokens, int n) {
        double max = 0;
        double err = 0;
        for (int t = 0; t < tokens; t++) {
            for (int i = 0; i < n; i++) {
                double e = exact[off + t * stride + i];
                max = Math.max(max, Math.abs(e));
                err = Math.max(err, Math.abs(e - fast[off + t * stride + i]));
            }
        }
        return max == 0 ? err : err / max;
    }

    // ------------------------------------------------------------------------------------------ batch invariance

    /** One linear of the kernel set: n tokens of x starting at token t0 into y (float or double rows). */
    interface Linear {
        void run(FastKernels k, float[] x, int xStride, int t0, int n, float[] y, double[] yd, int yStride);
    }

    /**
     * The engine computes a token in many batch shapes (whole prompt, one at a time, chunks, experts fed from
     * several sequences), so every method must give each token the same bits whatever the number of tokens per
     * call, the thread count and the row split, and whether the code runs interpreted or compiled. Reference: one
     * token per call on one thread, computed first (so at least partly before C2 compiles the kernels); then the
     * same tokens in calls of 2 to 8 (each kernel of the tail), 12 (a block of 8 and a tail), 16, 19 and 37, with
     * 1, 2 and 3 threads, after warming up.
     */
    @Test
    @org.junit.jupiter.api.Order(1)
    void everyMethodIsBatchInvariant() {
        SplittableRandom r = new SplittableRandom(21);
        int tokens = 37;
        Fp4Matrix w4 = fp4(r, 300, 1024);
        byte[] sc4 = bytes(w4.scale());
        sc4[7 * 32 + 3] = 0; // one rare-scale row (scalar path)
        Fp8Matrix w8 = fp8(r, 260, 768);
        Fp8Matrix w8r = fp8(r, 150, 200); // dequant, ragged: 200 columns = one group + a scalar tail
        // rows 99..161: strips cut at both ends, strip groups padded with a repeated strip, strips on both sides of
        // row 128 (different block scales) in one group; 1152 columns = 9 blocks
        Fp8Matrix w8pairs = fp8(r, 170, 1152);
        Bf16Matrix wb = bf16(r, 130, 1000); // 1000 = 7 groups of 128 + tail (bf16), 15 groups of 64 + tail (wide)
        F32Matrix wf = f32(r, 70, 1000);
        Bf16Matrix wbBig = bf16(r, 1024, 512); // enough work for the multi-threaded path at any token count
        // 5 groups; at 1 token 10 quads of rows and 3 rows alone (the 1-token kernel's pairs of groups, then the odd one)
        Fp4Matrix w4odd = fp4(r, 43, 640);
        java.util.Map<String, Linear> linears = new java.util.LinkedHashMap<>();
        linears.put("fp4", (k, x, xs, t0, n, y, yd, ys) -> k.fp4Linear(w4, x, t0 * xs, xs, n, y, 1 + t0 * ys, ys));
        linears.put("fp4OddGroups", (k, x, xs, t0, n, y, yd, ys) ->
                k.fp4Linear(w4odd, x, t0 * xs, xs, n, y, 1 + t0 * ys, ys));
        linears.put("fp8", (k, x, xs, t0, n, y, yd, ys) ->
                k.fp8Linear(w8, 3, 250, x, t0 * xs, xs, n, y, 1 + t0 * ys, ys));
        linears.put("fp8RowsCut", (k, x, xs, t0, n, y, yd, ys) ->
                k.fp8Linear(w8pairs, 99, 63, x, t0 * xs, xs, n, y, 1 + t0 * ys, ys));
        linears.put("fp8Dequant", (k, x, xs, t0, n, y, yd, ys) ->
                k.fp8DequantLinear(w8r, 2, 140, x, t0 * xs, xs, n, y, 1 + t0 * ys, ys));
        linears.put("bf16", (k, x, xs, t0, n, y, yd, ys) -> k.bf16Linear(wb, x, t0 * xs, xs, n, y, 1 + t0 * ys, ys));
        linears.put("bf16Wide", (k, x, xs, t0, n, y, yd, ys) ->
                k.bf16LinearWide(wb, x, t0 * xs, xs, n, yd, 1 + t0 * ys, ys));
        linears.put("bf16WideBig", (k, x, xs, t0, n, y, yd, ys) ->
                k.bf16LinearWide(wbBig, x, t0 * xs, xs, n, yd, 1 + t0 * ys, ys));
        linears.put("f32Wide", (k, x, xs, t0, n, y, yd, ys) -> k.f32LinearWide(wf, x, t0 * xs, xs, n, yd, 1 + t0 * ys, ys));
        int xStride = 1157; // at least the widest matrix (1152 columns), and no multiple of the vector length
        float[] x = activations(r, tokens * xStride);
        int yStride = 1030;
        java.util.Map<String, float[]> refY = new java.util.HashMap<>();
        java.util.Map<String, double[]> refD = new java.util.HashMap<>();
        for (var e : linears.entrySet()) {
            float[] y = new float[1 + tokens * yStride];
            double[] yd = new double[y.length];
            for (int t = 0; t < tokens; t++) {
                e.getValue().run(single, x, xStride, t, 1, y, yd, yStride);
            }
            refY.put(e.getKey(), y);
            refD.put(e.getKey(), yd);
        }
        // attention and indexer: per query token already; checked against themselves across JIT states below
        float[] q = activations(r, 8 * 128);
        float[] kv = activations(r, 200 * 128);
        float[] sink = {0.3f, -0.5f, 1f, 0f, 0.1f, -2f, 0.7f, 0.2f};
        float[] attRef = new float[8 * 128];
        single.attention(q, 0, 8, 128, kv, 90, 128, 72, sink, 0.088f, attRef, 0);
        float[] iw = new float[8];
        Arrays.fill(iw, 0.01f);
        float[] idxRef = new float[200];
        single.indexScores(q, 0, 8, 128, iw, 0, kv, 199, idxRef);

        try (FastKernels three = new FastKernels(3)) {
            FastKernels[] sets = {single, multi, three};
            for (int round = 0; round < 12; round++) { // later rounds run C2-compiled kernels
                for (var e : linears.entrySet()) {
                    for (int batch : new int[] {1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 19, 37}) {
                        FastKernels k = sets[(round + batch) % sets.length];
                        float[] y = new float[1 + tokens * yStride];
                        double[] yd = new double[y.length];
                        for (int t0 = 0; t0 < tokens; t0 += batch) {
                            e.getValue().run(k, x, xStride, t0, Math.min(batch, tokens - t0), y, yd, yStride);
                        }
                        String what = e.getKey() + " in calls of " + batch + " tokens, " + k.threads()
                                + " threads, round " + round;
                        assertBitsEqual(refY.get(e.getKey()), y, what);
                        assertBitsEqual(refD.get(e.getKey()), yd, what);
                    }
                }
                for (FastKernels k : sets) {
                    float[] att = new float[attRef.length];
                    for (int rep = 0; rep < 20; rep++) {
                        k.attention(q, 0, 8, 128, kv, 90, 128, 72, sink, 0.088f, att, 0);
                    }
                    assertBitsEqual(attRef, att, "attention, " + k.threads() + " threads, round " + round);
                    float[] idx = new float[200];
                    for (int rep = 0; rep < 20; rep++) {
                        k.indexScores(q, 0, 8, 128, iw, 0, kv, 199, idx);
                    }
                    assertBitsEqual(idxRef, idx, "index scores, " + k.threads() + " threads, round " + round);
                }
            }
        }
    }

    static void assertBitsEqual(float[] e, float[] a, String what) {
        for (int i = 0; i < e.length; i++) {
            if (Float.floatToRawIntBits(e[i]) != Float.floatToRawIntBits(a[i])) {
                throw new AssertionError(what + ": element " + i + " is " + a[i] + ", alone " + e[i]);
            }
        }
    }

    static void assertBitsEqual(double[] e, double[] a, String what) {
        for (int i = 0; i < e.length; i++) {
            if (Double.doubleToRawLongBits(e[i]) != Double.doubleToRawLongBits(a[i])) {
                throw new AssertionError(what + ": element " + i + " is " + a[i] + ", alone " + e[i]);
            }
        }
    }

    // ------------------------------------------------------------------------------------------ quantisation

    @Test
    void activationQuantisationIsBitExact() {
        SplittableRandom r = new SplittableRandom(1);
        int cols = 128 * 24;
        float[] x = new float[cols];
        for (int i = 0; i < cols; i++) {
            // magnitudes from far below the e4m3 subnormal range to above 448, per-block gains, ties
            int e = r.nextInt(-40, 20);
            x[i] = (float) Math.scalb(r.nextGaussian(), e / (i % 3 + 1));
            if (i % 97 == 0) {
                x[i] = 0f;
            }
            if (i % 101 == 0) {
                x[i] = -x[i];
            }
        }
        for (int b = 0; b < 128; b++) {
            x[128 + b] = (float) Math.scalb(9 + 0.5 * (b % 8), -3); // exact e4m3 ties: 1.0625, 1.1875, ...
            x[256 + b] = (float) Math.scalb(b, -14);                  // subnormal e4m3 range after scaling
        }
        float[] expect = new float[cols];
        QuantSim.fp8RoundTrip(x, 0, cols, 128, expect, 0);
        float[] got = new float[cols];
        FastKernels.quantiseRow(x, 0, cols, got, 0);
        for (int i = 0; i < cols; i++) {
            assertEquals(Float.floatToRawIntBits(expect[i]), Float.floatToRawIntBits(got[i]),
                    "element " + i + " of " + x[i] + ": " + expect[i] + " vs " + got[i]);
        }
    }

    @Test
    void vectorPermutesAreTheElementwiseOnes() {
        SplittableRandom r = new SplittableRandom(11);
        int L = TileKernels.L;
        for (int group : new int[] {1, 2, 3}) {
            int n = 3 * group * L;
            float[] src = new float[n + 5];
            for (int i = 0; i < src.length; i++) {
                src[i] = (float) r.nextGaussian();
            }
            src[3] = Float.intBitsToFloat(0x7fc00123); // a NaN payload moves untouched
            src[4] = -0.0f;
            for (int off = 0; off < 5; off += 3) {
                float[] want = new float[n + 2];
                float[] got = new float[n + 2];
                for (int c = 0; c < n; c += group * L) {
                    FastKernels.permuteScalar(src, off + c, want, 2 + c, group, L);
                    FastKernels.permute(src, off + c, got, 2 + c, group, L);
                }
                for (int i = 0; i < want.length; i++) {
                    assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]),
                            "group " + group + " offset " + off + " element " + i);
                }
            }
        }
    }

    /**
     * The float32 SwiGLU is within one bf16 step of the reference's float64 one everywhere (gates far below zero,
     * clamped gates and up values, rows with a tail past the last whole vector, no clamp), and each value depends only
     * on its own inputs and row weight: a row gives the same bits alone and in a batch.
     */
    @Test
    void swigluIsWithinOneBf16StepOfTheReferenceAndBatchInvariant() {
        SplittableRandom r = new SplittableRandom(17);
        for (int inter : new int[] {512, 3 * TileKernels.L + 5}) {
            for (double limit : new double[] {10.0, 0.0}) {
                int rows = 7;
                float[] g = new float[rows * inter];
                float[] u = new float[rows * inter];
                double[] w = new double[rows];
                for (int i = 0; i < g.length; i++) {
                    g[i] = Bf16.round((float) (r.nextGaussian() * (i % 5 == 0 ? 40 : 4)));
                    u[i] = Bf16.round((float) (r.nextGaussian() * (i % 7 == 0 ? 30 : 3)));
                }
                g[1] = -200f;
                g[2] = 0f;
                g[3] = -0f;
                for (int t = 0; t < rows; t++) {
                    w[t] = r.nextDouble();
                }
                float[] want = g.clone();
                EXACT.swiglu(want, u.clone(), rows, inter, w, limit);
                float[] got = g.clone();
                single.swiglu(got, u, rows, inter, w, limit);
                for (int i = 0; i < got.length; i++) {
                    assertEquals(got[i], Bf16.round(got[i]), "not bf16 at " + i);
                    assertTrue(Math.abs(ordinal(want[i]) - ordinal(got[i])) <= 1, "inter " + inter + " limit "
                            + limit + " element " + i + ": g " + g[i] + " u " + u[i] + ": " + got[i] + " vs " + want[i]);
                }
                for (int t = 0; t < rows; t++) {
                    float[] one = Arrays.copyOfRange(g, t * inter, (t + 1) * inter);
                    single.swiglu(one, Arrays.copyOfRange(u, t * inter, (t + 1) * inter), 1, inter, new double[] {w[t]},
                            limit);
                    assertBitsEqual(Arrays.copyOfRange(got, t * inter, (t + 1) * inter), one, "row " + t + " alone");
                }
            }
        }
    }

    /**
     * The vector per-head q norm gives the scalar reference's bits: rows of very different scales (including ones
     * whose bf16 squares underflow, a zero row and a NaN), a row length that is no multiple of the vector (scalar
     * path), and each row the same alone as in a batch.
     */
    @Test
    void headRmsNormGivesTheReferenceBits() {
        SplittableRandom r = new SplittableRandom(29);
        for (int n : new int[] {512, 128, 3 * TileKernels.L + 5}) {
            int rows = 600;
            float[] q = new float[rows * n + 3];
            for (int row = 0; row < rows; row++) {
                double scale = Math.scalb(1.0, r.nextInt(-70, 40));
                for (int i = 0; i < n; i++) {
                    double spread = i % 17 == 0 ? Math.scalb(1.0, -r.nextInt(0, 30)) : 1.0;
                    q[3 + row * n + i] = Bf16.round((float) (r.nextGaussian() * scale * spread));
                }
            }
            java.util.Arrays.fill(q, 3 + 5 * n, 3 + 6 * n, 0f);
            q[3 + 7 * n + 1] = Float.NaN;
            float[] want = q.clone();
            EXACT.headRmsNorm(want, 3, rows, n, 1e-6f);
            float[] got = q.clone();
            single.headRmsNorm(got, 3, rows, n, 1e-6f);
            for (int i = 3; i < q.length; i++) {
                if (Float.isNaN(want[i])) {
                    assertTrue(Float.isNaN(got[i]), "n " + n + " element " + i + " not NaN");
                } else {
                    assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]),
                            "n " + n + " row " + (i - 3) / n + " element " + (i - 3) % n);
                }
            }
            for (int row = 0; row < rows; row += 97) {
                float[] one = Arrays.copyOfRange(q, 3 + row * n, 3 + (row + 1) * n);
                single.headRmsNorm(one, 0, 1, n, 1e-6f);
                assertBitsEqual(Arrays.copyOfRange(got, 3 + row * n, 3 + (row + 1) * n), one, "row " + row + " alone");
            }
        }
    }

    // ------------------------------------------------------------------------------------------ FP4

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void fp4MatchesExact(boolean mt) {
        SplittableRandom r = new SplittableRandom(2);
        Fp4Matrix w = fp4(r, 257, 1024);
        for (int tokens : new int[] {1, 3, 16, 21}) {
            checkFp4(kernels(mt), w, r, tokens, "fp4 tokens=" + tokens + " mt=" + mt);
        }
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void fp4PairIsTwoProducts(boolean mt) {
        SplittableRandom r = new SplittableRandom(12);
        Fp4Matrix a = fp4(r, 96, 1024);
        Fp4Matrix b = fp4(r, 96, 1024);
        // a rare scale (0xFF) in b: that row takes the scalar path, the other matrix must not inherit its flags
        b.scale().set(java.lang.foreign.ValueLayout.JAVA_BYTE, 7L * (b.cols() / 32) + 3, (byte) 0xFF);
        for (int tokens : new int[] {1, 2, 8, 17}) {
            float[] x = activations(r, tokens * 1030);
            float[] ya = new float[tokens * 100];
            float[] yb = new float[ya.length];
            float[] pa = new float[ya.length];
            float[] pb = new float[ya.length];
            FastKernels k = kernels(mt);
            k.fp4Linear(a, x, 1, 1030, tokens, ya, 2, 100);
            k.fp4Linear(b, x, 1, 1030, tokens, yb, 2, 100);
            k.fp4LinearPair(a, b, x, 1, 1030, tokens, pa, pb, 2, 100);
            for (int i = 0; i < ya.length; i++) {
                assertEquals(Float.floatToRawIntBits(ya[i]), Float.floatToRawIntBits(pa[i]), "a, tokens " + tokens + " at " + i);
                assertEquals(Float.floatToRawIntBits(yb[i]), Float.floatToRawIntBits(pb[i]), "b, tokens " + tokens + " at " + i);
            }
        }
    }

    /**
     * One token runs eight strips of 16 rows per kernel call, then the strips left over four at a time: with 181 rows
     * (8 strips, then 3 and a partial one, padded), rare-scale rows among them (computed by the scalar path), every
     * row must still equal that token's row in a 3-token tile (other kernels), bit for bit.
     */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void fp4OneTokenStripGroupsMatchTheTile(boolean mt) {
        SplittableRandom r = new SplittableRandom(13);
        Fp4Matrix w = fp4(r, 181, 640);
        for (int row : new int[] {7, 50, 51}) {
            w.scale().set(java.lang.foreign.ValueLayout.JAVA_BYTE, (long) row * (w.cols() / 32) + 2, (byte) 0);
        }
        int tokens = 3;
        float[] x = activations(r, tokens * w.cols());
        float[] tile = new float[tokens * w.rows()];
        FastKernels k = kernels(mt);
        k.fp4Linear(w, x, 0, w.cols(), tokens, tile, 0, w.rows());
        for (int t = 0; t < tokens; t++) {
            float[] one = new float[w.rows()];
            k.fp4Linear(w, x, t * w.cols(), w.cols(), 1, one, 0, w.rows());
            for (int i = 0; i < w.rows(); i++) {
                assertEquals(Float.floatToRawIntBits(tile[t * w.rows() + i]), Float.floatToRawIntBits(one[i]),
                        "token " + t + " row " + i);
            }
        }
    }

    @Test
    void fp4EveryTileSize() {
        SplittableRandom r = new SplittableRandom(3);
        Fp4Matrix w = fp4(r, 33, 512);
        for (int tokens = 1; tokens <= 34; tokens++) {
            checkFp4(single, w, r, tokens, "fp4 tokens=" + tokens);
        }
    }

    private static void checkFp4(FastKernels k, Fp4Matrix w, SplittableRandom r, int tokens, String what) {
        int xStride = w.cols() + 7;
        float[] x = activations(r, tokens * xStride);
        int yStride = w.rows() + 5;
        float[] ye = new float[3 + tokens * yStride];
        float[] yf = new float[ye.length];
        EXACT.fp4Linear(w, x, 0, xStride, tokens, ye, 3, yStride);
        k.fp4Linear(w, x, 0, xStride, tokens, yf, 3, yStride);
        assertBf16Close(ye, yf, 3, yStride, tokens, w.rows(), what);
    }

    /**
     * The panelled FP4 layout holds every code and scale where {@link Fp4Matrix#code} and {@link Fp4Matrix#scaleCode}
     * say, pads the last panel with zeros and refuses too few bytes; the exact set gives a matrix and its panelled copy
     * the same values, the fast set the same bits (it repacks a row-major matrix itself, once).
     */
    @Test
    void fp4PanelledCopyIsTheSameMatrix() {
        SplittableRandom r = new SplittableRandom(32);
        Fp4Matrix w = fp4(r, 37, 256);
        Fp4Matrix p = w.panelled(n -> MemorySegment.ofArray(new byte[(int) n]));
        assertTrue(p.panelled());
        assertSame(p, p.panelled(n -> {
            throw new AssertionError("already panelled");
        }));
        assertEquals(48L * 128, p.data().byteSize());
        assertEquals(48L * 8, p.scale().byteSize());
        for (int row = 0; row < 37; row++) {
            for (int c = 0; c < 256; c++) {
                assertEquals(w.code(row, c), p.code(row, c));
                assertEquals(w.scaleCode(row, c), p.scaleCode(row, c));
            }
        }
        for (int row = 37; row < 48; row++) {
            for (int c = 0; c < 256; c++) {
                assertEquals(0, p.code(row, c));
                assertEquals(0, p.scaleCode(row, c));
            }
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Fp4Matrix("short", 37,
                256, w.data(), w.scale(), true));
        assertTrue(e.getMessage().contains("short") && e.getMessage().contains("6144"), e.getMessage());
        int tokens = 13;
        float[] x = activations(r, tokens * 256);
        float[][] y = new float[4][tokens * 37];
        EXACT.fp4Linear(w, x, 0, 256, tokens, y[0], 0, 37);
        EXACT.fp4Linear(p, x, 0, 256, tokens, y[1], 0, 37);
        single.fp4Linear(w, x, 0, 256, tokens, y[2], 0, 37);
        single.fp4Linear(p, x, 0, 256, tokens, y[3], 0, 37);
        assertArrayEquals(y[0], y[1]);
        assertArrayEquals(y[2], y[3]);
        assertBf16Close(y[0], y[2], 0, 37, tokens, 37, "panelled fast against exact");
    }

    @Test
    void fp4DetectsCorruptionAndHandlesRareScales() {
        SplittableRandom r = new SplittableRandom(4);
        Fp4Matrix w = fp4(r, 64, 1024);
        int tokens = 4;
        float[] x = activations(r, tokens * w.cols());
        float[] ye = new float[tokens * w.rows()];
        EXACT.fp4Linear(w, x, 0, w.cols(), tokens, ye, 0, w.rows());

        // one nibble of row 5 and one scale of row 9, in the middle of their rows: the comparison must fail
        byte[] data = bytes(w.data());
        byte[] scale = bytes(w.scale());
        data[5 * 512 + 300] ^= 0x77;
        scale[9 * 32 + 17] += 4;
        float[] yf = new float[ye.length];
        single.fp4Linear(w, x, 0, w.cols(), tokens, yf, 0, w.rows());
        assertFalse(bf16Diff(ye, yf, 0, w.rows(), tokens, w.rows()).ok(), "corruption not detected");
        float[] ye2 = new float[ye.length];
        EXACT.fp4Linear(w, x, 0, w.cols(), tokens, ye2, 0, w.rows());
        assertBf16Close(ye2, yf, 0, w.rows(), tokens, w.rows(), "fp4 after corruption");

        // E8M0 code 0 (2^-127) and 0xFF (NaN) take the scalar row path and agree with the oracle
        scale[3 * 32 + 2] = 0;
        scale[7 * 32 + 31] = (byte) 0xff;
        EXACT.fp4Linear(w, x, 0, w.cols(), tokens, ye2, 0, w.rows());
        multi.fp4Linear(w, x, 0, w.cols(), tokens, yf, 0, w.rows());
        assertTrue(Float.isNaN(yf[7]), "NaN scale must give NaN");
        assertBf16Close(ye2, yf, 0, w.rows(), tokens, w.rows(), "fp4 rare scales");
    }

    // ------------------------------------------------------------------------------------------ FP8

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void fp8MatchesExact(boolean mt) {
        SplittableRandom r = new SplittableRandom(5);
        Fp8Matrix w = fp8(r, 387, 640);
        for (int tokens : new int[] {1, 3, 16, 19}) {
            checkFp8(kernels(mt), w, 0, w.rows(), r, tokens, false, "fp8 tokens=" + tokens + " mt=" + mt);
            checkFp8(kernels(mt), w, 130, 201, r, tokens, false, "fp8 rows 130+201 tokens=" + tokens);
            checkFp8(kernels(mt), w, 0, w.rows(), r, tokens, true, "fp8 dequant tokens=" + tokens + " mt=" + mt);
        }
    }

    @Test
    void fp8EveryTileSizeAndRaggedColumns() {
        SplittableRandom r = new SplittableRandom(6);
        Fp8Matrix w = fp8(r, 45, 256);
        Fp8Matrix ragged = fp8(r, 150, 200); // dequant path only: 200 = 128 + 72, not a multiple of 16 either
        for (int tokens = 1; tokens <= 17; tokens++) {
            checkFp8(single, w, 0, w.rows(), r, tokens, false, "fp8 tokens=" + tokens);
            checkFp8(single, ragged, 3, 140, r, tokens, true, "fp8 dequant ragged tokens=" + tokens);
        }
    }

    /**
     * The panelled layout holds every code where {@link Fp8Matrix#code} says, pads the last panel with zero codes and
     * refuses too few bytes; the exact set gives a matrix and its panelled copy the same values, the fast set the
     * same bits (it repacks a row-major matrix itself, once).
     */
    @Test
    void fp8PanelledCopyIsTheSameMatrix() {
        SplittableRandom r = new SplittableRandom(31);
        Fp8Matrix w = fp8(r, 45, 384);
        Fp8Matrix p = w.panelled(n -> MemorySegment.ofArray(new byte[(int) n]));
        assertTrue(p.panelled());
        assertSame(p, p.panelled(n -> {
            throw new AssertionError("already panelled");
        }));
        assertEquals(48L * 384, p.data().byteSize());
        for (int row = 0; row < 45; row++) {
            for (int c = 0; c < 384; c++) {
                assertEquals(w.code(row, c), p.code(row, c));
            }
        }
        for (int c = 0; c < 384; c++) {
            for (int i = 13; i < 16; i++) { // rows 45..47 of the last panel
                assertEquals(0, p.data().get(java.lang.foreign.ValueLayout.JAVA_BYTE, 2L * 16 * 384 + 16L * c + i));
            }
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Fp8Matrix("short", 45,
                384, MemorySegment.ofArray(new byte[45 * 384]), w.scale(), true));
        assertTrue(e.getMessage().contains("short") && e.getMessage().contains("18432"), e.getMessage());
        int tokens = 11;
        float[] x = activations(r, tokens * 384);
        float[][] y = new float[4][tokens * 40];
        EXACT.fp8Linear(w, 3, 40, x, 0, 384, tokens, y[0], 0, 40);
        EXACT.fp8Linear(p, 3, 40, x, 0, 384, tokens, y[1], 0, 40);
        single.fp8Linear(w, 3, 40, x, 0, 384, tokens, y[2], 0, 40);
        single.fp8Linear(p, 3, 40, x, 0, 384, tokens, y[3], 0, 40);
        assertArrayEquals(y[0], y[1]);
        assertArrayEquals(y[2], y[3]);
        assertBf16Close(y[0], y[2], 0, 40, tokens, 40, "panelled fast against exact");
    }

    @Test
    void fp8DetectsCorruption() {
        SplittableRandom r = new SplittableRandom(7);
        Fp8Matrix w = fp8(r, 256, 512);
        int tokens = 3;
        float[] x = activations(r, tokens * w.cols());
        float[] ye = new float[tokens * w.rows()];
        EXACT.fp8Linear(w, 0, w.rows(), x, 0, w.cols(), tokens, ye, 0, w.rows());
        bytes(w.scale())[1 * 4 + 2] += 3; // rows 128..255, columns 256..383
        float[] yf = new float[ye.length];
        multi.fp8Linear(w, 0, w.rows(), x, 0, w.cols(), tokens, yf, 0, w.rows());
        assertFalse(bf16Diff(ye, yf, 0, w.rows(), tokens, w.rows()).ok(), "corruption not detected");
        assertTrue(bf16Diff(ye, yf, 0, w.rows(), tokens, 128).ok(), "rows 0..127 do not use that block");
    }

    /**
     * Every code through the fast FP8 decode, exactly: row c holds code c in every column except one subnormal code
     * in the second block (rows mixing normal and subnormal codes); token t's activation is 1 at one column and 0
     * elsewhere, so output (c, t) is the decoded weight times its block scale, with no rounding anywhere. Tile sizes
     * 1, 2, 4, 8 and 13 reach every FP8 kernel (x1, x2, x4, x8 and x8 + x4 + x1).
     */
    @Test
    void fp8DecodesEveryCodeExactly() {
        int rows = 256;
        int cols = 256;
        byte[] data = new byte[rows * cols];
        for (int c = 0; c < rows; c++) {
            for (int j = 0; j < cols; j++) {
                data[c * cols + j] = (byte) ((c & 0x7f) == 0x7f ? 0 : c); // no NaN codes in checkpoints
            }
            data[c * cols + 128 + 77] = 0x05;
        }
        byte[] scale = {(byte) 127, (byte) 125, (byte) 130, (byte) 120};
        Fp8Matrix w = new Fp8Matrix("codes", rows, cols, MemorySegment.ofArray(data), MemorySegment.ofArray(scale));
        for (int tokens : new int[] {1, 2, 4, 8, 13}) {
            float[] x = new float[tokens * cols];
            for (int t = 0; t < tokens; t++) {
                x[t * cols + (t * 37 + 11) % cols] = 1f;
            }
            float[] ye = new float[tokens * rows];
            float[] yf = new float[tokens * rows];
            EXACT.fp8Linear(w, 0, rows, x, 0, cols, tokens, ye, 0, rows);
            single.fp8Linear(w, 0, rows, x, 0, cols, tokens, yf, 0, rows);
            for (int t = 0; t < tokens; t++) {
                int col = (t * 37 + 11) % cols;
                for (int c = 0; c < rows; c++) {
                    int code = data[c * cols + col] & 0xff;
                    float expect = Fp8E4m3.toFloat(code) * (float) Math.scalb(1.0, (scale[(c / 128) * 2 + col / 128]
                            & 0xff) - 127) + 0f; // a sum of products: -0 comes out as +0
                    assertEquals(expect, ye[t * rows + c], "exact, code " + code + " token " + t);
                    assertEquals(Float.floatToRawIntBits(expect), Float.floatToRawIntBits(yf[t * rows + c]),
                            "fast, tokens " + tokens + ", code 0x" + Integer.toHexString(code) + " in column " + col);
                }
            }
        }
    }

    private static void checkFp8(FastKernels k, Fp8Matrix w, int rowStart, int rowCount, SplittableRandom r,
                                 int tokens, boolean dequant, String what) {
        int xStride = w.cols() + 3;
        float[] x = activations(r, tokens * xStride);
        int yStride = rowCount + 2;
        float[] ye = new float[1 + tokens * yStride];
        float[] yf = new float[ye.length];
        if (dequant) {
            EXACT.fp8DequantLinear(w, rowStart, rowCount, x, 0, xStride, tokens, ye, 1, yStride);
            k.fp8DequantLinear(w, rowStart, rowCount, x, 0, xStride, tokens, yf, 1, yStride);
        } else {
            EXACT.fp8Linear(w, rowStart, rowCount, x, 0, xStride, tokens, ye, 1, yStride);
            k.fp8Linear(w, rowStart, rowCount, x, 0, xStride, tokens, yf, 1, yStride);
        }
        assertBf16Close(ye, yf, 1, yStride, tokens, rowCount, what);
        assertEquals(0f, yf[0], what + ": wrote before yOff");
    }

    // ------------------------------------------------------------------------------------------ BF16 / F32

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void bf16AndF32MatchExact(boolean mt) {
        SplittableRandom r = new SplittableRandom(8);
        FastKernels k = kernels(mt);
        for (int cols : new int[] {1024, 100, 77}) {
            Bf16Matrix wb = bf16(r, 131, cols);
            F32Matrix wf = f32(r, 67, cols);
            for (int tokens : new int[] {1, 3, 16, 18}) {
                checkBf16F32(k, wb, wf, r, tokens, "cols=" + cols + " tokens=" + tokens + " mt=" + mt);
            }
        }
    }

    @Test
    void bf16AndF32EveryTileSize() {
        SplittableRandom r = new SplittableRandom(14);
        Bf16Matrix wb = bf16(r, 19, 96);
        F32Matrix wf = f32(r, 13, 96);
        for (int tokens = 1; tokens <= 17; tokens++) {
            checkBf16F32(single, wb, wf, r, tokens, "tokens=" + tokens);
        }
    }

    private static void checkBf16F32(FastKernels k, Bf16Matrix wb, F32Matrix wf, SplittableRandom r, int tokens,
                                     String what) {
        int cols = wb.cols();
        int xStride = cols + 1;
        float[] x = activations(r, tokens * xStride);

        float[] ye = new float[tokens * wb.rows()];
        float[] yf = new float[ye.length];
        EXACT.bf16Linear(wb, x, 0, xStride, tokens, ye, 0, wb.rows());
        k.bf16Linear(wb, x, 0, xStride, tokens, yf, 0, wb.rows());
        assertBf16Close(ye, yf, 0, wb.rows(), tokens, wb.rows(), "bf16 " + what);

        double[] de = new double[tokens * wb.rows()];
        double[] df = new double[de.length];
        EXACT.bf16LinearWide(wb, x, 0, xStride, tokens, de, 0, wb.rows());
        k.bf16LinearWide(wb, x, 0, xStride, tokens, df, 0, wb.rows());
        assertTrue(wideError(de, df, 0, wb.rows(), tokens, wb.rows()) <= WIDE_REL, "bf16 wide " + what);

        de = new double[2 + tokens * (wf.rows() + 1)];
        df = new double[de.length];
        EXACT.f32LinearWide(wf, x, 0, xStride, tokens, de, 2, wf.rows() + 1);
        k.f32LinearWide(wf, x, 0, xStride, tokens, df, 2, wf.rows() + 1);
        assertTrue(wideError(de, df, 2, wf.rows() + 1, tokens, wf.rows()) <= WIDE_REL, "f32 wide " + what);
    }

    @Test
    void bf16AndF32DetectCorruption() {
        SplittableRandom r = new SplittableRandom(9);
        Bf16Matrix wb = bf16(r, 40, 256);
        F32Matrix wf = f32(r, 40, 256);
        float[] x = activations(r, 2 * 256);
        double[] de = new double[2 * 40];
        double[] df = new double[de.length];
        EXACT.bf16LinearWide(wb, x, 0, 256, 2, de, 0, 40);
        bytes(wb.data())[2 * (7 * 256 + 201) + 1] ^= 0x40; // exponent bit of one weight in row 7
        single.bf16LinearWide(wb, x, 0, 256, 2, df, 0, 40);
        assertTrue(wideError(de, df, 0, 40, 2, 40) > WIDE_REL, "bf16 corruption not detected");

        EXACT.f32LinearWide(wf, x, 0, 256, 2, de, 0, 40);
        bytes(wf.data())[4 * (39 * 256 + 255) + 3] ^= 0x40;
        single.f32LinearWide(wf, x, 0, 256, 2, df, 0, 40);
        assertTrue(wideError(de, df, 0, 40, 2, 40) > WIDE_REL, "f32 corruption not detected");
    }

    // ------------------------------------------------------------------------------------------ attention

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void attentionMatchesExact(boolean mt) {
        SplittableRandom r = new SplittableRandom(10);
        // {heads, headDim, windowValid, windowSize, compressedCount}
        int[][] cases = {
            {8, 128, 128, 128, 300},
            {16, 128, 37, 128, 45},
            {4, 80, 16, 16, 0},
            {3, 72, 0, 16, 70},
            {4, 512, 100, 128, 5},
        };
        for (int[] c : cases) {
            checkAttention(kernels(mt), r, c[0], c[1], c[2], c[3], c[4], 1f, "attention " + Arrays.toString(c));
            checkAttention(kernels(mt), r, c[0], c[1], c[2], c[3], c[4], 6f, "peaky attention " + Arrays.toString(c));
        }
    }

    @Test
    void attentionWithNothingValidAndCorruption() {
        SplittableRandom r = new SplittableRandom(11);
        int heads = 2;
        int d = 64;
        float[] q = new float[heads * d];
        for (int i = 0; i < q.length; i++) {
            q[i] = Bf16.round(r.nextGaussian() * 0.2); // a flat softmax: every row carries weight
        }
        float[] kv = activations(r, 16 * d);
        float[] sink = {0.5f, -1f};
        float[] out = new float[heads * d];
        Arrays.fill(out, 7f);
        single.attention(q, 0, heads, d, kv, 0, 16, 0, sink, 0.125f, out, 0);
        for (float v : out) {
            assertEquals(0f, v); // only the sink: the output is zero, as in the exact set
        }

        float[] ye = new float[heads * d];
        float[] yf = new float[heads * d];
        EXACT.attention(q, 0, heads, d, kv, 16, 16, 0, sink, 0.125f, ye, 0);
        for (int i = 0; i < d; i++) {
            kv[5 * d + i] = Bf16.round(kv[5 * d + i] * -3f + 1f); // one whole list row
        }
        single.attention(q, 0, heads, d, kv, 16, 16, 0, sink, 0.125f, yf, 0);
        assertFalse(bf16Diff(ye, yf, 0, d, heads, d).ok(), "corruption not detected");
    }

    private static void checkAttention(FastKernels k, SplittableRandom r, int heads, int d, int windowValid,
                                       int windowSize, int compressed, float qGain, String what) {
        int listLen = windowSize + compressed;
        float[] q = new float[5 + heads * d];
        for (int i = 5; i < q.length; i++) {
            q[i] = Bf16.round(r.nextGaussian() * qGain);
        }
        float[] kv = activations(r, listLen * d);
        float[] sink = new float[heads];
        for (int h = 0; h < heads; h++) {
            sink[h] = (float) r.nextGaussian();
        }
        float scale = (float) (1.0 / Math.sqrt(d));
        float[] ye = new float[2 + heads * d];
        float[] yf = new float[ye.length];
        EXACT.attention(q, 5, heads, d, kv, windowValid, windowSize, compressed, sink, scale, ye, 2);
        k.attention(q, 5, heads, d, kv, windowValid, windowSize, compressed, sink, scale, yf, 2);
        assertBf16Close(ye, yf, 2, d, heads, d, what);
    }

    // ------------------------------------------------------------------------------------------ indexer

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void indexScoresMatchExact(boolean mt) {
        SplittableRandom r = new SplittableRandom(12);
        // {heads, dim, count}
        int[][] cases = {{64, 128, 301}, {4, 128, 7}, {20, 64, 130}};
        for (int[] c : cases) {
            int heads = c[0];
            int dim = c[1];
            int count = c[2];
            float[] q = activations(r, 3 + heads * dim);
            float[] w = new float[1 + heads];
            for (int h = 0; h < w.length; h++) {
                w[h] = Bf16.round(Math.abs(r.nextGaussian()) * 0.1);
            }
            float[] keys = activations(r, count * dim);
            float[] se = new float[count];
            float[] sf = new float[count];
            EXACT.indexScores(q, 3, heads, dim, w, 1, keys, count, se);
            kernels(mt).indexScores(q, 3, heads, dim, w, 1, keys, count, sf);
            assertBf16Close(se, sf, 0, count, 1, count, "index " + Arrays.toString(c) + " mt=" + mt);

            keys[(count / 2) * dim + 5] += 40f;
            kernels(mt).indexScores(q, 3, heads, dim, w, 1, keys, count, sf);
            assertFalse(bf16Diff(se, sf, 0, count, 1, count).ok(), "corruption not detected " + Arrays.toString(c));
        }
    }

    @Test
    void poolSurvivesManySmallAndLargeCalls() {
        // exercises the spin/park hand-off: alternating serial and parallel calls, then a closed pool
        SplittableRandom r = new SplittableRandom(13);
        Fp4Matrix big = fp4(r, 256, 1024);
        Fp4Matrix small = fp4(r, 8, 128);
        float[] x = activations(r, 4 * 1024);
        float[] y1 = new float[4 * 256];
        float[] y2 = new float[4 * 256];
        try (FastKernels k = new FastKernels(3, 0)) {
            k.fp4Linear(big, x, 0, 1024, 4, y1, 0, 256);
            for (int i = 0; i < 40; i++) {
                k.fp4Linear(small, x, 0, 128, 1, y2, 0, 8);
                k.fp4Linear(big, x, 0, 1024, 4, y2, 0, 256);
            }
        }
        assertTrue(Arrays.equals(y1, y2), "results must not depend on the schedule");
    }
}
