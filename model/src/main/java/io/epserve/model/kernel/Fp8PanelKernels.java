package io.epserve.model.kernel;

import static io.epserve.model.kernel.TileKernels.BS;
import static io.epserve.model.kernel.TileKernels.E8M0;
import static io.epserve.model.kernel.TileKernels.FS;
import static io.epserve.model.kernel.TileKernels.IS;
import static io.epserve.model.kernel.TileKernels.L;
import static jdk.incubator.vector.VectorOperators.B2I;
import static jdk.incubator.vector.VectorOperators.LSHL;

import io.epserve.model.weights.Fp8Matrix;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;

/**
 * The FP8 kernels of {@link FastKernels}: a panelled {@link Fp8Matrix} against a tile of up to 16 tokens, lanes =
 * rows. A strip is L consecutive rows of a 16-row panel (the whole panel with 512-bit vectors, half of it with
 * 256-bit ones); column c of a strip is one load of L codes, decoded once and multiplied by one broadcast activation
 * per token, so a kernel of S strips and T tokens keeps S * T accumulators in registers and loads one activation
 * per S FMAs. The former kernels (lanes = columns of one row, a dot product per row and token) loaded one activation
 * vector per FMA and were bound by the load ports: 8 tokens took 1.5-1.9x, 1 token 1.3-1.6x the time of this layout
 * (bench/README, nineteenth and twentieth passes).
 *
 * <h2>Numerics and batch invariance</h2>
 * Every output (row r, token t) is its own chain, whatever the kernel, tile, strip group, row range or thread:
 * <pre>
 *   a = +0
 *   for each 128-column block k:  b = +0;  for c in the block, in order:  b = fma(w[r][c], x[t][c], b)
 *                                 a = fma(b, scale[r / 128][k], a)
 * </pre>
 * with w[r][c] the exact e4m3 value (the code's bits moved into a float 120 exponents down, then times 2^120: exact,
 * subnormal codes included) and a kept in the scratch between blocks (a store and reload is exact). The kernels
 * differ only in how many such chains they interleave, so a token gets the same bits alone or in a tile of 16.
 *
 * <h2>Decoding</h2>
 * The sign-extended code shifted left by 20 and masked with 0x87F00000 is a float whose sign is the code's and whose
 * exponent and mantissa fields are the code's, i.e. the e4m3 value times 2^-120 (e4m3 subnormals land on float
 * subnormals); one multiply by 2^120 gives the exact value: 4 operations per L weights, shared by every token of the
 * kernel. Subnormal codes (exponent field 0, mantissa not 0) take no other path: on the AMD EPYC hosts measured,
 * uniformly random codes (5.5 % subnormal) took 1.11x the time of the same codes without subnormals (2048x1024,
 * 8 tokens), and checkpoint-like codes hold about 1 in 10^4. A host that takes a microcode assist for a subnormal
 * multiply input (some Intel cores) would run matrices full of them slowly, never wrongly. The NaN codes 0x7F/0xFF
 * decode as +-480: checkpoints do not contain them.
 *
 * <p>Kernel methods are written out per shape (x8, x4, x2: 3 strips; x1: 6 strips, enough independent chains to
 * cover the FMA latency) with no helper calls in them, for the reasons given in {@link TileKernels} ("Code shape").
 */
final class Fp8PanelKernels {
    private Fp8PanelKernels() {}

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** Strips per kernel call: the largest group size, and the multiple chunks are made of. */
    static final int GROUP_STRIPS = 6;
    /** Accumulator slots per strip: one vector per token of a tile of up to 16. */
    static final int SLOT = FastKernels.MAX_TILE * L;

    /** Byte offset of strip k's first column in the panelled codes. */
    static long stripOffset(int k, int cols) {
        int row = k * L;
        return (long) (row / Fp8Matrix.PANEL) * Fp8Matrix.PANEL * cols + row % Fp8Matrix.PANEL;
    }

    /**
     * Strips [k0, k1) of w against tokens [0, n) of the tile whose token t, column c is x[xt + t * xs + c]; strip
     * k0 + j accumulates token t in a[ab + j * SLOT + t * L ..]. off, sc and slot are scratch of at least
     * (k1 - k0) + GROUP_STRIPS entries; a needs ab + (k1 - k0 + 1) * SLOT floats (the last slot takes the results of
     * the repeated strips that pad a group).
     */
    static void chunk(MemorySegment w, MemorySegment s, int cols, int scaleCols, int k0, int k1, int n, float[] x,
            int xt, int xs, float[] a, int ab, long[] off, float[] sc, int[] slot) {
        int m = k1 - k0;
        int junk = ab + m * SLOT;
        for (int c0 = 0, blk = 0; c0 < cols; c0 += Fp8Matrix.BLOCK, blk++) {
            int nc = Math.min(Fp8Matrix.BLOCK, cols - c0);
            for (int j = 0; j < m + GROUP_STRIPS; j++) {
                int k = k0 + Math.min(j, m - 1);
                off[j] = stripOffset(k, cols) + 16L * c0;
                sc[j] = E8M0[s.get(ValueLayout.JAVA_BYTE, (long) (k * L / Fp8Matrix.BLOCK) * scaleCols + blk) & 0xff];
                slot[j] = j < m ? ab + j * SLOT : junk;
            }
            int xc = xt + c0;
            for (int t = 0; t < n; ) {
                int r = n - t;
                int tl = t * L;
                int xi = xc + t * xs;
                if (r >= 8) {
                    for (int j = 0; j < m; j += 3) {
                        x8(w, off[j], off[j + 1], off[j + 2], nc, x, xi, xs, sc[j], sc[j + 1], sc[j + 2], a,
                                slot[j] + tl, slot[j + 1] + tl, slot[j + 2] + tl);
                    }
                    t += 8;
                } else if (r >= 4) {
                    for (int j = 0; j < m; j += 3) {
                        x4(w, off[j], off[j + 1], off[j + 2], nc, x, xi, xs, sc[j], sc[j + 1], sc[j + 2], a,
                                slot[j] + tl, slot[j + 1] + tl, slot[j + 2] + tl);
                    }
                    t += 4;
                } else if (r >= 2) {
                    for (int j = 0; j < m; j += 3) {
                        x2(w, off[j], off[j + 1], off[j + 2], nc, x, xi, xs, sc[j], sc[j + 1], sc[j + 2], a,
                                slot[j] + tl, slot[j + 1] + tl, slot[j + 2] + tl);
                    }
                    t += 2;
                } else {
                    for (int j = 0; j < m; j += 6) {
                        x1(w, off[j], off[j + 1], off[j + 2], off[j + 3], off[j + 4], off[j + 5], nc, x, xi, xs,
                                sc[j], sc[j + 1], sc[j + 2], sc[j + 3], sc[j + 4], sc[j + 5], a, slot[j] + tl,
                                slot[j + 1] + tl, slot[j + 2] + tl, slot[j + 3] + tl, slot[j + 4] + tl,
                                slot[j + 5] + tl);
                    }
                    t += 1;
                }
            }
        }
    }

    /** Three strips, eight tokens: 24 chains in registers, one broadcast per token and column feeds 3 FMAs. */
    static void x8(MemorySegment w, long p0, long p1, long p2, int n, float[] x, int xi, int xs, float s0, float s1,
            float s2, float[] a, int a0, int a1, int a2) {
        int x1 = xi + xs;
        int x2 = xi + 2 * xs;
        int x3 = xi + 3 * xs;
        int x4 = xi + 4 * xs;
        int x5 = xi + 5 * xs;
        int x6 = xi + 6 * xs;
        int x7 = xi + 7 * xs;
        FloatVector z = FloatVector.zero(FS);
        FloatVector b00 = z, b01 = z, b02 = z, b03 = z, b04 = z, b05 = z, b06 = z, b07 = z;
        FloatVector b10 = z, b11 = z, b12 = z, b13 = z, b14 = z, b15 = z, b16 = z, b17 = z;
        FloatVector b20 = z, b21 = z, b22 = z, b23 = z, b24 = z, b25 = z, b26 = z, b27 = z;
        for (int c = 0; c < n; c++) {
            long o = 16L * c;
            FloatVector w0 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p0 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector w1 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p1 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector w2 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p2 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector xb = FloatVector.broadcast(FS, x[xi + c]);
            b00 = w0.fma(xb, b00);
            b10 = w1.fma(xb, b10);
            b20 = w2.fma(xb, b20);
            xb = FloatVector.broadcast(FS, x[x1 + c]);
            b01 = w0.fma(xb, b01);
            b11 = w1.fma(xb, b11);
            b21 = w2.fma(xb, b21);
            xb = FloatVector.broadcast(FS, x[x2 + c]);
            b02 = w0.fma(xb, b02);
            b12 = w1.fma(xb, b12);
            b22 = w2.fma(xb, b22);
            xb = FloatVector.broadcast(FS, x[x3 + c]);
            b03 = w0.fma(xb, b03);
            b13 = w1.fma(xb, b13);
            b23 = w2.fma(xb, b23);
            xb = FloatVector.broadcast(FS, x[x4 + c]);
            b04 = w0.fma(xb, b04);
            b14 = w1.fma(xb, b14);
            b24 = w2.fma(xb, b24);
            xb = FloatVector.broadcast(FS, x[x5 + c]);
            b05 = w0.fma(xb, b05);
            b15 = w1.fma(xb, b15);
            b25 = w2.fma(xb, b25);
            xb = FloatVector.broadcast(FS, x[x6 + c]);
            b06 = w0.fma(xb, b06);
            b16 = w1.fma(xb, b16);
            b26 = w2.fma(xb, b26);
            xb = FloatVector.broadcast(FS, x[x7 + c]);
            b07 = w0.fma(xb, b07);
            b17 = w1.fma(xb, b17);
            b27 = w2.fma(xb, b27);
        }
        FloatVector sv0 = FloatVector.broadcast(FS, s0);
        b00.fma(sv0, FloatVector.fromArray(FS, a, a0)).intoArray(a, a0);
        b01.fma(sv0, FloatVector.fromArray(FS, a, a0 + L)).intoArray(a, a0 + L);
        b02.fma(sv0, FloatVector.fromArray(FS, a, a0 + 2 * L)).intoArray(a, a0 + 2 * L);
        b03.fma(sv0, FloatVector.fromArray(FS, a, a0 + 3 * L)).intoArray(a, a0 + 3 * L);
        b04.fma(sv0, FloatVector.fromArray(FS, a, a0 + 4 * L)).intoArray(a, a0 + 4 * L);
        b05.fma(sv0, FloatVector.fromArray(FS, a, a0 + 5 * L)).intoArray(a, a0 + 5 * L);
        b06.fma(sv0, FloatVector.fromArray(FS, a, a0 + 6 * L)).intoArray(a, a0 + 6 * L);
        b07.fma(sv0, FloatVector.fromArray(FS, a, a0 + 7 * L)).intoArray(a, a0 + 7 * L);
        FloatVector sv1 = FloatVector.broadcast(FS, s1);
        b10.fma(sv1, FloatVector.fromArray(FS, a, a1)).intoArray(a, a1);
        b11.fma(sv1, FloatVector.fromArray(FS, a, a1 + L)).intoArray(a, a1 + L);
        b12.fma(sv1, FloatVector.fromArray(FS, a, a1 + 2 * L)).intoArray(a, a1 + 2 * L);
        b13.fma(sv1, FloatVector.fromArray(FS, a, a1 + 3 * L)).intoArray(a, a1 + 3 * L);
        b14.fma(sv1, FloatVector.fromArray(FS, a, a1 + 4 * L)).intoArray(a, a1 + 4 * L);
        b15.fma(sv1, FloatVector.fromArray(FS, a, a1 + 5 * L)).intoArray(a, a1 + 5 * L);
        b16.fma(sv1, FloatVector.fromArray(FS, a, a1 + 6 * L)).intoArray(a, a1 + 6 * L);
        b17.fma(sv1, FloatVector.fromArray(FS, a, a1 + 7 * L)).intoArray(a, a1 + 7 * L);
        FloatVector sv2 = FloatVector.broadcast(FS, s2);
        b20.fma(sv2, FloatVector.fromArray(FS, a, a2)).intoArray(a, a2);
        b21.fma(sv2, FloatVector.fromArray(FS, a, a2 + L)).intoArray(a, a2 + L);
        b22.fma(sv2, FloatVector.fromArray(FS, a, a2 + 2 * L)).intoArray(a, a2 + 2 * L);
        b23.fma(sv2, FloatVector.fromArray(FS, a, a2 + 3 * L)).intoArray(a, a2 + 3 * L);
        b24.fma(sv2, FloatVector.fromArray(FS, a, a2 + 4 * L)).intoArray(a, a2 + 4 * L);
        b25.fma(sv2, FloatVector.fromArray(FS, a, a2 + 5 * L)).intoArray(a, a2 + 5 * L);
        b26.fma(sv2, FloatVector.fromArray(FS, a, a2 + 6 * L)).intoArray(a, a2 + 6 * L);
        b27.fma(sv2, FloatVector.fromArray(FS, a, a2 + 7 * L)).intoArray(a, a2 + 7 * L);
    }

    /** Three strips, four tokens (12 chains). */
    static void x4(MemorySegment w, long p0, long p1, long p2, int n, float[] x, int xi, int xs, float s0, float s1,
            float s2, float[] a, int a0, int a1, int a2) {
        int x1 = xi + xs;
        int x2 = xi + 2 * xs;
        int x3 = xi + 3 * xs;
        FloatVector z = FloatVector.zero(FS);
        FloatVector b00 = z, b01 = z, b02 = z, b03 = z;
        FloatVector b10 = z, b11 = z, b12 = z, b13 = z;
        FloatVector b20 = z, b21 = z, b22 = z, b23 = z;
        for (int c = 0; c < n; c++) {
            long o = 16L * c;
            FloatVector w0 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p0 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector w1 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p1 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector w2 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p2 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector xb = FloatVector.broadcast(FS, x[xi + c]);
            b00 = w0.fma(xb, b00);
            b10 = w1.fma(xb, b10);
            b20 = w2.fma(xb, b20);
            xb = FloatVector.broadcast(FS, x[x1 + c]);
            b01 = w0.fma(xb, b01);
            b11 = w1.fma(xb, b11);
            b21 = w2.fma(xb, b21);
            xb = FloatVector.broadcast(FS, x[x2 + c]);
            b02 = w0.fma(xb, b02);
            b12 = w1.fma(xb, b12);
            b22 = w2.fma(xb, b22);
            xb = FloatVector.broadcast(FS, x[x3 + c]);
            b03 = w0.fma(xb, b03);
            b13 = w1.fma(xb, b13);
            b23 = w2.fma(xb, b23);
        }
        FloatVector sv0 = FloatVector.broadcast(FS, s0);
        b00.fma(sv0, FloatVector.fromArray(FS, a, a0)).intoArray(a, a0);
        b01.fma(sv0, FloatVector.fromArray(FS, a, a0 + L)).intoArray(a, a0 + L);
        b02.fma(sv0, FloatVector.fromArray(FS, a, a0 + 2 * L)).intoArray(a, a0 + 2 * L);
        b03.fma(sv0, FloatVector.fromArray(FS, a, a0 + 3 * L)).intoArray(a, a0 + 3 * L);
        FloatVector sv1 = FloatVector.broadcast(FS, s1);
        b10.fma(sv1, FloatVector.fromArray(FS, a, a1)).intoArray(a, a1);
        b11.fma(sv1, FloatVector.fromArray(FS, a, a1 + L)).intoArray(a, a1 + L);
        b12.fma(sv1, FloatVector.fromArray(FS, a, a1 + 2 * L)).intoArray(a, a1 + 2 * L);
        b13.fma(sv1, FloatVector.fromArray(FS, a, a1 + 3 * L)).intoArray(a, a1 + 3 * L);
        FloatVector sv2 = FloatVector.broadcast(FS, s2);
        b20.fma(sv2, FloatVector.fromArray(FS, a, a2)).intoArray(a, a2);
        b21.fma(sv2, FloatVector.fromArray(FS, a, a2 + L)).intoArray(a, a2 + L);
        b22.fma(sv2, FloatVector.fromArray(FS, a, a2 + 2 * L)).intoArray(a, a2 + 2 * L);
        b23.fma(sv2, FloatVector.fromArray(FS, a, a2 + 3 * L)).intoArray(a, a2 + 3 * L);
    }

    /** Three strips, two tokens (6 chains). */
    static void x2(MemorySegment w, long p0, long p1, long p2, int n, float[] x, int xi, int xs, float s0, float s1,
            float s2, float[] a, int a0, int a1, int a2) {
        int x1 = xi + xs;
        FloatVector z = FloatVector.zero(FS);
        FloatVector b00 = z, b01 = z;
        FloatVector b10 = z, b11 = z;
        FloatVector b20 = z, b21 = z;
        for (int c = 0; c < n; c++) {
            long o = 16L * c;
            FloatVector w0 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p0 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector w1 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p1 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector w2 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p2 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector v0 = FloatVector.broadcast(FS, x[xi + c]);
            b00 = w0.fma(v0, b00);
            b10 = w1.fma(v0, b10);
            b20 = w2.fma(v0, b20);
            FloatVector v1 = FloatVector.broadcast(FS, x[x1 + c]);
            b01 = w0.fma(v1, b01);
            b11 = w1.fma(v1, b11);
            b21 = w2.fma(v1, b21);
        }
        FloatVector sv0 = FloatVector.broadcast(FS, s0);
        b00.fma(sv0, FloatVector.fromArray(FS, a, a0)).intoArray(a, a0);
        b01.fma(sv0, FloatVector.fromArray(FS, a, a0 + L)).intoArray(a, a0 + L);
        FloatVector sv1 = FloatVector.broadcast(FS, s1);
        b10.fma(sv1, FloatVector.fromArray(FS, a, a1)).intoArray(a, a1);
        b11.fma(sv1, FloatVector.fromArray(FS, a, a1 + L)).intoArray(a, a1 + L);
        FloatVector sv2 = FloatVector.broadcast(FS, s2);
        b20.fma(sv2, FloatVector.fromArray(FS, a, a2)).intoArray(a, a2);
        b21.fma(sv2, FloatVector.fromArray(FS, a, a2 + L)).intoArray(a, a2 + L);
    }

    /** Six strips, one token (6 chains; with fewer the FMA latency, not the loads, sets the pace). */
    static void x1(MemorySegment w, long p0, long p1, long p2, long p3, long p4, long p5, int n, float[] x, int xi,
            int xs, float s0, float s1, float s2, float s3, float s4, float s5, float[] a, int a0, int a1, int a2,
            int a3, int a4, int a5) {
        FloatVector z = FloatVector.zero(FS);
        FloatVector b00 = z;
        FloatVector b10 = z;
        FloatVector b20 = z;
        FloatVector b30 = z;
        FloatVector b40 = z;
        FloatVector b50 = z;
        for (int c = 0; c < n; c++) {
            long o = 16L * c;
            FloatVector w0 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p0 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector w1 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p1 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector w2 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p2 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector w3 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p3 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector w4 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p4 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector w5 = ((IntVector) ByteVector.fromMemorySegment(BS, w, p5 + o, LE)
                    .convertShape(B2I, IS, 0)).lanewise(LSHL, 20).and(0x87f00000).reinterpretAsFloats()
                    .mul(0x1p120f);
            FloatVector v0 = FloatVector.broadcast(FS, x[xi + c]);
            b00 = w0.fma(v0, b00);
            b10 = w1.fma(v0, b10);
            b20 = w2.fma(v0, b20);
            b30 = w3.fma(v0, b30);
            b40 = w4.fma(v0, b40);
            b50 = w5.fma(v0, b50);
        }
        FloatVector sv0 = FloatVector.broadcast(FS, s0);
        b00.fma(sv0, FloatVector.fromArray(FS, a, a0)).intoArray(a, a0);
        FloatVector sv1 = FloatVector.broadcast(FS, s1);
        b10.fma(sv1, FloatVector.fromArray(FS, a, a1)).intoArray(a, a1);
        FloatVector sv2 = FloatVector.broadcast(FS, s2);
        b20.fma(sv2, FloatVector.fromArray(FS, a, a2)).intoArray(a, a2);
        FloatVector sv3 = FloatVector.broadcast(FS, s3);
        b30.fma(sv3, FloatVector.fromArray(FS, a, a3)).intoArray(a, a3);
        FloatVector sv4 = FloatVector.broadcast(FS, s4);
        b40.fma(sv4, FloatVector.fromArray(FS, a, a4)).intoArray(a, a4);
        FloatVector sv5 = FloatVector.broadcast(FS, s5);
        b50.fma(sv5, FloatVector.fromArray(FS, a, a5)).intoArray(a, a5);
    }
}
