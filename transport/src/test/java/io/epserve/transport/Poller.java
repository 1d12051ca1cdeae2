package io.epserve.transport;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;

/** Polls a receiver on its own thread until closed; keeps the first exception. */
final class Poller implements AutoCloseable {
    private final MessageReceiver receiver;
    private final Thread thread;
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private volatile boolean running = true;

    /** Polls up to {@code fragmentLimit} fragments, then waits {@code pauseNs} (0: back off only when idle). */
    Poller(MessageReceiver receiver, int fragmentLimit, long pauseNs) {
        this.receiver = receiver;
        this.thread = new Thread(() -> run(fragmentLimit, pauseNs), "test-poller");
        thread.setDaemon(true);
        thread.start();
    }

    Poller(MessageReceiver receiver) {
        this(receiver, 16, 0);
    }

    private void run(int fragmentLimit, long pauseNs) {
        IdleStrategy idle = new BackoffIdleStrategy();
        try {
            while (running) {
                int n = receiver.poll(fragmentLimit);
                if (pauseNs > 0) {
                    LockSupport.parkNanos(pauseNs);
                } else {
                    idle.idle(n);
                }
            }
        } catch (Throwable t) {
            failure.compareAndSet(null, t);
        }
    }

    /** Waits until {@code done} holds (or the poller failed), at most {@code timeout}. */
    void await(BooleanSupplier done, Duration timeout, String what) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!done.getAsBoolean()) {
            if (failure.get() != null) {
                throw new AssertionError("poller failed while waiting for " + what, failure.get());
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + timeout.toMillis() + " ms waiting for " + what);
            }
            LockSupport.parkNanos(200_000);
        }
    }

    /** Stops the thread and rethrows its failure, if any. */
    @Override
    public void close() {
        running = false;
        try {
            thread.join(5_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (failure.get() != null) {
            throw new AssertionError("poller failed", failure.get());
        }
    }
}
