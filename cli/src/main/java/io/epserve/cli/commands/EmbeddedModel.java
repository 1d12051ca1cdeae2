package io.epserve.cli.commands;

import io.epserve.model.checkpoint.Preset;
import io.epserve.model.checkpoint.RandomCheckpoint;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * The embedded default model: a random-weight `tiny` checkpoint made on first use in the user's cache directory, so
 * that a new user can run everything without a download. Concurrent first uses build in private temporary
 * directories and the first to finish wins an atomic rename.
 */
public final class EmbeddedModel {
    /** Bump when the generator's output changes, so stale caches are not reused. */
    static final String NAME = "tiny-seed1-v1";
    static final long SEED = 1;
    private static final String DONE = ".complete";

    private EmbeddedModel() {}

    /** -Depserve.cache.dir, else $EPSERVE_CACHE_DIR, else $XDG_CACHE_HOME/epserve, else ~/.cache/epserve. */
    public static Path cacheDir() {
        String explicit = System.getProperty("epserve.cache.dir", System.getenv("EPSERVE_CACHE_DIR"));
        if (explicit != null && !explicit.isBlank()) {
            return Path.of(explicit);
        }
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return base.resolve("epserve");
    }

    public static Path ensure(PrintStream log) {
        Path dir = cacheDir().resolve("models").resolve(NAME);
        if (Files.isRegularFile(dir.resolve(DONE))) {
            return dir;
        }
        try {
            Files.createDirectories(dir.getParent());
            Path tmp = Files.createTempDirectory(dir.getParent(), NAME + ".tmp");
            try {
                log.println("epserve: making the embedded default model (random-weight tiny checkpoint) in " + dir);
                RandomCheckpoint.write(tmp, RandomCheckpoint.Options.of(Preset.TINY, SEED), s -> {});
                Files.writeString(tmp.resolve(DONE), "epserve make-checkpoint --preset tiny --seed " + SEED + "\n");
                try {
                    Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
                } catch (FileAlreadyExistsException | AtomicMoveNotSupportedException e) {
                    if (!Files.isRegularFile(dir.resolve(DONE))) {
                        deleteTree(dir); // a half-written directory from an older, interrupted run
                        Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
                    }
                } catch (java.nio.file.DirectoryNotEmptyException e) {
                    if (!Files.isRegularFile(dir.resolve(DONE))) {
                        throw e;
                    }
                }
            } finally {
                deleteTree(tmp);
            }
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        }
    }
}
