package io.epserve.cluster;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * Model fingerprints exchanged in {@code Hello} messages, so that workers serving different models refuse to exchange
 * activations.
 *
 * <ul>
 *   <li>model fingerprint: {@code "sha256:" + hex(sha256(config.json bytes))} — what an attention worker sends;
 *   <li>expert worker fingerprint: the model fingerprint, then {@code ";experts="} and the canonical placement
 *       ({@link Placement#canonical()}, e.g. {@code *:0-3} or {@code 0:0-1;1:2-3}) — what an expert worker answers.
 * </ul>
 *
 * A peer matches when its fingerprint's model part (the text before the first ';') equals ours.
 */
public final class Fingerprint {
    private Fingerprint() {
    }

    /** The model fingerprint of a model directory (hash of its config.json). */
    public static String model(Path modelDir) {
        Path config = Files.isDirectory(modelDir) ? modelDir.resolve("config.json") : modelDir;
        try {
            return of(Files.readAllBytes(config));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + config, e);
        }
    }

    /** The model fingerprint of config.json bytes. */
    public static String of(byte[] configJson) {
        try {
            return "sha256:" + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(configJson));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 unavailable", e);
        }
    }

    /** An expert worker's fingerprint: the model's and the experts it serves. */
    public static String expertWorker(String model, Placement placement) {
        return model + ";experts=" + placement.canonical();
    }

    /** The model part of a fingerprint (up to the first ';'). */
    public static String modelPart(String fingerprint) {
        int semi = fingerprint.indexOf(';');
        return semi < 0 ? fingerprint : fingerprint.substring(0, semi);
    }
}
