package io.epserve.model.engine;

import java.util.Arrays;

/**
 * One layer's share of a sequence's cache, in the compact layouts of {@link KvRowCodec}: the window ring of raw KV
 * rows (slot = position mod window), the main compressed entries, the indexer keys and the compressors' partial-block
 * state.
 */
final class LayerCache {
    final int ratio;
    final int kvRowBytes;
    final int keyRowBytes;
    final byte[] window;
    byte[] compressed;
    int compressedCount;
    byte[] keys;
    int keyCount;
    final CompressorState compressor;
    final CompressorState indexCompressor;

    LayerCache(int ratio, int window, int headDim, int indexDim, KvRowCodec codec) {
        this.ratio = ratio;
        this.kvRowBytes = codec.kvRowBytes();
        this.keyRowBytes = codec.keyRowBytes();
        this.window = new byte[window * kvRowBytes];
        this.compressed = new byte[ratio > 0 ? 16 * kvRowBytes : 0];
        this.keys = new byte[ratio == 4 ? 16 * keyRowBytes : 0];
        this.compressor = ratio > 0 ? new CompressorState(ratio, ratio == 4, headDim) : null;
        this.indexCompressor = ratio == 4 ? new CompressorState(ratio, true, indexDim) : null;
    }

    int appendCompressed() {
        if ((compressedCount + 1) * kvRowBytes > compressed.length) {
            compressed = Arrays.copyOf(compressed, Math.max(compressed.length * 2, (compressedCount + 1) * kvRowBytes));
        }
        return compressedCount++ * kvRowBytes;
    }

    int appendKey() {
        if ((keyCount + 1) * keyRowBytes > keys.length) {
            keys = Arrays.copyOf(keys, Math.max(keys.length * 2, (keyCount + 1) * keyRowBytes));
        }
        return keyCount++ * keyRowBytes;
    }

    void reset() {
        compressedCount = 0;
        keyCount = 0;
        if (compressor != null) {
            compressor.reset();
        }
        if (indexCompressor != null) {
            indexCompressor.reset();
        }
    }

    /** Bytes that grow with the sequence (compressed entries and indexer keys actually used). */
    long growingBytes() {
        return (long) compressedCount * kvRowBytes + (long) keyCount * keyRowBytes;
    }

    long fixedBytes() {
        return window.length + (compressor == null ? 0 : compressor.bytes())
                + (indexCompressor == null ? 0 : indexCompressor.bytes());
    }
}
