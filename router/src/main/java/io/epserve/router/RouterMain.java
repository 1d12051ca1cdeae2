package io.epserve.router;

import io.epserve.model.config.ConfigException;
import java.io.IOException;
import java.io.PrintStream;
import io.epserve.cluster.TerminationSignals;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/**
 * The router as a process: prints one line when serving, serves until SIGTERM or SIGINT, lets running streams finish,
 * exits 0. Bad flags or model exit 2; a port that cannot be bound exits 1.
 */
@Command(name = "router", mixinStandardHelpOptions = true, description = "Serves the epserve.v1 API over attention workers.")
public final class RouterMain implements Callable<Integer> {
    @Mixin
    RouterFlags flags;

    @Override
    public Integer call() {
        return serve(flags, System.out, System.err);
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new RouterMain()).execute(args));
    }

    public static int serve(RouterFlags flags, PrintStream out, PrintStream err) {
        Router.Options o;
        try {
            o = flags.toOptions();
        } catch (IllegalArgumentException e) {
            err.println("epserve router: " + e.getMessage());
            return 2;
        }
        o.log(err::println);
        Router router;
        try {
            router = Router.start(o);
        } catch (IllegalArgumentException | ConfigException e) {
            err.println("epserve router: cannot serve " + flags.model + ": " + e.getMessage());
            return 2;
        } catch (IOException | io.epserve.cluster.ClusterException e) {
            err.println("epserve router: " + e.getMessage());
            return 1;
        }
        CountDownLatch stop = TerminationSignals.install();
        try (router) {
            out.println(router.readyLine());
            out.flush();
            stop.await();
            err.println("router: stopping");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        err.println("router: stopped");
        return 0;
    }

}
