package io.epserve.cli.commands;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.cli.Main;
import io.epserve.model.safetensors.SafetensorsFile;
import io.epserve.model.safetensors.TensorInfo;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The engine's commands run in-process on the golden tiny checkpoint (shared with the model module's tests). */
class EngineCommandsTest {
    static final Path TINY = Path.of("../model/src/test/resources/golden/tiny").toAbsolutePath().normalize();

    @TempDir
    Path tmp;

    record Run(int exit, String out, String err) {}

    static Run run(String... args) {
        PrintStream oldOut = System.out;
        PrintStream oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int exit = Main.commandLine().execute(args);
            return new Run(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    static int[] goldenTokens() {
        try (SafetensorsFile f = SafetensorsFile.open(TINY.resolve("golden.safetensors"))) {
            TensorInfo t = f.tensors().get("tokens");
            int[] v = new int[(int) t.elementCount()];
            for (int i = 0; i < v.length; i++) {
                v[i] = t.data().get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 4L * i);
            }
            return v;
        }
    }

    static float[] goldenLogits() {
        try (SafetensorsFile f = SafetensorsFile.open(TINY.resolve("golden.safetensors"))) {
            TensorInfo t = f.tensors().get("logits");
            float[] v = new float[(int) t.elementCount()];
            for (int i = 0; i < v.length; i++) {
                v[i] = t.data().get(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 4L * i);
            }
            return v;
        }
    }

    static String csv(int[] ids) {
        return IntStream.of(ids).mapToObj(Integer::toString).collect(Collectors.joining(","));
    }

    @Test
    void logitsCommandWritesTheGoldenLogitsInEveryMode() throws IOException {
        int[] tokens = goldenTokens();
        float[] expected = goldenLogits();
        for (String mode : new String[] {"prefill", "chunked:13", "decode"}) {
            Path out = tmp.resolve(mode.replace(':', '_') + ".f32");
            Run r = run("logits", "--model", TINY.toString(), "--tokens", csv(tokens), "--mode", mode, "--kernels", "exact",
                    "--out", out.toString());
            assertEquals(0, r.exit(), r.err());
            byte[] bytes = Files.readAllBytes(out);
            assertEquals(4L * expected.length, bytes.length, "file is [T, vocab] float32");
            float[] actual = new float[expected.length];
            ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(actual);
            double max = 0;
            for (int i = 0; i < actual.length; i++) {
                max = Math.max(max, Math.abs(actual[i] - expected[i]));
            }
            assertTrue(max <= 1e-4, mode + ": max |diff| " + max);
        }
    }

    @Test
    void logitsCommandRejectsBadInputWithExitCode2() {
        String out = tmp.resolve("x.f32").toString();
        Run r = run("logits", "--model", TINY.toString(), "--tokens", "0,5,512", "--out", out);
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("512") && r.err().contains("vocabulary"), r.err());

        r = run("logits", "--model", tmp.resolve("missing").toString(), "--tokens", "0,5", "--out", out);
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("missing"), r.err());

        int[] tooLong = new int[4097];
        r = run("logits", "--model", TINY.toString(), "--tokens", csv(tooLong), "--out", out);
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("4096"), r.err());

        r = run("logits", "--model", TINY.toString(), "--tokens", "0,5", "--mode", "chunked:0", "--out", out);
        assertEquals(2, r.exit());
        r = run("logits", "--model", TINY.toString(), "--tokens", "0,x", "--out", out);
        assertEquals(2, r.exit());
        assertTrue(!Files.exists(Path.of(out)), "nothing written on bad input");
    }

    @Test
    void generateStreamsDeterministicallyForASeed() {
        String[] args = {"generate", "--model", TINY.toString(), "--prompt", "<｜User｜>What is the capital?<｜Assistant｜></think>",
            "--max-tokens", "12", "--temperature", "0.8", "--seed", "7", "--kernels", "exact"};
        Run a = run(args);
        Run b = run(args);
        assertEquals(0, a.exit(), a.err());
        assertEquals(a.out(), b.out(), "same seed, same text");
        assertTrue(a.err().contains("12 generated") || a.err().contains("finish=stop"), a.err());
        Run greedy = run("generate", "--model", TINY.toString(), "--tokens", csv(goldenTokens()), "--max-tokens", "3",
                "--temperature", "0", "--kernels", "exact");
        assertEquals(0, greedy.exit(), greedy.err());
        // GOLDEN.md greedy continuation starts 245, 317, 129: bytes 242 and 126 around a special placeholder.
        assertTrue(greedy.out().contains("~"), greedy.out());
    }

    @Test
    void benchClusterRejectsBadFlagsBeforeStartingAnything() {
        Run ipc = run("bench-cluster", "--model", TINY.toString(), "--ipc", "--expert-workers", "2");
        assertEquals(2, ipc.exit(), ipc.err());
        assertTrue(ipc.err().contains("--ipc runs one expert worker"), ipc.err());
        Run m = run("bench-cluster", "--model", TINY.toString(), "--micro-batches", "1,5");
        assertEquals(2, m.exit(), m.err());
        assertTrue(m.err().contains("--micro-batches must be 1..4"), m.err());
        assertEquals(2, run("bench-cluster", "--model", TINY.toString(), "--rounds", "0").exit());
        Run aw = run("bench-cluster", "--model", TINY.toString(), "--attention-workers", "2", "--compare-local");
        assertEquals(2, aw.exit(), aw.err());
        assertTrue(aw.err().contains("--attention-workers must be >= 1, and 1 with --ipc or --compare-local"),
                aw.err());
        assertEquals(2, run("bench-cluster", "--model", TINY.toString(), "--attention-workers", "0").exit());
        assertEquals(2, run("bench-cluster", "--model", TINY.toString(), "--warmup-max-seconds", "-1").exit());
    }

    /** Two attention workers share one expert worker (run one exchange at a time there): both decode, one figure. */
    @Test
    void benchClusterDrivesSeveralAttentionWorkersAtOnce() {
        Run r = run("bench-cluster", "--model", TINY.toString(), "--attention-workers", "2", "--batch", "2",
                "--prompt-tokens", "4", "--tokens", "3", "--warmup", "1", "--warmup-max-seconds", "0",
                "--micro-batches", "1", "--expert-worker-arg=--no-merge-exchanges", "--kernels", "exact");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("warm-up (cluster): 1 run of 1 steps at every m in "), r.out());
        assertTrue(r.out().contains(" (not waited for)") || r.out().contains(" (settled)"), r.out());
        assertTrue(r.out().contains("attention worker 1 of 2:") && r.out().contains("attention worker 2 of 2:"),
                r.out());
        assertTrue(r.out().contains("2 attention workers together: "), r.out());
        assertTrue(r.out().contains("(12 tokens, the slowest run"), r.out());
    }

    @Test
    void generateRejectsBadInput() {
        assertEquals(2, run("generate", "--model", TINY.toString(), "--tokens", "0,600").exit());
        assertEquals(2, run("generate", "--model", TINY.toString(), "--prompt", "hi", "--top-p", "0").exit());
        assertEquals(2, run("generate", "--model", TINY.toString(), "--prompt", "hi", "--temperature", "-1").exit());
        assertEquals(2, run("generate", "--model", TINY.toString()).exit(), "needs --prompt or --tokens");
    }

    @Test
    void generateWithoutModelMakesTheEmbeddedDefaultOnce() {
        String old = System.getProperty("epserve.cache.dir");
        System.setProperty("epserve.cache.dir", tmp.resolve("cache").toString());
        try {
            Run r = run("generate", "--prompt", "Hello", "--max-tokens", "4", "--temperature", "0");
            assertEquals(0, r.exit(), r.err());
            assertTrue(r.err().contains("random weights"), r.err());
            Path model = tmp.resolve("cache/models").resolve(EmbeddedModel.NAME);
            assertTrue(Files.isRegularFile(model.resolve("model.safetensors")));
            Run again = run("generate", "--prompt", "Hello", "--max-tokens", "4", "--temperature", "0");
            assertEquals(r.out(), again.out());
            assertTrue(!again.err().contains("making the embedded"), "made only once: " + again.err());
        } finally {
            if (old == null) {
                System.clearProperty("epserve.cache.dir");
            } else {
                System.setProperty("epserve.cache.dir", old);
            }
        }
    }

    @Test
    void cacheSizeReportsFlashAndPro() {
        Run r = run("cache-size", "--builtin", "v4-flash");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("3508.8 B compact") && r.out().contains("6880.0 B reference"), r.out());
        r = run("cache-size", "--builtin", "v4-pro");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("9848.0 B reference"), r.out());
        assertEquals(2, run("cache-size", "--builtin", "v5").exit());
        assertTrue(Arrays.asList(run("cache-size", "--model", TINY.toString()).out().split("\n")).size() >= 4);
    }
}
