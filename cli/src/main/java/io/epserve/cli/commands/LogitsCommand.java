package io.epserve.cli.commands;

import io.epserve.model.engine.LocalModel;
import io.epserve.model.engine.SequenceCache;
import io.epserve.model.engine.Transformer;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "logits", mixinStandardHelpOptions = true,
        description = "Runs the single-process engine over a token sequence and writes the float32 little-endian"
                + " logits of every position, row-major [T, vocab].")
public final class LogitsCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "Model directory (config.json, safetensors).")
    Path model;

    @Option(names = "--tokens", required = true, split = ",", description = "Token ids, comma-separated.")
    int[] tokens;

    @Option(names = "--mode", defaultValue = "prefill",
            description = "prefill (one pass), decode (one token per step) or chunked:N (chunks of N). Default: ${DEFAULT-VALUE}.")
    String mode;

    @Option(names = "--kernels", defaultValue = "exact", description = "exact or fast. Default: ${DEFAULT-VALUE}.")
    String kernels;

    @Option(names = "--threads", description = "Compute threads for the fast kernels (default: available cores).")
    Integer threads;

    @Option(names = "--out", required = true, description = "Output file.")
    Path out;

    @Override
    public Integer call() {
        int chunk;
        try {
            chunk = chunkSize(mode);
        } catch (IllegalArgumentException e) {
            return CliErrors.usage(e.getMessage());
        }
        if (tokens.length == 0) {
            return CliErrors.usage("--tokens is empty");
        }
        try (LocalModel m = CliErrors.openModel(model, kernels, threads)) {
            int vocab = m.config().vocabSize();
            for (int t : tokens) {
                if (t < 0 || t >= vocab) {
                    return CliErrors.usage("token id " + t + " is outside the vocabulary [0, " + vocab + ")");
                }
            }
            if (tokens.length > m.contextLimit()) {
                return CliErrors.usage(tokens.length + " tokens exceed the model's context of " + m.contextLimit());
            }
            Transformer tr = m.transformer();
            SequenceCache seq = tr.newSequence(m.contextLimit());
            Path parent = out.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            try (OutputStream os = new BufferedOutputStream(Files.newOutputStream(out), 1 << 16)) {
                ByteBuffer buf = ByteBuffer.allocate(4 * vocab).order(ByteOrder.LITTLE_ENDIAN);
                for (int pos = 0; pos < tokens.length; ) {
                    int n = Math.min(chunk, tokens.length - pos);
                    Transformer.Output o = tr.forward(List.of(new Transformer.Chunk(seq, Arrays.copyOfRange(tokens, pos, pos + n))), true);
                    for (int r = 0; r < n; r++) {
                        buf.clear();
                        buf.asFloatBuffer().put(o.logits(), r * vocab, vocab);
                        os.write(buf.array());
                    }
                    pos += n;
                }
            }
            System.err.printf("wrote %d x %d logits (%s, %s kernels) to %s%n", tokens.length, vocab, mode, kernels, out);
            return 0;
        } catch (CliErrors.Failure f) {
            return f.exitCode;
        } catch (IOException e) {
            return CliErrors.usage("cannot write " + out + ": " + e.getMessage());
        }
    }

    /** Tokens per step for a --mode: prefill (all at once), decode (1) or chunked:N. */
    static int chunkSize(String mode) {
        if (mode.equals("prefill")) {
            return Integer.MAX_VALUE;
        }
        if (mode.equals("decode")) {
            return 1;
        }
        if (mode.startsWith("chunked:")) {
            int chunk;
            try {
                chunk = Integer.parseInt(mode.substring("chunked:".length()));
            } catch (NumberFormatException e) {
                chunk = -1;
            }
            if (chunk <= 0) {
                throw new IllegalArgumentException("--mode chunked:N needs a positive N, got '" + mode + "'");
            }
            return chunk;
        }
        throw new IllegalArgumentException("--mode must be prefill, decode or chunked:N, got '" + mode + "'");
    }
}
