package io.epserve.transport;

/**
 * A send did not complete before its deadline: the receiver was too slow (back-pressure), gone, or never connected.
 * Carries the last {@code Publication.offer} result so the cause is visible.
 */
public final class TransportTimeoutException extends TransportException {
    private static final long serialVersionUID = 1L;

    private final long lastOfferResult;
    private final long waitedNs;

    public TransportTimeoutException(String message, long lastOfferResult, long waitedNs) {
        super(message);
        this.lastOfferResult = lastOfferResult;
        this.waitedNs = waitedNs;
    }

    /** The last value {@code Publication.offer} returned (one of the negative {@code Publication} status codes). */
    public long lastOfferResult() {
        return lastOfferResult;
    }

    /** How long the sender tried, in nanoseconds. */
    public long waitedNs() {
        return waitedNs;
    }
}
