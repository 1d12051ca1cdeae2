package io.epserve.transport;

import io.aeron.ControlledFragmentAssembler;
import io.aeron.Subscription;
import io.aeron.logbuffer.ControlledFragmentHandler;
import io.aeron.logbuffer.Header;
import org.agrona.DirectBuffer;

/**
 * Receives whole messages from one Aeron subscription: a {@link ControlledFragmentAssembler} puts fragmented messages
 * back together (one reused buffer per publisher session, grown to the largest message seen), and a
 * {@link WireDecoder} checks each message and calls the {@link WireHandler} for its type. Nothing is allocated per
 * message once the assembly buffers have grown to the largest message.
 *
 * <p>Failures are never swallowed. Aeron's own {@code Image.poll} would catch a handler's exception and only hand it
 * to the client's error handler (stderr); instead, when the decoder rejects a message ({@link WireFormatException})
 * or the handler throws (for instance {@link PeerErrorException}), the receiver stops the poll right after that
 * message and {@link #poll} throws the exception. The failing message counts as consumed: the next poll continues
 * with the message after it. Not thread-safe: poll from one thread.
 */
public final class MessageReceiver implements AutoCloseable {
    /** Initial size of the reassembly buffer per publisher: the default maximum message of a 16 MiB term. */
    public static final int DEFAULT_ASSEMBLY_LENGTH = 2 * 1024 * 1024;

    private final Subscription subscription;
    private final WireDecoder decoder = new WireDecoder();
    private final WireHandler handler;
    private final ControlledFragmentAssembler assembler;
    private Throwable failure;
    private long messages;
    private long bytes;

    public MessageReceiver(Subscription subscription, WireHandler handler) {
        this(subscription, handler, DEFAULT_ASSEMBLY_LENGTH);
    }

    public MessageReceiver(Subscription subscription, WireHandler handler, int initialAssemblyLength) {
        this.subscription = subscription;
        this.handler = handler;
        ControlledFragmentHandler onMessage = this::onMessage;
        this.assembler = new ControlledFragmentAssembler(onMessage, initialAssemblyLength, true);
    }

    /**
     * Polls up to {@code fragmentLimit} fragments (a whole message may take several) and handles every message they
     * complete. Returns the number of fragments read (0: nothing available).
     *
     * @throws WireFormatException if a message was malformed (the poll stopped after it)
     * @throws RuntimeException whatever the handler threw (the poll stopped after that message)
     */
    public int poll(int fragmentLimit) {
        int fragments = subscription.controlledPoll(assembler, fragmentLimit);
        if (failure != null) {
            Throwable t = failure;
            failure = null;
            if (t instanceof RuntimeException e) {
                throw e;
            }
            if (t instanceof Error e) {
                throw e;
            }
            throw new TransportException("message handler failed: " + t, t);
        }
        return fragments;
    }

    /** True while at least one publisher is connected. */
    public boolean isConnected() {
        return subscription.isConnected();
    }

    public Subscription subscription() {
        return subscription;
    }

    /** Whole messages received (reassembled), including any rejected by the decoder or whose handler threw. */
    public long messages() {
        return messages;
    }

    /** Bytes of those messages. */
    public long bytes() {
        return bytes;
    }

    /** Closes the subscription. */
    @Override
    public void close() {
        subscription.close();
    }

    private ControlledFragmentHandler.Action onMessage(DirectBuffer buffer, int offset, int length, Header header) {
        messages++;
        bytes += length;
        try {
            decoder.decode(buffer, offset, length, handler);
            return ControlledFragmentHandler.Action.CONTINUE;
        } catch (Throwable t) {
            failure = t;
            return ControlledFragmentHandler.Action.BREAK;
        }
    }
}
