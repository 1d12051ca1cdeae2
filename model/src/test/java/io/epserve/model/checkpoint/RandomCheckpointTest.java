package io.epserve.model.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.Transformer;
import io.epserve.model.format.Fp4E2m1;
import io.epserve.model.kernel.ExactKernels;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.safetensors.DType;
import io.epserve.model.safetensors.SafetensorsFile;
import io.epserve.model.safetensors.TensorInfo;
import io.epserve.model.weights.ModelWeights;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * The tiny preset against the golden tiny checkpoint (same layout, config and tokenizer), its activation health
 * through the exact engine, sharded output, and determinism.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class RandomCheckpointTest {
    static final String PROMPT = "Why is the sky blue? Explain briefly.";

    /** One directory for the whole class, deleted after it. */
    Path tmp;

    Path golden;
    Path single;
    RandomCheckpoint.Summary summary;
    Checkpoint checkpoint;
    ModelConfig config;
    Transformer engine;

    @BeforeAll
    void generate(@TempDir Path dir) throws IOException, URISyntaxException {
        tmp = dir;
        golden = Path.of(RandomCheckpointTest.class.getResource("/golden/tiny/config.json").toURI()).getParent();
        single = tmp.resolve("single");
        summary = RandomCheckpoint.write(single, RandomCheckpoint.Options.of(Preset.TINY, 1), line -> {});
        config = ModelConfig.load(single);
        checkpoint = Checkpoint.open(single);
        engine = new Transformer(new ModelWeights(config, checkpoint, ModelWeights.ExpertFilter.ALL), new ExactKernels());
    }

    @AfterAll
    void close() {
        if (checkpoint != null) {
            checkpoint.close();
        }
    }

    @Test
    void sameTensorNamesDtypesShapesAndOrderAsTheGolden() {
        try (SafetensorsFile g = SafetensorsFile.open(golden.resolve("model.safetensors"));
             SafetensorsFile m = SafetensorsFile.open(single.resolve("model.safetensors"))) {
            assertEquals(new ArrayList<>(g.tensors().keySet()), new ArrayList<>(m.tensors().keySet()),
                    "tensor names in the golden's header order");
            for (TensorInfo gt : g.tensors().values()) {
                TensorInfo mt = m.tensors().get(gt.name());
                assertEquals(gt.dtype(), mt.dtype(), gt.name());
                assertArrayEquals(gt.shape(), mt.shape(), gt.name());
            }
            assertEquals("pt", m.metadata().get("format"));
            assertEquals(g.tensors().size(), summary.tensorCount());
            assertEquals(g.tensors().values().stream().mapToLong(t -> t.data().byteSize()).sum(), summary.tensorBytes());
        }
    }

    @Test
    void configAndTokenizerFilesMatchTheGoldenByteForByte() throws IOException {
        for (String f : List.of("config.json", "tokenizer.json", "tokenizer_config.json")) {
            assertEquals(-1, Files.mismatch(golden.resolve(f), single.resolve(f)), f);
        }
        assertEquals(ModelConfig.load(golden), config);
        assertEquals(ModelConfig.load(golden).toString(), config.toString());
    }

    @Test
    void quantisedBlocksUseVaryingScalesAndEveryCode() {
        BitSet fp8 = new BitSet(256);
        BitSet fp4 = new BitSet(16);
        int fp8Tensors = 0;
        for (TensorInfo t : checkpoint.tensors().values()) {
            byte[] b = t.data().toArray(ValueLayout.JAVA_BYTE);
            switch (t.dtype()) {
                case F8_E4M3 -> {
                    fp8Tensors++;
                    for (byte x : b) {
                        assertTrue((x & 0x7f) != 0x7f, t.name() + " holds a NaN code");
                        fp8.set(x & 0xff);
                    }
                }
                case I8 -> {
                    for (byte x : b) {
                        fp4.set(x & 0xf);
                        fp4.set((x >>> 4) & 0xf);
                    }
                }
                case F8_E8M0 -> {
                    Set<Integer> distinct = new HashSet<>();
                    for (byte x : b) {
                        assertTrue((x & 0xff) != 0xff, t.name() + " holds a NaN scale");
                        distinct.add(x & 0xff);
                    }
                    if (b.length >= 4) {
                        assertTrue(distinct.size() >= 2, t.name() + " has one scale for all " + b.length + " blocks");
                    }
                }
                default -> { }
            }
        }
        assertTrue(fp8Tensors > 40);
        assertEquals(254, fp8.cardinality(), "every non-NaN e4m3 code occurs");
        assertEquals(16, fp4.cardinality(), "every e2m1 code occurs");
    }

    @Test
    void activationsStayHealthyThroughEveryLayer() {
        int[] tokens = RandomCheckpoint.chatPrompt(PROMPT);
        assertTrue(tokens.length >= 40, "prompt of " + tokens.length + " tokens");
        ActivationStats s = ActivationStats.measure(engine, tokens);
        String report = s.format();
        System.out.println("tiny preset, " + tokens.length + "-token prompt:\n" + report);
        int blocks = config.nLayers() + 1;
        assertEquals(blocks, s.attnOutRms().length, report);
        for (int b = 0; b < blocks; b++) {
            assertInRange(s.attnOutRms()[b], 0.3, 3, "attn_out rms of block " + b, report);
            assertInRange(s.ffnOutRms()[b], 0.3, 3, "ffn_out rms of block " + b, report);
            assertInRange(s.streamRms()[b], 0.5, 6, "stream rms of block " + b, report);
            if (b > 0 && b < config.nLayers()) {
                assertInRange(s.streamRms()[b] / s.streamRms()[b - 1], 0.7, 1.6, "stream growth at block " + b, report);
            }
            int[] usage = s.expertUsage()[b];
            assertTrue(Arrays.stream(usage).allMatch(v -> v > 0), "every expert used in block " + b + ": "
                    + Arrays.toString(usage));
        }
        assertInRange(s.logitStd(), 1, 5, "logit std", report);
        assertInRange(s.mtpLogitStd(), 1, 5, "MTP logit std", report);
        for (double clamp : new double[] {s.clampRoutedGate(), s.clampRoutedUp(), s.clampSharedGate(), s.clampSharedUp()}) {
            assertInRange(clamp, 0, 0.02, "SwiGLU clamp fraction", report);
        }
        assertTrue(s.clampRoutedUp() + s.clampSharedUp() > 0, "the clamp is exercised at all: " + report);
        assertInRange(s.sinkShare(), 0.05, 0.45, "attention sink share", report);
        assertInRange(s.meanEntropyRatio(), 0.3, 0.97, "attention entropy / ln(n) (not uniform)", report);
        assertInRange(s.indexWeightPositive(), 0.8, 1, "share of positive indexer head weights", report);
    }

    private static void assertInRange(double v, double lo, double hi, String what, String report) {
        assertTrue(v >= lo && v <= hi, what + " = " + v + " outside [" + lo + ", " + hi + "]\n" + report);
    }

    @Test
    void calibratedGateBiasesUseEveryExpert() {
        Map<Integer, int[]> counts = summary.expertCounts();
        assertEquals(Set.of(1, 2, 3, 4), counts.keySet(), "non-hash layers and the MTP block");
        double ideal = 256.0 * config.nActivatedExperts() / config.nRoutedExperts();
        for (Map.Entry<Integer, int[]> e : counts.entrySet()) {
            for (int v : e.getValue()) {
                assertTrue(Math.abs(v - ideal) <= 0.25 * ideal, "layer " + e.getKey() + ": " + Arrays.toString(e.getValue()));
            }
        }
        // The biases are in the file (not zero) and the hash layer has none.
        TensorInfo bias = checkpoint.get("layers.1.ffn.gate.bias", DType.F32, config.nRoutedExperts());
        float[] b = bias.data().toArray(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN));
        assertTrue(Arrays.stream(toDouble(b)).anyMatch(v -> v != 0), Arrays.toString(b));
        assertFalse(checkpoint.has("layers.0.ffn.gate.bias"));
        TensorInfo tid = checkpoint.get("layers.0.ffn.gate.tid2eid", DType.I64, config.vocabSize(), config.nActivatedExperts());
        long[] ids = tid.data().toArray(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN));
        for (int t = 0; t < config.vocabSize(); t++) {
            assertNotEquals(ids[2 * t], ids[2 * t + 1], "distinct experts for token " + t);
        }
    }

    private static double[] toDouble(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    @Test
    void shardedOutputLoadsAndGivesIdenticalLogits() throws IOException {
        Path sharded = tmp.resolve("sharded");
        RandomCheckpoint.Summary s = RandomCheckpoint.write(sharded,
                RandomCheckpoint.Options.of(Preset.TINY, 1).withShardSize(1 << 20), line -> {});
        assertTrue(s.files().size() >= 5, s.files().toString());
        assertTrue(Files.exists(sharded.resolve(Checkpoint.INDEX)));
        assertFalse(Files.exists(sharded.resolve(Checkpoint.SINGLE)));
        int[] tokens = Arrays.copyOf(RandomCheckpoint.chatPrompt(PROMPT), 24);
        try (Checkpoint ck = Checkpoint.open(sharded)) {
            assertEquals(checkpoint.tensors().keySet(), ck.tensors().keySet());
            for (TensorInfo t : checkpoint.tensors().values()) {
                MemorySegment other = ck.tensors().get(t.name()).data();
                assertEquals(-1, t.data().mismatch(other), "bytes of " + t.name());
            }
            Transformer tr = new Transformer(new ModelWeights(config, ck, ModelWeights.ExpertFilter.ALL), new ExactKernels());
            float[] a = engine.forward(List.of(new Transformer.Chunk(engine.newSequence(64), tokens)), true).logits();
            float[] b = tr.forward(List.of(new Transformer.Chunk(tr.newSequence(64), tokens)), true).logits();
            assertArrayEquals(a, b);
        }
        // Writing a single file over it removes the index and the shards (they would shadow the new file).
        RandomCheckpoint.write(sharded, RandomCheckpoint.Options.of(Preset.TINY, 1).withCalibrationTokens(0), line -> {});
        try (Stream<Path> list = Files.list(sharded)) {
            assertEquals(List.of("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"),
                    list.map(p -> p.getFileName().toString()).sorted().toList());
        }
    }

    @Test
    void sameSeedSameBytesOtherSeedOtherBytes() throws IOException {
        RandomCheckpoint.Options o = RandomCheckpoint.Options.of(Preset.TINY, 7).withCalibrationTokens(32);
        Path a = tmp.resolve("a");
        Path b = tmp.resolve("b");
        Path c = tmp.resolve("c");
        RandomCheckpoint.write(a, o, line -> {});
        RandomCheckpoint.write(b, o, line -> {});
        RandomCheckpoint.write(c, RandomCheckpoint.Options.of(Preset.TINY, 8).withCalibrationTokens(32), line -> {});
        List<String> files;
        try (Stream<Path> list = Files.list(a)) {
            files = list.map(p -> p.getFileName().toString()).sorted().toList();
        }
        assertEquals(List.of("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"), files);
        for (String f : files) {
            assertEquals(-1, Files.mismatch(a.resolve(f), b.resolve(f)), f + " differs between two runs with seed 7");
        }
        assertNotEquals(-1, Files.mismatch(a.resolve("model.safetensors"), c.resolve("model.safetensors")));
        assertEquals(Files.size(a.resolve("model.safetensors")), Files.size(c.resolve("model.safetensors")));
        // Every tensor differs, not just a few.
        try (SafetensorsFile fa = SafetensorsFile.open(a.resolve("model.safetensors"));
             SafetensorsFile fc = SafetensorsFile.open(c.resolve("model.safetensors"))) {
            int same = 0;
            for (TensorInfo t : fa.tensors().values()) {
                // (a scale tensor of one or two blocks may repeat by chance)
                if (t.data().byteSize() >= 16 && t.data().mismatch(fc.tensors().get(t.name()).data()) == -1) {
                    same++;
                }
            }
            assertEquals(0, same, "tensors identical across seeds");
        }
    }

    @Test
    void fastFp4RoundingMatchesTheFormat() {
        SplittableRandom r = new SplittableRandom(3);
        for (int i = 0; i < 200_000; i++) {
            double v = (r.nextDouble() * 2 - 1) * 6;
            assertEquals(Fp4E2m1.encode(v), RandomCheckpoint.fp4CodeFast(v), "v = " + v);
        }
        for (double v : new double[] {0, -0.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 6, -0.25, -5, -6, 0.5, 4}) {
            assertEquals(Fp4E2m1.encode(v), RandomCheckpoint.fp4CodeFast(v), "tie v = " + v);
        }
    }

    @Test
    void scaleExponentIsTheSmallestThatFits() {
        for (double amax : new double[] {448, 449, 447.9, 1e-3, 3.0, 6.0, 6.0001, 12}) {
            for (double max : new double[] {448, 6}) {
                int k = RandomCheckpoint.scaleExponent(amax, max);
                assertTrue(amax <= Math.scalb(max, k) && amax > Math.scalb(max, k - 1), amax + " / " + max + " -> " + k);
            }
        }
    }
}
