package io.epserve.model.kernel;

import io.epserve.model.format.Bf16;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The vectorised hc_pre mix gives the scalar definition's bits: ordinary, huge (overflowing), tiny and NaN inputs. */
class HcPreTest {
    @Test
    void sameBitsAsTheScalarDefinition() {
        SplittableRandom r = new SplittableRandom(7);
        int hc = 4;
        for (int round = 0; round < 400; round++) {
            int d = round < 200 ? 1024 : 1 + r.nextInt(300);
            int xo = r.nextInt(3);
            int oo = r.nextInt(3);
            float[] X = new float[xo + hc * d];
            double[] pre = new double[hc];
            for (int i = 0; i < X.length; i++) {
                X[i] = switch (r.nextInt(40)) {
                    case 0 -> Float.NaN;
                    case 1 -> 3e38f;
                    case 2 -> -0f;
                    case 3 -> 1e-40f;
                    default -> (float) r.nextGaussian() * (r.nextBoolean() ? 1f : 1e-3f);
                };
            }
            for (int j = 0; j < hc; j++) {
                pre[j] = r.nextDouble() + 1e-6; // sigmoid(...) + eps
            }
            float[] out = new float[oo + d];
            HcPre.mix(X, xo, pre, hc, d, out, oo);
            for (int i = 0; i < d; i++) {
                double s = 0;
                for (int j = 0; j < hc; j++) {
                    s += pre[j] * X[xo + j * d + i];
                }
                float want = Bf16.round(s);
                if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(out[oo + i])) {
                    throw new AssertionError("round " + round + " i " + i + ": " + out[oo + i] + " instead of " + want);
                }
            }
        }
    }
}
