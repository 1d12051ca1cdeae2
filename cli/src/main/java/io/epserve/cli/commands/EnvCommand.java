package io.epserve.cli.commands;

import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

@Command(
        name = "env",
        mixinStandardHelpOptions = true,
        description = "Show the Java runtime, SIMD width, cores and heap the engine will use on this machine.")
public final class EnvCommand implements Callable<Integer> {

    private static final String VECTOR_MODULE = "jdk.incubator.vector";

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        Runtime rt = Runtime.getRuntime();
        out.printf("java        %s (%s, %s)%n",
                Runtime.version(), System.getProperty("java.vendor"), System.getProperty("java.home"));
        out.printf("vector api  %s%n", vectorDescription());
        out.printf("processors  %d%n", rt.availableProcessors());
        out.printf("max heap    %.1f GiB%n", rt.maxMemory() / (double) (1L << 30));
        out.flush();
        return 0;
    }

    // Checked first so a JVM started without the launcher's flags reports it instead of failing to link.
    private static String vectorDescription() {
        if (ModuleLayer.boot().findModule(VECTOR_MODULE).isEmpty()) {
            return "unavailable (start the JVM with --add-modules " + VECTOR_MODULE + ")";
        }
        return VectorInfo.describe();
    }

    private static final class VectorInfo {
        static String describe() {
            var species = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED;
            return "preferred species " + species.vectorBitSize() + " bits (" + species.length() + " floats)";
        }
    }
}
