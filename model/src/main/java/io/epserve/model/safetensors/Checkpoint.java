package io.epserve.model.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;

/**
 * The tensors of a Hugging Face model directory: `model.safetensors`, or shards listed by
 * `model.safetensors.index.json`. Files are memory-mapped and validated; the tensors a process wants are then
 * either views of the mapping or a copy in huge pages ({@link WeightMemory}), never on the heap.
 */
public final class Checkpoint implements AutoCloseable {
    public static final String SINGLE = "model.safetensors";
    public static final String INDEX = "model.safetensors.index.json";

    private final Path dir;
    private final List<SafetensorsFile> files;
    private final Map<String, TensorInfo> tensors;
    /** Owns the huge-page copy (unmapped on close); null when the tensors are views of the files. */
    private final Arena copyArena;
    private final long copiedBytes;
    /** Owns the memory handed out by {@link #allocate}. */
    private final Arena derivedArena = Arena.ofShared();
    /**
     * The kind {@link #allocate} hands out: the one asked for at open, even when nothing was copied (an expert
     * worker's tensors are all repacked, none copied, and its experts belong in huge pages all the same).
     */
    private WeightMemory derivedMemory = WeightMemory.MAPPED;
    private MemorySegment slab = MemorySegment.NULL;
    private long slabUsed;
    private long derivedBytes;

    private Checkpoint(Path dir, List<SafetensorsFile> files, Map<String, TensorInfo> tensors, Arena copyArena,
                       long copiedBytes) {
        this.dir = dir;
        this.files = files;
        this.tensors = tensors;
        this.copyArena = copyArena;
        this.copiedBytes = copiedBytes;
    }

    /** Every tensor, where {@link WeightMemory#configured()} says. */
    public static Checkpoint open(Path dir) {
        return open(dir, name -> true);
    }

    /** {@link #open(Path, Predicate, WeightMemory)} with {@link WeightMemory#configured()}. */
    public static Checkpoint open(Path dir, Predicate<String> wanted) {
        return open(dir, wanted, WeightMemory.configured());
    }

    /**
     * Opens the checkpoint, mapping only the shards that hold a tensor accepted by {@code wanted} (an expert worker
     * maps only its own experts' shards). With {@link WeightMemory#HUGE_PAGES} the accepted tensors are copied into
     * one huge-page region (the others stay views of their files, never read); if that memory cannot be had, they
     * stay mapped and {@link #memory()} says so.
     */
    public static Checkpoint open(Path dir, Predicate<String> wanted, WeightMemory memory) {
        Checkpoint mapped = openMapped(dir, wanted);
        if (memory != WeightMemory.HUGE_PAGES) {
            return mapped;
        }
        Checkpoint ck;
        try {
            ck = mapped.copyToHugePages(wanted);
        } catch (RuntimeException e) {
            mapped.close();
            throw e;
        }
        ck.derivedMemory = WeightMemory.HUGE_PAGES;
        return ck;
    }

    /** Tensors start on this boundary in the copy: a cache line, like the 64-byte aligned kernel buffers. */
    private static final long COPY_ALIGN = 64;

    private Checkpoint copyToHugePages(Predicate<String> wanted) {
        long total = 0;
        for (TensorInfo t : tensors.values()) {
            if (copied(t, wanted)) {
                total = align(total) + t.data().byteSize();
            }
        }
        if (total == 0) {
            return this;
        }
        Arena arena = Arena.ofShared();
        MemorySegment region;
        try {
            region = WeightMemory.allocateHuge(total, arena);
        } catch (RuntimeException e) {
            arena.close();
            return this; // no huge-page memory to be had: the mapped views serve (memory() says MAPPED)
        }
        Map<String, TensorInfo> copied = new LinkedHashMap<>();
        long off = 0;
        try {
            for (TensorInfo t : tensors.values()) {
                if (!copied(t, wanted)) {
                    copied.put(t.name(), t);
                    continue;
                }
                off = align(off);
                long n = t.data().byteSize();
                MemorySegment dst = region.asSlice(off, n);
                MemorySegment.copy(t.data(), 0, dst, 0, n);
                copied.put(t.name(), new TensorInfo(t.name(), t.dtype(), t.shape(), t.file(), dst.asReadOnly()));
                off += n;
            }
        } catch (RuntimeException | Error e) {
            arena.close(); // e.g. a file truncated under the mapping: nothing of the copy stays behind
            throw e;
        }
        files.forEach(SafetensorsFile::releaseResidentPages);
        return new Checkpoint(dir, files, copied, arena, total);
    }

    /**
     * Whether the huge-page copy holds the tensor: a wanted one, except the FP8 and FP4 weights (e4m3 codes, packed
     * e2m1 codes stored as I8, their E8M0 scales), which their one reader (ModelWeights' binder) repacks into memory
     * from {@link #allocate} anyway: a copy of them would only double their memory.
     */
    private static boolean copied(TensorInfo t, Predicate<String> wanted) {
        return wanted.test(t.name()) && t.dtype() != DType.F8_E4M3 && t.dtype() != DType.I8
                && t.dtype() != DType.F8_E8M0;
    }

    /** Slabs of {@link #allocate}: one huge page region serves many small matrices. */
    private static final long SLAB_BYTES = 32L << 20;

    /**
     * {@code bytes} of zeroed memory, 64-byte aligned, of the kind asked for at open (huge pages where they can be
     * had), for weights derived from its tensors (a repacked layout); freed when the checkpoint closes. Carved from
     * slabs of at least 32 MiB, so that many small matrices do not each take a huge page of their own.
     */
    public synchronized MemorySegment allocate(long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("bytes " + bytes);
        }
        long at = align(slabUsed);
        if (at + bytes > slab.byteSize()) {
            slab = derivedMemory.allocate(Math.max(bytes, SLAB_BYTES), derivedArena);
            at = 0;
        }
        slabUsed = at + bytes;
        derivedBytes += bytes;
        return slab.asSlice(at, bytes);
    }

    private static long align(long off) {
        return (off + COPY_ALIGN - 1) / COPY_ALIGN * COPY_ALIGN;
    }

    private static Checkpoint openMapped(Path dir, Predicate<String> wanted) {
        if (!Files.isDirectory(dir)) {
            throw new CheckpointException(dir + ": not a model directory");
        }
        Path index = dir.resolve(INDEX);
        Path single = dir.resolve(SINGLE);
        List<SafetensorsFile> files = new ArrayList<>();
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        try {
            if (Files.isRegularFile(index)) {
                Map<String, String> weightMap = readIndex(index);
                Set<String> shardNames = new LinkedHashSet<>();
                weightMap.forEach((t, f) -> {
                    if (wanted.test(t)) {
                        shardNames.add(f);
                    }
                });
                for (String shard : shardNames) {
                    Path p = dir.resolve(shard).normalize();
                    if (!p.startsWith(dir.normalize())) {
                        throw new CheckpointException(index + ": shard '" + shard + "' lies outside the model directory");
                    }
                    if (!Files.isRegularFile(p)) {
                        throw new CheckpointException(index + ": shard '" + shard + "' is missing");
                    }
                    SafetensorsFile f = SafetensorsFile.open(p);
                    files.add(f);
                    for (TensorInfo t : f.tensors().values()) {
                        String listed = weightMap.get(t.name());
                        if (listed != null && !listed.equals(shard)) {
                            continue; // the index names another shard as the owner
                        }
                        tensors.put(t.name(), t);
                    }
                }
                for (Map.Entry<String, String> e : weightMap.entrySet()) {
                    if (wanted.test(e.getKey()) && !tensors.containsKey(e.getKey())) {
                        throw new CheckpointException(dir.resolve(e.getValue()) + ": tensor '" + e.getKey()
                                + "' is listed in " + INDEX + " but not stored in that shard");
                    }
                }
            } else if (Files.isRegularFile(single)) {
                SafetensorsFile f = SafetensorsFile.open(single);
                files.add(f);
                tensors.putAll(f.tensors());
            } else {
                throw new CheckpointException(dir + ": neither " + SINGLE + " nor " + INDEX + " found");
            }
        } catch (RuntimeException e) {
            files.forEach(SafetensorsFile::close);
            throw e;
        }
        return new Checkpoint(dir, files, tensors, null, 0);
    }

    private static Map<String, String> readIndex(Path index) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(index.toFile());
        } catch (IOException e) {
            throw new CheckpointException(index + ": not valid JSON: " + e.getMessage(), e);
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new CheckpointException(index + ": no 'weight_map' object");
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getValue().isTextual()) {
                throw new CheckpointException(index + ": weight_map entry '" + e.getKey() + "' is not a file name");
            }
            out.put(e.getKey(), e.getValue().asText());
        }
        return out;
    }

    public Path dir() {
        return dir;
    }

    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    public boolean has(String name) {
        return tensors.containsKey(name);
    }

    /** The tensor, checked for dtype and shape; the error names the file and the tensor. */
    public TensorInfo get(String name, DType dtype, long... shape) {
        TensorInfo t = tensors.get(name);
        if (t == null) {
            throw new CheckpointException(dir + ": tensor '" + name + "' is missing");
        }
        if (t.dtype() != dtype) {
            throw new CheckpointException(t.file() + ": tensor '" + name + "' has dtype " + t.dtype()
                    + " but the config requires " + dtype);
        }
        if (!t.hasShape(shape)) {
            throw new CheckpointException(t.file() + ": tensor '" + name + "' has shape " + t.shapeString()
                    + " but the config requires " + java.util.Arrays.toString(shape));
        }
        return t;
    }

    /** Where the wanted tensors live: MAPPED (views of the files) or HUGE_PAGES (a copy). */
    public WeightMemory memory() {
        return copyArena != null ? WeightMemory.HUGE_PAGES : WeightMemory.MAPPED;
    }

    /** Bytes of the huge-page copy (0 when mapped). */
    public long copiedBytes() {
        return copiedBytes;
    }

    /** Bytes handed out by {@link #allocate} so far (weights repacked at load). */
    public synchronized long derivedBytes() {
        return derivedBytes;
    }

    /** One line for a process's start-up log: where its weights are. */
    public String memoryDescription() {
        String base = copyArena != null
                ? String.format(Locale.ROOT, "weights in huge pages (%.1f MB copied from the checkpoint)",
                        copiedBytes / 1e6)
                : "weights memory-mapped from the checkpoint files";
        long repacked = derivedBytes();
        return repacked == 0 ? base : String.format(Locale.ROOT, "%s, %.1f MB of FP8/FP4 weights repacked into %s",
                base, repacked / 1e6, derivedMemory == WeightMemory.HUGE_PAGES ? "huge pages" : "ordinary memory");
    }

    @Override
    public void close() {
        derivedArena.close();
        if (copyArena != null) {
            copyArena.close();
        }
        files.forEach(SafetensorsFile::close);
    }
}
