package io.epserve.model.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A memory-mapped safetensors file: 8-byte little-endian header length, a JSON header, then the tensor bytes.
 * Every header entry is validated against the file before any tensor is handed out.
 */
public final class SafetensorsFile implements AutoCloseable {
    /** Far larger than any real header (Flash's largest shard header is a few hundred KiB). */
    static final long MAX_HEADER_BYTES = 256L << 20;

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private final Path path;
    private final Arena arena;
    private final MemorySegment file;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, Arena arena, MemorySegment file, Map<String, TensorInfo> tensors,
                            Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.file = file;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /**
     * Unmaps the pages of this file that the process has read (they stay in the page cache; a later read maps them
     * again): after a copy to huge pages the process's resident memory then holds the weights once, not twice.
     */
    void releaseResidentPages() {
        WeightMemory.dropPages(file);
    }

    public static SafetensorsFile open(Path path) {
        Arena arena = Arena.ofShared();
        try {
            return read(path, arena);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static SafetensorsFile read(Path path, Arena arena) {
        MemorySegment file;
        long size;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            size = ch.size();
            if (size < 8) {
                throw new CheckpointException(path + ": truncated safetensors file (" + size + " bytes, no header length)");
            }
            file = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
        } catch (IOException e) {
            throw new CheckpointException(path + ": cannot read: " + e.getMessage(), e);
        }
        long headerLen = file.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), 0);
        if (headerLen <= 0 || headerLen > MAX_HEADER_BYTES || headerLen > size - 8) {
            throw new CheckpointException(path + ": header length " + headerLen + " does not fit the file of " + size
                    + " bytes (truncated or not a safetensors file)");
        }
        byte[] headerBytes = file.asSlice(8, headerLen).toArray(ValueLayout.JAVA_BYTE);
        JsonNode header;
        try {
            header = JSON.readTree(new String(headerBytes, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new CheckpointException(path + ": header is not valid JSON: " + e.getMessage(), e);
        }
        if (header == null || !header.isObject()) {
            throw new CheckpointException(path + ": header is not a JSON object");
        }
        long dataStart = 8 + headerLen;
        long dataLen = size - dataStart;
        MemorySegment data = file.asSlice(dataStart, dataLen);
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String name = e.getKey();
            JsonNode v = e.getValue();
            if (name.equals("__metadata__")) {
                if (v.isObject()) {
                    v.fields().forEachRemaining(m -> metadata.put(m.getKey(), m.getValue().asText()));
                }
                continue;
            }
            tensors.put(name, parseEntry(path, name, v, data, dataLen));
        }
        rejectOverlaps(path, tensors, data);
        return new SafetensorsFile(path, arena, file, Collections.unmodifiableMap(tensors), metadata);
    }

    /** Two tensors sharing bytes mean a corrupt header (the Rust safetensors library rejects it too). */
    private static void rejectOverlaps(Path path, Map<String, TensorInfo> tensors, MemorySegment data) {
        List<TensorInfo> byStart = new ArrayList<>(tensors.values());
        long base = data.address();
        byStart.sort(java.util.Comparator.comparingLong(t -> t.data().address()));
        for (int i = 1; i < byStart.size(); i++) {
            TensorInfo prev = byStart.get(i - 1);
            TensorInfo cur = byStart.get(i);
            long prevEnd = prev.data().address() - base + prev.data().byteSize();
            if (cur.data().address() - base < prevEnd) {
                throw new CheckpointException(path + ": tensor '" + cur.name() + "' overlaps the bytes of tensor '"
                        + prev.name() + "'");
            }
        }
    }

    private static TensorInfo parseEntry(Path path, String name, JsonNode v, MemorySegment data, long dataLen) {
        String where = path + ": tensor '" + name + "'";
        if (!v.isObject()) {
            throw new CheckpointException(where + ": header entry is not an object");
        }
        DType dtype = DType.parse(v.path("dtype").asText(null));
        if (dtype == null) {
            throw new CheckpointException(where + ": unknown dtype " + v.path("dtype"));
        }
        JsonNode shapeNode = v.path("shape");
        JsonNode offs = v.path("data_offsets");
        if (!shapeNode.isArray() || !offs.isArray() || offs.size() != 2) {
            throw new CheckpointException(where + ": header entry needs 'shape' and two 'data_offsets'");
        }
        long[] shape = new long[shapeNode.size()];
        long count = 1;
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = shapeNode.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) {
                throw new CheckpointException(where + ": invalid shape " + shapeNode);
            }
            shape[i] = d.asLong();
            try {
                count = Math.multiplyExact(count, shape[i]);
            } catch (ArithmeticException e) {
                throw new CheckpointException(where + ": shape " + shapeNode + " is too large");
            }
        }
        if (!offs.get(0).isIntegralNumber() || !offs.get(1).isIntegralNumber()
                || !offs.get(0).canConvertToLong() || !offs.get(1).canConvertToLong()) {
            throw new CheckpointException(where + ": invalid data_offsets " + offs);
        }
        long begin = offs.get(0).asLong();
        long end = offs.get(1).asLong();
        if (begin < 0 || end < begin || end > dataLen) {
            throw new CheckpointException(where + ": data_offsets [" + begin + ", " + end
                    + "] point outside the " + dataLen + " data bytes of the file (truncated?)");
        }
        long expected;
        try {
            expected = Math.multiplyExact(count, dtype.size);
        } catch (ArithmeticException e) {
            throw new CheckpointException(where + ": shape " + shapeNode + " is too large");
        }
        if (end - begin != expected) {
            throw new CheckpointException(where + ": " + (end - begin) + " bytes stored but " + dtype + " "
                    + java.util.Arrays.toString(shape) + " needs " + expected);
        }
        return new TensorInfo(name, dtype, shape, path, data.asSlice(begin, end - begin));
    }

    public Path path() {
        return path;
    }

    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    public List<String> names() {
        return new ArrayList<>(tensors.keySet());
    }

    @Override
    public void close() {
        arena.close();
    }

    /** Whether a file looks like safetensors at all (for directory scans). */
    static boolean exists(Path p) {
        return Files.isRegularFile(p);
    }
}
