package io.epserve.router;

import io.epserve.proto.v1.FinishReason;
import io.epserve.proto.v1.Usage;
import io.epserve.proto.worker.v1.GenerateEvent;
import io.epserve.proto.worker.v1.GenerateFinished;
import io.epserve.proto.worker.v1.GenerateRequest;
import io.epserve.proto.worker.v1.GeneratedToken;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One client call relayed to an attention worker's Generate stream: what Generate and Chat share. It counts the
 * request in and out of the router and its worker, times the tokens, cancels the worker call when the client goes
 * away, and passes worker failures to the client with the worker named. Subclasses turn tokens and the final event
 * into their own responses; events are delivered one at a time (under this object's lock).
 *
 * <p>When the worker is lost mid-stream (its call fails with UNAVAILABLE or UNKNOWN, see {@link #workerLost}: the
 * process died, the connection dropped, or it lost its experts and dropped the sequence), the request is resubmitted
 * to another attention worker with the tokens streamed so far as resume tokens: that worker prefills prompt + those
 * tokens and streams the tokens after them, so the subclass sees one unbroken token stream (its detokeniser, stop
 * strings or parser carry on as if nothing happened). A worker that failed a request is not tried again for it, and
 * is left out of everybody's choice until its Status poll answers again; at most {@link Router#maxResubmits()}
 * resubmissions per request.
 *
 * @param <R> the client's response message
 */
abstract class WorkerStream<R> {
    protected final Router router;
    protected final ServerCallStreamObserver<R> client;
    protected final String requestId;
    protected final int promptTokens;
    private final long startNs = System.nanoTime();
    private final AtomicBoolean released = new AtomicBoolean();
    // Guarded by this: the worker call now, the workers that failed this request, the request and its output so far.
    private Attempt attempt;
    private final Set<Router.Backend> failed = new HashSet<>();
    private GenerateRequest request;
    private Context context;
    private int[] tokens = new int[64];
    private int resubmits;
    private volatile boolean done;
    private long firstTokenNs;
    private long lastTokenNs;
    protected int completionTokens;

    protected WorkerStream(Router router, Router.Backend backend, StreamObserver<R> client, String requestId,
                           int promptTokens) {
        this.router = router;
        this.attempt = new Attempt(backend);
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
        if (b == null) {
            router.release();
            client.onError(Status.UNAVAILABLE.withDescription("no attention worker is ready in the cluster yet")
                    .asRuntimeException());
            return null;
        }
        b.inFlight.incrementAndGet();
        return b;
    }

    /** One call to one worker; events of a call that is no longer the current one are ignored. */
    private final class Attempt implements ClientResponseObserver<GenerateRequest, GenerateEvent> {
        final Router.Backend backend;
        volatile ClientCallStreamObserver<GenerateRequest> call;

        Attempt(Router.Backend backend) {
            this.backend = backend;
        }

        @Override
        public void beforeStart(ClientCallStreamObserver<GenerateRequest> c) {
            this.call = c;
        }

        @Override
        public void onNext(GenerateEvent e) {
            event(this, e);
        }

        @Override
        public void onError(Throwable t) {
            failed(this, t);
        }

        @Override
        public void onCompleted() {
            ended(this);
        }
    }

    /** Sends the request to the worker; a client cancel from now on cancels it there. */
    final synchronized void start(GenerateRequest req) {
        if (!req.getSampling().hasSeed()) {
            // A seed of its own (the worker would draw one), so a resubmitted request continues the same random draws.
            req = req.toBuilder().setSampling(req.getSampling().toBuilder()
                    .setSeed(java.util.concurrent.ThreadLocalRandom.current().nextLong())).build();
        }
        this.request = req;
        // The client's call context (its deadline and cancellation), for resubmissions made from worker callbacks.
        this.context = Context.current();
        client.setOnCancelHandler(this::clientCancelled);
        attempt.backend.stub.generate(req, attempt);
    }

    private void clientCancelled() {
        ClientCallStreamObserver<GenerateRequest> c;
        synchronized (this) {
            done = true;
            c = attempt.call;
        }
        if (c != null) {
            c.cancel("the client cancelled", null);
        }
        release();
    }

    protected final void cancelWorker(String why) {
        var c = attempt.call;
        if (c != null) {
            c.cancel(why, null);
        }
    }

    private synchronized void event(Attempt a, GenerateEvent e) {
        if (done || a != attempt) {
            return;
        }
        if (e.hasToken()) {
            long now = System.nanoTime();
            if (firstTokenNs == 0) {
                firstTokenNs = now;
            }
            router.metrics().token(startNs, lastTokenNs, now);
            lastTokenNs = now;
            if (completionTokens == tokens.length) {
                tokens = Arrays.copyOf(tokens, tokens.length * 2);
            }
            tokens[completionTokens++] = e.getToken().getTokenId();
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

    private void failed(Attempt a, Throwable t) {
        synchronized (this) {
            if (a != attempt) {
                return;
            }
            if (!done) {
                Status s = Status.fromThrowable(t);
                router.metrics().workerError(a.backend.target, s.getCode());
                String why = workerLost(s) && !client.isCancelled() ? resubmit(a, s) : "";
                if (why == null) {
                    return; // a new attempt runs
                }
                done = true;
                // A lost worker is UNAVAILABLE to the client, however gRPC reported the broken connection.
                Status out = workerLost(s) ? Status.UNAVAILABLE : s;
                fail(out.withDescription("attention worker " + a.backend.target + ": " + s.getDescription() + why));
            }
        }
        release();
    }

    /**
     * Whether a failed call means its worker is gone: UNAVAILABLE, or UNKNOWN, which the worker never sends itself
     * (it maps its own failures to specific codes) but gRPC gives when the connection closes under a stream
     * ("channel closed") as a killed process's does, depending on when the close is seen.
     */
    static boolean workerLost(Status s) {
        return s.getCode() == Status.Code.UNAVAILABLE || s.getCode() == Status.Code.UNKNOWN;
    }

    /**
     * Sends the request, with the tokens streamed so far as resume tokens, to another attention worker. Returns null
     * when it did, or why not (appended to the failure the client gets).
     */
    private String resubmit(Attempt a, Status s) {
        failed.add(a.backend);
        router.markDown(a.backend, s);
        if (resubmits >= router.maxResubmits()) {
            return " (after " + completionTokens + " tokens; not resumed: resubmitted " + resubmits
                    + " times already)";
        }
        Router.Backend next = router.pick(failed);
        if (next == null) {
            return " (after " + completionTokens + " tokens; not resumed: no other attention worker is reachable)";
        }
        resubmits++;
        long total = router.countResubmission();
        router.log().accept("router: request " + requestId + ": attention worker " + a.backend.target + " failed ("
                + s.getCode() + ": " + s.getDescription() + ") after " + completionTokens
                + " tokens; resubmitted to " + next.target + " with them as resume tokens (resubmission " + resubmits
                + " of at most " + router.maxResubmits() + "; resubmissions=" + total + ")");
        GenerateRequest.Builder b = request.toBuilder().clearResumeTokens();
        for (int i = 0; i < completionTokens; i++) {
            b.addResumeTokens(tokens[i]);
        }
        a.backend.inFlight.decrementAndGet();
        next.inFlight.incrementAndGet();
        Attempt n = new Attempt(next);
        attempt = n;
        GenerateRequest req = b.build();
        context.run(() -> next.stub.generate(req, n));
        return null;
    }

    private synchronized void ended(Attempt a) {
        if (a != attempt) {
            return;
        }
        if (!done) {
            done = true;
            router.metrics().workerError(a.backend.target, Status.Code.INTERNAL);
            fail(Status.INTERNAL.withDescription("attention worker " + a.backend.target
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
            Router.Backend b;
            synchronized (this) {
                b = attempt.backend;
            }
            b.inFlight.decrementAndGet();
            router.release();
        }
    }
}
