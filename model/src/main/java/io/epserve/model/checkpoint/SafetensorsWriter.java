package io.epserve.model.checkpoint;

import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.safetensors.DType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Writes safetensors files: an 8-byte little-endian header length, a JSON header (tensor name to dtype, shape and
 * data_offsets, plus {@code __metadata__}) padded with spaces to a multiple of 8, then the tensor bytes in header order.
 *
 * <p>Every tensor is declared up front (name, dtype, shape), so the header can be written first; the bytes are then
 * streamed tensor by tensor through a small buffer, never holding the checkpoint in memory. Output is one
 * {@code model.safetensors} or, with a shard size, {@code model-0000i-of-0000n.safetensors} files plus
 * {@code model.safetensors.index.json} (Hugging Face layout), as {@link Checkpoint} reads them.
 */
public final class SafetensorsWriter {
    private static final int BUFFER_BYTES = 1 << 20;

    private SafetensorsWriter() {}

    /** One tensor to write. */
    public record Entry(String name, DType dtype, long[] shape) {
        public Entry {
            if (name == null || name.isEmpty() || name.equals("__metadata__")) {
                throw new IllegalArgumentException("invalid tensor name: " + name);
            }
            shape = shape.clone();
            for (long d : shape) {
                if (d < 0) {
                    throw new IllegalArgumentException(name + ": negative dimension in " + Arrays.toString(shape));
                }
            }
        }

        public long elementCount() {
            long n = 1;
            for (long d : shape) {
                n = Math.multiplyExact(n, d);
            }
            return n;
        }

        public long byteSize() {
            return Math.multiplyExact(elementCount(), dtype.size);
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }

        @Override
        public String toString() {
            return name + " " + dtype + " " + Arrays.toString(shape);
        }
    }

    /** Produces the bytes of one tensor (exactly {@link Entry#byteSize()} of them, little-endian, row-major). */
    @FunctionalInterface
    public interface TensorSource {
        void write(Entry tensor, TensorSink out) throws IOException;
    }

    /** Where a tensor was written: file and absolute byte offset of its first data byte in that file. */
    public record Location(Path file, long offset, long length) {}

    /** What was written. */
    public record Result(List<Path> files, Map<String, Location> locations, long tensorBytes) {
        public int tensorCount() {
            return locations.size();
        }
    }

    /** The order the Python safetensors writer uses (and the official checkpoints have): dtype size descending, then name. */
    public static List<Entry> canonicalOrder(List<Entry> entries) {
        List<Entry> out = new ArrayList<>(entries);
        out.sort(Comparator.comparingInt((Entry e) -> -e.dtype().size).thenComparing(Entry::name));
        return out;
    }

    /**
     * Writes the tensors into {@code dir}: one {@code model.safetensors} when {@code shardSize <= 0}, otherwise shards
     * of at most {@code shardSize} tensor bytes each (a larger tensor gets a shard of its own) and the index. Tensors
     * are written in the given order.
     */
    public static Result write(Path dir, List<Entry> entries, Map<String, String> metadata, long shardSize,
                               TensorSource source) throws IOException {
        checkUnique(entries);
        Files.createDirectories(dir);
        if (shardSize <= 0) {
            Path file = dir.resolve(Checkpoint.SINGLE);
            Map<String, Location> loc = writeFile(file, entries, metadata, source);
            return new Result(List.of(file), loc, totalBytes(entries));
        }
        List<List<Entry>> shards = new ArrayList<>();
        List<Entry> current = new ArrayList<>();
        long bytes = 0;
        for (Entry e : entries) {
            if (!current.isEmpty() && bytes + e.byteSize() > shardSize) {
                shards.add(current);
                current = new ArrayList<>();
                bytes = 0;
            }
            current.add(e);
            bytes += e.byteSize();
        }
        if (!current.isEmpty() || shards.isEmpty()) {
            shards.add(current);
        }
        int n = shards.size();
        List<Path> files = new ArrayList<>();
        Map<String, Location> loc = new LinkedHashMap<>();
        Map<String, String> weightMap = new TreeMap<>();
        for (int i = 0; i < n; i++) {
            String name = String.format("model-%05d-of-%05d.safetensors", i + 1, n);
            Path file = dir.resolve(name);
            loc.putAll(writeFile(file, shards.get(i), metadata, source));
            files.add(file);
            for (Entry e : shards.get(i)) {
                weightMap.put(e.name(), name);
            }
        }
        long total = totalBytes(entries);
        StringBuilder sb = new StringBuilder();
        sb.append("{\n  \"metadata\": {\n    \"total_size\": ").append(total).append("\n  },\n  \"weight_map\": {\n");
        int i = 0;
        for (Map.Entry<String, String> e : weightMap.entrySet()) {
            sb.append("    ").append(Json.quote(e.getKey())).append(": ").append(Json.quote(e.getValue()));
            sb.append(++i < weightMap.size() ? ",\n" : "\n");
        }
        sb.append("  }\n}\n");
        Files.writeString(dir.resolve(Checkpoint.INDEX), sb.toString(), StandardCharsets.UTF_8);
        return new Result(List.copyOf(files), loc, total);
    }

    /** Writes one safetensors file with the tensors in the given order; returns where each tensor's bytes are. */
    public static Map<String, Location> writeFile(Path file, List<Entry> entries, Map<String, String> metadata,
                                                  TensorSource source) throws IOException {
        checkUnique(entries);
        byte[] header = header(entries, metadata);
        long dataStart = 8L + header.length;
        Map<String, Location> loc = new LinkedHashMap<>();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            TensorSink sink = new TensorSink(ch);
            sink.putLong(header.length);
            sink.put(header, 0, header.length);
            long offset = 0;
            for (Entry e : entries) {
                sink.begin(e);
                source.write(e, sink);
                sink.end();
                loc.put(e.name(), new Location(file, dataStart + offset, e.byteSize()));
                offset += e.byteSize();
            }
            sink.flush();
        }
        return loc;
    }

    /** The header bytes: JSON in entry order, {@code __metadata__} first, padded with spaces to a multiple of 8. */
    static byte[] header(List<Entry> entries, Map<String, String> metadata) {
        StringBuilder sb = new StringBuilder("{");
        boolean first = true;
        if (metadata != null && !metadata.isEmpty()) {
            sb.append("\"__metadata__\":{");
            boolean f = true;
            for (Map.Entry<String, String> m : metadata.entrySet()) {
                if (!f) {
                    sb.append(',');
                }
                f = false;
                sb.append(Json.quote(m.getKey())).append(':').append(Json.quote(m.getValue()));
            }
            sb.append('}');
            first = false;
        }
        long offset = 0;
        for (Entry e : entries) {
            if (!first) {
                sb.append(',');
            }
            first = false;
            sb.append(Json.quote(e.name())).append(":{\"dtype\":\"").append(e.dtype().name()).append("\",\"shape\":[");
            long[] shape = e.shape();
            for (int i = 0; i < shape.length; i++) {
                if (i > 0) {
                    sb.append(',');
                }
                sb.append(shape[i]);
            }
            long end = offset + e.byteSize();
            sb.append("],\"data_offsets\":[").append(offset).append(',').append(end).append("]}");
            offset = end;
        }
        sb.append('}');
        byte[] json = sb.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) & ~7;
        byte[] out = Arrays.copyOf(json, padded);
        Arrays.fill(out, json.length, padded, (byte) ' ');
        return out;
    }

    private static long totalBytes(List<Entry> entries) {
        long n = 0;
        for (Entry e : entries) {
            n += e.byteSize();
        }
        return n;
    }

    private static void checkUnique(List<Entry> entries) {
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (Entry e : entries) {
            if (!seen.add(e.name())) {
                throw new IllegalArgumentException("tensor '" + e.name() + "' declared twice");
            }
        }
    }

    /** Overwrites bytes of an already written tensor (e.g. a calibrated bias) at its recorded location. */
    public static void patch(Location at, ByteBuffer bytes) throws IOException {
        if (bytes.remaining() != at.length()) {
            throw new IllegalArgumentException("patch of " + bytes.remaining() + " bytes for a tensor of " + at.length());
        }
        try (FileChannel ch = FileChannel.open(at.file(), StandardOpenOption.WRITE)) {
            long pos = at.offset();
            while (bytes.hasRemaining()) {
                pos += ch.write(bytes, pos);
            }
        }
    }

    /**
     * Buffered little-endian output of one file. The writer checks that each tensor receives exactly its declared
     * number of bytes.
     */
    public static final class TensorSink {
        private final FileChannel ch;
        private final ByteBuffer buf = ByteBuffer.allocateDirect(BUFFER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        private Entry current;
        private long written;

        private TensorSink(FileChannel ch) {
            this.ch = ch;
        }

        private void begin(Entry e) {
            current = e;
            written = 0;
        }

        private void end() {
            if (written != current.byteSize()) {
                throw new IllegalStateException("tensor " + current + " received " + written + " bytes, expected "
                        + current.byteSize());
            }
            current = null;
        }

        private void room(int n) throws IOException {
            if (buf.remaining() < n) {
                flush();
            }
        }

        private void count(long n) {
            written += n;
        }

        void flush() throws IOException {
            buf.flip();
            while (buf.hasRemaining()) {
                ch.write(buf);
            }
            buf.clear();
        }

        public void putByte(int v) throws IOException {
            room(1);
            buf.put((byte) v);
            count(1);
        }

        public void putShort(int v) throws IOException {
            room(2);
            buf.putShort((short) v);
            count(2);
        }

        public void putFloat(float v) throws IOException {
            room(4);
            buf.putFloat(v);
            count(4);
        }

        public void putLong(long v) throws IOException {
            room(8);
            buf.putLong(v);
            count(8);
        }

        public void put(byte[] b) throws IOException {
            put(b, 0, b.length);
        }

        public void put(byte[] b, int off, int len) throws IOException {
            count(len);
            while (len > 0) {
                if (!buf.hasRemaining()) {
                    flush();
                }
                int n = Math.min(len, buf.remaining());
                buf.put(b, off, n);
                off += n;
                len -= n;
            }
        }

        /** bf16 bit patterns, little-endian. */
        public void putShorts(short[] v) throws IOException {
            for (short s : v) {
                putShort(s);
            }
        }

        public void putFloats(float[] v) throws IOException {
            for (float f : v) {
                putFloat(f);
            }
        }
    }

    /** Minimal JSON string quoting (the names and metadata are ASCII in practice). */
    static final class Json {
        private Json() {}

        static String quote(String s) {
            StringBuilder sb = new StringBuilder(s.length() + 2).append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"' -> sb.append("\\\"");
                    case '\\' -> sb.append("\\\\");
                    case '\n' -> sb.append("\\n");
                    case '\r' -> sb.append("\\r");
                    case '\t' -> sb.append("\\t");
                    default -> {
                        if (c < 0x20) {
                            sb.append(String.format("\\u%04x", (int) c));
                        } else {
                            sb.append(c);
                        }
                    }
                }
            }
            return sb.append('"').toString();
        }
    }
}
