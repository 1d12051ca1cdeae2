package io.epserve.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PairedKernelAbTest {
    /** The model module's classes, built before this module in the reactor. */
    static final Path MODEL = Path.of("../model/target/classes").toAbsolutePath().normalize();

    private static String run(String... args) throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try (PrintStream out = new PrintStream(buf, true, StandardCharsets.UTF_8)) {
            PairedKernelAb.run(args, out);
        }
        return buf.toString(StandardCharsets.UTF_8);
    }

    @Test
    void aBuildAgainstItselfGivesTheSameBitsAndARatioNearOne() throws Exception {
        assertTrue(Files.isDirectory(MODEL.resolve("io/epserve/model/kernel")), MODEL + " is not built");
        for (String kind : new String[] {"fp4", "fp8", "wide", "f32wide"}) {
            String out = run("--a", MODEL.toString(), "--b", MODEL.toString(), "--kind", kind, "--shapes", "64x1024",
                    "--tokens", "1,3", "--set", "hot", "--rounds", "6", "--round-seconds", "0.01",
                    "--warmup-seconds", "0.05", "--no-fork");
            String[] lines = out.strip().split("\n");
            assertEquals(6, lines.length, out);
            for (int i = 4; i < 6; i++) {
                String[] f = lines[i].trim().split("\\s+");
                assertEquals("64x1024", f[0], out);
                assertEquals(i == 4 ? "1" : "3", f[1], out);
                assertEquals("identical", f[f.length - 1], out);
                double ratio = Double.parseDouble(f[4]);
                // the same code on both sides: only noise between them (a 10x slip would be a harness bug). Not
                // for the float64 kinds: in a 0.05 s warm-up one side's kernel may still run in C1, where every
                // double vector operation is boxed (50x slower), so only their format and bits are checked.
                assertTrue(kind.endsWith("wide") || ratio > 0.1 && ratio < 10, out);
            }
        }
    }

    @Test
    void aDirectoryWithoutTheModelIsRefusedWithItsName(@TempDir Path empty) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> run("--a", MODEL.toString(),
                "--b", empty.toString(), "--shapes", "64x1024"));
        assertTrue(e.getMessage().contains(empty.toString()), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> run("--a", MODEL.toString()));
        assertThrows(IllegalArgumentException.class, () -> run("--a", MODEL.toString(), "--b", MODEL.toString(),
                "--rounds", "many"));
    }
}
