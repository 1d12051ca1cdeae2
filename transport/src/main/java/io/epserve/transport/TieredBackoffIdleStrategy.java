package io.epserve.transport;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongConsumer;
import java.util.function.LongSupplier;
import org.agrona.concurrent.IdleStrategy;

/**
 * A backoff that stays quick while work is recent and becomes cheap when it is not: spin, yield, then park for at
 * most {@code shortParkNs} until the thread has been idle for {@code shortWindowNs}, and only after that double the
 * park up to {@code maxParkNs}.
 *
 * <p>Why: Agrona's {@link org.agrona.concurrent.BackoffIdleStrategy} reaches its longest park after about a
 * millisecond of idleness. In a decode step the gaps between messages are longer than that (an attention worker
 * computes a micro-batch's attention for tens of milliseconds while its media driver has nothing to do), so every
 * dispatch and combine met a driver, and then a worker, parked for up to 1 ms on each side: measured with
 * {@code bench-cluster} on {@code small} (pinned, batch 16), the expert round trip exceeded the expert worker's own
 * time by ~5 ms per layer. With the park capped at 50 us while traffic is recent, decode was 7-19 % (m = 1) and
 * 11-33 % (m = 2) faster over three interleaved runs; the attention and expert compute themselves were faster too,
 * which we read as a vCPU that halts for a millisecond at a time coming back to cold caches (not verified). An idle
 * worker still settles at one wake-up per {@code maxParkNs} once {@code shortWindowNs} has passed.
 *
 * <p>Not thread-safe: one instance per agent, as for every Agrona idle strategy.
 */
public final class TieredBackoffIdleStrategy implements IdleStrategy {
    /** Spins and yields before parking, as Agrona's backoff. */
    public static final int SPINS = 10;
    public static final int YIELDS = 5;
    /** The longest park while work is recent. */
    public static final long SHORT_PARK_NS = TimeUnit.MICROSECONDS.toNanos(50);
    /** How long after the last work parks stay short: longer than any gap within a step. */
    public static final long SHORT_WINDOW_NS = TimeUnit.MILLISECONDS.toNanos(200);
    /** The longest park of an idle thread. */
    public static final long MAX_PARK_NS = TimeUnit.MILLISECONDS.toNanos(1);
    private static final long MIN_PARK_NS = TimeUnit.MICROSECONDS.toNanos(1);

    private final long shortParkNs;
    private final long shortWindowNs;
    private final long maxParkNs;
    private final LongSupplier clock;
    private final LongConsumer parker;
    private int spins;
    private int yields;
    private long parkNs = MIN_PARK_NS;
    private boolean idleSinceSet;
    private long idleSinceNs;

    /** The defaults above: parks of at most 50 us for 200 ms after the last work, then up to 1 ms. */
    public TieredBackoffIdleStrategy() {
        this(SHORT_PARK_NS, SHORT_WINDOW_NS, MAX_PARK_NS);
    }

    public TieredBackoffIdleStrategy(long shortParkNs, long shortWindowNs, long maxParkNs) {
        this(shortParkNs, shortWindowNs, maxParkNs, System::nanoTime, LockSupport::parkNanos);
    }

    /** With a clock and a parker of the caller's (tests). */
    TieredBackoffIdleStrategy(long shortParkNs, long shortWindowNs, long maxParkNs, LongSupplier clock,
            LongConsumer parker) {
        if (shortParkNs < MIN_PARK_NS || maxParkNs < shortParkNs || shortWindowNs < 0) {
            throw new IllegalArgumentException("need 1 us <= shortParkNs <= maxParkNs and shortWindowNs >= 0, got "
                    + shortParkNs + ", " + maxParkNs + ", " + shortWindowNs);
        }
        this.shortParkNs = shortParkNs;
        this.shortWindowNs = shortWindowNs;
        this.maxParkNs = maxParkNs;
        this.clock = clock;
        this.parker = parker;
    }

    @Override
    public void idle(int workCount) {
        if (workCount > 0) {
            reset();
        } else {
            idle();
        }
    }

    @Override
    public void idle() {
        if (spins < SPINS) {
            spins++;
            Thread.onSpinWait();
            return;
        }
        if (yields < YIELDS) {
            yields++;
            Thread.yield();
            return;
        }
        long now = clock.getAsLong();
        if (!idleSinceSet) {
            idleSinceSet = true;
            idleSinceNs = now;
        }
        long cap = now - idleSinceNs < shortWindowNs ? shortParkNs : maxParkNs;
        long park = Math.min(parkNs, cap);
        parker.accept(park);
        parkNs = Math.min(park << 1, maxParkNs);
    }

    @Override
    public void reset() {
        spins = 0;
        yields = 0;
        parkNs = MIN_PARK_NS;
        idleSinceSet = false;
    }

    @Override
    public String alias() {
        return "tiered-backoff";
    }
}
