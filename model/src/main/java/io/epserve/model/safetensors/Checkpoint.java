package io.epserve.model.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;

/**
 * The tensors of a Hugging Face model directory: `model.safetensors`, or shards listed by
 * `model.safetensors.index.json`. Files are memory-mapped; nothing is copied onto the heap.
 */
public final class Checkpoint implements AutoCloseable {
    public static final String SINGLE = "model.safetensors";
    public static final String INDEX = "model.safetensors.index.json";

    private final Path dir;
    private final List<SafetensorsFile> files;
    private final Map<String, TensorInfo> tensors;

    private Checkpoint(Path dir, List<SafetensorsFile> files, Map<String, TensorInfo> tensors) {
        this.dir = dir;
        this.files = files;
        this.tensors = tensors;
    }

    public static Checkpoint open(Path dir) {
        return open(dir, name -> true);
    }

    /**
     * Opens the checkpoint, mapping only the shards that hold a tensor accepted by {@code wanted} (an expert worker
     * maps only its own experts' shards).
     */
    public static Checkpoint open(Path dir, Predicate<String> wanted) {
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
        return new Checkpoint(dir, files, tensors);
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

    @Override
    public void close() {
        files.forEach(SafetensorsFile::close);
    }
}
