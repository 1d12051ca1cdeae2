package io.epserve.expert;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.format.Fp8E4m3;
import io.epserve.model.format.QuantSim;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The engine feeds the bf16 activation x to the FP4 expert linears, which FP8-quantise it per 128 values; an expert
 * worker feeds the already quantised xq decoded from the dispatch. They compute the same bits because the
 * quantisation round trip is idempotent on values: {@code roundTrip(xq) == xq}, bit for bit (sign of zero included).
 *
 * <p>The codes and exponents are NOT always idempotent: when a block's quantised maximum lands exactly on
 * {@code 448 * 2^(k-1)} (= 224 * 2^k: x's block maximum just above 224 * 2^k rounds down to it, e.g. 225 -> 224 with
 * k = 0, or 449 -> 448 with k = 1), quantising xq derives k' = k - 1 and twice the codes. Both encodings decode to the
 * same values, so the kernels (which work on the decoded values) give the same results. This test pins both facts.
 */
class QuantIdempotenceTest {
    private static final int BLOCK = 128;

    @Test
    void roundTripIsIdempotentOnValuesAndCodesDifferOnlyAtTheHalfMaxBoundary() {
        List<float[]> rows = new ArrayList<>();
        SplittableRandom rnd = new SplittableRandom(20240501);
        for (int r = 0; r < 4000; r++) {
            rows.add(randomRow(rnd, 4 * BLOCK));
        }
        int randomRows = rows.size();
        rows.addAll(edgeRows(rnd));

        int blocks = 0;
        int boundaryBlocks = 0;
        int boundaryInEdgeRows = 0;
        for (int r = 0; r < rows.size(); r++) {
            float[] x = rows.get(r);
            int n = x.length;
            float[] xq = new float[n];
            QuantSim.fp8RoundTrip(x, 0, n, BLOCK, xq, 0);
            float[] xqq = new float[n];
            QuantSim.fp8RoundTrip(xq, 0, n, BLOCK, xqq, 0);
            assertBitsEqual(xq, xqq, "round trip of xq, row " + r);

            byte[] codes = new byte[n];
            int[] exps = new int[n / BLOCK];
            QuantSim.fp8Quantize(x, 0, n, BLOCK, codes, 0, exps, 0);
            byte[] codes2 = new byte[n];
            int[] exps2 = new int[n / BLOCK];
            QuantSim.fp8Quantize(xq, 0, n, BLOCK, codes2, 0, exps2, 0);

            // What the dispatch carries decodes exactly to xq (int8 exponents, float arithmetic), as does the
            // re-quantised form.
            assertBitsEqual(xq, decode(codes, exps), "decode(quantise(x)), row " + r);
            assertBitsEqual(xq, decode(codes2, exps2), "decode(quantise(xq)), row " + r);

            for (int b = 0; b < n / BLOCK; b++) {
                blocks++;
                int k = exps[b];
                assertTrue(k >= Byte.MIN_VALUE && k <= Byte.MAX_VALUE, "exponent " + k + " fits the wire's int8");
                boolean sameCodes = Arrays.equals(codes, b * BLOCK, (b + 1) * BLOCK, codes2, b * BLOCK, (b + 1) * BLOCK);
                if (exps2[b] == k && sameCodes) {
                    continue;
                }
                float amaxQ = 0;
                for (int i = b * BLOCK; i < (b + 1) * BLOCK; i++) {
                    amaxQ = Math.max(amaxQ, Math.abs(xq[i]));
                }
                assertEquals(k - 1, exps2[b], "row " + r + " block " + b + ": re-quantised exponent");
                assertEquals(Math.scalb(448f, k - 1), amaxQ, "row " + r + " block " + b + ": quantised block max");
                for (int i = b * BLOCK; i < (b + 1) * BLOCK; i++) {
                    assertEquals(2 * Fp8E4m3.toFloat(codes[i]), Fp8E4m3.toFloat(codes2[i]), "code at " + i);
                }
                boundaryBlocks++;
                if (r >= randomRows) {
                    boundaryInEdgeRows++;
                }
            }
        }
        assertTrue(blocks > 16000, "blocks checked: " + blocks);
        assertTrue(boundaryInEdgeRows >= 6, "the edge rows must exercise the 224 * 2^k boundary: " + boundaryInEdgeRows);
        System.out.printf("quantisation idempotence: %d blocks, values idempotent in all; codes re-derived at the "
                + "224*2^k boundary in %d blocks (%d of them edge cases)%n", blocks, boundaryBlocks, boundaryInEdgeRows);
    }

    /** Values from many magnitudes, with random block scales, signs, zeros and bf16 rounding (activations are bf16). */
    private static float[] randomRow(SplittableRandom rnd, int n) {
        float[] x = new float[n];
        for (int b = 0; b < n; b += BLOCK) {
            double scale = Math.pow(2, rnd.nextDouble(-30, 30));
            for (int i = b; i < b + BLOCK; i++) {
                double v = rnd.nextInt(16) == 0 ? 0 : rnd.nextGaussian() * scale;
                x[i] = bf16(rnd.nextInt(64) == 0 ? -0.0 : v);
            }
        }
        return x;
    }

    private static List<float[]> edgeRows(SplittableRandom rnd) {
        List<float[]> rows = new ArrayList<>();
        rows.add(new float[BLOCK]);                                  // all-zero block
        float[] negZero = new float[BLOCK];
        Arrays.fill(negZero, -0.0f);
        rows.add(negZero);                                           // negative zeros keep their sign
        for (double amax : new double[] {0.5e-4, 0.99e-4, 1e-4, 1.001e-4, 1.05e-4, 1.068e-4, 1.07e-4, 1.1e-4, 2e-4}) {
            rows.add(block(rnd, amax));                              // near the 1e-4 amax floor
        }
        for (int k = -20; k <= 20; k += 5) {
            double p = Math.scalb(1.0, k);
            for (double top : new double[] {224, 225, 231.9, 232, 233, 240, 447, 448, 449, 460, 464, 465, 470, 480}) {
                rows.add(block(rnd, top * p));                       // maxima rounding to 224, 448 (* 2^k) and beyond
            }
            rows.add(block(rnd, Math.nextUp((float) (448 * p))));
            rows.add(block(rnd, Math.nextDown((float) (448 * p))));
        }
        float[] sub = new float[BLOCK];                              // e4m3 subnormals after scaling
        for (int i = 0; i < BLOCK; i++) {
            sub[i] = (float) ((i % 2 == 0 ? 1 : -1) * Math.scalb(1.0, -9) * (i % 8) * Math.scalb(1.0, -2));
        }
        sub[0] = 1.0f;
        rows.add(sub);
        float[] ties = new float[BLOCK];                             // exact ties on the e4m3 grid
        for (int i = 0; i < BLOCK; i++) {
            ties[i] = (float) ((i % 2 == 0 ? 1 : -1) * (8.5 + i % 7) / 8 * Math.scalb(1.0, i % 5));
        }
        ties[1] = 448;
        rows.add(ties);
        return rows;
    }

    /** A block whose largest magnitude is {@code amax} (at a random position and sign), the rest below it. */
    private static float[] block(SplittableRandom rnd, double amax) {
        float[] x = new float[BLOCK];
        for (int i = 0; i < BLOCK; i++) {
            x[i] = (float) (rnd.nextDouble(-1, 1) * amax);
        }
        x[rnd.nextInt(BLOCK)] = (float) (rnd.nextBoolean() ? amax : -amax);
        x[rnd.nextInt(BLOCK)] = -0.0f;
        return x;
    }

    /** What an expert worker computes from the wire: e4m3(code) * 2^exponent, in float. */
    private static float[] decode(byte[] codes, int[] exps) {
        float[] v = new float[codes.length];
        for (int b = 0; b < exps.length; b++) {
            float s = Math.scalb(1f, (byte) exps[b]);
            for (int i = b * BLOCK; i < (b + 1) * BLOCK; i++) {
                v[i] = Fp8E4m3.toFloat(codes[i]) * s;
            }
        }
        return v;
    }

    private static float bf16(double v) {
        int bits = Float.floatToRawIntBits((float) v);
        int rounded = bits + 0x7fff + ((bits >>> 16) & 1);
        return Float.intBitsToFloat(rounded & 0xffff0000);
    }

    private static void assertBitsEqual(float[] want, float[] got, String what) {
        for (int i = 0; i < want.length; i++) {
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i])) {
                throw new AssertionError(what + ": element " + i + " is " + got[i] + " (0x"
                        + Integer.toHexString(Float.floatToRawIntBits(got[i])) + "), expected " + want[i] + " (0x"
                        + Integer.toHexString(Float.floatToRawIntBits(want[i])) + ")");
            }
        }
    }
}
