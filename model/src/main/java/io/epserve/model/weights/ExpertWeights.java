package io.epserve.model.weights;

import io.epserve.model.config.ModelConfig;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.safetensors.TensorInfo;
import io.epserve.model.safetensors.WeightMemory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Predicate;

/**
 * The routed experts an expert worker serves, and nothing else: for a placement (a set of (layer, expert) pairs over
 * the main layers 0..nLayers-1 and the MTP block, index nLayers), binds exactly those experts' FP4 matrices by name,
 * checked against the config (dtype and shape) with the same binding code as {@link ModelWeights}. The checkpoint is
 * opened with a tensor predicate, so a sharded checkpoint maps only the shards that hold a placed expert's tensors
 * (a single-file checkpoint is one mapping, of which only the placed experts' bytes are ever read). Matrices are
 * views of the placed experts' bytes: a huge-page copy of them or the mapped files ({@link
 * io.epserve.model.safetensors.WeightMemory}). Owns the checkpoint: {@link #close()} releases both.
 */
public final class ExpertWeights implements AutoCloseable {
    private static final String EXPERTS = "ffn.experts.";

    private final ModelConfig config;
    private final Checkpoint checkpoint;
    /** [layer][expert], null where not placed here. */
    private final ModelWeights.Expert[][] experts;
    private final int placed;
    private final long expertBytes;

    /** Binds the placed experts of {@code ck} (taking ownership of it: {@link #close()} closes it). */
    public ExpertWeights(ModelConfig c, Checkpoint ck, ModelWeights.ExpertFilter placement) {
        this.config = c;
        this.checkpoint = ck;
        ModelWeights.Binder b = new ModelWeights.Binder(ck);
        int layers = layerCount(c);
        int e = c.nRoutedExperts();
        experts = new ModelWeights.Expert[layers][e];
        int n = 0;
        long bytes = 0;
        for (int l = 0; l < layers; l++) {
            String p = ModelWeights.layerPrefix(c, l);
            for (int i = 0; i < e; i++) {
                if (placement.wants(l, i)) {
                    ModelWeights.Expert ex = ModelWeights.expert(c, b, p, i);
                    experts[l][i] = ex;
                    n++;
                    bytes += bytes(ex);
                }
            }
        }
        this.placed = n;
        this.expertBytes = bytes;
    }

    /**
     * Opens {@code dir} (config.json and the checkpoint), mapping only the shards that hold the placed experts, and
     * binds them. Throws {@link io.epserve.model.config.ConfigException} or
     * {@link io.epserve.model.safetensors.CheckpointException} naming the problem.
     */
    public static ExpertWeights open(Path dir, ModelWeights.ExpertFilter placement) {
        return open(dir, ModelConfig.load(dir), placement);
    }

    /** As {@link #open(Path, ModelWeights.ExpertFilter)} with an already loaded config of {@code dir}. */
    public static ExpertWeights open(Path dir, ModelConfig c, ModelWeights.ExpertFilter placement) {
        return open(dir, c, placement, WeightMemory.configured());
    }

    /** As {@link #open(Path, ModelConfig, ModelWeights.ExpertFilter)}, the experts' bytes in {@code memory}. */
    public static ExpertWeights open(Path dir, ModelConfig c, ModelWeights.ExpertFilter placement,
                                     WeightMemory memory) {
        Checkpoint ck = Checkpoint.open(dir, tensorFilter(c, placement), memory);
        try {
            return new ExpertWeights(c, ck, placement);
        } catch (RuntimeException e) {
            ck.close();
            throw e;
        }
    }

    /** Layers that have routed experts: nLayers main layers, plus the MTP block (index nLayers) if there is one. */
    public static int layerCount(ModelConfig c) {
        return c.nLayers() + (c.nMtpLayers() > 0 ? 1 : 0);
    }

    /**
     * The tensor names a placement needs: the weights and scales of its routed experts ("layers.{l}.ffn.experts.{e}.*"
     * and, for layer index nLayers, "mtp.0.ffn.experts.{e}.*"). Everything else is refused.
     */
    public static Predicate<String> tensorFilter(ModelConfig c, ModelWeights.ExpertFilter placement) {
        int layers = layerCount(c);
        int e = c.nRoutedExperts();
        return name -> {
            long le = parseExpertTensor(c, name);
            if (le < 0) {
                return false;
            }
            int l = (int) (le >>> 32);
            int x = (int) le;
            return l < layers && x < e && placement.wants(l, x);
        };
    }

    /** (layer << 32 | expert) of a routed-expert tensor name, or -1 for any other name. */
    static long parseExpertTensor(ModelConfig c, String name) {
        int at = name.indexOf(EXPERTS);
        if (at <= 0 || name.charAt(at - 1) != '.') {
            return -1;
        }
        String prefix = name.substring(0, at);
        int layer;
        if (prefix.equals(ModelWeights.layerPrefix(c, c.nLayers()))) {
            layer = c.nLayers();
        } else if (prefix.startsWith("layers.")) {
            layer = parseIndex(prefix, "layers.".length(), prefix.length() - 1);
        } else {
            return -1;
        }
        int start = at + EXPERTS.length();
        int end = name.indexOf('.', start);
        int expert = end < 0 ? -1 : parseIndex(name, start, end);
        if (layer < 0 || expert < 0) {
            return -1;
        }
        return (long) layer << 32 | expert;
    }

    private static int parseIndex(String s, int from, int to) {
        if (to <= from || to - from > 9) {
            return -1;
        }
        int v = 0;
        for (int i = from; i < to; i++) {
            char ch = s.charAt(i);
            if (ch < '0' || ch > '9') {
                return -1;
            }
            v = v * 10 + (ch - '0');
        }
        return v;
    }

    public ModelConfig config() {
        return config;
    }

    public Checkpoint checkpoint() {
        return checkpoint;
    }

    /** Layers with routed experts (see {@link #layerCount(ModelConfig)}). */
    public int layerCount() {
        return experts.length;
    }

    /** Whether routed expert {@code e} of {@code layer} is placed here (false for indices out of range). */
    public boolean has(int layer, int e) {
        return layer >= 0 && layer < experts.length && e >= 0 && e < experts[layer].length
                && experts[layer][e] != null;
    }

    /**
     * Routed expert {@code e} of {@code layer} (index nLayers = MTP block).
     *
     * @throws IllegalArgumentException if it is out of range or not placed here, naming what is
     */
    public ModelWeights.Expert expert(int layer, int e) {
        if (layer < 0 || layer >= experts.length) {
            throw new IllegalArgumentException("layer " + layer + " is outside the model's expert layers [0, "
                    + experts.length + ")");
        }
        if (e < 0 || e >= experts[layer].length) {
            throw new IllegalArgumentException("expert " + e + " is outside [0, " + experts[layer].length + ")");
        }
        ModelWeights.Expert ex = experts[layer][e];
        if (ex == null) {
            throw new IllegalArgumentException("routed expert " + e + " of layer " + layer
                    + " is not placed on this worker (layer " + layer + " has " + describe(placedIn(layer)) + ")");
        }
        return ex;
    }

    /** The placed experts of {@code layer}, ascending. */
    public int[] placedIn(int layer) {
        ModelWeights.Expert[] row = experts[layer];
        int n = 0;
        for (ModelWeights.Expert ex : row) {
            if (ex != null) {
                n++;
            }
        }
        int[] out = new int[n];
        n = 0;
        for (int i = 0; i < row.length; i++) {
            if (row[i] != null) {
                out[n++] = i;
            }
        }
        return out;
    }

    /** Number of placed (layer, expert) pairs. */
    public int placedCount() {
        return placed;
    }

    /** Stored bytes of the placed experts' weights and scales. */
    public long expertBytes() {
        return expertBytes;
    }

    /** The checkpoint files mapped (those holding at least one tensor in the checkpoint's map). */
    public List<Path> mappedFiles() {
        Set<Path> files = new LinkedHashSet<>();
        for (TensorInfo t : checkpoint.tensors().values()) {
            files.add(t.file());
        }
        return new ArrayList<>(files);
    }

    /** Total size of the mapped files (address space, not resident memory: only touched pages are read). */
    public long mappedBytes() {
        long sum = 0;
        for (Path p : mappedFiles()) {
            try {
                sum += Files.size(p);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return sum;
    }

    @Override
    public void close() {
        checkpoint.close();
    }

    private static long bytes(ModelWeights.Expert ex) {
        return ex.w1().data().byteSize() + ex.w1().scale().byteSize() + ex.w2().data().byteSize()
                + ex.w2().scale().byteSize() + ex.w3().data().byteSize() + ex.w3().scale().byteSize();
    }

    private static String describe(int[] ids) {
        if (ids.length == 0) {
            return "no experts here";
        }
        StringBuilder sb = new StringBuilder("experts ");
        for (int i = 0; i < ids.length; ) {
            int j = i;
            while (j + 1 < ids.length && ids[j + 1] == ids[j] + 1) {
                j++;
            }
            if (i > 0) {
                sb.append(',');
            }
            sb.append(ids[i]);
            if (j > i) {
                sb.append('-').append(ids[j]);
            }
            i = j + 1;
        }
        return sb.toString();
    }
}
