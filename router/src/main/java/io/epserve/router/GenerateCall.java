package io.epserve.router;

import io.epserve.model.text.Tokenizer;
import io.epserve.proto.v1.Delta;
import io.epserve.proto.v1.Final;
import io.epserve.proto.v1.FinishReason;
import io.epserve.proto.v1.GenerateRequest;
import io.epserve.proto.v1.GenerateResponse;
import io.epserve.proto.v1.TokenLogprob;
import io.epserve.proto.v1.TopLogprobs;
import io.epserve.proto.v1.Usage;
import io.epserve.proto.worker.v1.GenerateEvent;
import io.epserve.proto.worker.v1.GeneratedToken;
import io.epserve.proto.worker.v1.SamplingParams;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One client Generate relayed to an attention worker: the worker's token events become text deltas (detokenised
 * incrementally, stop strings applied), its final event the client's final message; a client that cancels cancels
 * the worker call, which frees the sequence there.
 */
final class GenerateCall implements ClientResponseObserver<io.epserve.proto.worker.v1.GenerateRequest, GenerateEvent> {
    private final Router router;
    private final Router.Backend backend;
    private final ServerCallStreamObserver<GenerateResponse> client;
    private final String requestId;
    private final Tokenizer.Stream text;
    private final StopStrings stops;
    private final int promptTokens;
    private final long startNs = System.nanoTime();
    private final AtomicBoolean released = new AtomicBoolean();
    private volatile ClientCallStreamObserver<io.epserve.proto.worker.v1.GenerateRequest> call;
    private volatile boolean done;
    private long firstTokenNs;
    private long lastTokenNs;
    private int completionTokens;

    private GenerateCall(Router router, Router.Backend backend, ServerCallStreamObserver<GenerateResponse> client,
                         String requestId, Tokenizer.Stream text, StopStrings stops, int promptTokens) {
        this.router = router;
        this.backend = backend;
        this.client = client;
        this.requestId = requestId;
        this.text = text;
        this.stops = stops;
        this.promptTokens = promptTokens;
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
        if (!router.admit()) {
            obs.onError(Status.RESOURCE_EXHAUSTED.withDescription("the router has " + router.maxInFlight()
                    + " requests in flight").asRuntimeException());
            return;
        }
        String id = req.getRequestId().isEmpty() ? UUID.randomUUID().toString() : req.getRequestId();
        SamplingParams.Builder w = Requests.workerSampling(s);
        io.epserve.proto.worker.v1.GenerateRequest.Builder wr = io.epserve.proto.worker.v1.GenerateRequest.newBuilder()
                .setRequestId(id).setSampling(w);
        for (int t : prompt) {
            wr.addPromptTokens(t);
        }
        Router.Backend b = router.pick();
        b.inFlight.incrementAndGet();
        var server = (ServerCallStreamObserver<GenerateResponse>) obs;
        boolean skipSpecial = !s.hasSkipSpecialTokens() || s.getSkipSpecialTokens();
        GenerateCall c = new GenerateCall(router, b, server, id, router.tokenizer().stream(skipSpecial),
                new StopStrings(s.getStopList()), prompt.length);
        server.setOnCancelHandler(c::clientCancelled);
        b.stub.generate(wr.build(), c);
    }

    @Override
    public void beforeStart(ClientCallStreamObserver<io.epserve.proto.worker.v1.GenerateRequest> call) {
        this.call = call;
    }

    private void clientCancelled() {
        done = true;
        var c = call;
        if (c != null) {
            c.cancel("the client cancelled", null);
        }
        release();
    }

    @Override
    public void onNext(GenerateEvent e) {
        if (done) {
            return;
        }
        if (e.hasToken()) {
            GeneratedToken t = e.getToken();
            long now = System.nanoTime();
            if (firstTokenNs == 0) {
                firstTokenNs = now;
            }
            lastTokenNs = now;
            completionTokens++;
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
            client.onNext(GenerateResponse.newBuilder().setDelta(d).build());
            if (stops.matched() != null) {
                finish(FinishReason.STOP, stops.matched(), "");
                call.cancel("stop string reached", null);
            }
        } else if (e.hasFinished()) {
            String rest = stops.push(text.flush());
            rest += stops.flush();
            if (!rest.isEmpty()) {
                client.onNext(GenerateResponse.newBuilder().setDelta(Delta.newBuilder().setText(rest)).build());
            }
            FinishReason reason = switch (e.getFinished().getReason()) {
                case "stop" -> FinishReason.STOP;
                case "length" -> FinishReason.LENGTH;
                case "cancelled" -> FinishReason.CANCELLED;
                default -> FinishReason.ERROR;
            };
            finish(reason, stops.matched() == null ? "" : stops.matched(), e.getFinished().getMessage(),
                    e.getFinished().getQueueSeconds());
        }
    }

    private void finish(FinishReason reason, String stop, String message) {
        finish(reason, stop, message, 0);
    }

    private void finish(FinishReason reason, String stop, String message, double queueSeconds) {
        done = true;
        double ttft = firstTokenNs == 0 ? 0 : (firstTokenNs - startNs) / 1e9;
        double decode = (lastTokenNs - firstTokenNs) / 1e9;
        Usage usage = Usage.newBuilder()
                .setPromptTokens(promptTokens)
                .setCompletionTokens(completionTokens)
                .setTimeToFirstTokenSeconds(ttft)
                .setTokensPerSecond(completionTokens > 1 && decode > 0 ? (completionTokens - 1) / decode : 0)
                .setQueueSeconds(queueSeconds)
                .build();
        try {
            client.onNext(GenerateResponse.newBuilder().setFinal(Final.newBuilder().setFinishReason(reason)
                    .setUsage(usage).setStop(stop).setRequestId(requestId).setMessage(message)).build());
            client.onCompleted();
        } catch (StatusRuntimeException | IllegalStateException e) {
            // The client went away.
        }
        release();
    }

    @Override
    public void onError(Throwable t) {
        if (done) {
            release();
            return;
        }
        done = true;
        Status s = Status.fromThrowable(t);
        try {
            client.onError(s.withDescription("attention worker " + backend.target + ": " + s.getDescription())
                    .asRuntimeException());
        } catch (RuntimeException e) {
            // The client went away.
        }
        release();
    }

    @Override
    public void onCompleted() {
        if (!done) {
            done = true;
            try {
                client.onError(Status.INTERNAL.withDescription("attention worker " + backend.target
                        + " ended the stream without a final event").asRuntimeException());
            } catch (RuntimeException e) {
                // The client went away.
            }
        }
        release();
    }

    private void release() {
        if (released.compareAndSet(false, true)) {
            backend.inFlight.decrementAndGet();
            router.release();
        }
    }
}
