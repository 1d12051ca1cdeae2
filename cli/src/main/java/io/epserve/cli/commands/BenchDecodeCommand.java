package io.epserve.cli.commands;

import io.epserve.model.engine.LocalModel;
import io.epserve.model.engine.Sampler;
import io.epserve.model.engine.SequenceCache;
import io.epserve.model.engine.Transformer;
import io.epserve.model.kernel.MemoryBandwidth;
import io.epserve.model.safetensors.TensorInfo;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "bench-decode", mixinStandardHelpOptions = true,
        description = "Measures decode tokens/s of the single-process engine for a batch of sequences, and the"
                + " fraction of memory bandwidth it achieves (weight bytes touched per step / step time /"
                + " measured read bandwidth).")
public final class BenchDecodeCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "Model directory.")
    Path model;

    @Option(names = "--batch", defaultValue = "1", description = "Sequences decoded together. Default: ${DEFAULT-VALUE}.")
    int batch;

    @Option(names = "--tokens", defaultValue = "32", description = "Decode steps measured. Default: ${DEFAULT-VALUE}.")
    int tokens;

    @Option(names = "--prompt-tokens", defaultValue = "16", description = "Prompt length of each sequence. Default: ${DEFAULT-VALUE}.")
    int promptTokens;

    // 4 left C2 still compiling the kernels in the measured window: batch 16 on small read 71.7 tokens/s after 4 and
    // 81.8 after 32 (same build, same minute).
    @Option(names = "--warmup", defaultValue = "24", description = "Unmeasured decode steps first (the JIT compiler"
            + " settles). Default: ${DEFAULT-VALUE}.")
    int warmup;

    @Option(names = "--kernels", defaultValue = "fast", description = "exact or fast. Default: ${DEFAULT-VALUE}.")
    String kernels;

    @Option(names = "--threads", description = "Compute threads (default: available cores).")
    Integer threads;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the random prompts. Default: ${DEFAULT-VALUE}.")
    long seed;

    @Override
    public Integer call() {
        if (batch < 1 || tokens < 1 || promptTokens < 1 || warmup < 0) {
            return CliErrors.usage("--batch, --tokens and --prompt-tokens must be >= 1, --warmup >= 0");
        }
        int nThreads = CliErrors.threads(threads);
        double achieved;
        try (LocalModel m = CliErrors.openModel(model, kernels, threads)) {
            if (promptTokens + warmup + tokens > m.contextLimit()) {
                return CliErrors.usage("prompt + warm-up + measured tokens exceed the context of " + m.contextLimit());
            }
            Transformer tr = m.transformer();
            int vocab = m.config().vocabSize();
            List<SequenceCache> seqs = new ArrayList<>();
            List<Transformer.Chunk> prefill = new ArrayList<>();
            for (int[] p : BenchClusterCommand.prompts(m.config(), batch, promptTokens, seed)) {
                SequenceCache s = tr.newSequence(m.contextLimit());
                seqs.add(s);
                prefill.add(new Transformer.Chunk(s, p));
            }
            float[] logits = tr.forward(prefill, false, false).logits();
            int[] next = new int[batch];
            long denseBytes = denseWeightBytes(m);
            long stepBytes = 0;
            long start = 0;
            for (int step = 0; step < warmup + tokens; step++) {
                if (step == warmup) {
                    tr.resetRoutedExpertBytes();
                    start = System.nanoTime();
                }
                List<Transformer.Chunk> chunks = new ArrayList<>(batch);
                for (int b = 0; b < batch; b++) {
                    next[b] = Sampler.argmax(logits, b * vocab, vocab);
                    chunks.add(new Transformer.Chunk(seqs.get(b), new int[] {next[b]}));
                }
                logits = tr.forward(chunks, false, false).logits();
            }
            long elapsed = System.nanoTime() - start;
            double stepSeconds = elapsed / 1e9 / tokens;
            double tokPerSec = batch * tokens / (elapsed / 1e9);
            double bytesPerStep = denseBytes + (double) tr.routedExpertBytes() / tokens;
            System.out.printf("model %s, %s kernels, %d threads, %s, batch %d, prompt %d, %d decode steps%n",
                    model, kernels, nThreads, m.checkpoint().memoryDescription(), batch, promptTokens, tokens);
            System.out.printf("decode: %.2f tokens/s (%.2f ms per step)%n", tokPerSec, stepSeconds * 1e3);
            System.out.printf("weights touched per step: %.1f MB (%.1f MB dense + %.1f MB routed experts)%n",
                    bytesPerStep / 1e6, denseBytes / 1e6, (bytesPerStep - denseBytes) / 1e6);
            achieved = bytesPerStep / stepSeconds;
        } catch (CliErrors.Failure f) {
            return f.exitCode;
        }
        // Measured after the model's compute threads are gone, so nothing else competes for the memory bus.
        double bw = MemoryBandwidth.measureReadBytesPerSecond(nThreads);
        System.out.printf("weight bandwidth: %.2f GB/s of %.2f GB/s measured read bandwidth = %.1f%%%n",
                achieved / 1e9, bw / 1e9, 100 * achieved / bw);
        return 0;
    }

    /** Bytes of every weight a decode step reads except the routed experts (counted as used) and MTP. */
    static long denseWeightBytes(LocalModel m) {
        long bytes = 0;
        for (TensorInfo t : m.checkpoint().tensors().values()) {
            String n = t.name();
            if (n.contains(".ffn.experts.") || n.startsWith("mtp.") || n.equals("embed.weight")) {
                continue;
            }
            bytes += t.data().byteSize();
        }
        return bytes;
    }
}
