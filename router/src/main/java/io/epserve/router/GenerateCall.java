package io.epserve.router;

import io.epserve.model.text.Tokenizer;
import io.epserve.proto.v1.Delta;
import io.epserve.proto.v1.Final;
import io.epserve.proto.v1.FinishReason;
import io.epserve.proto.v1.GenerateRequest;
import io.epserve.proto.v1.GenerateResponse;
import io.epserve.proto.v1.TokenLogprob;
import io.epserve.proto.v1.TopLogprobs;
import io.epserve.proto.worker.v1.GenerateFinished;
import io.epserve.proto.worker.v1.GeneratedToken;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.UUID;

/**
 * One client Generate relayed to an attention worker: the worker's token events become text deltas (detokenised
 * incrementally, stop strings applied), its final event the client's final message; a client that cancels cancels
 * the worker call, which frees the sequence there.
 */
final class GenerateCall extends WorkerStream<GenerateResponse> {
    private final Tokenizer.Stream text;
    private final StopStrings stops;

    private GenerateCall(Router router, Router.Backend backend, StreamObserver<GenerateResponse> client,
                         String requestId, Tokenizer.Stream text, StopStrings stops, int promptTokens) {
        super(router, backend, client, requestId, promptTokens);
        this.text = text;
        this.stops = stops;
    }

    static void start(Router router, GenerateRequest req, StreamObserver<GenerateResponse> obs) {
        if (!router.checkModel(req.getModel(), obs)) {
            return;
        }
        int[] prompt;
        switch (req.getPromptCase()) {
            case TEXT -> prompt = router.tokenizer().encode(req.getText());
            case TOKEN_IDS -> prompt = req.getTokenIds().getIdsList().stream().mapToInt(Integer::intValue).toArray();
            default -> prompt = new int[0];
        }
        var s = req.getSampling();
        String problem = Requests.problem(router, prompt, s);
        if (problem != null) {
            obs.onError(Status.INVALID_ARGUMENT.withDescription(problem).asRuntimeException());
            return;
        }
        Router.Backend b = admit(router, obs);
        if (b == null) {
            return;
        }
        String id = req.getRequestId().isEmpty() ? UUID.randomUUID().toString() : req.getRequestId();
        io.epserve.proto.worker.v1.GenerateRequest.Builder wr = io.epserve.proto.worker.v1.GenerateRequest.newBuilder()
                .setRequestId(id).setSampling(Requests.workerSampling(s));
        for (int t : prompt) {
            wr.addPromptTokens(t);
        }
        boolean skipSpecial = !s.hasSkipSpecialTokens() || s.getSkipSpecialTokens();
        new GenerateCall(router, b, obs, id, router.tokenizer().stream(skipSpecial), new StopStrings(s.getStopList()),
                prompt.length).start(wr.build());
    }

    @Override
    protected void onToken(GeneratedToken t) {
        String released = stops.push(text.push(t.getTokenId()));
        Delta.Builder d = Delta.newBuilder().setText(released).addTokenIds(t.getTokenId());
        if (t.getTopLogprobsCount() > 0 || t.getLogprob() != 0) {
            d.addLogprobs(t.getLogprob());
            TopLogprobs.Builder top = TopLogprobs.newBuilder();
            for (var l : t.getTopLogprobsList()) {
                top.addEntries(TokenLogprob.newBuilder().setTokenId(l.getTokenId()).setLogprob(l.getLogprob()));
            }
            d.addTopLogprobs(top);
        }
        send(GenerateResponse.newBuilder().setDelta(d).build());
        if (stops.matched() != null) {
            complete(last(FinishReason.STOP, stops.matched(), "", 0));
            cancelWorker("stop string reached");
        }
    }

    @Override
    protected void onFinished(GenerateFinished f) {
        String rest = stops.push(text.flush());
        rest += stops.flush();
        if (!rest.isEmpty()) {
            send(GenerateResponse.newBuilder().setDelta(Delta.newBuilder().setText(rest)).build());
        }
        complete(last(reason(f.getReason()), stops.matched() == null ? "" : stops.matched(), f.getMessage(),
                f.getQueueSeconds()));
    }

    private GenerateResponse last(FinishReason reason, String stop, String message, double queueSeconds) {
        return GenerateResponse.newBuilder().setFinal(Final.newBuilder().setFinishReason(reason)
                .setUsage(usage(queueSeconds)).setStop(stop).setRequestId(requestId).setMessage(message)).build();
    }
}
