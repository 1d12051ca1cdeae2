package io.epserve.cli.commands;

import io.epserve.cli.cluster.LocalCluster;
import io.epserve.model.config.ConfigException;
import io.epserve.model.config.ModelConfig;
import io.epserve.proto.worker.v1.AttentionWorkerGrpc;
import io.epserve.proto.worker.v1.Chunk;
import io.epserve.proto.worker.v1.ForwardRequest;
import io.epserve.proto.worker.v1.ForwardResponse;
import io.grpc.StatusRuntimeException;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "cluster-logits", mixinStandardHelpOptions = true,
        description = "Starts a local cluster of real processes (expert workers with the routed experts split between"
                + " them, and one attention worker), runs a token sequence through it, writes the logits exactly like"
                + " `logits` (float32 little-endian, [T, vocab]) and stops the cluster.")
public final class ClusterLogitsCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "Model directory (config.json, safetensors).")
    Path model;

    @Option(names = "--tokens", required = true, split = ",", description = "Token ids, comma-separated.")
    int[] tokens;

    @Option(names = "--mode", defaultValue = "prefill",
            description = "prefill (one pass), decode (one token per step) or chunked:N (chunks of N). Default: ${DEFAULT-VALUE}.")
    String mode;

    @Option(names = "--kernels", defaultValue = "exact", description = "exact or fast. Default: ${DEFAULT-VALUE}.")
    String kernels;

    @Option(names = "--threads", description = "Compute threads of each worker's fast kernels (default: available cores).")
    Integer threads;

    @Option(names = "--expert-workers", defaultValue = "2", paramLabel = "N",
            description = "Expert worker processes (routed experts split into contiguous ranges). Default: ${DEFAULT-VALUE}.")
    int expertWorkers;

    @Option(names = "--micro-batches", defaultValue = "1", paramLabel = "M",
            description = "The attention worker's micro-batches (1..4). Default: ${DEFAULT-VALUE}.")
    int microBatches;

    @Option(names = "--log-dir", description = "Where the workers' logs go (default: a new temporary directory).")
    Path logDir;

    @Option(names = "--out", required = true, description = "Output file.")
    Path out;

    @Override
    public Integer call() {
        int chunk;
        try {
            chunk = LogitsCommand.chunkSize(mode);
        } catch (IllegalArgumentException e) {
            return CliErrors.usage(e.getMessage());
        }
        if (tokens.length == 0) {
            return CliErrors.usage("--tokens is empty");
        }
        if (microBatches < 1 || microBatches > 4) {
            return CliErrors.usage("--micro-batches must be 1..4, got " + microBatches);
        }
        ModelConfig c;
        try {
            c = ModelConfig.load(model);
        } catch (ConfigException | IllegalArgumentException e) {
            return CliErrors.usage("cannot use model " + model + ": " + e.getMessage());
        }
        int vocab = c.vocabSize();
        for (int t : tokens) {
            if (t < 0 || t >= vocab) {
                return CliErrors.usage("token id " + t + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
        if (tokens.length > c.maxPositionEmbeddings()) {
            return CliErrors.usage(tokens.length + " tokens exceed the model's context of " + c.maxPositionEmbeddings());
        }
        if (expertWorkers < 1 || expertWorkers > c.nRoutedExperts()) {
            return CliErrors.usage("--expert-workers must be in 1.." + c.nRoutedExperts() + ", got " + expertWorkers);
        }
        LocalCluster.Options o = LocalCluster.options().model(model).expertWorkers(expertWorkers)
                .microBatches(microBatches).kernels(kernels).attentionThreads(threads).expertThreads(threads)
                .logDir(logDir);
        try (LocalCluster cluster = LocalCluster.start(o)) {
            System.err.println("cluster up: " + cluster.expertWorkers().size() + " expert workers, 1 attention worker"
                    + " (logs in " + cluster.attentionWorkers().get(0).log.getParent() + ")");
            var stub = AttentionWorkerGrpc.newBlockingStub(cluster.channel(0));
            Path parent = out.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            try (OutputStream os = new BufferedOutputStream(Files.newOutputStream(out), 1 << 16)) {
                for (int pos = 0; pos < tokens.length; ) {
                    int n = Math.min(chunk, tokens.length - pos);
                    Chunk.Builder ch = Chunk.newBuilder().setSequenceId("cluster-logits");
                    for (int i = pos; i < pos + n; i++) {
                        ch.addTokens(tokens[i]);
                    }
                    ForwardResponse r = stub.withDeadlineAfter(10, TimeUnit.MINUTES)
                            .forward(ForwardRequest.newBuilder().addChunks(ch).setAllLogits(true).build());
                    r.getLogits(0).getValues().writeTo(os);
                    pos += n;
                }
            }
            System.err.printf("wrote %d x %d logits (%s, %s kernels, %d expert workers, %d micro-batch%s) to %s%n",
                    tokens.length, vocab, mode, kernels, expertWorkers, microBatches, microBatches == 1 ? "" : "es", out);
            return 0;
        } catch (StatusRuntimeException e) {
            if (LocalCluster.closedByShutdown()) {
                System.err.println("epserve cluster-logits: stopped (this process is shutting down; its cluster was closed)");
                return 1;
            }
            System.err.println("epserve cluster-logits: the attention worker failed: " + e.getStatus());
            return 1;
        } catch (IllegalStateException e) {
            System.err.println("epserve cluster-logits: " + e.getMessage());
            return 1;
        } catch (IOException e) {
            return CliErrors.usage("cannot write " + out + " or start the cluster: " + e.getMessage());
        }
    }
}
