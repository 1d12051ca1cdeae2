package io.epserve.model.kernel;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A fixed set of worker threads that run one job at a time together with the calling thread (worker 0).
 *
 * <p>Why not an ExecutorService: a dispatch here allocates nothing (the job is a reused object, work is claimed
 * by the job itself from an atomic counter), and idle workers spin briefly before parking. A forward pass issues
 * kernel calls back to back with only short single-threaded glue in between, so most dispatches find the workers
 * still spinning and pay ~1 us instead of a futex wake-up (tens of us on a VM).
 *
 * <p>One dispatch at a time: {@link #run} must not be called concurrently (FastKernels' single-caller contract).
 */
final class KernelPool implements AutoCloseable {

    /** Work for all participants; {@code worker} is 0 for the caller and 1..size-1 for pool threads. */
    interface Job {
        void run(int worker);
    }

    private final Worker[] workers;
    private final long spinNanos;
    private final AtomicInteger remaining = new AtomicInteger();
    private volatile Job job;
    private volatile long epoch;
    private volatile Thread waiter;
    private volatile Throwable failure;
    private volatile boolean closed;

    /**
     * @param threads   total participants including the caller; 1 means "no pool threads"
     * @param spinNanos how long an idle worker (and a waiting caller) spins before parking
     */
    KernelPool(int threads, long spinNanos, String name) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1: " + threads);
        }
        this.spinNanos = spinNanos;
        workers = new Worker[threads - 1];
        for (int i = 0; i < workers.length; i++) {
            workers[i] = new Worker(i + 1);
            Thread t = new Thread(workers[i]::loop, name + "-" + (i + 1));
            t.setDaemon(true); // a forgotten close() must not keep the JVM alive
            workers[i].thread = t;
        }
        for (Worker w : workers) {
            w.thread.start();
        }
    }

    int size() {
        return workers.length + 1;
    }

    /** Runs {@code j} on every participant and returns when all have finished; rethrows the first failure. */
    void run(Job j) {
        if (closed) {
            throw new IllegalStateException("kernel pool is closed");
        }
        if (workers.length == 0) {
            j.run(0);
            return;
        }
        failure = null;
        remaining.set(workers.length);
        job = j;
        epoch = epoch + 1; // volatile write after job/remaining: publishes them
        for (Worker w : workers) {
            if (w.parked) {
                LockSupport.unpark(w.thread);
            }
        }
        Throwable own = null;
        try {
            j.run(0);
        } catch (Throwable t) {
            own = t;
        }
        awaitWorkers();
        job = null;
        Throwable f = own != null ? own : failure;
        if (f != null) {
            if (f instanceof RuntimeException re) {
                throw re;
            }
            if (f instanceof Error e) {
                throw e;
            }
            throw new IllegalStateException(f);
        }
    }

    private void awaitWorkers() {
        if (remaining.get() == 0) {
            return;
        }
        long deadline = System.nanoTime() + spinNanos;
        while (remaining.get() != 0) {
            if (System.nanoTime() - deadline < 0) {
                Thread.onSpinWait();
                continue;
            }
            waiter = Thread.currentThread();
            if (remaining.get() != 0) {
                LockSupport.park(this);
            }
            waiter = null;
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (Worker w : workers) {
            LockSupport.unpark(w.thread);
        }
        for (Worker w : workers) {
            try {
                w.thread.join(5_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private final class Worker {
        final int index;
        Thread thread;
        volatile boolean parked;

        Worker(int index) {
            this.index = index;
        }

        void loop() {
            long seen = 0;
            while (true) {
                long e = epoch;
                if (closed) {
                    return;
                }
                if (e != seen) {
                    seen = e;
                    try {
                        job.run(index);
                    } catch (Throwable t) {
                        failure = t;
                    } finally {
                        if (remaining.decrementAndGet() == 0) {
                            Thread w = waiter;
                            if (w != null) {
                                LockSupport.unpark(w);
                            }
                        }
                    }
                    continue;
                }
                long deadline = System.nanoTime() + spinNanos;
                while (epoch == seen && !closed && System.nanoTime() - deadline < 0) {
                    Thread.onSpinWait();
                }
                if (epoch != seen || closed) {
                    continue;
                }
                // Dekker with the dispatcher: it writes epoch then reads parked; we write parked then read epoch.
                parked = true;
                if (epoch == seen && !closed) {
                    LockSupport.park(this);
                }
                parked = false;
            }
        }
    }
}
