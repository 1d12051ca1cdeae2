package io.epserve.transport;

import io.epserve.transport.sbe.ErrorCode;
import io.epserve.transport.sbe.HelloStatus;
import io.epserve.transport.sbe.Role;

/**
 * Sends the small control messages: {@code Error} (fail a step with a clear reason) and {@code Hello} (identify a
 * worker, announce readiness or departure). Off the hot path: the strings are encoded with {@code String.getBytes}.
 * Not thread-safe.
 */
public final class ControlWriter {
    private static final int CAPACITY = 64 * 1024;

    private final MessageSink sink;
    private final EncodeBuffer out;

    public ControlWriter(MessageSink sink) {
        this.sink = sink;
        this.out = new EncodeBuffer(Math.min(CAPACITY, sink.maxMessageLength()));
    }

    /** Sends an {@code Error}; a message longer than the buffer allows is cut (with "..."). */
    public void error(long epoch, int source, long step, int layer, int microBatch, ErrorCode code, String message) {
        DispatchWriter.checkRange("layer", layer, 0xFFFF);
        DispatchWriter.checkRange("microBatch", microBatch, 0xFF);
        int room = (out.capacity() - 256) / 4;
        String text = message == null ? "" : message.length() > room ? message.substring(0, room) + "..." : message;
        out.wrapError()
                .epoch(epoch)
                .step(step)
                .source(source & 0xFFFF_FFFFL)
                .layer(layer)
                .code(code)
                .microBatch((short) microBatch)
                .message(text);
        out.sendTo(sink);
    }

    /** Sends a {@code Hello}: who the sender is, which model it serves, and where it receives. */
    public void hello(long epoch, int source, Role role, HelloStatus status, String fingerprint, String replyChannel,
                      int replyStreamId) {
        out.wrapHello()
                .epoch(epoch)
                .source(source & 0xFFFF_FFFFL)
                .replyStreamId(replyStreamId)
                .role(role)
                .status(status)
                .fingerprint(fingerprint == null ? "" : fingerprint)
                .replyChannel(replyChannel == null ? "" : replyChannel);
        out.sendTo(sink);
    }
}
