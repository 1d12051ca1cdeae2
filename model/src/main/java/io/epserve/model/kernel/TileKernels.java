package io.epserve.model.kernel;

import static jdk.incubator.vector.VectorOperators.ADD;
import static jdk.incubator.vector.VectorOperators.F2D;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.LSHR;

import io.epserve.model.format.E8m0;
import io.epserve.model.format.Fp4E2m1;
import io.epserve.model.format.QuantSim;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Inner kernels of {@link FastKernels} for BF16 and float64 linears (FP8 and FP4 are {@link Fp8PanelKernels} and
 * {@link Fp4PanelKernels}), and the vector helpers all of them share: one weight row, columns [c0, c1), against a
 * tile of T = 1..16 tokens.
 * Hand-written (the previous version was generated per tile size by a script; this one is not generated).
 *
 * <h2>Batch invariance</h2>
 * Every kernel computes each token with the same sequence of floating-point operations whatever T, the column
 * panel, the row chunk or the thread: per token one accumulator vector {@code a} (kept in {@code acc[ao + t*V ..]}
 * between calls; a store and reload is exact), and per group of 8 weight vectors (G = 8V columns)
 * <pre>
 *   b = fma(d0, x0, +0); b = fma(d1, x1, b); ... b = fma(d7, x7, b);     // one chain, column order
 *   a = a + b
 * </pre>
 * then {@link #sum} (a fixed butterfly, never {@code reduceLanes}, see there) and the scalar tail columns in
 * order (FastKernels). So a token gets the same bits alone, in a tile of 16, in panels of any width that is a
 * multiple of the group, and on any thread. Instruction-level parallelism comes from independent token chains
 * (4 interleaved per block) and from out-of-order overlap of consecutive groups (each group's b chain starts
 * from zero), never from splitting one token's sum into a tile-dependent number of partial accumulators.
 *
 * <h2>Code shape</h2>
 * The bf16 and f32 kernels (small matrices here) run blocks of 4 tokens ({@code xB4}, {@code xX4}) and the 1-3
 * leftover tokens one at a time ({@code xR}); {@code bf16dX8} runs 8 float64 chains. C2 is sensitive to shape here, each
 * rule measured (also in the FP8 and FP4 kernels):
 * <ul>
 * <li>Activation indices are ints of the form {@code base + constant}, so C2 proves one range check for the
 *     whole block instead of one per load. The previous form, a long byte offset shifted and narrowed per load,
 *     cost ~5 scalar instructions per FMA on the vector ports' neighbours.
 * <li>Methods stay small: one hand-unrolled method per tile size (up to 128 FMAs) was more than C1 can compile
 *     ("out of virtual registers"); such a method then stays interpreted until C2's thresholds are met, seconds
 *     to minutes later (a 12-token tile ran at 0.4 GFLOP/s for a whole benchmark, tests ran 10x longer). Kernels
 *     are therefore loops over the weight vectors, which C2 unrolls in part.
 * <li>No decode is a call: weight decodes are written out in each kernel, and so is the bf16 rounding of vectors
 *     (FastKernels, HcPost).
 *     As helpers, C2 left them out of the big kernels as "callee is too large", "already compiled into a big
 *     method" or "NodeCountInliningCutoff", depending on the run and the process: a helper returning a vector
 *     then boxed one per group, and a former FP8 group helper (a void call with a segment slice) cost a call, a slice
 *     allocation and its bounds checks per 128 weights, which made the dense FP8 projections 2.2x slower in the
 *     attention worker than in the single process that happened to inline it. A helper called with vectors of
 *     two shapes (the bf16 decode served the 512-bit float and the 256-bit double kernels) boxes in every caller,
 *     inlined or not: its type profile is polymorphic. The Vector API's own methods are such shared helpers too, so
 *     float and int vectors come in one shape only (see {@link #DS}).
 * <li>Accumulators start from {@code FloatVector.zero(FS)}, never from a static final vector (C2 cannot unbox a
 *     constant vector object at a loop phi and allocates a box per iteration, 5-10x slower).
 * </ul>
 *
 * <h2>Decoding</h2>
 * <ul>
 * <li>FP4 ({@link Fp4PanelKernels}): an int lane holds 8 nibbles; nibble j of every lane is
 *     {@code (q >>> 4j).selectFrom(FP4_A, FP4_B)}. The two-table selectFrom wraps the index (index & (2L-1))
 *     instead of range-checking it, so it compiles to vpand + vpermi2d and the bits above the nibble can stay in
 *     the index.
 * <li>BF16: an int lane holds two weights; {@code q << 16} is the even one, {@code q & 0xffff0000} the odd one.
 * <li>float64 kernels (the "wide" linears): bf16 or f32 weights are widened exactly to double
 *     (vcvtps2pd from each half of a full float vector) and multiplied by activations stored as doubles; products of
 *     two floats are exact in double, so these agree with the exact set up to the float64 summation order.
 * </ul>
 *
 * <p>Activations ({@code x}, prepared by FastKernels#prepare): a heap array whose tiles start on a cache line
 * where the collector allows it ({@link AlignedArrays}); the tile starts at byte {@code xo} and token t's G values
 * of the group starting at column c are contiguous at element {@code T*c + t*G} (floats, or doubles for the
 * float64 kernels). Within each group the columns are permuted so
 * that lane i of the j-th weight vector meets lane i of the j-th activation vector (see
 * {@link FastKernels#permute}). Only 256- and 512-bit species are supported: the FP4 decode needs one or two int
 * vectors to hold the 16-entry table.
 */
final class TileKernels {
    private TileKernels() {}

    static final VectorSpecies<Float> FS = FloatVector.SPECIES_PREFERRED;
    static final int L = FS.length();
    static final VectorSpecies<Integer> IS = VectorSpecies.of(int.class, FS.vectorShape());
    /** Bytes that widen to one int vector (16 bytes for 512-bit, 8 for 256-bit). */
    static final VectorSpecies<Byte> BS = VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, L * 8)));
    static final boolean SUPPORTED = L == 8 || L == 16;
    /**
     * Whether {@link #sums} serves: written out for 512-bit vectors (16 floats, 8 doubles); with 256-bit ones each
     * vector is summed on its own ({@link #sum(float[], int)}), the same bits.
     */
    static final boolean SUMS = L == 16;

    /**
     * Doubles of the preferred shape. The float64 kernels widen a full float vector as two halves (convertShape part
     * 0 and 1), never a half-width float or int vector: 256-bit ones beside the 512-bit ones gave the Vector API's
     * shared methods polymorphic type profiles, and C2 then left some operations of unrelated kernels (seen in
     * bf16B4, prepare and keys4) to the Java fallback, an array allocated per operation. (Masked loads of the lower
     * half instead ran 2-4x slower.)
     */
    static final VectorSpecies<Double> DS = VectorSpecies.of(double.class, FS.vectorShape());
    static final int LD = DS.length();

    /** Columns per group of the float kernels: 8 weight vectors. */
    static final int GROUP = 8 * L;
    /** Columns per group of the float64 kernels: 8 double vectors. */
    static final int DGROUP = 8 * LD;


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

    /** Lane i takes lane i ^ k: the butterfly steps of {@link #sum} (S8 only used when L == 16). */
    private static final VectorShuffle<Float> S8, S4, S2, S1;
    private static final VectorShuffle<Double> D4, D2, D1;
    /** Lanes whose index has bit 3, 2, 1 or 0 set: which of two merged vectors a lane continues ({@link #sums}). */
    private static final VectorMask<Float> M8, M4, M2, M1;
    private static final VectorMask<Double> N4, N2, N1;
    /** Lane i takes lane bitreverse(i) (over log2 of the lane count bits): the sums of {@link #sums} in order. */
    private static final VectorShuffle<Float> FLOAT_BITREV;
    private static final VectorShuffle<Double> DOUBLE_BITREV;

    static {
        for (int c = 0; c < 256; c++) {
            E8M0[c] = E8m0.toFloat(c);
        }
        int[] a = new int[L];
        int[] b = new int[L];
        for (int i = 0; i < L; i++) {
            a[i] = Float.floatToRawIntBits(Fp4E2m1.toFloat(i));
            b[i] = Float.floatToRawIntBits(Fp4E2m1.toFloat(L == 16 ? i : i + 8));
        }
        FP4_A = IntVector.fromArray(IS, a, 0);
        FP4_B = IntVector.fromArray(IS, b, 0);
        S8 = VectorShuffle.fromOp(FS, i -> (i ^ 8) & (L - 1));
        S4 = VectorShuffle.fromOp(FS, i -> (i ^ 4) & (L - 1));
        S2 = VectorShuffle.fromOp(FS, i -> i ^ 2);
        S1 = VectorShuffle.fromOp(FS, i -> i ^ 1);
        D4 = VectorShuffle.fromOp(DS, i -> (i ^ 4) & (LD - 1));
        D2 = VectorShuffle.fromOp(DS, i -> i ^ 2);
        D1 = VectorShuffle.fromOp(DS, i -> i ^ 1);
        M8 = VectorMask.fromLong(FS, L == 16 ? 0xff00L : 0);
        M4 = VectorMask.fromLong(FS, L == 16 ? 0xf0f0L : 0xf0L);
        M2 = VectorMask.fromLong(FS, L == 16 ? 0xccccL : 0xccL);
        M1 = VectorMask.fromLong(FS, L == 16 ? 0xaaaaL : 0xaaL);
        N4 = VectorMask.fromLong(DS, LD == 8 ? 0xf0L : 0);
        N2 = VectorMask.fromLong(DS, LD == 8 ? 0xccL : 0xcL);
        N1 = VectorMask.fromLong(DS, LD == 8 ? 0xaaL : 0xaL);
        FLOAT_BITREV = VectorShuffle.fromOp(FS, i -> Integer.reverse(i) >>> 32 - Integer.numberOfTrailingZeros(L));
        DOUBLE_BITREV = VectorShuffle.fromOp(DS, i -> Integer.reverse(i) >>> 32 - Integer.numberOfTrailingZeros(LD));
    }

    /**
     * Sum of the lanes in a fixed butterfly order. Not {@code reduceLanes(ADD)}: on JDK 25/x86 that sums
     * sequentially when interpreted and as a tree once C2 compiles it, so its bits depend on the JIT state
     * (measured: 62 % of random vectors differ), which breaks batch invariance between early and late calls.
     */
    static float sum(FloatVector v) {
        if (L == 16) {
            v = v.add(v.rearrange(S8));
        }
        v = v.add(v.rearrange(S4));
        v = v.add(v.rearrange(S2));
        v = v.add(v.rearrange(S1));
        return v.lane(0);
    }

    /**
     * {@link #sum} of the vector at a[off], the butterfly written out: no vector crosses a call, so nothing is boxed
     * whether C2 inlines this or not. (Calling sum(FloatVector) from here boxed in some compilations: this was
     * inlined into a large caller, and the inner call then met C2's node count cutoff.)
     */
    static float sum(float[] a, int off) {
        FloatVector v = FloatVector.fromArray(FS, a, off);
        if (L == 16) {
            v = v.add(v.rearrange(S8));
        }
        v = v.add(v.rearrange(S4));
        v = v.add(v.rearrange(S2));
        v = v.add(v.rearrange(S1));
        return v.lane(0);
    }

    /**
     * {@link #sum(float[], int)} of the 16 vectors at a[off + k * 16] (k = 0..15) into out[o + k]; 512-bit vectors only
     * (see {@link #SUMS}). The same butterfly for every vector: the vectors are merged pairwise at each level (lanes
     * of one half continue one vector, the other half the other), so a lane adds the same two partial sums that lane
     * of the vector's own butterfly would, at most with the operands swapped, which IEEE addition does not see; and
     * every lane of a butterfly ends with the same bits, since each level pairs the same lanes whatever the lane it
     * ends in. Same bits, but 15 merges (60 operations) for 16 sums instead of 16 x 8 operations, each sum a chain of
     * four dependent shuffles and adds.
     */
    static void sums(float[] a, int off, float[] out, int o) {
        FloatVector v0 = FloatVector.fromArray(FS, a, off), v1 = FloatVector.fromArray(FS, a, off + L);
        FloatVector v2 = FloatVector.fromArray(FS, a, off + 2 * L), v3 = FloatVector.fromArray(FS, a, off + 3 * L);
        FloatVector v4 = FloatVector.fromArray(FS, a, off + 4 * L), v5 = FloatVector.fromArray(FS, a, off + 5 * L);
        FloatVector v6 = FloatVector.fromArray(FS, a, off + 6 * L), v7 = FloatVector.fromArray(FS, a, off + 7 * L);
        FloatVector v8 = FloatVector.fromArray(FS, a, off + 8 * L), v9 = FloatVector.fromArray(FS, a, off + 9 * L);
        FloatVector va = FloatVector.fromArray(FS, a, off + 10 * L), vb = FloatVector.fromArray(FS, a, off + 11 * L);
        FloatVector vc = FloatVector.fromArray(FS, a, off + 12 * L), vd = FloatVector.fromArray(FS, a, off + 13 * L);
        FloatVector ve = FloatVector.fromArray(FS, a, off + 14 * L), vf = FloatVector.fromArray(FS, a, off + 15 * L);
        // level 1 (lane ^ 8): vector 2m in lanes 0-7, 2m+1 in lanes 8-15
        FloatVector w0 = v0.blend(v1, M8).add(v1.blend(v0, M8).rearrange(S8));
        FloatVector w1 = v2.blend(v3, M8).add(v3.blend(v2, M8).rearrange(S8));
        FloatVector w2 = v4.blend(v5, M8).add(v5.blend(v4, M8).rearrange(S8));
        FloatVector w3 = v6.blend(v7, M8).add(v7.blend(v6, M8).rearrange(S8));
        FloatVector w4 = v8.blend(v9, M8).add(v9.blend(v8, M8).rearrange(S8));
        FloatVector w5 = va.blend(vb, M8).add(vb.blend(va, M8).rearrange(S8));
        FloatVector w6 = vc.blend(vd, M8).add(vd.blend(vc, M8).rearrange(S8));
        FloatVector w7 = ve.blend(vf, M8).add(vf.blend(ve, M8).rearrange(S8));
        // level 2 (lane ^ 4), 3 (lane ^ 2), 4 (lane ^ 1): lane bit 2, 1, 0 picks vector bit 1, 2, 3
        FloatVector x0 = w0.blend(w1, M4).add(w1.blend(w0, M4).rearrange(S4));
        FloatVector x1 = w2.blend(w3, M4).add(w3.blend(w2, M4).rearrange(S4));
        FloatVector x2 = w4.blend(w5, M4).add(w5.blend(w4, M4).rearrange(S4));
        FloatVector x3 = w6.blend(w7, M4).add(w7.blend(w6, M4).rearrange(S4));
        FloatVector y0 = x0.blend(x1, M2).add(x1.blend(x0, M2).rearrange(S2));
        FloatVector y1 = x2.blend(x3, M2).add(x3.blend(x2, M2).rearrange(S2));
        FloatVector z = y0.blend(y1, M1).add(y1.blend(y0, M1).rearrange(S1));
        // lane i holds vector bitreverse(i)
        z.rearrange(FLOAT_BITREV).intoArray(out, o);
    }

    /** {@link #sums(float[], int, float[], int)} for 8 double vectors (512-bit only, see {@link #SUMS}). */
    static void sums(double[] a, int off, double[] out, int o) {
        DoubleVector v0 = DoubleVector.fromArray(DS, a, off), v1 = DoubleVector.fromArray(DS, a, off + LD);
        DoubleVector v2 = DoubleVector.fromArray(DS, a, off + 2 * LD), v3 = DoubleVector.fromArray(DS, a, off + 3 * LD);
        DoubleVector v4 = DoubleVector.fromArray(DS, a, off + 4 * LD), v5 = DoubleVector.fromArray(DS, a, off + 5 * LD);
        DoubleVector v6 = DoubleVector.fromArray(DS, a, off + 6 * LD), v7 = DoubleVector.fromArray(DS, a, off + 7 * LD);
        DoubleVector w0 = v0.blend(v1, N4).add(v1.blend(v0, N4).rearrange(D4));
        DoubleVector w1 = v2.blend(v3, N4).add(v3.blend(v2, N4).rearrange(D4));
        DoubleVector w2 = v4.blend(v5, N4).add(v5.blend(v4, N4).rearrange(D4));
        DoubleVector w3 = v6.blend(v7, N4).add(v7.blend(v6, N4).rearrange(D4));
        DoubleVector x0 = w0.blend(w1, N2).add(w1.blend(w0, N2).rearrange(D2));
        DoubleVector x1 = w2.blend(w3, N2).add(w3.blend(w2, N2).rearrange(D2));
        DoubleVector z = x0.blend(x1, N1).add(x1.blend(x0, N1).rearrange(D1));
        z.rearrange(DOUBLE_BITREV).intoArray(out, o);
    }

    /** {@link #sum(float[], int)} for doubles. */
    static double sum(double[] a, int off) {
        DoubleVector v = DoubleVector.fromArray(DS, a, off);
        if (LD == 8) {
            v = v.add(v.rearrange(D4));
        }
        v = v.add(v.rearrange(D2));
        v = v.add(v.rearrange(D1));
        return v.lane(0);
    }

    /** {@link #sum} for doubles. */
    static double sum(DoubleVector v) {
        if (LD == 8) {
            v = v.add(v.rearrange(D4));
        }
        v = v.add(v.rearrange(D2));
        v = v.add(v.rearrange(D1));
        return v.lane(0);
    }

    /** {@link QuantSim#e4m3}: e4m3 nearest-even of lanes already clamped to +-448. */
    static FloatVector e4m3(FloatVector v) {
        return QuantSim.e4m3(v);
    }

    /** Below this, e^x < 2^-150 rounds to 0 in float32 and {@link #exp} returns 0. */
    static final float EXP_MIN = -104f;

    /**
     * e^x for x <= 0 (and -inf), within 1 ulp of {@code (float) Math.exp(x)}, subnormal results included.
     * Not {@code lanewise(EXP)}: that is SVML once C2 compiles it and Math.exp per lane before, which differ in
     * about 1 % of lanes. This uses only lanewise IEEE operations, so its bits never depend on the JIT state.
     * (Cephes expf: round x/ln2 to n, reduce with a two-part ln2, degree-6 polynomial, then scale by 2^(n+64)
     * (exact) and 2^-64 (exact unless the result is subnormal). Lanes below EXP_MIN, e.g. the -inf of masked
     * entries, are computed as e^0 and then zeroed, so they never touch subnormals (a microcode assist here).
     */
    static FloatVector exp(FloatVector x) {
        VectorMask<Float> zero = x.compare(VectorOperators.LT, EXP_MIN);
        FloatVector xc = x.blend(0f, zero);
        FloatVector t = xc.fma(FloatVector.broadcast(FS, 1.44269504088896341f), FloatVector.broadcast(FS, 12582912f));
        FloatVector n = t.sub(12582912f);
        FloatVector r = n.fma(FloatVector.broadcast(FS, -0.693359375f), xc);
        r = n.fma(FloatVector.broadcast(FS, 2.12194440e-4f), r);
        FloatVector p = FloatVector.broadcast(FS, 1.9875691500e-4f);
        p = p.fma(r, FloatVector.broadcast(FS, 1.3981999507e-3f));
        p = p.fma(r, FloatVector.broadcast(FS, 8.3334519073e-3f));
        p = p.fma(r, FloatVector.broadcast(FS, 4.1665795894e-2f));
        p = p.fma(r, FloatVector.broadcast(FS, 1.6666665459e-1f));
        p = p.fma(r, FloatVector.broadcast(FS, 5.0000001201e-1f));
        p = p.fma(r.mul(r), r).add(1f);
        // t = 1.5 * 2^23 + n: its low mantissa bits are n (two's complement), so t << 23 puts n in the exponent
        FloatVector scale = t.reinterpretAsInts().lanewise(LSHL, 23).add((127 + 64) << 23).reinterpretAsFloats();
        return p.mul(scale).mul(0x1p-64f).blend(0f, zero);
    }

    // ------------------------------------------------------------------------------------------------ kernels
    // The float64 kernels widen weights in place ((DoubleVector) v.convertShape(F2D, DS, 0)), not through a helper:
    // a helper taking or returning a vector met C2's node count cutoff inside bf16dB4 in some compilations, and a
    // vector that crosses a call C2 does not inline is boxed.

    /** BF16 weights (row at byte wo), float32 accumulation, tokens [0, T) of a tile of T. */
    static void bf16(int T, MemorySegment w, long wo, int c0, int c1, float[] x, long xo,
            float[] acc, int ao) {
        if (T == 1) {
            bf16x1(w, wo, c0, c1, x, xo, acc, ao);
            return;
        }
        int t4 = T & ~3;
        if (t4 > 0) {
            bf16B4(T, t4, w, wo, c0, c1, x, xo, acc, ao);
        }
        if (t4 < T) {
            bf16R(T, t4, w, wo, c0, c1, x, xo, acc, ao);
        }
    }

    /** {@link #bf16}, tokens [0, t4) in blocks of 4 (4 chains in registers), one decode per group. */
    static void bf16B4(int T, int t4, MemorySegment w, long wo, int c0, int c1, float[] x, long xo,
            float[] acc, int ao) {
        for (int c = c0; c < c1; c += GROUP) {
            long wg = wo + 2L * c;
            IntVector q0 = IntVector.fromMemorySegment(IS, w, wg, LE);
            IntVector q1 = IntVector.fromMemorySegment(IS, w, wg + 4L * L, LE);
            IntVector q2 = IntVector.fromMemorySegment(IS, w, wg + 8L * L, LE);
            IntVector q3 = IntVector.fromMemorySegment(IS, w, wg + 12L * L, LE);
            FloatVector d0 = q0.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector d1 = q0.and(0xffff0000).reinterpretAsFloats();
            FloatVector d2 = q1.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector d3 = q1.and(0xffff0000).reinterpretAsFloats();
            FloatVector d4 = q2.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector d5 = q2.and(0xffff0000).reinterpretAsFloats();
            FloatVector d6 = q3.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector d7 = q3.and(0xffff0000).reinterpretAsFloats();
            int xg = (int) (xo >>> 2) + T * c;
            for (int t = 0; t < t4; t += 4) {
                int xt = xg + GROUP * t;
                FloatVector z = FloatVector.zero(FS);
                FloatVector b0 = d0.fma(FloatVector.fromArray(FS, x, xt + (0 * GROUP + 0 * L)), z);
                FloatVector b1 = d0.fma(FloatVector.fromArray(FS, x, xt + (1 * GROUP + 0 * L)), z);
                FloatVector b2 = d0.fma(FloatVector.fromArray(FS, x, xt + (2 * GROUP + 0 * L)), z);
                FloatVector b3 = d0.fma(FloatVector.fromArray(FS, x, xt + (3 * GROUP + 0 * L)), z);
                b0 = d1.fma(FloatVector.fromArray(FS, x, xt + (0 * GROUP + 1 * L)), b0);
                b1 = d1.fma(FloatVector.fromArray(FS, x, xt + (1 * GROUP + 1 * L)), b1);
                b2 = d1.fma(FloatVector.fromArray(FS, x, xt + (2 * GROUP + 1 * L)), b2);
                b3 = d1.fma(FloatVector.fromArray(FS, x, xt + (3 * GROUP + 1 * L)), b3);
                b0 = d2.fma(FloatVector.fromArray(FS, x, xt + (0 * GROUP + 2 * L)), b0);
                b1 = d2.fma(FloatVector.fromArray(FS, x, xt + (1 * GROUP + 2 * L)), b1);
                b2 = d2.fma(FloatVector.fromArray(FS, x, xt + (2 * GROUP + 2 * L)), b2);
                b3 = d2.fma(FloatVector.fromArray(FS, x, xt + (3 * GROUP + 2 * L)), b3);
                b0 = d3.fma(FloatVector.fromArray(FS, x, xt + (0 * GROUP + 3 * L)), b0);
                b1 = d3.fma(FloatVector.fromArray(FS, x, xt + (1 * GROUP + 3 * L)), b1);
                b2 = d3.fma(FloatVector.fromArray(FS, x, xt + (2 * GROUP + 3 * L)), b2);
                b3 = d3.fma(FloatVector.fromArray(FS, x, xt + (3 * GROUP + 3 * L)), b3);
                b0 = d4.fma(FloatVector.fromArray(FS, x, xt + (0 * GROUP + 4 * L)), b0);
                b1 = d4.fma(FloatVector.fromArray(FS, x, xt + (1 * GROUP + 4 * L)), b1);
                b2 = d4.fma(FloatVector.fromArray(FS, x, xt + (2 * GROUP + 4 * L)), b2);
                b3 = d4.fma(FloatVector.fromArray(FS, x, xt + (3 * GROUP + 4 * L)), b3);
                b0 = d5.fma(FloatVector.fromArray(FS, x, xt + (0 * GROUP + 5 * L)), b0);
                b1 = d5.fma(FloatVector.fromArray(FS, x, xt + (1 * GROUP + 5 * L)), b1);
                b2 = d5.fma(FloatVector.fromArray(FS, x, xt + (2 * GROUP + 5 * L)), b2);
                b3 = d5.fma(FloatVector.fromArray(FS, x, xt + (3 * GROUP + 5 * L)), b3);
                b0 = d6.fma(FloatVector.fromArray(FS, x, xt + (0 * GROUP + 6 * L)), b0);
                b1 = d6.fma(FloatVector.fromArray(FS, x, xt + (1 * GROUP + 6 * L)), b1);
                b2 = d6.fma(FloatVector.fromArray(FS, x, xt + (2 * GROUP + 6 * L)), b2);
                b3 = d6.fma(FloatVector.fromArray(FS, x, xt + (3 * GROUP + 6 * L)), b3);
                b0 = d7.fma(FloatVector.fromArray(FS, x, xt + (0 * GROUP + 7 * L)), b0);
                b1 = d7.fma(FloatVector.fromArray(FS, x, xt + (1 * GROUP + 7 * L)), b1);
                b2 = d7.fma(FloatVector.fromArray(FS, x, xt + (2 * GROUP + 7 * L)), b2);
                b3 = d7.fma(FloatVector.fromArray(FS, x, xt + (3 * GROUP + 7 * L)), b3);
                int ai = ao + t * L;
                b0.add(FloatVector.fromArray(FS, acc, ai + 0 * L)).intoArray(acc, ai + 0 * L);
                b1.add(FloatVector.fromArray(FS, acc, ai + 1 * L)).intoArray(acc, ai + 1 * L);
                b2.add(FloatVector.fromArray(FS, acc, ai + 2 * L)).intoArray(acc, ai + 2 * L);
                b3.add(FloatVector.fromArray(FS, acc, ai + 3 * L)).intoArray(acc, ai + 3 * L);
            }
        }
    }

    /** {@link #bf16} for one token, the accumulator in a register: the same operations. */
    static void bf16x1(MemorySegment w, long wo, int c0, int c1, float[] x, long xo, float[] acc, int ao) {
        FloatVector a = FloatVector.fromArray(FS, acc, ao);
        for (int c = c0; c < c1; c += GROUP) {
            long wg = wo + 2L * c;
            IntVector q0 = IntVector.fromMemorySegment(IS, w, wg, LE);
            IntVector q1 = IntVector.fromMemorySegment(IS, w, wg + 4L * L, LE);
            IntVector q2 = IntVector.fromMemorySegment(IS, w, wg + 8L * L, LE);
            IntVector q3 = IntVector.fromMemorySegment(IS, w, wg + 12L * L, LE);
            FloatVector d0 = q0.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector d1 = q0.and(0xffff0000).reinterpretAsFloats();
            FloatVector d2 = q1.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector d3 = q1.and(0xffff0000).reinterpretAsFloats();
            FloatVector d4 = q2.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector d5 = q2.and(0xffff0000).reinterpretAsFloats();
            FloatVector d6 = q3.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector d7 = q3.and(0xffff0000).reinterpretAsFloats();
            int xt = (int) (xo >>> 2) + c;
            FloatVector b = d0.fma(FloatVector.fromArray(FS, x, xt + 0 * L), FloatVector.zero(FS));
            b = d1.fma(FloatVector.fromArray(FS, x, xt + 1 * L), b);
            b = d2.fma(FloatVector.fromArray(FS, x, xt + 2 * L), b);
            b = d3.fma(FloatVector.fromArray(FS, x, xt + 3 * L), b);
            b = d4.fma(FloatVector.fromArray(FS, x, xt + 4 * L), b);
            b = d5.fma(FloatVector.fromArray(FS, x, xt + 5 * L), b);
            b = d6.fma(FloatVector.fromArray(FS, x, xt + 6 * L), b);
            b = d7.fma(FloatVector.fromArray(FS, x, xt + 7 * L), b);
            a = b.add(a);
        }
        a.intoArray(acc, ao);
    }

    /** {@link #bf16}, tokens [t0, T) one at a time (the 1-3 left over by {@link #bf16B4}). */
    static void bf16R(int T, int t0, MemorySegment w, long wo, int c0, int c1, float[] x, long xo,
            float[] acc, int ao) {
        for (int c = c0; c < c1; c += GROUP) {
            long wg = wo + 2L * c;
            IntVector q0 = IntVector.fromMemorySegment(IS, w, wg, LE);
            IntVector q1 = IntVector.fromMemorySegment(IS, w, wg + 4L * L, LE);
            IntVector q2 = IntVector.fromMemorySegment(IS, w, wg + 8L * L, LE);
            IntVector q3 = IntVector.fromMemorySegment(IS, w, wg + 12L * L, LE);
            FloatVector d0 = q0.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector d1 = q0.and(0xffff0000).reinterpretAsFloats();
            FloatVector d2 = q1.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector d3 = q1.and(0xffff0000).reinterpretAsFloats();
            FloatVector d4 = q2.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector d5 = q2.and(0xffff0000).reinterpretAsFloats();
            FloatVector d6 = q3.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector d7 = q3.and(0xffff0000).reinterpretAsFloats();
            int xg = (int) (xo >>> 2) + T * c;
            for (int t = t0; t < T; t++) {
                int xt = xg + GROUP * t;
                FloatVector b = d0.fma(FloatVector.fromArray(FS, x, xt + 0 * L), FloatVector.zero(FS));
                b = d1.fma(FloatVector.fromArray(FS, x, xt + 1 * L), b);
                b = d2.fma(FloatVector.fromArray(FS, x, xt + 2 * L), b);
                b = d3.fma(FloatVector.fromArray(FS, x, xt + 3 * L), b);
                b = d4.fma(FloatVector.fromArray(FS, x, xt + 4 * L), b);
                b = d5.fma(FloatVector.fromArray(FS, x, xt + 5 * L), b);
                b = d6.fma(FloatVector.fromArray(FS, x, xt + 6 * L), b);
                b = d7.fma(FloatVector.fromArray(FS, x, xt + 7 * L), b);
                int ai = ao + t * L;
                b.add(FloatVector.fromArray(FS, acc, ai)).intoArray(acc, ai);
            }
        }
    }

    /** BF16 weights (row at byte wo), float64 accumulation of activations stored as doubles, tokens [0, T) of a tile of T. */
    static void bf16d(int T, MemorySegment w, long wo, int c0, int c1, double[] x, long xo,
            double[] acc, int ao) {
        if (T == 1) {
            bf16dx1(w, wo, c0, c1, x, xo, acc, ao);
            return;
        }
        if (T == 8) {
            bf16dX8(T, 0, w, wo, c0, c1, x, xo, acc, ao);
            return;
        }
        int t4 = T & ~3;
        if (t4 > 0) {
            bf16dB4(T, t4, w, wo, c0, c1, x, xo, acc, ao);
        }
        if (t4 < T) {
            bf16dR(T, t4, w, wo, c0, c1, x, xo, acc, ao);
        }
    }

    /**
     * {@link #bf16d} for a tile of exactly 8 tokens (an attention worker's micro-batch of a batch of 16 in two), the
     * accumulators in registers across the panel: against the pairs of {@link #bf16dB4}, 0.87-0.92x the time
     * (PairedKernelAb --kind wide, hot, 256x1024 and 1024x1024, one thread). Other tile sizes stay with the pairs:
     * 16 tokens as two blocks of 8 took 1.13-1.14x their time (each block decodes the group again; the float64
     * decode costs as much as the accumulator round trips saved), 12 as 8 + 4 1.2-1.3x. Per token the
     * same chain of 8 FMAs from zero per group and the same add into its accumulator as {@link #bf16dB4}, so the
     * same bits. The group's weights are decoded per half (a quarter of the group per int vector) inside a loop of
     * two, which keeps the method small enough for C2 to inline every vector operation.
     */
    static void bf16dX8(int T, int t, MemorySegment w, long wo, int c0, int c1, double[] x, long xo,
            double[] acc, int ao) {
        int at = ao + t * LD;
        DoubleVector a0 = DoubleVector.fromArray(DS, acc, at + 0 * LD);
        DoubleVector a1 = DoubleVector.fromArray(DS, acc, at + 1 * LD);
        DoubleVector a2 = DoubleVector.fromArray(DS, acc, at + 2 * LD);
        DoubleVector a3 = DoubleVector.fromArray(DS, acc, at + 3 * LD);
        DoubleVector a4 = DoubleVector.fromArray(DS, acc, at + 4 * LD);
        DoubleVector a5 = DoubleVector.fromArray(DS, acc, at + 5 * LD);
        DoubleVector a6 = DoubleVector.fromArray(DS, acc, at + 6 * LD);
        DoubleVector a7 = DoubleVector.fromArray(DS, acc, at + 7 * LD);
        for (int c = c0; c < c1; c += DGROUP) {
            int xt = (int) (xo >>> 3) + T * c + DGROUP * t;
            DoubleVector b0 = DoubleVector.zero(DS);
            DoubleVector b1 = b0;
            DoubleVector b2 = b0;
            DoubleVector b3 = b0;
            DoubleVector b4 = b0;
            DoubleVector b5 = b0;
            DoubleVector b6 = b0;
            DoubleVector b7 = b0;
            for (int h = 0; h < 2; h++) {
                IntVector q = IntVector.fromMemorySegment(IS, w, wo + 2L * c + h * 8L * LD, LE);
                FloatVector e = q.lanewise(LSHL, 16).reinterpretAsFloats();
                FloatVector o = q.and(0xffff0000).reinterpretAsFloats();
                int xj = xt + 4 * h * LD;
                DoubleVector d = (DoubleVector) e.convertShape(F2D, DS, 0);
                b0 = d.fma(DoubleVector.fromArray(DS, x, xj + 0 * DGROUP), b0);
                b1 = d.fma(DoubleVector.fromArray(DS, x, xj + 1 * DGROUP), b1);
                b2 = d.fma(DoubleVector.fromArray(DS, x, xj + 2 * DGROUP), b2);
                b3 = d.fma(DoubleVector.fromArray(DS, x, xj + 3 * DGROUP), b3);
                b4 = d.fma(DoubleVector.fromArray(DS, x, xj + 4 * DGROUP), b4);
                b5 = d.fma(DoubleVector.fromArray(DS, x, xj + 5 * DGROUP), b5);
                b6 = d.fma(DoubleVector.fromArray(DS, x, xj + 6 * DGROUP), b6);
                b7 = d.fma(DoubleVector.fromArray(DS, x, xj + 7 * DGROUP), b7);
                xj += LD;
                d = (DoubleVector) o.convertShape(F2D, DS, 0);
                b0 = d.fma(DoubleVector.fromArray(DS, x, xj + 0 * DGROUP), b0);
                b1 = d.fma(DoubleVector.fromArray(DS, x, xj + 1 * DGROUP), b1);
                b2 = d.fma(DoubleVector.fromArray(DS, x, xj + 2 * DGROUP), b2);
                b3 = d.fma(DoubleVector.fromArray(DS, x, xj + 3 * DGROUP), b3);
                b4 = d.fma(DoubleVector.fromArray(DS, x, xj + 4 * DGROUP), b4);
                b5 = d.fma(DoubleVector.fromArray(DS, x, xj + 5 * DGROUP), b5);
                b6 = d.fma(DoubleVector.fromArray(DS, x, xj + 6 * DGROUP), b6);
                b7 = d.fma(DoubleVector.fromArray(DS, x, xj + 7 * DGROUP), b7);
                xj += LD;
                d = (DoubleVector) e.convertShape(F2D, DS, 1);
                b0 = d.fma(DoubleVector.fromArray(DS, x, xj + 0 * DGROUP), b0);
                b1 = d.fma(DoubleVector.fromArray(DS, x, xj + 1 * DGROUP), b1);
                b2 = d.fma(DoubleVector.fromArray(DS, x, xj + 2 * DGROUP), b2);
                b3 = d.fma(DoubleVector.fromArray(DS, x, xj + 3 * DGROUP), b3);
                b4 = d.fma(DoubleVector.fromArray(DS, x, xj + 4 * DGROUP), b4);
                b5 = d.fma(DoubleVector.fromArray(DS, x, xj + 5 * DGROUP), b5);
                b6 = d.fma(DoubleVector.fromArray(DS, x, xj + 6 * DGROUP), b6);
                b7 = d.fma(DoubleVector.fromArray(DS, x, xj + 7 * DGROUP), b7);
                xj += LD;
                d = (DoubleVector) o.convertShape(F2D, DS, 1);
                b0 = d.fma(DoubleVector.fromArray(DS, x, xj + 0 * DGROUP), b0);
                b1 = d.fma(DoubleVector.fromArray(DS, x, xj + 1 * DGROUP), b1);
                b2 = d.fma(DoubleVector.fromArray(DS, x, xj + 2 * DGROUP), b2);
                b3 = d.fma(DoubleVector.fromArray(DS, x, xj + 3 * DGROUP), b3);
                b4 = d.fma(DoubleVector.fromArray(DS, x, xj + 4 * DGROUP), b4);
                b5 = d.fma(DoubleVector.fromArray(DS, x, xj + 5 * DGROUP), b5);
                b6 = d.fma(DoubleVector.fromArray(DS, x, xj + 6 * DGROUP), b6);
                b7 = d.fma(DoubleVector.fromArray(DS, x, xj + 7 * DGROUP), b7);
            }
            a0 = b0.add(a0);
            a1 = b1.add(a1);
            a2 = b2.add(a2);
            a3 = b3.add(a3);
            a4 = b4.add(a4);
            a5 = b5.add(a5);
            a6 = b6.add(a6);
            a7 = b7.add(a7);
        }
        a0.intoArray(acc, at + 0 * LD);
        a1.intoArray(acc, at + 1 * LD);
        a2.intoArray(acc, at + 2 * LD);
        a3.intoArray(acc, at + 3 * LD);
        a4.intoArray(acc, at + 4 * LD);
        a5.intoArray(acc, at + 5 * LD);
        a6.intoArray(acc, at + 6 * LD);
        a7.intoArray(acc, at + 7 * LD);
    }

    /** {@link #bf16d}, tokens [0, t4) two at a time (2 chains in registers), one weight decode per group. */
    static void bf16dB4(int T, int t4, MemorySegment w, long wo, int c0, int c1, double[] x, long xo,
            double[] acc, int ao) {
        for (int c = c0; c < c1; c += DGROUP) {
            long wg = wo + 2L * c;
            IntVector q01 = IntVector.fromMemorySegment(IS, w, wg, LE);
            IntVector q23 = IntVector.fromMemorySegment(IS, w, wg + 8L * LD, LE);
            FloatVector e01 = q01.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector o01 = q01.and(0xffff0000).reinterpretAsFloats();
            FloatVector e23 = q23.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector o23 = q23.and(0xffff0000).reinterpretAsFloats();
            DoubleVector d0 = (DoubleVector) e01.convertShape(F2D, DS, 0);
            DoubleVector d1 = (DoubleVector) o01.convertShape(F2D, DS, 0);
            DoubleVector d2 = (DoubleVector) e01.convertShape(F2D, DS, 1);
            DoubleVector d3 = (DoubleVector) o01.convertShape(F2D, DS, 1);
            DoubleVector d4 = (DoubleVector) e23.convertShape(F2D, DS, 0);
            DoubleVector d5 = (DoubleVector) o23.convertShape(F2D, DS, 0);
            DoubleVector d6 = (DoubleVector) e23.convertShape(F2D, DS, 1);
            DoubleVector d7 = (DoubleVector) o23.convertShape(F2D, DS, 1);
            int xg = (int) (xo >>> 3) + T * c;
            // Two tokens per pass, not four: with four accumulators C2 (JDK 25) fails this method with "illegal
            // oopMap register name" and leaves it in C1, where every vector operation is boxed (100x slower).
            for (int t = 0; t < t4; t += 2) {
                int xt = xg + DGROUP * t;
                DoubleVector z = DoubleVector.zero(DS);
                DoubleVector b0 = d0.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 0 * LD)), z);
                DoubleVector b1 = d0.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 0 * LD)), z);
                b0 = d1.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 1 * LD)), b0);
                b1 = d1.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 1 * LD)), b1);
                b0 = d2.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 2 * LD)), b0);
                b1 = d2.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 2 * LD)), b1);
                b0 = d3.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 3 * LD)), b0);
                b1 = d3.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 3 * LD)), b1);
                b0 = d4.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 4 * LD)), b0);
                b1 = d4.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 4 * LD)), b1);
                b0 = d5.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 5 * LD)), b0);
                b1 = d5.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 5 * LD)), b1);
                b0 = d6.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 6 * LD)), b0);
                b1 = d6.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 6 * LD)), b1);
                b0 = d7.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 7 * LD)), b0);
                b1 = d7.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 7 * LD)), b1);
                int ai = ao + t * LD;
                b0.add(DoubleVector.fromArray(DS, acc, ai + 0 * LD)).intoArray(acc, ai + 0 * LD);
                b1.add(DoubleVector.fromArray(DS, acc, ai + 1 * LD)).intoArray(acc, ai + 1 * LD);
            }
        }
    }

    /** {@link #bf16d} for one token, the accumulator in a register: the same operations. */
    static void bf16dx1(MemorySegment w, long wo, int c0, int c1, double[] x, long xo, double[] acc, int ao) {
        DoubleVector a = DoubleVector.fromArray(DS, acc, ao);
        for (int c = c0; c < c1; c += DGROUP) {
            long wg = wo + 2L * c;
            IntVector q01 = IntVector.fromMemorySegment(IS, w, wg, LE);
            IntVector q23 = IntVector.fromMemorySegment(IS, w, wg + 8L * LD, LE);
            FloatVector e01 = q01.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector o01 = q01.and(0xffff0000).reinterpretAsFloats();
            FloatVector e23 = q23.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector o23 = q23.and(0xffff0000).reinterpretAsFloats();
            DoubleVector d0 = (DoubleVector) e01.convertShape(F2D, DS, 0);
            DoubleVector d1 = (DoubleVector) o01.convertShape(F2D, DS, 0);
            DoubleVector d2 = (DoubleVector) e01.convertShape(F2D, DS, 1);
            DoubleVector d3 = (DoubleVector) o01.convertShape(F2D, DS, 1);
            DoubleVector d4 = (DoubleVector) e23.convertShape(F2D, DS, 0);
            DoubleVector d5 = (DoubleVector) o23.convertShape(F2D, DS, 0);
            DoubleVector d6 = (DoubleVector) e23.convertShape(F2D, DS, 1);
            DoubleVector d7 = (DoubleVector) o23.convertShape(F2D, DS, 1);
            int xt = (int) (xo >>> 3) + c;
            DoubleVector b = d0.fma(DoubleVector.fromArray(DS, x, xt + 0 * LD), DoubleVector.zero(DS));
            b = d1.fma(DoubleVector.fromArray(DS, x, xt + 1 * LD), b);
            b = d2.fma(DoubleVector.fromArray(DS, x, xt + 2 * LD), b);
            b = d3.fma(DoubleVector.fromArray(DS, x, xt + 3 * LD), b);
            b = d4.fma(DoubleVector.fromArray(DS, x, xt + 4 * LD), b);
            b = d5.fma(DoubleVector.fromArray(DS, x, xt + 5 * LD), b);
            b = d6.fma(DoubleVector.fromArray(DS, x, xt + 6 * LD), b);
            b = d7.fma(DoubleVector.fromArray(DS, x, xt + 7 * LD), b);
            a = b.add(a);
        }
        a.intoArray(acc, ao);
    }

    /** {@link #bf16d}, tokens [t0, T) one at a time (the 1-3 left over by {@link #bf16dB4}). */
    static void bf16dR(int T, int t0, MemorySegment w, long wo, int c0, int c1, double[] x, long xo,
            double[] acc, int ao) {
        for (int c = c0; c < c1; c += DGROUP) {
            long wg = wo + 2L * c;
            IntVector q01 = IntVector.fromMemorySegment(IS, w, wg, LE);
            IntVector q23 = IntVector.fromMemorySegment(IS, w, wg + 8L * LD, LE);
            FloatVector e01 = q01.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector o01 = q01.and(0xffff0000).reinterpretAsFloats();
            FloatVector e23 = q23.lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector o23 = q23.and(0xffff0000).reinterpretAsFloats();
            DoubleVector d0 = (DoubleVector) e01.convertShape(F2D, DS, 0);
            DoubleVector d1 = (DoubleVector) o01.convertShape(F2D, DS, 0);
            DoubleVector d2 = (DoubleVector) e01.convertShape(F2D, DS, 1);
            DoubleVector d3 = (DoubleVector) o01.convertShape(F2D, DS, 1);
            DoubleVector d4 = (DoubleVector) e23.convertShape(F2D, DS, 0);
            DoubleVector d5 = (DoubleVector) o23.convertShape(F2D, DS, 0);
            DoubleVector d6 = (DoubleVector) e23.convertShape(F2D, DS, 1);
            DoubleVector d7 = (DoubleVector) o23.convertShape(F2D, DS, 1);
            int xg = (int) (xo >>> 3) + T * c;
            for (int t = t0; t < T; t++) {
                int xt = xg + DGROUP * t;
                DoubleVector b = d0.fma(DoubleVector.fromArray(DS, x, xt + 0 * LD), DoubleVector.zero(DS));
                b = d1.fma(DoubleVector.fromArray(DS, x, xt + 1 * LD), b);
                b = d2.fma(DoubleVector.fromArray(DS, x, xt + 2 * LD), b);
                b = d3.fma(DoubleVector.fromArray(DS, x, xt + 3 * LD), b);
                b = d4.fma(DoubleVector.fromArray(DS, x, xt + 4 * LD), b);
                b = d5.fma(DoubleVector.fromArray(DS, x, xt + 5 * LD), b);
                b = d6.fma(DoubleVector.fromArray(DS, x, xt + 6 * LD), b);
                b = d7.fma(DoubleVector.fromArray(DS, x, xt + 7 * LD), b);
                int ai = ao + t * LD;
                b.add(DoubleVector.fromArray(DS, acc, ai)).intoArray(acc, ai);
            }
        }
    }

    /** F32 weights (row at byte wo), float64 accumulation of activations stored as doubles, tokens [0, T) of a tile of T. */
    static void f32d(int T, MemorySegment w, long wo, int c0, int c1, double[] x, long xo,
            double[] acc, int ao) {
        if (T == 1) {
            f32dx1(w, wo, c0, c1, x, xo, acc, ao);
            return;
        }
        int t4 = T & ~3;
        if (t4 > 0) {
            f32dB4(T, t4, w, wo, c0, c1, x, xo, acc, ao);
        }
        if (t4 < T) {
            f32dR(T, t4, w, wo, c0, c1, x, xo, acc, ao);
        }
    }

    /** {@link #f32d}, tokens [0, t4) in blocks of 4 (4 chains in registers), one decode per group. */
    static void f32dB4(int T, int t4, MemorySegment w, long wo, int c0, int c1, double[] x, long xo,
            double[] acc, int ao) {
        for (int c = c0; c < c1; c += DGROUP) {
            long wg = wo + 4L * c;
            FloatVector f01 = FloatVector.fromMemorySegment(FS, w, wg, LE);
            FloatVector f23 = FloatVector.fromMemorySegment(FS, w, wg + 8L * LD, LE);
            FloatVector f45 = FloatVector.fromMemorySegment(FS, w, wg + 16L * LD, LE);
            FloatVector f67 = FloatVector.fromMemorySegment(FS, w, wg + 24L * LD, LE);
            DoubleVector d0 = (DoubleVector) f01.convertShape(F2D, DS, 0);
            DoubleVector d1 = (DoubleVector) f01.convertShape(F2D, DS, 1);
            DoubleVector d2 = (DoubleVector) f23.convertShape(F2D, DS, 0);
            DoubleVector d3 = (DoubleVector) f23.convertShape(F2D, DS, 1);
            DoubleVector d4 = (DoubleVector) f45.convertShape(F2D, DS, 0);
            DoubleVector d5 = (DoubleVector) f45.convertShape(F2D, DS, 1);
            DoubleVector d6 = (DoubleVector) f67.convertShape(F2D, DS, 0);
            DoubleVector d7 = (DoubleVector) f67.convertShape(F2D, DS, 1);
            int xg = (int) (xo >>> 3) + T * c;
            for (int t = 0; t < t4; t += 4) {
                int xt = xg + DGROUP * t;
                DoubleVector z = DoubleVector.zero(DS);
                DoubleVector b0 = d0.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 0 * LD)), z);
                DoubleVector b1 = d0.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 0 * LD)), z);
                DoubleVector b2 = d0.fma(DoubleVector.fromArray(DS, x, xt + (2 * DGROUP + 0 * LD)), z);
                DoubleVector b3 = d0.fma(DoubleVector.fromArray(DS, x, xt + (3 * DGROUP + 0 * LD)), z);
                b0 = d1.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 1 * LD)), b0);
                b1 = d1.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 1 * LD)), b1);
                b2 = d1.fma(DoubleVector.fromArray(DS, x, xt + (2 * DGROUP + 1 * LD)), b2);
                b3 = d1.fma(DoubleVector.fromArray(DS, x, xt + (3 * DGROUP + 1 * LD)), b3);
                b0 = d2.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 2 * LD)), b0);
                b1 = d2.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 2 * LD)), b1);
                b2 = d2.fma(DoubleVector.fromArray(DS, x, xt + (2 * DGROUP + 2 * LD)), b2);
                b3 = d2.fma(DoubleVector.fromArray(DS, x, xt + (3 * DGROUP + 2 * LD)), b3);
                b0 = d3.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 3 * LD)), b0);
                b1 = d3.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 3 * LD)), b1);
                b2 = d3.fma(DoubleVector.fromArray(DS, x, xt + (2 * DGROUP + 3 * LD)), b2);
                b3 = d3.fma(DoubleVector.fromArray(DS, x, xt + (3 * DGROUP + 3 * LD)), b3);
                b0 = d4.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 4 * LD)), b0);
                b1 = d4.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 4 * LD)), b1);
                b2 = d4.fma(DoubleVector.fromArray(DS, x, xt + (2 * DGROUP + 4 * LD)), b2);
                b3 = d4.fma(DoubleVector.fromArray(DS, x, xt + (3 * DGROUP + 4 * LD)), b3);
                b0 = d5.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 5 * LD)), b0);
                b1 = d5.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 5 * LD)), b1);
                b2 = d5.fma(DoubleVector.fromArray(DS, x, xt + (2 * DGROUP + 5 * LD)), b2);
                b3 = d5.fma(DoubleVector.fromArray(DS, x, xt + (3 * DGROUP + 5 * LD)), b3);
                b0 = d6.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 6 * LD)), b0);
                b1 = d6.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 6 * LD)), b1);
                b2 = d6.fma(DoubleVector.fromArray(DS, x, xt + (2 * DGROUP + 6 * LD)), b2);
                b3 = d6.fma(DoubleVector.fromArray(DS, x, xt + (3 * DGROUP + 6 * LD)), b3);
                b0 = d7.fma(DoubleVector.fromArray(DS, x, xt + (0 * DGROUP + 7 * LD)), b0);
                b1 = d7.fma(DoubleVector.fromArray(DS, x, xt + (1 * DGROUP + 7 * LD)), b1);
                b2 = d7.fma(DoubleVector.fromArray(DS, x, xt + (2 * DGROUP + 7 * LD)), b2);
                b3 = d7.fma(DoubleVector.fromArray(DS, x, xt + (3 * DGROUP + 7 * LD)), b3);
                int ai = ao + t * LD;
                b0.add(DoubleVector.fromArray(DS, acc, ai + 0 * LD)).intoArray(acc, ai + 0 * LD);
                b1.add(DoubleVector.fromArray(DS, acc, ai + 1 * LD)).intoArray(acc, ai + 1 * LD);
                b2.add(DoubleVector.fromArray(DS, acc, ai + 2 * LD)).intoArray(acc, ai + 2 * LD);
                b3.add(DoubleVector.fromArray(DS, acc, ai + 3 * LD)).intoArray(acc, ai + 3 * LD);
            }
        }
    }

    /** {@link #f32d} for one token, the accumulator in a register: the same operations. */
    static void f32dx1(MemorySegment w, long wo, int c0, int c1, double[] x, long xo, double[] acc, int ao) {
        DoubleVector a = DoubleVector.fromArray(DS, acc, ao);
        for (int c = c0; c < c1; c += DGROUP) {
            long wg = wo + 4L * c;
            FloatVector f01 = FloatVector.fromMemorySegment(FS, w, wg, LE);
            FloatVector f23 = FloatVector.fromMemorySegment(FS, w, wg + 8L * LD, LE);
            FloatVector f45 = FloatVector.fromMemorySegment(FS, w, wg + 16L * LD, LE);
            FloatVector f67 = FloatVector.fromMemorySegment(FS, w, wg + 24L * LD, LE);
            DoubleVector d0 = (DoubleVector) f01.convertShape(F2D, DS, 0);
            DoubleVector d1 = (DoubleVector) f01.convertShape(F2D, DS, 1);
            DoubleVector d2 = (DoubleVector) f23.convertShape(F2D, DS, 0);
            DoubleVector d3 = (DoubleVector) f23.convertShape(F2D, DS, 1);
            DoubleVector d4 = (DoubleVector) f45.convertShape(F2D, DS, 0);
            DoubleVector d5 = (DoubleVector) f45.convertShape(F2D, DS, 1);
            DoubleVector d6 = (DoubleVector) f67.convertShape(F2D, DS, 0);
            DoubleVector d7 = (DoubleVector) f67.convertShape(F2D, DS, 1);
            int xt = (int) (xo >>> 3) + c;
            DoubleVector b = d0.fma(DoubleVector.fromArray(DS, x, xt + 0 * LD), DoubleVector.zero(DS));
            b = d1.fma(DoubleVector.fromArray(DS, x, xt + 1 * LD), b);
            b = d2.fma(DoubleVector.fromArray(DS, x, xt + 2 * LD), b);
            b = d3.fma(DoubleVector.fromArray(DS, x, xt + 3 * LD), b);
            b = d4.fma(DoubleVector.fromArray(DS, x, xt + 4 * LD), b);
            b = d5.fma(DoubleVector.fromArray(DS, x, xt + 5 * LD), b);
            b = d6.fma(DoubleVector.fromArray(DS, x, xt + 6 * LD), b);
            b = d7.fma(DoubleVector.fromArray(DS, x, xt + 7 * LD), b);
            a = b.add(a);
        }
        a.intoArray(acc, ao);
    }

    /** {@link #f32d}, tokens [t0, T) one at a time (the 1-3 left over by {@link #f32dB4}). */
    static void f32dR(int T, int t0, MemorySegment w, long wo, int c0, int c1, double[] x, long xo,
            double[] acc, int ao) {
        for (int c = c0; c < c1; c += DGROUP) {
            long wg = wo + 4L * c;
            FloatVector f01 = FloatVector.fromMemorySegment(FS, w, wg, LE);
            FloatVector f23 = FloatVector.fromMemorySegment(FS, w, wg + 8L * LD, LE);
            FloatVector f45 = FloatVector.fromMemorySegment(FS, w, wg + 16L * LD, LE);
            FloatVector f67 = FloatVector.fromMemorySegment(FS, w, wg + 24L * LD, LE);
            DoubleVector d0 = (DoubleVector) f01.convertShape(F2D, DS, 0);
            DoubleVector d1 = (DoubleVector) f01.convertShape(F2D, DS, 1);
            DoubleVector d2 = (DoubleVector) f23.convertShape(F2D, DS, 0);
            DoubleVector d3 = (DoubleVector) f23.convertShape(F2D, DS, 1);
            DoubleVector d4 = (DoubleVector) f45.convertShape(F2D, DS, 0);
            DoubleVector d5 = (DoubleVector) f45.convertShape(F2D, DS, 1);
            DoubleVector d6 = (DoubleVector) f67.convertShape(F2D, DS, 0);
            DoubleVector d7 = (DoubleVector) f67.convertShape(F2D, DS, 1);
            int xg = (int) (xo >>> 3) + T * c;
            for (int t = t0; t < T; t++) {
                int xt = xg + DGROUP * t;
                DoubleVector b = d0.fma(DoubleVector.fromArray(DS, x, xt + 0 * LD), DoubleVector.zero(DS));
                b = d1.fma(DoubleVector.fromArray(DS, x, xt + 1 * LD), b);
                b = d2.fma(DoubleVector.fromArray(DS, x, xt + 2 * LD), b);
                b = d3.fma(DoubleVector.fromArray(DS, x, xt + 3 * LD), b);
                b = d4.fma(DoubleVector.fromArray(DS, x, xt + 4 * LD), b);
                b = d5.fma(DoubleVector.fromArray(DS, x, xt + 5 * LD), b);
                b = d6.fma(DoubleVector.fromArray(DS, x, xt + 6 * LD), b);
                b = d7.fma(DoubleVector.fromArray(DS, x, xt + 7 * LD), b);
                int ai = ao + t * LD;
                b.add(DoubleVector.fromArray(DS, acc, ai)).intoArray(acc, ai);
            }
        }
    }
}
