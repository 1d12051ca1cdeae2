package io.epserve.transport;

import io.epserve.transport.sbe.ErrorCode;
import io.epserve.transport.sbe.ErrorDecoder;

/** A peer reported that it failed a step ({@code Error} message); carries the peer's code and reason. */
public final class PeerErrorException extends TransportException {
    private static final long serialVersionUID = 1L;

    private final long epoch;
    private final long source;
    private final long step;
    private final int layer;
    private final int microBatch;
    private final ErrorCode code;

    public PeerErrorException(long epoch, long source, long step, int layer, int microBatch, ErrorCode code,
                              String reason) {
        super("worker " + source + " failed step " + step + " layer " + layer + " micro-batch " + microBatch
                + " (epoch " + Long.toUnsignedString(epoch) + "): " + code + ": " + reason);
        this.epoch = epoch;
        this.source = source;
        this.step = step;
        this.layer = layer;
        this.microBatch = microBatch;
        this.code = code;
    }

    /** Reads an {@code Error} message (allocates: error path only). */
    public static PeerErrorException of(ErrorDecoder error) {
        long epoch = error.epoch();
        long step = error.step();
        long source = error.source();
        int layer = error.layer();
        ErrorCode code = error.code();
        int microBatch = error.microBatch();
        return new PeerErrorException(epoch, source, step, layer, microBatch, code, error.message());
    }

    public long epoch() {
        return epoch;
    }

    public long source() {
        return source;
    }

    public long step() {
        return step;
    }

    public int layer() {
        return layer;
    }

    public int microBatch() {
        return microBatch;
    }

    public ErrorCode code() {
        return code;
    }
}
