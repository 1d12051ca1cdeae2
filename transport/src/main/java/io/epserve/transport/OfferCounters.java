package io.epserve.transport;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Offers that did not go through (each retry of a send counts again), added up over every {@link MessageSender} that shares this object (those
 * a {@link MediaDriverHandle} creates share its own, so a process sees all of its publications, including those of
 * peers that have since gone). Counted only on the slow path (an offer that failed), read from any thread: what the
 * metrics endpoint exports.
 */
public final class OfferCounters {
    private final AtomicLong backPressured = new AtomicLong();
    private final AtomicLong adminActions = new AtomicLong();
    private final AtomicLong notConnected = new AtomicLong();

    /** Offers that returned {@code BACK_PRESSURED} (the receiver or the network is behind). */
    public long backPressured() {
        return backPressured.get();
    }

    /** Offers that returned {@code ADMIN_ACTION} (term rotation). */
    public long adminActions() {
        return adminActions.get();
    }

    /** Offers that returned {@code NOT_CONNECTED} (no subscriber yet, or it went away). */
    public long notConnected() {
        return notConnected.get();
    }

    void countBackPressured() {
        backPressured.incrementAndGet();
    }

    void countAdminAction() {
        adminActions.incrementAndGet();
    }

    void countNotConnected() {
        notConnected.incrementAndGet();
    }
}
