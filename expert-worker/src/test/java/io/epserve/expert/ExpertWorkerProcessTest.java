package io.epserve.expert;

import io.epserve.cluster.Fingerprint;
import io.epserve.cluster.TerminationSignals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.transport.Channels;
import io.epserve.transport.sbe.HelloStatus;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.agrona.IoUtil;
import org.junit.jupiter.api.Test;

/** The worker as a real separate JVM: ready line, one dispatch over UDP, SIGTERM, exit 0, Aeron directory gone. */
class ExpertWorkerProcessTest {
    private static final Pattern AERON_DIR = Pattern.compile("aeron dir (\\S+) \\(embedded driver\\)");

    /** The worker's command line: this JVM's flags and class path, experts 0-3 of tiny on 127.0.0.1:port. */
    private static List<String> command(int port) {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        String flags = System.getProperty("epserve.jvm.flags", "");
        if (!flags.isBlank()) {
            command.addAll(Arrays.asList(flags.trim().split("\\s+")));
        }
        command.addAll(List.of("-Xmx512m", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"),
                ExpertWorkerMain.class.getName(), "--model", Tiny.dir().toString(), "--experts", "0-3",
                "--listen", "127.0.0.1:" + port, "--kernels", "exact", "--threads", "1", "--worker-id", "3"));
        return command;
    }

    @Test
    void servesADispatchThenExitsZeroOnSigtermAndRemovesItsAeronDir() throws Exception {
        int port = Channels.freeLoopbackPort();
        Path log = Files.createTempFile("expert-worker-", ".log");
        Process child = new ProcessBuilder(command(port)).redirectErrorStream(true).redirectOutput(log.toFile())
                .start();
        Path aeronDir = null;
        try {
            String ready = awaitLine(log, "expert-worker 3 ready:", child);
            aeronDir = aeronDir(ready);
            assertTrue(Files.isDirectory(aeronDir), aeronDir + " exists while serving");
            assertTrue(ready.contains("pid " + child.pid()), ready);

            Tiny.Layer1 golden = new Tiny.Layer1();
            try (AttentionEndpoint attn = new AttentionEndpoint("attn-proc", 42, Channels.loopback(port),
                    Channels.DISPATCH_STREAM, Channels.CONTROL_STREAM)) {
                attn.hello(Fingerprint.checkpoint(Tiny.dir()));
                assertEquals(HelloStatus.READY, attn.received.hellos.get(0).status());
                List<Tiny.Row> rows = golden.rows(e -> e < 4);
                int entries = rows.stream().mapToInt(r -> r.slots().size()).sum();
                golden.dispatch(attn.dispatchWriter, 1, attn.source, Tiny.LAYER, rows);
                attn.await(() -> attn.received.rows.size() >= entries, Duration.ofSeconds(10), "combines");
                assertEquals(entries, attn.received.rows.size());

                child.destroy(); // SIGTERM
                assertTrue(child.waitFor(15, TimeUnit.SECONDS), "the worker stops within 15 s of SIGTERM");
                // It said goodbye on the way out.
                attn.await(() -> attn.received.hellos.stream().anyMatch(h -> h.status() == HelloStatus.GOODBYE),
                        Duration.ofSeconds(5), "GOODBYE");
            }
            List<String> output = Files.readAllLines(log);
            assertEquals(0, child.exitValue(), String.join("\n", output));
            assertFalse(Files.exists(aeronDir), "the worker deleted its Aeron directory " + aeronDir);
            assertTrue(output.stream().anyMatch(l -> l.contains("expert-worker 3: stopped")), String.join("\n", output));
        } finally {
            if (child.isAlive()) {
                child.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
            Files.deleteIfExists(log);
            if (aeronDir != null && Files.exists(aeronDir)) {
                IoUtil.delete(aeronDir.toFile(), true);
            }
        }
    }

    /**
     * Started by a local cluster, the worker names its parent in EPSERVE_PARENT_PID; a parent killed with SIGKILL
     * runs no shutdown hook, so the worker must see it gone and stop by itself, as on SIGTERM. The parent here is a
     * real process of its own (sleep), killed outright.
     */
    @Test
    void stopsCleanlyWhenTheParentNamedInTheEnvironmentIsGone() throws Exception {
        Process parent = new ProcessBuilder("sleep", "120").start();
        Path log = Files.createTempFile("expert-worker-", ".log");
        ProcessBuilder pb = new ProcessBuilder(command(Channels.freeLoopbackPort())).redirectErrorStream(true)
                .redirectOutput(log.toFile());
        pb.environment().put(TerminationSignals.PARENT_PID_ENV, String.valueOf(parent.pid()));
        Process child = pb.start();
        Path aeronDir = null;
        try {
            aeronDir = aeronDir(awaitLine(log, "expert-worker 3 ready:", child));
            Thread.sleep(1_000);
            assertTrue(child.isAlive(), "the worker serves while its parent lives");

            parent.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            assertTrue(child.waitFor(15, TimeUnit.SECONDS), "the worker stops within 15 s of its parent's death");
            List<String> output = Files.readAllLines(log);
            assertEquals(0, child.exitValue(), String.join("\n", output));
            assertTrue(output.stream().anyMatch(l -> l.contains("parent process " + parent.pid() + " is gone")),
                    String.join("\n", output));
            assertTrue(output.stream().anyMatch(l -> l.contains("expert-worker 3: stopped")), String.join("\n", output));
            assertFalse(Files.exists(aeronDir), "the worker deleted its Aeron directory " + aeronDir);
        } finally {
            parent.destroyForcibly();
            if (child.isAlive()) {
                child.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
            Files.deleteIfExists(log);
            if (aeronDir != null && Files.exists(aeronDir)) {
                IoUtil.delete(aeronDir.toFile(), true);
            }
        }
    }

    /** The embedded driver's directory named in the worker's ready line. */
    private static Path aeronDir(String ready) {
        Matcher m = AERON_DIR.matcher(ready);
        assertTrue(m.find(), ready);
        return Path.of(m.group(1));
    }

    private static String awaitLine(Path log, String prefix, Process child) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < deadline) {
            List<String> lines = Files.readAllLines(log);
            for (String line : lines) {
                if (line.startsWith(prefix)) {
                    return line;
                }
            }
            if (!child.isAlive()) {
                throw new AssertionError("the worker exited with " + child.exitValue() + ":\n" + String.join("\n", lines));
            }
            Thread.sleep(50);
        }
        throw new AssertionError("no line starting with '" + prefix + "' within 20 s:\n"
                + String.join("\n", Files.readAllLines(log)));
    }
}
