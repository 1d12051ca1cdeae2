package io.epserve.attention;

import io.epserve.cluster.Placement;
import io.epserve.transport.ControlWriter;
import io.epserve.transport.DispatchWriter;
import io.epserve.transport.MessageSender;

/** One expert worker as its attention worker sees it: where to send, what it serves, whether it is still there. */
final class ExpertLink implements AutoCloseable {
    final int index;
    final String endpoint;
    final String channel;
    final MessageSender sender;
    final DispatchWriter dispatch;
    final ControlWriter control;
    /** Set by its READY Hello. */
    int workerId = -1;
    Placement placement;
    String fingerprint;
    volatile boolean ready;
    /** Why it can no longer be used (GOODBYE, an error, a send that timed out); null while usable. */
    volatile String lost;

    ExpertLink(int index, String endpoint, String channel, MessageSender sender) {
        this.index = index;
        this.endpoint = endpoint;
        this.channel = channel;
        this.sender = sender;
        this.dispatch = new DispatchWriter(sender);
        this.control = new ControlWriter(sender);
    }

    String name() {
        return "expert worker " + (workerId >= 0 ? workerId + " " : "") + "at " + endpoint;
    }

    private boolean closed;

    boolean isClosed() {
        return closed;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            sender.close();
        }
    }
}
