package io.epserve.bench;

import io.epserve.model.format.E8m0;
import io.epserve.model.format.Fp4E2m1;
import io.epserve.model.format.Fp8E4m3;
import io.epserve.model.kernel.FastKernels;
import io.epserve.model.weights.Fp4Matrix;
import io.epserve.model.weights.Fp8Matrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * A probe, not an engine kernel: register-blocked ("outer-product") FP8 and FP4 products on weights repacked into
 * panels of 16 rows, against {@link FastKernels#fp8Linear} / {@link FastKernels#fp4Linear} on the same weights,
 * alternating rounds in one JVM, one thread (bench/README, nineteenth pass).
 *
 * <p>The engine's kernels put a row's columns in the vector lanes (a dot product per row and token, lanes summed at the
 * end), so every FMA needs its own activation vector from L1: at 8 tokens, 8 loads per decoded weight vector, and the
 * load ports, not the FMA units, set the pace (fp8X8 runs at about half the FMA peak; see the sixteenth pass). Here
 * the lanes hold 16 rows of one column: a panel's weights for column c decode into one vector (scale folded in), and
 * each token's activation x[t][c] is one broadcast shared by the 3 (8 tokens) or 6 (4 tokens) panels in flight, whose
 * 24 accumulators stay in registers for the whole row; results land in y [T, rows] without lane sums. Each output is
 * one float32 chain over the columns in order, a different summation order from the engine's, so adopting this layout
 * means changing every FP8/FP4 kernel (1 to 16 tokens) at once to stay batch-invariant.
 *
 * <p>Left out here, needed in an engine version: the subnormal-code path for Intel hosts (the exponent-shift decode is
 * exact for subnormal e4m3 codes, but multiplies subnormal floats), the scales decoded in the kernel (here they are
 * floats made ahead, exact for every E8M0 code), row counts that are not a multiple of the panels in flight (the
 * probe times and checks only full panel groups) and the FP8 quantisation of the activations (the engine's time
 * includes it; the probe takes x as given). The probe checks its own results against a float64 product of the same
 * codes.
 *
 * <p>FP4 at one token uses a denser panel ({@link #fp4DensePanels4x1}: 8 columns of a row per int lane, a chain per
 * 32-column block and one scale FMA, as the engine's kernels do); the column layout above lost to the engine there.
 *
 * <pre>
 * taskset -c 1 $JAVA_HOME/bin/java -XX:+UseG1GC --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
 *     -cp bench/target/benchmarks.jar io.epserve.bench.RegisterBlockedProbe fp8|fp4 ROWS COLS TOKENS hot|cold ROUNDS
 * </pre>
 * fp8 takes 1 or 8 tokens (4 or 3 panels in flight); fp4 1, 4, 8 or 16 (4 dense, 6, 3 and 3 x two tiles). {@code cold}
 * cycles through copies of the matrix totalling twice the LLC, in both forms, as {@link PairedKernelAb} does.
 */
public final class RegisterBlockedProbe {
    static final VectorSpecies<Float> FS = FloatVector.SPECIES_512;
    static final VectorSpecies<Integer> IS = IntVector.SPECIES_512;
    static final VectorSpecies<Byte> BS = ByteVector.SPECIES_128;
    static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** The 16 e2m1 values as float bits; indices are masked to 4 bits (a second table register made C2 spill). */
    static final IntVector TA;

    static {
        int[] t = new int[16];
        for (int i = 0; i < 16; i++) {
            t[i] = Float.floatToRawIntBits(Fp4E2m1.toFloat(i));
        }
        TA = IntVector.fromArray(IS, t, 0);
    }

    /** FP4 one token on the dense panel layout ({@link #fp4DensePanels4x1}); -Ddense=false for the column layout. */
    static final boolean DENSE = !"false".equals(System.getProperty("dense"));

    private RegisterBlockedProbe() {
    }

    /**
     * FP8, 3 panels x 8 tokens. p: panel-major, 16 bytes per column (row i of the panel at byte i); mulK: per
     * 128-column block 2^120 times the block scale; x: [8][cols]; y: [8][rows] at row yr.
     */
    static void fp8Panels3x8(MemorySegment p, long po0, long po1, long po2, float[] mul0, float[] mul1, float[] mul2,
                             int cols, float[] x, float[] y, int yr, int rows) {
        FloatVector z = FloatVector.zero(FS);
        FloatVector a00 = z, a01 = z, a02 = z, a03 = z, a04 = z, a05 = z, a06 = z, a07 = z;
        FloatVector a10 = z, a11 = z, a12 = z, a13 = z, a14 = z, a15 = z, a16 = z, a17 = z;
        FloatVector a20 = z, a21 = z, a22 = z, a23 = z, a24 = z, a25 = z, a26 = z, a27 = z;
        for (int c = 0; c < cols; c++) {
            float m0 = mul0[c >>> 7], m1 = mul1[c >>> 7], m2 = mul2[c >>> 7];
            IntVector q0 = codes(p, po0 + 16L * c);
            IntVector q1 = codes(p, po1 + 16L * c);
            IntVector q2 = codes(p, po2 + 16L * c);
            FloatVector w0 = q0.lanewise(VectorOperators.LSHL, 20).and(0x87f00000).reinterpretAsFloats().mul(m0);
            FloatVector w1 = q1.lanewise(VectorOperators.LSHL, 20).and(0x87f00000).reinterpretAsFloats().mul(m1);
            FloatVector w2 = q2.lanewise(VectorOperators.LSHL, 20).and(0x87f00000).reinterpretAsFloats().mul(m2);
            FloatVector xb;
            xb = FloatVector.broadcast(FS, x[c]);
            a00 = w0.fma(xb, a00);
            a10 = w1.fma(xb, a10);
            a20 = w2.fma(xb, a20);
            xb = FloatVector.broadcast(FS, x[cols + c]);
            a01 = w0.fma(xb, a01);
            a11 = w1.fma(xb, a11);
            a21 = w2.fma(xb, a21);
            xb = FloatVector.broadcast(FS, x[2 * cols + c]);
            a02 = w0.fma(xb, a02);
            a12 = w1.fma(xb, a12);
            a22 = w2.fma(xb, a22);
            xb = FloatVector.broadcast(FS, x[3 * cols + c]);
            a03 = w0.fma(xb, a03);
            a13 = w1.fma(xb, a13);
            a23 = w2.fma(xb, a23);
            xb = FloatVector.broadcast(FS, x[4 * cols + c]);
            a04 = w0.fma(xb, a04);
            a14 = w1.fma(xb, a14);
            a24 = w2.fma(xb, a24);
            xb = FloatVector.broadcast(FS, x[5 * cols + c]);
            a05 = w0.fma(xb, a05);
            a15 = w1.fma(xb, a15);
            a25 = w2.fma(xb, a25);
            xb = FloatVector.broadcast(FS, x[6 * cols + c]);
            a06 = w0.fma(xb, a06);
            a16 = w1.fma(xb, a16);
            a26 = w2.fma(xb, a26);
            xb = FloatVector.broadcast(FS, x[7 * cols + c]);
            a07 = w0.fma(xb, a07);
            a17 = w1.fma(xb, a17);
            a27 = w2.fma(xb, a27);
        }
        a00.intoArray(y, yr);
        a01.intoArray(y, rows + yr);
        a02.intoArray(y, 2 * rows + yr);
        a03.intoArray(y, 3 * rows + yr);
        a04.intoArray(y, 4 * rows + yr);
        a05.intoArray(y, 5 * rows + yr);
        a06.intoArray(y, 6 * rows + yr);
        a07.intoArray(y, 7 * rows + yr);
        a10.intoArray(y, yr + 16);
        a11.intoArray(y, rows + yr + 16);
        a12.intoArray(y, 2 * rows + yr + 16);
        a13.intoArray(y, 3 * rows + yr + 16);
        a14.intoArray(y, 4 * rows + yr + 16);
        a15.intoArray(y, 5 * rows + yr + 16);
        a16.intoArray(y, 6 * rows + yr + 16);
        a17.intoArray(y, 7 * rows + yr + 16);
        a20.intoArray(y, yr + 32);
        a21.intoArray(y, rows + yr + 32);
        a22.intoArray(y, 2 * rows + yr + 32);
        a23.intoArray(y, 3 * rows + yr + 32);
        a24.intoArray(y, 4 * rows + yr + 32);
        a25.intoArray(y, 5 * rows + yr + 32);
        a26.intoArray(y, 6 * rows + yr + 32);
        a27.intoArray(y, 7 * rows + yr + 32);
    }

    /**
     * FP4, 3 panels x 8 tokens of the tile at t0. p: panel-major, per column pair 16 bytes (row i's packed byte i);
     * sc: [panel][block of 32][16] scales.
     */
    static void fp4Panels3x8(MemorySegment p, long po0, long po1, long po2, float[] sc, int so0, int so1, int so2,
                             int cols, float[] x, int xs, int t0, float[] y, int yr, int rows) {
        FloatVector z = FloatVector.zero(FS);
        FloatVector a00 = z, a01 = z, a02 = z, a03 = z, a04 = z, a05 = z, a06 = z, a07 = z;
        FloatVector a10 = z, a11 = z, a12 = z, a13 = z, a14 = z, a15 = z, a16 = z, a17 = z;
        FloatVector a20 = z, a21 = z, a22 = z, a23 = z, a24 = z, a25 = z, a26 = z, a27 = z;
        int x0 = t0 * xs;
        for (int c = 0; c < cols; c += 2) {
            int b = (c >>> 5) * 16;
            for (int h = 0; h < 2; h++) {
                FloatVector w0 = fp4Column(p, po0 + 8L * c, 4 * h, sc, so0 + b);
                FloatVector w1 = fp4Column(p, po1 + 8L * c, 4 * h, sc, so1 + b);
                FloatVector w2 = fp4Column(p, po2 + 8L * c, 4 * h, sc, so2 + b);
                int xc = x0 + c + h;
                FloatVector xb;
                xb = FloatVector.broadcast(FS, x[xc]);
                a00 = w0.fma(xb, a00);
                a10 = w1.fma(xb, a10);
                a20 = w2.fma(xb, a20);
                xb = FloatVector.broadcast(FS, x[xc + xs]);
                a01 = w0.fma(xb, a01);
                a11 = w1.fma(xb, a11);
                a21 = w2.fma(xb, a21);
                xb = FloatVector.broadcast(FS, x[xc + 2 * xs]);
                a02 = w0.fma(xb, a02);
                a12 = w1.fma(xb, a12);
                a22 = w2.fma(xb, a22);
                xb = FloatVector.broadcast(FS, x[xc + 3 * xs]);
                a03 = w0.fma(xb, a03);
                a13 = w1.fma(xb, a13);
                a23 = w2.fma(xb, a23);
                xb = FloatVector.broadcast(FS, x[xc + 4 * xs]);
                a04 = w0.fma(xb, a04);
                a14 = w1.fma(xb, a14);
                a24 = w2.fma(xb, a24);
                xb = FloatVector.broadcast(FS, x[xc + 5 * xs]);
                a05 = w0.fma(xb, a05);
                a15 = w1.fma(xb, a15);
                a25 = w2.fma(xb, a25);
                xb = FloatVector.broadcast(FS, x[xc + 6 * xs]);
                a06 = w0.fma(xb, a06);
                a16 = w1.fma(xb, a16);
                a26 = w2.fma(xb, a26);
                xb = FloatVector.broadcast(FS, x[xc + 7 * xs]);
                a07 = w0.fma(xb, a07);
                a17 = w1.fma(xb, a17);
                a27 = w2.fma(xb, a27);
            }
        }
        int y0 = t0 * rows + yr;
        a00.intoArray(y, y0);
        a01.intoArray(y, rows + y0);
        a02.intoArray(y, 2 * rows + y0);
        a03.intoArray(y, 3 * rows + y0);
        a04.intoArray(y, 4 * rows + y0);
        a05.intoArray(y, 5 * rows + y0);
        a06.intoArray(y, 6 * rows + y0);
        a07.intoArray(y, 7 * rows + y0);
        y0 += 16;
        a10.intoArray(y, y0);
        a11.intoArray(y, rows + y0);
        a12.intoArray(y, 2 * rows + y0);
        a13.intoArray(y, 3 * rows + y0);
        a14.intoArray(y, 4 * rows + y0);
        a15.intoArray(y, 5 * rows + y0);
        a16.intoArray(y, 6 * rows + y0);
        a17.intoArray(y, 7 * rows + y0);
        y0 += 16;
        a20.intoArray(y, y0);
        a21.intoArray(y, rows + y0);
        a22.intoArray(y, 2 * rows + y0);
        a23.intoArray(y, 3 * rows + y0);
        a24.intoArray(y, 4 * rows + y0);
        a25.intoArray(y, 5 * rows + y0);
        a26.intoArray(y, 6 * rows + y0);
        a27.intoArray(y, 7 * rows + y0);
    }

    /** FP4, 6 panels x 4 tokens (po, so: each panel's byte and scale offsets). */
    static void fp4Panels6x4(MemorySegment p, long[] po, int pn, float[] sc, int[] so, int cols, float[] x, int xs,
                             float[] y, int yr, int rows) {
        long p0 = po[pn], p1 = po[pn + 1], p2 = po[pn + 2], p3 = po[pn + 3], p4 = po[pn + 4], p5 = po[pn + 5];
        int s0 = so[pn], s1 = so[pn + 1], s2 = so[pn + 2], s3 = so[pn + 3], s4 = so[pn + 4], s5 = so[pn + 5];
        FloatVector z = FloatVector.zero(FS);
        FloatVector a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
        FloatVector a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z;
        FloatVector a40 = z, a41 = z, a42 = z, a43 = z, a50 = z, a51 = z, a52 = z, a53 = z;
        for (int c = 0; c < cols; c += 2) {
            int b = (c >>> 5) * 16;
            for (int h = 0; h < 2; h++) {
                int sh = 4 * h;
                FloatVector w0 = fp4Column(p, p0 + 8L * c, sh, sc, s0 + b);
                FloatVector w1 = fp4Column(p, p1 + 8L * c, sh, sc, s1 + b);
                FloatVector w2 = fp4Column(p, p2 + 8L * c, sh, sc, s2 + b);
                FloatVector w3 = fp4Column(p, p3 + 8L * c, sh, sc, s3 + b);
                FloatVector w4 = fp4Column(p, p4 + 8L * c, sh, sc, s4 + b);
                FloatVector w5 = fp4Column(p, p5 + 8L * c, sh, sc, s5 + b);
                int xc = c + h;
                FloatVector xb;
                xb = FloatVector.broadcast(FS, x[xc]);
                a00 = w0.fma(xb, a00);
                a10 = w1.fma(xb, a10);
                a20 = w2.fma(xb, a20);
                a30 = w3.fma(xb, a30);
                a40 = w4.fma(xb, a40);
                a50 = w5.fma(xb, a50);
                xb = FloatVector.broadcast(FS, x[xc + xs]);
                a01 = w0.fma(xb, a01);
                a11 = w1.fma(xb, a11);
                a21 = w2.fma(xb, a21);
                a31 = w3.fma(xb, a31);
                a41 = w4.fma(xb, a41);
                a51 = w5.fma(xb, a51);
                xb = FloatVector.broadcast(FS, x[xc + 2 * xs]);
                a02 = w0.fma(xb, a02);
                a12 = w1.fma(xb, a12);
                a22 = w2.fma(xb, a22);
                a32 = w3.fma(xb, a32);
                a42 = w4.fma(xb, a42);
                a52 = w5.fma(xb, a52);
                xb = FloatVector.broadcast(FS, x[xc + 3 * xs]);
                a03 = w0.fma(xb, a03);
                a13 = w1.fma(xb, a13);
                a23 = w2.fma(xb, a23);
                a33 = w3.fma(xb, a33);
                a43 = w4.fma(xb, a43);
                a53 = w5.fma(xb, a53);
            }
        }
        int y0 = yr;
        a00.intoArray(y, y0);
        a01.intoArray(y, rows + y0);
        a02.intoArray(y, 2 * rows + y0);
        a03.intoArray(y, 3 * rows + y0);
        y0 += 16;
        a10.intoArray(y, y0);
        a11.intoArray(y, rows + y0);
        a12.intoArray(y, 2 * rows + y0);
        a13.intoArray(y, 3 * rows + y0);
        y0 += 16;
        a20.intoArray(y, y0);
        a21.intoArray(y, rows + y0);
        a22.intoArray(y, 2 * rows + y0);
        a23.intoArray(y, 3 * rows + y0);
        y0 += 16;
        a30.intoArray(y, y0);
        a31.intoArray(y, rows + y0);
        a32.intoArray(y, 2 * rows + y0);
        a33.intoArray(y, 3 * rows + y0);
        y0 += 16;
        a40.intoArray(y, y0);
        a41.intoArray(y, rows + y0);
        a42.intoArray(y, 2 * rows + y0);
        a43.intoArray(y, 3 * rows + y0);
        y0 += 16;
        a50.intoArray(y, y0);
        a51.intoArray(y, rows + y0);
        a52.intoArray(y, 2 * rows + y0);
        a53.intoArray(y, 3 * rows + y0);
    }

    /** 16 bytes at off, one per int lane (sign-extended). */
    private static IntVector codes(MemorySegment p, long off) {
        return (IntVector) ByteVector.fromMemorySegment(BS, p, off, LE).convertShape(VectorOperators.B2I, IS, 0);
    }

    /** FP8, 4 panels x 1 token (4 independent chains cover the FMA latency). */
    static void fp8Panels4x1(MemorySegment p, long[] po, int pn, float[][] mul, int cols, float[] x, float[] y,
                             int yr) {
        long p0 = po[pn], p1 = po[pn + 1], p2 = po[pn + 2], p3 = po[pn + 3];
        float[] m0 = mul[pn], m1 = mul[pn + 1], m2 = mul[pn + 2], m3 = mul[pn + 3];
        FloatVector z = FloatVector.zero(FS);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z;
        for (int c = 0; c < cols; c++) {
            int b = c >>> 7;
            FloatVector xb = FloatVector.broadcast(FS, x[c]);
            a0 = codes(p, p0 + 16L * c).lanewise(VectorOperators.LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(m0[b]).fma(xb, a0);
            a1 = codes(p, p1 + 16L * c).lanewise(VectorOperators.LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(m1[b]).fma(xb, a1);
            a2 = codes(p, p2 + 16L * c).lanewise(VectorOperators.LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(m2[b]).fma(xb, a2);
            a3 = codes(p, p3 + 16L * c).lanewise(VectorOperators.LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(m3[b]).fma(xb, a3);
        }
        a0.intoArray(y, yr);
        a1.intoArray(y, yr + 16);
        a2.intoArray(y, yr + 32);
        a3.intoArray(y, yr + 48);
    }

    /** FP4, 4 panels x 1 token. */
    static void fp4Panels4x1(MemorySegment p, long[] po, int pn, float[] sc, int[] so, int cols, float[] x,
                             float[] y, int yr) {
        long p0 = po[pn], p1 = po[pn + 1], p2 = po[pn + 2], p3 = po[pn + 3];
        int s0 = so[pn], s1 = so[pn + 1], s2 = so[pn + 2], s3 = so[pn + 3];
        FloatVector z = FloatVector.zero(FS);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z;
        for (int c = 0; c < cols; c += 2) {
            int b = (c >>> 5) * 16;
            for (int h = 0; h < 2; h++) {
                int sh = 4 * h;
                FloatVector xb = FloatVector.broadcast(FS, x[c + h]);
                a0 = fp4Column(p, p0 + 8L * c, sh, sc, s0 + b).fma(xb, a0);
                a1 = fp4Column(p, p1 + 8L * c, sh, sc, s1 + b).fma(xb, a1);
                a2 = fp4Column(p, p2 + 8L * c, sh, sc, s2 + b).fma(xb, a2);
                a3 = fp4Column(p, p3 + 8L * c, sh, sc, s3 + b).fma(xb, a3);
            }
        }
        a0.intoArray(y, yr);
        a1.intoArray(y, yr + 16);
        a2.intoArray(y, yr + 32);
        a3.intoArray(y, yr + 48);
    }

    /**
     * FP4, 4 panels x 1 token on the dense panel layout: int lane i of a 64-byte vector holds row i's 8 codes of 8
     * columns (its own 4 packed bytes), so a column costs a shift and a two-table lookup (the bits above the nibble
     * ignored, as in TileKernels); each 32-column block is a chain from zero, then one FMA with the 16 rows' scales.
     */
    static void fp4DensePanels4x1(MemorySegment p, long[] po, int pn, float[] sc, int[] so, int cols, float[] x,
                                  float[] y, int yr) {
        long p0 = po[pn], p1 = po[pn + 1], p2 = po[pn + 2], p3 = po[pn + 3];
        int s0 = so[pn], s1 = so[pn + 1], s2 = so[pn + 2], s3 = so[pn + 3];
        FloatVector z = FloatVector.zero(FS);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z;
        for (int c = 0; c < cols; c += 32) {
            FloatVector b0 = z, b1 = z, b2 = z, b3 = z;
            for (int g = 0; g < 4; g++) {
                long off = 8L * c + 64L * g;
                IntVector q0 = IntVector.fromMemorySegment(IS, p, p0 + off, LE);
                IntVector q1 = IntVector.fromMemorySegment(IS, p, p1 + off, LE);
                IntVector q2 = IntVector.fromMemorySegment(IS, p, p2 + off, LE);
                IntVector q3 = IntVector.fromMemorySegment(IS, p, p3 + off, LE);
                int xc = c + 8 * g;
                for (int j = 0; j < 8; j++) {
                    FloatVector xb = FloatVector.broadcast(FS, x[xc + j]);
                    int sh = 4 * j;
                    b0 = q0.lanewise(VectorOperators.LSHR, sh).selectFrom(TA, TA).reinterpretAsFloats().fma(xb, b0);
                    b1 = q1.lanewise(VectorOperators.LSHR, sh).selectFrom(TA, TA).reinterpretAsFloats().fma(xb, b1);
                    b2 = q2.lanewise(VectorOperators.LSHR, sh).selectFrom(TA, TA).reinterpretAsFloats().fma(xb, b2);
                    b3 = q3.lanewise(VectorOperators.LSHR, sh).selectFrom(TA, TA).reinterpretAsFloats().fma(xb, b3);
                }
            }
            int b = (c >>> 5) * 16;
            a0 = b0.fma(FloatVector.fromArray(FS, sc, s0 + b), a0);
            a1 = b1.fma(FloatVector.fromArray(FS, sc, s1 + b), a1);
            a2 = b2.fma(FloatVector.fromArray(FS, sc, s2 + b), a2);
            a3 = b3.fma(FloatVector.fromArray(FS, sc, s3 + b), a3);
        }
        a0.intoArray(y, yr);
        a1.intoArray(y, yr + 16);
        a2.intoArray(y, yr + 32);
        a3.intoArray(y, yr + 48);
    }

    /** One FP4 panel column (the low or high nibble of 16 bytes at off) as floats times the 16 rows' scales. */
    private static FloatVector fp4Column(MemorySegment p, long off, int shift, float[] sc, int so) {
        return ((IntVector) ByteVector.fromMemorySegment(BS, p, off, LE).convertShape(VectorOperators.B2I, IS, 0))
                .lanewise(VectorOperators.LSHR, shift).and(15).selectFrom(TA).reinterpretAsFloats()
                .mul(FloatVector.fromArray(FS, sc, so));
    }

    /** One matrix: the engine's form and the probe's repacked form (FP8: mul; FP4: sc). */
    private record Copy(Object engine, MemorySegment packed, float[][] mul, float[] sc) {
    }

    public static void main(String[] a) {
        if (a.length != 6 || !a[0].equals("fp8") && !a[0].equals("fp4")
                || !a[4].equals("hot") && !a[4].equals("cold")) {
            System.err.println("usage: RegisterBlockedProbe fp8|fp4 ROWS COLS TOKENS hot|cold ROUNDS");
            System.exit(2);
        }
        boolean fp8 = a[0].equals("fp8");
        boolean cold = a[4].equals("cold");
        int rows;
        int cols;
        int T;
        int rounds;
        try {
            rows = Integer.parseInt(a[1]);
            cols = Integer.parseInt(a[2]);
            T = Integer.parseInt(a[3]);
            rounds = Integer.parseInt(a[5]);
        } catch (NumberFormatException e) {
            System.err.println("ROWS, COLS, TOKENS and ROUNDS are whole numbers: " + e.getMessage());
            System.exit(2);
            return;
        }
        if (FloatVector.SPECIES_PREFERRED.length() != 16 || rows <= 0 || rows % 16 != 0 || cols <= 0 || cols % 128 != 0
                || (fp8 ? T != 1 && T != 8 : T != 1 && T != 4 && T != 8 && T != 16) || rounds < 2) {
            System.err.println("needs 512-bit vectors, rows a multiple of 16, columns of 128, fp8: 1 or 8 tokens,"
                    + " fp4: 1, 4, 8 or 16, rounds >= 2");
            System.exit(2);
        }
        SplittableRandom r = new SplittableRandom(42);
        Arena arena = Arena.ofShared();
        float[] x = BenchData.activations(T, cols, r);
        float[] y1 = new float[T * rows];
        float[] y2 = new float[T * rows];
        FastKernels k = new FastKernels(1);
        int panels = rows / 16;
        int per = T == 1 ? 4 : fp8 || T != 4 ? 3 : 6;
        int rowsB = panels / per * per * 16;
        if (rowsB == 0) {
            System.err.println(T + " tokens take " + per + " panels of 16 rows at once: give at least " + 16 * per
                    + " rows");
            System.exit(2);
        }
        long bytes = fp8 ? BenchData.fp8Bytes(rows, cols) : BenchData.fp4Bytes(rows, cols);
        int n = BenchData.copies(cold ? "cold" : "hot", bytes, 2);
        Copy[] copies = new Copy[n];
        MemorySegment[] first = null;
        int sc8 = cols / 128;
        int blocks = cols / 32;
        for (int i = 0; i < n; i++) {
            MemorySegment[] w = fp8 ? BenchData.fp8Segments(arena, rows, cols, r)
                    : BenchData.fp4Segments(arena, rows, cols, r);
            if (i == 0) {
                first = w;
            }
            if (fp8) {
                MemorySegment p = BenchData.WEIGHTS.allocate((long) rows * cols, arena);
                for (int row = 0; row < rows; row++) {
                    for (int c = 0; c < cols; c++) {
                        p.set(ValueLayout.JAVA_BYTE, (long) (row / 16) * 16 * cols + 16L * c + row % 16,
                                w[0].get(ValueLayout.JAVA_BYTE, (long) row * cols + c));
                    }
                }
                float[][] mul = new float[panels][sc8];
                for (int pn = 0; pn < panels; pn++) {
                    for (int b = 0; b < sc8; b++) {
                        mul[pn][b] = 0x1p120f * E8m0.toFloat(
                                w[1].get(ValueLayout.JAVA_BYTE, (long) (pn * 16 / 128) * sc8 + b) & 0xff);
                    }
                }
                copies[i] = new Copy(new Fp8Matrix("probe.fp8", rows, cols, w[0], w[1]), p, mul, null);
            } else {
                // one layout per run: dense for one token (unless -Ddense=false), else 16 bytes per column pair
                boolean dense = T == 1 && DENSE;
                MemorySegment p = BenchData.WEIGHTS.allocate((long) rows * cols / 2, arena);
                for (int row = 0; row < rows; row++) {
                    for (int j = 0; j < cols / 2; j += dense ? 4 : 1) {
                        long from = (long) row * (cols / 2) + j;
                        if (dense) {
                            p.set(ValueLayout.JAVA_INT_UNALIGNED, (long) (row / 16) * 8 * cols + 16L * j
                                    + 4L * (row % 16), w[0].get(ValueLayout.JAVA_INT_UNALIGNED, from));
                        } else {
                            p.set(ValueLayout.JAVA_BYTE, (long) (row / 16) * 8 * cols + 16L * j + row % 16,
                                    w[0].get(ValueLayout.JAVA_BYTE, from));
                        }
                    }
                }
                float[] sc = new float[panels * blocks * 16];
                for (int row = 0; row < rows; row++) {
                    for (int b = 0; b < blocks; b++) {
                        sc[((row / 16) * blocks + b) * 16 + row % 16] =
                                E8m0.toFloat(w[1].get(ValueLayout.JAVA_BYTE, (long) row * blocks + b) & 0xff);
                    }
                }
                copies[i] = new Copy(new Fp4Matrix("probe.fp4", rows, cols, w[0], w[1]), p, null, sc);
            }
        }
        long[] po = new long[panels];
        int[] so = new int[panels];
        for (int i = 0; i < panels; i++) {
            po[i] = (long) i * (fp8 ? 16 : 8) * cols;
            so[i] = i * blocks * 16;
        }
        int[] next = {0, 0};
        Runnable engine = () -> {
            Copy c = copies[next[0]];
            next[0] = next[0] + 1 == n ? 0 : next[0] + 1;
            if (fp8) {
                k.fp8Linear((Fp8Matrix) c.engine, 0, rows, x, 0, cols, T, y1, 0, rows);
            } else {
                k.fp4Linear((Fp4Matrix) c.engine, x, 0, cols, T, y1, 0, rows);
            }
        };
        Runnable blocked = () -> {
            Copy c = copies[next[1]];
            next[1] = next[1] + 1 == n ? 0 : next[1] + 1;
            MemorySegment p = c.packed;
            if (T == 1) {
                for (int pn = 0; pn + 4 <= panels; pn += 4) {
                    if (fp8) {
                        fp8Panels4x1(p, po, pn, c.mul, cols, x, y2, pn * 16);
                    } else if (DENSE) {
                        fp4DensePanels4x1(p, po, pn, c.sc, so, cols, x, y2, pn * 16);
                    } else {
                        fp4Panels4x1(p, po, pn, c.sc, so, cols, x, y2, pn * 16);
                    }
                }
            } else if (fp8) {
                for (int pn = 0; pn + 3 <= panels; pn += 3) {
                    fp8Panels3x8(p, po[pn], po[pn + 1], po[pn + 2], c.mul[pn], c.mul[pn + 1], c.mul[pn + 2], cols, x,
                            y2, pn * 16, rows);
                }
            } else if (T == 4) {
                for (int pn = 0; pn + 6 <= panels; pn += 6) {
                    fp4Panels6x4(p, po, pn, c.sc, so, cols, x, cols, y2, pn * 16, rows);
                }
            } else {
                for (int t0 = 0; t0 < T; t0 += 8) {
                    for (int pn = 0; pn + 3 <= panels; pn += 3) {
                        fp4Panels3x8(p, po[pn], po[pn + 1], po[pn + 2], c.sc, so[pn], so[pn + 1], so[pn + 2], cols, x,
                                cols, t0, y2, pn * 16, rows);
                    }
                }
            }
        };
        next[1] = 0;
        blocked.run();
        next[1] = 0;
        double worst = 0;
        MemorySegment[] w = first;
        for (int t = 0; t < T; t++) {
            for (int row = 0; row < rowsB; row += 7) {
                double ref = 0;
                for (int c = 0; c < cols; c++) {
                    double wv = fp8
                            ? (double) Fp8E4m3.toFloat(w[0].get(ValueLayout.JAVA_BYTE, (long) row * cols + c) & 0xff)
                                    * E8m0.toFloat(w[1].get(ValueLayout.JAVA_BYTE, (long) (row / 128) * sc8 + c / 128)
                                    & 0xff)
                            : (double) Fp4E2m1.toFloat(Fp4E2m1.nibble(
                                    w[0].get(ValueLayout.JAVA_BYTE, (long) row * (cols / 2) + c / 2), c & 1))
                                    * E8m0.toFloat(w[1].get(ValueLayout.JAVA_BYTE, (long) row * blocks + c / 32)
                                    & 0xff);
                    ref += wv * x[t * cols + c];
                }
                worst = Math.max(worst, Math.abs(ref - y2[t * rows + row]) / (Math.abs(ref) + 1e-3));
            }
        }
        System.out.printf(Locale.ROOT, "register-blocked result against a float64 product of the same codes: max"
                + " |diff| / (|ref| + 1e-3) = %.3g%n", worst);
        for (int i = 0; i < 20; i++) {
            time(engine, 0.2);
            time(blocked, 0.2);
        }
        double[] ta = new double[rounds];
        double[] tb = new double[rounds];
        double[] ratio = new double[rounds];
        for (int i = 0; i < rounds; i++) {
            if (i % 2 == 0) {
                ta[i] = time(engine, 0.4);
                tb[i] = time(blocked, 0.4);
            } else {
                tb[i] = time(blocked, 0.4);
                ta[i] = time(engine, 0.4);
            }
            ratio[i] = tb[i] / rowsB / (ta[i] / rows);
        }
        Arrays.sort(ta);
        Arrays.sort(tb);
        Arrays.sort(ratio);
        System.out.printf(Locale.ROOT, "%s %dx%d, %d tokens, %s (%d matrices), one thread: engine %.1f GFLOP/s,"
                + " register-blocked %.1f GFLOP/s; time per row register-blocked / engine %.3f [%.3f-%.3f] over %d"
                + " rounds%n", a[0], rows, cols, T, a[4], n, 2.0 * rows * cols * T / ta[rounds / 2] / 1e9,
                2.0 * rowsB * cols * T / tb[rounds / 2] / 1e9, ratio[rounds / 2], ratio[rounds / 4],
                ratio[3 * rounds / 4], rounds);
    }

    private static double time(Runnable f, double seconds) {
        long t0 = System.nanoTime();
        long end = t0 + (long) (seconds * 1e9);
        long n = 0;
        long now;
        do {
            f.run();
            n++;
        } while ((now = System.nanoTime()) < end);
        return (now - t0) / 1e9 / n;
    }
}
