package io.epserve.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class TieredBackoffIdleStrategyTest {
    private static final long US = 1_000;
    private static final long MS = 1_000_000;

    private long now;
    private final List<Long> parks = new ArrayList<>();

    private TieredBackoffIdleStrategy strategy() {
        return new TieredBackoffIdleStrategy(50 * US, 200 * MS, MS, () -> now, ns -> {
            parks.add(ns);
            now += ns;
        });
    }

    /** Idles n times and returns the parks they made. */
    private List<Long> idle(TieredBackoffIdleStrategy s, int n) {
        parks.clear();
        for (int i = 0; i < n; i++) {
            s.idle(0);
        }
        return new ArrayList<>(parks);
    }

    @Test
    void spinsAndYieldsThenParksNoLongerThanTheShortParkWhileWorkIsRecent() {
        TieredBackoffIdleStrategy s = strategy();
        List<Long> p = idle(s, TieredBackoffIdleStrategy.SPINS + TieredBackoffIdleStrategy.YIELDS + 10);
        assertEquals(List.of(US, 2 * US, 4 * US, 8 * US, 16 * US, 32 * US, 50 * US, 50 * US, 50 * US, 50 * US), p);
        // Still short a little before the window ends ...
        now = 199 * MS;
        assertEquals(List.of(50 * US), idle(s, 1));
    }

    @Test
    void afterTheWindowTheParkDoublesToTheMaximumAndWorkMakesItShortAgain() {
        TieredBackoffIdleStrategy s = strategy();
        idle(s, TieredBackoffIdleStrategy.SPINS + TieredBackoffIdleStrategy.YIELDS + 8); // idle since the first park
        now = 300 * MS;
        assertEquals(List.of(100 * US, 200 * US, 400 * US, 800 * US, MS, MS), idle(s, 6));
        s.idle(1); // work: back to spinning, then short parks
        List<Long> p = idle(s, TieredBackoffIdleStrategy.SPINS + TieredBackoffIdleStrategy.YIELDS + 8);
        assertEquals(List.of(US, 2 * US, 4 * US, 8 * US, 16 * US, 32 * US, 50 * US, 50 * US), p);
        s.reset();
        assertEquals(List.of(), idle(s, TieredBackoffIdleStrategy.SPINS + TieredBackoffIdleStrategy.YIELDS));
    }

    @Test
    void refusesParksThatCannotBeOrdered() {
        assertThrows(IllegalArgumentException.class, () -> new TieredBackoffIdleStrategy(2 * MS, 200 * MS, MS));
        assertThrows(IllegalArgumentException.class, () -> new TieredBackoffIdleStrategy(0, 200 * MS, MS));
        assertThrows(IllegalArgumentException.class, () -> new TieredBackoffIdleStrategy(US, -1, MS));
        assertEquals("tiered-backoff", new TieredBackoffIdleStrategy().alias());
        assertEquals(TieredBackoffIdleStrategy.class, IdleStrategies.of("backoff").getClass());
    }
}
