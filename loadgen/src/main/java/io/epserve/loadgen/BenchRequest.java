package io.epserve.loadgen;

import io.epserve.proto.v1.ChatRequest;
import io.epserve.proto.v1.GenerateRequest;

/**
 * One request of a workload: a Generate or a Chat call of the public API, with what the dataset knows of its size.
 *
 * @param promptLen prompt tokens as the dataset counted them, or -1 when only the server can tell (chat templates)
 * @param expectedOutputLen the max_tokens asked for
 */
public record BenchRequest(GenerateRequest generate, ChatRequest chat, int promptLen, int expectedOutputLen) {
    public BenchRequest {
        if ((generate == null) == (chat == null)) {
            throw new IllegalArgumentException("a request is either a Generate or a Chat call");
        }
    }

    public static BenchRequest generate(GenerateRequest r, int promptLen) {
        return new BenchRequest(r, null, promptLen, r.getSampling().getMaxTokens());
    }

    public static BenchRequest chat(ChatRequest r) {
        return new BenchRequest(null, r, -1, r.getSampling().getMaxTokens());
    }

    public boolean isChat() {
        return chat != null;
    }
}
