package io.epserve.model.engine;

import io.epserve.model.config.ModelConfig;

/** Everything a sequence keeps between steps: one {@link LayerCache} per layer (and the MTP block) and its length. */
public final class SequenceCache {
    final LayerCache[] layers;
    final LayerCache mtp;
    final int maxLength;
    long length;
    long mtpLength;

    SequenceCache(ModelConfig c, KvRowCodec codec, int maxLength) {
        this.maxLength = maxLength;
        layers = new LayerCache[c.nLayers()];
        for (int i = 0; i < layers.length; i++) {
            layers[i] = new LayerCache(c.compressRatio(i), c.window(), c.headDim(), c.indexHeadDim(), codec);
        }
        mtp = c.nMtpLayers() > 0 ? new LayerCache(0, c.window(), c.headDim(), c.indexHeadDim(), codec) : null;
    }

    /** Number of tokens already in the cache: the position the next token takes. */
    public long length() {
        return length;
    }

    public int maxLength() {
        return maxLength;
    }

    /** Empties the cache for a new sequence (compressor state reset, spec §4.6). */
    public void reset() {
        length = 0;
        mtpLength = 0;
        for (LayerCache l : layers) {
            l.reset();
        }
        if (mtp != null) {
            mtp.reset();
        }
    }

    /** Bytes held now: the fixed part (window rings, compressor state) plus the entries grown so far. */
    public long bytes() {
        long b = 0;
        for (LayerCache l : layers) {
            b += l.fixedBytes() + l.growingBytes();
        }
        return b;
    }
}
