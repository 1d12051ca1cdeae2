package io.epserve.model.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.epserve.model.GoldenData;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.weights.ModelWeights;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.api.function.Executable;

/**
 * Malformed checkpoints are rejected with a {@link CheckpointException} naming the file and the tensor, never a crash,
 * hang or partial load, and nothing stays mapped after a failure (checked in /proc/self/maps).
 */
class LoaderRejectionTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    // ------------------------------------------------------------------------------------------ writing helpers

    record Tensor(String name, String dtype, long[] shape, byte[] data) {}

    static Tensor f32(String name, float... v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) {
            b.putFloat(f);
        }
        return new Tensor(name, "F32", new long[] {v.length}, b.array());
    }

    /** A safetensors header for tensors stored back to back, in the order given. */
    static ObjectNode header(List<Tensor> tensors) {
        ObjectNode h = JSON.createObjectNode();
        h.putObject("__metadata__").put("format", "pt");
        long off = 0;
        for (Tensor t : tensors) {
            ObjectNode e = h.putObject(t.name());
            e.put("dtype", t.dtype());
            ArrayNode s = e.putArray("shape");
            for (long d : t.shape()) {
                s.add(d);
            }
            e.putArray("data_offsets").add(off).add(off + t.data().length);
            off += t.data().length;
        }
        return h;
    }

    static void writeRaw(Path p, long headerLen, byte[] header, byte[] data) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(headerLen).put(header).put(data);
        Files.write(p, b.array());
    }

    static void writeRaw(Path p, String header, byte[] data) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        writeRaw(p, h.length, h, data);
    }

    static void write(Path p, List<Tensor> tensors) throws IOException {
        StringBuilder h = new StringBuilder(JSON.writeValueAsString(header(tensors)));
        while (h.length() % 8 != 0) {
            h.append(' ');
        }
        int n = tensors.stream().mapToInt(t -> t.data().length).sum();
        ByteBuffer data = ByteBuffer.allocate(n);
        tensors.forEach(t -> data.put(t.data()));
        writeRaw(p, h.toString(), data.array());
    }

    static void writeIndex(Path dir, Map<String, String> weightMap) throws IOException {
        ObjectNode root = JSON.createObjectNode();
        root.putObject("metadata").put("total_size", 0);
        ObjectNode m = root.putObject("weight_map");
        weightMap.forEach(m::put);
        Files.writeString(dir.resolve(Checkpoint.INDEX), JSON.writeValueAsString(root));
    }

    /** Every tensor of a checkpoint as a writable copy (name order kept). */
    static List<Tensor> copyOf(Checkpoint ck, Predicate<String> keep) {
        List<Tensor> out = new ArrayList<>();
        for (TensorInfo t : ck.tensors().values()) {
            if (keep.test(t.name())) {
                out.add(new Tensor(t.name(), t.dtype().name(), t.shape(), t.data().toArray(ValueLayout.JAVA_BYTE)));
            }
        }
        return out;
    }

    // ------------------------------------------------------------------------------------------ assertions

    static CheckpointException rejects(Executable open, String... mustName) {
        CheckpointException e = assertThrows(CheckpointException.class, open);
        for (String s : mustName) {
            assertTrue(e.getMessage().contains(s), "message should name '" + s + "': " + e.getMessage());
        }
        return e;
    }

    /** Whether a file is memory-mapped by this process (Linux /proc/self/maps). */
    static boolean mapped(Path p) throws IOException {
        Path maps = Path.of("/proc/self/maps");
        Assumptions.assumeTrue(Files.isReadable(maps), "needs /proc/self/maps");
        String want = p.toAbsolutePath().normalize().toString();
        String real = Files.exists(p) ? p.toRealPath().toString() : want;
        for (String line : Files.readAllLines(maps)) {
            if (line.endsWith(want) || line.endsWith(real) || line.endsWith(want + " (deleted)")) {
                return true;
            }
        }
        return false;
    }

    Path single() {
        return dir.resolve(Checkpoint.SINGLE);
    }

    // ------------------------------------------------------------------------------------------ single file

    @Test
    void fileShorterThan8Bytes() throws IOException {
        Files.write(single(), new byte[] {1, 2, 3, 4, 5});
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "truncated");
        Files.write(single(), new byte[0]);
        rejects(() -> SafetensorsFile.open(single()), Checkpoint.SINGLE);
    }

    @Test
    void headerLengthBeyondTheFile() throws IOException {
        writeRaw(single(), 1000, "{}".getBytes(StandardCharsets.UTF_8), new byte[8]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "1000");
        writeRaw(single(), -1, "{}".getBytes(StandardCharsets.UTF_8), new byte[0]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE);
        writeRaw(single(), Long.MAX_VALUE, "{}".getBytes(StandardCharsets.UTF_8), new byte[0]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE);
        writeRaw(single(), 0, new byte[0], new byte[0]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE);
        assertFalse(mapped(single()));
    }

    @Test
    void headerNotJsonOrNotAnObject() throws IOException {
        for (String h : new String[] {"{not json", "[1, 2, 3]", "\"a string\"", "42", "        "}) {
            writeRaw(single(), h, new byte[0]);
            rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE);
            assertFalse(mapped(single()), "closed after rejecting header " + h);
        }
        writeRaw(single(), "{\"w\": 17}", new byte[0]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'");
    }

    @Test
    void unknownDtype() throws IOException {
        writeRaw(single(), "{\"w\": {\"dtype\": \"Q4_K\", \"shape\": [2], \"data_offsets\": [0, 2]}}", new byte[2]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'", "Q4_K");
        writeRaw(single(), "{\"w\": {\"shape\": [2], \"data_offsets\": [0, 2]}}", new byte[2]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'");
    }

    @Test
    void dataOffsetsBeyondTheData() throws IOException {
        writeRaw(single(), "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", new byte[8]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'");
        writeRaw(single(), "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", new byte[8]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'");
        writeRaw(single(), "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", new byte[8]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'");
        writeRaw(single(), "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", new byte[8]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'");
        writeRaw(single(), "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, \"4\"]}}", new byte[8]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'");
    }

    @Test
    void dataOffsetsInconsistentWithShapeAndDtype() throws IOException {
        writeRaw(single(), "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", new byte[8]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'", "8");
        writeRaw(single(), "{\"w\": {\"dtype\": \"BF16\", \"shape\": [2, 3], \"data_offsets\": [0, 8]}}", new byte[8]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'", "12");
    }

    @Test
    void negativeOrNonIntegerShape() throws IOException {
        writeRaw(single(), "{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", new byte[8]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'");
        writeRaw(single(), "{\"w\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}", new byte[8]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'");
        writeRaw(single(), "{\"w\": {\"dtype\": \"F32\", \"shape\": 2, \"data_offsets\": [0, 8]}}", new byte[8]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'");
    }

    @Test
    void shapeWhoseSizeOverflows() throws IOException {
        writeRaw(single(), "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 16], "
                + "\"data_offsets\": [0, 8]}}", new byte[8]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'");
    }

    @Test
    void fractionalShapeOverlappingTensorsAndTrailingHeaderText() throws IOException {
        writeRaw(single(), "{\"w\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 8]}}", new byte[8]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'w'");
        writeRaw(single(), "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
                + "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", new byte[12]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'a'", "'b'", "overlaps");
        writeRaw(single(), "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}} {}", new byte[8]);
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE);
    }

    @Test
    void truncatedFileWithAValidHeader() throws IOException {
        write(single(), List.of(f32("a", 1, 2), f32("b", 3, 4, 5, 6)));
        byte[] all = Files.readAllBytes(single());
        Files.write(single(), Arrays.copyOf(all, all.length - 4));
        rejects(() -> Checkpoint.open(dir), Checkpoint.SINGLE, "'b'", "truncated");
        assertFalse(mapped(single()));
        // the same path is usable again after the failure
        Files.write(single(), all);
        try (Checkpoint ck = Checkpoint.open(dir)) {
            assertEquals(List.of("a", "b"), new ArrayList<>(ck.tensors().keySet()));
            assertTrue(mapped(single()), "positive control: an open checkpoint is mapped");
        }
        assertFalse(mapped(single()), "closed checkpoint is unmapped");
    }

    @Test
    void directoryWithoutCheckpoint() {
        rejects(() -> Checkpoint.open(dir), dir.toString(), Checkpoint.SINGLE, Checkpoint.INDEX);
        rejects(() -> Checkpoint.open(dir.resolve("nope")), "nope");
    }

    // ------------------------------------------------------------------------------------------ sharded

    @Test
    void indexPointingAtAMissingShard() throws IOException {
        write(dir.resolve("s1.safetensors"), List.of(f32("a", 1)));
        Map<String, String> wm = new LinkedHashMap<>();
        wm.put("a", "s1.safetensors");
        wm.put("b", "s2.safetensors");
        writeIndex(dir, wm);
        rejects(() -> Checkpoint.open(dir), Checkpoint.INDEX, "s2.safetensors");
        assertFalse(mapped(dir.resolve("s1.safetensors")), "the shard opened before the failure is closed again");
        // a filter that needs only shard 1 does not touch the missing one
        try (Checkpoint ck = Checkpoint.open(dir, n -> n.equals("a"))) {
            assertTrue(ck.has("a"));
        }
    }

    @Test
    void indexWithoutWeightMapOrNotJson() throws IOException {
        write(dir.resolve("s1.safetensors"), List.of(f32("a", 1)));
        Files.writeString(dir.resolve(Checkpoint.INDEX), "{\"metadata\": {\"total_size\": 4}}");
        rejects(() -> Checkpoint.open(dir), Checkpoint.INDEX, "weight_map");
        Files.writeString(dir.resolve(Checkpoint.INDEX), "{\"weight_map\": [\"a\"]}");
        rejects(() -> Checkpoint.open(dir), Checkpoint.INDEX, "weight_map");
        Files.writeString(dir.resolve(Checkpoint.INDEX), "{\"weight_map\": {\"a\": 3}}");
        rejects(() -> Checkpoint.open(dir), Checkpoint.INDEX, "'a'");
        Files.writeString(dir.resolve(Checkpoint.INDEX), "{\"weight_map\": ");
        rejects(() -> Checkpoint.open(dir), Checkpoint.INDEX);
    }

    @Test
    void shardOutsideTheModelDirectory() throws IOException {
        Path sub = Files.createDirectory(dir.resolve("model"));
        write(dir.resolve("evil.safetensors"), List.of(f32("a", 1)));
        writeIndex(sub, Map.of("a", "../evil.safetensors"));
        rejects(() -> Checkpoint.open(sub), "evil.safetensors", "outside");
    }

    @Test
    void tensorListedInTheIndexButAbsentFromItsShard() throws IOException {
        write(dir.resolve("s1.safetensors"), List.of(f32("a", 1)));
        write(dir.resolve("s2.safetensors"), List.of(f32("c", 2)));
        Map<String, String> wm = new LinkedHashMap<>();
        wm.put("a", "s1.safetensors");
        wm.put("b", "s1.safetensors");
        wm.put("c", "s2.safetensors");
        writeIndex(dir, wm);
        rejects(() -> Checkpoint.open(dir), "s1.safetensors", "'b'");
        assertFalse(mapped(dir.resolve("s1.safetensors")));
        assertFalse(mapped(dir.resolve("s2.safetensors")));
    }

    @Test
    void badSecondShardClosesTheFirst() throws IOException {
        write(dir.resolve("s1.safetensors"), List.of(f32("a", 1)));
        writeRaw(dir.resolve("s2.safetensors"), "{\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
                new byte[4]);
        Map<String, String> wm = new LinkedHashMap<>();
        wm.put("a", "s1.safetensors");
        wm.put("b", "s2.safetensors");
        writeIndex(dir, wm);
        rejects(() -> Checkpoint.open(dir), "s2.safetensors", "'b'");
        assertFalse(mapped(dir.resolve("s1.safetensors")));
        assertFalse(mapped(dir.resolve("s2.safetensors")));
    }

    // ------------------------------------------------------------------------------------------ get / ModelWeights

    @Test
    void getChecksDtypeAndShape() throws IOException {
        write(single(), List.of(f32("a", 1, 2), new Tensor("m", "BF16", new long[] {2, 3}, new byte[12])));
        try (Checkpoint ck = Checkpoint.open(dir)) {
            assertEquals(DType.F32, ck.get("a", DType.F32, 2).dtype());
            assertArrayEquals(new long[] {2, 3}, ck.get("m", DType.BF16, 2, 3).shape());
            rejects(() -> ck.get("a", DType.BF16, 2), Checkpoint.SINGLE, "'a'", "F32", "BF16");
            rejects(() -> ck.get("m", DType.BF16, 3, 2), Checkpoint.SINGLE, "'m'", "[2, 3]", "[3, 2]");
            rejects(() -> ck.get("m", DType.BF16, 6), Checkpoint.SINGLE, "'m'", "[2, 3]", "[6]");
            rejects(() -> ck.get("zz", DType.F32, 1), "'zz'", "missing");
        }
    }

    @Test
    void modelWeightsNameAMissingOrMisshapenTensor() throws IOException {
        GoldenData g = GoldenData.open("tiny");
        ModelConfig c = ModelConfig.load(g.dir);
        List<Tensor> all;
        try (Checkpoint ck = Checkpoint.open(g.dir)) {
            all = copyOf(ck, n -> true);
        } finally {
            g.close();
        }
        String missing = "layers.2.attn.compressor.ape";
        write(single(), all.stream().filter(t -> !t.name().equals(missing)).toList());
        try (Checkpoint ck = Checkpoint.open(dir)) {
            rejects(() -> new ModelWeights(c, ck, ModelWeights.ExpertFilter.ALL), "'" + missing + "'");
        }
        // attn_sink stored with 5 heads where the config has 4
        String sink = "layers.1.attn.attn_sink";
        List<Tensor> bad = all.stream().map(t -> t.name().equals(sink) ? f32(sink, 1, 2, 3, 4, 5) : t).toList();
        write(single(), bad);
        try (Checkpoint ck = Checkpoint.open(dir)) {
            rejects(() -> new ModelWeights(c, ck, ModelWeights.ExpertFilter.ALL), "'" + sink + "'", "[5]", "[4]");
        }
    }

    @Test
    void singleFileAndTwoShardsLoadTheSameTensors() throws IOException {
        GoldenData g = GoldenData.open("tiny");
        ModelConfig c = ModelConfig.load(g.dir);
        List<Tensor> all;
        try (Checkpoint ck = Checkpoint.open(g.dir)) {
            all = copyOf(ck, n -> true);
        } finally {
            g.close();
        }
        Path one = Files.createDirectory(dir.resolve("one"));
        Path two = Files.createDirectory(dir.resolve("two"));
        write(one.resolve(Checkpoint.SINGLE), all);
        List<Tensor> first = new ArrayList<>();
        List<Tensor> second = new ArrayList<>();
        Map<String, String> wm = new LinkedHashMap<>();
        for (int i = 0; i < all.size(); i++) {
            Tensor t = all.get(i);
            boolean toFirst = t.name().startsWith("layers.0.") || t.name().startsWith("embed") || i % 5 == 0;
            (toFirst ? first : second).add(t);
            wm.put(t.name(), toFirst ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
        }
        assertFalse(first.isEmpty() || second.isEmpty());
        write(two.resolve("model-00001-of-00002.safetensors"), first);
        write(two.resolve("model-00002-of-00002.safetensors"), second);
        writeIndex(two, wm);
        try (Checkpoint a = Checkpoint.open(one); Checkpoint b = Checkpoint.open(two)) {
            assertEquals(all.size(), a.tensors().size());
            assertEquals(a.tensors().keySet(), b.tensors().keySet());
            for (Tensor t : all) {
                TensorInfo ta = a.tensors().get(t.name());
                TensorInfo tb = b.tensors().get(t.name());
                assertEquals(ta.dtype(), tb.dtype(), t.name());
                assertArrayEquals(t.shape(), tb.shape(), t.name());
                assertArrayEquals(t.data(), ta.data().toArray(ValueLayout.JAVA_BYTE), t.name());
                assertArrayEquals(t.data(), tb.data().toArray(ValueLayout.JAVA_BYTE), t.name());
            }
            assertTrue(b.tensors().get("embed.weight").file().endsWith("model-00001-of-00002.safetensors"));
            // both bind as a model
            ModelWeights wa = new ModelWeights(c, a, ModelWeights.ExpertFilter.ALL);
            ModelWeights wb = new ModelWeights(c, b, ModelWeights.ExpertFilter.ALL);
            assertArrayEquals(wa.norm, wb.norm);
            assertArrayEquals(wa.layers[3].hcAttn().base(), wb.layers[3].hcAttn().base());
        }
        // an expert worker's filter maps only the shards it needs
        try (Checkpoint b = Checkpoint.open(two, n -> n.startsWith("layers.0."))) {
            assertTrue(mapped(two.resolve("model-00001-of-00002.safetensors")));
            assertFalse(mapped(two.resolve("model-00002-of-00002.safetensors")));
        }
    }
}
