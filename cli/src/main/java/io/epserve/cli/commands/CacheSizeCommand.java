package io.epserve.cli.commands;

import io.epserve.model.config.ConfigException;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.CacheLayout;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "cache-size", mixinStandardHelpOptions = true,
        description = "Reports the per-sequence KV cache of a model in epserve's compact layout (FP8 nope dims with"
                + " E8M0 scales, bf16 rope dims, FP4 indexer keys) beside the reference's bf16 layout.")
public final class CacheSizeCommand implements Callable<Integer> {
    @ArgGroup(exclusive = true, multiplicity = "1")
    Source source;

    static final class Source {
        @Option(names = "--model", description = "A model directory (its config.json).")
        Path model;

        @Option(names = "--config", description = "A config.json file.")
        Path config;

        @Option(names = "--builtin", description = "A shipped config: v4-flash or v4-pro.")
        String builtin;

        /** The config the flags name, and a name for it; a bad config ends the command with exit code 2. */
        Named load() {
            try {
                if (builtin != null) {
                    return new Named(builtin, ModelConfig.builtin(builtin));
                }
                Path p = model != null ? model : config;
                return new Named(p.toString(), ModelConfig.load(p));
            } catch (ConfigException e) {
                throw new CliErrors.Failure(CliErrors.usage(e.getMessage()));
            }
        }
    }

    /** A model config and what to call it in the output. */
    record Named(String name, ModelConfig config) {
    }

    @Option(names = "--tokens", split = ",", defaultValue = "8192,131072,1048576",
            description = "Sequence lengths to size. Default: ${DEFAULT-VALUE}.")
    long[] tokens;

    @Override
    public Integer call() {
        Named named;
        try {
            named = source.load();
        } catch (CliErrors.Failure f) {
            return f.exitCode;
        }
        ModelConfig c = named.config();
        String name = named.name();
        CacheLayout l = CacheLayout.of(c);
        System.out.printf("%s: %d layers, ratios CSA x%d, HCA x%d, window %d%n", name, c.nLayers(),
                count(c, 4), c.nLayers() - count(c, 4) - count(c, 0), c.window());
        System.out.printf("  main KV entry %d B (reference %d B), indexer key %d B (reference %d B)%n",
                l.kvRowBytes(), 2 * c.headDim(), l.keyRowBytes(), 2 * c.indexHeadDim());
        System.out.printf("  growth per token: %.1f B compact vs %.1f B reference bf16 (%.2fx smaller)%n",
                l.bytesPerToken(), l.referenceBytesPerToken(), l.referenceBytesPerToken() / l.bytesPerToken());
        System.out.printf("  fixed per sequence: %.2f MiB (window rings + compressor state; reference %.2f MiB)%n",
                l.fixedBytes() / 1048576.0, l.referenceFixedBytes() / 1048576.0);
        for (long t : tokens) {
            System.out.printf("  %,d tokens: %.3f GiB per sequence%n", t, l.bytesFor(t) / (1L << 30));
        }
        return 0;
    }

    private static int count(ModelConfig c, int ratio) {
        int n = 0;
        for (int i = 0; i < c.nLayers(); i++) {
            if (c.compressRatio(i) == ratio) {
                n++;
            }
        }
        return n;
    }
}
