package io.epserve.router;

import io.epserve.proto.v1.FinishReason;
import io.epserve.proto.v1.Usage;
import io.epserve.proto.worker.v1.GenerateEvent;
import io.epserve.proto.worker.v1.GenerateFinished;
import io.epserve.proto.worker.v1.GenerateRequest;
import io.epserve.proto.worker.v1.GeneratedToken;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One client call relayed to an attention worker's Generate stream: what Generate and Chat share. It counts the
 * request in and out of the router and its worker, times the tokens, cancels the worker call when the client goes
 * away, and passes worker failures to the client with the worker named. Subclasses turn tokens and the final event
 * into their own responses; events are delivered one at a time (gRPC serialises a call's callbacks).
 *
 * @param <R> the client's response message
 */
abstract class WorkerStream<R> implements ClientResponseObserver<GenerateRequest, GenerateEvent> {
    protected final Router router;
    protected final Router.Backend backend;
    protected final ServerCallStreamObserver<R> client;
    protected final String requestId;
    protected final int promptTokens;
    private final long startNs = System.nanoTime();
    private final AtomicBoolean released = new AtomicBoolean();
    private volatile ClientCallStreamObserver<GenerateRequest> call;
    private volatile boolean done;
    private long firstTokenNs;
    private long lastTokenNs;
    protected int completionTokens;

    protected WorkerStream(Router router, Router.Backend backend, StreamObserver<R> client, String requestId,
                           int promptTokens) {
        this.router = router;
        this.backend = backend;
        this.client = (ServerCallStreamObserver<R>) client;
        this.requestId = requestId;
        this.promptTokens = promptTokens;
        router.metrics().prompt(promptTokens);
    }

    /**
     * Counts a request in and picks its worker; null (after answering RESOURCE_EXHAUSTED) when the router is full.
     */
    static Router.Backend admit(Router router, StreamObserver<?> client) {
        if (!router.admit()) {
            client.onError(Status.RESOURCE_EXHAUSTED.withDescription("the router has " + router.maxInFlight()
                    + " requests in flight").asRuntimeException());
            return null;
        }
        Router.Backend b = router.pick();
        b.inFlight.incrementAndGet();
        return b;
    }

    /** Sends the request to the worker; a client cancel from now on cancels it there. */
    final void start(GenerateRequest req) {
        client.setOnCancelHandler(this::clientCancelled);
        backend.stub.generate(req, this);
    }

    @Override
    public final void beforeStart(ClientCallStreamObserver<GenerateRequest> call) {
        this.call = call;
    }

    private void clientCancelled() {
        done = true;
        cancelWorker("the client cancelled");
        release();
    }

    protected final void cancelWorker(String why) {
        var c = call;
        if (c != null) {
            c.cancel(why, null);
        }
    }

    @Override
    public final void onNext(GenerateEvent e) {
        if (done) {
            return;
        }
        if (e.hasToken()) {
            long now = System.nanoTime();
            if (firstTokenNs == 0) {
                firstTokenNs = now;
            }
            router.metrics().token(startNs, lastTokenNs, now);
            lastTokenNs = now;
            completionTokens++;
            onToken(e.getToken());
        } else if (e.hasFinished()) {
            onFinished(e.getFinished());
        }
    }

    /** A sampled token. */
    protected abstract void onToken(GeneratedToken token);

    /** The worker's final event; the subclass answers with {@link #complete}. */
    protected abstract void onFinished(GenerateFinished finished);

    static FinishReason reason(String workerReason) {
        return switch (workerReason) {
            case "stop" -> FinishReason.STOP;
            case "length" -> FinishReason.LENGTH;
            case "cancelled" -> FinishReason.CANCELLED;
            default -> FinishReason.ERROR;
        };
    }

    protected final Usage usage(double queueSeconds) {
        double ttft = firstTokenNs == 0 ? 0 : (firstTokenNs - startNs) / 1e9;
        double decode = (lastTokenNs - firstTokenNs) / 1e9;
        return Usage.newBuilder()
                .setPromptTokens(promptTokens)
                .setCompletionTokens(completionTokens)
                .setTimeToFirstTokenSeconds(ttft)
                .setTokensPerSecond(completionTokens > 1 && decode > 0 ? (completionTokens - 1) / decode : 0)
                .setQueueSeconds(queueSeconds)
                .build();
    }

    protected final void send(R message) {
        client.onNext(message);
    }

    /** Sends the last message and ends the call; later worker events are ignored. */
    protected final void complete(R last) {
        done = true;
        try {
            client.onNext(last);
            client.onCompleted();
        } catch (RuntimeException e) {
            // The client went away.
        }
        release();
    }

    @Override
    public final void onError(Throwable t) {
        if (!done) {
            done = true;
            Status s = Status.fromThrowable(t);
            router.metrics().workerError(backend.target, s.getCode());
            fail(s.withDescription("attention worker " + backend.target + ": " + s.getDescription()));
        }
        release();
    }

    @Override
    public final void onCompleted() {
        if (!done) {
            done = true;
            router.metrics().workerError(backend.target, Status.Code.INTERNAL);
            fail(Status.INTERNAL.withDescription("attention worker " + backend.target
                    + " ended the stream without a final event"));
        }
        release();
    }

    private void fail(Status s) {
        try {
            client.onError(s.asRuntimeException());
        } catch (RuntimeException e) {
            // The client went away.
        }
    }

    private void release() {
        if (released.compareAndSet(false, true)) {
            backend.inFlight.decrementAndGet();
            router.release();
        }
    }
}
