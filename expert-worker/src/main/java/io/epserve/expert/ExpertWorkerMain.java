package io.epserve.expert;

import io.epserve.model.config.ConfigException;
import io.epserve.model.safetensors.CheckpointException;
import io.epserve.transport.TransportException;
import java.io.PrintStream;
import io.epserve.cluster.ClusterException;
import io.epserve.cluster.TerminationSignals;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/**
 * The expert worker as a process: {@code java ... io.epserve.expert.ExpertWorkerMain --model DIR --experts 0-3
 * --listen 127.0.0.1:40123} (the cli's {@code epserve expert-worker} runs the same {@link #serve}). Prints one line
 * when ready, serves until SIGTERM or SIGINT, then shuts down cleanly and exits 0. Bad flags or an unusable model
 * exit 2 with a message; a transport failure at start exits 1, as does losing the Aeron client while serving (it
 * cannot be used again: the process stops at once, without draining, and says why).
 */
@Command(name = "expert-worker", mixinStandardHelpOptions = true,
        description = "Serves the routed experts of a placement to attention workers over Aeron.")
public final class ExpertWorkerMain implements Callable<Integer> {
    public static final int BAD_INPUT = 2;
    public static final int FAILED = 1;

    @Mixin
    ExpertWorkerFlags flags;

    @Override
    public Integer call() {
        return serve(flags, System.out, System.err);
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new ExpertWorkerMain()).execute(args));
    }

    /**
     * Starts a worker from the flags, prints its ready line to {@code out}, waits for SIGTERM/SIGINT, closes it.
     * SIGTERM and SIGINT are taken over (the JVM does not start its shutdown), so the shutdown is ours and the exit
     * code is 0.
     *
     * @return the exit code: 0 after a clean shutdown, 2 for bad flags or model, 1 if the transport failed
     */
    public static int serve(ExpertWorkerFlags flags, PrintStream out, PrintStream err) {
        ExpertWorker.Options options;
        try {
            options = flags.toOptions();
        } catch (IllegalArgumentException e) {
            err.println("epserve expert-worker: " + e.getMessage());
            return BAD_INPUT;
        }
        options.log(line -> err.println(line));
        ExpertWorker worker;
        try {
            worker = ExpertWorker.start(options);
        } catch (IllegalArgumentException | ConfigException | CheckpointException e) {
            err.println("epserve expert-worker: cannot serve " + flags.model + ": " + e.getMessage());
            return BAD_INPUT;
        } catch (TransportException | ClusterException | java.io.UncheckedIOException e) {
            err.println("epserve expert-worker: " + e.getMessage());
            return FAILED;
        }
        // Taken over only once serving (a signal during start-up gets the JVM's default: exit, shutdown hooks).
        CountDownLatch stop = TerminationSignals.install();
        AtomicReference<String> lost = new AtomicReference<>();
        worker.onTransportLoss(reason -> {
            lost.compareAndSet(null, reason);
            stop.countDown();
        });
        try (worker) {
            out.println(worker.readyLine());
            out.flush();
            if (worker.clustered()) {
                // Drained on request (`admin drain`) stops it like a signal does.
                ExpertMembership m = worker.membership();
                Thread.ofPlatform().daemon().name("epserve-expert-drained").start(() -> {
                    try {
                        m.drainedLatch().await();
                        stop.countDown();
                    } catch (InterruptedException ignored) {
                        // stopping anyway
                    }
                });
            }
            stop.await();
            if (lost.get() != null) {
                // Nothing can be sent or received any more, so there is nothing to drain: attention workers fail over.
                err.println("expert-worker " + worker.workerId() + ": cannot serve any more, stopping: " + lost.get());
            } else if (worker.clustered() && !worker.membership().drained()) {
                // A cluster member stops without losing steps: its experts move away first (bounded).
                err.println("expert-worker " + worker.workerId() + ": draining before it stops");
                worker.membership().requestDrain();
                if (!worker.membership().awaitDrained(options.drainTimeoutMs)) {
                    err.println("expert-worker " + worker.workerId() + ": not drained within "
                            + options.drainTimeoutMs + " ms (no other expert worker to take its experts?); stopping");
                }
            }
            err.println("expert-worker " + worker.workerId() + ": stopping");
            err.println(worker.summaryLine());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        err.println("expert-worker " + options.workerId + ": stopped");
        return lost.get() == null ? 0 : FAILED;
    }

}
