package io.epserve.transport;

import io.epserve.transport.sbe.CombineEncoder;
import io.epserve.transport.sbe.DispatchEncoder;
import io.epserve.transport.sbe.ErrorEncoder;
import io.epserve.transport.sbe.HelloEncoder;
import io.epserve.transport.sbe.MessageHeaderEncoder;
import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;
import org.agrona.sbe.MessageEncoderFlyweight;

/**
 * A reusable, preallocated buffer for encoding one message at a time, with one reused encoder per message type.
 * {@code wrapX()} writes the message header at offset 0 and returns the encoder positioned on the fixed block; after
 * filling it in, {@link #length()} is the encoded length and {@link #sendTo} hands the message to a sink. Nothing is
 * allocated after construction. Not thread-safe: one per sending thread.
 *
 * <p>The buffer is direct and 64-byte aligned, so Aeron copies it into the term buffer with aligned reads.
 */
public final class EncodeBuffer {
    private static final int ALIGNMENT = 64;

    private final UnsafeBuffer buffer;
    private final MessageHeaderEncoder header = new MessageHeaderEncoder();
    private final DispatchEncoder dispatch = new DispatchEncoder();
    private final CombineEncoder combine = new CombineEncoder();
    private final ErrorEncoder error = new ErrorEncoder();
    private final HelloEncoder hello = new HelloEncoder();
    private MessageEncoderFlyweight current;

    /** A buffer of {@code capacity} bytes: encoding past it throws {@code IndexOutOfBoundsException}. */
    public EncodeBuffer(int capacity) {
        if (capacity < MessageHeaderEncoder.ENCODED_LENGTH) {
            throw new IllegalArgumentException("capacity " + capacity + " is smaller than a message header");
        }
        int aligned = (capacity + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
        this.buffer = new UnsafeBuffer(BufferUtil.allocateDirectAligned(aligned, ALIGNMENT), 0, capacity);
    }

    public UnsafeBuffer buffer() {
        return buffer;
    }

    public int capacity() {
        return buffer.capacity();
    }

    public DispatchEncoder wrapDispatch() {
        current = dispatch;
        return dispatch.wrapAndApplyHeader(buffer, 0, header);
    }

    public CombineEncoder wrapCombine() {
        current = combine;
        return combine.wrapAndApplyHeader(buffer, 0, header);
    }

    public ErrorEncoder wrapError() {
        current = error;
        return error.wrapAndApplyHeader(buffer, 0, header);
    }

    public HelloEncoder wrapHello() {
        current = hello;
        return hello.wrapAndApplyHeader(buffer, 0, header);
    }

    /** Bytes of the message being encoded, header included. */
    public int length() {
        if (current == null) {
            throw new IllegalStateException("no message encoded yet");
        }
        return MessageHeaderEncoder.ENCODED_LENGTH + current.encodedLength();
    }

    /** Sends the message being encoded to {@code sink}; returns its length. */
    public int sendTo(MessageSink sink) {
        int length = length();
        sink.send(buffer, 0, length);
        return length;
    }
}
