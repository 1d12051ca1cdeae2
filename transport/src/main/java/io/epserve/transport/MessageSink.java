package io.epserve.transport;

import org.agrona.DirectBuffer;

/** Where encoded messages go: a {@link MessageSender} on an Aeron publication, or a capture in tests. */
public interface MessageSink {
    /**
     * Sends one complete encoded message, or throws. Never drops silently.
     *
     * @param buffer holding the message, starting with the SBE message header
     * @param offset of the message in the buffer
     * @param length of the message in bytes; at most {@link #maxMessageLength()}
     */
    void send(DirectBuffer buffer, int offset, int length);

    /** The largest message {@link #send} accepts. */
    int maxMessageLength();
}
