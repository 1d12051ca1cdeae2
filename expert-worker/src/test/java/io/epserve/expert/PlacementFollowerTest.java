package io.epserve.expert;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.cluster.Placement;
import io.epserve.cluster.PlacementTable;
import org.junit.jupiter.api.Test;

/** The make-before-break rule of an expert worker over reads that are not one snapshot. */
class PlacementFollowerTest {
    private static final int ME = 2;

    /** Two layers of four experts, worker 1 and 2; {@code mine} lists the (layer * 4 + expert) given to worker 2. */
    private static PlacementTable table(long epoch, int... mine) {
        int[][][] r = new int[2][4][];
        for (int l = 0; l < 2; l++) {
            for (int e = 0; e < 4; e++) {
                r[l][e] = new int[] {1};
            }
        }
        for (int m : mine) {
            r[m / 4][m % 4] = new int[] {ME};
        }
        return new PlacementTable(epoch, false, r);
    }

    private static PlacementFollower follower() {
        return new PlacementFollower(ME, 2, false, 4);
    }

    private static Placement none() {
        return Placement.none(2, false, 4);
    }

    @Test
    void aFlipBetweenTheTwoReadsKeepsTheSharePreparedForTheTarget() {
        PlacementTable e1 = table(1, 0, 1);
        PlacementTable e2 = table(2, 0, 1, 7); // a drain moves layer 1 expert 3 to this worker
        PlacementFollower f = follower();
        f.read(null, e1, 0);
        Placement held = f.need(none(), true);
        f.read(e2, e1, 50);
        held = f.need(held, true);
        assertTrue(held.wants(1, 3), "the target's share is mapped before the flip");
        // The coordinator flipped (current = e2, target deleted), but this tick's current read is from before the flip
        // (current read before the target, or a read that goes back) while the attention worker switches to e2.
        f.read(null, e1, 100);
        assertSame(e2, f.target(), "a target read before stays until a current as new is read");
        held = f.need(held, f.allSwitched(1));
        assertTrue(held.wants(1, 3), "dropped the expert the new table gives it: " + held);
        held = f.need(held, f.allSwitched(2));
        assertTrue(held.wants(1, 3), "dropped the expert the new table gives it: " + held);
        f.read(null, e2, 150);
        assertNull(f.target());
        held = f.need(held, f.allSwitched(2));
        assertEquals(e2.assignment(ME), held);
    }

    @Test
    void anAttentionWorkerAheadOfThisWorkersReadsHasNotSwitched() {
        PlacementFollower f = follower();
        f.read(null, table(1, 0, 1), 0);
        assertTrue(f.allSwitched(1, 1));
        assertFalse(f.allSwitched(1, 2), "an attention worker on epoch 2 read more than this worker");
        assertFalse(f.allSwitched(0, 1), "one still on no table");
        assertTrue(f.allSwitched(), "no attention worker");
        Placement held = table(1, 0, 1, 2).assignment(ME);
        assertEquals(held, f.need(held, false), "keeps everything until all switched");
        assertEquals(table(1, 0, 1).assignment(ME), f.need(held, true));
    }

    @Test
    void aCurrentTableReadBackIsIgnored() {
        PlacementFollower f = follower();
        PlacementTable e2 = table(2, 3);
        f.read(null, e2, 0);
        f.read(null, table(1, 0), 50);
        assertSame(e2, f.current());
        assertTrue(f.allSwitched(2));
        assertEquals(e2.assignment(ME), f.need(table(1, 0).assignment(ME), true));
    }

    @Test
    void aTargetDroppedWithoutAFlipIsLetGoAfterAWhile() {
        PlacementFollower f = follower();
        PlacementTable e1 = table(1, 0);
        f.read(table(2, 0, 5), e1, 0);
        assertTrue(f.placed());
        f.read(null, e1, 1_000);
        f.read(null, e1, 1_000 + PlacementFollower.DROPPED_TARGET_MS);
        assertTrue(f.need(none(), true).wants(1, 1), "still within the wait");
        f.read(null, e1, 1_001 + PlacementFollower.DROPPED_TARGET_MS);
        assertNull(f.target());
        assertEquals(e1.assignment(ME), f.need(e1.assignment(ME).union(table(2, 0, 5).assignment(ME)), true));
        // A target planned again with the same epoch replaces the one read before.
        f.read(table(2, 0, 6), e1, 9_000);
        f.read(table(2, 0, 4), e1, 9_050);
        Placement need = f.need(none(), true);
        assertTrue(need.wants(1, 0) && !need.wants(1, 2), need.toString());
    }

    @Test
    void aDrainingWorkerIsPlacedWhileAnyTableItFollowsGivesItExperts() {
        PlacementFollower f = follower();
        f.read(null, table(1, 0, 1), 0);
        assertTrue(f.placed());
        f.read(table(2), table(1, 0, 1), 50);
        assertTrue(f.placed(), "the current still gives it experts");
        f.read(null, table(1, 0, 1), 100);
        assertTrue(f.placed(), "the flip is not read yet");
        f.read(null, table(2), 150);
        assertFalse(f.placed());
        assertTrue(f.need(none(), true).isEmpty());
    }
}
