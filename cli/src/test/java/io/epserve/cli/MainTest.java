package io.epserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class MainTest {

    private final StringWriter out = new StringWriter();
    private final StringWriter err = new StringWriter();

    private int run(String... args) {
        CommandLine cl = Main.commandLine();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        return cl.execute(args);
    }

    @Test
    void helpExitsZeroAndListsSubcommands() {
        assertEquals(0, run("--help"));
        assertTrue(out.toString().contains("env"), out::toString);
    }

    @Test
    void unknownOptionIsUsageErrorWithExitCode2() {
        assertEquals(2, run("--no-such-option"));
        assertTrue(err.toString().contains("--no-such-option"), err::toString);
    }

    @Test
    void missingSubcommandIsUsageError() {
        assertEquals(2, run());
    }

    @Test
    void envReportsVectorWidthAndProcessors() {
        assertEquals(0, run("env"));
        String text = out.toString();
        assertTrue(text.contains("preferred species"), text);
        assertTrue(text.contains("processors  " + Runtime.getRuntime().availableProcessors()), text);
    }
}
