package io.epserve.cli.commands;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.cli.Main;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import picocli.CommandLine.ParseResult;

class AdminCommandTest {

    private static AdminCommand parse(String... args) {
        ParseResult r = Main.commandLine().parseArgs(args);
        return (AdminCommand) r.subcommand().commandSpec().userObject();
    }

    /** `epserve up` tells operators to type `admin status --router H:P`: the options work after the subcommand too. */
    @Test
    void optionsGoBeforeOrAfterTheSubcommand() {
        for (String[] args : new String[][] {
                {"admin", "--router", "10.0.0.7:6000", "--json", "--timeout-s", "9", "status"},
                {"admin", "status", "--router", "10.0.0.7:6000", "--json", "--timeout-s", "9"},
                {"admin", "--json", "drain", "3", "--router=10.0.0.7:6000", "--timeout-s=9"}}) {
            AdminCommand a = parse(args);
            assertEquals("10.0.0.7:6000", a.router, String.join(" ", args));
            assertTrue(a.json, String.join(" ", args));
            assertEquals(9, a.timeoutSeconds, String.join(" ", args));
        }
        AdminCommand d = parse("admin", "placement");
        assertEquals("127.0.0.1:50051", d.router);
        assertEquals(150, d.timeoutSeconds);
    }

    @Test
    void aRouterThatIsNotThereIsExitCode1WithTheStatus() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream old = System.err;
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        int code;
        try {
            // port 1 on 127.0.0.1: nothing listens there
            code = Main.commandLine().execute("admin", "status", "--router", "127.0.0.1:1", "--timeout-s", "5");
        } finally {
            System.setErr(old);
        }
        assertEquals(1, code);
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("UNAVAILABLE"), err::toString);
    }
}
