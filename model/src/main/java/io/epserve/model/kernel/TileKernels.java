package io.epserve.model.kernel;

import static jdk.incubator.vector.VectorOperators.ADD;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.LSHR;

import io.epserve.model.format.E8m0;
import io.epserve.model.format.Fp4E2m1;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Register-blocked inner kernels of {@link FastKernels}: one weight row, columns [c0, c1), against a tile of 1..16
 * tokens, float32 accumulation. Each call adds its partial sums to the tile's L-lane accumulators in
 * {@code acc[ao + t*L ..]} (one vector per token), so a row can be processed in column panels.
 *
 * <p>Each tile size is its own hand-unrolled method because C2 keeps vectors in registers only when they are
 * plain locals: an array of accumulators would be boxed. The methods are mechanical variations of one pattern
 * (generated, then kept as source).
 *
 * <p>Decoding (written out inline in every tile):
 * <ul>
 * <li>FP4: an int lane holds 8 nibbles; nibble j of every lane is {@code (q >>> 4j).selectFrom(FP4_A, FP4_B)}.
 *     The two-table selectFrom wraps the index (index & (2L-1)) instead of range-checking it, so it compiles to
 *     vpand + vpermi2d and the bits above the nibble can stay in the index.
 * <li>FP4 scales: lane i of a chunk belongs to 32-block i/4; the chunk's L/4 scale bytes are broadcast, shifted
 *     per lane and moved into the float exponent, giving 2^(e-127). Codes 0 and 0xFF cannot be expressed that
 *     way (they would read as 0 and +inf); FastKernels sends rows holding them to a scalar path.
 * <li>FP8: the e4m3 magnitude bits go to float bits 20..26 and the exponent is rebiased by +120. Subnormal codes
 *     (exponent field 0) get bias 121 and then lose the implicit 2^-6, which is exact. This replaces the usual
 *     "multiply by 2^120" trick because a multiply with a subnormal input costs ~200x on this CPU. The NaN codes
 *     0x7F/0xFF decode as +-480: checkpoints do not contain them.
 * </ul>
 *
 * <p>Code shape, because C2 is sensitive to it: only the token dimension is unrolled by hand (accumulators must be
 * plain locals to live in registers); the 8 nibble positions are a counted loop that C2 unrolls after inlining.
 * Unrolling everything by hand made the parse-time graph exceed NodeCountInliningCutoff, and the calls C2 then
 * refused to inline boxed a vector per call. Helpers are likewise written out inline rather than called.
 * Accumulators start from {@code FloatVector.zero(FS)}, never from a static final vector: C2 cannot unbox a
 * constant vector object at a loop phi and would then allocate a box for every accumulator on every iteration
 * (measured: 5-10x slower).
 *
 * <p>Activations ({@code x}, prepared by FastKernels#prepare): an aligned off-heap segment; the tile starts at byte
 * {@code xo} and column group g (L columns) of token t is at float offset {@code g*tile*L + t*L}, so a kernel
 * reads one contiguous stream through one base pointer with constant offsets. Within each weight chunk the
 * columns are permuted so that lane i of the j-th decoded weight vector meets lane i of the j-th activation vector
 * (see {@link FastKernels#permute}). Only 256- and 512-bit species are supported: the FP4 decode needs two int
 * vectors to hold the 16-entry table.
 *
 * <p>Tiles of up to 8 tokens sum each chunk (or 128-column block) per token and apply the scale once with an fma;
 * 12 and 16 would need two registers per token for that, so they multiply the decoded weights by the scale
 * instead (exact: a power of two) and keep one accumulator per token.
 */
final class TileKernels {
    private TileKernels() {}

    static final VectorSpecies<Float> FS = FloatVector.SPECIES_PREFERRED;
    static final int L = FS.length();
    static final VectorSpecies<Integer> IS = VectorSpecies.of(int.class, FS.vectorShape());
    /** Bytes that widen to one int vector (16 bytes for 512-bit, 8 for 256-bit). */
    static final VectorSpecies<Byte> BS = VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, L * 8)));
    static final boolean SUPPORTED = L == 8 || L == 16;

    /** Weights per FP4 chunk: one int vector of packed nibbles = L lanes x 8 nibbles. */
    static final int FP4_CHUNK = 8 * L;
    /** Weights per BF16 chunk: one int vector = L lanes x 2 bf16. */
    static final int BF16_CHUNK = 2 * L;

    static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    static final ValueLayout.OfInt INT_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(LE);
    static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);

    /** E8M0 code -> float scale (0 -> 2^-127 subnormal, 0xFF -> NaN), exactly as the reference. */
    static final float[] E8M0 = new float[256];

    /**
     * The FP4 table as fp32 bit patterns, split over two vectors for the two-table selectFrom. That form wraps the
     * index (index & (2L-1)) instead of range-checking it, so it compiles to one vpermi2d and the bits above the
     * nibble can stay in the index: for L = 16 both halves are the full 16-entry table (bit 4 is ignored by
     * repetition); for L = 8 they are codes 0..7 and 8..15.
     */
    static final IntVector FP4_A, FP4_B;
    /** Lane i of an FP4 chunk belongs to 32-block i/4 of the chunk: its scale byte sits at bit 8*(i/4). */
    static final IntVector SCALE_SHIFT;

    static {
        for (int c = 0; c < 256; c++) {
            E8M0[c] = E8m0.toFloat(c);
        }
        int[] a = new int[L];
        int[] b = new int[L];
        int[] sh = new int[L];
        for (int i = 0; i < L; i++) {
            a[i] = Float.floatToRawIntBits(Fp4E2m1.toFloat(i));
            b[i] = Float.floatToRawIntBits(Fp4E2m1.toFloat(L == 16 ? i : i + 8));
            sh[i] = 8 * (i / 4);
        }
        FP4_A = IntVector.fromArray(IS, a, 0);
        FP4_B = IntVector.fromArray(IS, b, 0);
        SCALE_SHIFT = IntVector.fromArray(IS, sh, 0);
    }

    /** Round each lane to bf16 (nearest-even), as float32; finite inputs only. */
    static FloatVector bf16(FloatVector v) {
        IntVector b = v.reinterpretAsInts();
        return b.add(b.lanewise(LSHR, 16).and(1).add(0x7fff)).and(0xffff0000).reinterpretAsFloats();
    }

    /**
     * e4m3 nearest-even of lanes already clamped to +-448. Adding and subtracting M = 2^(max(e, -6) + 20) rounds
     * |v| to a multiple of 2^(max(e,-6) - 3), which is the e4m3 quantum at v's binade (subnormals included).
     */
    static FloatVector e4m3(FloatVector v) {
        IntVector b = v.reinterpretAsInts();
        FloatVector m = b.and(0x7f800000).max(121 << 23).add(20 << 23).reinterpretAsFloats();
        FloatVector r = v.abs().add(m).sub(m);
        return r.reinterpretAsInts().or(b.and(0x80000000)).reinterpretAsFloats();
    }


    static void fp4x(int tile, MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo,
                      float[] acc, int ao) {
        switch (tile) {
            case 1 -> fp4x1(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 2 -> fp4x2(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 3 -> fp4x3(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 4 -> fp4x4(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 5 -> fp4x5(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 6 -> fp4x6(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 7 -> fp4x7(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 8 -> fp4x8(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 12 -> fp4x12(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 16 -> fp4x16(w, wo, s, so, c0, c1, x, xo, acc, ao);
            default -> throw new IllegalArgumentException("no fp4x tile of " + tile);
        }
    }

    /** FP4, per-chunk sums, scale applied once per chunk, 1 token. */
    static void fp4x1(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector e0 = FloatVector.zero(FS);
        for (int c = c0; c < c1; c += FP4_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + (c >>> 1), LE);
            int sb = L == 16 ? s.get(INT_LE, so + (c >>> 5)) : s.get(SHORT_LE, so + (c >>> 5)) & 0xffff;
            FloatVector sv = IntVector.broadcast(IS, sb).lanewise(LSHR, SCALE_SHIFT).and(0xff).lanewise(LSHL, 23)
                    .reinterpretAsFloats();
            long xc = xo + 4L * 1 * c;
            FloatVector b0 = FloatVector.zero(FS), o0 = FloatVector.zero(FS);
            for (int j = 0; j < 8; j += 2) {
                FloatVector d = q.lanewise(LSHR, 4 * j).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 1 * L + 0 * L), LE), b0);
                d = q.lanewise(LSHR, 4 * j + 4).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                o0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * ((j + 1) * 1 * L + 0 * L), LE), o0);
            }
            a0 = b0.fma(sv, a0);
            e0 = o0.fma(sv, e0);
        }
        a0.add(e0).intoArray(acc, ao + 0 * L);
    }

    /** FP4, per-chunk sums, scale applied once per chunk, 2 tokens. */
    static void fp4x2(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector e0 = FloatVector.zero(FS), e1 = FloatVector.zero(FS);
        for (int c = c0; c < c1; c += FP4_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + (c >>> 1), LE);
            int sb = L == 16 ? s.get(INT_LE, so + (c >>> 5)) : s.get(SHORT_LE, so + (c >>> 5)) & 0xffff;
            FloatVector sv = IntVector.broadcast(IS, sb).lanewise(LSHR, SCALE_SHIFT).and(0xff).lanewise(LSHL, 23)
                    .reinterpretAsFloats();
            long xc = xo + 4L * 2 * c;
            FloatVector b0 = FloatVector.zero(FS), b1 = FloatVector.zero(FS), o0 = FloatVector.zero(FS), o1 = FloatVector.zero(FS);
            for (int j = 0; j < 8; j += 2) {
                FloatVector d = q.lanewise(LSHR, 4 * j).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 2 * L + 0 * L), LE), b0);
                b1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 2 * L + 1 * L), LE), b1);
                d = q.lanewise(LSHR, 4 * j + 4).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                o0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * ((j + 1) * 2 * L + 0 * L), LE), o0);
                o1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * ((j + 1) * 2 * L + 1 * L), LE), o1);
            }
            a0 = b0.fma(sv, a0);
            e0 = o0.fma(sv, e0);
            a1 = b1.fma(sv, a1);
            e1 = o1.fma(sv, e1);
        }
        a0.add(e0).intoArray(acc, ao + 0 * L);
        a1.add(e1).intoArray(acc, ao + 1 * L);
    }

    /** FP4, per-chunk sums, scale applied once per chunk, 3 tokens. */
    static void fp4x3(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        for (int c = c0; c < c1; c += FP4_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + (c >>> 1), LE);
            int sb = L == 16 ? s.get(INT_LE, so + (c >>> 5)) : s.get(SHORT_LE, so + (c >>> 5)) & 0xffff;
            FloatVector sv = IntVector.broadcast(IS, sb).lanewise(LSHR, SCALE_SHIFT).and(0xff).lanewise(LSHL, 23)
                    .reinterpretAsFloats();
            long xc = xo + 4L * 3 * c;
            FloatVector b0 = FloatVector.zero(FS), b1 = FloatVector.zero(FS), b2 = FloatVector.zero(FS);
            for (int j = 0; j < 8; j += 1) {
                FloatVector d = q.lanewise(LSHR, 4 * j).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 3 * L + 0 * L), LE), b0);
                b1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 3 * L + 1 * L), LE), b1);
                b2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 3 * L + 2 * L), LE), b2);
            }
            a0 = b0.fma(sv, a0);
            a1 = b1.fma(sv, a1);
            a2 = b2.fma(sv, a2);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
    }

    /** FP4, per-chunk sums, scale applied once per chunk, 4 tokens. */
    static void fp4x4(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        for (int c = c0; c < c1; c += FP4_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + (c >>> 1), LE);
            int sb = L == 16 ? s.get(INT_LE, so + (c >>> 5)) : s.get(SHORT_LE, so + (c >>> 5)) & 0xffff;
            FloatVector sv = IntVector.broadcast(IS, sb).lanewise(LSHR, SCALE_SHIFT).and(0xff).lanewise(LSHL, 23)
                    .reinterpretAsFloats();
            long xc = xo + 4L * 4 * c;
            FloatVector b0 = FloatVector.zero(FS), b1 = FloatVector.zero(FS), b2 = FloatVector.zero(FS), b3 = FloatVector.zero(FS);
            for (int j = 0; j < 8; j += 1) {
                FloatVector d = q.lanewise(LSHR, 4 * j).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 4 * L + 0 * L), LE), b0);
                b1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 4 * L + 1 * L), LE), b1);
                b2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 4 * L + 2 * L), LE), b2);
                b3 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 4 * L + 3 * L), LE), b3);
            }
            a0 = b0.fma(sv, a0);
            a1 = b1.fma(sv, a1);
            a2 = b2.fma(sv, a2);
            a3 = b3.fma(sv, a3);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
    }

    /** FP4, per-chunk sums, scale applied once per chunk, 5 tokens. */
    static void fp4x5(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        for (int c = c0; c < c1; c += FP4_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + (c >>> 1), LE);
            int sb = L == 16 ? s.get(INT_LE, so + (c >>> 5)) : s.get(SHORT_LE, so + (c >>> 5)) & 0xffff;
            FloatVector sv = IntVector.broadcast(IS, sb).lanewise(LSHR, SCALE_SHIFT).and(0xff).lanewise(LSHL, 23)
                    .reinterpretAsFloats();
            long xc = xo + 4L * 5 * c;
            FloatVector b0 = FloatVector.zero(FS), b1 = FloatVector.zero(FS), b2 = FloatVector.zero(FS), b3 = FloatVector.zero(FS), b4 = FloatVector.zero(FS);
            for (int j = 0; j < 8; j += 1) {
                FloatVector d = q.lanewise(LSHR, 4 * j).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 5 * L + 0 * L), LE), b0);
                b1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 5 * L + 1 * L), LE), b1);
                b2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 5 * L + 2 * L), LE), b2);
                b3 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 5 * L + 3 * L), LE), b3);
                b4 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 5 * L + 4 * L), LE), b4);
            }
            a0 = b0.fma(sv, a0);
            a1 = b1.fma(sv, a1);
            a2 = b2.fma(sv, a2);
            a3 = b3.fma(sv, a3);
            a4 = b4.fma(sv, a4);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
    }

    /** FP4, per-chunk sums, scale applied once per chunk, 6 tokens. */
    static void fp4x6(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        for (int c = c0; c < c1; c += FP4_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + (c >>> 1), LE);
            int sb = L == 16 ? s.get(INT_LE, so + (c >>> 5)) : s.get(SHORT_LE, so + (c >>> 5)) & 0xffff;
            FloatVector sv = IntVector.broadcast(IS, sb).lanewise(LSHR, SCALE_SHIFT).and(0xff).lanewise(LSHL, 23)
                    .reinterpretAsFloats();
            long xc = xo + 4L * 6 * c;
            FloatVector b0 = FloatVector.zero(FS), b1 = FloatVector.zero(FS), b2 = FloatVector.zero(FS), b3 = FloatVector.zero(FS), b4 = FloatVector.zero(FS), b5 = FloatVector.zero(FS);
            for (int j = 0; j < 8; j += 1) {
                FloatVector d = q.lanewise(LSHR, 4 * j).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 6 * L + 0 * L), LE), b0);
                b1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 6 * L + 1 * L), LE), b1);
                b2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 6 * L + 2 * L), LE), b2);
                b3 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 6 * L + 3 * L), LE), b3);
                b4 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 6 * L + 4 * L), LE), b4);
                b5 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 6 * L + 5 * L), LE), b5);
            }
            a0 = b0.fma(sv, a0);
            a1 = b1.fma(sv, a1);
            a2 = b2.fma(sv, a2);
            a3 = b3.fma(sv, a3);
            a4 = b4.fma(sv, a4);
            a5 = b5.fma(sv, a5);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
    }

    /** FP4, per-chunk sums, scale applied once per chunk, 7 tokens. */
    static void fp4x7(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        for (int c = c0; c < c1; c += FP4_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + (c >>> 1), LE);
            int sb = L == 16 ? s.get(INT_LE, so + (c >>> 5)) : s.get(SHORT_LE, so + (c >>> 5)) & 0xffff;
            FloatVector sv = IntVector.broadcast(IS, sb).lanewise(LSHR, SCALE_SHIFT).and(0xff).lanewise(LSHL, 23)
                    .reinterpretAsFloats();
            long xc = xo + 4L * 7 * c;
            FloatVector b0 = FloatVector.zero(FS), b1 = FloatVector.zero(FS), b2 = FloatVector.zero(FS), b3 = FloatVector.zero(FS), b4 = FloatVector.zero(FS), b5 = FloatVector.zero(FS), b6 = FloatVector.zero(FS);
            for (int j = 0; j < 8; j += 1) {
                FloatVector d = q.lanewise(LSHR, 4 * j).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 7 * L + 0 * L), LE), b0);
                b1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 7 * L + 1 * L), LE), b1);
                b2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 7 * L + 2 * L), LE), b2);
                b3 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 7 * L + 3 * L), LE), b3);
                b4 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 7 * L + 4 * L), LE), b4);
                b5 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 7 * L + 5 * L), LE), b5);
                b6 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 7 * L + 6 * L), LE), b6);
            }
            a0 = b0.fma(sv, a0);
            a1 = b1.fma(sv, a1);
            a2 = b2.fma(sv, a2);
            a3 = b3.fma(sv, a3);
            a4 = b4.fma(sv, a4);
            a5 = b5.fma(sv, a5);
            a6 = b6.fma(sv, a6);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
        a6.intoArray(acc, ao + 6 * L);
    }

    /** FP4, per-chunk sums, scale applied once per chunk, 8 tokens. */
    static void fp4x8(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        FloatVector a7 = FloatVector.fromArray(FS, acc, ao + 7 * L);
        for (int c = c0; c < c1; c += FP4_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + (c >>> 1), LE);
            int sb = L == 16 ? s.get(INT_LE, so + (c >>> 5)) : s.get(SHORT_LE, so + (c >>> 5)) & 0xffff;
            FloatVector sv = IntVector.broadcast(IS, sb).lanewise(LSHR, SCALE_SHIFT).and(0xff).lanewise(LSHL, 23)
                    .reinterpretAsFloats();
            long xc = xo + 4L * 8 * c;
            FloatVector b0 = FloatVector.zero(FS), b1 = FloatVector.zero(FS), b2 = FloatVector.zero(FS), b3 = FloatVector.zero(FS), b4 = FloatVector.zero(FS), b5 = FloatVector.zero(FS), b6 = FloatVector.zero(FS), b7 = FloatVector.zero(FS);
            for (int j = 0; j < 8; j += 1) {
                FloatVector d = q.lanewise(LSHR, 4 * j).selectFrom(FP4_A, FP4_B).reinterpretAsFloats();
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 8 * L + 0 * L), LE), b0);
                b1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 8 * L + 1 * L), LE), b1);
                b2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 8 * L + 2 * L), LE), b2);
                b3 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 8 * L + 3 * L), LE), b3);
                b4 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 8 * L + 4 * L), LE), b4);
                b5 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 8 * L + 5 * L), LE), b5);
                b6 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 8 * L + 6 * L), LE), b6);
                b7 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 8 * L + 7 * L), LE), b7);
            }
            a0 = b0.fma(sv, a0);
            a1 = b1.fma(sv, a1);
            a2 = b2.fma(sv, a2);
            a3 = b3.fma(sv, a3);
            a4 = b4.fma(sv, a4);
            a5 = b5.fma(sv, a5);
            a6 = b6.fma(sv, a6);
            a7 = b7.fma(sv, a7);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
        a6.intoArray(acc, ao + 6 * L);
        a7.intoArray(acc, ao + 7 * L);
    }

    /** FP4, weights pre-scaled per chunk, 12 tokens. */
    static void fp4x12(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        FloatVector a7 = FloatVector.fromArray(FS, acc, ao + 7 * L);
        FloatVector a8 = FloatVector.fromArray(FS, acc, ao + 8 * L);
        FloatVector a9 = FloatVector.fromArray(FS, acc, ao + 9 * L);
        FloatVector a10 = FloatVector.fromArray(FS, acc, ao + 10 * L);
        FloatVector a11 = FloatVector.fromArray(FS, acc, ao + 11 * L);
        for (int c = c0; c < c1; c += FP4_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + (c >>> 1), LE);
            int sb = L == 16 ? s.get(INT_LE, so + (c >>> 5)) : s.get(SHORT_LE, so + (c >>> 5)) & 0xffff;
            FloatVector sv = IntVector.broadcast(IS, sb).lanewise(LSHR, SCALE_SHIFT).and(0xff).lanewise(LSHL, 23)
                    .reinterpretAsFloats();
            long xc = xo + 4L * 12 * c;
            for (int j = 0; j < 8; j++) {
                FloatVector d = q.lanewise(LSHR, 4 * j).selectFrom(FP4_A, FP4_B).reinterpretAsFloats().mul(sv);
                a0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 12 * L + 0 * L), LE), a0);
                a1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 12 * L + 1 * L), LE), a1);
                a2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 12 * L + 2 * L), LE), a2);
                a3 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 12 * L + 3 * L), LE), a3);
                a4 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 12 * L + 4 * L), LE), a4);
                a5 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 12 * L + 5 * L), LE), a5);
                a6 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 12 * L + 6 * L), LE), a6);
                a7 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 12 * L + 7 * L), LE), a7);
                a8 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 12 * L + 8 * L), LE), a8);
                a9 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 12 * L + 9 * L), LE), a9);
                a10 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 12 * L + 10 * L), LE), a10);
                a11 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 12 * L + 11 * L), LE), a11);
            }
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
        a6.intoArray(acc, ao + 6 * L);
        a7.intoArray(acc, ao + 7 * L);
        a8.intoArray(acc, ao + 8 * L);
        a9.intoArray(acc, ao + 9 * L);
        a10.intoArray(acc, ao + 10 * L);
        a11.intoArray(acc, ao + 11 * L);
    }

    /** FP4, weights pre-scaled per chunk, 16 tokens. */
    static void fp4x16(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        FloatVector a7 = FloatVector.fromArray(FS, acc, ao + 7 * L);
        FloatVector a8 = FloatVector.fromArray(FS, acc, ao + 8 * L);
        FloatVector a9 = FloatVector.fromArray(FS, acc, ao + 9 * L);
        FloatVector a10 = FloatVector.fromArray(FS, acc, ao + 10 * L);
        FloatVector a11 = FloatVector.fromArray(FS, acc, ao + 11 * L);
        FloatVector a12 = FloatVector.fromArray(FS, acc, ao + 12 * L);
        FloatVector a13 = FloatVector.fromArray(FS, acc, ao + 13 * L);
        FloatVector a14 = FloatVector.fromArray(FS, acc, ao + 14 * L);
        FloatVector a15 = FloatVector.fromArray(FS, acc, ao + 15 * L);
        for (int c = c0; c < c1; c += FP4_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + (c >>> 1), LE);
            int sb = L == 16 ? s.get(INT_LE, so + (c >>> 5)) : s.get(SHORT_LE, so + (c >>> 5)) & 0xffff;
            FloatVector sv = IntVector.broadcast(IS, sb).lanewise(LSHR, SCALE_SHIFT).and(0xff).lanewise(LSHL, 23)
                    .reinterpretAsFloats();
            long xc = xo + 4L * 16 * c;
            for (int j = 0; j < 8; j++) {
                FloatVector d = q.lanewise(LSHR, 4 * j).selectFrom(FP4_A, FP4_B).reinterpretAsFloats().mul(sv);
                a0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 0 * L), LE), a0);
                a1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 1 * L), LE), a1);
                a2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 2 * L), LE), a2);
                a3 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 3 * L), LE), a3);
                a4 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 4 * L), LE), a4);
                a5 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 5 * L), LE), a5);
                a6 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 6 * L), LE), a6);
                a7 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 7 * L), LE), a7);
                a8 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 8 * L), LE), a8);
                a9 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 9 * L), LE), a9);
                a10 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 10 * L), LE), a10);
                a11 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 11 * L), LE), a11);
                a12 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 12 * L), LE), a12);
                a13 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 13 * L), LE), a13);
                a14 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 14 * L), LE), a14);
                a15 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (j * 16 * L + 15 * L), LE), a15);
            }
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
        a6.intoArray(acc, ao + 6 * L);
        a7.intoArray(acc, ao + 7 * L);
        a8.intoArray(acc, ao + 8 * L);
        a9.intoArray(acc, ao + 9 * L);
        a10.intoArray(acc, ao + 10 * L);
        a11.intoArray(acc, ao + 11 * L);
        a12.intoArray(acc, ao + 12 * L);
        a13.intoArray(acc, ao + 13 * L);
        a14.intoArray(acc, ao + 14 * L);
        a15.intoArray(acc, ao + 15 * L);
    }

    static void fp8x(int tile, MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo,
                      float[] acc, int ao) {
        switch (tile) {
            case 1 -> fp8x1(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 2 -> fp8x2(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 3 -> fp8x3(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 4 -> fp8x4(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 5 -> fp8x5(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 6 -> fp8x6(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 7 -> fp8x7(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 8 -> fp8x8(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 12 -> fp8x12(w, wo, s, so, c0, c1, x, xo, acc, ao);
            case 16 -> fp8x16(w, wo, s, so, c0, c1, x, xo, acc, ao);
            default -> throw new IllegalArgumentException("no fp8x tile of " + tile);
        }
    }

    /** FP8, sums per 128-column scale block, scale applied once per block, 1 token. */
    static void fp8x1(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        for (int b = c0; b < c1; b += 128) {
            FloatVector sv = FloatVector.broadcast(FS, E8M0[s.get(ValueLayout.JAVA_BYTE, so + (b >>> 7)) & 0xff]);
            int end = Math.min(b + 128, c1);
            FloatVector b0 = FloatVector.zero(FS);
            for (int c = b; c < end; c += L) {
                IntVector cw = (IntVector) ByteVector.fromMemorySegment(BS, w, wo + c, LE)
                        .convertShape(VectorOperators.B2I, IS, 0);
                IntVector mag = cw.lanewise(LSHL, 20).and(0x07f00000);
                VectorMask<Integer> sub = mag.compare(VectorOperators.LT, 0x00800000);
                FloatVector d = mag.add(120 << 23).lanewise(ADD, 1 << 23, sub).reinterpretAsFloats()
                        .lanewise(VectorOperators.SUB, 0x1p-6f, sub.cast(FS))
                        .reinterpretAsInts().or(cw.and(0x80000000)).reinterpretAsFloats();
                long xc = xo + 4L * 1 * c;
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), b0);
            }
            a0 = b0.fma(sv, a0);
        }
        a0.intoArray(acc, ao + 0 * L);
    }

    /** FP8, sums per 128-column scale block, scale applied once per block, 2 tokens. */
    static void fp8x2(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        for (int b = c0; b < c1; b += 128) {
            FloatVector sv = FloatVector.broadcast(FS, E8M0[s.get(ValueLayout.JAVA_BYTE, so + (b >>> 7)) & 0xff]);
            int end = Math.min(b + 128, c1);
            FloatVector b0 = FloatVector.zero(FS), b1 = FloatVector.zero(FS);
            for (int c = b; c < end; c += L) {
                IntVector cw = (IntVector) ByteVector.fromMemorySegment(BS, w, wo + c, LE)
                        .convertShape(VectorOperators.B2I, IS, 0);
                IntVector mag = cw.lanewise(LSHL, 20).and(0x07f00000);
                VectorMask<Integer> sub = mag.compare(VectorOperators.LT, 0x00800000);
                FloatVector d = mag.add(120 << 23).lanewise(ADD, 1 << 23, sub).reinterpretAsFloats()
                        .lanewise(VectorOperators.SUB, 0x1p-6f, sub.cast(FS))
                        .reinterpretAsInts().or(cw.and(0x80000000)).reinterpretAsFloats();
                long xc = xo + 4L * 2 * c;
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), b0);
                b1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), b1);
            }
            a0 = b0.fma(sv, a0);
            a1 = b1.fma(sv, a1);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
    }

    /** FP8, sums per 128-column scale block, scale applied once per block, 3 tokens. */
    static void fp8x3(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        for (int b = c0; b < c1; b += 128) {
            FloatVector sv = FloatVector.broadcast(FS, E8M0[s.get(ValueLayout.JAVA_BYTE, so + (b >>> 7)) & 0xff]);
            int end = Math.min(b + 128, c1);
            FloatVector b0 = FloatVector.zero(FS), b1 = FloatVector.zero(FS), b2 = FloatVector.zero(FS);
            for (int c = b; c < end; c += L) {
                IntVector cw = (IntVector) ByteVector.fromMemorySegment(BS, w, wo + c, LE)
                        .convertShape(VectorOperators.B2I, IS, 0);
                IntVector mag = cw.lanewise(LSHL, 20).and(0x07f00000);
                VectorMask<Integer> sub = mag.compare(VectorOperators.LT, 0x00800000);
                FloatVector d = mag.add(120 << 23).lanewise(ADD, 1 << 23, sub).reinterpretAsFloats()
                        .lanewise(VectorOperators.SUB, 0x1p-6f, sub.cast(FS))
                        .reinterpretAsInts().or(cw.and(0x80000000)).reinterpretAsFloats();
                long xc = xo + 4L * 3 * c;
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), b0);
                b1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), b1);
                b2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), b2);
            }
            a0 = b0.fma(sv, a0);
            a1 = b1.fma(sv, a1);
            a2 = b2.fma(sv, a2);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
    }

    /** FP8, sums per 128-column scale block, scale applied once per block, 4 tokens. */
    static void fp8x4(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        for (int b = c0; b < c1; b += 128) {
            FloatVector sv = FloatVector.broadcast(FS, E8M0[s.get(ValueLayout.JAVA_BYTE, so + (b >>> 7)) & 0xff]);
            int end = Math.min(b + 128, c1);
            FloatVector b0 = FloatVector.zero(FS), b1 = FloatVector.zero(FS), b2 = FloatVector.zero(FS), b3 = FloatVector.zero(FS);
            for (int c = b; c < end; c += L) {
                IntVector cw = (IntVector) ByteVector.fromMemorySegment(BS, w, wo + c, LE)
                        .convertShape(VectorOperators.B2I, IS, 0);
                IntVector mag = cw.lanewise(LSHL, 20).and(0x07f00000);
                VectorMask<Integer> sub = mag.compare(VectorOperators.LT, 0x00800000);
                FloatVector d = mag.add(120 << 23).lanewise(ADD, 1 << 23, sub).reinterpretAsFloats()
                        .lanewise(VectorOperators.SUB, 0x1p-6f, sub.cast(FS))
                        .reinterpretAsInts().or(cw.and(0x80000000)).reinterpretAsFloats();
                long xc = xo + 4L * 4 * c;
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), b0);
                b1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), b1);
                b2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), b2);
                b3 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), b3);
            }
            a0 = b0.fma(sv, a0);
            a1 = b1.fma(sv, a1);
            a2 = b2.fma(sv, a2);
            a3 = b3.fma(sv, a3);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
    }

    /** FP8, sums per 128-column scale block, scale applied once per block, 5 tokens. */
    static void fp8x5(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        for (int b = c0; b < c1; b += 128) {
            FloatVector sv = FloatVector.broadcast(FS, E8M0[s.get(ValueLayout.JAVA_BYTE, so + (b >>> 7)) & 0xff]);
            int end = Math.min(b + 128, c1);
            FloatVector b0 = FloatVector.zero(FS), b1 = FloatVector.zero(FS), b2 = FloatVector.zero(FS), b3 = FloatVector.zero(FS), b4 = FloatVector.zero(FS);
            for (int c = b; c < end; c += L) {
                IntVector cw = (IntVector) ByteVector.fromMemorySegment(BS, w, wo + c, LE)
                        .convertShape(VectorOperators.B2I, IS, 0);
                IntVector mag = cw.lanewise(LSHL, 20).and(0x07f00000);
                VectorMask<Integer> sub = mag.compare(VectorOperators.LT, 0x00800000);
                FloatVector d = mag.add(120 << 23).lanewise(ADD, 1 << 23, sub).reinterpretAsFloats()
                        .lanewise(VectorOperators.SUB, 0x1p-6f, sub.cast(FS))
                        .reinterpretAsInts().or(cw.and(0x80000000)).reinterpretAsFloats();
                long xc = xo + 4L * 5 * c;
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), b0);
                b1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), b1);
                b2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), b2);
                b3 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), b3);
                b4 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), b4);
            }
            a0 = b0.fma(sv, a0);
            a1 = b1.fma(sv, a1);
            a2 = b2.fma(sv, a2);
            a3 = b3.fma(sv, a3);
            a4 = b4.fma(sv, a4);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
    }

    /** FP8, sums per 128-column scale block, scale applied once per block, 6 tokens. */
    static void fp8x6(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        for (int b = c0; b < c1; b += 128) {
            FloatVector sv = FloatVector.broadcast(FS, E8M0[s.get(ValueLayout.JAVA_BYTE, so + (b >>> 7)) & 0xff]);
            int end = Math.min(b + 128, c1);
            FloatVector b0 = FloatVector.zero(FS), b1 = FloatVector.zero(FS), b2 = FloatVector.zero(FS), b3 = FloatVector.zero(FS), b4 = FloatVector.zero(FS), b5 = FloatVector.zero(FS);
            for (int c = b; c < end; c += L) {
                IntVector cw = (IntVector) ByteVector.fromMemorySegment(BS, w, wo + c, LE)
                        .convertShape(VectorOperators.B2I, IS, 0);
                IntVector mag = cw.lanewise(LSHL, 20).and(0x07f00000);
                VectorMask<Integer> sub = mag.compare(VectorOperators.LT, 0x00800000);
                FloatVector d = mag.add(120 << 23).lanewise(ADD, 1 << 23, sub).reinterpretAsFloats()
                        .lanewise(VectorOperators.SUB, 0x1p-6f, sub.cast(FS))
                        .reinterpretAsInts().or(cw.and(0x80000000)).reinterpretAsFloats();
                long xc = xo + 4L * 6 * c;
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), b0);
                b1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), b1);
                b2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), b2);
                b3 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), b3);
                b4 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), b4);
                b5 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), b5);
            }
            a0 = b0.fma(sv, a0);
            a1 = b1.fma(sv, a1);
            a2 = b2.fma(sv, a2);
            a3 = b3.fma(sv, a3);
            a4 = b4.fma(sv, a4);
            a5 = b5.fma(sv, a5);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
    }

    /** FP8, sums per 128-column scale block, scale applied once per block, 7 tokens. */
    static void fp8x7(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        for (int b = c0; b < c1; b += 128) {
            FloatVector sv = FloatVector.broadcast(FS, E8M0[s.get(ValueLayout.JAVA_BYTE, so + (b >>> 7)) & 0xff]);
            int end = Math.min(b + 128, c1);
            FloatVector b0 = FloatVector.zero(FS), b1 = FloatVector.zero(FS), b2 = FloatVector.zero(FS), b3 = FloatVector.zero(FS), b4 = FloatVector.zero(FS), b5 = FloatVector.zero(FS), b6 = FloatVector.zero(FS);
            for (int c = b; c < end; c += L) {
                IntVector cw = (IntVector) ByteVector.fromMemorySegment(BS, w, wo + c, LE)
                        .convertShape(VectorOperators.B2I, IS, 0);
                IntVector mag = cw.lanewise(LSHL, 20).and(0x07f00000);
                VectorMask<Integer> sub = mag.compare(VectorOperators.LT, 0x00800000);
                FloatVector d = mag.add(120 << 23).lanewise(ADD, 1 << 23, sub).reinterpretAsFloats()
                        .lanewise(VectorOperators.SUB, 0x1p-6f, sub.cast(FS))
                        .reinterpretAsInts().or(cw.and(0x80000000)).reinterpretAsFloats();
                long xc = xo + 4L * 7 * c;
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), b0);
                b1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), b1);
                b2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), b2);
                b3 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), b3);
                b4 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), b4);
                b5 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), b5);
                b6 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), b6);
            }
            a0 = b0.fma(sv, a0);
            a1 = b1.fma(sv, a1);
            a2 = b2.fma(sv, a2);
            a3 = b3.fma(sv, a3);
            a4 = b4.fma(sv, a4);
            a5 = b5.fma(sv, a5);
            a6 = b6.fma(sv, a6);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
        a6.intoArray(acc, ao + 6 * L);
    }

    /** FP8, sums per 128-column scale block, scale applied once per block, 8 tokens. */
    static void fp8x8(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        FloatVector a7 = FloatVector.fromArray(FS, acc, ao + 7 * L);
        for (int b = c0; b < c1; b += 128) {
            FloatVector sv = FloatVector.broadcast(FS, E8M0[s.get(ValueLayout.JAVA_BYTE, so + (b >>> 7)) & 0xff]);
            int end = Math.min(b + 128, c1);
            FloatVector b0 = FloatVector.zero(FS), b1 = FloatVector.zero(FS), b2 = FloatVector.zero(FS), b3 = FloatVector.zero(FS), b4 = FloatVector.zero(FS), b5 = FloatVector.zero(FS), b6 = FloatVector.zero(FS), b7 = FloatVector.zero(FS);
            for (int c = b; c < end; c += L) {
                IntVector cw = (IntVector) ByteVector.fromMemorySegment(BS, w, wo + c, LE)
                        .convertShape(VectorOperators.B2I, IS, 0);
                IntVector mag = cw.lanewise(LSHL, 20).and(0x07f00000);
                VectorMask<Integer> sub = mag.compare(VectorOperators.LT, 0x00800000);
                FloatVector d = mag.add(120 << 23).lanewise(ADD, 1 << 23, sub).reinterpretAsFloats()
                        .lanewise(VectorOperators.SUB, 0x1p-6f, sub.cast(FS))
                        .reinterpretAsInts().or(cw.and(0x80000000)).reinterpretAsFloats();
                long xc = xo + 4L * 8 * c;
                b0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), b0);
                b1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), b1);
                b2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), b2);
                b3 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), b3);
                b4 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), b4);
                b5 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), b5);
                b6 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), b6);
                b7 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L), LE), b7);
            }
            a0 = b0.fma(sv, a0);
            a1 = b1.fma(sv, a1);
            a2 = b2.fma(sv, a2);
            a3 = b3.fma(sv, a3);
            a4 = b4.fma(sv, a4);
            a5 = b5.fma(sv, a5);
            a6 = b6.fma(sv, a6);
            a7 = b7.fma(sv, a7);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
        a6.intoArray(acc, ao + 6 * L);
        a7.intoArray(acc, ao + 7 * L);
    }

    /** FP8, weights pre-scaled, 12 tokens. */
    static void fp8x12(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        FloatVector a7 = FloatVector.fromArray(FS, acc, ao + 7 * L);
        FloatVector a8 = FloatVector.fromArray(FS, acc, ao + 8 * L);
        FloatVector a9 = FloatVector.fromArray(FS, acc, ao + 9 * L);
        FloatVector a10 = FloatVector.fromArray(FS, acc, ao + 10 * L);
        FloatVector a11 = FloatVector.fromArray(FS, acc, ao + 11 * L);
        for (int b = c0; b < c1; b += 128) {
            FloatVector sv = FloatVector.broadcast(FS, E8M0[s.get(ValueLayout.JAVA_BYTE, so + (b >>> 7)) & 0xff]);
            int end = Math.min(b + 128, c1);
            for (int c = b; c < end; c += L) {
                IntVector cw = (IntVector) ByteVector.fromMemorySegment(BS, w, wo + c, LE)
                        .convertShape(VectorOperators.B2I, IS, 0);
                IntVector mag = cw.lanewise(LSHL, 20).and(0x07f00000);
                VectorMask<Integer> sub = mag.compare(VectorOperators.LT, 0x00800000);
                FloatVector d = mag.add(120 << 23).lanewise(ADD, 1 << 23, sub).reinterpretAsFloats()
                        .lanewise(VectorOperators.SUB, 0x1p-6f, sub.cast(FS))
                        .reinterpretAsInts().or(cw.and(0x80000000)).reinterpretAsFloats().mul(sv);
                long xc = xo + 4L * 12 * c;
                a0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
                a1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
                a2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
                a3 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
                a4 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
                a5 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
                a6 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), a6);
                a7 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L), LE), a7);
                a8 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L), LE), a8);
                a9 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (9 * L), LE), a9);
                a10 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (10 * L), LE), a10);
                a11 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (11 * L), LE), a11);
            }
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
        a6.intoArray(acc, ao + 6 * L);
        a7.intoArray(acc, ao + 7 * L);
        a8.intoArray(acc, ao + 8 * L);
        a9.intoArray(acc, ao + 9 * L);
        a10.intoArray(acc, ao + 10 * L);
        a11.intoArray(acc, ao + 11 * L);
    }

    /** FP8, weights pre-scaled, 16 tokens. */
    static void fp8x16(MemorySegment w, long wo, MemorySegment s, long so, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        FloatVector a7 = FloatVector.fromArray(FS, acc, ao + 7 * L);
        FloatVector a8 = FloatVector.fromArray(FS, acc, ao + 8 * L);
        FloatVector a9 = FloatVector.fromArray(FS, acc, ao + 9 * L);
        FloatVector a10 = FloatVector.fromArray(FS, acc, ao + 10 * L);
        FloatVector a11 = FloatVector.fromArray(FS, acc, ao + 11 * L);
        FloatVector a12 = FloatVector.fromArray(FS, acc, ao + 12 * L);
        FloatVector a13 = FloatVector.fromArray(FS, acc, ao + 13 * L);
        FloatVector a14 = FloatVector.fromArray(FS, acc, ao + 14 * L);
        FloatVector a15 = FloatVector.fromArray(FS, acc, ao + 15 * L);
        for (int b = c0; b < c1; b += 128) {
            FloatVector sv = FloatVector.broadcast(FS, E8M0[s.get(ValueLayout.JAVA_BYTE, so + (b >>> 7)) & 0xff]);
            int end = Math.min(b + 128, c1);
            for (int c = b; c < end; c += L) {
                IntVector cw = (IntVector) ByteVector.fromMemorySegment(BS, w, wo + c, LE)
                        .convertShape(VectorOperators.B2I, IS, 0);
                IntVector mag = cw.lanewise(LSHL, 20).and(0x07f00000);
                VectorMask<Integer> sub = mag.compare(VectorOperators.LT, 0x00800000);
                FloatVector d = mag.add(120 << 23).lanewise(ADD, 1 << 23, sub).reinterpretAsFloats()
                        .lanewise(VectorOperators.SUB, 0x1p-6f, sub.cast(FS))
                        .reinterpretAsInts().or(cw.and(0x80000000)).reinterpretAsFloats().mul(sv);
                long xc = xo + 4L * 16 * c;
                a0 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
                a1 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
                a2 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
                a3 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
                a4 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
                a5 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
                a6 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), a6);
                a7 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L), LE), a7);
                a8 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L), LE), a8);
                a9 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (9 * L), LE), a9);
                a10 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (10 * L), LE), a10);
                a11 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (11 * L), LE), a11);
                a12 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L), LE), a12);
                a13 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (13 * L), LE), a13);
                a14 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (14 * L), LE), a14);
                a15 = d.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (15 * L), LE), a15);
            }
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
        a6.intoArray(acc, ao + 6 * L);
        a7.intoArray(acc, ao + 7 * L);
        a8.intoArray(acc, ao + 8 * L);
        a9.intoArray(acc, ao + 9 * L);
        a10.intoArray(acc, ao + 10 * L);
        a11.intoArray(acc, ao + 11 * L);
        a12.intoArray(acc, ao + 12 * L);
        a13.intoArray(acc, ao + 13 * L);
        a14.intoArray(acc, ao + 14 * L);
        a15.intoArray(acc, ao + 15 * L);
    }

    static void bf16x(int tile, MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo,
                      float[] acc, int ao) {
        switch (tile) {
            case 1 -> bf16x1(w, wo, c0, c1, x, xo, acc, ao);
            case 2 -> bf16x2(w, wo, c0, c1, x, xo, acc, ao);
            case 3 -> bf16x3(w, wo, c0, c1, x, xo, acc, ao);
            case 4 -> bf16x4(w, wo, c0, c1, x, xo, acc, ao);
            case 5 -> bf16x5(w, wo, c0, c1, x, xo, acc, ao);
            case 6 -> bf16x6(w, wo, c0, c1, x, xo, acc, ao);
            case 7 -> bf16x7(w, wo, c0, c1, x, xo, acc, ao);
            case 8 -> bf16x8(w, wo, c0, c1, x, xo, acc, ao);
            case 12 -> bf16x12(w, wo, c0, c1, x, xo, acc, ao);
            case 16 -> bf16x16(w, wo, c0, c1, x, xo, acc, ao);
            default -> throw new IllegalArgumentException("no bf16x tile of " + tile);
        }
    }

    /** BF16, even and odd columns from the two halves of each int lane, 1 token. */
    static void bf16x1(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector e0 = FloatVector.zero(FS);
        for (int c = c0; c < c1; c += BF16_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + 2L * c, LE);
            FloatVector ev = q.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector od = q.and(0xffff0000).reinterpretAsFloats();
            long xc = xo + 4L * 1 * c;
            a0 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            e0 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L + 0 * L), LE), e0);
        }
        a0.add(e0).intoArray(acc, ao + 0 * L);
    }

    /** BF16, even and odd columns from the two halves of each int lane, 2 tokens. */
    static void bf16x2(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector e0 = FloatVector.zero(FS), e1 = FloatVector.zero(FS);
        for (int c = c0; c < c1; c += BF16_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + 2L * c, LE);
            FloatVector ev = q.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector od = q.and(0xffff0000).reinterpretAsFloats();
            long xc = xo + 4L * 2 * c;
            a0 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            e0 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L + 0 * L), LE), e0);
            a1 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            e1 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L + 1 * L), LE), e1);
        }
        a0.add(e0).intoArray(acc, ao + 0 * L);
        a1.add(e1).intoArray(acc, ao + 1 * L);
    }

    /** BF16, even and odd columns from the two halves of each int lane, 3 tokens. */
    static void bf16x3(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector e0 = FloatVector.zero(FS), e1 = FloatVector.zero(FS), e2 = FloatVector.zero(FS);
        for (int c = c0; c < c1; c += BF16_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + 2L * c, LE);
            FloatVector ev = q.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector od = q.and(0xffff0000).reinterpretAsFloats();
            long xc = xo + 4L * 3 * c;
            a0 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            e0 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L + 0 * L), LE), e0);
            a1 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            e1 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L + 1 * L), LE), e1);
            a2 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            e2 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L + 2 * L), LE), e2);
        }
        a0.add(e0).intoArray(acc, ao + 0 * L);
        a1.add(e1).intoArray(acc, ao + 1 * L);
        a2.add(e2).intoArray(acc, ao + 2 * L);
    }

    /** BF16, even and odd columns from the two halves of each int lane, 4 tokens. */
    static void bf16x4(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector e0 = FloatVector.zero(FS), e1 = FloatVector.zero(FS), e2 = FloatVector.zero(FS), e3 = FloatVector.zero(FS);
        for (int c = c0; c < c1; c += BF16_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + 2L * c, LE);
            FloatVector ev = q.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector od = q.and(0xffff0000).reinterpretAsFloats();
            long xc = xo + 4L * 4 * c;
            a0 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            e0 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L + 0 * L), LE), e0);
            a1 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            e1 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L + 1 * L), LE), e1);
            a2 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            e2 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L + 2 * L), LE), e2);
            a3 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            e3 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L + 3 * L), LE), e3);
        }
        a0.add(e0).intoArray(acc, ao + 0 * L);
        a1.add(e1).intoArray(acc, ao + 1 * L);
        a2.add(e2).intoArray(acc, ao + 2 * L);
        a3.add(e3).intoArray(acc, ao + 3 * L);
    }

    /** BF16, even and odd columns from the two halves of each int lane, 5 tokens. */
    static void bf16x5(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector e0 = FloatVector.zero(FS), e1 = FloatVector.zero(FS), e2 = FloatVector.zero(FS), e3 = FloatVector.zero(FS), e4 = FloatVector.zero(FS);
        for (int c = c0; c < c1; c += BF16_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + 2L * c, LE);
            FloatVector ev = q.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector od = q.and(0xffff0000).reinterpretAsFloats();
            long xc = xo + 4L * 5 * c;
            a0 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            e0 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L + 0 * L), LE), e0);
            a1 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            e1 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L + 1 * L), LE), e1);
            a2 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            e2 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L + 2 * L), LE), e2);
            a3 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            e3 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L + 3 * L), LE), e3);
            a4 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
            e4 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L + 4 * L), LE), e4);
        }
        a0.add(e0).intoArray(acc, ao + 0 * L);
        a1.add(e1).intoArray(acc, ao + 1 * L);
        a2.add(e2).intoArray(acc, ao + 2 * L);
        a3.add(e3).intoArray(acc, ao + 3 * L);
        a4.add(e4).intoArray(acc, ao + 4 * L);
    }

    /** BF16, even and odd columns from the two halves of each int lane, 6 tokens. */
    static void bf16x6(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector e0 = FloatVector.zero(FS), e1 = FloatVector.zero(FS), e2 = FloatVector.zero(FS), e3 = FloatVector.zero(FS), e4 = FloatVector.zero(FS), e5 = FloatVector.zero(FS);
        for (int c = c0; c < c1; c += BF16_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + 2L * c, LE);
            FloatVector ev = q.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector od = q.and(0xffff0000).reinterpretAsFloats();
            long xc = xo + 4L * 6 * c;
            a0 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            e0 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L + 0 * L), LE), e0);
            a1 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            e1 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L + 1 * L), LE), e1);
            a2 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            e2 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L + 2 * L), LE), e2);
            a3 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            e3 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L + 3 * L), LE), e3);
            a4 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
            e4 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L + 4 * L), LE), e4);
            a5 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
            e5 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L + 5 * L), LE), e5);
        }
        a0.add(e0).intoArray(acc, ao + 0 * L);
        a1.add(e1).intoArray(acc, ao + 1 * L);
        a2.add(e2).intoArray(acc, ao + 2 * L);
        a3.add(e3).intoArray(acc, ao + 3 * L);
        a4.add(e4).intoArray(acc, ao + 4 * L);
        a5.add(e5).intoArray(acc, ao + 5 * L);
    }

    /** BF16, even and odd columns from the two halves of each int lane, 7 tokens. */
    static void bf16x7(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        FloatVector e0 = FloatVector.zero(FS), e1 = FloatVector.zero(FS), e2 = FloatVector.zero(FS), e3 = FloatVector.zero(FS), e4 = FloatVector.zero(FS), e5 = FloatVector.zero(FS), e6 = FloatVector.zero(FS);
        for (int c = c0; c < c1; c += BF16_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + 2L * c, LE);
            FloatVector ev = q.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector od = q.and(0xffff0000).reinterpretAsFloats();
            long xc = xo + 4L * 7 * c;
            a0 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            e0 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L + 0 * L), LE), e0);
            a1 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            e1 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L + 1 * L), LE), e1);
            a2 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            e2 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L + 2 * L), LE), e2);
            a3 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            e3 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L + 3 * L), LE), e3);
            a4 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
            e4 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L + 4 * L), LE), e4);
            a5 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
            e5 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L + 5 * L), LE), e5);
            a6 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), a6);
            e6 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L + 6 * L), LE), e6);
        }
        a0.add(e0).intoArray(acc, ao + 0 * L);
        a1.add(e1).intoArray(acc, ao + 1 * L);
        a2.add(e2).intoArray(acc, ao + 2 * L);
        a3.add(e3).intoArray(acc, ao + 3 * L);
        a4.add(e4).intoArray(acc, ao + 4 * L);
        a5.add(e5).intoArray(acc, ao + 5 * L);
        a6.add(e6).intoArray(acc, ao + 6 * L);
    }

    /** BF16, even and odd columns from the two halves of each int lane, 8 tokens. */
    static void bf16x8(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        FloatVector a7 = FloatVector.fromArray(FS, acc, ao + 7 * L);
        FloatVector e0 = FloatVector.zero(FS), e1 = FloatVector.zero(FS), e2 = FloatVector.zero(FS), e3 = FloatVector.zero(FS), e4 = FloatVector.zero(FS), e5 = FloatVector.zero(FS), e6 = FloatVector.zero(FS), e7 = FloatVector.zero(FS);
        for (int c = c0; c < c1; c += BF16_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + 2L * c, LE);
            FloatVector ev = q.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector od = q.and(0xffff0000).reinterpretAsFloats();
            long xc = xo + 4L * 8 * c;
            a0 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            e0 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L + 0 * L), LE), e0);
            a1 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            e1 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L + 1 * L), LE), e1);
            a2 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            e2 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L + 2 * L), LE), e2);
            a3 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            e3 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L + 3 * L), LE), e3);
            a4 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
            e4 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L + 4 * L), LE), e4);
            a5 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
            e5 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L + 5 * L), LE), e5);
            a6 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), a6);
            e6 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L + 6 * L), LE), e6);
            a7 = ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L), LE), a7);
            e7 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L + 7 * L), LE), e7);
        }
        a0.add(e0).intoArray(acc, ao + 0 * L);
        a1.add(e1).intoArray(acc, ao + 1 * L);
        a2.add(e2).intoArray(acc, ao + 2 * L);
        a3.add(e3).intoArray(acc, ao + 3 * L);
        a4.add(e4).intoArray(acc, ao + 4 * L);
        a5.add(e5).intoArray(acc, ao + 5 * L);
        a6.add(e6).intoArray(acc, ao + 6 * L);
        a7.add(e7).intoArray(acc, ao + 7 * L);
    }

    /** BF16, even and odd columns from the two halves of each int lane, 12 tokens. */
    static void bf16x12(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        FloatVector a7 = FloatVector.fromArray(FS, acc, ao + 7 * L);
        FloatVector a8 = FloatVector.fromArray(FS, acc, ao + 8 * L);
        FloatVector a9 = FloatVector.fromArray(FS, acc, ao + 9 * L);
        FloatVector a10 = FloatVector.fromArray(FS, acc, ao + 10 * L);
        FloatVector a11 = FloatVector.fromArray(FS, acc, ao + 11 * L);
        for (int c = c0; c < c1; c += BF16_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + 2L * c, LE);
            FloatVector ev = q.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector od = q.and(0xffff0000).reinterpretAsFloats();
            long xc = xo + 4L * 12 * c;
            a0 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L + 0 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0));
            a1 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L + 1 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1));
            a2 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L + 2 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2));
            a3 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L + 3 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3));
            a4 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L + 4 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4));
            a5 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L + 5 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5));
            a6 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L + 6 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), a6));
            a7 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L + 7 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L), LE), a7));
            a8 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L + 8 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L), LE), a8));
            a9 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L + 9 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (9 * L), LE), a9));
            a10 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L + 10 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (10 * L), LE), a10));
            a11 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L + 11 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (11 * L), LE), a11));
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
        a6.intoArray(acc, ao + 6 * L);
        a7.intoArray(acc, ao + 7 * L);
        a8.intoArray(acc, ao + 8 * L);
        a9.intoArray(acc, ao + 9 * L);
        a10.intoArray(acc, ao + 10 * L);
        a11.intoArray(acc, ao + 11 * L);
    }

    /** BF16, even and odd columns from the two halves of each int lane, 16 tokens. */
    static void bf16x16(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        FloatVector a7 = FloatVector.fromArray(FS, acc, ao + 7 * L);
        FloatVector a8 = FloatVector.fromArray(FS, acc, ao + 8 * L);
        FloatVector a9 = FloatVector.fromArray(FS, acc, ao + 9 * L);
        FloatVector a10 = FloatVector.fromArray(FS, acc, ao + 10 * L);
        FloatVector a11 = FloatVector.fromArray(FS, acc, ao + 11 * L);
        FloatVector a12 = FloatVector.fromArray(FS, acc, ao + 12 * L);
        FloatVector a13 = FloatVector.fromArray(FS, acc, ao + 13 * L);
        FloatVector a14 = FloatVector.fromArray(FS, acc, ao + 14 * L);
        FloatVector a15 = FloatVector.fromArray(FS, acc, ao + 15 * L);
        for (int c = c0; c < c1; c += BF16_CHUNK) {
            IntVector q = IntVector.fromMemorySegment(IS, w, wo + 2L * c, LE);
            FloatVector ev = q.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector od = q.and(0xffff0000).reinterpretAsFloats();
            long xc = xo + 4L * 16 * c;
            a0 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 0 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0));
            a1 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 1 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1));
            a2 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 2 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2));
            a3 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 3 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3));
            a4 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 4 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4));
            a5 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 5 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5));
            a6 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 6 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), a6));
            a7 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 7 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L), LE), a7));
            a8 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 8 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L), LE), a8));
            a9 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 9 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (9 * L), LE), a9));
            a10 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 10 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (10 * L), LE), a10));
            a11 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 11 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (11 * L), LE), a11));
            a12 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 12 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L), LE), a12));
            a13 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 13 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (13 * L), LE), a13));
            a14 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 14 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (14 * L), LE), a14));
            a15 = od.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (16 * L + 15 * L), LE), ev.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (15 * L), LE), a15));
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
        a6.intoArray(acc, ao + 6 * L);
        a7.intoArray(acc, ao + 7 * L);
        a8.intoArray(acc, ao + 8 * L);
        a9.intoArray(acc, ao + 9 * L);
        a10.intoArray(acc, ao + 10 * L);
        a11.intoArray(acc, ao + 11 * L);
        a12.intoArray(acc, ao + 12 * L);
        a13.intoArray(acc, ao + 13 * L);
        a14.intoArray(acc, ao + 14 * L);
        a15.intoArray(acc, ao + 15 * L);
    }

    static void f32x(int tile, MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo,
                      float[] acc, int ao) {
        switch (tile) {
            case 1 -> f32x1(w, wo, c0, c1, x, xo, acc, ao);
            case 2 -> f32x2(w, wo, c0, c1, x, xo, acc, ao);
            case 3 -> f32x3(w, wo, c0, c1, x, xo, acc, ao);
            case 4 -> f32x4(w, wo, c0, c1, x, xo, acc, ao);
            case 5 -> f32x5(w, wo, c0, c1, x, xo, acc, ao);
            case 6 -> f32x6(w, wo, c0, c1, x, xo, acc, ao);
            case 7 -> f32x7(w, wo, c0, c1, x, xo, acc, ao);
            case 8 -> f32x8(w, wo, c0, c1, x, xo, acc, ao);
            case 12 -> f32x12(w, wo, c0, c1, x, xo, acc, ao);
            case 16 -> f32x16(w, wo, c0, c1, x, xo, acc, ao);
            default -> throw new IllegalArgumentException("no f32x tile of " + tile);
        }
    }

    /** F32, 1 token. */
    static void f32x1(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a0_1 = FloatVector.zero(FS), a0_2 = FloatVector.zero(FS), a0_3 = FloatVector.zero(FS);
        int c = c0;
        for (; c + 4 * L <= c1; c += 4 * L) {
            long xc = xo + 4L * 1 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c), LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            FloatVector d1 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c + 1 * L), LE);
            a0_1 = d1.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * 1 * L + 0 * L), LE), a0_1);
            FloatVector d2 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c + 2 * L), LE);
            a0_2 = d2.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * 1 * L + 0 * L), LE), a0_2);
            FloatVector d3 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c + 3 * L), LE);
            a0_3 = d3.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * 1 * L + 0 * L), LE), a0_3);
        }
        for (; c < c1; c += L) {
            long xc = xo + 4L * 1 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * c, LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
        }
        a0.add(a0_1).add(a0_2).add(a0_3).intoArray(acc, ao + 0 * L);
    }

    /** F32, 2 tokens. */
    static void f32x2(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a0_1 = FloatVector.zero(FS), a1_1 = FloatVector.zero(FS);
        int c = c0;
        for (; c + 2 * L <= c1; c += 2 * L) {
            long xc = xo + 4L * 2 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c), LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            FloatVector d1 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c + 1 * L), LE);
            a0_1 = d1.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * 2 * L + 0 * L), LE), a0_1);
            a1_1 = d1.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * 2 * L + 1 * L), LE), a1_1);
        }
        for (; c < c1; c += L) {
            long xc = xo + 4L * 2 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * c, LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
        }
        a0.add(a0_1).intoArray(acc, ao + 0 * L);
        a1.add(a1_1).intoArray(acc, ao + 1 * L);
    }

    /** F32, 3 tokens. */
    static void f32x3(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a0_1 = FloatVector.zero(FS), a1_1 = FloatVector.zero(FS), a2_1 = FloatVector.zero(FS);
        int c = c0;
        for (; c + 2 * L <= c1; c += 2 * L) {
            long xc = xo + 4L * 3 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c), LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            FloatVector d1 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c + 1 * L), LE);
            a0_1 = d1.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * 3 * L + 0 * L), LE), a0_1);
            a1_1 = d1.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * 3 * L + 1 * L), LE), a1_1);
            a2_1 = d1.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * 3 * L + 2 * L), LE), a2_1);
        }
        for (; c < c1; c += L) {
            long xc = xo + 4L * 3 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * c, LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
        }
        a0.add(a0_1).intoArray(acc, ao + 0 * L);
        a1.add(a1_1).intoArray(acc, ao + 1 * L);
        a2.add(a2_1).intoArray(acc, ao + 2 * L);
    }

    /** F32, 4 tokens. */
    static void f32x4(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a0_1 = FloatVector.zero(FS), a1_1 = FloatVector.zero(FS), a2_1 = FloatVector.zero(FS), a3_1 = FloatVector.zero(FS);
        int c = c0;
        for (; c + 2 * L <= c1; c += 2 * L) {
            long xc = xo + 4L * 4 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c), LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            a3 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            FloatVector d1 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c + 1 * L), LE);
            a0_1 = d1.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * 4 * L + 0 * L), LE), a0_1);
            a1_1 = d1.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * 4 * L + 1 * L), LE), a1_1);
            a2_1 = d1.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * 4 * L + 2 * L), LE), a2_1);
            a3_1 = d1.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * 4 * L + 3 * L), LE), a3_1);
        }
        for (; c < c1; c += L) {
            long xc = xo + 4L * 4 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * c, LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            a3 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
        }
        a0.add(a0_1).intoArray(acc, ao + 0 * L);
        a1.add(a1_1).intoArray(acc, ao + 1 * L);
        a2.add(a2_1).intoArray(acc, ao + 2 * L);
        a3.add(a3_1).intoArray(acc, ao + 3 * L);
    }

    /** F32, 5 tokens. */
    static void f32x5(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        int c = c0;
        for (; c + 1 * L <= c1; c += 1 * L) {
            long xc = xo + 4L * 5 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c), LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            a3 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            a4 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
        }
        for (; c < c1; c += L) {
            long xc = xo + 4L * 5 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * c, LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            a3 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            a4 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
    }

    /** F32, 6 tokens. */
    static void f32x6(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        int c = c0;
        for (; c + 1 * L <= c1; c += 1 * L) {
            long xc = xo + 4L * 6 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c), LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            a3 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            a4 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
            a5 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
        }
        for (; c < c1; c += L) {
            long xc = xo + 4L * 6 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * c, LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            a3 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            a4 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
            a5 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
    }

    /** F32, 7 tokens. */
    static void f32x7(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        int c = c0;
        for (; c + 1 * L <= c1; c += 1 * L) {
            long xc = xo + 4L * 7 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c), LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            a3 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            a4 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
            a5 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
            a6 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), a6);
        }
        for (; c < c1; c += L) {
            long xc = xo + 4L * 7 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * c, LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            a3 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            a4 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
            a5 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
            a6 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), a6);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
        a6.intoArray(acc, ao + 6 * L);
    }

    /** F32, 8 tokens. */
    static void f32x8(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        FloatVector a7 = FloatVector.fromArray(FS, acc, ao + 7 * L);
        int c = c0;
        for (; c + 1 * L <= c1; c += 1 * L) {
            long xc = xo + 4L * 8 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c), LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            a3 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            a4 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
            a5 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
            a6 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), a6);
            a7 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L), LE), a7);
        }
        for (; c < c1; c += L) {
            long xc = xo + 4L * 8 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * c, LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            a3 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            a4 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
            a5 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
            a6 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), a6);
            a7 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L), LE), a7);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
        a6.intoArray(acc, ao + 6 * L);
        a7.intoArray(acc, ao + 7 * L);
    }

    /** F32, 12 tokens. */
    static void f32x12(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        FloatVector a7 = FloatVector.fromArray(FS, acc, ao + 7 * L);
        FloatVector a8 = FloatVector.fromArray(FS, acc, ao + 8 * L);
        FloatVector a9 = FloatVector.fromArray(FS, acc, ao + 9 * L);
        FloatVector a10 = FloatVector.fromArray(FS, acc, ao + 10 * L);
        FloatVector a11 = FloatVector.fromArray(FS, acc, ao + 11 * L);
        int c = c0;
        for (; c + 1 * L <= c1; c += 1 * L) {
            long xc = xo + 4L * 12 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c), LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            a3 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            a4 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
            a5 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
            a6 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), a6);
            a7 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L), LE), a7);
            a8 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L), LE), a8);
            a9 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (9 * L), LE), a9);
            a10 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (10 * L), LE), a10);
            a11 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (11 * L), LE), a11);
        }
        for (; c < c1; c += L) {
            long xc = xo + 4L * 12 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * c, LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            a3 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            a4 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
            a5 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
            a6 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), a6);
            a7 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L), LE), a7);
            a8 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L), LE), a8);
            a9 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (9 * L), LE), a9);
            a10 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (10 * L), LE), a10);
            a11 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (11 * L), LE), a11);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
        a6.intoArray(acc, ao + 6 * L);
        a7.intoArray(acc, ao + 7 * L);
        a8.intoArray(acc, ao + 8 * L);
        a9.intoArray(acc, ao + 9 * L);
        a10.intoArray(acc, ao + 10 * L);
        a11.intoArray(acc, ao + 11 * L);
    }

    /** F32, 16 tokens. */
    static void f32x16(MemorySegment w, long wo, int c0, int c1, MemorySegment x, long xo, float[] acc, int ao) {
        FloatVector a0 = FloatVector.fromArray(FS, acc, ao + 0 * L);
        FloatVector a1 = FloatVector.fromArray(FS, acc, ao + 1 * L);
        FloatVector a2 = FloatVector.fromArray(FS, acc, ao + 2 * L);
        FloatVector a3 = FloatVector.fromArray(FS, acc, ao + 3 * L);
        FloatVector a4 = FloatVector.fromArray(FS, acc, ao + 4 * L);
        FloatVector a5 = FloatVector.fromArray(FS, acc, ao + 5 * L);
        FloatVector a6 = FloatVector.fromArray(FS, acc, ao + 6 * L);
        FloatVector a7 = FloatVector.fromArray(FS, acc, ao + 7 * L);
        FloatVector a8 = FloatVector.fromArray(FS, acc, ao + 8 * L);
        FloatVector a9 = FloatVector.fromArray(FS, acc, ao + 9 * L);
        FloatVector a10 = FloatVector.fromArray(FS, acc, ao + 10 * L);
        FloatVector a11 = FloatVector.fromArray(FS, acc, ao + 11 * L);
        FloatVector a12 = FloatVector.fromArray(FS, acc, ao + 12 * L);
        FloatVector a13 = FloatVector.fromArray(FS, acc, ao + 13 * L);
        FloatVector a14 = FloatVector.fromArray(FS, acc, ao + 14 * L);
        FloatVector a15 = FloatVector.fromArray(FS, acc, ao + 15 * L);
        int c = c0;
        for (; c + 1 * L <= c1; c += 1 * L) {
            long xc = xo + 4L * 16 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * (c), LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            a3 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            a4 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
            a5 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
            a6 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), a6);
            a7 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L), LE), a7);
            a8 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L), LE), a8);
            a9 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (9 * L), LE), a9);
            a10 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (10 * L), LE), a10);
            a11 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (11 * L), LE), a11);
            a12 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L), LE), a12);
            a13 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (13 * L), LE), a13);
            a14 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (14 * L), LE), a14);
            a15 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (15 * L), LE), a15);
        }
        for (; c < c1; c += L) {
            long xc = xo + 4L * 16 * c;
            FloatVector d0 = FloatVector.fromMemorySegment(FS, w, wo + 4L * c, LE);
            a0 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (0 * L), LE), a0);
            a1 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (1 * L), LE), a1);
            a2 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (2 * L), LE), a2);
            a3 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (3 * L), LE), a3);
            a4 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (4 * L), LE), a4);
            a5 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (5 * L), LE), a5);
            a6 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (6 * L), LE), a6);
            a7 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (7 * L), LE), a7);
            a8 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (8 * L), LE), a8);
            a9 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (9 * L), LE), a9);
            a10 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (10 * L), LE), a10);
            a11 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (11 * L), LE), a11);
            a12 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (12 * L), LE), a12);
            a13 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (13 * L), LE), a13);
            a14 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (14 * L), LE), a14);
            a15 = d0.fma(FloatVector.fromMemorySegment(FS, x, xc + 4L * (15 * L), LE), a15);
        }
        a0.intoArray(acc, ao + 0 * L);
        a1.intoArray(acc, ao + 1 * L);
        a2.intoArray(acc, ao + 2 * L);
        a3.intoArray(acc, ao + 3 * L);
        a4.intoArray(acc, ao + 4 * L);
        a5.intoArray(acc, ao + 5 * L);
        a6.intoArray(acc, ao + 6 * L);
        a7.intoArray(acc, ao + 7 * L);
        a8.intoArray(acc, ao + 8 * L);
        a9.intoArray(acc, ao + 9 * L);
        a10.intoArray(acc, ao + 10 * L);
        a11.intoArray(acc, ao + 11 * L);
        a12.intoArray(acc, ao + 12 * L);
        a13.intoArray(acc, ao + 13 * L);
        a14.intoArray(acc, ao + 14 * L);
        a15.intoArray(acc, ao + 15 * L);
    }
}
