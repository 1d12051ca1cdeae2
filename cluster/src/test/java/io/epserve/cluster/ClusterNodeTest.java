package io.epserve.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Real Hazelcast members in this JVM on 127.0.0.1: join, refusal of another model and of a taken id, the
 * coordinator's make-before-break epochs, and the coordinator's re-election.
 */
class ClusterNodeTest {
    static final ClusterNode.ModelIdentity MODEL = new ClusterNode.ModelIdentity("sha256:aa", 2, 4, false);

    static ClusterNode.Options opts(String name, int port) {
        return ClusterNode.options().name(name).port(port).members(List.of("127.0.0.1:" + port + "-" + (port + 4)));
    }

    static void waitFor(String what, BooleanSupplier cond) throws InterruptedException {
        long until = System.currentTimeMillis() + 30_000;
        while (!cond.getAsBoolean()) {
            if (System.currentTimeMillis() > until) {
                fail("timed out waiting for " + what);
            }
            Thread.sleep(20);
        }
    }

    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void membersPlacementEpochsAndReElection() throws Exception {
        String name = "cnt-" + ProcessHandle.current().pid() + "-" + System.nanoTime();
        int port = 24_000 + (int) (ProcessHandle.current().pid() % 500) * 10;
        PlacementCoordinator.Options co = PlacementCoordinator.options().settleMs(200);
        ControlPlane a = ControlPlane.join(new ControlPlane.Settings(opts(name, port), co), MODEL,
                MemberInfo.of(MemberInfo.EXPERT_WORKER, 1, "", "127.0.0.1:1", "sha256:aa").withState(MemberInfo.READY),
                s -> { });
        ControlPlane b = null;
        ControlPlane r = null;
        ControlPlane c = null;
        try {
            b = ControlPlane.join(new ControlPlane.Settings(opts(name, port), co), MODEL,
                    MemberInfo.of(MemberInfo.EXPERT_WORKER, 2, "", "127.0.0.1:2", "sha256:aa")
                            .withState(MemberInfo.READY), s -> { });
            r = ControlPlane.join(new ControlPlane.Settings(opts(name, port), co), MODEL,
                    MemberInfo.of(MemberInfo.ROUTER, 0, "127.0.0.1:3", "", "sha256:aa"), s -> { });
            ClusterNode na = a.node();
            ClusterNode nb = b.node();
            assertTrue(na.isCoordinator());
            assertFalse(nb.isCoordinator());
            ClusterNode nr = r.node();
            waitFor("three records", () -> nr.liveMembers().size() == 3);

            // Another model, or a taken id, is refused with the reason.
            ClusterException other = assertThrows(ClusterException.class, () -> ClusterNode.join(opts(name, port),
                    new ClusterNode.ModelIdentity("sha256:bb", 2, 4, false),
                    MemberInfo.of(MemberInfo.EXPERT_WORKER, 5, "", "x:1", "sha256:bb")));
            assertTrue(other.getMessage().contains("serves model sha256:aa"), other.getMessage());
            ClusterException taken = assertThrows(ClusterException.class, () -> ClusterNode.join(opts(name, port),
                    MODEL, MemberInfo.of(MemberInfo.EXPERT_WORKER, 2, "", "x:1", "sha256:aa")));
            assertTrue(taken.getMessage().contains("already has expert-worker 2"), taken.getMessage());
            // The same config with other weights: the first worker with weights sets the checkpoint.
            ClusterNode.join(opts(name, port), MODEL.withCheckpoint("sha256:ck1"),
                    MemberInfo.of(MemberInfo.ATTENTION_WORKER, 7, "", "x:1", "sha256:ck1")).close();
            ClusterException weights = assertThrows(ClusterException.class, () -> ClusterNode.join(opts(name, port),
                    MODEL.withCheckpoint("sha256:ck2"), MemberInfo.of(MemberInfo.ATTENTION_WORKER, 8, "", "x:1",
                            "sha256:ck2")));
            assertTrue(weights.getMessage().contains("other weights"), weights.getMessage());

            // Make before break: a target first; current only once both hold their share.
            waitFor("a target", () -> nr.target() != null || nr.current() != null);
            PlacementTable target = nr.target();
            assertNotNull(target, "the epoch flipped before any worker held its experts");
            assertEquals(1, target.epoch());
            Thread.sleep(300);
            assertEquals(null, nr.current(), "flipped without the workers' holdings");
            na.update(i -> i.withHeld(target.assignment(1).canonical()));
            nb.update(i -> i.withHeld(target.assignment(2).canonical()));
            waitFor("epoch 1 current", () -> nr.current() != null && nr.target() == null);
            assertEquals(target.replicas()[0].length, nr.current().expertsPerLayer());

            // A drain request: the next table leaves worker 2 out, everything goes to 1.
            nr.requestDrain(2);
            waitFor("a target without worker 2", () -> nr.target() != null && !nr.target().contains(2));
            PlacementTable t2 = nr.target();
            na.update(i -> i.withHeld(t2.assignment(1).canonical()));
            waitFor("epoch 2 current", () -> nr.current() != null && nr.current().epoch() == 2);
            assertEquals(List.of(1), java.util.Arrays.stream(nr.current().workers()).boxed().toList());

            // The coordinator leaves: the next oldest takes over. Worker 2 is draining, so the experts wait for a
            // newcomer, which the new coordinator gives everything.
            a.close();
            a = null;
            waitFor("b to coordinate", nb::isCoordinator);
            c = ControlPlane.join(new ControlPlane.Settings(opts(name, port), co), MODEL,
                    MemberInfo.of(MemberInfo.EXPERT_WORKER, 3, "", "127.0.0.1:4", "sha256:aa")
                            .withState(MemberInfo.READY), s -> { });
            waitFor("a target over worker 3", () -> {
                PlacementTable t = nr.target();
                return t != null && t.epoch() == 3 && t.contains(3) && !t.contains(1) && !t.contains(2);
            });
        } finally {
            if (c != null) {
                c.close();
            }
            if (r != null) {
                r.close();
            }
            if (b != null) {
                b.close();
            }
            if (a != null) {
                a.close();
            }
        }
    }
}
