package io.epserve.cluster;

import java.util.function.Consumer;

/**
 * A task run every {@code periodMs} on its own daemon thread, for a process's part in the control plane. A tick that
 * throws (Hazelcast refuses calls while members come and go) is logged once per distinct failure and tried again at
 * the next tick.
 */
public final class Ticker implements AutoCloseable {
    private final Runnable tick;
    private final long periodMs;
    private final Consumer<String> log;
    private final Thread thread;
    private volatile boolean running = true;
    private String lastProblem;

    public Ticker(String name, long periodMs, Runnable tick, Consumer<String> log) {
        this.tick = tick;
        this.periodMs = periodMs;
        this.log = log;
        this.thread = new Thread(this::run, name);
        this.thread.setDaemon(true);
    }

    public Ticker start() {
        thread.start();
        return this;
    }

    private void run() {
        while (running) {
            try {
                tick.run();
                lastProblem = null;
            } catch (RuntimeException e) {
                String problem = e.toString();
                if (running && !problem.equals(lastProblem)) {
                    lastProblem = problem;
                    log.accept(problem);
                }
            }
            try {
                Thread.sleep(periodMs);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** Stops after the tick in progress (bounded wait). */
    @Override
    public void close() {
        running = false;
        thread.interrupt();
        try {
            thread.join(2_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
