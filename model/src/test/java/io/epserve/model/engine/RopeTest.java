package io.epserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.config.ModelConfig;
import io.epserve.model.format.Bf16;
import java.io.InputStream;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** RoPE (spec §3.6, GOLDEN.md contract 3); expectations computed in the test from the formulas. */
class RopeTest {
    static final int DIM = 64;

    /** f32(1 / f32(base ^ f32(2i/64))). */
    static float plainFreq(double base, int i) {
        float e = (float) (2 * i) / 64f;
        float p = (float) StrictMath.pow((float) base, e);
        return 1f / p;
    }

    static Rope plain() {
        return new Rope(DIM, 10000, false, 1, 0, 0, 0);
    }

    static Rope yarn() {
        return new Rope(DIM, 160000, true, 16, 65536, 32, 1);
    }

    @Test
    void plainFrequencies() {
        Rope r = plain();
        assertEquals(DIM, r.dim());
        for (int i = 0; i < 32; i++) {
            assertEquals(plainFreq(10000, i), r.frequency(i), 0.0f, "f_" + i);
            double exact = Math.pow(10000, -i / 32.0);
            assertEquals(exact, r.frequency(i), exact * 2e-7, "f_" + i + " vs exact");
        }
        assertEquals(1.0f, r.frequency(0), 0.0f);
        assertEquals(0.7498942f, r.frequency(1), 1e-7f);
        assertEquals(1.3335214e-4f, r.frequency(31), 1e-10f);
    }

    @Test
    void yarnCorrectionRangeIs15To25() {
        // corr(r) = 64 ln(65536 / (2 pi r)) / (2 ln 160000)
        double corrFast = 64 * Math.log(65536 / (32 * 2 * Math.PI)) / (2 * Math.log(160000));
        double corrSlow = 64 * Math.log(65536 / (1 * 2 * Math.PI)) / (2 * Math.log(160000));
        assertEquals(15, (int) Math.floor(corrFast));
        assertEquals(25, (int) Math.ceil(corrSlow));
    }

    @Test
    void yarnFrequenciesBlendBetween15And25() {
        Rope r = yarn();
        for (int i = 0; i < 32; i++) {
            float base = plainFreq(160000, i);
            if (i <= 15) {
                assertEquals(base, r.frequency(i), 0.0f, "f_" + i + " unchanged");
            } else if (i >= 25) {
                assertEquals(base / 16f, r.frequency(i), 0.0f, "f_" + i + " divided by the factor");
            } else {
                double ramp = (i - 15) / 10.0;
                double want = base / 16.0 * ramp + base * (1 - ramp);
                assertEquals(want, r.frequency(i), want * 5e-7, "f_" + i + " linear blend");
                assertTrue(r.frequency(i) < base && r.frequency(i) > base / 16f);
            }
            if (i > 0) {
                assertTrue(r.frequency(i) < r.frequency(i - 1), "decreasing at " + i);
            }
        }
    }

    @Test
    void configFactoriesPickTheirFlavour() throws Exception {
        ModelConfig c;
        try (InputStream in = RopeTest.class.getResourceAsStream("/golden/tiny/config.json")) {
            c = ModelConfig.parse(in, "tiny");
        }
        Rope p = Rope.plain(c);
        Rope y = Rope.compressed(c);
        Rope refY = yarn();
        for (int i = 0; i < 32; i++) {
            assertEquals(plainFreq(10000, i), p.frequency(i), 0.0f);
            assertEquals(refY.frequency(i), y.frequency(i), 0.0f);
        }
    }

    @Test
    void tableIsFloat32CosSinOfTheFloat32Angle() {
        Rope r = yarn();
        float[] cs = new float[64];
        for (long pos : new long[] {0, 1, 7, 4095, 65537, 1_048_575}) {
            r.table(pos, cs);
            for (int i = 0; i < 32; i++) {
                float angle = (float) pos * r.frequency(i);
                assertEquals((float) Math.cos(angle), cs[i], 0.0f, "cos pos " + pos + " i " + i);
                assertEquals((float) Math.sin(angle), cs[32 + i], 0.0f, "sin pos " + pos + " i " + i);
            }
        }
    }

    @Test
    void interleavedPairsAndSignConvention() {
        Rope r = plain();
        long pos = 5;
        float[] cs = new float[64];
        r.table(pos, cs);
        for (int pair : new int[] {0, 3, 31}) {
            double a = pos * (double) r.frequency(pair);
            // unit real part in pair `pair` -> (cos, sin) in dims (2*pair, 2*pair+1) of the rope part
            float[] x = new float[128];
            x[64 + 2 * pair] = 1f;
            r.apply(x, 0, 128, cs, false);
            for (int d = 0; d < 128; d++) {
                float want = d == 64 + 2 * pair ? Bf16.round(Math.cos(a)) : d == 65 + 2 * pair ? Bf16.round(Math.sin(a)) : 0f;
                assertEquals(want, x[d], 1e-6f, "pair " + pair + " dim " + d);
            }
            // unit imaginary part -> (-sin, cos)
            x = new float[128];
            x[65 + 2 * pair] = 1f;
            r.apply(x, 0, 128, cs, false);
            assertEquals(Bf16.round(-Math.sin(a)), x[64 + 2 * pair], 1e-6f);
            assertEquals(Bf16.round(Math.cos(a)), x[65 + 2 * pair], 1e-6f);
        }
    }

    @Test
    void rotationOfTheLast64DimsOnly() {
        Rope r = yarn();
        Random rnd = new Random(1);
        int len = 512;
        float[] x = new float[len + 10];
        for (int i = 0; i < x.length; i++) {
            x[i] = Bf16.round(rnd.nextGaussian());
        }
        float[] orig = x.clone();
        long pos = 12345;
        float[] cs = new float[64];
        r.table(pos, cs);
        r.apply(x, 5, len, cs, false);
        for (int i = 0; i < x.length; i++) {
            if (i < 5 + len - 64 || i >= 5 + len) {
                assertEquals(Float.floatToRawIntBits(orig[i]), Float.floatToRawIntBits(x[i]), "dim " + i + " untouched");
            }
        }
        int base = 5 + len - 64;
        for (int i = 0; i < 32; i++) {
            double c = cs[i];
            double s = cs[32 + i];
            double x0 = orig[base + 2 * i];
            double x1 = orig[base + 2 * i + 1];
            assertEquals(Bf16.round(x0 * c - x1 * s), x[base + 2 * i], 0.0f, "x0' pair " + i);
            assertEquals(Bf16.round(x0 * s + x1 * c), x[base + 2 * i + 1], 0.0f, "x1' pair " + i);
        }
    }

    @Test
    void inverseRotationRestoresTheVector() {
        Random rnd = new Random(2);
        for (Rope r : new Rope[] {plain(), yarn()}) {
            for (long pos : new long[] {0, 3, 1000, 77777, 1_000_000}) {
                float[] x = new float[128];
                for (int i = 0; i < 128; i++) {
                    x[i] = Bf16.round(rnd.nextGaussian() * 3);
                }
                float[] orig = x.clone();
                float[] cs = new float[64];
                r.table(pos, cs);
                r.apply(x, 0, 128, cs, false);
                // inverse = rotation by -angle
                float[] y = x.clone();
                r.apply(y, 0, 128, cs, true);
                for (int i = 0; i < 32; i++) {
                    double c = cs[i];
                    double s = cs[32 + i];
                    assertEquals(Bf16.round(x[64 + 2 * i] * c + x[65 + 2 * i] * s), y[64 + 2 * i], 0.0f);
                    assertEquals(Bf16.round(-x[64 + 2 * i] * s + x[65 + 2 * i] * c), y[65 + 2 * i], 0.0f);
                    // back within two bf16 roundings of the pair's magnitude
                    double mag = Math.hypot(orig[64 + 2 * i], orig[65 + 2 * i]);
                    assertEquals(orig[64 + 2 * i], y[64 + 2 * i], mag * 0x1p-7 + 1e-30, "pos " + pos + " pair " + i);
                    assertEquals(orig[65 + 2 * i], y[65 + 2 * i], mag * 0x1p-7 + 1e-30, "pos " + pos + " pair " + i);
                }
                if (pos == 0) {
                    for (int i = 0; i < 128; i++) {
                        assertEquals(orig[i], x[i], 0.0f, "position 0 is the identity");
                    }
                }
                for (int i = 0; i < 64; i++) {
                    assertEquals(orig[i], y[i], 0.0f);
                }
            }
        }
    }
}
