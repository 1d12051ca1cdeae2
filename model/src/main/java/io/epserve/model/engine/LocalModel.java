package io.epserve.model.engine;

import io.epserve.model.config.ModelConfig;
import io.epserve.model.kernel.KernelSets;
import io.epserve.model.kernel.Kernels;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.weights.ModelWeights;
import java.nio.file.Path;

/** A model directory opened for single-process inference: config, mapped checkpoint, kernel set and forward pass. */
public final class LocalModel implements AutoCloseable {
    private final ModelConfig config;
    private final Checkpoint checkpoint;
    private final ModelWeights weights;
    private final Kernels kernels;
    private final Transformer transformer;

    private LocalModel(ModelConfig config, Checkpoint checkpoint, ModelWeights weights, Kernels kernels) {
        this.config = config;
        this.checkpoint = checkpoint;
        this.weights = weights;
        this.kernels = kernels;
        this.transformer = new Transformer(weights, kernels);
    }

    /** Opens dir with the named kernel set ("exact" or "fast") and, for "fast", that many compute threads. */
    public static LocalModel open(Path dir, String kernelSet, int threads) {
        ModelConfig c = ModelConfig.load(dir);
        Checkpoint ck = Checkpoint.open(dir);
        try {
            ModelWeights w = new ModelWeights(c, ck, ModelWeights.ExpertFilter.ALL);
            return new LocalModel(c, ck, w, KernelSets.create(kernelSet, threads));
        } catch (RuntimeException e) {
            ck.close();
            throw e;
        }
    }

    public ModelConfig config() {
        return config;
    }

    public ModelWeights weights() {
        return weights;
    }

    public Transformer transformer() {
        return transformer;
    }

    public Checkpoint checkpoint() {
        return checkpoint;
    }

    public Kernels kernels() {
        return kernels;
    }

    /** The engine's context limit: the config's max_position_embeddings. */
    public int contextLimit() {
        return config.maxPositionEmbeddings();
    }

    @Override
    public void close() {
        kernels.close();
        checkpoint.close();
    }
}
