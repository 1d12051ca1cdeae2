package io.epserve.model.engine;

import io.epserve.model.config.ModelConfig;

/**
 * Sizes of a sequence's cache in the compact layout of {@link KvRowCodec} versus the reference's bf16 copies
 * (spec §5.1): bytes that grow with every token, and the fixed part (window rings, compressor state).
 */
public record CacheLayout(
        int kvRowBytes,
        int keyRowBytes,
        double bytesPerToken,
        double referenceBytesPerToken,
        long fixedBytes,
        long referenceFixedBytes) {

    public static CacheLayout of(ModelConfig c) {
        KvRowCodec codec = new KvRowCodec(c.headDim(), c.ropeDim(), c.indexHeadDim());
        int kv = codec.kvRowBytes();
        int key = codec.keyRowBytes();
        double perToken = 0;
        double refPerToken = 0;
        long fixed = 0;
        long refFixed = 0;
        int windowLayers = c.nLayers() + (c.nMtpLayers() > 0 ? 1 : 0);
        fixed += (long) windowLayers * c.window() * kv;
        refFixed += (long) windowLayers * c.window() * c.headDim() * 2L;
        for (int l = 0; l < c.nLayers(); l++) {
            int m = c.compressRatio(l);
            if (m == 0) {
                continue;
            }
            perToken += (double) kv / m;
            refPerToken += 2.0 * c.headDim() / m;
            int overlap = m == 4 ? 2 : 1;
            // kv and score state: [c*m, c*d] each; the engine keeps float64, the reference float32
            long stateValues = 2L * overlap * m * overlap * c.headDim();
            if (m == 4) {
                perToken += (double) key / m;
                refPerToken += 2.0 * c.indexHeadDim() / m;
                stateValues += 2L * 2 * m * 2 * c.indexHeadDim();
            }
            fixed += 8 * stateValues;
            refFixed += 4 * stateValues;
        }
        return new CacheLayout(kv, key, perToken, refPerToken, fixed, refFixed);
    }

    /** Bytes of one sequence of n tokens in the compact layout. */
    public double bytesFor(long tokens) {
        return fixedBytes + bytesPerToken * tokens;
    }
}
