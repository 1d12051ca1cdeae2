package io.epserve.expert;

import io.epserve.cluster.Placement;
import io.epserve.cluster.PlacementTable;

/**
 * What one expert worker must hold, decided from its successive reads of the placement tables and of the epochs the
 * attention workers step with (one thread: the membership ticker's).
 *
 * <p>The rule is make-before-break: hold the current table's share and the target's; drop what only an older table
 * gave only once every attention worker steps with the current epoch. The reads are not one snapshot, and that must
 * never make the worker drop what an attention worker may send it:
 * <ul>
 *   <li>The coordinator's flip writes the new current table, then deletes the target: a tick that reads the current
 *       table before the flip and the target after it sees the old current and no target. CI caught that in a drain:
 *       the worker dropped the experts the new table had just moved to it while the attention worker switched to that
 *       table, and a step failed with UNKNOWN_EXPERT. So the share of a target seen before stays held until a current table at least as new is
 *       read. No flip can miss it: the coordinator flips only after this worker reported holding the target's share,
 *       which it did after reading that target.</li>
 *   <li>A read may go back (seen in CI right after an expert worker was killed: epoch 1 read after epoch 2): the
 *       newest current table read so far is the current one.</li>
 *   <li>An attention worker that steps with an epoch newer than that has read what this worker has not yet: it has
 *       not "switched" for this worker's purpose, which keeps everything until its own reads catch up.</li>
 * </ul>
 */
final class PlacementFollower {
    /** A target read before, then absent this long with no current table as new, was dropped, not made current. */
    static final long DROPPED_TARGET_MS = 5_000;

    private final int id;
    private final int layers;
    private final boolean mtp;
    private final int experts;
    private PlacementTable newestCurrent;
    /** The newest target read that is newer than {@link #newestCurrent}, or null. */
    private PlacementTable pendingTarget;
    private long targetAbsentSinceMs = -1;

    PlacementFollower(int id, int layers, boolean mtp, int experts) {
        this.id = id;
        this.layers = layers;
        this.mtp = mtp;
        this.experts = experts;
    }

    /**
     * Takes one tick's reads. {@code target} should be read before {@code current}: the coordinator writes the
     * current table before it deletes the target, so a target read as absent is then followed by a current read that
     * already has the flip (unless the read goes back, which the rules above also cover).
     */
    void read(PlacementTable target, PlacementTable current, long nowMs) {
        if (current != null && (newestCurrent == null || current.epoch() >= newestCurrent.epoch())) {
            newestCurrent = current;
        }
        long cur = currentEpoch();
        if (target != null && target.epoch() > cur) {
            pendingTarget = target;
            targetAbsentSinceMs = -1;
        } else if (pendingTarget != null) {
            if (pendingTarget.epoch() <= cur) {
                pendingTarget = null;
            } else if (target == null) {
                if (targetAbsentSinceMs < 0) {
                    targetAbsentSinceMs = nowMs;
                } else if (nowMs - targetAbsentSinceMs > DROPPED_TARGET_MS) {
                    pendingTarget = null;
                }
            }
        }
    }

    /** The newest current table read so far (null before the first). */
    PlacementTable current() {
        return newestCurrent;
    }

    /** The target this worker still prepares for: the one just read if newer than the current, else one read before. */
    PlacementTable target() {
        return pendingTarget;
    }

    private long currentEpoch() {
        return newestCurrent == null ? 0 : newestCurrent.epoch();
    }

    /** Whether every attention worker, given by the epochs it announces, steps with exactly the current epoch. */
    boolean allSwitched(long... attentionEpochs) {
        long cur = currentEpoch();
        for (long e : attentionEpochs) {
            if (e != cur) {
                return false;
            }
        }
        return true;
    }

    /** What to hold: the current and pending target shares, and all of {@code held} unless every one switched. */
    Placement need(Placement held, boolean allSwitched) {
        Placement need = Placement.none(layers, mtp, experts);
        if (newestCurrent != null) {
            need = need.union(newestCurrent.assignment(id));
        }
        if (pendingTarget != null) {
            need = need.union(pendingTarget.assignment(id));
        }
        return allSwitched ? need : need.union(held);
    }

    /** Whether a table this worker follows still gives it experts. */
    boolean placed() {
        return newestCurrent != null && newestCurrent.contains(id)
                || pendingTarget != null && pendingTarget.contains(id);
    }
}
