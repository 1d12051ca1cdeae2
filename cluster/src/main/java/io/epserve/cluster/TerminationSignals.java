package io.epserve.cluster;

import java.util.Optional;
import java.util.concurrent.CountDownLatch;

/**
 * SIGTERM and SIGINT taken over by a serving process: the JVM does not start its own shutdown, so the process
 * closes what it serves in its own order and chooses its exit code. Every epserve process stops this way.
 *
 * <p>A process started by a local cluster of ours ({@code up}, {@code bench-cluster}, {@code cluster-logits}) also
 * stops when that parent is gone: the parent names itself in {@value #PARENT_PID_ENV}, and a process that outlives
 * it (the parent killed with SIGKILL, or by a test harness's timeout) would otherwise keep its ports, its media
 * driver's polling and its memory with nobody left to stop it.
 */
public final class TerminationSignals {
    /** Environment variable: the pid of the process whose exit stops this one (set by the local cluster). */
    public static final String PARENT_PID_ENV = "EPSERVE_PARENT_PID";
    /** How often the parent is looked for; a stop follows its exit within about this much. */
    static final long PARENT_POLL_MS = 500;

    private TerminationSignals() {
    }

    /**
     * A latch that SIGTERM or SIGINT opens, or the exit of the process named in {@value #PARENT_PID_ENV} if set. A
     * signal this platform does not offer keeps the JVM's default.
     */
    public static CountDownLatch install() {
        CountDownLatch stop = new CountDownLatch(1);
        for (String name : new String[] {"TERM", "INT"}) {
            try {
                sun.misc.Signal.handle(new sun.misc.Signal(name), s -> stop.countDown());
            } catch (IllegalArgumentException e) {
                // not available here (or ignored, as in a background job): the default applies
            }
        }
        watchParent(System.getenv(PARENT_PID_ENV), stop);
        return stop;
    }

    /**
     * Opens {@code stop} once the process {@code pid} (a decimal pid, or null/blank for none) has exited, polling
     * from a daemon thread. The handle remembers the process's start time, so a reused pid is not taken for it.
     * Returns whether a watch was set up (false: no pid given; an unparseable one is reported and ignored).
     */
    static boolean watchParent(String pid, CountDownLatch stop) {
        if (pid == null || pid.isBlank()) {
            return false;
        }
        long p;
        try {
            p = Long.parseLong(pid.trim());
        } catch (NumberFormatException e) {
            System.err.println("epserve: ignoring " + PARENT_PID_ENV + "=" + pid + " (not a pid)");
            return false;
        }
        Optional<ProcessHandle> parent = ProcessHandle.of(p);
        Thread watch = new Thread(() -> {
            try {
                while (parent.isPresent() && parent.get().isAlive()) {
                    Thread.sleep(PARENT_POLL_MS);
                }
            } catch (InterruptedException e) {
                return;
            }
            System.err.println("epserve: parent process " + p + " is gone; stopping");
            stop.countDown();
        }, "epserve-parent-watch");
        watch.setDaemon(true);
        watch.start();
        return true;
    }
}
