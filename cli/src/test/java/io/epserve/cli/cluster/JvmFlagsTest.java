package io.epserve.cli.cluster;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The project's JVM flags (what the launcher, LocalCluster's workers and the container image start with) keep G1 even
 * where the JVM sees a single CPU, as a worker pinned with taskset or in a one-CPU container does: there the JVM's
 * own choice is Serial, under which the kernels' activation arrays are not cache-line aligned (AlignedArrays).
 */
class JvmFlagsTest {
    @Test
    void aOneCpuJvmRunsG1WithTheProjectFlagsAndSerialWithout() throws Exception {
        List<String> flags = LocalCluster.jvmFlags();
        assertFalse(flags.isEmpty(), "the filtered resource io/epserve/cli/jvm.flags");
        String with = printFlags(flags);
        String without = printFlags(List.of());
        assertTrue(selected(without, "UseSerialGC"), "control: a one-CPU JVM picks Serial by itself\n" + without);
        assertTrue(selected(with, "UseG1GC"), "G1 with the project flags\n" + with);
        assertFalse(selected(with, "UseSerialGC"), with);
    }

    private static boolean selected(String printFlagsFinal, String flag) {
        return Pattern.compile("(?m)^\\s*bool\\s+" + flag + "\\s+=\\s+true\\b").matcher(printFlagsFinal).find();
    }

    private static String printFlags(List<String> flags) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(flags);
        cmd.addAll(List.of("-XX:ActiveProcessorCount=1", "-Xmx256m", "-XX:+PrintFlagsFinal", "-version"));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "java -version did not finish");
        String s = new String(out, StandardCharsets.UTF_8);
        assertTrue(p.exitValue() == 0, "exit " + p.exitValue() + "\n" + s);
        return s;
    }
}
