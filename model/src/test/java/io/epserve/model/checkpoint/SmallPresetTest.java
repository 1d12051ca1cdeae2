package io.epserve.model.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.Transformer;
import io.epserve.model.kernel.ExactKernels;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.safetensors.DType;
import io.epserve.model.safetensors.TensorInfo;
import io.epserve.model.weights.ModelWeights;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The benchmark preset: generated (without the slow router calibration, which `make-checkpoint` runs) into a temporary
 * directory, it has the promised config and expert bytes, binds completely, and gives sane logits for a few tokens.
 * Its activation health with calibrated biases is checked by hand (see the make-checkpoint report).
 */
class SmallPresetTest {

    @Test
    void smallPresetHasTheBenchmarkShapeAndLoads(@TempDir Path dir) throws IOException {
        RandomCheckpoint.Summary s = RandomCheckpoint.write(dir,
                RandomCheckpoint.Options.of(Preset.SMALL, 1).withCalibrationTokens(0), line -> {});
        ModelConfig c = ModelConfig.load(dir);
        assertEquals(c, s.config());
        assertEquals(1024, c.dim());
        assertEquals(8, c.nLayers());
        assertEquals(List.of(0, 0, 4, 128, 4, 128, 4, 128, 0), Arrays.stream(c.compressRatios()).boxed().toList());
        assertEquals(16, c.nHeads());
        assertEquals(512, c.headDim());
        assertEquals(64, c.ropeDim());
        assertEquals(512, c.qLoraRank());
        assertEquals(4, c.oGroups());
        assertEquals(256, c.oLoraRank());
        assertEquals(128, c.window());
        assertEquals(16, c.indexHeads());
        assertEquals(128, c.indexTopk());
        assertEquals(64, c.nRoutedExperts());
        assertEquals(6, c.nActivatedExperts());
        assertEquals(512, c.moeInterDim());
        assertEquals(2.5, c.routeScale());
        assertEquals(1, c.nHashLayers());
        assertEquals(512, c.vocabSize());
        assertEquals(65536, c.maxPositionEmbeddings());
        assertEquals(16, c.ropeFactor());
        assertEquals(65536, c.originalSeqLen());
        assertEquals(160000, c.compressRopeTheta());
        assertEquals(10000, c.ropeTheta());
        assertEquals(10.0, c.swigluLimit());
        assertEquals(1, c.nMtpLayers());

        // 9 blocks (8 layers + MTP) x 64 experts x 3 matrices of 512 x 1024 FP4 values, two per byte.
        long expected = 9L * 64 * 3 * 512 * 1024 / 2;
        assertEquals(expected, s.fp4ExpertBytes());
        assertTrue(s.fp4ExpertBytes() >= 300_000_000L, "FP4 expert bytes " + s.fp4ExpertBytes());
        System.out.printf("small: %d tensors, %,d tensor bytes, FP4 experts %,d bytes (+%,d scale bytes), %.1f s%n",
                s.tensorCount(), s.tensorBytes(), s.fp4ExpertBytes(), s.fp4ExpertScaleBytes(), s.generateMillis() / 1e3);

        try (Checkpoint ck = Checkpoint.open(dir)) {
            long fp4 = ck.tensors().values().stream().filter(t -> t.dtype() == DType.I8)
                    .mapToLong(t -> t.data().byteSize()).sum();
            assertEquals(expected, fp4);
            TensorInfo woA = ck.get("layers.2.attn.wo_a.weight", DType.F8_E4M3, 1024, 2048);
            assertEquals(1024L * 2048, woA.data().byteSize());
            ModelWeights w = new ModelWeights(c, ck, ModelWeights.ExpertFilter.ALL);
            assertTrue(w.mtp != null && w.layers[3].attn().indexer() == null && w.layers[4].attn().indexer() != null);
            // One short prefill through the exact engine: finite logits with a sane spread.
            Transformer tr = new Transformer(w, new ExactKernels());
            int[] tokens = RandomCheckpoint.chatPrompt("Hi");
            float[] logits = tr.forward(List.of(new Transformer.Chunk(tr.newSequence(16), tokens)), false).logits();
            double mean = 0;
            for (float v : logits) {
                assertTrue(Float.isFinite(v));
                mean += v;
            }
            mean /= logits.length;
            double var = 0;
            for (float v : logits) {
                var += (v - mean) * (v - mean);
            }
            double std = Math.sqrt(var / logits.length);
            assertTrue(std > 1 && std < 5, "logit std " + std);
        }
    }
}
