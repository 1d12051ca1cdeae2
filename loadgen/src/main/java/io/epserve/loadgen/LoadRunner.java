package io.epserve.loadgen;

import io.epserve.proto.v1.ChatResponse;
import io.epserve.proto.v1.FinishReason;
import io.epserve.proto.v1.GenerateResponse;
import io.epserve.proto.v1.InferenceGrpc;
import io.epserve.proto.v1.Usage;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * Sends a workload through the public gRPC API on an arrival schedule, at most {@code maxConcurrency} requests in
 * flight (a request whose time has come waits for a free slot, as in vLLM: the cap holds whatever the rate), and
 * records every streamed message's time. Every request ends as a success or a failure with its gRPC status: one that
 * outlives {@code requestTimeout} fails DEADLINE_EXCEEDED (a gRPC deadline), and when the whole run outlives
 * {@code maxDuration} whatever is still in flight is cancelled and whatever was not sent is failed, so a run is
 * bounded in time and never loses a row.
 */
public final class LoadRunner {
    /** How the requests go out. */
    public record Settings(double[] offsetsSeconds, int maxConcurrency, Duration requestTimeout,
                           Duration maxDuration, int[] cancelAfterTokens) {
        /** No request cancelled by the client. */
        public Settings(double[] offsetsSeconds, int maxConcurrency, Duration requestTimeout, Duration maxDuration) {
            this(offsetsSeconds, maxConcurrency, requestTimeout, maxDuration, null);
        }

        /** After how many received tokens the client cancels request i (0: it does not). */
        int cancelAfter(int i) {
            return cancelAfterTokens == null ? 0 : cancelAfterTokens[i];
        }
    }

    /** The outcomes, in workload order, and the run's span (nanoTime). */
    public record Run(List<RequestOutcome> outcomes, long startNs, long endNs) {
        public double durationSeconds() {
            return (endNs - startNs) / 1e9;
        }
    }

    static final String MAX_DURATION = "CANCELLED: --max-duration reached";
    /** The outcome of a request the client cancelled on purpose (--cancel-fraction), to exercise the abort path. */
    static final String CLIENT_CANCEL = "CANCELLED: by the client mid-stream (--cancel-fraction)";
    /** Whether stderr is a terminal, where the progress line is redrawn in place. */
    private static final boolean TERMINAL = System.console() != null && System.console().isTerminal();
    static final String REQUEST_TIMEOUT = "DEADLINE_EXCEEDED: --request-timeout reached";

    private final AtomicInteger done = new AtomicInteger();
    private final AtomicInteger failed = new AtomicInteger();
    private final AtomicInteger inFlight = new AtomicInteger();
    private final AtomicLong tokens = new AtomicLong();
    private volatile boolean overTime;

    private LoadRunner() {
    }

    /** Runs the requests; progress (may be null) gets a status line about once a second. */
    public static Run run(Channel channel, List<BenchRequest> requests, Settings s, PrintStream progress,
                          String progressLabel) throws InterruptedException {
        return new LoadRunner().go(channel, requests, s, progress, progressLabel);
    }

    private Run go(Channel channel, List<BenchRequest> requests, Settings s, PrintStream progress, String label)
            throws InterruptedException {
        int n = requests.size();
        List<RequestOutcome> outcomes = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            outcomes.add(new RequestOutcome(i));
        }
        Semaphore slots = s.maxConcurrency() > 0 ? new Semaphore(s.maxConcurrency(), true) : null;
        CountDownLatch finished = new CountDownLatch(n);
        ConcurrentHashMap<Integer, ClientCallStreamObserver<?>> calls = new ConcurrentHashMap<>();
        InferenceGrpc.InferenceStub stub = InferenceGrpc.newStub(channel);
        long start = System.nanoTime();
        long deadline = start + s.maxDuration().toNanos();
        Thread ticker = progress == null ? null : Thread.ofPlatform().daemon().name("epserve-bench-progress")
                .start(() -> tick(progress, label, n, start));
        int sent = 0;
        try {
            for (; sent < n; sent++) {
                long at = start + (long) (s.offsetsSeconds()[sent] * 1e9);
                if (at > deadline) {
                    break;
                }
                for (long now = System.nanoTime(); now < at; now = System.nanoTime()) {
                    LockSupport.parkNanos(at - now);
                }
                if (slots != null && !slots.tryAcquire(Math.max(0, deadline - System.nanoTime()),
                        TimeUnit.NANOSECONDS)) {
                    break;
                }
                RequestOutcome o = outcomes.get(sent);
                o.arrivalNs = at - start;
                send(stub.withDeadlineAfter(s.requestTimeout().toNanos(), TimeUnit.NANOSECONDS), requests.get(sent),
                        o, s.cancelAfter(sent), start, () -> {
                            calls.remove(o.index);
                            if (slots != null) {
                                slots.release();
                            }
                            finished.countDown();
                        }, calls);
            }
            long left = deadline - System.nanoTime();
            if (finished.await(Math.max(0, left), TimeUnit.NANOSECONDS)) { // never true while some were not sent
                return new Run(outcomes, start, endOf(outcomes, start));
            }
            // Over time: cancel what runs, fail what was never sent; every row stays.
            overTime = true;
            for (int i = sent; i < n; i++) {
                RequestOutcome o = outcomes.get(i);
                o.arrivalNs = o.sendNs = System.nanoTime() - start;
                if (o.fail(o.sendNs, "CANCELLED: not sent before --max-duration")) {
                    failed.incrementAndGet();
                    done.incrementAndGet();
                }
                finished.countDown();
            }
            for (ClientCallStreamObserver<?> c : calls.values()) {
                c.cancel(MAX_DURATION, null);
            }
            if (!finished.await(10, TimeUnit.SECONDS)) {
                long now = System.nanoTime() - start;
                for (RequestOutcome o : outcomes) {
                    if (o.fail(now, MAX_DURATION)) {
                        failed.incrementAndGet();
                    }
                }
            }
            return new Run(outcomes, start, endOf(outcomes, start));
        } finally {
            if (ticker != null) {
                ticker.interrupt();
                ticker.join(2_000);
                line(progress, label, n, start, true);
            }
        }
    }

    private static long endOf(List<RequestOutcome> outcomes, long start) {
        long end = 0;
        for (RequestOutcome o : outcomes) {
            end = Math.max(end, o.endNs);
        }
        return start + end;
    }

    private void send(InferenceGrpc.InferenceStub stub, BenchRequest r, RequestOutcome o, int cancelAfter, long start,
                      Runnable released, ConcurrentHashMap<Integer, ClientCallStreamObserver<?>> calls) {
        inFlight.incrementAndGet();
        o.sendNs = System.nanoTime() - start;
        if (r.isChat()) {
            stub.chat(r.chat(), new Observer<ChatResponse>(o, cancelAfter, start, released, calls) {
                @Override
                boolean message(ChatResponse m, long at) {
                    if (m.hasDelta()) {
                        var d = m.getDelta();
                        o.chunk(at, d.getTokenIdsCount());
                        o.text.append(d.getReasoning()).append(d.getContent()).append(d.getToolCall().getArguments());
                        return false;
                    }
                    var f = m.getFinal();
                    return last(f.getFinishReason(), f.getUsage(), "", at);
                }
            });
        } else {
            stub.generate(r.generate(), new Observer<GenerateResponse>(o, cancelAfter, start, released, calls) {
                @Override
                boolean message(GenerateResponse m, long at) {
                    if (m.hasDelta()) {
                        var d = m.getDelta();
                        o.chunk(at, d.getTokenIdsCount());
                        o.text.append(d.getText());
                        return false;
                    }
                    var f = m.getFinal();
                    return last(f.getFinishReason(), f.getUsage(), f.getMessage(), at);
                }
            });
        }
    }

    /** One call's stream: timestamps on arrival, the outcome decided exactly once. */
    private abstract class Observer<T> implements ClientResponseObserver<Object, T> {
        final RequestOutcome o;
        private final long start;
        private final Runnable released;
        private final ConcurrentHashMap<Integer, ClientCallStreamObserver<?>> calls;
        private final int cancelAfter;
        private ClientCallStreamObserver<Object> call;
        private boolean sawFinal;

        Observer(RequestOutcome o, int cancelAfter, long start, Runnable released,
                 ConcurrentHashMap<Integer, ClientCallStreamObserver<?>> calls) {
            this.o = o;
            this.cancelAfter = cancelAfter;
            this.start = start;
            this.released = released;
            this.calls = calls;
        }

        @Override
        public void beforeStart(ClientCallStreamObserver<Object> call) {
            this.call = call;
            calls.put(o.index, call);
        }

        /** @return true when the message was the final one */
        abstract boolean message(T m, long atNs);

        boolean last(FinishReason reason, Usage usage, String message, long at) {
            sawFinal = true;
            o.promptTokens = usage.getPromptTokens();
            o.serverCompletionTokens = usage.getCompletionTokens();
            o.serverQueueSeconds = usage.getQueueSeconds();
            o.finishReason = reason.name().toLowerCase(Locale.ROOT);
            if (reason == FinishReason.ERROR) {
                end(false, at, "ERROR: " + message);
            }
            return true;
        }

        @Override
        public void onNext(T m) {
            long at = System.nanoTime() - start;
            if (!o.finished()) {
                int before = o.outputTokens;
                boolean last = message(m, at);
                tokens.addAndGet(o.outputTokens - before);
                if (!last && cancelAfter > 0 && o.outputTokens >= cancelAfter) {
                    // Decided first, so the CANCELLED that the cancel brings back changes nothing.
                    end(false, at, CLIENT_CANCEL);
                    call.cancel(CLIENT_CANCEL, null);
                }
            }
        }

        @Override
        public void onError(Throwable t) {
            Status s = Status.fromThrowable(t);
            String why;
            if (s.getCode() == Status.Code.CANCELLED && overTime) {
                why = MAX_DURATION;
            } else if (s.getCode() == Status.Code.DEADLINE_EXCEEDED && s.getDescription() != null
                    && s.getDescription().contains("deadline")) {
                why = REQUEST_TIMEOUT; // the client's own deadline; its text names nanoseconds, not the flag
            } else {
                why = s.getCode() + (s.getDescription() == null ? "" : ": " + s.getDescription());
            }
            end(false, System.nanoTime() - start, why);
        }

        @Override
        public void onCompleted() {
            long at = System.nanoTime() - start;
            if (sawFinal) {
                end(true, at, "");
            } else {
                end(false, at, "INTERNAL: the stream ended without a final message");
            }
        }

        private void end(boolean ok, long at, String why) {
            boolean decided = ok ? o.succeed(at) : o.fail(at, why);
            if (decided) {
                if (!ok) {
                    failed.incrementAndGet();
                }
                done.incrementAndGet();
                inFlight.decrementAndGet();
                released.run();
            }
        }
    }

    private void tick(PrintStream out, String label, int n, long start) {
        try {
            // A terminal line is rewritten in place every second; a log gets a line every 5 s.
            long every = TERMINAL ? 1_000 : 5_000;
            while (!Thread.currentThread().isInterrupted()) {
                Thread.sleep(every);
                line(out, label, n, start, false);
            }
        } catch (InterruptedException e) {
            // run over
        }
    }

    private void line(PrintStream out, String label, int n, long start, boolean last) {
        double t = (System.nanoTime() - start) / 1e9;
        long tok = tokens.get();
        out.printf(Locale.ROOT, "%s[%6.1f s] %s%d/%d done, %d failed, %d in flight, %d tokens out, %.1f tok/s%s",
                TERMINAL ? "\r" : "", t, label, done.get(), n, failed.get(), inFlight.get(), tok,
                t > 0 ? tok / t : 0.0, TERMINAL && !last ? "" : "\n");
        out.flush();
    }
}
