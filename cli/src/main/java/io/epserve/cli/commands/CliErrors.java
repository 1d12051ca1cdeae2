package io.epserve.cli.commands;

import io.epserve.model.config.ConfigException;
import io.epserve.model.engine.LocalModel;
import io.epserve.model.safetensors.CheckpointException;
import java.nio.file.Path;

/** One way for commands to report bad input: a message on stderr and exit code 2. */
final class CliErrors {
    private CliErrors() {}

    static final int BAD_INPUT = 2;

    static int usage(String message) {
        System.err.println("epserve: " + message);
        return BAD_INPUT;
    }

    /** Thrown to unwind a command after its message was printed. */
    static final class Failure extends RuntimeException {
        final int exitCode;

        Failure(int exitCode) {
            super(null, null, false, false);
            this.exitCode = exitCode;
        }
    }

    static int threads(Integer requested) {
        return requested != null ? requested : Runtime.getRuntime().availableProcessors();
    }

    /** Opens a model, turning every unreadable-model error into a message and exit code 2. */
    static LocalModel openModel(Path dir, String kernels, Integer threads) {
        try {
            return LocalModel.open(dir, kernels, threads(threads));
        } catch (ConfigException | CheckpointException | IllegalArgumentException e) {
            throw new Failure(usage("cannot use model " + dir + ": " + e.getMessage()));
        }
    }
}
