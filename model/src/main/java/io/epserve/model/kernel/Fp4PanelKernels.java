package io.epserve.model.kernel;

import static io.epserve.model.kernel.TileKernels.BS;
import static io.epserve.model.kernel.TileKernels.FP4_A;
import static io.epserve.model.kernel.TileKernels.FP4_B;
import static io.epserve.model.kernel.TileKernels.FS;
import static io.epserve.model.kernel.TileKernels.IS;
import static io.epserve.model.kernel.TileKernels.L;
import static jdk.incubator.vector.VectorOperators.B2I;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.LSHR;

import io.epserve.model.weights.Fp4Matrix;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;

/**
 * The FP4 kernels of {@link FastKernels}: a panelled {@link Fp4Matrix} against a tile of up to 16 tokens, lanes =
 * rows, as {@link Fp8PanelKernels} does for FP8. A strip is L rows of a 16-row panel; an int lane holds one row's 8
 * codes of an 8-column group, so one 64-byte load (512-bit) brings 16 rows x 8 columns, and code j of every lane is
 * one shift and one table permute ({@code (q >>> 4j).selectFrom(FP4_A, FP4_B)}, see {@link TileKernels}) away from
 * a vector of 16 rows' weights of one column, multiplied by one broadcast activation per token.
 *
 * <h2>Numerics and batch invariance</h2>
 * Every output (row r, token t) is its own chain, whatever the kernel, tile, strip group or thread:
 * <pre>
 *   a = +0
 *   for each 32-column block k:  b = +0;  for c in the block, in order:  b = fma(e2m1[r][c], x[t][c], b)
 *                                a = fma(b, scale[r][k], a)
 * </pre>
 * e2m1 values and FP8-quantised activations multiply exactly, and scale is exactly 2^(code - 127): the code moved
 * into the float exponent, code 0 as the subnormal 2^-127 and code 0xFF as NaN (both by a blend), so no row needs a
 * slower path. The kernels differ only in how many chains they interleave and whether the running sums a stay in
 * registers (x1, x2) or in the scratch between blocks (x4, x8, x1s8; a store and reload is exact).
 *
 * <p>Kernel methods are written out per shape (x8: 2 strips; x4, x2, x1: 4 strips; x1s8: 8 strips, one token, which
 * is what a single token takes when its chunk has 8 strips left) with no helper calls in them,
 * for the reasons given in {@link TileKernels} ("Code shape"); 16 accumulators leave room for the codes, the table
 * and the broadcast in 32 registers (3 strips x 8 tokens with the dense codes did not, in the probe).
 */
final class Fp4PanelKernels {
    private Fp4PanelKernels() {}

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** 2^-127 (E8M0 code 0) and a quiet NaN (code 0xFF) as float bits. */
    private static final int SUBNORMAL_MIN = 0x00400000, NAN = 0x7fc00000;
    /** Strips per kernel call at most (one token: 8, else 4), and so the padding the scratch needs. */
    static final int GROUP_STRIPS = 8;

    /** The multiple a chunk's strips are made of: each kernel then runs on real strips, not padding, but at a tail. */
    static int chunkMultiple(int tokens) {
        return tokens == 1 ? 8 : 4;
    }
    /** Accumulator slots per strip: one vector per token of a tile of up to 16. */
    static final int SLOT = FastKernels.MAX_TILE * L;
    /**
     * Activation bytes of a column panel of 2 or more tokens: a token block's activations of one panel stay in L1
     * while the chunk's strips stream past them (8 tokens: 512 columns, 2 tokens: 2048). 32 KiB panels ran 2 tokens
     * 1.3-1.4x slower from cache (2048x4096, 4096x2048). One token takes panels of 8192 columns (32 KiB): a strip's
     * codes then stream in runs as long as the row, which is what the single-token case is bound by.
     */
    static final int PANEL_BYTES = 16 << 10;
    static final int PANEL_BYTES_ONE_TOKEN = 32 << 10;

    /**
     * Strips [k0, k1) of w against tokens [0, n) of the tile whose token t, column c is x[xt + t * xs + c]; strip
     * k0 + j accumulates token t in a[ab + j * SLOT + t * L ..]. off, soff and slot are scratch of at least
     * (k1 - k0) + GROUP_STRIPS entries; a needs ab + (k1 - k0 + 1) * SLOT floats (the last slot takes the results of
     * the repeated strips that pad a group).
     */
    static void chunk(MemorySegment w, MemorySegment s, int cols, int k0, int k1, int n, float[] x, int xt, int xs,
            float[] a, int ab, long[] off, long[] soff, int[] slot) {
        int m = k1 - k0;
        int junk = ab + m * SLOT;
        long panelCodes = (long) Fp4Matrix.PANEL * (cols / 2);
        long panelScales = (long) Fp4Matrix.PANEL * (cols / Fp4Matrix.BLOCK);
        for (int j = 0; j < m + GROUP_STRIPS; j++) {
            int row = (k0 + Math.min(j, m - 1)) * L;
            int p = row / Fp4Matrix.PANEL;
            int i = row % Fp4Matrix.PANEL;
            off[j] = p * panelCodes + 4L * i;
            soff[j] = p * panelScales + i;
            slot[j] = j < m ? ab + j * SLOT : junk;
        }
        int nb = cols / Fp4Matrix.BLOCK;
        for (int t = 0, tb; t < n; t += tb) {
            int r = n - t;
            tb = r >= 8 ? 8 : r >= 4 ? 4 : r >= 2 ? 2 : 1;
            int tl = t * L;
            int xi = xt + t * xs;
            int width = Math.max(1, (tb == 1 ? PANEL_BYTES_ONE_TOKEN : PANEL_BYTES) / (4 * Fp4Matrix.BLOCK * tb));
            for (int pb = 0; pb < nb; pb += width) {
                int pe = Math.min(nb, pb + width);
                if (tb == 8) {
                    for (int j = 0; j < m; j += 2) {
                        x8(w, s, off[j], off[j + 1], soff[j], soff[j + 1], pb, pe, x, xi, xs, a, slot[j] + tl,
                                slot[j + 1] + tl);
                    }
                } else if (tb == 4) {
                    for (int j = 0; j < m; j += 4) {
                        x4(w, s, off[j], off[j + 1], off[j + 2], off[j + 3], soff[j], soff[j + 1], soff[j + 2],
                                soff[j + 3], pb, pe, x, xi, xs, a, slot[j] + tl, slot[j + 1] + tl, slot[j + 2] + tl,
                                slot[j + 3] + tl);
                    }
                } else if (tb == 2) {
                    for (int j = 0; j < m; j += 4) {
                        x2(w, s, off[j], off[j + 1], off[j + 2], off[j + 3], soff[j], soff[j + 1], soff[j + 2],
                                soff[j + 3], pb, pe, x, xi, xs, a, slot[j] + tl, slot[j + 1] + tl, slot[j + 2] + tl,
                                slot[j + 3] + tl);
                    }
                } else {
                    int j = 0;
                    for (; j + 8 <= m; j += 8) {
                        x1s8(w, s, off, soff, j, pb, pe, x, xi, a, slot, tl);
                    }
                    for (; j < m; j += 4) {
                        x1(w, s, off[j], off[j + 1], off[j + 2], off[j + 3], soff[j], soff[j + 1], soff[j + 2],
                                soff[j + 3], pb, pe, x, xi, xs, a, slot[j] + tl, slot[j + 1] + tl, slot[j + 2] + tl,
                                slot[j + 3] + tl);
                    }
                }
            }
        }
    }

    /** Two strips, eight tokens: 16 chains, one broadcast per token and column feeds 2 FMAs. */
    static void x8(MemorySegment w, MemorySegment s, long p0, long p1, long q0, long q1, int b0, int b1, float[] x,
            int xi, int xs, float[] a, int a0, int a1) {
        int x1 = xi + xs;
        int x2 = xi + 2 * xs;
        int x3 = xi + 3 * xs;
        int x4 = xi + 4 * xs;
        int x5 = xi + 5 * xs;
        int x6 = xi + 6 * xs;
        int x7 = xi + 7 * xs;
        FloatVector z = FloatVector.zero(FS);
        for (int b = b0; b < b1; b++) {
            FloatVector b00 = z, b01 = z, b02 = z, b03 = z, b04 = z, b05 = z, b06 = z, b07 = z;
            FloatVector b10 = z, b11 = z, b12 = z, b13 = z, b14 = z, b15 = z, b16 = z, b17 = z;
            for (int g = 0; g < 4; g++) {
                long o = 256L * b + 64L * g;
                IntVector q0g = IntVector.fromMemorySegment(IS, w, p0 + o, LE);
                IntVector q1g = IntVector.fromMemorySegment(IS, w, p1 + o, LE);
                int xc = 32 * b + 8 * g;
                for (int j = 0; j < 8; j++) {
                    int sh = 4 * j;
                    int c = xc + j;
                    FloatVector w0 = q0g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                    FloatVector w1 = q1g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                    FloatVector v = FloatVector.broadcast(FS, x[xi + c]);
                    b00 = w0.fma(v, b00);
                    b10 = w1.fma(v, b10);
                    v = FloatVector.broadcast(FS, x[x1 + c]);
                    b01 = w0.fma(v, b01);
                    b11 = w1.fma(v, b11);
                    v = FloatVector.broadcast(FS, x[x2 + c]);
                    b02 = w0.fma(v, b02);
                    b12 = w1.fma(v, b12);
                    v = FloatVector.broadcast(FS, x[x3 + c]);
                    b03 = w0.fma(v, b03);
                    b13 = w1.fma(v, b13);
                    v = FloatVector.broadcast(FS, x[x4 + c]);
                    b04 = w0.fma(v, b04);
                    b14 = w1.fma(v, b14);
                    v = FloatVector.broadcast(FS, x[x5 + c]);
                    b05 = w0.fma(v, b05);
                    b15 = w1.fma(v, b15);
                    v = FloatVector.broadcast(FS, x[x6 + c]);
                    b06 = w0.fma(v, b06);
                    b16 = w1.fma(v, b16);
                    v = FloatVector.broadcast(FS, x[x7 + c]);
                    b07 = w0.fma(v, b07);
                    b17 = w1.fma(v, b17);
                }
            }
            IntVector e0 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q0 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s0 = e0.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e0.eq(0)).blend(NAN, e0.eq(255))
                    .reinterpretAsFloats();
            b00.fma(s0, FloatVector.fromArray(FS, a, a0)).intoArray(a, a0);
            b01.fma(s0, FloatVector.fromArray(FS, a, a0 + L)).intoArray(a, a0 + L);
            b02.fma(s0, FloatVector.fromArray(FS, a, a0 + 2 * L)).intoArray(a, a0 + 2 * L);
            b03.fma(s0, FloatVector.fromArray(FS, a, a0 + 3 * L)).intoArray(a, a0 + 3 * L);
            b04.fma(s0, FloatVector.fromArray(FS, a, a0 + 4 * L)).intoArray(a, a0 + 4 * L);
            b05.fma(s0, FloatVector.fromArray(FS, a, a0 + 5 * L)).intoArray(a, a0 + 5 * L);
            b06.fma(s0, FloatVector.fromArray(FS, a, a0 + 6 * L)).intoArray(a, a0 + 6 * L);
            b07.fma(s0, FloatVector.fromArray(FS, a, a0 + 7 * L)).intoArray(a, a0 + 7 * L);
            IntVector e1 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q1 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s1 = e1.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e1.eq(0)).blend(NAN, e1.eq(255))
                    .reinterpretAsFloats();
            b10.fma(s1, FloatVector.fromArray(FS, a, a1)).intoArray(a, a1);
            b11.fma(s1, FloatVector.fromArray(FS, a, a1 + L)).intoArray(a, a1 + L);
            b12.fma(s1, FloatVector.fromArray(FS, a, a1 + 2 * L)).intoArray(a, a1 + 2 * L);
            b13.fma(s1, FloatVector.fromArray(FS, a, a1 + 3 * L)).intoArray(a, a1 + 3 * L);
            b14.fma(s1, FloatVector.fromArray(FS, a, a1 + 4 * L)).intoArray(a, a1 + 4 * L);
            b15.fma(s1, FloatVector.fromArray(FS, a, a1 + 5 * L)).intoArray(a, a1 + 5 * L);
            b16.fma(s1, FloatVector.fromArray(FS, a, a1 + 6 * L)).intoArray(a, a1 + 6 * L);
            b17.fma(s1, FloatVector.fromArray(FS, a, a1 + 7 * L)).intoArray(a, a1 + 7 * L);
        }
    }

    /** Four strips, four tokens (16 chains). */
    static void x4(MemorySegment w, MemorySegment s, long p0, long p1, long p2, long p3, long q0, long q1, long q2,
            long q3, int b0, int b1, float[] x, int xi, int xs, float[] a, int a0, int a1, int a2, int a3) {
        int x1 = xi + xs;
        int x2 = xi + 2 * xs;
        int x3 = xi + 3 * xs;
        FloatVector z = FloatVector.zero(FS);
        for (int b = b0; b < b1; b++) {
            FloatVector b00 = z, b01 = z, b02 = z, b03 = z;
            FloatVector b10 = z, b11 = z, b12 = z, b13 = z;
            FloatVector b20 = z, b21 = z, b22 = z, b23 = z;
            FloatVector b30 = z, b31 = z, b32 = z, b33 = z;
            for (int g = 0; g < 4; g++) {
                long o = 256L * b + 64L * g;
                IntVector q0g = IntVector.fromMemorySegment(IS, w, p0 + o, LE);
                IntVector q1g = IntVector.fromMemorySegment(IS, w, p1 + o, LE);
                IntVector q2g = IntVector.fromMemorySegment(IS, w, p2 + o, LE);
                IntVector q3g = IntVector.fromMemorySegment(IS, w, p3 + o, LE);
                int xc = 32 * b + 8 * g;
                for (int j = 0; j < 8; j++) {
                    int sh = 4 * j;
                    int c = xc + j;
                    FloatVector w0 = q0g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                    FloatVector w1 = q1g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                    FloatVector w2 = q2g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                    FloatVector w3 = q3g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                    FloatVector v = FloatVector.broadcast(FS, x[xi + c]);
                    b00 = w0.fma(v, b00);
                    b10 = w1.fma(v, b10);
                    b20 = w2.fma(v, b20);
                    b30 = w3.fma(v, b30);
                    v = FloatVector.broadcast(FS, x[x1 + c]);
                    b01 = w0.fma(v, b01);
                    b11 = w1.fma(v, b11);
                    b21 = w2.fma(v, b21);
                    b31 = w3.fma(v, b31);
                    v = FloatVector.broadcast(FS, x[x2 + c]);
                    b02 = w0.fma(v, b02);
                    b12 = w1.fma(v, b12);
                    b22 = w2.fma(v, b22);
                    b32 = w3.fma(v, b32);
                    v = FloatVector.broadcast(FS, x[x3 + c]);
                    b03 = w0.fma(v, b03);
                    b13 = w1.fma(v, b13);
                    b23 = w2.fma(v, b23);
                    b33 = w3.fma(v, b33);
                }
            }
            IntVector e0 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q0 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s0 = e0.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e0.eq(0)).blend(NAN, e0.eq(255))
                    .reinterpretAsFloats();
            b00.fma(s0, FloatVector.fromArray(FS, a, a0)).intoArray(a, a0);
            b01.fma(s0, FloatVector.fromArray(FS, a, a0 + L)).intoArray(a, a0 + L);
            b02.fma(s0, FloatVector.fromArray(FS, a, a0 + 2 * L)).intoArray(a, a0 + 2 * L);
            b03.fma(s0, FloatVector.fromArray(FS, a, a0 + 3 * L)).intoArray(a, a0 + 3 * L);
            IntVector e1 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q1 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s1 = e1.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e1.eq(0)).blend(NAN, e1.eq(255))
                    .reinterpretAsFloats();
            b10.fma(s1, FloatVector.fromArray(FS, a, a1)).intoArray(a, a1);
            b11.fma(s1, FloatVector.fromArray(FS, a, a1 + L)).intoArray(a, a1 + L);
            b12.fma(s1, FloatVector.fromArray(FS, a, a1 + 2 * L)).intoArray(a, a1 + 2 * L);
            b13.fma(s1, FloatVector.fromArray(FS, a, a1 + 3 * L)).intoArray(a, a1 + 3 * L);
            IntVector e2 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q2 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s2 = e2.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e2.eq(0)).blend(NAN, e2.eq(255))
                    .reinterpretAsFloats();
            b20.fma(s2, FloatVector.fromArray(FS, a, a2)).intoArray(a, a2);
            b21.fma(s2, FloatVector.fromArray(FS, a, a2 + L)).intoArray(a, a2 + L);
            b22.fma(s2, FloatVector.fromArray(FS, a, a2 + 2 * L)).intoArray(a, a2 + 2 * L);
            b23.fma(s2, FloatVector.fromArray(FS, a, a2 + 3 * L)).intoArray(a, a2 + 3 * L);
            IntVector e3 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q3 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s3 = e3.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e3.eq(0)).blend(NAN, e3.eq(255))
                    .reinterpretAsFloats();
            b30.fma(s3, FloatVector.fromArray(FS, a, a3)).intoArray(a, a3);
            b31.fma(s3, FloatVector.fromArray(FS, a, a3 + L)).intoArray(a, a3 + L);
            b32.fma(s3, FloatVector.fromArray(FS, a, a3 + 2 * L)).intoArray(a, a3 + 2 * L);
            b33.fma(s3, FloatVector.fromArray(FS, a, a3 + 3 * L)).intoArray(a, a3 + 3 * L);
        }
    }

    /** Four strips, two tokens (8 chains). */
    static void x2(MemorySegment w, MemorySegment s, long p0, long p1, long p2, long p3, long q0, long q1, long q2,
            long q3, int b0, int b1, float[] x, int xi, int xs, float[] a, int a0, int a1, int a2, int a3) {
        int x1 = xi + xs;
        FloatVector z = FloatVector.zero(FS);
        for (int b = b0; b < b1; b++) {
            FloatVector b00 = z, b01 = z;
            FloatVector b10 = z, b11 = z;
            FloatVector b20 = z, b21 = z;
            FloatVector b30 = z, b31 = z;
            for (int g = 0; g < 4; g++) {
                long o = 256L * b + 64L * g;
                IntVector q0g = IntVector.fromMemorySegment(IS, w, p0 + o, LE);
                IntVector q1g = IntVector.fromMemorySegment(IS, w, p1 + o, LE);
                IntVector q2g = IntVector.fromMemorySegment(IS, w, p2 + o, LE);
                IntVector q3g = IntVector.fromMemorySegment(IS, w, p3 + o, LE);
                int xc = 32 * b + 8 * g;
                for (int j = 0; j < 8; j++) {
                    int sh = 4 * j;
                    int c = xc + j;
                    FloatVector w0 = q0g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                    FloatVector w1 = q1g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                    FloatVector w2 = q2g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                    FloatVector w3 = q3g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                    FloatVector v = FloatVector.broadcast(FS, x[xi + c]);
                    b00 = w0.fma(v, b00);
                    b10 = w1.fma(v, b10);
                    b20 = w2.fma(v, b20);
                    b30 = w3.fma(v, b30);
                    v = FloatVector.broadcast(FS, x[x1 + c]);
                    b01 = w0.fma(v, b01);
                    b11 = w1.fma(v, b11);
                    b21 = w2.fma(v, b21);
                    b31 = w3.fma(v, b31);
                }
            }
            IntVector e0 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q0 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s0 = e0.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e0.eq(0)).blend(NAN, e0.eq(255))
                    .reinterpretAsFloats();
            b00.fma(s0, FloatVector.fromArray(FS, a, a0)).intoArray(a, a0);
            b01.fma(s0, FloatVector.fromArray(FS, a, a0 + L)).intoArray(a, a0 + L);
            IntVector e1 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q1 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s1 = e1.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e1.eq(0)).blend(NAN, e1.eq(255))
                    .reinterpretAsFloats();
            b10.fma(s1, FloatVector.fromArray(FS, a, a1)).intoArray(a, a1);
            b11.fma(s1, FloatVector.fromArray(FS, a, a1 + L)).intoArray(a, a1 + L);
            IntVector e2 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q2 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s2 = e2.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e2.eq(0)).blend(NAN, e2.eq(255))
                    .reinterpretAsFloats();
            b20.fma(s2, FloatVector.fromArray(FS, a, a2)).intoArray(a, a2);
            b21.fma(s2, FloatVector.fromArray(FS, a, a2 + L)).intoArray(a, a2 + L);
            IntVector e3 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q3 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s3 = e3.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e3.eq(0)).blend(NAN, e3.eq(255))
                    .reinterpretAsFloats();
            b30.fma(s3, FloatVector.fromArray(FS, a, a3)).intoArray(a, a3);
            b31.fma(s3, FloatVector.fromArray(FS, a, a3 + L)).intoArray(a, a3 + L);
        }
    }

    /** Four strips, one token (4 chains and their running sums in registers). */
    static void x1(MemorySegment w, MemorySegment s, long p0, long p1, long p2, long p3, long q0, long q1, long q2,
            long q3, int b0, int b1, float[] x, int xi, int xs, float[] a, int a0, int a1, int a2, int a3) {
        FloatVector z = FloatVector.zero(FS);
        FloatVector c00 = FloatVector.fromArray(FS, a, a0);
        FloatVector c10 = FloatVector.fromArray(FS, a, a1);
        FloatVector c20 = FloatVector.fromArray(FS, a, a2);
        FloatVector c30 = FloatVector.fromArray(FS, a, a3);
        for (int b = b0; b < b1; b++) {
            FloatVector b00 = z;
            FloatVector b10 = z;
            FloatVector b20 = z;
            FloatVector b30 = z;
            for (int g = 0; g < 4; g++) {
                long o = 256L * b + 64L * g;
                IntVector q0g = IntVector.fromMemorySegment(IS, w, p0 + o, LE);
                IntVector q1g = IntVector.fromMemorySegment(IS, w, p1 + o, LE);
                IntVector q2g = IntVector.fromMemorySegment(IS, w, p2 + o, LE);
                IntVector q3g = IntVector.fromMemorySegment(IS, w, p3 + o, LE);
                int xc = 32 * b + 8 * g;
                for (int j = 0; j < 8; j++) {
                    int sh = 4 * j;
                    int c = xc + j;
                    FloatVector w0 = q0g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                    FloatVector w1 = q1g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                    FloatVector w2 = q2g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                    FloatVector w3 = q3g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                    FloatVector v = FloatVector.broadcast(FS, x[xi + c]);
                    b00 = w0.fma(v, b00);
                    b10 = w1.fma(v, b10);
                    b20 = w2.fma(v, b20);
                    b30 = w3.fma(v, b30);
                }
            }
            IntVector e0 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q0 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s0 = e0.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e0.eq(0)).blend(NAN, e0.eq(255))
                    .reinterpretAsFloats();
            c00 = b00.fma(s0, c00);
            IntVector e1 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q1 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s1 = e1.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e1.eq(0)).blend(NAN, e1.eq(255))
                    .reinterpretAsFloats();
            c10 = b10.fma(s1, c10);
            IntVector e2 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q2 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s2 = e2.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e2.eq(0)).blend(NAN, e2.eq(255))
                    .reinterpretAsFloats();
            c20 = b20.fma(s2, c20);
            IntVector e3 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q3 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s3 = e3.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e3.eq(0)).blend(NAN, e3.eq(255))
                    .reinterpretAsFloats();
            c30 = b30.fma(s3, c30);
        }
        c00.intoArray(a, a0);
        c10.intoArray(a, a1);
        c20.intoArray(a, a2);
        c30.intoArray(a, a3);
    }

    /**
     * Eight strips, one token: 8 chains per code load and broadcast, twice x1's, so a strip of a short row (16 KiB at
     * 2048 columns) restarts its stream half as often per byte. The running sums go through a as in x4 (16 more
     * registers would spill); each strip's chain is x1's, so the bits are too. Cold 4096x2048, one thread: 1.21-1.31x
     * x1 (bench/LLAMACPP.md, 2026-12-04).
     */
    static void x1s8(MemorySegment w, MemorySegment s, long[] off, long[] soff, int j0, int b0, int b1, float[] x,
            int xi, float[] a, int[] slot, int tl) {
        long p0 = off[j0], q0 = soff[j0];
        long p1 = off[j0 + 1], q1 = soff[j0 + 1];
        long p2 = off[j0 + 2], q2 = soff[j0 + 2];
        long p3 = off[j0 + 3], q3 = soff[j0 + 3];
        long p4 = off[j0 + 4], q4 = soff[j0 + 4];
        long p5 = off[j0 + 5], q5 = soff[j0 + 5];
        long p6 = off[j0 + 6], q6 = soff[j0 + 6];
        long p7 = off[j0 + 7], q7 = soff[j0 + 7];
        int a0 = slot[j0] + tl;
        int a1 = slot[j0 + 1] + tl;
        int a2 = slot[j0 + 2] + tl;
        int a3 = slot[j0 + 3] + tl;
        int a4 = slot[j0 + 4] + tl;
        int a5 = slot[j0 + 5] + tl;
        int a6 = slot[j0 + 6] + tl;
        int a7 = slot[j0 + 7] + tl;
        FloatVector z = FloatVector.zero(FS);
        for (int b = b0; b < b1; b++) {
            FloatVector b00 = z;
            FloatVector b10 = z;
            FloatVector b20 = z;
            FloatVector b30 = z;
            FloatVector b40 = z;
            FloatVector b50 = z;
            FloatVector b60 = z;
            FloatVector b70 = z;
            for (int g = 0; g < 4; g++) {
                long o = 256L * b + 64L * g;
                IntVector q0g = IntVector.fromMemorySegment(IS, w, p0 + o, LE);
                IntVector q1g = IntVector.fromMemorySegment(IS, w, p1 + o, LE);
                IntVector q2g = IntVector.fromMemorySegment(IS, w, p2 + o, LE);
                IntVector q3g = IntVector.fromMemorySegment(IS, w, p3 + o, LE);
                IntVector q4g = IntVector.fromMemorySegment(IS, w, p4 + o, LE);
                IntVector q5g = IntVector.fromMemorySegment(IS, w, p5 + o, LE);
                IntVector q6g = IntVector.fromMemorySegment(IS, w, p6 + o, LE);
                IntVector q7g = IntVector.fromMemorySegment(IS, w, p7 + o, LE);
                int xc = 32 * b + 8 * g;
                for (int j = 0; j < 8; j++) {
                    int sh = 4 * j;
                    FloatVector v = FloatVector.broadcast(FS, x[xi + xc + j]);
                    b00 = q0g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats().fma(v, b00);
                    b10 = q1g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats().fma(v, b10);
                    b20 = q2g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats().fma(v, b20);
                    b30 = q3g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats().fma(v, b30);
                    b40 = q4g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats().fma(v, b40);
                    b50 = q5g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats().fma(v, b50);
                    b60 = q6g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats().fma(v, b60);
                    b70 = q7g.lanewise(LSHR, sh).selectFrom(FP4_A, FP4_B).reinterpretAsFloats().fma(v, b70);
                }
            }
            IntVector e0 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q0 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s0 = e0.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e0.eq(0)).blend(NAN, e0.eq(255))
                    .reinterpretAsFloats();
            b00.fma(s0, FloatVector.fromArray(FS, a, a0)).intoArray(a, a0);
            IntVector e1 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q1 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s1 = e1.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e1.eq(0)).blend(NAN, e1.eq(255))
                    .reinterpretAsFloats();
            b10.fma(s1, FloatVector.fromArray(FS, a, a1)).intoArray(a, a1);
            IntVector e2 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q2 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s2 = e2.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e2.eq(0)).blend(NAN, e2.eq(255))
                    .reinterpretAsFloats();
            b20.fma(s2, FloatVector.fromArray(FS, a, a2)).intoArray(a, a2);
            IntVector e3 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q3 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s3 = e3.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e3.eq(0)).blend(NAN, e3.eq(255))
                    .reinterpretAsFloats();
            b30.fma(s3, FloatVector.fromArray(FS, a, a3)).intoArray(a, a3);
            IntVector e4 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q4 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s4 = e4.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e4.eq(0)).blend(NAN, e4.eq(255))
                    .reinterpretAsFloats();
            b40.fma(s4, FloatVector.fromArray(FS, a, a4)).intoArray(a, a4);
            IntVector e5 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q5 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s5 = e5.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e5.eq(0)).blend(NAN, e5.eq(255))
                    .reinterpretAsFloats();
            b50.fma(s5, FloatVector.fromArray(FS, a, a5)).intoArray(a, a5);
            IntVector e6 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q6 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s6 = e6.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e6.eq(0)).blend(NAN, e6.eq(255))
                    .reinterpretAsFloats();
            b60.fma(s6, FloatVector.fromArray(FS, a, a6)).intoArray(a, a6);
            IntVector e7 = ((IntVector) ByteVector.fromMemorySegment(BS, s, q7 + 16L * b, LE)
                    .convertShape(B2I, IS, 0)).and(0xff);
            FloatVector s7 = e7.lanewise(LSHL, 23).blend(SUBNORMAL_MIN, e7.eq(0)).blend(NAN, e7.eq(255))
                    .reinterpretAsFloats();
            b70.fma(s7, FloatVector.fromArray(FS, a, a7)).intoArray(a, a7);
        }
    }
}
