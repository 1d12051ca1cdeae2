package io.epserve.cli.commands;

import io.epserve.model.checkpoint.Preset;
import io.epserve.model.checkpoint.RandomCheckpoint;
import io.epserve.model.safetensors.Checkpoint;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;
import picocli.CommandLine.TypeConversionException;

@Command(
        name = "make-checkpoint",
        mixinStandardHelpOptions = true,
        description = {
            "Write a random-weight DeepSeek-V4 checkpoint (tiny or small) in the official Hugging Face layout.",
            "",
            "The directory gets config.json, model.safetensors (FP8 linears with E8M0 block scales, FP4 routed experts,"
                    + " BF16/F32 rest, MTP block) and a byte-level tokenizer. Weights are scaled so activations stay"
                    + " healthy through every layer, and the router biases are balanced on calibration tokens run"
                    + " through the exact engine.",
            "Presets: tiny = the golden test model (7 MB); small = the benchmark model (hidden 1024, 8 layers, 64 experts,"
                    + " ~0.6 GB). The same preset and seed always give the same bytes."
        })
public final class MakeCheckpointCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--preset", required = true, paramLabel = "NAME", converter = PresetConverter.class,
            description = "Model to generate: tiny or small.")
    Preset preset;

    @Option(names = "--seed", defaultValue = "1", paramLabel = "N", description = "Random seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output model directory (created if missing).")
    Path out;

    @Option(names = "--shard-size", paramLabel = "BYTES", converter = SizeConverter.class,
            description = "Split the tensors into shards of at most BYTES each (e.g. 100000000, 200M, 1G) plus"
                    + " model.safetensors.index.json. Default: one model.safetensors.")
    Long shardSize;

    @Option(names = "--calibration-tokens", paramLabel = "N",
            description = "Calibration tokens for balancing the router biases (default: 256 for tiny, 128 for small;"
                    + " 0 leaves the biases at zero).")
    Integer calibrationTokens;

    @Option(names = "--force", description = "Write into a non-empty DIR, replacing its model files.")
    boolean force;

    @Override
    public Integer call() {
        PrintWriter o = spec.commandLine().getOut();
        if (shardSize != null && shardSize <= 0) {
            throw new ParameterException(spec.commandLine(), "--shard-size must be positive, got " + shardSize);
        }
        if (calibrationTokens != null && (calibrationTokens < 0 || calibrationTokens > 4096)) {
            throw new ParameterException(spec.commandLine(), "--calibration-tokens must be in [0, 4096], got "
                    + calibrationTokens);
        }
        if (Files.exists(out) && !Files.isDirectory(out)) {
            throw new ParameterException(spec.commandLine(), "--out " + out + " exists and is not a directory");
        }
        if (!force && isNonEmptyDirectory(out)) {
            throw new ParameterException(spec.commandLine(), "refusing to write into the non-empty directory " + out
                    + " (use --force to replace its model files)");
        }
        try {
            if (force) {
                removeModelFiles(out);
            }
            RandomCheckpoint.Options opts = RandomCheckpoint.Options.of(preset, seed)
                    .withShardSize(shardSize == null ? 0 : shardSize);
            if (calibrationTokens != null) {
                opts = opts.withCalibrationTokens(calibrationTokens);
            }
            o.printf("generating %s checkpoint (seed %d) into %s%n", preset.id(), seed, out);
            o.flush();
            RandomCheckpoint.Summary s = RandomCheckpoint.write(out, opts, line -> {
                o.println("  " + line);
                o.flush();
            });
            var c = s.config();
            o.printf("wrote %s: %d tensors, %,d tensor bytes in %d file(s)%s%n", out, s.tensorCount(), s.tensorBytes(),
                    s.files().size(), s.files().size() > 1 ? " + " + Checkpoint.INDEX : "");
            int blocks = c.nLayers() + c.nMtpLayers();
            o.printf("FP4 routed-expert weights: %,d bytes (%.1f MiB; %d blocks x %d experts x 3 matrices) + %,d bytes"
                            + " of E8M0 scales%n", s.fp4ExpertBytes(), s.fp4ExpertBytes() / (double) (1 << 20), blocks,
                    c.nRoutedExperts(), s.fp4ExpertScaleBytes());
            if (!s.expertCounts().isEmpty()) {
                int min = Integer.MAX_VALUE;
                int max = 0;
                for (int[] counts : s.expertCounts().values()) {
                    for (int v : counts) {
                        min = Math.min(min, v);
                        max = Math.max(max, v);
                    }
                }
                o.printf("router biases of %d blocks balanced on %d calibration tokens (assignments per expert %d..%d)%n",
                        s.expertCounts().size(), opts.calibrationTokens(), min, max);
            } else {
                o.println("router biases left at zero (no calibration)");
            }
            o.printf("files: %s%n", s.files().stream().map(p -> p.getFileName().toString()).collect(Collectors.joining(", "))
                    + ", config.json, tokenizer.json, tokenizer_config.json");
            o.printf("took %.1f s (generate %.1f s, calibrate %.1f s)%n", (s.generateMillis() + s.calibrateMillis()) / 1e3,
                    s.generateMillis() / 1e3, s.calibrateMillis() / 1e3);
            o.flush();
            return 0;
        } catch (IOException e) {
            PrintWriter err = spec.commandLine().getErr();
            err.println("epserve make-checkpoint: cannot write " + out + ": " + e.getMessage());
            err.flush();
            return 1;
        }
    }

    private static boolean isNonEmptyDirectory(Path dir) {
        if (!Files.isDirectory(dir)) {
            return false;
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            return ds.iterator().hasNext();
        } catch (IOException e) {
            return true;
        }
    }

    /** The files a model directory of ours consists of (stale shards or an old index would shadow the new files). */
    private static void removeModelFiles(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return;
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            for (Path p : ds) {
                String n = p.getFileName().toString();
                boolean ours = (n.startsWith("model") && n.endsWith(".safetensors")) || n.equals(Checkpoint.INDEX)
                        || n.equals("config.json") || n.equals("tokenizer.json") || n.equals("tokenizer_config.json");
                if (ours && Files.isRegularFile(p)) {
                    Files.delete(p);
                }
            }
        }
    }

    static final class PresetConverter implements ITypeConverter<Preset> {
        @Override
        public Preset convert(String value) {
            Preset p = Preset.parse(value);
            if (p == null) {
                throw new TypeConversionException("unknown preset '" + value + "' (choose one of: "
                        + Arrays.stream(Preset.values()).map(Preset::id).collect(Collectors.joining(", ")) + ")");
            }
            return p;
        }
    }

    /** Bytes with an optional binary suffix: 123, 64K, 200M, 1G (K = 1024). */
    static final class SizeConverter implements ITypeConverter<Long> {
        private static final Map<String, Long> UNITS = Map.of("", 1L, "K", 1L << 10, "KB", 1L << 10, "KIB", 1L << 10,
                "M", 1L << 20, "MB", 1L << 20, "MIB", 1L << 20, "G", 1L << 30, "GB", 1L << 30, "GIB", 1L << 30);

        @Override
        public Long convert(String value) {
            String v = value.trim().toUpperCase(Locale.ROOT);
            int i = 0;
            while (i < v.length() && Character.isDigit(v.charAt(i))) {
                i++;
            }
            Long unit = UNITS.get(v.substring(i));
            if (i == 0 || unit == null) {
                throw new TypeConversionException("'" + value + "' is not a size in bytes (e.g. 100000000, 200M, 1G)");
            }
            try {
                return Math.multiplyExact(Long.parseLong(v.substring(0, i)), unit);
            } catch (NumberFormatException | ArithmeticException e) {
                throw new TypeConversionException("'" + value + "' is too large");
            }
        }
    }
}
