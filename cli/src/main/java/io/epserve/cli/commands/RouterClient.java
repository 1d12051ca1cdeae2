package io.epserve.cli.commands;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import io.epserve.proto.v1.GenerateRequest;
import io.epserve.proto.v1.GenerateResponse;
import io.epserve.proto.v1.InferenceGrpc;
import io.epserve.proto.v1.SamplingParams;
import io.epserve.proto.v1.TokenIds;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import java.io.PrintStream;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** The command-line client of a router's epserve.v1 API. */
final class RouterClient {
    private RouterClient() {
    }

    static int generate(String target, String text, int[] tokens, int maxTokens, double temperature, double topP,
                        long seed, List<String> stop, boolean json, long timeoutSeconds, PrintStream out) {
        if (maxTokens <= 0) {
            return CliErrors.usage("--max-tokens must be > 0 with --target");
        }
        GenerateRequest.Builder req = GenerateRequest.newBuilder().setSampling(SamplingParams.newBuilder()
                .setMaxTokens(maxTokens).setTemperature((float) temperature).setTopP((float) topP).setSeed(seed)
                .addAllStop(stop));
        if (tokens != null) {
            TokenIds.Builder ids = TokenIds.newBuilder();
            for (int t : tokens) {
                ids.addIds(t);
            }
            req.setTokenIds(ids);
        } else {
            req.setText(text);
        }
        ManagedChannel ch = ManagedChannelBuilder.forTarget(target).usePlaintext().build();
        JsonFormat.Printer printer = JsonFormat.printer().omittingInsignificantWhitespace();
        try {
            Iterator<GenerateResponse> it = InferenceGrpc.newBlockingStub(ch)
                    .withDeadlineAfter(timeoutSeconds, TimeUnit.SECONDS).generate(req.build());
            while (it.hasNext()) {
                GenerateResponse r = it.next();
                if (json) {
                    out.println(printer.print(r));
                } else if (r.hasDelta()) {
                    out.print(r.getDelta().getText());
                } else {
                    var f = r.getFinal();
                    out.println();
                    System.err.printf("[%d prompt tokens, %d generated, finish=%s, time to first token %.1f ms, %.2f tokens/s]%n",
                            f.getUsage().getPromptTokens(), f.getUsage().getCompletionTokens(),
                            f.getFinishReason().name().toLowerCase(java.util.Locale.ROOT),
                            f.getUsage().getTimeToFirstTokenSeconds() * 1e3, f.getUsage().getTokensPerSecond());
                }
            }
            return 0;
        } catch (StatusRuntimeException e) {
            System.err.println("epserve generate: " + e.getStatus().getCode() + ": " + e.getStatus().getDescription());
            return e.getStatus().getCode() == io.grpc.Status.Code.INVALID_ARGUMENT ? CliErrors.BAD_INPUT : 1;
        } catch (InvalidProtocolBufferException e) {
            System.err.println("epserve generate: " + e.getMessage());
            return 1;
        } finally {
            ch.shutdownNow();
        }
    }
}
