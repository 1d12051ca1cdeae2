package io.epserve.model.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.epserve.model.checkpoint.SafetensorsWriter.Entry;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.safetensors.DType;
import io.epserve.model.safetensors.SafetensorsFile;
import io.epserve.model.safetensors.TensorInfo;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsWriterTest {
    @TempDir
    Path tmp;

    /** Deterministic content: byte i of tensor `name` = hash(name) + i. */
    private static void fill(Entry e, SafetensorsWriter.TensorSink out) throws IOException {
        byte[] b = expected(e);
        out.put(b);
    }

    private static byte[] expected(Entry e) {
        byte[] b = new byte[(int) e.byteSize()];
        int h = e.name().hashCode();
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) (h + i * 31);
        }
        return b;
    }

    private static List<Entry> entries() {
        return List.of(
                new Entry("a.weight", DType.BF16, new long[] {3, 5}),
                new Entry("b.scale", DType.F8_E8M0, new long[] {1, 1}),
                new Entry("c", DType.F32, new long[] {7}),
                new Entry("d.tid2eid", DType.I64, new long[] {4, 2}),
                new Entry("e.weight", DType.I8, new long[] {16, 8}),
                new Entry("f.weight", DType.F8_E4M3, new long[] {2, 3}),
                new Entry("scalar", DType.F32, new long[] {}));
    }

    @Test
    void singleFileRoundTripsThroughTheReader() throws IOException {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "pt");
        meta.put("note", "quote \" and backslash \\");
        SafetensorsWriter.Result r = SafetensorsWriter.write(tmp, entries(), meta, 0, SafetensorsWriterTest::fill);
        Path file = tmp.resolve(Checkpoint.SINGLE);
        assertEquals(List.of(file), r.files());
        byte[] all = Files.readAllBytes(file);
        long headerLen = ByteBuffer.wrap(all, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, headerLen % 8, "header padded to a multiple of 8");
        String header = new String(all, 8, (int) headerLen, StandardCharsets.UTF_8);
        assertTrue(header.startsWith("{\"__metadata__\":{\"format\":\"pt\""), header);
        String json = header.stripTrailing();
        assertTrue(json.endsWith("}"), header);
        assertTrue(header.substring(json.length()).chars().allMatch(ch -> ch == ' '), "padded with spaces");
        assertTrue(header.length() - json.length() < 8, "minimal padding");
        long total = entries().stream().mapToLong(Entry::byteSize).sum();
        assertEquals(8 + headerLen + total, all.length, "no bytes beyond the last tensor");
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals("pt", f.metadata().get("format"));
            assertEquals("quote \" and backslash \\", f.metadata().get("note"));
            List<String> names = new ArrayList<>(f.tensors().keySet());
            assertEquals(entries().stream().map(Entry::name).toList(), names, "tensors in header order");
            long expectOffset = 8 + headerLen;
            for (Entry e : entries()) {
                TensorInfo t = f.tensors().get(e.name());
                assertEquals(e.dtype(), t.dtype());
                assertArrayEquals(e.shape(), t.shape());
                assertArrayEquals(expected(e), t.data().toArray(ValueLayout.JAVA_BYTE), e.name());
                assertEquals(expectOffset, r.locations().get(e.name()).offset(), "data in header order");
                expectOffset += e.byteSize();
            }
        }
    }

    @Test
    void shardsHoldAtMostTheShardSizeAndLoadThroughTheIndex() throws IOException {
        // 30 + 1 + 28 + 64 + 128 + 6 + 4 bytes; a 40-byte limit puts the 64- and 128-byte tensors alone.
        SafetensorsWriter.Result r = SafetensorsWriter.write(tmp, entries(), Map.of("format", "pt"), 40,
                SafetensorsWriterTest::fill);
        assertFalse(Files.exists(tmp.resolve(Checkpoint.SINGLE)));
        assertEquals(5, r.files().size(), r.files().toString());
        assertEquals("model-00001-of-00005.safetensors", r.files().get(0).getFileName().toString());
        JsonNode index = new ObjectMapper().readTree(tmp.resolve(Checkpoint.INDEX).toFile());
        assertEquals(r.tensorBytes(), index.get("metadata").get("total_size").asLong());
        assertEquals(entries().size(), index.get("weight_map").size());
        for (Path p : r.files()) {
            try (SafetensorsFile f = SafetensorsFile.open(p)) {
                long bytes = f.tensors().values().stream().mapToLong(t -> t.data().byteSize()).sum();
                assertTrue(bytes <= 40 || f.tensors().size() == 1, p + " holds " + bytes + " bytes");
            }
        }
        try (Checkpoint ck = Checkpoint.open(tmp)) {
            assertEquals(entries().size(), ck.tensors().size());
            for (Entry e : entries()) {
                TensorInfo t = ck.get(e.name(), e.dtype(), e.shape());
                assertArrayEquals(expected(e), t.data().toArray(ValueLayout.JAVA_BYTE), e.name());
            }
        }
    }

    @Test
    void aTensorMustReceiveExactlyItsBytes() {
        List<Entry> one = List.of(new Entry("x", DType.F32, new long[] {4}));
        assertThrows(IllegalStateException.class,
                () -> SafetensorsWriter.write(tmp, one, Map.of(), 0, (e, out) -> out.putFloat(1f)));
        assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.write(tmp,
                List.of(one.get(0), one.get(0)), Map.of(), 0, (e, out) -> out.put(new byte[16])));
    }

    @Test
    void patchOverwritesOneTensorInPlace() throws IOException {
        SafetensorsWriter.Result r = SafetensorsWriter.write(tmp, entries(), Map.of(), 0, SafetensorsWriterTest::fill);
        ByteBuffer b = ByteBuffer.allocate(28).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 7; i++) {
            b.putFloat(i + 0.5f);
        }
        b.flip();
        SafetensorsWriter.patch(r.locations().get("c"), b);
        try (SafetensorsFile f = SafetensorsFile.open(tmp.resolve(Checkpoint.SINGLE))) {
            TensorInfo t = f.tensors().get("c");
            for (int i = 0; i < 7; i++) {
                assertEquals(i + 0.5f, t.data().get(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 4L * i));
            }
            assertArrayEquals(expected(entries().get(0)), f.tensors().get("a.weight").data().toArray(ValueLayout.JAVA_BYTE));
        }
    }

    @Test
    void canonicalOrderIsDtypeSizeThenName() {
        List<String> names = SafetensorsWriter.canonicalOrder(entries()).stream().map(Entry::name).toList();
        assertEquals(List.of("d.tid2eid", "c", "scalar", "a.weight", "b.scale", "e.weight", "f.weight"), names);
    }
}
