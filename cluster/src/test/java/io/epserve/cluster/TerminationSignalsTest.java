package io.epserve.cluster;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The parent watch of {@link TerminationSignals} on real processes. */
class TerminationSignalsTest {
    @Test
    void opensTheLatchOnceTheParentProcessExitsAndNotBefore() throws Exception {
        Process parent = new ProcessBuilder("sleep", "60").start();
        try {
            CountDownLatch stop = new CountDownLatch(1);
            assertTrue(TerminationSignals.watchParent(String.valueOf(parent.pid()), stop));
            assertFalse(stop.await(3 * TerminationSignals.PARENT_POLL_MS, TimeUnit.MILLISECONDS),
                    "no stop while the parent lives");
            parent.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            assertTrue(stop.await(10, TimeUnit.SECONDS), "stop within 10 s of the parent's exit");
        } finally {
            parent.destroyForcibly();
        }
    }

    @Test
    void aParentAlreadyGoneStopsAtOnce() throws Exception {
        Process gone = new ProcessBuilder("true").start();
        gone.waitFor(5, TimeUnit.SECONDS);
        CountDownLatch stop = new CountDownLatch(1);
        assertTrue(TerminationSignals.watchParent(" " + gone.pid() + " ", stop));
        assertTrue(stop.await(5, TimeUnit.SECONDS));
    }

    @Test
    void noPidOrABadOneSetsUpNoWatch() {
        assertFalse(TerminationSignals.watchParent(null, new CountDownLatch(1)));
        assertFalse(TerminationSignals.watchParent("  ", new CountDownLatch(1)));
        assertFalse(TerminationSignals.watchParent("twelve", new CountDownLatch(1)));
    }
}
