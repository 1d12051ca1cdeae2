package io.epserve.cluster;

import java.util.concurrent.CountDownLatch;

/**
 * SIGTERM and SIGINT taken over by a serving process: the JVM does not start its own shutdown, so the process
 * closes what it serves in its own order and chooses its exit code. Every epserve process stops this way.
 */
public final class TerminationSignals {
    private TerminationSignals() {
    }

    /** A latch that SIGTERM or SIGINT opens. A signal this platform does not offer keeps the JVM's default. */
    public static CountDownLatch install() {
        CountDownLatch stop = new CountDownLatch(1);
        for (String name : new String[] {"TERM", "INT"}) {
            try {
                sun.misc.Signal.handle(new sun.misc.Signal(name), s -> stop.countDown());
            } catch (IllegalArgumentException e) {
                // not available here (or ignored, as in a background job): the default applies
            }
        }
        return stop;
    }
}
