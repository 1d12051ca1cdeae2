package io.epserve.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Set;
import org.junit.jupiter.api.Test;

class PlacementTableTest {
    /** 2 layers x 4 experts: expert 0 replicated on workers 1 and 2. */
    static PlacementTable table() {
        return new PlacementTable(3, true, new int[][][] {
                {{2, 1}, {1}, {2}, {2}},
                {{1}, {2}, {1}, {2}}});
    }

    @Test
    void jsonRoundTripAndAssignments() {
        PlacementTable t = table();
        PlacementTable back = PlacementTable.fromJson(t.toJson());
        assertEquals(t, back);
        assertArrayEquals(new int[] {1, 2}, t.replicas(0, 0), "replicas are kept sorted");
        assertArrayEquals(new int[] {1, 2}, t.workers());
        assertEquals("0:0-1;1:0,2", t.assignment(1).canonical());
        assertEquals("0:0,2-3;1:1,3", t.assignment(2).canonical());
        assertTrue(t.assignment(7).isEmpty());
        assertEquals(1, t.redundantReplicas());
        assertEquals(4, t.entriesPerWorker().get(1));
        assertTrue(t.samePlacement(t.withEpoch(9)));
        assertFalse(t.equals(t.withEpoch(9)));
        assertTrue(t.describe().contains("epoch 3"), t.describe());
    }

    @Test
    void badTablesAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new PlacementTable(1, false, new int[][][] {{{}}}));
        assertThrows(IllegalArgumentException.class, () -> new PlacementTable(1, false, new int[][][] {{{1, 1}}}));
        assertThrows(IllegalArgumentException.class, () -> new PlacementTable(0, false, new int[][][] {{{1}}}));
        assertThrows(IllegalArgumentException.class, () -> PlacementTable.fromJson("{\"epoch\": 1}"));
        assertThrows(IllegalArgumentException.class, () -> PlacementTable.fromJson("not json"));
    }

    @Test
    void losingAWorkerMovesOnlyItsExperts() {
        PlacementTable t = table();
        double[][] load = {{10, 1, 5, 5}, {1, 1, 1, 1}};
        int[][][] r = PlacementPlanner.withoutWorkers(t, Set.of(2), new int[] {1, 3}, load);
        PlacementTable after = new PlacementTable(4, true, r);
        // Expert 0 of layer 0 keeps its replica on 1; what 2 held goes to 1 or 3, the least loaded first.
        assertArrayEquals(new int[] {1}, after.replicas(0, 0));
        assertArrayEquals(new int[] {1}, after.replicas(0, 1));
        assertArrayEquals(new int[] {3}, after.replicas(0, 2), "worker 3 carries nothing yet: it takes the first orphan");
        assertFalse(after.contains(2));
        for (int l = 0; l < 2; l++) {
            for (int e = 0; e < 4; e++) {
                for (int w : t.replicas(l, e)) {
                    if (w != 2) {
                        assertTrue(java.util.Arrays.binarySearch(after.replicas(l, e), w) >= 0,
                                "a surviving replica moved: layer " + l + " expert " + e);
                    }
                }
            }
        }
    }

    @Test
    void planUsesEveryWorkerAndKeepsWhatItCan() {
        double[][] uniform = PlacementPlanner.uniform(5, 8);
        int[][][] two = PlacementPlanner.plan(uniform, new int[] {1, 2}, 0, null);
        PlacementTable t2 = new PlacementTable(1, true, two);
        assertEquals(20, t2.entriesPerWorker().get(1));
        assertEquals(20, t2.entriesPerWorker().get(2));
        assertEquals(1.0, PlacementPlanner.balance(uniform, t2), 1e-9);
        // Scale-up to three: slots 3 per layer each (9 >= 8: one replica per layer); most of the old table stays.
        int[][][] three = PlacementPlanner.plan(uniform, new int[] {1, 2, 3}, 0, t2);
        PlacementTable t3 = new PlacementTable(2, true, three);
        assertEquals(15, t3.entriesPerWorker().get(3));
        int kept = 0;
        for (int l = 0; l < 5; l++) {
            for (int e = 0; e < 8; e++) {
                for (int w : t3.replicas(l, e)) {
                    kept += java.util.Arrays.binarySearch(t2.replicas(l, e), w) >= 0 ? 1 : 0;
                }
            }
        }
        assertTrue(kept >= 25, "only " + kept + " of 30 replicas on workers 1 and 2 stayed where they were");
    }

    @Test
    void aVeryHotExpertWithMoreReplicasThanWorkersStillMakesAValidTable() {
        double[][] uniform = PlacementPlanner.uniform(5, 8);
        PlacementTable t = new PlacementTable(1, true, PlacementPlanner.plan(uniform, new int[] {1, 2}, 2, null));
        double[][] skew = new double[5][8];
        for (int l = 0; l < 5; l++) {
            for (int e = 0; e < 8; e++) {
                skew[l][e] = e == l ? 100 : e == (l + 3) % 8 ? 60 : 5;
            }
        }
        PlacementTable t2 = new PlacementTable(2, true, PlacementPlanner.plan(skew, new int[] {1, 2}, 2, t));
        assertFalse(t2.samePlacement(t));
        assertTrue(PlacementPlanner.balance(skew, t2) > PlacementPlanner.balance(skew, t),
                PlacementPlanner.balance(skew, t) + " -> " + PlacementPlanner.balance(skew, t2));
        for (int l = 0; l < 5; l++) {
            assertArrayEquals(new int[] {1, 2}, t2.replicas(l, l), "the hottest expert of layer " + l + " on both");
        }
    }
}
