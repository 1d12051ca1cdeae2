package io.epserve.attention;

import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.CacheLayout;
import io.epserve.model.engine.SamplingParams;
import io.epserve.model.engine.SequenceCache;
import io.epserve.model.engine.SequenceSampler;
import io.epserve.model.engine.Transformer;
import io.epserve.proto.worker.v1.GenerateEvent;
import io.epserve.proto.worker.v1.GenerateFinished;
import io.epserve.proto.worker.v1.GenerateRequest;
import io.epserve.proto.worker.v1.GeneratedToken;
import io.epserve.proto.worker.v1.TokenLogprob;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ServerCallStreamObserver;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import java.util.function.IntSupplier;
import java.util.function.LongConsumer;

/**
 * Continuous batching on the attention worker. Generate requests wait in a bounded queue; the scheduler admits them
 * while sequences and the KV memory allow (a request reserves the compact cache of prompt + max_tokens positions)
 * and puts each in one of the engine's lanes (its micro-batches, see {@link StepEngine#pipeline}), the one with the
 * fewest requests. Each lane's steps run on their own: when a lane's step ends, its tokens are sampled per sequence
 * (so a request's tokens do not depend on the rest of the batch) and streamed at once, and the lane's next step is
 * built: a token for every decoding sequence of the lane, and chunks of its prompts still being prefilled, up to a
 * per-step token budget, oldest first. The steps run on the engine thread, the same thread as the worker's other
 * requests: when one of those is waiting, the lanes stop taking steps, it runs, and they go on.
 *
 * <p>A request resumed from a lost worker brings the tokens it had generated (resume_tokens): they are prefilled
 * after the prompt but count as output (max_tokens, penalties, the seeded draws' position, completion_tokens), so it
 * continues with exactly the tokens it would have had.
 */
final class GenerationScheduler {
    static final int MAX_LOGPROBS = 20;

    /** One request from arrival to its last event. */
    static final class Generation {
        final String id;
        final int[] prompt;
        /** What is prefilled: the prompt, then the resume tokens. */
        final int[] input;
        final SequenceSampler sampler;
        final int maxTokens;
        final int[] stopIds;
        final boolean ignoreEos;
        final int logprobs;
        final ServerCallStreamObserver<GenerateEvent> out;
        final long arrivedNs = System.nanoTime();
        volatile boolean cancelled;
        SequenceCache cache;
        long admittedNs;
        long firstTokenNs;
        int prefilled;
        int generated;
        int last;
        long reserved;
        /** The lane its steps run in (-1 until it has one). */
        int lane = -1;

        Generation(String id, int[] prompt, int[] resume, SequenceSampler sampler, int maxTokens, int[] stopIds,
                   boolean ignoreEos, int logprobs, ServerCallStreamObserver<GenerateEvent> out) {
            this.id = id;
            this.prompt = prompt;
            this.input = resume.length == 0 ? prompt : concat(prompt, resume);
            this.generated = resume.length;
            this.sampler = sampler;
            this.maxTokens = maxTokens;
            this.stopIds = stopIds;
            this.ignoreEos = ignoreEos;
            this.logprobs = logprobs;
            this.out = out;
        }
    }

    private final StepEngine engine;
    private final ModelConfig config;
    private final Executor engineThread;
    private final int maxWaiting;
    private final int maxStepTokens;
    private final long kvBudgetBytes;
    private final CacheLayout layout;
    private final IntSupplier otherSequences;
    private final int maxSequences;
    private final Consumer<String> log;
    /** Whether the lanes should stop taking steps (other work waits for the engine thread, or it shuts down). */
    private final BooleanSupplier yieldNow;
    /** Per lane: the requests of its step in progress, in the order of its chunks, and their chunks. */
    private final List<List<Generation>> passMembers = new ArrayList<>();
    private final List<List<Transformer.Chunk>> passChunks = new ArrayList<>();
    /** Told each request's queue time (ns) as it joins the batch (engine thread). */
    private final LongConsumer queued;
    private final ConcurrentLinkedQueue<Generation> arrivals = new ConcurrentLinkedQueue<>();
    private final AtomicInteger waiting = new AtomicInteger();
    private final AtomicBoolean scheduled = new AtomicBoolean();
    private final Set<String> ids = java.util.concurrent.ConcurrentHashMap.newKeySet();
    private final List<Generation> running = new ArrayList<>();
    private volatile int runningCount;
    private volatile boolean draining;
    private volatile long reservedBytes;

    GenerationScheduler(StepEngine engine, Executor engineThread, int maxWaiting, int maxStepTokens,
                        long kvBudgetBytes, int maxSequences, IntSupplier otherSequences, LongConsumer queued,
                        BooleanSupplier yieldNow, Consumer<String> log) {
        this.engine = engine;
        this.config = engine.transformer().config();
        this.engineThread = engineThread;
        this.maxWaiting = maxWaiting;
        this.maxStepTokens = maxStepTokens;
        this.kvBudgetBytes = kvBudgetBytes;
        this.layout = CacheLayout.of(config);
        this.maxSequences = maxSequences;
        this.otherSequences = otherSequences;
        this.queued = queued;
        this.yieldNow = yieldNow;
        this.log = log;
        for (int i = 0; i < MicroBatchEngine.MAX_MICRO_BATCHES; i++) {
            passMembers.add(new ArrayList<>());
            passChunks.add(new ArrayList<>());
        }
    }

    int waiting() {
        return waiting.get();
    }

    int running() {
        return runningCount;
    }

    long reservedBytes() {
        return reservedBytes;
    }

    long budgetBytes() {
        return kvBudgetBytes;
    }

    /** KV bytes a sequence of that many positions needs at most (the compact layout's fixed part plus rows). */
    long bytesFor(long positions) {
        return (long) Math.ceil(layout.bytesFor(positions));
    }

    /** Stops admitting new requests; running ones go on. */
    void drain() {
        draining = true;
    }

    boolean idle() {
        return waiting.get() == 0 && runningCount == 0;
    }

    /** Validates and queues a request (gRPC thread); errors go to the caller as INVALID_ARGUMENT and the like. */
    void submit(GenerateRequest req, ServerCallStreamObserver<GenerateEvent> out) {
        int vocab = config.vocabSize();
        int context = config.maxPositionEmbeddings();
        String id = req.getRequestId();
        if (id.isEmpty()) {
            throw invalid("request_id is empty");
        }
        if (req.getPromptTokensCount() == 0) {
            throw invalid("the prompt is empty");
        }
        int[] prompt = new int[req.getPromptTokensCount()];
        for (int i = 0; i < prompt.length; i++) {
            int t = req.getPromptTokens(i);
            if (t < 0 || t >= vocab) {
                throw invalid("prompt token " + i + " is " + t + ", outside the vocabulary [0, " + vocab + ")");
            }
            prompt[i] = t;
        }
        if (prompt.length >= context) {
            throw invalid("the prompt has " + prompt.length + " tokens; the context is " + context
                    + " (room must remain for at least one generated token)");
        }
        var s = req.getSampling();
        if (s.getMaxTokens() <= 0) {
            throw invalid("max_tokens must be > 0, got " + s.getMaxTokens());
        }
        if (s.getLogprobs() < 0 || s.getLogprobs() > MAX_LOGPROBS) {
            throw invalid("logprobs must be in [0, " + MAX_LOGPROBS + "], got " + s.getLogprobs());
        }
        for (int t : s.getStopTokenIdsList()) {
            if (t < 0 || t >= vocab) {
                throw invalid("stop token id " + t + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
        SamplingParams params = new SamplingParams(s.getTemperature(), s.getTopP() == 0 ? 1 : s.getTopP(),
                s.getTopK(), s.getMinP(), s.hasSeed() ? s.getSeed() : java.util.concurrent.ThreadLocalRandom.current().nextLong(),
                s.getRepetitionPenalty() == 0 ? 1 : s.getRepetitionPenalty(), s.getPresencePenalty(),
                s.getFrequencyPenalty());
        SequenceSampler sampler;
        try {
            sampler = new SequenceSampler(params, vocab, prompt);
        } catch (IllegalArgumentException e) {
            throw invalid(e.getMessage());
        }
        int maxTokens = (int) Math.min(s.getMaxTokens(), (long) context - prompt.length);
        int[] stopIds = s.getStopTokenIdsList().stream().mapToInt(Integer::intValue).toArray();
        // Resume tokens: output already streamed by a worker that was lost. Each must be one the request could have
        // generated; the last may have ended it (then it finishes here at once).
        int[] resume = new int[req.getResumeTokensCount()];
        if (resume.length > maxTokens) {
            throw invalid("there are " + resume.length + " resume tokens; max_tokens allows " + maxTokens);
        }
        String ended = null;
        for (int i = 0; i < resume.length; i++) {
            int t = req.getResumeTokens(i);
            if (t < 0 || t >= vocab) {
                throw invalid("resume token " + i + " is " + t + ", outside the vocabulary [0, " + vocab + ")");
            }
            if (ended != null) {
                throw invalid("resume token " + (i - 1) + " ended the request (" + ended + "), yet more follow");
            }
            resume[i] = t;
            sampler.accept(t);
            ended = endReason(t, i + 1, maxTokens, stopIds, s.getIgnoreEos());
        }
        if (ended != null) {
            GenerateFinished.Builder fb = GenerateFinished.newBuilder().setReason(ended)
                    .setPromptTokens(prompt.length).setCompletionTokens(resume.length);
            int last = resume[resume.length - 1];
            if (ended.equals("stop") && contains(stopIds, last) && !(last == config.eosTokenId() && !s.getIgnoreEos())) {
                fb.setStopTokenId(last);
            }
            out.onNext(GenerateEvent.newBuilder().setFinished(fb).build());
            out.onCompleted();
            return;
        }
        long need = bytesFor((long) prompt.length + maxTokens);
        if (need > kvBudgetBytes) {
            throw invalid("prompt + max_tokens = " + ((long) prompt.length + maxTokens) + " positions need "
                    + need + " bytes of KV cache; this worker's KV memory is " + kvBudgetBytes + " bytes");
        }
        if (draining) {
            throw Status.UNAVAILABLE.withDescription("this attention worker is shutting down").asRuntimeException();
        }
        if (!ids.add(id)) {
            throw Status.ALREADY_EXISTS.withDescription("request '" + id + "' is already running here").asRuntimeException();
        }
        if (waiting.incrementAndGet() > maxWaiting) {
            waiting.decrementAndGet();
            ids.remove(id);
            throw Status.RESOURCE_EXHAUSTED.withDescription(maxWaiting + " requests are already waiting on this"
                    + " attention worker").asRuntimeException();
        }
        Generation g = new Generation(id, prompt, resume, sampler, maxTokens, stopIds, s.getIgnoreEos(), s.getLogprobs(),
                out);
        out.setOnCancelHandler(() -> g.cancelled = true);
        arrivals.add(g);
        wake();
    }

    /**
     * Why the output token at 1-based position n ends the request ("stop": EOS or a stop token; "length": max_tokens),
     * or null. The context limit is within max_tokens (capped to the room the prompt leaves).
     */
    private String endReason(int token, int n, int maxTokens, int[] stopIds, boolean ignoreEos) {
        if (token == config.eosTokenId() && !ignoreEos || contains(stopIds, token)) {
            return "stop";
        }
        return n >= maxTokens ? "length" : null;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] c = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    private static StatusRuntimeException invalid(String why) {
        return Status.INVALID_ARGUMENT.withDescription(why).asRuntimeException();
    }

    /** Makes sure a step task is queued on the engine thread. */
    private void wake() {
        if (scheduled.compareAndSet(false, true)) {
            try {
                engineThread.execute(this::step);
            } catch (RejectedExecutionException e) {
                scheduled.set(false);
                failAll(Status.UNAVAILABLE.withDescription("this attention worker is shutting down"));
            }
        }
    }

    /**
     * Runs the lanes' steps until none has work or other work waits for the engine thread (engine thread). Re-queues
     * itself while there is work.
     */
    private void step() {
        try {
            admit();
            dropCancelled(-1);
            if (!running.isEmpty()) {
                runLanes();
            }
        } catch (RuntimeException | Error e) {
            log.accept("generation step failed: " + e);
            failAll(Status.INTERNAL.withDescription("generation step failed: " + e));
        } finally {
            runningCount = running.size();
            if (running.isEmpty() && !arrivals.isEmpty()) {
                // Waiting requests, none admissible (Forward's sequences fill --max-sequences): look again in 1 ms
                // instead of spinning the engine thread.
                java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
            }
            scheduled.set(false);
            if (!running.isEmpty() || !arrivals.isEmpty()) {
                wake();
            }
        }
    }

    private void admit() {
        for (Iterator<Generation> it = arrivals.iterator(); it.hasNext(); ) {
            Generation g = it.next();
            if (g.cancelled) {
                it.remove();
                waiting.decrementAndGet();
                ids.remove(g.id);
                continue;
            }
            long reserve = bytesFor((long) g.prompt.length + g.maxTokens);
            if (running.size() + otherSequences.getAsInt() >= maxSequences || reservedBytes + reserve > kvBudgetBytes) {
                return; // FIFO: nobody overtakes the head of the queue
            }
            it.remove();
            waiting.decrementAndGet();
            g.cache = engine.transformer().newSequence(config.maxPositionEmbeddings());
            g.reserved = reserve;
            reservedBytes += reserve;
            g.admittedNs = System.nanoTime();
            queued.accept(g.admittedNs - g.arrivedNs);
            running.add(g);
        }
    }

    /** Finishes the cancelled requests of a lane between its steps (or, with -1, of every lane: none in a step). */
    private void dropCancelled(int lane) {
        running.removeIf(g -> {
            if (g.cancelled && (lane < 0 || g.lane == lane || g.lane < 0)) {
                finish(g, null, null);
                return true;
            }
            return false;
        });
    }

    private void runLanes() {
        int lanes = engine.microBatches();
        try {
            engine.pipeline(lanes, false, this::nextStep);
        } catch (ExpertsUnavailableException e) {
            Status st = (e.isTimeout() ? Status.DEADLINE_EXCEEDED : Status.UNAVAILABLE).withDescription(e.getMessage()
                    + " (the request's sequence was dropped: submit it again)");
            for (int l = 0; l < lanes; l++) {
                for (Generation g : passMembers.get(l)) {
                    running.remove(g);
                    finish(g, null, st);
                }
                passMembers.get(l).clear();
                passChunks.get(l).clear();
            }
        }
    }

    /**
     * A lane's step ended ({@code out}), or the lane is idle (null): streams the step's tokens, admits waiting
     * requests and returns the lane's next step (empty: nothing to do, or other work waits for the engine thread).
     */
    private List<Transformer.Chunk> nextStep(int lane, Transformer.Output out) {
        List<Generation> members = passMembers.get(lane);
        List<Transformer.Chunk> chunks = passChunks.get(lane);
        if (out != null) {
            deliver(members, chunks, out);
        }
        members.clear();
        chunks.clear();
        if (yieldNow.getAsBoolean()) {
            runningCount = running.size();
            return List.of();
        }
        admit();
        dropCancelled(lane);
        int lanes = engine.microBatches();
        for (Generation g : running) {
            if (g.lane < 0 || g.lane >= lanes) {
                g.lane = lightestLane(lanes);
            }
        }
        int budget = maxStepTokens;
        for (Generation g : running) {
            if (g.lane == lane && g.prefilled == g.input.length) {
                chunks.add(new Transformer.Chunk(g.cache, new int[] {g.last}));
                members.add(g);
                budget--;
            }
        }
        for (Generation g : running) {
            if (g.lane == lane && g.prefilled < g.input.length && budget > 0) {
                int n = Math.min(budget, g.input.length - g.prefilled);
                chunks.add(new Transformer.Chunk(g.cache, java.util.Arrays.copyOfRange(g.input, g.prefilled, g.prefilled + n)));
                members.add(g);
                budget -= n;
            }
        }
        runningCount = running.size();
        return chunks.isEmpty() ? List.of() : List.copyOf(chunks);
    }

    /** The lane (of the first {@code lanes}) with the fewest requests in it, the lowest on a tie. */
    private int lightestLane(int lanes) {
        int best = 0;
        int bestCount = Integer.MAX_VALUE;
        for (int l = 0; l < lanes; l++) {
            int count = 0;
            for (Generation g : running) {
                count += g.lane == l ? 1 : 0;
            }
            if (count < bestCount) {
                best = l;
                bestCount = count;
            }
        }
        return best;
    }

    /** Samples and streams the tokens of a lane's step that ended; ends the requests that are done. */
    private void deliver(List<Generation> members, List<Transformer.Chunk> chunks, Transformer.Output out) {
        int vocab = config.vocabSize();
        int[] topIds = new int[MAX_LOGPROBS];
        float[] topValues = new float[MAX_LOGPROBS];
        for (int i = 0; i < members.size(); i++) {
            Generation g = members.get(i);
            boolean decoding = g.prefilled == g.input.length;
            if (!decoding) {
                g.prefilled += chunks.get(i).tokens().length;
                if (g.prefilled < g.input.length) {
                    continue;
                }
            }
            int token = g.sampler.sample(out.logits(), i * vocab);
            g.sampler.accept(token);
            g.last = token;
            g.generated++;
            if (g.firstTokenNs == 0) {
                g.firstTokenNs = System.nanoTime();
            }
            if (g.cancelled) {
                continue;
            }
            GeneratedToken.Builder tb = GeneratedToken.newBuilder().setTokenId(token);
            if (g.logprobs > 0) {
                tb.setLogprob(SequenceSampler.logprobs(out.logits(), i * vocab, vocab, token, g.logprobs, topIds, topValues));
                for (int k = 0; k < g.logprobs; k++) {
                    tb.addTopLogprobs(TokenLogprob.newBuilder().setTokenId(topIds[k]).setLogprob(topValues[k]));
                }
            }
            try {
                g.out.onNext(GenerateEvent.newBuilder().setToken(tb).build());
            } catch (RuntimeException e) {
                g.cancelled = true; // the call is gone
                continue;
            }
            String reason = null;
            int stopId = -1;
            if (token == config.eosTokenId() && !g.ignoreEos) {
                reason = "stop";
            } else if (contains(g.stopIds, token)) {
                reason = "stop";
                stopId = token;
            } else if (g.generated >= g.maxTokens || g.cache.length() + 1 > g.cache.maxLength()) {
                reason = "length";
            }
            if (reason != null) {
                running.remove(g);
                GenerateFinished.Builder fb = GenerateFinished.newBuilder().setReason(reason);
                if (stopId >= 0) {
                    fb.setStopTokenId(stopId);
                }
                finish(g, fb, null);
            }
        }
    }

    private static boolean contains(int[] a, int v) {
        for (int x : a) {
            if (x == v) {
                return true;
            }
        }
        return false;
    }

    /** Ends a generation: its final event (or error), and frees its sequence and reservation. */
    private void finish(Generation g, GenerateFinished.Builder done, Status error) {
        reservedBytes -= g.reserved;
        g.reserved = 0;
        g.cache = null;
        ids.remove(g.id);
        if (g.cancelled && done == null && error == null) {
            try {
                g.out.onError(Status.CANCELLED.withDescription("cancelled").asRuntimeException());
            } catch (RuntimeException e) {
                // already closed
            }
            return;
        }
        try {
            if (error != null) {
                g.out.onError(error.asRuntimeException());
                return;
            }
            long now = System.nanoTime();
            done.setPromptTokens(g.prompt.length)
                    .setCompletionTokens(g.generated)
                    .setQueueSeconds((g.admittedNs - g.arrivedNs) / 1e9)
                    .setPrefillSeconds(((g.firstTokenNs != 0 ? g.firstTokenNs : now) - g.admittedNs) / 1e9);
            g.out.onNext(GenerateEvent.newBuilder().setFinished(done).build());
            g.out.onCompleted();
        } catch (RuntimeException e) {
            // The client went away meanwhile.
        }
    }

    private void failAll(Status st) {
        for (Generation g : running) {
            finish(g, null, st);
        }
        running.clear();
        runningCount = 0;
        for (Generation g; (g = arrivals.poll()) != null; ) {
            waiting.decrementAndGet();
            finish(g, null, st);
        }
    }
}
