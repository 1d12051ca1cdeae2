package io.epserve.model.kernel;

import io.epserve.model.format.Bf16;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The vectorised hc_post gives the scalar definition's bits: ordinary, huge (overflowing), tiny and NaN inputs. */
class HcPostTest {
    @Test
    void sameBitsAsTheScalarDefinition() {
        SplittableRandom r = new SplittableRandom(5);
        int hc = 4;
        for (int round = 0; round < 400; round++) {
            int T = 1 + r.nextInt(5);
            int d = round < 200 ? 1024 : 1 + r.nextInt(300);
            float[] a = new float[T * d];
            float[] X = new float[T * hc * d];
            double[] post = new double[T * hc];
            double[] comb = new double[T * hc * hc];
            for (int i = 0; i < a.length; i++) {
                a[i] = value(r);
            }
            for (int i = 0; i < X.length; i++) {
                X[i] = value(r);
            }
            for (int i = 0; i < post.length; i++) {
                post[i] = 2 * r.nextDouble();
            }
            for (int i = 0; i < comb.length; i++) {
                comb[i] = r.nextDouble() / (1 + r.nextInt(3));
            }
            float[] out = new float[T * hc * d];
            HcPost.apply(a, X, post, comb, T, hc, d, out);
            for (int t = 0; t < T; t++) {
                for (int q = 0; q < hc; q++) {
                    for (int i = 0; i < d; i++) {
                        double s = post[t * hc + q] * a[t * d + i];
                        for (int j = 0; j < hc; j++) {
                            s += comb[t * hc * hc + j * hc + q] * X[(t * hc + j) * d + i];
                        }
                        float want = Bf16.round(s);
                        float got = out[(t * hc + q) * d + i];
                        if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(got)) {
                            throw new AssertionError("round " + round + " t " + t + " q " + q + " i " + i + ": " + got
                                    + " instead of " + want);
                        }
                    }
                }
            }
        }
    }

    private static float value(SplittableRandom r) {
        return switch (r.nextInt(40)) {
            case 0 -> Float.NaN;
            case 1 -> 3e38f;
            case 2 -> -0f;
            case 3 -> 1e-40f;
            default -> (float) r.nextGaussian() * (r.nextBoolean() ? 1f : 1e-3f);
        };
    }
}
