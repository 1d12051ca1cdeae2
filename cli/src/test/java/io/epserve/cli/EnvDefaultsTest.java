package io.epserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParseResult;

/** EPSERVE_FLAG_NAME variables as option defaults ({@link EnvDefaults}), as the Kubernetes manifests use them. */
class EnvDefaultsTest {

    private static CommandSpec parse(Map<String, String> env, String... args) {
        CommandLine cl = Main.commandLine(env::get);
        ParseResult r = cl.parseArgs(args);
        return r.subcommand().commandSpec();
    }

    private static Object value(CommandSpec spec, String option) {
        return spec.optionsMap().get(option).getValue();
    }

    @Test
    void namesFollowTheLongestOptionName() {
        assertEquals("EPSERVE_WORKER_ID", EnvDefaults.variable("--worker-id"));
        assertEquals("EPSERVE_DRAIN_TIMEOUT_MS", EnvDefaults.variable("--drain-timeout-ms"));
        CommandSpec ew = Main.commandLine().getSubcommands().get("expert-worker").getCommandSpec();
        assertEquals("EPSERVE_KUBERNETES_SERVICE", EnvDefaults.variable(ew.findOption("--kubernetes-service")));
        assertNull(EnvDefaults.variable(ew.findOption("--help")), "help options read nothing");
    }

    @Test
    void variableSetsTheDefaultAndSatisfiesRequiredOptions() {
        Map<String, String> env = Map.of("EPSERVE_MODEL", "/models/v4", "EPSERVE_WORKER_ID", "3",
                "EPSERVE_LISTEN", "0.0.0.0:40001", "EPSERVE_CLUSTER_MEMBERS", "a:5701,b:5701-5703");
        CommandSpec spec = parse(env, "expert-worker");
        assertEquals(Path.of("/models/v4"), value(spec, "--model"));
        assertEquals(3, (int) value(spec, "--worker-id"));
        assertEquals("0.0.0.0:40001", value(spec, "--listen"));
        assertEquals(List.of("a:5701", "b:5701-5703"), value(spec, "--cluster-members"), "split like the flag");
        assertEquals(120000L, (long) value(spec, "--drain-timeout-ms"), "unset: the built-in default");
    }

    @Test
    void aFlagWinsOverTheVariable() {
        Map<String, String> env = Map.of("EPSERVE_PORT", "50999", "EPSERVE_MODEL", "/m");
        CommandSpec spec = parse(env, "router", "--port", "50051");
        assertEquals(50051, (int) value(spec, "--port"));
        assertEquals(Path.of("/m"), value(spec, "--model"));
    }

    @Test
    void emptyVariableIsIgnored() {
        CommandSpec spec = parse(Map.of("EPSERVE_METRICS_PORT", "", "EPSERVE_MODEL", "/m"), "attention-worker",
                "--listen", "127.0.0.1:1");
        assertEquals(-1, (int) value(spec, "--metrics-port"));
    }

    @Test
    void withoutTheVariableARequiredOptionIsStillMissing() {
        CommandLine cl = Main.commandLine(Map.<String, String>of()::get);
        try {
            cl.parseArgs("expert-worker", "--listen", "127.0.0.1:1");
            throw new AssertionError("--model is required");
        } catch (CommandLine.MissingParameterException e) {
            assertTrue(e.getMessage().contains("--model"), e.getMessage());
        }
    }

    @Test
    void helpNamesTheConvention() {
        java.io.StringWriter out = new java.io.StringWriter();
        CommandLine cl = Main.commandLine();
        cl.setOut(new java.io.PrintWriter(out));
        assertEquals(0, cl.execute("--help"));
        assertTrue(out.toString().contains("EPSERVE_FLAG_NAME"), out::toString);
    }
}
