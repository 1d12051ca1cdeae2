package io.epserve.model.weights;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.epserve.model.GoldenData;
import io.epserve.model.checkpoint.SafetensorsWriter;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.safetensors.CheckpointException;
import io.epserve.model.safetensors.DType;
import io.epserve.model.safetensors.TensorInfo;
import io.epserve.model.safetensors.WeightMemory;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ExpertWeightsTest {
    private static final ModelWeights.ExpertFilter L1_E03 = (l, e) -> l == 1 && (e == 0 || e == 3);

    static Path tiny;

    @BeforeAll
    static void locate() {
        try (GoldenData g = GoldenData.open("tiny")) {
            tiny = g.dir;
        }
    }

    @Test
    void bindsTheSameMatricesAsModelWeights() {
        ModelConfig c = ModelConfig.load(tiny);
        try (ExpertWeights ew = ExpertWeights.open(tiny, L1_E03); Checkpoint ck = Checkpoint.open(tiny)) {
            ModelWeights mw = new ModelWeights(c, ck, ModelWeights.ExpertFilter.ALL);
            assertEquals(c.nLayers() + 1, ew.layerCount());
            assertEquals(2, ew.placedCount());
            for (int e : new int[] {0, 3}) {
                assertTrue(ew.has(1, e));
                sameExpert(mw.layers[1].ffn().experts()[e], ew.expert(1, e));
            }
            assertEquals(List.of(0, 3), List.of(ew.placedIn(1)[0], ew.placedIn(1)[1]));
            assertEquals(0, ew.placedIn(0).length);
            long bytes = 0;
            for (int e : new int[] {0, 3}) {
                ModelWeights.Expert ex = ew.expert(1, e);
                bytes += ex.w1().data().byteSize() + ex.w1().scale().byteSize() + ex.w2().data().byteSize()
                        + ex.w2().scale().byteSize() + ex.w3().data().byteSize() + ex.w3().scale().byteSize();
            }
            assertEquals(bytes, ew.expertBytes());
            assertEquals(List.of(tiny.resolve(Checkpoint.SINGLE)), ew.mappedFiles());
        }
    }

    /**
     * FP8 and FP4 matrices are repacked at load into the panelled layouts the fast kernels read, in memory the
     * checkpoint owns (a huge-page copy leaves their codes and scales out: the repacked matrix is their only copy),
     * and hold every code and scale of the checkpoint where {@code code} and {@code scaleCode} say; so do the experts
     * an expert worker binds.
     */
    @Test
    void fp8AndFp4MatricesArePanelledCopiesOfTheCheckpoint() {
        ModelConfig c = ModelConfig.load(tiny);
        for (WeightMemory memory : WeightMemory.values()) {
            try (Checkpoint ck = Checkpoint.open(tiny, n -> true, memory);
                 Checkpoint raw = Checkpoint.open(tiny, n -> true, WeightMemory.MAPPED)) {
                ModelWeights mw = new ModelWeights(c, ck, (l, e) -> l == 1 && e == 2);
                long repacked = 0;
                for (TensorInfo t : ck.tensors().values()) {
                    if (t.dtype() == DType.F8_E4M3 || t.dtype() == DType.I8 || t.dtype() == DType.F8_E8M0) {
                        repacked += t.data().byteSize();
                    }
                }
                assertTrue(repacked > 0);
                if (ck.memory() == WeightMemory.HUGE_PAGES) {
                    long all = 0;
                    for (TensorInfo t : ck.tensors().values()) {
                        all += t.data().byteSize();
                    }
                    assertTrue(ck.copiedBytes() < all - repacked + 64L * ck.tensors().size(),
                            "FP8/FP4 codes and scales are not in the huge-page copy: " + ck.copiedBytes() + " of "
                                    + all + ", repacked " + repacked);
                }
                for (Fp8Matrix m : new Fp8Matrix[] {mw.layers[0].attn().wqA(), mw.layers[1].attn().wkv(),
                        mw.layers[c.nLayers() - 1].attn().woB(), mw.mtp.eProj()}) {
                    assertTrue(m.panelled(), m.name());
                    assertEquals(Fp8Matrix.panelledBytes(m.rows(), m.cols()), m.data().byteSize(), m.name());
                    MemorySegment codes = raw.get(m.name() + ".weight", DType.F8_E4M3,
                            m.rows(), m.cols()).data();
                    for (int r = 0; r < m.rows(); r++) {
                        for (int col = 0; col < m.cols(); col++) {
                            assertEquals(codes.get(ValueLayout.JAVA_BYTE, (long) r * m.cols() + col) & 0xff,
                                    m.code(r, col), m.name() + " (" + r + ", " + col + ")");
                        }
                    }
                }
                ModelWeights.Expert ex = mw.layers[1].ffn().experts()[2];
                try (ExpertWeights ew = ExpertWeights.open(tiny, c, (l, e) -> l == 1 && e == 2)) {
                    for (Fp4Matrix[] m : new Fp4Matrix[][] {{ex.w1(), ew.expert(1, 2).w1()},
                            {ex.w2(), ew.expert(1, 2).w2()}, {ex.w3(), ew.expert(1, 2).w3()}}) {
                        assertTrue(m[0].panelled() && m[1].panelled(), m[0].name());
                        Fp4Matrix rowMajor = new Fp4Matrix(m[0].name(), m[0].rows(), m[0].cols(),
                                raw.get(m[0].name() + ".weight", DType.I8, m[0].rows(), m[0].cols() / 2).data(),
                                raw.get(m[0].name() + ".scale", DType.F8_E8M0, m[0].rows(), m[0].cols() / 32).data());
                        for (int r = 0; r < m[0].rows(); r++) {
                            for (int col = 0; col < m[0].cols(); col++) {
                                int want = rowMajor.code(r, col);
                                assertEquals(want, m[0].code(r, col), m[0].name() + " (" + r + ", " + col + ")");
                                assertEquals(want, m[1].code(r, col));
                                assertEquals(rowMajor.scaleCode(r, col), m[0].scaleCode(r, col));
                                assertEquals(rowMajor.scaleCode(r, col), m[1].scaleCode(r, col));
                            }
                        }
                    }
                }
            }
        }
    }

    /**
     * An expert worker's tensors are all repacked and none copied; its experts still go to the memory kind it asked
     * for (huge pages), not to ordinary pages because the copy was empty; mapped stays mapped.
     */
    @Test
    void expertsAreRepackedIntoTheMemoryAskedForEvenWithNothingCopied() {
        ModelConfig c = ModelConfig.load(tiny);
        try (ExpertWeights ew = ExpertWeights.open(tiny, c, L1_E03, WeightMemory.HUGE_PAGES)) {
            Checkpoint ck = ew.checkpoint();
            assertEquals(0, ck.copiedBytes(), "expert tensors are repacked, not copied");
            assertTrue(ck.derivedBytes() >= ew.expertBytes(), ck.derivedBytes() + " < " + ew.expertBytes());
            assertTrue(ck.memoryDescription().contains("repacked into huge pages"), ck.memoryDescription());
        }
        try (ExpertWeights ew = ExpertWeights.open(tiny, c, L1_E03, WeightMemory.MAPPED)) {
            String d = ew.checkpoint().memoryDescription();
            assertTrue(d.contains("memory-mapped") && d.contains("repacked into ordinary memory"), d);
        }
    }

    @Test
    void bindsTheMtpBlockAsLayerNLayers() {
        ModelConfig c = ModelConfig.load(tiny);
        int mtp = c.nLayers();
        try (ExpertWeights ew = ExpertWeights.open(tiny, (l, e) -> l == mtp && e == 5);
             Checkpoint ck = Checkpoint.open(tiny)) {
            ModelWeights mw = new ModelWeights(c, ck, ModelWeights.ExpertFilter.ALL);
            sameExpert(mw.mtp.block().ffn().experts()[5], ew.expert(mtp, 5));
            assertEquals("mtp.0.ffn.experts.5.w1", ew.expert(mtp, 5).w1().name());
        }
    }

    @Test
    void unplacedExpertThrowsNamingLayerAndExpert() {
        try (ExpertWeights ew = ExpertWeights.open(tiny, L1_E03)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ew.expert(1, 1));
            assertTrue(e.getMessage().contains("expert 1 of layer 1"), e.getMessage());
            assertTrue(e.getMessage().contains("experts 0,3"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ew.expert(2, 0));
            assertTrue(e.getMessage().contains("no experts here"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> ew.expert(99, 0));
            assertThrows(IllegalArgumentException.class, () -> ew.expert(1, 8));
            assertFalse(ew.has(1, 1));
            assertFalse(ew.has(-1, 0));
        }
    }

    @Test
    void tensorFilterAcceptsOnlyPlacedExpertTensors() {
        ModelConfig c = ModelConfig.load(tiny);
        var f = ExpertWeights.tensorFilter(c, (l, e) -> (l == 1 && e == 3) || (l == c.nLayers() && e == 0));
        assertTrue(f.test("layers.1.ffn.experts.3.w1.weight"));
        assertTrue(f.test("layers.1.ffn.experts.3.w2.scale"));
        assertTrue(f.test("mtp.0.ffn.experts.0.w3.weight"));
        assertFalse(f.test("layers.1.ffn.experts.30.w1.weight"));
        assertFalse(f.test("layers.11.ffn.experts.3.w1.weight"));
        assertFalse(f.test("layers.1.ffn.shared_experts.w1.weight"));
        assertFalse(f.test("layers.1.ffn.gate.weight"));
        assertFalse(f.test("mtp.0.ffn.experts.3.w1.weight"));
        assertFalse(f.test("embed.weight"));
        assertFalse(f.test("layers.x.ffn.experts.3.w1.weight"));
    }

    @Test
    void shapeMismatchIsReportedLikeModelWeights(@TempDir Path tmp) throws IOException {
        Path dir = tmp.resolve("wrong-inter");
        Files.createDirectories(dir);
        Files.copy(tiny.resolve(Checkpoint.SINGLE), dir.resolve(Checkpoint.SINGLE));
        JsonNode cfg = new ObjectMapper().readTree(tiny.resolve("config.json").toFile());
        ((com.fasterxml.jackson.databind.node.ObjectNode) cfg).put("moe_intermediate_size", 256);
        Files.writeString(dir.resolve("config.json"), cfg.toString());
        CheckpointException e = assertThrows(CheckpointException.class, () -> ExpertWeights.open(dir, L1_E03));
        assertTrue(e.getMessage().contains("layers.1.ffn.experts.0.w1.weight"), e.getMessage());
        assertTrue(e.getMessage().contains("shape"), e.getMessage());
    }

    /** A sharded copy of tiny (tensors by name, ~64 KiB shards): only the shards of the placed experts are mapped. */
    @Test
    void shardedCheckpointMapsOnlyTheShardsOfPlacedExperts(@TempDir Path tmp) throws IOException {
        Path dir = tmp.resolve("tiny-sharded");
        List<String> all;
        try (Checkpoint src = Checkpoint.open(tiny)) {
            List<SafetensorsWriter.Entry> entries = new ArrayList<>();
            for (TensorInfo t : src.tensors().values()) {
                entries.add(new SafetensorsWriter.Entry(t.name(), t.dtype(), t.shape()));
            }
            entries.sort(Comparator.comparing(SafetensorsWriter.Entry::name));
            all = entries.stream().map(SafetensorsWriter.Entry::name).toList();
            Map<String, TensorInfo> byName = src.tensors();
            SafetensorsWriter.write(dir, entries, Map.of(), 64 << 10,
                    (e, out) -> out.put(byName.get(e.name()).data().toArray(ValueLayout.JAVA_BYTE)));
        }
        Files.copy(tiny.resolve("config.json"), dir.resolve("config.json"));
        assertFalse(Files.exists(dir.resolve(Checkpoint.SINGLE)));

        JsonNode map = new ObjectMapper().readTree(dir.resolve(Checkpoint.INDEX).toFile()).get("weight_map");
        Set<String> shards = new HashSet<>();
        Set<Path> needed = new HashSet<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            shards.add(e.getValue().asText());
            if (e.getKey().startsWith("layers.1.ffn.experts.0.") || e.getKey().startsWith("layers.1.ffn.experts.3.")) {
                needed.add(dir.resolve(e.getValue().asText()));
            }
        }
        assertEquals(all.size(), map.size());
        assertTrue(shards.size() > 20, "expected many shards, got " + shards.size());

        try (ExpertWeights ew = ExpertWeights.open(dir, L1_E03); Checkpoint ck = Checkpoint.open(tiny)) {
            Set<Path> mapped = new HashSet<>(ew.mappedFiles());
            assertEquals(needed, mapped, "mapped shards");
            assertTrue(mapped.size() < shards.size() / 4, mapped.size() + " of " + shards.size() + " shards mapped");
            for (TensorInfo t : ew.checkpoint().tensors().values()) {
                assertTrue(needed.contains(t.file()), t.name() + " from an unneeded shard " + t.file());
            }
            assertFalse(ew.checkpoint().has("embed.weight"));
            assertFalse(ew.checkpoint().has("layers.2.ffn.experts.0.w1.weight"));
            long size = 0;
            for (Path p : needed) {
                size += Files.size(p);
            }
            assertEquals(size, ew.mappedBytes());
            ModelWeights mw = new ModelWeights(ModelConfig.load(tiny), ck, ModelWeights.ExpertFilter.ALL);
            for (int e : new int[] {0, 3}) {
                sameExpert(mw.layers[1].ffn().experts()[e], ew.expert(1, e));
            }
        }
    }

    private static void sameExpert(ModelWeights.Expert want, ModelWeights.Expert got) {
        assertNotNull(got);
        sameMatrix(want.w1(), got.w1());
        sameMatrix(want.w2(), got.w2());
        sameMatrix(want.w3(), got.w3());
    }

    private static void sameMatrix(Fp4Matrix want, Fp4Matrix got) {
        assertEquals(want.name(), got.name());
        assertEquals(want.rows(), got.rows());
        assertEquals(want.cols(), got.cols());
        assertEquals(-1, MemorySegment.mismatch(want.data(), 0, want.data().byteSize(), got.data(), 0,
                got.data().byteSize()), want.name() + " weights differ");
        assertEquals(-1, MemorySegment.mismatch(want.scale(), 0, want.scale().byteSize(), got.scale(), 0,
                got.scale().byteSize()), want.name() + " scales differ");
    }
}
