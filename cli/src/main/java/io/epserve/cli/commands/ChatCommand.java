package io.epserve.cli.commands;

import com.google.protobuf.util.JsonFormat;
import io.epserve.proto.v1.ChatMessage;
import io.epserve.proto.v1.ChatRequest;
import io.epserve.proto.v1.ChatResponse;
import io.epserve.proto.v1.InferenceGrpc;
import io.epserve.proto.v1.SamplingParams;
import io.epserve.proto.v1.ThinkingMode;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Iterator;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "chat", mixinStandardHelpOptions = true,
        description = "Asks a running router (epserve.v1 Chat) one user message and streams the answer: reasoning to"
                + " stderr, content to stdout, tool calls at the end. --json prints every streamed message as one JSON"
                + " line (token ids included).")
public final class ChatCommand implements Callable<Integer> {
    @Option(names = "--target", defaultValue = "127.0.0.1:50051", paramLabel = "HOST:PORT",
            description = "The router (what `epserve up` serves). Default: ${DEFAULT-VALUE}.")
    String target;

    @Option(names = "--thinking", defaultValue = "chat", description = "chat, thinking or max. Default: ${DEFAULT-VALUE}.")
    String thinking;

    @Option(names = "--system", description = "A system message first.")
    String system;

    @Option(names = "--max-tokens", defaultValue = "256", description = "Default: ${DEFAULT-VALUE}.")
    int maxTokens;

    @Option(names = "--temperature", defaultValue = "0.6", description = "0 = greedy. Default: ${DEFAULT-VALUE}.")
    double temperature;

    @Option(names = "--seed", description = "Sampling seed.")
    Long seed;

    @Option(names = "--json", description = "Print each streamed message as one JSON line.")
    boolean json;

    @Option(names = "--timeout-s", defaultValue = "600", description = "The call's deadline. Default: ${DEFAULT-VALUE}.")
    long timeoutSeconds;

    @Parameters(index = "0", paramLabel = "TEXT", description = "The user message.")
    String text;

    @Override
    public Integer call() throws Exception {
        ThinkingMode mode = switch (thinking) {
            case "chat" -> ThinkingMode.CHAT;
            case "thinking" -> ThinkingMode.THINKING;
            case "max" -> ThinkingMode.MAX;
            default -> null;
        };
        if (mode == null) {
            return CliErrors.usage("--thinking must be chat, thinking or max, got '" + thinking + "'");
        }
        if (maxTokens <= 0) {
            return CliErrors.usage("--max-tokens must be > 0");
        }
        SamplingParams.Builder sp = SamplingParams.newBuilder().setMaxTokens(maxTokens).setTemperature((float) temperature);
        if (seed != null) {
            sp.setSeed(seed);
        }
        ChatRequest.Builder req = ChatRequest.newBuilder().setThinking(mode).setSampling(sp);
        if (system != null) {
            req.addMessages(ChatMessage.newBuilder().setRole("system").setContent(system));
        }
        req.addMessages(ChatMessage.newBuilder().setRole("user").setContent(text));
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        ManagedChannel ch = ManagedChannelBuilder.forTarget(target).usePlaintext().build();
        JsonFormat.Printer printer = JsonFormat.printer().omittingInsignificantWhitespace();
        try {
            Iterator<ChatResponse> it = InferenceGrpc.newBlockingStub(ch).withDeadlineAfter(timeoutSeconds, TimeUnit.SECONDS)
                    .chat(req.build());
            while (it.hasNext()) {
                ChatResponse r = it.next();
                if (json) {
                    out.println(printer.print(r));
                } else if (r.hasDelta()) {
                    System.err.print(r.getDelta().getReasoning());
                    out.print(r.getDelta().getContent());
                } else {
                    var f = r.getFinal();
                    out.println();
                    for (var c : f.getMessage().getToolCallsList()) {
                        out.println("tool call " + c.getId() + ": " + c.getName() + " " + c.getArguments());
                    }
                    System.err.printf("[%d prompt tokens, %d generated, finish=%s%s]%n", f.getUsage().getPromptTokens(),
                            f.getUsage().getCompletionTokens(), f.getFinishReason().name().toLowerCase(Locale.ROOT),
                            f.getMalformed() ? ", malformed tool markup returned as text" : "");
                }
            }
            return 0;
        } catch (StatusRuntimeException e) {
            System.err.println("epserve chat: " + e.getStatus().getCode() + ": " + e.getStatus().getDescription());
            return e.getStatus().getCode() == io.grpc.Status.Code.INVALID_ARGUMENT ? CliErrors.BAD_INPUT : 1;
        } finally {
            ch.shutdownNow();
        }
    }
}
