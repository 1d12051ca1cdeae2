package io.epserve.cli.commands;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The CPU check of {@code bench-cluster --pin}: real pinning through sched_setaffinity, real kernels. */
class CpuPairProbeTest {
    /** The CPUs this process may run on, from /proc (Linux), e.g. "0-1" or "0,2-3". */
    private static List<Integer> allowedCpus() throws IOException {
        Path status = Path.of("/proc/self/status");
        assumeTrue(Files.isReadable(status), "Linux only");
        return parseList(field(status, "Cpus_allowed_list"));
    }

    private static String field(Path status, String name) throws IOException {
        for (String line : Files.readAllLines(status)) {
            if (line.startsWith(name + ":")) {
                return line.substring(name.length() + 1).trim();
            }
        }
        throw new AssertionError(name + " not in " + status);
    }

    private static List<Integer> parseList(String list) {
        List<Integer> cpus = new ArrayList<>();
        for (String part : list.split(",")) {
            String[] r = part.split("-");
            int from = Integer.parseInt(r[0]);
            int to = r.length == 1 ? from : Integer.parseInt(r[1]);
            for (int c = from; c <= to; c++) {
                cpus.add(c);
            }
        }
        return cpus;
    }

    @Test
    @Timeout(30)
    void pinsTheCallingThreadOnly() throws Exception {
        List<Integer> cpus = allowedCpus();
        int cpu = cpus.get(cpus.size() - 1);
        AtomicReference<Object> seen = new AtomicReference<>();
        Thread t = new Thread(() -> {
            try {
                CpuPairProbe.pinCurrentThread(cpu);
                seen.set(field(Path.of("/proc/thread-self/status"), "Cpus_allowed_list"));
            } catch (Throwable e) {
                seen.set(e);
            }
        });
        t.start();
        t.join();
        assertEquals(String.valueOf(cpu), seen.get(), "the pinned thread's allowed CPUs");
        assertEquals(cpus, allowedCpus(), "the rest of the process keeps its CPUs");
    }

    @Test
    void aCpuThatDoesNotExistIsAClearError() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> CpuPairProbe.pinCurrentThread(4000));
        assertTrue(e.getMessage().contains("CPU 4000"), e.getMessage());
    }

    @Test
    @Timeout(60)
    void measuresEachCpuAloneAndBothTogether() throws Exception {
        List<Integer> cpus = allowedCpus();
        assumeTrue(cpus.size() >= 2, "needs two CPUs");
        try (CpuPairProbe probe = new CpuPairProbe(cpus.get(0), cpus.get(1))) {
            CpuPairProbe.Result r = probe.measure(200, 200);
            assertTrue(r.alone0() > 0 && r.alone1() > 0 && r.together0() > 0 && r.together1() > 0, r.toString());
            assertTrue(r.ratio() > 0 && Double.isFinite(r.ratio()), r.toString());
        }
    }

    @Test
    @Timeout(30)
    void aFailingCpuFailsTheMeasurementWithoutHanging() throws IOException {
        try (CpuPairProbe probe = new CpuPairProbe(allowedCpus().get(0), 4000)) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> probe.measure(100, 100));
            assertTrue(e.getMessage().contains("CPU 4000"), e.getMessage());
        }
    }
}
