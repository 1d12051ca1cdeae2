package io.epserve.model.format;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.engine.KvRowCodec;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The number formats (spec §2.4, §3.3–§3.5; GOLDEN.md numerics contract 1, 4, 7). Every expectation is computed here
 * from the bit layout or by hand, never by the code under test.
 */
class FormatsTest {

    // ------------------------------------------------------------------------------------------ FP8 e4m3

    /** e4m3fn from the bit layout: sign, 4-bit exponent (bias 7), 3-bit mantissa; subnormal m*2^-9; S.1111.111 NaN. */
    static double e4m3(int code) {
        int s = (code >> 7) & 1;
        int e = (code >> 3) & 0xf;
        int m = code & 7;
        if (e == 15 && m == 7) {
            return Double.NaN;
        }
        double mag = e == 0 ? m / 512.0 : (1 + m / 8.0) * Math.pow(2, e - 7);
        return s == 1 ? -mag : mag;
    }

    @Test
    void fp8DecodesEveryCodeFromItsBitLayout() {
        for (int c = 0; c < 256; c++) {
            double want = e4m3(c);
            float got = Fp8E4m3.toFloat(c);
            if (Double.isNaN(want)) {
                assertTrue(Float.isNaN(got), "code " + c);
            } else {
                assertEquals(Double.doubleToRawLongBits(want), Double.doubleToRawLongBits(got), "code " + c + " = " + want);
            }
            assertEquals(Fp8E4m3.table()[c], got, 0.0);
        }
        assertTrue(Float.isNaN(Fp8E4m3.toFloat(0x7f)));
        assertTrue(Float.isNaN(Fp8E4m3.toFloat(0xff)));
        assertEquals(448.0f, Fp8E4m3.toFloat(0x7e));
        assertEquals(-448.0f, Fp8E4m3.toFloat(0xfe));
        assertEquals(0x1p-9f, Fp8E4m3.toFloat(0x01));
        assertEquals(7 * 0x1p-9f, Fp8E4m3.toFloat(0x07));
        assertEquals(0x1p-6f, Fp8E4m3.toFloat(0x08));
        double max = 0;
        for (int c = 0; c < 256; c++) {
            if (!Double.isNaN(e4m3(c))) {
                max = Math.max(max, Math.abs(e4m3(c)));
            }
        }
        assertEquals(448.0, max);
    }

    @Test
    void fp8EncodeInvertsDecodeOnEveryCodeIncludingSignedZero() {
        for (int c = 0; c < 256; c++) {
            if (Double.isNaN(e4m3(c))) {
                continue;
            }
            assertEquals(c, Fp8E4m3.encode(e4m3(c)) & 0xff, "code " + c);
            double g = Fp8E4m3.roundToGrid(e4m3(c));
            assertEquals(Double.doubleToRawLongBits(e4m3(c)), Double.doubleToRawLongBits(g), "grid of code " + c);
        }
        assertEquals(0x00, Fp8E4m3.encode(0.0));
        assertEquals((byte) 0x80, Fp8E4m3.encode(-0.0));
        assertEquals(0x7f, Fp8E4m3.encode(Double.NaN));
    }

    @Test
    void fp8MidpointsBetweenNeighboursGoToTheEvenCode() {
        // positive non-NaN codes 0..126 are in increasing value order
        for (int sign = 0; sign <= 0x80; sign += 0x80) {
            for (int c = 0; c < 126; c++) {
                double a = e4m3(sign | c);
                double b = e4m3(sign | (c + 1));
                double mid = (a + b) / 2; // exact in double
                int even = (c & 1) == 0 ? c : c + 1;
                String what = "between codes " + (sign | c) + " and " + (sign | (c + 1)) + " (" + a + ", " + b + ")";
                assertEquals(sign | even, Fp8E4m3.encode(mid) & 0xff, "midpoint " + what);
                assertEquals(e4m3(sign | even), Fp8E4m3.roundToGrid(mid), 0.0, "grid midpoint " + what);
                // just off the midpoint: the nearer code
                double up = sign == 0 ? Math.nextUp(mid) : Math.nextDown(mid);
                double down = sign == 0 ? Math.nextDown(mid) : Math.nextUp(mid);
                assertEquals(sign | (c + 1), Fp8E4m3.encode(up) & 0xff, "above midpoint " + what);
                assertEquals(sign | c, Fp8E4m3.encode(down) & 0xff, "below midpoint " + what);
                assertEquals(b, Fp8E4m3.roundToGrid(up), 0.0, "grid above midpoint " + what);
                assertEquals(a, Fp8E4m3.roundToGrid(down), 0.0, "grid below midpoint " + what);
            }
        }
    }

    @Test
    void fp8SaturatesAt448() {
        assertEquals(0x7e, Fp8E4m3.encode(448.0));
        assertEquals(0x7e, Fp8E4m3.encode(464.0)); // the midpoint to the missing next step
        assertEquals(0x7e, Fp8E4m3.encode(1e6));
        assertEquals(0x7e, Fp8E4m3.encode(Double.POSITIVE_INFINITY));
        assertEquals((byte) 0xfe, Fp8E4m3.encode(-1e6));
        assertEquals((byte) 0xfe, Fp8E4m3.encode(Double.NEGATIVE_INFINITY));
        assertEquals(0x7d, Fp8E4m3.encode(416.0)); // 416 = 1.625 * 256 is itself a code
        assertEquals(0x7e, Fp8E4m3.encode(440.0)); // midpoint of 416/448 is 432; 440 is above
    }

    // ------------------------------------------------------------------------------------------ FP4 e2m1

    /** e2m1 from the bit layout: sign, 2-bit exponent (bias 1), 1-bit mantissa; subnormal m*0.5. */
    static double e2m1(int code) {
        int s = (code >> 3) & 1;
        int e = (code >> 1) & 3;
        int m = code & 1;
        double mag = e == 0 ? m * 0.5 : (1 + m / 2.0) * Math.pow(2, e - 1);
        return s == 1 ? -mag : mag;
    }

    @Test
    void fp4DecodesAll16Codes() {
        double[] table = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
        for (int c = 0; c < 16; c++) {
            assertEquals(Double.doubleToRawLongBits(e2m1(c)), Double.doubleToRawLongBits(Fp4E2m1.toFloat(c)), "code " + c);
            double mag = table[c & 7];
            assertEquals((c & 8) != 0 ? -mag : mag, Fp4E2m1.toFloat(c), 0.0, "spec table, code " + c);
            assertEquals(c, Fp4E2m1.encode(e2m1(c)), "encode(decode(" + c + "))");
        }
        assertEquals(0x8, Fp4E2m1.encode(-0.0));
    }

    @Test
    void fp4TiesGoToTheEvenCodeAsGoldenLists() {
        double[][] ties = {{0.25, 0}, {0.75, 1}, {1.25, 1}, {1.75, 2}, {2.5, 2}, {3.5, 4}, {5, 4}};
        for (double[] t : ties) {
            assertEquals(t[1], Fp4E2m1.roundToGrid(t[0]), 0.0, "tie " + t[0]);
            assertEquals(-t[1], Fp4E2m1.roundToGrid(-t[0]), 0.0, "tie " + -t[0]);
            assertEquals(0, Fp4E2m1.encode(t[0]) & 1, "tie " + t[0] + " encodes to an even code");
            assertEquals(8, Fp4E2m1.encode(-t[0]) & 8, "negative tie keeps the sign");
        }
        assertEquals(0x8, Fp4E2m1.encode(-0.25), "-0.25 -> -0");
        // off the midpoints, the nearer value
        assertEquals(0.5, Fp4E2m1.roundToGrid(Math.nextUp(0.25)), 0.0);
        assertEquals(1.5, Fp4E2m1.roundToGrid(Math.nextUp(1.25)), 0.0);
        assertEquals(3.0, Fp4E2m1.roundToGrid(Math.nextDown(3.5)), 0.0);
        assertEquals(6.0, Fp4E2m1.roundToGrid(Math.nextUp(5.0)), 0.0);
        assertEquals(-6.0, Fp4E2m1.roundToGrid(-Math.nextUp(5.0)), 0.0);
        // saturation
        assertEquals(7, Fp4E2m1.encode(6.5));
        assertEquals(7, Fp4E2m1.encode(1e9));
        assertEquals(15, Fp4E2m1.encode(-1e9));
    }

    @Test
    void fp4NibblesLowIsTheEvenElement() {
        byte packed = (byte) 0xA3; // element 0 = code 3 (1.5), element 1 = code 0xA (-1)
        assertEquals(3, Fp4E2m1.nibble(packed, 0));
        assertEquals(0xA, Fp4E2m1.nibble(packed, 1));
        assertEquals(0xF, Fp4E2m1.nibble((byte) 0xF1, 1), "no sign extension");
        assertEquals(1, Fp4E2m1.nibble((byte) 0xF1, 0));
    }

    // ------------------------------------------------------------------------------------------ E8M0

    @Test
    void e8m0DecodesAll256Codes() {
        for (int c = 0; c < 255; c++) {
            double want = Double.longBitsToDouble((long) (c - 127 + 1023) << 52); // 2^(c-127) from its bits
            assertEquals(want, E8m0.toDouble(c), 0.0, "code " + c);
            assertEquals((float) want, E8m0.toFloat(c), 0.0f, "code " + c);
            assertEquals((byte) c, E8m0.fromExponent(c - 127));
        }
        assertTrue(Double.isNaN(E8m0.toDouble(0xff)));
        assertTrue(Double.isNaN(E8m0.toDouble((byte) 0xff)), "a signed byte is read unsigned");
        assertEquals(1.0, E8m0.toDouble(127), 0.0);
        assertEquals(0x1p-127f, E8m0.toFloat(0), 0.0f);
        assertThrows(IllegalArgumentException.class, () -> E8m0.fromExponent(128));
        assertThrows(IllegalArgumentException.class, () -> E8m0.fromExponent(-128));
    }

    // ------------------------------------------------------------------------------------------ BF16

    @Test
    void bf16RoundsToNearestEven() {
        assertEquals((short) 0x3f80, Bf16.bits(1.0f));
        assertEquals((short) 0x3f80, Bf16.bits(Float.intBitsToFloat(0x3f807fff)), "below the midpoint");
        assertEquals((short) 0x3f80, Bf16.bits(Float.intBitsToFloat(0x3f808000)), "midpoint, even below");
        assertEquals((short) 0x3f81, Bf16.bits(Float.intBitsToFloat(0x3f808001)), "above the midpoint");
        assertEquals((short) 0x3f82, Bf16.bits(Float.intBitsToFloat(0x3f818000)), "midpoint, even above");
        assertEquals((short) 0xbf82, Bf16.bits(Float.intBitsToFloat(0xbf818000)), "negative midpoint");
        assertEquals((short) 0x4000, Bf16.bits(Float.intBitsToFloat(0x3fffc000)), "carry into the exponent");
        assertEquals((short) 0x8000, Bf16.bits(-0.0f));
        assertEquals((short) 0x0000, Bf16.bits(Float.intBitsToFloat(0x00008000)), "subnormal midpoint, even below");
        assertEquals((short) 0x0002, Bf16.bits(Float.intBitsToFloat(0x00018000)), "subnormal midpoint, even above");
        assertEquals((short) 0x0080, Bf16.bits(Float.intBitsToFloat(0x007fffff)), "largest subnormal -> smallest normal");
    }

    @Test
    void bf16NanInfinityAndOverflow() {
        assertEquals((short) 0x7f80, Bf16.bits(Float.POSITIVE_INFINITY));
        assertEquals((short) 0xff80, Bf16.bits(Float.NEGATIVE_INFINITY));
        assertTrue(Float.isNaN(Bf16.round(Float.NaN)));
        // a NaN whose payload sits only in the low 16 bits must not round to infinity
        assertTrue(Float.isNaN(Bf16.round(Float.intBitsToFloat(0x7f800001))));
        assertTrue(Float.isNaN(Bf16.round(Float.intBitsToFloat(0xff800001))));
        assertTrue(Float.isNaN(Bf16.round(Float.intBitsToFloat(0x7fffffff))), "no wrap to the next exponent");
        assertTrue(Float.isNaN(Bf16.round(Double.NaN)));
        // overflow: values past the midpoint between the largest bf16 and 2^128 become infinity
        assertEquals((short) 0x7f80, Bf16.bits(Float.MAX_VALUE));
        assertEquals((short) 0x7f80, Bf16.bits(Float.intBitsToFloat(0x7f7f8000)), "tie with infinity goes to even (inf)");
        assertEquals((short) 0x7f7f, Bf16.bits(Float.intBitsToFloat(0x7f7f7fff)));
        assertEquals((short) 0xff80, Bf16.bits(-Float.MAX_VALUE));
        assertEquals(Float.POSITIVE_INFINITY, Bf16.round(1e39), "double beyond float range");
    }

    @Test
    void bf16OfADoubleRoundsToFloatFirst() {
        // 1 + 2^-8 + 2^-40: directly to bf16 it is above the midpoint (-> 1 + 2^-7), but float32 first drops the
        // 2^-40 and leaves an exact tie, which goes to the even value 1.0 (numerics contract: f32, then bf16).
        assertEquals(1.0f, Bf16.round(1 + 0x1p-8 + 0x1p-40), 0.0f);
        assertEquals(1.0f + 0x1p-7f, Bf16.round(1 + 0x1p-8 + 0x1p-20), 0.0f);
    }

    /** Independent nearest-even bf16: the two bf16 neighbours and exact distances in double. */
    static float bf16Reference(float f) {
        int b = Float.floatToRawIntBits(f);
        int lo = b & 0xffff0000;
        if ((b & 0xffff) == 0) {
            return f;
        }
        float low = Float.intBitsToFloat(lo);
        int hiBits = lo + 0x10000;
        double high = (hiBits & 0x7fffffff) == 0x7f800000 ? Math.copySign(0x1p128, f) : Float.intBitsToFloat(hiBits);
        double dl = Math.abs((double) f - low);
        double dh = Math.abs(high - f);
        if (dl < dh || (dl == dh && (lo & 0x10000) == 0)) {
            return low;
        }
        return Float.intBitsToFloat(hiBits);
    }

    @Test
    void bf16MatchesAnIndependentRoundingOnRandomFloats() {
        Random r = new Random(7);
        for (int i = 0; i < 200_000; i++) {
            float f = Float.intBitsToFloat(r.nextInt());
            if (Float.isNaN(f) || Float.isInfinite(f)) {
                continue;
            }
            assertEquals(Float.floatToRawIntBits(bf16Reference(f)), Float.floatToRawIntBits(Bf16.round(f)),
                    "bf16 of " + Float.toHexString(f));
        }
    }

    // ------------------------------------------------------------------------------------------ QuantSim

    /** ceil(log2(t)) by search, t the float32 product amax * f32(1/max) (product of two floats is exact in double). */
    static int ceilLog2OfF32Product(float amax, float inv) {
        float t = (float) ((double) amax * inv);
        int k = -160;
        while (Math.scalb(1.0, k) < t) {
            k++;
        }
        return k;
    }

    @Test
    void fp8ScaleExponentComesFromTheFloat32Product() {
        // f32(1/448) is slightly above 1/448, but 448 * f32(1/448) rounds to exactly 1.0f: k = 0, not 1.
        assertEquals(1.0f, 448f * Fp8E4m3.INV_MAX_F32);
        assertEquals(0, E8m0.ceilLog2Exponent(448f, Fp8E4m3.INV_MAX_F32));
        for (int j = -10; j <= 10; j++) {
            float amax = Math.scalb(448f, j);
            assertEquals(j, E8m0.ceilLog2Exponent(amax, Fp8E4m3.INV_MAX_F32), "amax 448*2^" + j + ": power of two");
            assertEquals(j + 1, E8m0.ceilLog2Exponent(Math.nextUp(amax), Fp8E4m3.INV_MAX_F32), "just above 448*2^" + j);
            assertEquals(j, E8m0.ceilLog2Exponent(Math.nextDown(amax), Fp8E4m3.INV_MAX_F32), "just below 448*2^" + j);
        }
        assertEquals(-8, E8m0.ceilLog2Exponent(1.0f, Fp8E4m3.INV_MAX_F32), "1/448 lies in (2^-9, 2^-8]");
        Random r = new Random(3);
        for (int i = 0; i < 10_000; i++) {
            float amax = (float) Math.exp(r.nextGaussian() * 8);
            assertEquals(ceilLog2OfF32Product(amax, Fp8E4m3.INV_MAX_F32), E8m0.ceilLog2Exponent(amax, Fp8E4m3.INV_MAX_F32),
                    "amax " + amax);
        }
        // FP4: 6 * f32(1/6) also rounds to exactly 1.0f
        assertEquals(0, E8m0.ceilLog2Exponent(6f, Fp4E2m1.INV_MAX_F32));
        assertEquals(1, E8m0.ceilLog2Exponent(Math.nextUp(6f), Fp4E2m1.INV_MAX_F32));
    }

    @Test
    void fp8ActivationFloorIs1e4() {
        float[] zeros = new float[128];
        // f32(1e-4) * f32(1/448) = 2.23e-7 lies in (2^-23, 2^-22]
        assertEquals(-22, QuantSim.fp8BlockExponent(zeros, 0, 128));
        float[] tiny = new float[128];
        tiny[5] = 5e-5f;
        tiny[6] = -1e-30f;
        assertEquals(-22, QuantSim.fp8BlockExponent(tiny, 0, 128), "below the floor the floor decides");
        float[] out = new float[128];
        QuantSim.fp8RoundTrip(tiny, 0, 128, 128, out, 0);
        // 5e-5 * 2^22 = 209.7 -> e4m3 step 16 in [128, 256) -> 208 -> 208 * 2^-22
        assertEquals(208 * 0x1p-22f, out[5], 0.0f);
        assertEquals(-0.0f, out[6], 0.0f);
        assertEquals(0.0f, out[0], 0.0f);
        QuantSim.fp8RoundTrip(zeros, 0, 128, 128, out, 0);
        assertArrayEquals(new float[128], out);
    }

    @Test
    void fp8RoundTripExampleByHand() {
        float[] x = new float[256];
        x[0] = 1.0f;        // amax 1 -> k = -8, s = 1/256
        x[1] = 0.3f;        // 76.8 -> step 8 in [64,128) -> 80 -> 0.3125
        x[2] = -0.017f;     // -4.352 -> step 0.5 in [4,8) -> -4.5 -> -0.017578125
        x[3] = 17 / 256f;   // 17 -> step 2 -> tie 8.5 -> 8 -> 16 -> 0.0625
        x[4] = 19 / 256f;   // 19 -> tie 9.5 -> 10 -> 20 -> 0.078125
        x[5] = 1e-3f;       // 0.256 -> step 2^-5 in [0.25,0.5) -> 8.19 steps -> 0.25 -> 2^-10
        // second block: amax 448 -> k = 0 (not 1): values are their own e4m3 grid points
        x[128] = 448f;
        x[129] = -300f;     // step 32 in [256,512) -> 9.375 -> 9 -> -288
        x[130] = 0.00100f;  // subnormal step 2^-9 = 0.00195: 0.512 steps -> 1 step -> 0.001953125
        x[131] = 0.0107f;   // subnormal: 5.478 steps -> 5 * 2^-9
        float[] out = new float[256];
        QuantSim.fp8RoundTrip(x, 0, 256, 128, out, 0);
        assertEquals(1.0f, out[0], 0.0f);
        assertEquals(0.3125f, out[1], 0.0f);
        assertEquals(-0.017578125f, out[2], 0.0f);
        assertEquals(0.0625f, out[3], 0.0f);
        assertEquals(0.078125f, out[4], 0.0f);
        assertEquals(0x1p-10f, out[5], 0.0f);
        assertEquals(448f, out[128], 0.0f);
        assertEquals(-288f, out[129], 0.0f);
        assertEquals(0x1p-9f, out[130], 0.0f);
        assertEquals(5 * 0x1p-9f, out[131], 0.0f);
        // the kept form: codes and exponents
        byte[] codes = new byte[256];
        int[] exps = new int[2];
        QuantSim.fp8Quantize(x, 0, 256, 128, codes, 0, exps, 0);
        assertArrayEquals(new int[] {-8, 0}, exps);
        for (int i = 0; i < 256; i++) {
            assertEquals(out[i], (float) (e4m3(codes[i] & 0xff) * Math.scalb(1.0, exps[i / 128])), 0.0f, "element " + i);
        }
        assertEquals(0x7e, codes[128] & 0xff);
        // in place gives the same
        QuantSim.fp8RoundTrip(x, 0, 256, 128, x, 0);
        assertArrayEquals(out, x);
    }

    @Test
    void fp4BlockRoundTripWithItsFloor() {
        // all zeros: amax = 6*2^-126, and f32(6*2^-126) * f32(1/6) is exactly 2^-126
        float[] z = new float[32];
        assertEquals(-126, QuantSim.fp4BlockExponent(z, 0, 32));
        float[] out = new float[64];
        QuantSim.fp4RoundTrip(z, 0, 32, 32, out, 0);
        assertArrayEquals(new float[64], out);
        // values near the floor: 0.75*2^-126 (a float subnormal) sits on the 0.5/1 tie -> 1 * 2^-126
        float[] small = new float[32];
        small[0] = 0.75f * 0x1p-126f;
        small[1] = 0.2f * 0x1p-126f;
        assertEquals(-126, QuantSim.fp4BlockExponent(small, 0, 32));
        QuantSim.fp4RoundTrip(small, 0, 32, 32, out, 0);
        assertEquals(0x1p-126f, out[0], 0.0f);
        assertEquals(0.0f, out[1], 0.0f);
        // a block with amax 6 keeps k = 0 (6 * f32(1/6) rounds to 1.0f)
        float[] x = new float[64];
        x[0] = 6f;
        x[1] = 1.3f;   // -> 1.5
        x[2] = -0.2f;  // -> -0
        x[3] = 2.6f;   // -> 3
        x[4] = 2.5f;   // tie -> 2
        // second block: amax 7 -> 7/6 -> k = 1, s = 2
        x[32] = 7f;    // 3.5 tie -> 4 -> 8
        x[33] = 1.1f;  // 0.55 -> 0.5 -> 1
        x[34] = -5f;   // -2.5 tie -> -2 -> -4
        QuantSim.fp4RoundTrip(x, 0, 64, 32, out, 0);
        assertEquals(6f, out[0], 0.0f);
        assertEquals(1.5f, out[1], 0.0f);
        assertEquals(Float.floatToRawIntBits(-0.0f), Float.floatToRawIntBits(out[2]));
        assertEquals(3f, out[3], 0.0f);
        assertEquals(2f, out[4], 0.0f);
        assertEquals(8f, out[32], 0.0f);
        assertEquals(1f, out[33], 0.0f);
        assertEquals(-4f, out[34], 0.0f);
        byte[] codes = new byte[64];
        int[] exps = new int[2];
        QuantSim.fp4Quantize(x, 0, 64, 32, codes, 0, exps, 0);
        assertArrayEquals(new int[] {0, 1}, exps);
        assertEquals(7, codes[0]);
        assertEquals(3, codes[1]);
        assertEquals(8, codes[2]);
        assertEquals(6, codes[32]);
        assertEquals(12, codes[34]);
    }

    /**
     * The FP4 round trip in float lanes gives the bits of the element-by-element reference on every kind of block:
     * every tie of the grid at several scales, signed zeros, values underflowing below 2^-126 after scaling, subnormal
     * and huge inputs, random magnitudes; blocks with NaN or infinity and blocks that do not fill whole vectors go
     * through the reference itself.
     */
    @Test
    void fp4RoundTripInLanesIsTheReferenceBitForBit() {
        Random r = new Random(23);
        float[] ties = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5f, 0.5f, 1f, 6f, 0f, 7f};
        for (int block : new int[] {32, 128, 24}) {
            for (int trial = 0; trial < 400; trial++) {
                float[] x = new float[3 * block];
                int kind = trial % 8;
                float scale = (float) Math.scalb(1.0, r.nextInt(60) - 30);
                for (int i = 0; i < x.length; i++) {
                    x[i] = switch (kind) {
                        case 0 -> (r.nextBoolean() ? -1 : 1) * ties[r.nextInt(ties.length)] * scale;
                        case 1 -> (float) r.nextGaussian() * scale;
                        case 2 -> (float) (r.nextGaussian() * Math.scalb(1.0, r.nextInt(40) - 20));
                        case 3 -> i % 7 == 0 ? 1e30f : (float) r.nextGaussian() * 1e-20f; // underflow after scaling
                        case 4 -> Float.intBitsToFloat(r.nextInt(0x800000)) * (r.nextBoolean() ? -1 : 1); // subnormal
                        case 5 -> (r.nextBoolean() ? -1 : 1) * Float.MAX_VALUE * r.nextFloat();
                        case 6 -> i % 3 == 0 ? -0f : 0f;
                        default -> Float.intBitsToFloat(r.nextInt());
                    };
                }
                if (trial % 50 == 7) {
                    x[r.nextInt(x.length)] = r.nextBoolean() ? Float.NaN : Float.NEGATIVE_INFINITY;
                }
                float[] want = new float[x.length];
                float[] got = new float[x.length];
                QuantSim.fp4RoundTripScalar(x, 0, x.length, block, want, 0);
                QuantSim.fp4RoundTrip(x, 0, x.length, block, got, 0);
                for (int i = 0; i < x.length; i++) {
                    assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]),
                            "block " + block + " kind " + kind + " element " + i + ": x " + x[i] + " -> " + got[i]
                                    + ", reference " + want[i]);
                }
                QuantSim.fp4RoundTrip(x, 0, x.length, block, x, 0);
                assertArrayEquals(want, x, "in place");
            }
        }
    }

    /**
     * FP8 quantisation in float lanes gives the codes and exponents of the element-by-element reference on every
     * kind of block: every code's value and the midpoints between neighbours (ties) at several scales, signed zeros,
     * values underflowing after scaling, subnormal and huge inputs, random bits; blocks with NaN or infinity and
     * blocks that do not fill whole vectors go through the reference itself.
     */
    @Test
    void fp8QuantizeInLanesIsTheReferenceBitForBit() {
        Random r = new Random(31);
        float[] grid = Fp8E4m3.table();
        for (int block : new int[] {128, 64, 24}) {
            for (int trial = 0; trial < 400; trial++) {
                byte[] want = new byte[3 * block];
                byte[] got = new byte[3 * block];
                int[] we = new int[3];
                int[] ge = new int[3];
                float[] x = new float[3 * block];
                int kind = trial % 8;
                float scale = (float) Math.scalb(1.0, r.nextInt(60) - 30);
                for (int i = 0; i < x.length; i++) {
                    int c = r.nextInt(0x7f);
                    x[i] = switch (kind) {
                        case 0 -> (r.nextBoolean() ? -1 : 1) * (r.nextBoolean() ? grid[c]
                                : (grid[c] + grid[Math.min(c + 1, 0x7e)]) / 2) * scale;
                        case 1 -> (float) r.nextGaussian() * scale;
                        case 2 -> (float) (r.nextGaussian() * Math.scalb(1.0, r.nextInt(40) - 20));
                        case 3 -> i % 7 == 0 ? 1e30f : (float) r.nextGaussian() * 1e-20f; // underflow after scaling
                        case 4 -> Float.intBitsToFloat(r.nextInt(0x800000)) * (r.nextBoolean() ? -1 : 1); // subnormal
                        case 5 -> (r.nextBoolean() ? -1 : 1) * Float.MAX_VALUE * r.nextFloat();
                        case 6 -> i % 3 == 0 ? -0f : 0f;
                        default -> Float.intBitsToFloat(r.nextInt());
                    };
                }
                if (kind == 0) {
                    x[0] = 448f * scale; // the block maximum on a code: every other value keeps its grid position
                }
                if (trial % 50 == 7) {
                    x[r.nextInt(x.length)] = r.nextBoolean() ? Float.NaN : Float.NEGATIVE_INFINITY;
                }
                QuantSim.fp8QuantizeScalar(x, 0, x.length, block, want, 0, we, 0);
                QuantSim.fp8Quantize(x, 0, x.length, block, got, 0, ge, 0);
                assertArrayEquals(we, ge, "block " + block + " kind " + kind + " exponents");
                for (int i = 0; i < x.length; i++) {
                    assertEquals(want[i], got[i], "block " + block + " kind " + kind + " element " + i + ": x "
                            + x[i] + " -> 0x" + Integer.toHexString(got[i] & 0xff) + ", reference 0x"
                            + Integer.toHexString(want[i] & 0xff));
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------ KV row codec

    @Test
    void kvRowCodecStoresExactlyTheSimulatedValues() {
        KvRowCodec codec = new KvRowCodec(512, 64, 128);
        assertEquals(448 + 7 + 128, codec.kvRowBytes(), "spec §5.1: 583 bytes per main entry");
        assertEquals(64 + 4, codec.keyRowBytes());
        Random r = new Random(11);
        float[] x = new float[512];
        for (int i = 0; i < 512; i++) {
            x[i] = Bf16.round(r.nextGaussian() * Math.exp(r.nextGaussian()));
        }
        x[0] = 448f * 0x1p-3f; // block 0 has amax exactly 448 * 2^-3: k = -3
        for (int i = 1; i < 64; i++) {
            x[i] = Math.max(-50f, Math.min(x[i], 50f));
        }
        float[] want = x.clone();
        QuantSim.fp8RoundTrip(want, 0, 448, 64, want, 0); // rope dims 448..511 stay bf16
        byte[] row = new byte[codec.kvRowBytes() + 3];
        codec.encodeKv(x, 0, row, 3);
        float[] got = new float[520];
        codec.decodeKv(row, 3, got, 8);
        for (int i = 0; i < 512; i++) {
            assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[8 + i]), "dim " + i);
        }
        assertEquals(0x7e, row[3] & 0xff, "448 * 2^-3 / 2^-3 = 448 = code 0x7E");
        assertEquals(127 - 3, row[3 + 448] & 0xff, "E8M0 scale byte of block 0");
        short rope0 = Bf16.bits(x[448]);
        assertEquals(rope0 & 0xff, row[3 + 455] & 0xff, "rope dims little-endian bf16 after 7 scale bytes");
        assertEquals((rope0 >> 8) & 0xff, row[3 + 456] & 0xff);
    }

    @Test
    void kvRowDecodeGivesEveryCodeTimesItsScale() {
        KvRowCodec codec = new KvRowCodec(512, 64, 128);
        Random r = new Random(23);
        byte[] row = new byte[codec.kvRowBytes() + 5];
        float[] got = new float[512 + 2];
        for (int round = 0; round < 64; round++) {
            r.nextBytes(row);
            for (int i = 0; i < 448; i++) {
                row[5 + i] = (byte) (round * 4 + i); // every code, in every lane position over the rounds
            }
            for (int b = 0; b < 7; b++) {
                row[5 + 448 + b] = (byte) (127 + r.nextInt(41) - 20 - (round == 0 ? 100 : 0)); // round 0: tiny scales
            }
            codec.decodeKv(row, 5, got, 2);
            for (int i = 0; i < 448; i++) {
                float want = Fp8E4m3.toFloat(row[5 + i]) * Math.scalb(1.0f, (row[5 + 448 + i / 64] & 0xff) - 127);
                if (Float.isNaN(want)) {
                    assertTrue(Float.isNaN(got[2 + i]), "dim " + i + " code 0x" + Integer.toHexString(row[5 + i] & 0xff));
                } else {
                    assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got[2 + i]),
                            "round " + round + " dim " + i + " code 0x" + Integer.toHexString(row[5 + i] & 0xff));
                }
            }
            for (int i = 448; i < 512; i++) {
                int p = 5 + 455 + 2 * (i - 448);
                int bits = (row[p] & 0xff) | (row[p + 1] & 0xff) << 8;
                assertEquals(bits << 16, Float.floatToRawIntBits(got[2 + i]), "rope dim " + i);
            }
        }
    }

    @Test
    void keyRowCodecPacksLowNibbleFirst() {
        KvRowCodec codec = new KvRowCodec(512, 64, 128);
        float[] k = new float[128];
        k[0] = 0.5f;  // code 1
        k[1] = -1f;   // code 0xA
        k[2] = 6f;    // code 7, amax 6 -> k = 0
        Random r = new Random(5);
        for (int i = 32; i < 128; i++) {
            k[i] = Bf16.round(r.nextGaussian() * 0.01);
        }
        float[] want = k.clone();
        QuantSim.fp4RoundTrip(want, 0, 128, 32, want, 0);
        byte[] row = new byte[codec.keyRowBytes()];
        codec.encodeKey(k, 0, row, 0);
        assertEquals(0xA1, row[0] & 0xff);
        assertEquals(0x07, row[1] & 0xff);
        assertEquals(127, row[64] & 0xff, "scale byte of block 0 (k = 0)");
        float[] got = new float[128];
        codec.decodeKey(row, 0, got, 0);
        for (int i = 0; i < 128; i++) {
            assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), "dim " + i);
        }
    }
}
