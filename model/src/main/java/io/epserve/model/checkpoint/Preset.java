package io.epserve.model.checkpoint;

import java.util.Locale;

/**
 * The model shapes {@link RandomCheckpoint} can generate. Every field is a field of the Hugging Face
 * {@code config.json}; the ones not listed take the DeepSeek-V4-Flash values.
 */
public enum Preset {
    /** The golden "tiny" model exactly (GOLDEN.md): small enough for the exact engine in unit tests. */
    TINY(new Shape(256, 4, 4, 128, 128, 2, 128, 16, new int[] {0, 4, 16, 4, 0}, 4096,
            4, 4, 8, 2, 128, 1.5, 1, 512)),
    /**
     * The benchmark model: Flash's layer mix (two window layers, then CSA/HCA alternating) at hidden 1024, with
     * 64 routed experts per layer so that the FP4 experts dominate the bytes (~450 MB of ~0.55 GB).
     */
    SMALL(new Shape(1024, 8, 16, 512, 512, 4, 256, 128, new int[] {0, 0, 4, 128, 4, 128, 4, 128, 0}, 65536,
            16, 128, 64, 6, 512, 2.5, 1, 512));

    /** The config fields that differ between presets. */
    public record Shape(int hiddenSize, int numHiddenLayers, int numAttentionHeads, int headDim, int qLoraRank,
                        int oGroups, int oLoraRank, int slidingWindow, int[] compressRatios,
                        int maxPositionEmbeddings, int indexNHeads, int indexTopk, int nRoutedExperts,
                        int numExpertsPerTok, int moeIntermediateSize, double routedScalingFactor, int numHashLayers,
                        int vocabSize) {}

    public final Shape shape;

    Preset(Shape shape) {
        this.shape = shape;
    }

    /** The lower-case name used on the command line. */
    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The preset of a command-line name (case-insensitive), or null. */
    public static Preset parse(String s) {
        for (Preset p : values()) {
            if (p.id().equalsIgnoreCase(s)) {
                return p;
            }
        }
        return null;
    }
}
