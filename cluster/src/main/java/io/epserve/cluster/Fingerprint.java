package io.epserve.cluster;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.StandardOpenOption;
import java.util.HexFormat;
import java.util.List;

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

    /**
     * The fingerprint of a checkpoint: its config.json and, of every {@code *.safetensors} file (by name order), the
     * name, size, header and sampled data (the first and last 64 KiB and 16 blocks of 4 KiB spread between). Two
     * checkpoints with the same config but other weights (another random seed, another fine-tune) differ; reading
     * a few hundred KiB per file keeps it cheap for checkpoints of any size. Workers exchange activations only with
     * workers of the same checkpoint fingerprint. A directory without weights gets its config's fingerprint.
     */
    public static String checkpoint(Path modelDir) {
        if (!Files.isDirectory(modelDir)) {
            return model(modelDir);
        }
        try (var files = Files.list(modelDir)) {
            List<Path> weights = files.filter(f -> f.getFileName().toString().endsWith(".safetensors")).sorted().toList();
            if (weights.isEmpty()) {
                return model(modelDir);
            }
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(Files.readAllBytes(modelDir.resolve("config.json")));
            for (Path f : weights) {
                try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
                    long size = ch.size();
                    md.update((f.getFileName() + "\0" + size + "\0").getBytes(StandardCharsets.UTF_8));
                    ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
                    ch.read(len, 0);
                    long header = size >= 8 ? len.flip().getLong() : 0;
                    long data = 8 + Math.max(0, Math.min(header, size - 8));
                    sample(ch, md, 0, data);
                    long rest = size - data;
                    sample(ch, md, data, Math.min(rest, 65_536));
                    sample(ch, md, Math.max(data, size - 65_536), Math.min(rest, 65_536));
                    for (int i = 1; i <= 16 && rest > 0; i++) {
                        sample(ch, md, data + rest * i / 17, Math.min(4_096, rest));
                    }
                }
            }
            return "sha256:" + HexFormat.of().formatHex(md.digest());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the checkpoint in " + modelDir, e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 unavailable", e);
        }
    }

    private static void sample(FileChannel ch, MessageDigest md, long at, long n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate((int) Math.min(n, 1 << 20));
        long pos = at;
        long left = Math.min(n, 1 << 20);
        while (left > 0) {
            b.clear().limit((int) left);
            int r = ch.read(b, pos);
            if (r <= 0) {
                break;
            }
            md.update(b.array(), 0, r);
            pos += r;
            left -= r;
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
