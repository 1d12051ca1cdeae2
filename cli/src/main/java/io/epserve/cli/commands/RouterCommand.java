package io.epserve.cli.commands;

import io.epserve.router.RouterFlags;
import io.epserve.router.RouterMain;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

@Command(name = "router", mixinStandardHelpOptions = true,
        description = {
            "Runs the router: the gRPC front door (epserve.v1.Inference: Generate, Tokenize, Detokenize, ListModels;"
                    + " gRPC health and reflection) over attention workers.",
            "Prints one line when serving, serves until SIGTERM or SIGINT, lets running streams finish, exits 0."
        })
public final class RouterCommand implements Callable<Integer> {
    @Mixin
    RouterFlags flags;

    @Override
    public Integer call() {
        return RouterMain.serve(flags, System.out, System.err);
    }
}
