package io.epserve.model.kernel;

import static io.epserve.model.kernel.TileKernels.DGROUP;
import static io.epserve.model.kernel.TileKernels.DS;
import static io.epserve.model.kernel.TileKernels.FS;
import static io.epserve.model.kernel.TileKernels.GROUP;
import static io.epserve.model.kernel.TileKernels.L;
import static io.epserve.model.kernel.TileKernels.LD;

import io.epserve.model.format.Bf16;
import io.epserve.model.format.E8m0;
import io.epserve.model.format.Fp8E4m3;
import io.epserve.model.weights.Bf16Matrix;
import io.epserve.model.weights.F32Matrix;
import io.epserve.model.weights.Fp4Matrix;
import io.epserve.model.weights.Fp8Matrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

/**
 * The fast kernel set: Vector API, weights read in their stored form straight from the mapped checkpoint, rows
 * split over a fixed thread pool, and all of a call's tokens computed in one pass over the weights. The bf16-out
 * linears accumulate in float32; the "wide" linears ({@link #bf16LinearWide}, {@link #f32LinearWide}: compressor,
 * MoE gate, mHC, lm head, whose unrounded results feed softmaxes and later roundings) accumulate in float64 and
 * agree with the exact set to ~1e-15 relative.
 *
 * <p><b>Batch invariance.</b> Every method gives each token bit-identical results whatever the number of tokens
 * in the call, the thread count and the row split: a token's value is computed by one thread with one fixed
 * sequence of operations (see {@link TileKernels}); threads only split output rows (linears), heads (attention)
 * or keys (indexer), never a reduction. Reductions never use {@code reduceLanes(ADD)} and attention never uses
 * {@code lanewise(EXP)}: both change bits when C2 compiles them (see {@link TileKernels#sum},
 * {@link TileKernels#exp}), which would make a token's result depend on when it was computed.
 *
 * <p>Structure of a linear: {@link #prepare} quantises (bit-exact) and lays out the activations once per call;
 * workers then claim chunks of at most 16 rows; for each tile of at most 16 tokens a chunk is swept in column
 * panels whose activations stay in L1, and {@link TileKernels} decodes each group of 8 weight vectors once per
 * tile and FMAs it into every token's accumulator. Beyond 16 tokens each further tile decodes the chunk again
 * from L2; the weights still come from memory once. FP8 products differ: they read panelled matrices (lanes = rows)
 * through {@link Fp8PanelKernels}, whose accumulators stay in registers and need no lane sums.
 *
 * <p>Numerics: FP8 activation quantisation is bit-exact with {@link io.epserve.model.format.QuantSim}, weights
 * decode exactly, products are exact in float32; only the float32 summation order differs from the exact set, so
 * bf16 results agree with it except where a sum lands within float32 noise of a bf16 rounding boundary.
 *
 * <p>Not thread-safe: one call at a time per instance (the scratch buffers are per instance). Scratch grows to the
 * largest shape seen and is then reused, so steady-state calls allocate nothing.
 *
 * <p>Supports 512- and 256-bit preferred species; on anything else (e.g. 128-bit NEON/SSE-only hosts) every
 * method delegates to {@link ExactKernels}, which is correct but slow.
 */
public final class FastKernels implements Kernels {
    static final int MAX_TILE = 16;
    /** Below this many multiply-adds a call runs on the caller alone: a hand-off costs more than it saves. */
    static final long SERIAL_MACS = 1L << 19;
    /** Target bytes of weights per claimed row chunk: big enough to amortise the claim, small enough to balance. */
    static final long CHUNK_BYTES = 128 << 10;
    /**
     * Rows per claimed chunk: at least this many, and more while the chunk's partial sums (at most 16 KiB) and the
     * panel's activations fit in 40 KiB of the 48 KiB L1 together, up to 16 * (16 / tile tokens) rows (the scratch
     * bound). Each chunk costs a claim, a clear of its partial sums and a loop setup: with 16 rows a 1-token
     * 1024x512 expert product (64 chunks) took 1.25x as long as a 128x4096 one (8 chunks); 256 rows at 1 token fix
     * that. The L1 budget matters: 32 rows for an 8-token tile over 1024 columns (16 KiB of sums beside 32 KiB of
     * activations) made that FP8 product 1.3x slower.
     */
    static final int MAX_CHUNK_ROWS = 16;
    static final int CHUNK_SUMS_BYTES = 16 << 10;
    static final int CHUNK_L1_BYTES = 40 << 10;
    /**
     * Activation bytes of one panel of one token tile (L1 is 48 KiB). 32 KiB rather than 16: at 1 token a whole
     * 8192-column row then fits one panel, so a row chunk's weights stream sequentially instead of in 2 KiB pieces
     * that hop between rows (measured +25-30 % for the former row-wise FP4 and +65 % FP8 kernels at 1 token from
     * DRAM; neutral at 4 and 16).
     */
    static final int XPANEL_BYTES = 32 << 10;
    static final long DEFAULT_SPIN_NANOS = 50_000;

    private static final ValueLayout.OfShort BF16_LE =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32_LE =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Kinds of {@link #runLinear}: float32 accumulation (BF16) and float64 accumulation (BF16D, F32D). */
    private static final int K_BF16 = 0, K_BF16D = 1, K_F32D = 2;

    private final KernelPool pool;
    private final ExactKernels fallback;
    /** headRmsNorm's lane sums, summed in index order. */
    private final double[] normLanes = new double[LD];
    private final int threads;

    /**
     * Activations in kernel order (see {@link #prepare}), off-heap and 64-byte aligned: a float[] starts 16 bytes
     * into its object, so every 64-byte vector load from it would straddle two cache lines (measured in C on this
     * machine: 53 instead of 81 GFLOP/s for the former 16-token FP4 tile). Grown (rarely) by replacing its arena.
     */
    // Prepared activations live in heap arrays, not segments: an array load is intrinsified whatever C2's profile
    // says, while a segment load depends on C2 knowing the segment's class (measured: when it does not, every vector
    // op of the kernel is boxed, 5-100x slower, and which runs get unlucky varies).
    private final java.util.Map<Fp8Matrix, Fp8Matrix> panelled8 = new java.util.IdentityHashMap<>();
    private final java.util.Map<Fp4Matrix, Fp4Matrix> panelled4 = new java.util.IdentityHashMap<>();
    private float[] xf = new float[16];
    private double[] xd = new double[16];
    private float[] rowBuf = new float[0];
    private final LinearJob linear;
    private final PanelJob panels;
    private final AttentionJob attention;
    private final IndexJob index = new IndexJob();

    /** @param threads total threads including the caller (the caller works too); 1 = single-threaded */
    public FastKernels(int threads) {
        this(threads, DEFAULT_SPIN_NANOS);
    }

    /** @param spinNanos how long idle pool threads spin before parking (0 = park at once) */
    public FastKernels(int threads, long spinNanos) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1: " + threads);
        }
        this.threads = threads;
        this.fallback = TileKernels.SUPPORTED ? null : new ExactKernels();
        this.pool = new KernelPool(TileKernels.SUPPORTED ? threads : 1, spinNanos, "epserve-kernel");
        this.attention = new AttentionJob(threads);
        this.linear = new LinearJob(threads);
        this.panels = new PanelJob(threads);
    }

    @Override
    public String name() {
        return "fast";
    }

    public int threads() {
        return threads;
    }

    @Override
    public void close() {
        pool.close();
    }

    // ------------------------------------------------------------------------------------------------ elementwise

    /**
     * The SwiGLU in float32 lanes: {@code silu(g) = g * sigmoid(g)} with {@code sigmoid} from {@code e = e^-|g|} (so
     * the exponential never overflows: {@code 1 / (1 + e)} for g >= 0, {@code e / (1 + e)} below), then times the
     * clamped u and the row's weight, rounded to bf16. The exact set's float64 Math.exp per element took 7 % of an
     * expert worker's time. A row's tail past the last whole vector takes the same formula through float Math.exp,
     * so each value depends only on its position in the row, never on the batch.
     */
    @Override
    public void swiglu(float[] g, float[] u, int rows, int inter, double[] weight, double limit) {
        if (fallback != null) {
            fallback.swiglu(g, u, rows, inter, weight, limit);
            return;
        }
        boolean clamp = limit > 0;
        float lim = (float) limit;
        int bound = FS.loopBound(inter);
        for (int r = 0; r < rows; r++) {
            float wt = weight == null ? 1f : (float) weight[r];
            int base = r * inter;
            for (int i = 0; i < bound; i += L) {
                FloatVector gv = FloatVector.fromArray(FS, g, base + i);
                FloatVector uv = FloatVector.fromArray(FS, u, base + i);
                if (clamp) {
                    gv = gv.min(lim);
                    uv = uv.max(-lim).min(lim);
                }
                FloatVector e = TileKernels.exp(gv.abs().neg());
                FloatVector sig = FloatVector.broadcast(FS, 1f).blend(e, gv.compare(VectorOperators.LT, 0f))
                        .div(e.add(1f));
                IntVector h = gv.mul(sig).mul(uv).mul(wt).reinterpretAsInts();
                h.add(h.lanewise(VectorOperators.LSHR, 16).and(1).add(0x7fff)).and(0xffff0000)
                        .reinterpretAsFloats().intoArray(g, base + i);
            }
            for (int i = base + bound, end = base + inter; i < end; i++) {
                float gv = clamp ? Math.min(g[i], lim) : g[i];
                float uv = clamp ? Math.max(-lim, Math.min(lim, u[i])) : u[i];
                float e = (float) Math.exp(-Math.abs(gv));
                float sig = (gv < 0 ? e : 1f) / (1f + e);
                g[i] = Bf16.round(gv * sig * uv * wt);
            }
        }
    }

    /**
     * The per-head norm with vectors: squares and the products with r are exact in float32 before their bf16
     * rounding, so only the order of the float64 sum differs from the scalar default (8 lanes, then the lanes in
     * index order), and that order is fixed, so a row's result never depends on the call or the JIT state.
     */
    @Override
    public void headRmsNorm(float[] q, int off, int rows, int n, float eps) {
        if (fallback != null || n % L != 0 || off < 0 || off + (long) rows * n > q.length) {
            Kernels.super.headRmsNorm(q, off, rows, n, eps);
            return;
        }
        for (int r = 0; r < rows; r++) {
            int o = off + r * n;
            DoubleVector s0 = DoubleVector.zero(DS);
            DoubleVector s1 = DoubleVector.zero(DS);
            for (int i = 0; i < n; i += L) {
                FloatVector v = FloatVector.fromArray(FS, q, o + i);
                FloatVector sq = bf16(v.mul(v));
                s0 = s0.add((DoubleVector) sq.convertShape(VectorOperators.F2D, DS, 0));
                s1 = s1.add((DoubleVector) sq.convertShape(VectorOperators.F2D, DS, 1));
            }
            s0.add(s1).intoArray(normLanes, 0);
            double sum = 0;
            for (int j = 0; j < LD; j++) {
                sum += normLanes[j];
            }
            float ms = Bf16.round(sum / n);
            ms = Bf16.round((double) ms + eps);
            float rr = Bf16.round(1.0 / Math.sqrt(ms));
            for (int i = 0; i < n; i += L) {
                bf16(FloatVector.fromArray(FS, q, o + i).mul(rr)).intoArray(q, o + i);
            }
        }
    }

    /** {@link Bf16#round(float)} of every lane, NaN kept a quiet NaN as there. */
    private static FloatVector bf16(FloatVector v) {
        IntVector b = v.reinterpretAsInts();
        IntVector r = b.add(b.lanewise(VectorOperators.LSHR, 16).and(1).add(0x7fff)).and(0xffff0000);
        return r.blend(b.and(0xffff0000).or(0x400000), b.and(0x7fffffff).compare(VectorOperators.GT, 0x7f800000))
                .reinterpretAsFloats();
    }

    // ------------------------------------------------------------------------------------------------ linears

    @Override
    public void fp8Linear(Fp8Matrix w, int rowStart, int rowCount, float[] x, int xOff, int xStride, int tokens,
                          float[] y, int yOff, int yStride) {
        if (fallback != null) {
            fallback.fp8Linear(w, rowStart, rowCount, x, xOff, xStride, tokens, y, yOff, yStride);
            return;
        }
        checkRows(w.rows(), rowStart, rowCount);
        requireMultiple(w.cols(), 128, w.name());
        fp8Panelled(panelled(w), rowStart, rowCount, x, xOff, xStride, tokens, true, y, yOff, yStride);
    }

    @Override
    public void fp8DequantLinear(Fp8Matrix w, int rowStart, int rowCount, float[] x, int xOff, int xStride,
                                 int tokens, float[] y, int yOff, int yStride) {
        if (fallback != null) {
            fallback.fp8DequantLinear(w, rowStart, rowCount, x, xOff, xStride, tokens, y, yOff, yStride);
            return;
        }
        checkRows(w.rows(), rowStart, rowCount);
        fp8Panelled(panelled(w), rowStart, rowCount, x, xOff, xStride, tokens, false, y, yOff, yStride);
    }

    /**
     * The matrix in the panelled layout the FP8 kernels read: itself if it is (model weights are repacked at load),
     * else a copy made once per matrix instance and kept (matrices built in the checkpoint's layout: tests, tools).
     */
    private Fp8Matrix panelled(Fp8Matrix w) {
        if (w.panelled()) {
            return w;
        }
        synchronized (panelled8) {
            return panelled8.computeIfAbsent(w, m -> m.panelled(n -> Arena.ofAuto().allocate(n, 64)));
        }
    }

    /** {@link #panelled(Fp8Matrix)} for FP4. */
    private Fp4Matrix panelled(Fp4Matrix w) {
        if (w.panelled()) {
            return w;
        }
        synchronized (panelled4) {
            return panelled4.computeIfAbsent(w, m -> m.panelled(n -> Arena.ofAuto().allocate(n, 64)));
        }
    }

    /**
     * Rows [rowStart, rowStart + rowCount) of a panelled FP8 product ({@link Fp8PanelKernels}); the activations are
     * FP8-quantised per 128 columns first if {@code quantise}, else used as they are.
     */
    private void fp8Panelled(Fp8Matrix w, int rowStart, int rowCount, float[] x, int xOff, int xStride, int tokens,
                             boolean quantise, float[] y, int yOff, int yStride) {
        prepareRows(x, xOff, xStride, tokens, w.cols(), quantise);
        runPanels(w, null, rowStart, rowCount, tokens, y, yOff, yStride);
    }

    /**
     * The panelled kernels' input: token t's row (FP8-quantised per 128 columns if {@code quantise}) at
     * {@code xf[FLOAT_SKIP + t * cols ..]}, columns in order.
     */
    private void prepareRows(float[] x, int xOff, int xStride, int tokens, int cols, boolean quantise) {
        long need = (long) tokens * cols;
        if (need > Integer.MAX_VALUE - 64) {
            throw new IllegalArgumentException(tokens + " tokens x " + cols + " columns do not fit one activation array");
        }
        int skip = AlignedArrays.FLOAT_SKIP;
        if (xf.length < need + skip) {
            xf = AlignedArrays.floats(need);
        }
        for (int t = 0; t < tokens; t++) {
            if (quantise) {
                quantiseRow(x, xOff + t * xStride, cols, xf, skip + t * cols);
            } else {
                System.arraycopy(x, xOff + t * xStride, xf, skip + t * cols, cols);
            }
        }
    }

    /**
     * Rows [rowStart, rowStart + rowCount) of w8 or w4 (the other null, both panelled) over the input
     * {@link #prepareRows} left, into y rounded to bf16.
     */
    private void runPanels(Fp8Matrix w8, Fp4Matrix w4, int rowStart, int rowCount, int tokens, float[] y, int yOff,
                           int yStride) {
        if (rowCount == 0 || tokens == 0) {
            return;
        }
        PanelJob j = panels;
        int cols = w8 != null ? w8.cols() : w4.cols();
        long stripBytes = w8 != null ? (long) L * cols : (long) L * cols / 2;
        int group = w8 != null ? Fp8PanelKernels.GROUP_STRIPS : Fp4PanelKernels.chunkMultiple(tokens);
        int k0 = rowStart / L;
        int k1 = (rowStart + rowCount + L - 1) / L;
        int strips = k1 - k0;
        int parts = (long) rowCount * cols * tokens < SERIAL_MACS ? 1 : threads;
        int per = group * (int) Math.max(1, CHUNK_BYTES / (group * stripBytes));
        if (parts > 1) {
            // at least ~4 chunks per thread so a descheduled or slower core does not leave the other idle
            per = Math.min(per, Math.max(group, (strips / (4 * parts) + group - 1) / group * group));
        }
        j.w8 = w8;
        j.w4 = w4;
        j.rowStart = rowStart;
        j.rowEnd = rowStart + rowCount;
        j.k0 = k0;
        j.k1 = k1;
        j.chunkStrips = Math.min(per, PanelJob.MAX_STRIPS / group * group);
        j.chunks = (strips + j.chunkStrips - 1) / j.chunkStrips;
        j.tokens = tokens;
        j.y = y;
        j.yOff = yOff;
        j.yStride = yStride;
        j.next.set(0);
        try {
            if (parts == 1) {
                j.run(0);
            } else {
                pool.run(j);
            }
        } finally {
            j.w8 = null;
            j.w4 = null;
            j.y = null;
        }
    }

    /**
     * Row chunks of a panelled FP8 or FP4 product, claimed by the pool's workers (see {@link Fp8PanelKernels#chunk},
     * {@link Fp4PanelKernels#chunk}).
     */
    private final class PanelJob implements KernelPool.Job {
        /** Strips per chunk at most: 24 strips x 16 tokens x L floats of partial sums (24 KiB with 512-bit lanes). */
        static final int MAX_STRIPS = 24;
        static final int PAD = Math.max(Fp8PanelKernels.GROUP_STRIPS, Fp4PanelKernels.GROUP_STRIPS);
        /** Partial-sum floats per strip, the same in both kernel classes: one vector per token of a tile. */
        static final int SLOT = Fp8PanelKernels.SLOT;
        final AtomicInteger next = new AtomicInteger();
        final float[][] acc;
        final long[][] off;
        final long[][] soff;
        final float[][] sc;
        final int[][] slot;
        Fp8Matrix w8;
        Fp4Matrix w4;
        int rowStart;
        int rowEnd;
        int k0;
        int k1;
        int chunkStrips;
        int chunks;
        int tokens;
        float[] y;
        int yOff;
        int yStride;

        PanelJob(int threads) {
            acc = new float[threads][];
            off = new long[threads][];
            soff = new long[threads][];
            sc = new float[threads][];
            slot = new int[threads][];
            for (int i = 0; i < threads; i++) {
                acc[i] = AlignedArrays.floats((long) (MAX_STRIPS + 1) * SLOT);
                off[i] = new long[MAX_STRIPS + PAD];
                soff[i] = new long[MAX_STRIPS + PAD];
                sc[i] = new float[MAX_STRIPS + PAD];
                slot[i] = new int[MAX_STRIPS + PAD];
            }
        }

        @Override
        public void run(int worker) {
            float[] a = acc[worker];
            int ab = AlignedArrays.FLOAT_SKIP;
            int cols = w8 != null ? w8.cols() : w4.cols();
            int xs = cols;
            for (int ch; (ch = next.getAndIncrement()) < chunks; ) {
                int c0 = k0 + ch * chunkStrips;
                int c1 = Math.min(k1, c0 + chunkStrips);
                for (int t0 = 0, n; t0 < tokens; t0 += n) {
                    n = Math.min(MAX_TILE, tokens - t0);
                    Arrays.fill(a, ab, ab + (c1 - c0 + 1) * SLOT, 0f);
                    int xt = AlignedArrays.FLOAT_SKIP + t0 * xs;
                    if (w8 != null) {
                        Fp8PanelKernels.chunk(w8.data(), w8.scale(), cols, w8.scaleCols(), c0, c1, n, xf, xt, xs, a,
                                ab, off[worker], sc[worker], slot[worker]);
                    } else {
                        Fp4PanelKernels.chunk(w4.data(), w4.scale(), cols, c0, c1, n, xf, xt, xs, a, ab, off[worker],
                                soff[worker], slot[worker]);
                    }
                    for (int k = c0; k < c1; k++) {
                        int r0 = Math.max(rowStart, k * L);
                        int r1 = Math.min(rowEnd, k * L + L);
                        int sa = ab + (k - c0) * SLOT - k * L;
                        for (int t = 0; t < n; t++) {
                            int yb = yOff + (t0 + t) * yStride - rowStart;
                            int ta = sa + t * L;
                            for (int r = r0; r < r1; r++) {
                                float v = a[ta + r];
                                y[yb + r] = Bf16.round(v);
                            }
                        }
                    }
                }
            }
        }
    }

    @Override
    public void fp4Linear(Fp4Matrix w, float[] x, int xOff, int xStride, int tokens, float[] y, int yOff, int yStride) {
        if (fallback != null) {
            fallback.fp4Linear(w, x, xOff, xStride, tokens, y, yOff, yStride);
            return;
        }
        requireMultiple(w.cols(), 128, w.name());
        prepareRows(x, xOff, xStride, tokens, w.cols(), true);
        runPanels(null, panelled(w), 0, w.rows(), tokens, y, yOff, yStride);
    }

    /** Both products from one quantised copy of the input (it is the same for both). */
    @Override
    public void fp4LinearPair(Fp4Matrix a, Fp4Matrix b, float[] x, int xOff, int xStride, int tokens,
                              float[] ya, float[] yb, int yOff, int yStride) {
        if (fallback != null || b.cols() != a.cols()) {
            Kernels.super.fp4LinearPair(a, b, x, xOff, xStride, tokens, ya, yb, yOff, yStride);
            return;
        }
        requireMultiple(a.cols(), 128, a.name());
        prepareRows(x, xOff, xStride, tokens, a.cols(), true);
        runPanels(null, panelled(a), 0, a.rows(), tokens, ya, yOff, yStride);
        runPanels(null, panelled(b), 0, b.rows(), tokens, yb, yOff, yStride);
    }

    @Override
    public void bf16Linear(Bf16Matrix w, float[] x, int xOff, int xStride, int tokens, float[] y, int yOff, int yStride) {
        if (fallback != null) {
            fallback.bf16Linear(w, x, xOff, xStride, tokens, y, yOff, yStride);
            return;
        }
        int cols = w.cols();
        int colsVec = cols - cols % GROUP;
        int colsP = prepare(x, xOff, xStride, tokens, cols, colsVec, 2, L, false);
        runLinear(K_BF16, w.data(), null, 0, w.rows(), cols, colsVec, colsP, tokens, y, null, yOff, yStride, true);
    }

    @Override
    public void bf16LinearWide(Bf16Matrix w, float[] x, int xOff, int xStride, int tokens, double[] y, int yOff,
                               int yStride) {
        if (fallback != null) {
            fallback.bf16LinearWide(w, x, xOff, xStride, tokens, y, yOff, yStride);
            return;
        }
        int cols = w.cols();
        int colsVec = cols - cols % DGROUP;
        int colsP = prepare(x, xOff, xStride, tokens, cols, colsVec, 2, LD, true);
        runLinear(K_BF16D, w.data(), null, 0, w.rows(), cols, colsVec, colsP, tokens, null, y, yOff, yStride,
                false);
    }

    @Override
    public void f32LinearWide(F32Matrix w, float[] x, int xOff, int xStride, int tokens, double[] y, int yOff,
                              int yStride) {
        if (fallback != null) {
            fallback.f32LinearWide(w, x, xOff, xStride, tokens, y, yOff, yStride);
            return;
        }
        int cols = w.cols();
        int colsVec = cols - cols % DGROUP;
        int colsP = prepare(x, xOff, xStride, tokens, cols, colsVec, 1, LD, true);
        runLinear(K_F32D, w.data(), null, 0, w.rows(), cols, colsVec, colsP, tokens, null, y, yOff, yStride,
                false);
    }

    private static void checkRows(int rows, int rowStart, int rowCount) {
        if (rowStart < 0 || rowCount < 0 || rowStart + rowCount > rows) {
            throw new IndexOutOfBoundsException("rows [" + rowStart + ", " + (rowStart + rowCount) + ") of " + rows);
        }
    }

    private static void requireMultiple(int cols, int m, String name) {
        if (cols % m != 0) {
            throw new IllegalArgumentException(name + ": " + cols + " columns, need a multiple of " + m
                    + " (activation quantisation blocks)");
        }
    }

    /**
     * Copies every token row into the activation buffer in the BF16 and float64 kernels' order and returns the
     * padded column count (a multiple of the group G = 8 * {@code lanes}).
     *
     * <p>Layout: tokens are grouped in tiles of up to {@link #MAX_TILE} as the kernels consume them; a tile of T
     * tokens starting at token t0 occupies colsP * T elements (floats, or doubles if {@code wide}) at skip + colsP * t0,
     * and within it token t's G values of the group starting at column c are contiguous at T*c + t*G
     * ({@link #xIndex}). The skip ({@link AlignedArrays#FLOAT_SKIP} or DOUBLE_SKIP) puts the tiles on cache lines.
     * Columns [0, colsVec) are permuted within chunks of group*lanes (see {@link #permute}); the scalar tail
     * [colsVec, cols) is not, and the padding is zero.
     */
    private int prepare(float[] x, int xOff, int xStride, int tokens, int cols, int colsVec, int group, int lanes,
                        boolean wide) {
        int G = 8 * lanes;
        int colsP = (cols + G - 1) / G * G;
        int esize = wide ? 8 : 4;
        int skip = wide ? AlignedArrays.DOUBLE_SKIP : AlignedArrays.FLOAT_SKIP;
        long need = (long) tokens * colsP;
        if (need > Integer.MAX_VALUE - 64) {
            throw new IllegalArgumentException(tokens + " tokens x " + colsP + " columns do not fit one activation array");
        }
        if (wide && xd.length < need + skip) {
            xd = AlignedArrays.doubles(need);
        } else if (!wide && xf.length < need + skip) {
            xf = AlignedArrays.floats(need);
        }
        float[] row = rowBuf.length >= colsP ? rowBuf : (rowBuf = new float[colsP]);
        for (int t0 = 0, tile; t0 < tokens; t0 += tile) {
            tile = Math.min(MAX_TILE, tokens - t0);
            for (int t = t0; t < t0 + tile; t++) {
                prepareRow(x, xOff + t * xStride, cols, colsVec, colsP, group, lanes, row);
                long base = skip + (long) t0 * colsP + (long) (t - t0) * G;
                for (int g = 0; g < colsP; g += G) {
                    long o = base + (long) g * tile;
                    if (wide) {
                        for (int i = 0; i < G; i++) {
                            xd[(int) (o + i)] = row[g + i];
                        }
                    } else {
                        System.arraycopy(row, g, xf, (int) o, G);
                    }
                }
            }
        }
        return colsP;
    }

    /** One token's row, permuted, zero-padded to colsP. */
    private static void prepareRow(float[] x, int src, int cols, int colsVec, int colsP, int group, int lanes,
                                   float[] row) {
        if (group == 1) {
            System.arraycopy(x, src, row, 0, cols);
        } else {
            int chunk = group * lanes;
            for (int c = 0; c < colsVec; c += chunk) {
                permute(x, src + c, row, c, group, lanes);
            }
            System.arraycopy(x, src + colsVec, row, colsVec, cols - colsVec);
        }
        Arrays.fill(row, cols, colsP, 0f);
    }

    /** Element index in xbuf of (permuted) column p of token t of a tile of T tokens at tileBase; groups of G. */
    static long xIndex(long tileBase, int T, int p, int t, int G) {
        return tileBase + (long) (p - p % G) * T + (long) t * G + p % G;
    }

    /**
     * Lane i of the j-th vector of a chunk of group*lanes values gets element group*i + j. The BF16 kernels decode
     * the low/high half of every int lane (= weight 2i + j) as their j-th vector; permuting the activations once per call is O(cols) while un-permuting the
     * weights would be O(rows * cols).
     */
    static void permute(float[] src, int s, float[] dst, int d, int group, int lanes) {
        if (lanes == L && group == 2) {
            permute2(src, s, dst, d);
        } else {
            permuteScalar(src, s, dst, d, group, lanes);
        }
    }

    /** {@link #permute} element by element: the definition (and the double-lane chunks of the wide kernels). */
    static void permuteScalar(float[] src, int s, float[] dst, int d, int group, int lanes) {
        for (int j = 0; j < group; j++) {
            for (int i = 0; i < lanes; i++) {
                dst[d + j * lanes + i] = src[s + group * i + j];
            }
        }
    }

    /**
     * Lane l of the even (odd) unzip of a vector pair (a, b) takes lane 2l (2l + 1) of their concatenation: for a
     * group of 2, element 2i + j of the chunk goes to lane i of vector j.
     */
    private static final IntVector UNZIP_EVEN;
    private static final IntVector UNZIP_ODD;

    static {
        int[] ev = new int[L];
        int[] od = new int[L];
        for (int l = 0; l < L; l++) {
            ev[l] = 2 * l;
            od[l] = 2 * l + 1;
        }
        UNZIP_EVEN = IntVector.fromArray(TileKernels.IS, ev, 0);
        UNZIP_ODD = IntVector.fromArray(TileKernels.IS, od, 0);
    }

    /** {@link #permute} of one BF16 chunk (group 2, float lanes): one unzip round. */
    static void permute2(float[] src, int s, float[] dst, int d) {
        IntVector v0 = FloatVector.fromArray(FS, src, s).reinterpretAsInts();
        IntVector v1 = FloatVector.fromArray(FS, src, s + L).reinterpretAsInts();
        UNZIP_EVEN.selectFrom(v0, v1).reinterpretAsFloats().intoArray(dst, d);
        UNZIP_ODD.selectFrom(v0, v1).reinterpretAsFloats().intoArray(dst, d + L);
    }

    /**
     * The reference's FP8 activation round trip (QuantSim.fp8RoundTrip, block 128) of one row, vectorised:
     * scaling by 2^-k and 2^k is exact in float32, so only the e4m3 rounding needs care (see TileKernels.e4m3).
     */
    static void quantiseRow(float[] x, int off, int cols, float[] dst, int dOff) {
        for (int b = 0; b < cols; b += 128) {
            FloatVector mx = FloatVector.broadcast(FS, io.epserve.model.format.QuantSim.FP8_AMAX_FLOOR);
            for (int i = 0; i < 128; i += L) {
                mx = mx.max(FloatVector.fromArray(FS, x, off + b + i).abs());
            }
            float amax = mx.reduceLanes(VectorOperators.MAX); // order-independent, unlike ADD
            int k = E8m0.ceilLog2Exponent(amax, Fp8E4m3.INV_MAX_F32);
            float inv = Math.scalb(1f, -k);
            float sc = Math.scalb(1f, k);
            for (int i = 0; i < 128; i += L) {
                FloatVector v = FloatVector.fromArray(FS, x, off + b + i).mul(inv).max(-448f).min(448f);
                TileKernels.e4m3(v).mul(sc).intoArray(dst, dOff + b + i);
            }
        }
    }

    private void runLinear(int kind, MemorySegment w, MemorySegment s, int rowStart, int rows,
                           int cols, int colsVec, int colsP, int tokens, float[] y, double[] yd, int yOff, int yStride,
                           boolean round) {
        if (rows == 0 || tokens == 0) {
            return;
        }
        LinearJob j = linear;
        j.kind = kind;
        j.w = w;
        j.s = s;
        j.rowStart = rowStart;
        j.rows = rows;
        j.cols = cols;
        j.colsVec = colsVec;
        j.colsP = colsP;
        j.tokens = tokens;
        j.y = y;
        j.yd = yd;
        j.yOff = yOff;
        j.yStride = yStride;
        j.round = round;
        long rowBytes = switch (kind) {
            case K_BF16, K_BF16D -> 2L * cols;
            default -> 4L * cols;
        };
        boolean wide = kind == K_BF16D || kind == K_F32D;
        j.unit = wide ? DGROUP : GROUP;
        j.esize = wide ? 8 : 4;
        j.lanes = wide ? LD : L;
        long macs = (long) rows * cols * tokens;
        int parts = macs < SERIAL_MACS ? 1 : threads;
        int tile = Math.min(tokens, MAX_TILE);
        long xPanelBytes = (long) tile * Math.min(colsVec, panelWidth(tile, j.unit, colsVec, j.esize)) * j.esize;
        long sumsPerRow = (long) tile * j.lanes * j.esize;
        long byL1 = Math.min(CHUNK_SUMS_BYTES, CHUNK_L1_BYTES - xPanelBytes) / sumsPerRow;
        int maxRows = (int) Math.min(MAX_CHUNK_ROWS * (MAX_TILE / tile), Math.max(MAX_CHUNK_ROWS, byL1));
        int chunkRows = (int) Math.max(1, Math.min(Math.min(CHUNK_BYTES / Math.max(1, rowBytes), rows), maxRows));
        if (parts > 1) {
            // at least ~4 chunks per thread so a descheduled or slower core does not leave the other idle
            chunkRows = Math.max(1, Math.min(chunkRows, rows / (4 * parts)));
        }
        j.chunkRows = chunkRows;
        j.chunks = (rows + chunkRows - 1) / chunkRows;
        j.next.set(0);
        try {
            if (parts == 1) {
                j.run(0);
            } else {
                pool.run(j);
            }
        } finally {
            j.w = null;
            j.s = null;
            j.y = null;
            j.yd = null;
        }
    }

    /** Per-worker scratch of the linear kernels: vector partial sums of a row chunk, results. */
    private static final class LinearScratch {
        /** Partial sums, used from element FLOAT_SKIP (DOUBLE_SKIP) on: a cache line, like the activations (+3 %). */
        final float[] acc = AlignedArrays.floats(MAX_CHUNK_ROWS * MAX_TILE * L);
        final double[] accD = AlignedArrays.doubles(MAX_CHUNK_ROWS * MAX_TILE * LD);
        final float[] r = new float[MAX_TILE];
        final double[] rd = new double[MAX_TILE];
        /** The lane sums of a chunk's partial-sum vectors, row-major by token ({@link #laneSums}). */
        final float[] sums = new float[MAX_CHUNK_ROWS * MAX_TILE];
        final double[] sumsD = new double[MAX_CHUNK_ROWS * MAX_TILE];
    }

    /**
     * Columns per panel for a tile of T tokens: the tile's activations for one panel (T * width elements) must
     * stay in L1 while every row of the chunk streams past them. Without panels a 16-token tile over 4096 columns
     * reads its 256 KiB of activations from L2 for every row, and L2 bandwidth, not the FMA ports, sets the speed
     * (measured 2x slower for 8 tokens). Panel boundaries are multiples of the kernel group, so they do not
     * change any result (the accumulators are stored and reloaded exactly between panels).
     */
    static int panelWidth(int tokensInTile, int unit, int colsVec, int esize) {
        int w = XPANEL_BYTES / (esize * tokensInTile) / unit * unit;
        return Math.max(unit, Math.min(w, colsVec));
    }

    private final class LinearJob implements KernelPool.Job {
        final AtomicInteger next = new AtomicInteger();
        final LinearScratch[] scratch;
        int kind;
        MemorySegment w;
        MemorySegment s;
        int rowStart;
        int rows;
        int cols;
        int colsVec;
        int unit;
        int esize;
        int lanes;
        int colsP;
        int tokens;
        float[] y;
        double[] yd;
        int yOff;
        int yStride;
        boolean round;
        int chunkRows;
        int chunks;

        LinearJob(int threads) {
            scratch = new LinearScratch[threads];
            for (int i = 0; i < threads; i++) {
                scratch[i] = new LinearScratch();
            }
        }

        @Override
        public void run(int worker) {
            LinearScratch sc = scratch[worker];
            boolean wide = kind == K_BF16D || kind == K_F32D;
            float[] x = xf;
            double[] xw = xd;
            int V = lanes;
            for (int ch; (ch = next.getAndIncrement()) < chunks; ) {
                int i0 = ch * chunkRows;
                int i1 = Math.min(rows, i0 + chunkRows);
                for (int t0 = 0, n; t0 < tokens; t0 += n) {
                    n = Math.min(MAX_TILE, tokens - t0);
                    int span = n * V;
                    // the activation tile and the partial sums both start after the skip that puts them on a line
                    int a0 = wide ? AlignedArrays.DOUBLE_SKIP : AlignedArrays.FLOAT_SKIP;
                    long xbase = a0 + (long) t0 * colsP; // element index of the tile
                    long xo = esize * xbase;
                    if (wide) {
                        Arrays.fill(sc.accD, a0, a0 + (i1 - i0) * span, 0.0);
                    } else {
                        Arrays.fill(sc.acc, a0, a0 + (i1 - i0) * span, 0f);
                    }
                    int pw = panelWidth(n, unit, colsVec, esize);
                    // panels outermost within the chunk: the chunk's weights (<= 16 rows) stay in L2 between
                    // panels and token tiles, the panel's activations stay in L1 across the chunk's rows
                    for (int p0 = 0; p0 < colsVec; p0 += pw) {
                        int p1 = Math.min(colsVec, p0 + pw);
                        for (int i = i0; i < i1; i++) {
                            panel(rowStart + i, n, p0, p1, x, xw, xo, sc, a0 + (i - i0) * span);
                        }
                    }
                    if (wide) {
                        laneSums(sc.accD, a0, (i1 - i0) * n, sc.sumsD);
                    } else {
                        laneSums(sc.acc, a0, (i1 - i0) * n, sc.sums);
                    }
                    for (int i = i0; i < i1; i++) {
                        int row = rowStart + i;
                        int k0 = (i - i0) * n;
                        if (wide) {
                            double[] rd = sc.rd;
                            for (int t = 0; t < n; t++) {
                                rd[t] = sc.sumsD[k0 + t];
                            }
                            if (colsVec < cols) {
                                tailWide(row, xw, xbase, n, rd);
                            }
                            storeWide(i, t0, n, rd);
                        } else {
                            float[] r = sc.r;
                            for (int t = 0; t < n; t++) {
                                r[t] = sc.sums[k0 + t];
                            }
                            if (colsVec < cols) {
                                tail(row, x, xbase, n, r);
                            }
                            store(i, t0, n, r);
                        }
                    }
                }
            }
        }

        private void panel(int row, int n, int c0, int c1, float[] x, double[] xw, long xo, LinearScratch sc, int ao) {
            switch (kind) {
                case K_BF16 -> TileKernels.bf16(n, w, 2L * row * cols, c0, c1, x, xo, sc.acc, ao);
                case K_BF16D -> TileKernels.bf16d(n, w, 2L * row * cols, c0, c1, xw, xo, sc.accD, ao);
                default -> TileKernels.f32d(n, w, 4L * row * cols, c0, c1, xw, xo, sc.accD, ao);
            }
        }

        /** Float32 kinds: columns [colsVec, cols) that do not fill a group, in column order. */
        private void tail(int row, float[] x, long xbase, int n, float[] r) {
            for (int c = colsVec; c < cols; c++) {
                float wv = Float.intBitsToFloat((w.get(BF16_LE, 2L * ((long) row * cols + c)) & 0xffff) << 16);
                for (int t = 0; t < n; t++) {
                    r[t] += wv * x[(int) xIndex(xbase, n, c, t, GROUP)];
                }
            }
        }

        /** Float64 kinds: columns [colsVec, cols) that do not fill a group, in column order. */
        private void tailWide(int row, double[] x, long xbase, int n, double[] r) {
            for (int c = colsVec; c < cols; c++) {
                double wv = kind == K_BF16D
                        ? Float.intBitsToFloat((w.get(BF16_LE, 2L * ((long) row * cols + c)) & 0xffff) << 16)
                        : w.get(F32_LE, 4L * ((long) row * cols + c));
                for (int t = 0; t < n; t++) {
                    r[t] += wv * x[(int) xIndex(xbase, n, c, t, DGROUP)];
                }
            }
        }

        /**
         * The lane sums of the n partial-sum vectors at a[a0 + k * L] into out[k] (a chunk's rows one after the other,
         * each row's tokens in order), 16 at a time where {@link TileKernels#SUMS}: the same bits as one
         * {@link TileKernels#sum} per vector. One sum per row and token cost 5-8 % of an 8-token product of the
         * former row-wise FP8 kernels (8192x512 or 1024x1024; timed with the sums left out).
         */
        private static void laneSums(float[] a, int a0, int n, float[] out) {
            int k = 0;
            if (TileKernels.SUMS) {
                for (; k + L <= n; k += L) {
                    TileKernels.sums(a, a0 + k * L, out, k);
                }
            }
            for (; k < n; k++) {
                out[k] = TileKernels.sum(a, a0 + k * L);
            }
        }

        /** {@link #laneSums(float[], int, int, float[])} for double vectors, 8 at a time. */
        private static void laneSums(double[] a, int a0, int n, double[] out) {
            int k = 0;
            if (TileKernels.SUMS) {
                for (; k + LD <= n; k += LD) {
                    TileKernels.sums(a, a0 + k * LD, out, k);
                }
            }
            for (; k < n; k++) {
                out[k] = TileKernels.sum(a, a0 + k * LD);
            }
        }

        private void store(int i, int t0, int n, float[] r) {
            int base = yOff + t0 * yStride + i;
            for (int t = 0; t < n; t++) {
                y[base + t * yStride] = round ? Bf16.round(r[t]) : r[t];
            }
        }

        private void storeWide(int i, int t0, int n, double[] r) {
            int base = yOff + t0 * yStride + i;
            for (int t = 0; t < n; t++) {
                yd[base + t * yStride] = r[t];
            }
        }
    }


    // ------------------------------------------------------------------------------------------------ attention

    private static final int ATT_BLOCK = 64;

    private static final class AttnScratch {
        final float[] s = new float[ATT_BLOCK];
        float[] acc = new float[0];
    }

    @Override
    public void attention(float[] q, int qOff, int heads, int headDim, float[] kv, int windowValid, int windowSize,
                          int compressedCount, float[] sink, float scale, float[] out, int outOff) {
        if (fallback != null) {
            fallback.attention(q, qOff, heads, headDim, kv, windowValid, windowSize, compressedCount, sink, scale,
                    out, outOff);
            return;
        }
        AttentionJob j = attention;
        j.q = q;
        j.qOff = qOff;
        j.heads = heads;
        j.dim = headDim;
        j.kv = kv;
        j.windowValid = windowValid;
        j.windowSize = windowSize;
        j.listLen = windowSize + compressedCount;
        j.sink = sink;
        j.scale = scale;
        j.out = out;
        j.outOff = outOff;
        j.next.set(0);
        long macs = 2L * heads * j.listLen * headDim;
        try {
            if (threads == 1 || heads == 1 || macs < SERIAL_MACS) {
                j.run(0);
            } else {
                pool.run(j);
            }
        } finally {
            j.q = null;
            j.kv = null;
            j.sink = null;
            j.out = null;
        }
    }

    private final class AttentionJob implements KernelPool.Job {
        final AttnScratch[] scratch;
        final AtomicInteger next = new AtomicInteger();
        float[] q;
        int qOff;
        int heads;
        int dim;
        float[] kv;
        int windowValid;
        int windowSize;
        int listLen;
        float[] sink;
        float scale;
        float[] out;
        int outOff;

        AttentionJob(int threads) {
            scratch = new AttnScratch[threads];
            for (int i = 0; i < threads; i++) {
                scratch[i] = new AttnScratch();
            }
        }

        @Override
        public void run(int worker) {
            AttnScratch sc = scratch[worker];
            if (sc.acc.length < dim) {
                sc.acc = new float[dim];
            }
            for (int h; (h = next.getAndIncrement()) < heads; ) {
                head(h, sc.s, sc.acc);
            }
        }

        /** One head: the exact set's algorithm (blocks of 64, running max, bf16 P, sink at the end) in float32. */
        private void head(int h, float[] s, float[] acc) {
            int d = dim;
            int qb = qOff + h * d;
            Arrays.fill(acc, 0, d, 0f);
            float m = Float.NEGATIVE_INFINITY;
            float den = 0f;
            // valid list indices: [0, windowValid) and [windowSize, listLen); cStart avoids double counting
            int aEnd = Math.min(windowValid, listLen);
            int cStart = Math.max(windowSize, aEnd);
            for (int b0 = 0; b0 < listLen; b0 += ATT_BLOCK) {
                int b1 = Math.min(listLen, b0 + ATT_BLOCK);
                int aHi = Math.min(b1, aEnd);
                int cLo = Math.max(b0, cStart);
                Arrays.fill(s, Float.NEGATIVE_INFINITY);
                float bm = Float.NEGATIVE_INFINITY;
                bm = Math.max(bm, scores(qb, b0, b0, aHi, s));
                bm = Math.max(bm, scores(qb, b0, cLo, b1, s));
                if (bm == Float.NEGATIVE_INFINITY) {
                    continue; // nothing valid in this block
                }
                float mNew = Math.max(m, bm);
                float alpha = m == Float.NEGATIVE_INFINITY ? 0f : (float) Math.exp(m - mNew);
                if (alpha != 1f) {
                    den *= alpha;
                    scaleAcc(acc, d, alpha);
                }
                den = weights(s, mNew, den);
                accumulate(acc, d, s, b0, b0, aHi);
                accumulate(acc, d, s, b0, cLo, b1);
                m = mNew;
            }
            den += (float) Math.exp(sink[h] - m);
            int ob = outOff + h * d;
            int i = 0;
            for (int bound = FS.loopBound(d); i < bound; i += L) {
                IntVector ob16 = FloatVector.fromArray(FS, acc, i).div(den).reinterpretAsInts();
                ob16.add(ob16.lanewise(VectorOperators.LSHR, 16).and(1).add(0x7fff)).and(0xffff0000)
                        .reinterpretAsFloats().intoArray(out, ob + i);
            }
            for (; i < d; i++) {
                out[ob + i] = Bf16.round(acc[i] / den);
            }
        }

        /**
         * s[k] = bf16(e^(s[k] - mNew)) over the block; returns den plus their sum, one vector at a time. Invalid
         * entries hold -inf and give exp = 0, so the denominator can sum whole vectors. A method of its own, never
         * inlined into head (the launcher's CompileCommand, see the parent pom): inlined, exp and sum met C2's node
         * count cutoff in some compilations of that large method, and a vector passed to a call that is not inlined
         * is boxed (2.2-8 MB per step in the attention worker, about 1.4x its attention time).
         */
        static float weights(float[] s, float mNew, float den) {
            for (int k = 0; k < ATT_BLOCK; k += L) {
                FloatVector e = TileKernels.exp(FloatVector.fromArray(FS, s, k).sub(mNew));
                den += TileKernels.sum(e);
                // bf16 rounding written out (a helper returning a vector was left un-inlined here and boxed)
                IntVector eb = e.reinterpretAsInts();
                eb.add(eb.lanewise(VectorOperators.LSHR, 16).and(1).add(0x7fff)).and(0xffff0000)
                        .reinterpretAsFloats().intoArray(s, k);
            }
            return den;
        }

        /**
         * s[i - b0] = (q . kv_i) * scale for i in [lo, hi); returns their max. Never inlined into head either (the
         * same CompileCommand): dot4 and dot hand vectors to sum.
         */
        private float scores(int qb, int b0, int lo, int hi, float[] s) {
            float bm = Float.NEGATIVE_INFINITY;
            int i = lo;
            for (; i + 4 <= hi; i += 4) {
                dot4(q, qb, kv, i * dim, dim, s, i - b0, scale);
                bm = Math.max(bm, Math.max(Math.max(s[i - b0], s[i - b0 + 1]), Math.max(s[i - b0 + 2], s[i - b0 + 3])));
            }
            for (; i < hi; i++) {
                s[i - b0] = dot(q, qb, kv, i * dim, dim) * scale;
                bm = Math.max(bm, s[i - b0]);
            }
            return bm;
        }

        /** acc += p_i * kv_i over [lo, hi), a register tile of 4 vectors of acc at a time. */
        private void accumulate(float[] acc, int d, float[] p, int b0, int lo, int hi) {
            if (lo >= hi) {
                return;
            }
            int c = 0;
            for (; c + 4 * L <= d; c += 4 * L) {
                FloatVector a0 = FloatVector.fromArray(FS, acc, c);
                FloatVector a1 = FloatVector.fromArray(FS, acc, c + L);
                FloatVector a2 = FloatVector.fromArray(FS, acc, c + 2 * L);
                FloatVector a3 = FloatVector.fromArray(FS, acc, c + 3 * L);
                for (int i = lo; i < hi; i++) {
                    FloatVector pv = FloatVector.broadcast(FS, p[i - b0]);
                    int k = i * d + c;
                    a0 = FloatVector.fromArray(FS, kv, k).fma(pv, a0);
                    a1 = FloatVector.fromArray(FS, kv, k + L).fma(pv, a1);
                    a2 = FloatVector.fromArray(FS, kv, k + 2 * L).fma(pv, a2);
                    a3 = FloatVector.fromArray(FS, kv, k + 3 * L).fma(pv, a3);
                }
                a0.intoArray(acc, c);
                a1.intoArray(acc, c + L);
                a2.intoArray(acc, c + 2 * L);
                a3.intoArray(acc, c + 3 * L);
            }
            for (; c + L <= d; c += L) {
                FloatVector a0 = FloatVector.fromArray(FS, acc, c);
                for (int i = lo; i < hi; i++) {
                    a0 = FloatVector.fromArray(FS, kv, i * d + c).fma(FloatVector.broadcast(FS, p[i - b0]), a0);
                }
                a0.intoArray(acc, c);
            }
            for (; c < d; c++) {
                float a = acc[c];
                for (int i = lo; i < hi; i++) {
                    a = Math.fma(p[i - b0], kv[i * d + c], a);
                }
                acc[c] = a;
            }
        }
    }

    private static void scaleAcc(float[] acc, int d, float alpha) {
        int i = 0;
        for (int bound = FS.loopBound(d); i < bound; i += L) {
            FloatVector.fromArray(FS, acc, i).mul(alpha).intoArray(acc, i);
        }
        for (; i < d; i++) {
            acc[i] *= alpha;
        }
    }

    /**
     * a . b with one accumulator, {@link TileKernels#sum}, then the scalar tail: the same operations as one row of
     * {@link #dot4}, so a key's score does not depend on whether it was computed alone or in a group of 4.
     */
    static float dot(float[] a, int ao, float[] b, int bo, int n) {
        FloatVector s0 = FloatVector.zero(FS);
        int i = 0;
        for (; i + L <= n; i += L) {
            s0 = FloatVector.fromArray(FS, a, ao + i).fma(FloatVector.fromArray(FS, b, bo + i), s0);
        }
        float r = TileKernels.sum(s0);
        for (; i < n; i++) {
            r = Math.fma(a[ao + i], b[bo + i], r);
        }
        return r;
    }

    /** s[so + k] = (a . b_k) * scale for the 4 consecutive rows b_k = b[bo + k*n ..]: a is loaded once for all 4. */
    static void dot4(float[] a, int ao, float[] b, int bo, int n, float[] s, int so, float scale) {
        FloatVector s0 = FloatVector.zero(FS);
        FloatVector s1 = s0;
        FloatVector s2 = s0;
        FloatVector s3 = s0;
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector av = FloatVector.fromArray(FS, a, ao + i);
            s0 = av.fma(FloatVector.fromArray(FS, b, bo + i), s0);
            s1 = av.fma(FloatVector.fromArray(FS, b, bo + n + i), s1);
            s2 = av.fma(FloatVector.fromArray(FS, b, bo + 2 * n + i), s2);
            s3 = av.fma(FloatVector.fromArray(FS, b, bo + 3 * n + i), s3);
        }
        float r0 = TileKernels.sum(s0);
        float r1 = TileKernels.sum(s1);
        float r2 = TileKernels.sum(s2);
        float r3 = TileKernels.sum(s3);
        for (; i < n; i++) {
            float av = a[ao + i];
            r0 = Math.fma(av, b[bo + i], r0);
            r1 = Math.fma(av, b[bo + n + i], r1);
            r2 = Math.fma(av, b[bo + 2 * n + i], r2);
            r3 = Math.fma(av, b[bo + 3 * n + i], r3);
        }
        s[so] = r0 * scale;
        s[so + 1] = r1 * scale;
        s[so + 2] = r2 * scale;
        s[so + 3] = r3 * scale;
    }

    // ------------------------------------------------------------------------------------------------ indexer

    @Override
    public void indexScores(float[] q, int qOff, int heads, int dim, float[] w, int wOff, float[] keys, int count,
                            float[] scores) {
        if (fallback != null) {
            fallback.indexScores(q, qOff, heads, dim, w, wOff, keys, count, scores);
            return;
        }
        if (count == 0) {
            return;
        }
        IndexJob j = index;
        int hp = (heads + L - 1) / L * L;
        // q transposed to [dim][heads padded to L]: then one key gives the dots of L heads per FMA, with no
        // horizontal reduction; the padding lanes have q = 0 and w = 0 and add exactly 0 to the score
        if (j.qt.length < dim * hp) {
            j.qt = new float[dim * hp];
        }
        if (j.wp.length < hp) {
            j.wp = new float[hp];
        }
        Arrays.fill(j.qt, 0, dim * hp, 0f);
        Arrays.fill(j.wp, 0, hp, 0f);
        for (int h = 0; h < heads; h++) {
            for (int d = 0; d < dim; d++) {
                j.qt[d * hp + h] = q[qOff + h * dim + d];
            }
            j.wp[h] = w[wOff + h];
        }
        if (j.sums.length < threads) {
            j.sums = new float[threads][8 * L];
        }
        j.hp = hp;
        j.dim = dim;
        j.keys = keys;
        j.count = count;
        j.scores = scores;
        j.chunk = 64;
        j.chunks = (count + j.chunk - 1) / j.chunk;
        j.next.set(0);
        long macs = (long) hp * dim * count;
        try {
            if (threads == 1 || j.chunks == 1 || macs < SERIAL_MACS) {
                j.run(0);
            } else {
                pool.run(j);
            }
        } finally {
            j.keys = null;
            j.scores = null;
        }
    }

    private static final class IndexJob implements KernelPool.Job {
        final AtomicInteger next = new AtomicInteger();
        float[] qt = new float[0];
        float[] wp = new float[0];
        /** Per worker: keys4's four score vectors (summed from memory) and its four dot products: 8 vectors. */
        float[][] sums = new float[0][];
        int hp;
        int dim;
        float[] keys;
        int count;
        float[] scores;
        int chunk;
        int chunks;

        @Override
        public void run(int worker) {
            for (int ch; (ch = next.getAndIncrement()) < chunks; ) {
                int i0 = ch * chunk;
                int i1 = Math.min(count, i0 + chunk);
                int i = i0;
                for (; i + 4 <= i1; i += 4) {
                    keys4(i, sums[worker]);
                }
                for (; i < i1; i++) {
                    key1(i);
                }
            }
        }

        private void keys4(int i, float[] sum) {
            int k0 = i * dim;
            int k1 = k0 + dim;
            int k2 = k1 + dim;
            int k3 = k2 + dim;
            Arrays.fill(sum, 0, 4 * L, 0f);
            for (int g = 0; g < hp; g += L) {
                FloatVector a0 = FloatVector.zero(FS);
                FloatVector a1 = a0;
                FloatVector a2 = a0;
                FloatVector a3 = a0;
                for (int d = 0; d < dim; d++) {
                    FloatVector qv = FloatVector.fromArray(FS, qt, d * hp + g);
                    a0 = qv.fma(FloatVector.broadcast(FS, keys[k0 + d]), a0);
                    a1 = qv.fma(FloatVector.broadcast(FS, keys[k1 + d]), a1);
                    a2 = qv.fma(FloatVector.broadcast(FS, keys[k2 + d]), a2);
                    a3 = qv.fma(FloatVector.broadcast(FS, keys[k3 + d]), a3);
                }
                a0.intoArray(sum, 4 * L);
                a1.intoArray(sum, 5 * L);
                a2.intoArray(sum, 6 * L);
                a3.intoArray(sum, 7 * L);
                weigh4(sum, wp, g);
            }
            scores[i] = Bf16.round(TileKernels.sum(sum, 0));
            scores[i + 1] = Bf16.round(TileKernels.sum(sum, L));
            scores[i + 2] = Bf16.round(TileKernels.sum(sum, 2 * L));
            scores[i + 3] = Bf16.round(TileKernels.sum(sum, 3 * L));
        }

        /**
         * {@link #keys4}'s weighting of its four keys' dot products (s[4L..8L)) for heads [g, g + L): per head lane
         * t_k += bf16(max(bf16(dot_k), 0) * w), the t_k in s[0..4L). Kept out of keys4 by a CompileCommand
         * (epserve.jvm.flags): inlined, its vector operations came after keys4 had used up C2's node budget in some
         * compilations, and C2 left them to the Vector API's Java fallback (int[] allocated per operation: 124 KB per
         * decode step in a profiled attention worker). That compilation had also inlined 256-bit vector classes, the
         * cause of the same fallback elsewhere (see TileKernels.DS); the split keeps keys4 small either way.
         */
        static void weigh4(float[] s, float[] wp, int g) {
            FloatVector wv = FloatVector.fromArray(FS, wp, g);
            for (int k = 0; k < 4; k++) {
                IntVector b = FloatVector.fromArray(FS, s, (4 + k) * L).reinterpretAsInts();
                b = b.add(b.lanewise(VectorOperators.LSHR, 16).and(1).add(0x7fff)).and(0xffff0000)
                        .reinterpretAsFloats().max(0f).mul(wv).reinterpretAsInts();
                FloatVector.fromArray(FS, s, k * L).add(b.add(b.lanewise(VectorOperators.LSHR, 16).and(1).add(0x7fff))
                        .and(0xffff0000).reinterpretAsFloats()).intoArray(s, k * L);
            }
        }

        private void key1(int i) {
            int k0 = i * dim;
            FloatVector t0 = FloatVector.zero(FS);
            for (int g = 0; g < hp; g += L) {
                FloatVector a0 = FloatVector.zero(FS);
                for (int d = 0; d < dim; d++) {
                    a0 = FloatVector.fromArray(FS, qt, d * hp + g).fma(FloatVector.broadcast(FS, keys[k0 + d]), a0);
                }
                IntVector b0 = a0.reinterpretAsInts();
                b0 = b0.add(b0.lanewise(VectorOperators.LSHR, 16).and(1).add(0x7fff)).and(0xffff0000)
                        .reinterpretAsFloats().max(0f).mul(FloatVector.fromArray(FS, wp, g)).reinterpretAsInts();
                t0 = t0.add(b0.add(b0.lanewise(VectorOperators.LSHR, 16).and(1).add(0x7fff)).and(0xffff0000)
                        .reinterpretAsFloats());
            }
            scores[i] = Bf16.round(TileKernels.sum(t0));
        }
    }
}
