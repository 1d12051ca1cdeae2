package io.epserve.cli.commands;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.attention.AttentionWorker;
import io.epserve.model.config.ModelConfig;
import io.epserve.proto.worker.v1.AttentionWorkerGrpc;
import io.epserve.proto.worker.v1.GenerateEvent;
import io.epserve.proto.worker.v1.GenerateFinished;
import io.epserve.proto.worker.v1.GenerateRequest;
import io.epserve.proto.worker.v1.GeneratedToken;
import io.epserve.proto.worker.v1.SamplingParams;
import io.grpc.Channel;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Resuming a request on another attention worker: the worker API's resume_tokens (prefilled, but output for max_tokens,
 * penalties, the seeded draws and usage) give exactly the continuation of the uninterrupted request.
 */
class ResumeTest {
    /** Every event of one worker Generate call. */
    record Events(List<GeneratedToken> tokens, GenerateFinished fin, Status status) {
        List<Integer> ids() {
            return tokens.stream().map(GeneratedToken::getTokenId).toList();
        }
    }

    static Events generate(Channel ch, String id, int[] prompt, List<Integer> resume, SamplingParams s) {
        GenerateRequest.Builder b = GenerateRequest.newBuilder().setRequestId(id).setSampling(s)
                .addAllPromptTokens(Arrays.stream(prompt).boxed().toList()).addAllResumeTokens(resume);
        List<GeneratedToken> tokens = new ArrayList<>();
        GenerateFinished fin = null;
        try {
            var it = AttentionWorkerGrpc.newBlockingStub(ch).withDeadlineAfter(2, TimeUnit.MINUTES).generate(b.build());
            while (it.hasNext()) {
                GenerateEvent e = it.next();
                if (e.hasToken()) {
                    tokens.add(e.getToken());
                } else {
                    fin = e.getFinished();
                }
            }
            return new Events(tokens, fin, Status.OK);
        } catch (StatusRuntimeException e) {
            return new Events(tokens, fin, e.getStatus());
        }
    }

    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void aResumedRequestContinuesExactlyAsTheUninterruptedOne() throws Exception {
        int[] golden = EngineCommandsTest.goldenTokens();
        int[] prompt = Arrays.copyOfRange(golden, 0, 20);
        int n = 40;
        // Seeded sampling with every penalty, truncation and logprobs: what the resumed worker must reproduce.
        SamplingParams sampled = SamplingParams.newBuilder().setMaxTokens(n).setIgnoreEos(true).setTemperature(0.9f)
                .setTopP(0.95f).setTopK(100).setMinP(0.01f).setSeed(4242).setRepetitionPenalty(1.2f)
                .setPresencePenalty(0.4f).setFrequencyPenalty(0.3f).setLogprobs(2).build();
        SamplingParams greedy = SamplingParams.newBuilder().setMaxTokens(n).setIgnoreEos(true).build();
        try (var worker = AttentionWorker.start(AttentionWorker.options().model(ClusterTest.TINY).localExperts(true)
                .kernels("exact").threads(1).port(0))) {
            ManagedChannel ch = ManagedChannelBuilder.forAddress("127.0.0.1", worker.port()).usePlaintext().build();
            try {
                for (SamplingParams s : List.of(sampled, greedy)) {
                    Events whole = generate(ch, "whole", prompt, List.of(), s);
                    assertEquals(Status.OK, whole.status());
                    assertEquals(n, whole.tokens().size());
                    assertEquals("length", whole.fin().getReason());
                    assertEquals(n, whole.fin().getCompletionTokens());
                    List<Integer> ids = whole.ids();
                    assertTrue(ids.stream().distinct().count() > 3, "the tokens vary: " + ids);
                    for (int k : new int[] {1, 17, 39}) {
                        Events rest = generate(ch, "resumed-" + k, prompt, ids.subList(0, k), s);
                        assertEquals(Status.OK, rest.status(), "resumed after " + k);
                        // The same tokens, logprobs included (the logits are bit-identical), none repeated.
                        assertEquals(whole.tokens().subList(k, n), rest.tokens(), "resumed after " + k + " tokens");
                        assertEquals("length", rest.fin().getReason());
                        assertEquals(prompt.length, rest.fin().getPromptTokens());
                        assertEquals(n, rest.fin().getCompletionTokens(), "completion tokens count the resumed ones");
                    }
                    // Every token already there: finished at once, nothing streamed.
                    Events all = generate(ch, "all", prompt, ids, s);
                    assertEquals(Status.OK, all.status());
                    assertEquals(List.of(), all.tokens());
                    assertEquals("length", all.fin().getReason());
                    assertEquals(n, all.fin().getCompletionTokens());
                }

                // Stop tokens and EOS in the resume tokens.
                Events whole = generate(ch, "g", prompt, List.of(), greedy);
                List<Integer> ids = whole.ids();
                int stop = ids.get(5);
                int first = ids.indexOf(stop);
                Events stopped = generate(ch, "stop", prompt, ids.subList(0, first + 1),
                        greedy.toBuilder().addStopTokenIds(stop).build());
                assertEquals(Status.OK, stopped.status());
                assertEquals(List.of(), stopped.tokens());
                assertEquals("stop", stopped.fin().getReason());
                assertEquals(stop, stopped.fin().getStopTokenId());
                assertEquals(first + 1, stopped.fin().getCompletionTokens());
                int eos = ModelConfig.load(ClusterTest.TINY).eosTokenId();
                Events atEos = generate(ch, "eos", prompt, List.of(7, eos), greedy.toBuilder().setIgnoreEos(false).build());
                assertEquals("stop", atEos.fin().getReason());
                assertEquals(2, atEos.fin().getCompletionTokens());
                // ignore_eos: EOS is just a token.
                Events past = generate(ch, "past-eos", prompt, List.of(7, eos), greedy.toBuilder().setMaxTokens(4).build());
                assertEquals(Status.OK, past.status());
                assertEquals(2, past.tokens().size());
                assertEquals(4, past.fin().getCompletionTokens());

                // Bad resume tokens: INVALID_ARGUMENT with the reason.
                int vocab = ModelConfig.load(ClusterTest.TINY).vocabSize();
                assertInvalid(generate(ch, "b1", prompt, List.of(3, vocab), greedy), "resume token 1");
                assertInvalid(generate(ch, "b2", prompt, List.of(3, -1), greedy), "outside the vocabulary");
                assertInvalid(generate(ch, "b3", prompt, List.of(1, 2, 3), greedy.toBuilder().setMaxTokens(2).build()),
                        "max_tokens");
                assertInvalid(generate(ch, "b4", prompt, List.of(eos, 5), greedy.toBuilder().setIgnoreEos(false).build()),
                        "ended the request");
                assertInvalid(generate(ch, "b5", prompt, List.of(stop, 5),
                        greedy.toBuilder().addStopTokenIds(stop).build()), "ended the request");
            } finally {
                ch.shutdownNow();
            }
        }
    }

    static void assertInvalid(Events e, String text) {
        assertEquals(Status.Code.INVALID_ARGUMENT, e.status().getCode(), e.status().toString());
        assertNotNull(e.status().getDescription());
        assertTrue(e.status().getDescription().contains(text), e.status().toString());
    }
}
