package io.epserve.cli.commands;

import io.epserve.expert.ExpertWorkerFlags;
import io.epserve.expert.ExpertWorkerMain;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

@Command(name = "expert-worker", mixinStandardHelpOptions = true,
        description = {
            "Runs an expert worker: maps only the routed experts of its placement (--experts for the same experts in"
                    + " every layer, or --placement FILE), receives dispatches from attention workers over Aeron (UDP"
                    + " on --listen, or IPC with a shared external driver), runs the FP4 experts and sends the outputs"
                    + " back as combines, in waves.",
            "Prints one line when ready (what it maps, where it listens), serves until SIGTERM or SIGINT, then shuts"
                    + " down cleanly (publications, driver and its Aeron directory) and exits 0. Bad flags exit 2."
        })
public final class ExpertWorkerCommand implements Callable<Integer> {
    @Mixin
    ExpertWorkerFlags flags;

    @Override
    public Integer call() {
        return ExpertWorkerMain.serve(flags, System.out, System.err);
    }
}
