package io.epserve.expert;

import io.epserve.transport.MessageSink;
import io.epserve.transport.WireDecoder;
import io.epserve.transport.WireHandler;
import java.util.ArrayList;
import java.util.List;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;

/** A {@link MessageSink} that keeps copies of the messages, to decode them later. */
final class CaptureSink implements MessageSink {
    private final int maxMessageLength;
    final List<byte[]> messages = new ArrayList<>();

    CaptureSink(int maxMessageLength) {
        this.maxMessageLength = maxMessageLength;
    }

    @Override
    public void send(DirectBuffer buffer, int offset, int length) {
        byte[] copy = new byte[length];
        buffer.getBytes(offset, copy);
        messages.add(copy);
    }

    @Override
    public int maxMessageLength() {
        return maxMessageLength;
    }

    /** Decodes message i into {@code handler}. */
    void deliver(int i, WireHandler handler) {
        byte[] m = messages.get(i);
        new WireDecoder().decode(new UnsafeBuffer(m), 0, m.length, handler);
    }

    /** Decodes every message in order, then forgets them. */
    void drainTo(WireHandler handler) {
        WireDecoder decoder = new WireDecoder();
        for (byte[] m : messages) {
            decoder.decode(new UnsafeBuffer(m), 0, m.length, handler);
        }
        messages.clear();
    }
}
