package io.epserve.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FingerprintTest {
    @TempDir
    Path tmp;

    /** A safetensors-shaped file: an 8-byte header length, a JSON header, then {@code data} random bytes. */
    static void weights(Path f, long seed, int data) throws Exception {
        byte[] header = "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}".getBytes(StandardCharsets.UTF_8);
        byte[] body = new byte[data];
        new Random(seed).nextBytes(body);
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(header.length).put(header).put(body);
        Files.write(f, b.array());
    }

    static Path model(Path dir, long seed, int change) throws Exception {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), "{\"hidden_size\": 256}");
        weights(dir.resolve("model.safetensors"), seed, 3_000_000);
        if (change >= 0) {
            byte[] all = Files.readAllBytes(dir.resolve("model.safetensors"));
            all[change] ^= 1;
            Files.write(dir.resolve("model.safetensors"), all);
        }
        return dir;
    }

    @Test
    void theCheckpointFingerprintSeesTheWeightsNotOnlyTheConfig() throws Exception {
        Path a = model(tmp.resolve("a"), 1, -1);
        Path sameAsA = model(tmp.resolve("a2"), 1, -1);
        Path otherSeed = model(tmp.resolve("b"), 2, -1);
        Path lastBlock = model(tmp.resolve("c"), 1, 3_000_000);
        assertEquals(Fingerprint.model(a), Fingerprint.model(otherSeed), "same config");
        assertEquals(Fingerprint.checkpoint(a), Fingerprint.checkpoint(sameAsA));
        assertNotEquals(Fingerprint.checkpoint(a), Fingerprint.checkpoint(otherSeed));
        assertNotEquals(Fingerprint.checkpoint(a), Fingerprint.checkpoint(lastBlock), "a change in the last 64 KiB");
        assertTrue(Fingerprint.checkpoint(a).startsWith("sha256:"));
        Path noWeights = tmp.resolve("router");
        Files.createDirectories(noWeights);
        Files.writeString(noWeights.resolve("config.json"), "{\"hidden_size\": 256}");
        assertEquals(Fingerprint.model(a), Fingerprint.checkpoint(noWeights), "without weights: the config's");
    }
}
