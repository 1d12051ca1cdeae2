package io.epserve.model.engine;

/**
 * Receives intermediate rows of the forward pass for debugging and golden tests. Names follow GOLDEN.md
 * (attn_in, kv, attn_out, mid_streams, ffn_in, ffn_out, streams, compressed, index_keys, index_scores, csa_selected,
 * topk). Never set on a serving path.
 */
@FunctionalInterface
public interface Tap {
    /** row holds {@code len} values at {@code off}; position is the token's absolute position (or entry index). */
    void row(int layer, String name, long position, float[] row, int off, int len);
}
