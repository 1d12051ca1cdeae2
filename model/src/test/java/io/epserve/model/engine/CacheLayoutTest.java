package io.epserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.epserve.model.config.ModelConfig;
import org.junit.jupiter.api.Test;

/** Bytes per token of the compact cache for the released models, against the figures of spec §5.1. */
class CacheLayoutTest {
    @Test
    void flash() {
        CacheLayout l = CacheLayout.of(ModelConfig.builtin("v4-flash"));
        assertEquals(583, l.kvRowBytes()); // 448 FP8 + 7 E8M0 + 64 bf16
        assertEquals(68, l.keyRowBytes()); // 64 B FP4 + 4 E8M0
        assertEquals(21 * 320 + 20 * 8, l.referenceBytesPerToken(), 1e-9);
        assertEquals(21 * (583 + 68) / 4.0 + 20 * 583 / 128.0, l.bytesPerToken(), 1e-9);
        assertEquals(3508.8, l.bytesPerToken(), 0.1);
    }

    @Test
    void pro() {
        CacheLayout l = CacheLayout.of(ModelConfig.builtin("v4-pro"));
        assertEquals(30 * 320 + 31 * 8, l.referenceBytesPerToken(), 1e-9);
        assertEquals(30 * (583 + 68) / 4.0 + 31 * 583 / 128.0, l.bytesPerToken(), 1e-9);
        // spec §5.1: window 61 x 128 KiB (+ the MTP block's), compressor state 30 x 80 KiB + 31 x 512 KiB (float32)
        assertEquals(62L * 128 * 1024 + 30L * 80 * 1024 + 31L * 512 * 1024, l.referenceFixedBytes());
    }
}
