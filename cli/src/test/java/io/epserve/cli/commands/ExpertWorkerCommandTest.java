package io.epserve.cli.commands;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * {@code epserve expert-worker}: flags and their errors (exit 2 with a message). Serving itself (ready line, SIGTERM,
 * exit 0) is tested on a real process in the expert-worker module (ExpertWorkerProcessTest).
 */
class ExpertWorkerCommandTest {
    static final Path TINY = EngineCommandsTest.TINY;

    private static EngineCommandsTest.Run run(String... args) {
        return EngineCommandsTest.run(args);
    }

    private static void usage(String expected, String... args) {
        EngineCommandsTest.Run r = run(args);
        assertEquals(2, r.exit(), r.err());
        assertTrue(r.err().contains(expected), "'" + r.err() + "' should mention '" + expected + "'");
    }

    @Test
    void helpListsTheFlags() {
        EngineCommandsTest.Run r = run("expert-worker", "--help");
        assertEquals(0, r.exit(), r.err());
        for (String flag : new String[] {"--model", "--experts", "--placement", "--listen", "--aeron-dir",
                "--external-driver", "--kernels", "--threads", "--wave-experts", "--[no-]merge-exchanges",
                "--max-tokens-per-dispatch"}) {
            assertTrue(r.out().contains(flag), flag + " in\n" + r.out());
        }
        assertTrue(run("--help").out().contains("expert-worker"));
    }

    @Test
    void badFlagsExitTwoWithAMessage() {
        String model = TINY.toString();
        usage("--listen", "expert-worker", "--model", model, "--experts", "0-3");
        usage("exactly one of --experts", "expert-worker", "--model", model, "--listen", "127.0.0.1:40999");
        usage("exactly one of --experts", "expert-worker", "--model", model, "--listen", "127.0.0.1:40999",
                "--experts", "0", "--placement", "p.json");
        usage("expert 9 is outside [0, 8)", "expert-worker", "--model", model, "--listen", "127.0.0.1:40999",
                "--experts", "0-9");
        usage("--listen: endpoint must be HOST:PORT", "expert-worker", "--model", model, "--listen", "localhost",
                "--experts", "0");
        usage("--listen: endpoint port must be in 1..65535", "expert-worker", "--model", model, "--listen", "127.0.0.1:0",
                "--experts", "0");
        usage("--kernels must be one of", "expert-worker", "--model", model, "--listen", "127.0.0.1:40999",
                "--experts", "0", "--kernels", "slow");
        usage("exclude each other", "expert-worker", "--model", model, "--listen", "127.0.0.1:40999",
                "--experts", "0", "--aeron-dir", "/tmp/a", "--external-driver", "/tmp/b");
        usage("--wave-experts must be >= 0", "expert-worker", "--model", model, "--listen", "127.0.0.1:40999",
                "--experts", "0", "--wave-experts", "-1");
        usage("unknown idle strategy", "expert-worker", "--model", model, "--listen", "127.0.0.1:40999",
                "--experts", "0", "--idle", "lazy");
        usage("cannot read placement file", "expert-worker", "--model", model, "--listen", "127.0.0.1:40999",
                "--placement", "/no/such/placement.json");
        usage("cannot serve /no/such/model", "expert-worker", "--model", "/no/such/model", "--listen",
                "127.0.0.1:40999", "--experts", "0");
        usage("--threads", "expert-worker", "--model", model, "--listen", "127.0.0.1:40999", "--experts", "0",
                "--threads", "x");
    }
}
