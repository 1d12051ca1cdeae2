package io.epserve.model.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The merged lane sums ({@link TileKernels#sums}) against one butterfly per vector ({@link TileKernels#sum}). */
class TileKernelsTest {

    /** Values spanning 2^-60..2^60 with both signs, zeros and subnormals: the order of additions shows in the bits. */
    static float value(SplittableRandom r) {
        return switch (r.nextInt(20)) {
            case 0 -> 0f;
            case 1 -> -0f;
            case 2 -> Float.MIN_VALUE * r.nextInt(1, 1000);
            default -> (float) ((r.nextBoolean() ? 1 : -1) * r.nextDouble(1, 2) * Math.scalb(1.0, r.nextInt(-60, 61)));
        };
    }

    @Test
    void floatSumsHaveTheBitsOfOneButterflyPerVector() {
        assumeTrue(TileKernels.SUMS, "merged sums are written for 512-bit vectors only");
        int L = TileKernels.L;
        SplittableRandom r = new SplittableRandom(7);
        int orderVisible = 0;
        for (int round = 0; round < 2000; round++) {
            int off = r.nextInt(4);
            float[] a = new float[off + L * L];
            for (int i = off; i < a.length; i++) {
                a[i] = value(r);
            }
            float[] out = new float[L + 3];
            TileKernels.sums(a, off, out, 3);
            for (int k = 0; k < L; k++) {
                float one = TileKernels.sum(a, off + k * L);
                assertEquals(Float.floatToRawIntBits(one), Float.floatToRawIntBits(out[3 + k]),
                        "round " + round + " vector " + k + ": " + one + " vs " + out[3 + k]);
                float sequential = 0f;
                for (int i = 0; i < L; i++) {
                    sequential += a[off + k * L + i];
                }
                if (Float.floatToRawIntBits(sequential) != Float.floatToRawIntBits(one)) {
                    orderVisible++;
                }
            }
        }
        // the inputs are such that another summation order would have been caught
        assertTrue(orderVisible > 1000, "sequential sums differing from the butterfly: " + orderVisible);
    }

    @Test
    void doubleSumsHaveTheBitsOfOneButterflyPerVector() {
        assumeTrue(TileKernels.SUMS, "merged sums are written for 512-bit vectors only");
        int L = TileKernels.LD;
        SplittableRandom r = new SplittableRandom(11);
        int orderVisible = 0;
        for (int round = 0; round < 2000; round++) {
            int off = r.nextInt(4);
            double[] a = new double[off + L * L];
            for (int i = off; i < a.length; i++) {
                a[i] = r.nextInt(20) == 0 ? 0.0 : (r.nextBoolean() ? 1 : -1) * r.nextDouble(1, 2)
                        * Math.scalb(1.0, r.nextInt(-60, 61));
            }
            double[] out = new double[L + 1];
            TileKernels.sums(a, off, out, 1);
            for (int k = 0; k < L; k++) {
                double one = TileKernels.sum(a, off + k * L);
                assertEquals(Double.doubleToRawLongBits(one), Double.doubleToRawLongBits(out[1 + k]),
                        "round " + round + " vector " + k);
                double sequential = 0.0;
                for (int i = 0; i < L; i++) {
                    sequential += a[off + k * L + i];
                }
                if (Double.doubleToRawLongBits(sequential) != Double.doubleToRawLongBits(one)) {
                    orderVisible++;
                }
            }
        }
        assertTrue(orderVisible > 1000, "sequential sums differing from the butterfly: " + orderVisible);
    }
}
