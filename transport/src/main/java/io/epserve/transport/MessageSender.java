package io.epserve.transport;

import io.aeron.Publication;
import java.util.concurrent.TimeUnit;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;

/**
 * Sends whole messages on one Aeron publication, never dropping one silently.
 *
 * <p>{@link #send} offers the message; Aeron fragments a message larger than the MTU itself (up to
 * {@link #maxMessageLength()} = termLength / 8). While the offer returns {@code BACK_PRESSURED} (the receiver or the
 * network is behind), {@code ADMIN_ACTION} (term rotation) or {@code NOT_CONNECTED} (no subscriber yet, or it went
 * away), it retries with the idle strategy until a deadline of {@link #timeoutNs()} after the call, then throws
 * {@link TransportTimeoutException} saying which. {@code CLOSED} and {@code MAX_POSITION_EXCEEDED} throw
 * {@link TransportException} at once. Nothing is allocated on the success path.
 *
 * <p>The default idle strategy backs off from spinning to yielding to parking (1 us .. 1 ms), so a blocked sender does
 * not burn a core (the build machine has two). Not thread-safe: one sender per publication and thread (use an
 * exclusive publication).
 */
public final class MessageSender implements MessageSink, AutoCloseable {
    /** Default deadline for one {@link #send}. */
    public static final long DEFAULT_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(5);

    private final Publication publication;
    private final IdleStrategy idleStrategy;
    private final long timeoutNs;
    private final OfferCounters shared;

    private long messages;
    private long bytes;
    private long backPressured;
    private long adminActions;
    private long notConnected;

    /** A sender with the default deadline and a backoff idle strategy. */
    public MessageSender(Publication publication) {
        this(publication, new BackoffIdleStrategy(), DEFAULT_TIMEOUT_NS);
    }

    public MessageSender(Publication publication, IdleStrategy idleStrategy, long timeoutNs) {
        this(publication, idleStrategy, timeoutNs, null);
    }

    /**
     * A sender that also counts its failed offers in {@code shared} (thread-safe, read by the metrics endpoint);
     * null: only in this sender's own counters.
     */
    public MessageSender(Publication publication, IdleStrategy idleStrategy, long timeoutNs, OfferCounters shared) {
        if (timeoutNs <= 0) {
            throw new IllegalArgumentException("timeoutNs must be positive, got " + timeoutNs);
        }
        this.publication = publication;
        this.idleStrategy = idleStrategy;
        this.timeoutNs = timeoutNs;
        this.shared = shared;
    }

    @Override
    public void send(DirectBuffer buffer, int offset, int length) {
        if (length > publication.maxMessageLength()) {
            throw new IllegalArgumentException("a " + length + "-byte message exceeds maxMessageLength "
                    + publication.maxMessageLength() + " (termLength / 8) of " + describe()
                    + ": split it (DispatchWriter/CombineWriter do) or raise the term length");
        }
        long result = publication.offer(buffer, offset, length);
        if (result > 0) {
            sent(length);
            return;
        }
        long start = System.nanoTime();
        long deadline = start + timeoutNs;
        idleStrategy.reset();
        while (true) {
            if (result == Publication.BACK_PRESSURED) {
                backPressured++;
                if (shared != null) {
                    shared.countBackPressured();
                }
            } else if (result == Publication.ADMIN_ACTION) {
                adminActions++;
                if (shared != null) {
                    shared.countAdminAction();
                }
            } else if (result == Publication.NOT_CONNECTED) {
                notConnected++;
                if (shared != null) {
                    shared.countNotConnected();
                }
            } else if (result == Publication.CLOSED) {
                throw new TransportException("publication closed: " + describe());
            } else if (result == Publication.MAX_POSITION_EXCEEDED) {
                throw new TransportException("publication reached its maximum position, a new one is needed: "
                        + describe());
            } else {
                throw new TransportException("unexpected offer result " + result + ": " + describe());
            }
            long now = System.nanoTime();
            if (now - deadline >= 0) {
                throw timeout(result, now - start, length);
            }
            idleStrategy.idle();
            result = publication.offer(buffer, offset, length);
            if (result > 0) {
                sent(length);
                return;
            }
        }
    }

    /** Waits until a subscriber is connected, or throws {@link TransportTimeoutException} after {@code timeoutNs}. */
    public void awaitConnected(long timeoutNs) {
        long start = System.nanoTime();
        idleStrategy.reset();
        while (!publication.isConnected()) {
            if (publication.isClosed()) {
                throw new TransportException("publication closed: " + describe());
            }
            long waited = System.nanoTime() - start;
            if (waited >= timeoutNs) {
                throw new TransportTimeoutException("no subscriber connected within "
                        + TimeUnit.NANOSECONDS.toMillis(timeoutNs) + " ms: " + describe(), Publication.NOT_CONNECTED,
                        waited);
            }
            idleStrategy.idle();
        }
    }

    @Override
    public int maxMessageLength() {
        return publication.maxMessageLength();
    }

    public boolean isConnected() {
        return publication.isConnected();
    }

    public Publication publication() {
        return publication;
    }

    public long timeoutNs() {
        return timeoutNs;
    }

    /** Messages sent. */
    public long messages() {
        return messages;
    }

    /** Bytes of messages sent (without Aeron frame headers). */
    public long bytes() {
        return bytes;
    }

    /** The counters this sender shares with the other senders of its driver handle, or null. */
    public OfferCounters sharedCounters() {
        return shared;
    }

    /** Offers that returned {@code BACK_PRESSURED}. */
    public long backPressured() {
        return backPressured;
    }

    /** Offers that returned {@code ADMIN_ACTION}. */
    public long adminActions() {
        return adminActions;
    }

    /** Offers that returned {@code NOT_CONNECTED}. */
    public long notConnected() {
        return notConnected;
    }

    /** Closes the publication. */
    @Override
    public void close() {
        publication.close();
    }

    private void sent(int length) {
        messages++;
        bytes += length;
    }

    private TransportTimeoutException timeout(long lastResult, long waitedNs, int length) {
        String why = lastResult == Publication.NOT_CONNECTED
                ? "no subscriber connected (receiver not started, or gone)"
                : lastResult == Publication.BACK_PRESSURED
                        ? "back-pressured: the receiver is not consuming (slow, stalled, or gone)"
                        : "offer kept returning " + Publication.errorString(lastResult);
        return new TransportTimeoutException("send of a " + length + "-byte message timed out after "
                + TimeUnit.NANOSECONDS.toMillis(waitedNs) + " ms: " + why + ": " + describe(), lastResult, waitedNs);
    }

    private String describe() {
        return publication.channel() + " stream " + publication.streamId() + " session " + publication.sessionId();
    }
}
