package io.epserve.loadgen;

import java.util.Arrays;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * What happened to one request: when it arrived (its scheduled time), when it was sent, when each streamed message
 * carrying tokens came and how many tokens it carried, how it ended. Written by one gRPC callback thread at a time
 * while the request runs, read after it finished (the runner's latch orders the two).
 */
public final class RequestOutcome {
    final int index;
    long arrivalNs;
    long sendNs;
    long endNs;
    long[] chunkNs = new long[16];
    int[] chunkTokens = new int[16];
    int chunks;
    int outputTokens;
    final StringBuilder text = new StringBuilder();
    boolean success;
    String error = "";
    String finishReason = "";
    int promptTokens = -1;
    int serverCompletionTokens = -1;
    double serverQueueSeconds = Double.NaN;
    private final AtomicBoolean finished = new AtomicBoolean();

    RequestOutcome(int index) {
        this.index = index;
    }

    /** For tests and other harnesses: a finished outcome from known timings (nanoseconds from the run's start). */
    public static RequestOutcome of(int index, long sendNs, long[] chunkNs, int[] chunkTokens, long endNs,
                                    int promptTokens) {
        RequestOutcome o = new RequestOutcome(index);
        o.arrivalNs = o.sendNs = sendNs;
        for (int i = 0; i < chunkNs.length; i++) {
            o.chunk(chunkNs[i], chunkTokens[i]);
        }
        o.promptTokens = promptTokens;
        o.serverCompletionTokens = o.outputTokens;
        o.finishReason = "length";
        o.succeed(endNs);
        return o;
    }

    /** For tests: a failed outcome. */
    public static RequestOutcome failed(int index, long sendNs, long endNs, String error) {
        RequestOutcome o = new RequestOutcome(index);
        o.arrivalNs = o.sendNs = sendNs;
        o.fail(endNs, error);
        return o;
    }

    void chunk(long atNs, int tokens) {
        if (tokens <= 0) {
            return; // a message without tokens (e.g. bytes of an unfinished character) is no chunk for TTFT/ITL
        }
        if (chunks == chunkNs.length) {
            chunkNs = Arrays.copyOf(chunkNs, chunks * 2);
            chunkTokens = Arrays.copyOf(chunkTokens, chunks * 2);
        }
        chunkNs[chunks] = atNs;
        chunkTokens[chunks] = tokens;
        chunks++;
        outputTokens += tokens;
    }

    /** @return false when the outcome was already decided (e.g. cancelled by the runner) */
    boolean succeed(long atNs) {
        if (!finished.compareAndSet(false, true)) {
            return false;
        }
        endNs = atNs;
        success = true;
        return true;
    }

    boolean fail(long atNs, String why) {
        if (!finished.compareAndSet(false, true)) {
            return false;
        }
        endNs = atNs;
        success = false;
        error = why;
        return true;
    }

    boolean finished() {
        return finished.get();
    }

    public int index() {
        return index;
    }

    public boolean success() {
        return success;
    }

    public String error() {
        return error;
    }

    public int outputTokens() {
        return outputTokens;
    }

    /** Seconds from send to the first message carrying tokens (NaN without one). */
    public double ttft() {
        return chunks == 0 ? Double.NaN : (chunkNs[0] - sendNs) / 1e9;
    }

    /** Seconds from send to the final message. */
    public double latency() {
        return (endNs - sendNs) / 1e9;
    }

    /** The gaps between successive messages carrying tokens, in seconds. */
    public double[] itl() {
        double[] g = new double[Math.max(0, chunks - 1)];
        for (int i = 1; i < chunks; i++) {
            g[i - 1] = (chunkNs[i] - chunkNs[i - 1]) / 1e9;
        }
        return g;
    }

    /** TPOT = (E2EL - TTFT) / (output tokens - 1), or NaN with one output token or fewer. */
    public double tpot() {
        return outputTokens > 1 && chunks > 0 ? (latency() - ttft()) / (outputTokens - 1) : Double.NaN;
    }

    /** Seconds from send to the second token-carrying message (AIPerf's time to second token), or NaN. */
    public double ttst() {
        return chunks < 2 ? Double.NaN : (chunkNs[1] - sendNs) / 1e9;
    }
}
