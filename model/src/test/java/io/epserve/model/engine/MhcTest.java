package io.epserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.GoldenData;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.format.Bf16;
import io.epserve.model.kernel.ExactKernels;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.weights.F32Matrix;
import io.epserve.model.weights.ModelWeights;
import io.epserve.model.weights.ModelWeights.HcWeights;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * mHC (spec §4.3) against a straightforward implementation written here from the spec, on the golden tiny model and
 * on random mixing weights; the Walsh–Hadamard transform (§3.5) and top-k (GOLDEN.md contract 9).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MhcTest {
    static final int HC = 4;

    private GoldenData golden;
    private Checkpoint ck;
    private ModelConfig c;
    private ModelWeights w;
    private Transformer tr;
    private int d;

    @BeforeAll
    void load() {
        golden = GoldenData.open("tiny");
        ck = Checkpoint.open(golden.dir);
        c = ModelConfig.load(golden.dir);
        w = new ModelWeights(c, ck, ModelWeights.ExpertFilter.NONE);
        tr = new Transformer(w, new ExactKernels());
        d = c.dim();
        assertEquals(HC, c.hcMult());
        assertEquals(20, c.hcSinkhornIters());
    }

    @AfterAll
    void close() {
        ck.close();
        golden.close();
    }

    // ------------------------------------------------------------------------------------------ reference

    /** Result of the spec's hc_pre for one token. */
    record HcRef(double[] pre, double[] post, double[][] comb, float[] x) {}

    static double sigmoid(double v) {
        return 1 / (1 + Math.exp(-v));
    }

    /**
     * Spec §4.3 for one token, written out plainly: X is stream-major [4][D]; fn [24][4D]; eps 1e-6; 20 iterations
     * = row softmax + eps, one column normalisation, then 19 (row, column) pairs.
     */
    static HcRef hcPreRef(float[][] fn, float[] base, float[] scale, float[] X, int xOff, int D, int iters) {
        double eps = 1e-6;
        double ss = 0;
        for (int i = 0; i < HC * D; i++) {
            ss += (double) X[xOff + i] * X[xOff + i];
        }
        double r = 1 / Math.sqrt(ss / (HC * D) + 1e-6);
        double[] mix = new double[fn.length];
        for (int m = 0; m < fn.length; m++) {
            double s = 0;
            for (int i = 0; i < HC * D; i++) {
                s += (double) X[xOff + i] * fn[m][i];
            }
            mix[m] = s * r;
        }
        double[] pre = new double[HC];
        double[] post = new double[HC];
        double[][] C = new double[HC][HC];
        for (int j = 0; j < HC; j++) {
            pre[j] = sigmoid(mix[j] * scale[0] + base[j]) + eps;
            post[j] = 2 * sigmoid(mix[HC + j] * scale[1] + base[HC + j]);
        }
        for (int j = 0; j < HC; j++) {
            double[] L = new double[HC];
            double max = Double.NEGATIVE_INFINITY;
            for (int k = 0; k < HC; k++) {
                L[k] = mix[2 * HC + HC * j + k] * scale[2] + base[2 * HC + HC * j + k];
                max = Math.max(max, L[k]);
            }
            double z = 0;
            for (int k = 0; k < HC; k++) {
                z += Math.exp(L[k] - max);
            }
            for (int k = 0; k < HC; k++) {
                C[j][k] = Math.exp(L[k] - max) / z + eps;
            }
        }
        columnNormalise(C, eps);
        for (int it = 0; it < iters - 1; it++) {
            for (int j = 0; j < HC; j++) {
                double s = Arrays.stream(C[j]).sum();
                for (int k = 0; k < HC; k++) {
                    C[j][k] /= s + eps;
                }
            }
            columnNormalise(C, eps);
        }
        float[] x = new float[D];
        for (int i = 0; i < D; i++) {
            double s = 0;
            for (int j = 0; j < HC; j++) {
                s += pre[j] * X[xOff + j * D + i];
            }
            x[i] = Bf16.round(s);
        }
        return new HcRef(pre, post, C, x);
    }

    static void columnNormalise(double[][] C, double eps) {
        for (int k = 0; k < HC; k++) {
            double s = 0;
            for (int j = 0; j < HC; j++) {
                s += C[j][k];
            }
            for (int j = 0; j < HC; j++) {
                C[j][k] /= s + eps;
            }
        }
    }

    static float[][] fnOf(HcWeights hw) {
        F32Matrix m = hw.fn();
        float[][] fn = new float[m.rows()][m.cols()];
        for (int r = 0; r < m.rows(); r++) {
            for (int col = 0; col < m.cols(); col++) {
                fn[r][col] = m.get(r, col);
            }
        }
        return fn;
    }

    /** Random mixing weights of the given scale, stored like a checkpoint tensor (little-endian f32). */
    static HcWeights randomHc(Random r, int D, double fnStd, double baseStd, float[] scale) {
        int rows = (2 + HC) * HC;
        MemorySegment seg = Arena.ofAuto().allocate(4L * rows * HC * D);
        ValueLayout.OfFloat le = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        for (long i = 0; i < (long) rows * HC * D; i++) {
            seg.set(le, 4 * i, (float) (r.nextGaussian() * fnStd));
        }
        float[] base = new float[rows];
        for (int i = 0; i < rows; i++) {
            base[i] = (float) (r.nextGaussian() * baseStd);
        }
        return new HcWeights(new F32Matrix("random_fn", rows, HC * D, seg), base, scale);
    }

    /** Compares the engine's hc_pre of T tokens with the reference; returns the references. */
    HcRef[] checkAgainstReference(HcWeights hw, float[] X, int T, String what) {
        float[] x = new float[T * d];
        double[] post = new double[T * HC];
        double[] comb = new double[T * HC * HC];
        tr.hcPre(hw, X, T, x, post, comb);
        float[][] fn = fnOf(hw);
        HcRef[] refs = new HcRef[T];
        for (int t = 0; t < T; t++) {
            HcRef ref = hcPreRef(fn, hw.base(), hw.scale(), X, t * HC * d, d, c.hcSinkhornIters());
            refs[t] = ref;
            for (int j = 0; j < HC; j++) {
                assertEquals(ref.post()[j], post[t * HC + j], 1e-12, what + " token " + t + " post " + j);
                for (int k = 0; k < HC; k++) {
                    assertEquals(ref.comb()[j][k], comb[t * HC * HC + j * HC + k], 1e-12,
                            what + " token " + t + " comb[" + j + "][" + k + "]");
                }
            }
            for (int i = 0; i < d; i++) {
                assertEquals(Float.floatToRawIntBits(ref.x()[i]), Float.floatToRawIntBits(x[t * d + i]),
                        what + " token " + t + " x[" + i + "] = bf16(sum_j pre_j X_j)");
            }
            checkSinkhornProperties(post, comb, t, what);
        }
        return refs;
    }

    static void checkSinkhornProperties(double[] post, double[] comb, int t, String what) {
        for (int j = 0; j < HC; j++) {
            double p = post[t * HC + j];
            assertTrue(p > 0 && p < 2, what + " token " + t + " post " + p);
            double row = 0;
            double col = 0;
            for (int k = 0; k < HC; k++) {
                double v = comb[t * HC * HC + j * HC + k];
                assertTrue(v > 0 && v <= 1, what + " comb entry " + v);
                row += v;
                col += comb[t * HC * HC + k * HC + j];
            }
            // the last step normalises columns: they are 1 up to the 1e-6 eps; rows have nearly converged after 20
            // iterations (skewed 4x4 matrices converge slowly: up to ~0.6 % off on these inputs)
            assertEquals(1.0, col, 1e-5, what + " token " + t + " column " + j);
            assertEquals(1.0, row, 2e-2, what + " token " + t + " row " + j);
        }
    }

    // ------------------------------------------------------------------------------------------ tests

    @Test
    void goldenAttentionInputsOfEveryLayer() {
        int T = golden.ints("tokens").length;
        for (int l = 0; l < c.nLayers(); l++) {
            ModelWeights.Layer L = w.layers[l];
            float[] in = golden.floats("layer" + l + ".input_streams");
            HcRef[] refs = checkAgainstReference(L.hcAttn(), in, T, "layer " + l + " attn");
            float[] x = new float[T * d];
            for (int t = 0; t < T; t++) {
                System.arraycopy(refs[t].x(), 0, x, t * d, d);
                for (int j = 0; j < HC; j++) {
                    assertTrue(refs[t].pre()[j] > 0 && refs[t].pre()[j] <= 1 + 1e-6);
                }
            }
            tr.rmsNorm(x, 0, T, d, L.attnNorm(), x, 0);
            assertArrayEquals(golden.floats("layer" + l + ".attn_in_all"), x, "layer " + l + " attn_in_all");
        }
    }

    @Test
    void goldenFfnInputsOfEveryLayer() {
        int T = golden.ints("tokens").length;
        for (int l = 0; l < c.nLayers(); l++) {
            ModelWeights.Layer L = w.layers[l];
            float[] mid = golden.floats("layer" + l + ".mid_streams");
            float[] x = new float[T * d];
            tr.hcPre(L.hcFfn(), mid, T, x, new double[T * HC], new double[T * HC * HC]);
            tr.rmsNorm(x, 0, T, d, L.ffnNorm(), x, 0);
            assertArrayEquals(golden.floats("layer" + l + ".ffn_in_all"), x, "layer " + l + " ffn_in_all");
            checkAgainstReference(L.hcFfn(), mid, 4, "layer " + l + " ffn");
        }
    }

    @Test
    void hcPostMixesWithTheTransposedComb() {
        // X'[k] = bf16(post_k * a + sum_j comb[j][k] X[j]) on golden layer 0: gives the golden mid_streams
        int T = 8;
        float[] in = golden.floats("layer0.input_streams");
        float[] a = golden.floats("layer0.attn_out_all");
        float[] x = new float[T * d];
        double[] post = new double[T * HC];
        double[] comb = new double[T * HC * HC];
        tr.hcPre(w.layers[0].hcAttn(), in, T, x, post, comb);
        float[] out = new float[T * HC * d];
        tr.hcPost(a, in, post, comb, T, out);
        float[] want = Arrays.copyOf(golden.floats("layer0.mid_streams"), T * HC * d);
        assertArrayEquals(want, out);
        for (int t = 0; t < T; t++) {
            for (int k = 0; k < HC; k++) {
                for (int i = 0; i < d; i += 37) {
                    double s = post[t * HC + k] * a[t * d + i];
                    for (int j = 0; j < HC; j++) {
                        s += comb[t * HC * HC + j * HC + k] * in[(t * HC + j) * d + i];
                    }
                    assertEquals(Bf16.round(s), out[(t * HC + k) * d + i], 0.0f);
                }
            }
        }
    }

    @Test
    void randomMixingWeights() {
        Random r = new Random(42);
        int T = 6;
        for (double[] p : new double[][] {{0.02, 0.5, 1}, {0.05, 1.5, 3}, {0.001, 0.1, 0.3}}) {
            HcWeights hw = randomHc(r, d, p[0], p[1], new float[] {(float) p[2], (float) (p[2] / 2), (float) p[2]});
            float[] X = new float[T * HC * d];
            for (int i = 0; i < X.length; i++) {
                X[i] = Bf16.round(r.nextGaussian() * (1 + i % 7));
            }
            checkAgainstReference(hw, X, T, "random " + Arrays.toString(p));
        }
    }

    @Test
    void preWeightsLieInZeroToOnePlusEps() {
        // With only stream j non-zero, x = bf16(pre_j * X_j): the ratio shows pre_j.
        Random r = new Random(9);
        HcWeights hw = randomHc(r, d, 0.05, 2.0, new float[] {3f, 1f, 1f});
        for (int j = 0; j < HC; j++) {
            float[] X = new float[HC * d];
            for (int i = 0; i < d; i++) {
                X[j * d + i] = 1f + (i % 5);
            }
            float[] x = new float[d];
            tr.hcPre(hw, X, 1, x, new double[HC], new double[HC * HC]);
            double pre = x[0] / X[j * d];
            for (int i = 0; i < d; i++) {
                double ratio = x[i] / X[j * d + i];
                assertTrue(ratio > 0 && ratio <= (1 + 1e-6) * (1 + 0x1p-8), "stream " + j + " pre " + ratio);
                assertEquals(pre, ratio, pre * 0x1p-7);
            }
        }
    }

    // ------------------------------------------------------------------------------------------ Hadamard

    /** The natural-order (Sylvester) Hadamard matrix: H[i][j] = (-1)^popcount(i & j). */
    static int sylvester(int i, int j) {
        return (Integer.bitCount(i & j) & 1) == 0 ? 1 : -1;
    }

    @Test
    void hadamardMatchesTheSylvesterMatrixProduct() {
        Random r = new Random(4);
        int n = 128;
        for (int trial = 0; trial < 20; trial++) {
            float[] x = new float[n + 6];
            for (int i = 0; i < x.length; i++) {
                x[i] = Bf16.round(r.nextGaussian() * Math.exp(r.nextGaussian()));
            }
            float[] orig = x.clone();
            Transformer.hadamard(x, 3, n, new double[n]);
            for (int i = 0; i < n; i++) {
                double s = 0;
                for (int j = 0; j < n; j++) {
                    s += sylvester(i, j) * (double) orig[3 + j];
                }
                assertEquals(Bf16.round(s * 0.08838834764831845), x[3 + i], 0.0f, "row " + i);
            }
            for (int i : new int[] {0, 1, 2, n + 3, n + 4, n + 5}) {
                assertEquals(orig[i], x[i], 0.0f, "outside the vector");
            }
        }
        // H e_0 is the constant vector 1/sqrt(128); H e_1 alternates
        float[] e = new float[n];
        e[1] = 1f;
        Transformer.hadamard(e, 0, n, new double[n]);
        for (int i = 0; i < n; i++) {
            assertEquals(Bf16.round((i % 2 == 0 ? 1 : -1) / Math.sqrt(128)), e[i], 0.0f);
        }
    }

    @Test
    void hadamardTwiceIsTheIdentityWithinBf16() {
        // H H = n I, and with the 1/sqrt(n) scale the transform is an involution
        Random r = new Random(8);
        int n = 128;
        for (int trial = 0; trial < 20; trial++) {
            float[] x = new float[n];
            double norm = 0;
            for (int i = 0; i < n; i++) {
                x[i] = Bf16.round(r.nextGaussian());
                norm += (double) x[i] * x[i];
            }
            norm = Math.sqrt(norm);
            float[] orig = x.clone();
            Transformer.hadamard(x, 0, n, new double[n]);
            Transformer.hadamard(x, 0, n, new double[n]);
            for (int i = 0; i < n; i++) {
                assertEquals(orig[i], x[i], norm * 0x1p-9 + Math.abs(orig[i]) * 0x1p-8, "element " + i);
            }
        }
        // with values that survive both roundings exactly: ±1 patterns whose transform is ±sqrt(128)·e_k / sqrt(128)
        float[] row = new float[n];
        for (int j = 0; j < n; j++) {
            row[j] = sylvester(5, j);
        }
        Transformer.hadamard(row, 0, n, new double[n]);
        float s128 = Bf16.round(Math.sqrt(128));
        for (int i = 0; i < n; i++) {
            assertEquals(i == 5 ? s128 : 0f, row[i], 0.0f);
        }
    }

    // ------------------------------------------------------------------------------------------ top-k

    @Test
    void topKIsDescendingWithLowerIndexFirstOnTies() {
        float[] v = {1f, 3f, 3f, 2f, -0.0f, 0.0f, 3f, Float.NEGATIVE_INFINITY, 99f};
        assertArrayEquals(new int[] {1, 2, 6, 3, 0, 5, 4, 7}, Transformer.topK(v, 8, 8), "n = 8 ignores index 8");
        assertArrayEquals(new int[] {8, 1, 2}, Transformer.topK(v, 9, 3));
        assertArrayEquals(new int[] {1, 0}, Transformer.topK(new float[] {-0.0f, 0.0f}, 2, 2), "+0 ranks above -0");
        assertArrayEquals(new int[] {1}, Transformer.topK(new float[] {-0.0f, 0.0f, -0.0f}, 3, 1));
        double[] dv = {0.5, 2, 2, -0.0, 0.0, 2};
        assertArrayEquals(new int[] {1, 2, 5, 0, 4, 3}, Transformer.topK(dv, 6, 6));
        assertArrayEquals(new int[0], Transformer.topK(dv, 6, 0));
    }

    @Test
    void topKMatchesASortOnRandomInputsWithManyTies() {
        Random r = new Random(12);
        for (int trial = 0; trial < 200; trial++) {
            int n = 1 + r.nextInt(60);
            float[] v = new float[n];
            double[] dv = new double[n];
            for (int i = 0; i < n; i++) {
                int kind = r.nextInt(5);
                v[i] = kind == 0 ? 0.0f : kind == 1 ? -0.0f : r.nextInt(6) - 2;
                dv[i] = v[i];
            }
            int k = r.nextInt(n + 1);
            // descending by value, -0 below +0, then ascending index
            int[] want = IntStream.range(0, n).boxed()
                    .sorted(Comparator.<Integer>comparingInt(i -> rank(v[i])).reversed().thenComparingInt(i -> i))
                    .limit(k).mapToInt(Integer::intValue).toArray();
            assertArrayEquals(want, Transformer.topK(v, n, k), "float trial " + trial + " " + Arrays.toString(v));
            assertArrayEquals(want, Transformer.topK(dv, n, k), "double trial " + trial);
        }
    }

    /** Order key for the small values used above: integer value, with +0 one step above -0. */
    static int rank(float f) {
        if (f == 0) {
            return Float.floatToRawIntBits(f) == 0 ? 1 : 0;
        }
        return (int) f * 2 + (f > 0 ? 1 : 0);
    }
}
