package io.epserve.attention;

import io.epserve.model.config.ConfigException;
import io.epserve.model.safetensors.CheckpointException;
import io.epserve.transport.TransportException;
import java.io.IOException;
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
 * The attention worker as a process. Prints one line when ready (after every expert worker answered READY), serves
 * until SIGTERM or SIGINT, then shuts down cleanly and exits 0. Bad flags or an unusable model exit 2; expert workers
 * that do not answer, or a transport or port failure, exit 1, as does losing the Aeron client while serving (it
 * cannot be used again: the process stops, says why, and its supervisor starts a new one).
 */
@Command(name = "attention-worker", mixinStandardHelpOptions = true,
        description = "Owns sequences and their caches; sends each MoE layer's tokens to expert workers over Aeron.")
public final class AttentionWorkerMain implements Callable<Integer> {
    public static final int BAD_INPUT = 2;
    public static final int FAILED = 1;

    @Mixin
    AttentionWorkerFlags flags;

    @Override
    public Integer call() {
        return serve(flags, System.out, System.err);
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new AttentionWorkerMain()).execute(args));
    }

    public static int serve(AttentionWorkerFlags flags, PrintStream out, PrintStream err) {
        AttentionWorker.Options options;
        try {
            options = flags.toOptions();
        } catch (IllegalArgumentException e) {
            err.println("epserve attention-worker: " + e.getMessage());
            return BAD_INPUT;
        }
        options.log(err::println);
        AttentionWorker worker;
        try {
            worker = AttentionWorker.start(options);
        } catch (IllegalArgumentException | ConfigException | CheckpointException e) {
            err.println("epserve attention-worker: cannot serve " + flags.model + ": " + e.getMessage());
            return BAD_INPUT;
        } catch (ExpertsUnavailableException | TransportException | IllegalStateException | IOException
                 | ClusterException e) {
            err.println("epserve attention-worker: " + e.getMessage());
            return FAILED;
        }
        CountDownLatch stop = TerminationSignals.install();
        AtomicReference<String> lost = new AtomicReference<>();
        worker.onTransportLoss(reason -> {
            lost.compareAndSet(null, reason);
            stop.countDown();
        });
        try (worker) {
            out.println(worker.readyLine());
            out.flush();
            stop.await();
            err.println("attention-worker " + worker.workerId() + ": " + (lost.get() == null ? "stopping"
                    : "cannot serve any more, stopping: " + lost.get()));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        err.println("attention-worker " + options.workerId + ": stopped");
        return lost.get() == null ? 0 : FAILED;
    }

}
