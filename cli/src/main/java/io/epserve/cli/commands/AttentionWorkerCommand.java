package io.epserve.cli.commands;

import io.epserve.attention.AttentionWorkerFlags;
import io.epserve.attention.AttentionWorkerMain;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

@Command(name = "attention-worker", mixinStandardHelpOptions = true,
        description = {
            "Runs an attention worker: maps every weight except the routed experts, owns sequences and their caches,"
                    + " and runs batched steps whose MoE layers go to the expert workers (--expert-workers) over Aeron,"
                    + " with --micro-batches micro-batches ping-ponging so attention hides the experts' time.",
            "Serves the worker API (epserve.worker.v1, with gRPC health and reflection) on --port. Prints one line when"
                    + " every expert worker answered READY, serves until SIGTERM or SIGINT, then exits 0. Bad flags exit 2;"
                    + " expert workers that never answer exit 1."
        })
public final class AttentionWorkerCommand implements Callable<Integer> {
    @Mixin
    AttentionWorkerFlags flags;

    @Override
    public Integer call() {
        return AttentionWorkerMain.serve(flags, System.out, System.err);
    }
}
