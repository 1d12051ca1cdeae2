package io.epserve.cli.commands;

import io.epserve.model.engine.LocalModel;
import io.epserve.model.engine.Sampler;
import io.epserve.model.engine.SequenceCache;
import io.epserve.model.engine.Transformer;
import io.epserve.model.text.Tokenizer;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "generate", mixinStandardHelpOptions = true,
        description = {
            "Streams a completion from the single-process engine. Without --model it uses the embedded default (a"
                    + " random-weight tiny checkpoint made on first use).",
            "With --target HOST:PORT it is a client of a running router (epserve.v1 Generate) instead: the prompt text"
                    + " is sent as is, --json prints every streamed message as one JSON line (token ids included)."
        })
public final class GenerateCommand implements Callable<Integer> {
    @Option(names = "--model", description = "Model directory; default: the embedded random-weight tiny model.")
    Path model;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Input input;

    static final class Input {
        @Option(names = "--prompt", description = "Prompt text (special tokens such as <｜User｜> are recognised).")
        String prompt;

        @Option(names = "--tokens", split = ",", description = "Prompt token ids, comma-separated.")
        int[] tokens;
    }

    @Option(names = "--max-tokens", defaultValue = "64", description = "Tokens to generate at most. Default: ${DEFAULT-VALUE}.")
    int maxTokens;

    @Option(names = "--temperature", defaultValue = "0.6",
            description = "Sampling temperature; 0 = greedy. Default: ${DEFAULT-VALUE} (the reference CLI's).")
    double temperature;

    @Option(names = "--top-p", defaultValue = "1.0", description = "Nucleus sampling mass. Default: ${DEFAULT-VALUE}.")
    double topP;

    @Option(names = "--seed", defaultValue = "0", description = "Sampling seed. Default: ${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--kernels", defaultValue = "fast", description = "exact or fast. Default: ${DEFAULT-VALUE}.")
    String kernels;

    @Option(names = "--threads", description = "Compute threads (default: available cores).")
    Integer threads;

    @Option(names = "--no-bos", description = "Do not prepend the BOS token to a --prompt.")
    boolean noBos;

    @Option(names = "--target", paramLabel = "HOST:PORT", description = "A router to ask instead of a local engine.")
    String target;

    @Option(names = "--json", description = "With --target: print each streamed message as one JSON line.")
    boolean json;

    @Option(names = "--stop", description = "With --target: a stop string (repeatable).")
    List<String> stop = new java.util.ArrayList<>();

    @Option(names = "--timeout-s", defaultValue = "600", description = "With --target: the call's deadline. Default: ${DEFAULT-VALUE}.")
    long timeoutSeconds;

    @Override
    public Integer call() {
        if (maxTokens < 0) {
            return CliErrors.usage("--max-tokens must be >= 0");
        }
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        if (target != null) {
            return RouterClient.generate(target, input.prompt, input.tokens, maxTokens, temperature, topP, seed, stop,
                    json, timeoutSeconds, out);
        }
        Path dir = model;
        if (dir == null) {
            try {
                dir = EmbeddedModel.ensure(System.err);
            } catch (RuntimeException e) {
                return CliErrors.usage("cannot prepare the embedded default model: " + e.getMessage());
            }
            System.err.println("note: the embedded default model has random weights, so its text is meaningless;"
                    + " use --model DIR with a real DeepSeek-V4 checkpoint for real answers.");
        }
        Sampler sampler;
        try {
            sampler = new Sampler(temperature, topP, seed);
        } catch (IllegalArgumentException e) {
            return CliErrors.usage(e.getMessage());
        }
        try (LocalModel m = CliErrors.openModel(dir, kernels, threads)) {
            Tokenizer tok;
            try {
                tok = Tokenizer.load(dir);
            } catch (RuntimeException e) {
                return CliErrors.usage("cannot load the tokenizer of " + dir + ": " + e.getMessage());
            }
            int vocab = m.config().vocabSize();
            int[] prompt;
            if (input.tokens != null) {
                prompt = input.tokens;
            } else {
                int[] ids = tok.encode(input.prompt);
                if (noBos) {
                    prompt = ids;
                } else {
                    prompt = new int[ids.length + 1];
                    prompt[0] = m.config().bosTokenId();
                    System.arraycopy(ids, 0, prompt, 1, ids.length);
                }
            }
            if (prompt.length == 0) {
                return CliErrors.usage("the prompt is empty");
            }
            for (int t : prompt) {
                if (t < 0 || t >= vocab) {
                    return CliErrors.usage("token id " + t + " is outside the vocabulary [0, " + vocab + ")");
                }
            }
            int limit = m.contextLimit();
            if (prompt.length >= limit) {
                return CliErrors.usage("the prompt of " + prompt.length + " tokens leaves no room in the context of " + limit);
            }
            Transformer tr = m.transformer();
            SequenceCache seq = tr.newSequence(limit);
            Tokenizer.Stream text = tok.stream(true); // like vLLM's skip_special_tokens default
            long t0 = System.nanoTime();
            float[] logits = tr.forward(List.of(new Transformer.Chunk(seq, prompt)), false, false).logits();
            long firstToken = 0;
            int generated = 0;
            String finish = "length";
            while (generated < maxTokens) {
                int next = sampler.sample(logits, 0, vocab);
                if (generated == 0) {
                    firstToken = System.nanoTime();
                }
                generated++;
                if (next == m.config().eosTokenId()) {
                    finish = "stop";
                    break;
                }
                out.print(text.push(next));
                if (seq.length() + 1 > limit) {
                    finish = "context";
                    break;
                }
                if (generated < maxTokens) {
                    logits = tr.forward(List.of(new Transformer.Chunk(seq, new int[] {next})), false, false).logits();
                }
            }
            out.print(text.flush());
            out.println();
            long end = System.nanoTime();
            double ttft = (firstToken == 0 ? end - t0 : firstToken - t0) / 1e6;
            double decodeSeconds = (end - (firstToken == 0 ? end : firstToken)) / 1e9;
            System.err.printf("[%d prompt tokens, %d generated, finish=%s, time to first token %.1f ms, %.2f tokens/s, %s kernels]%n",
                    prompt.length, generated, finish, ttft, generated > 1 ? (generated - 1) / decodeSeconds : 0.0, kernels);
            return 0;
        } catch (CliErrors.Failure f) {
            return f.exitCode;
        }
    }
}
