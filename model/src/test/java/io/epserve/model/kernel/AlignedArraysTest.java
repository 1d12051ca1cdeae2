package io.epserve.model.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import org.junit.jupiter.api.Test;

class AlignedArraysTest {
    @Test
    void skipReachesTheNextCacheLine() {
        assertEquals(12, AlignedArrays.skip(16, 4));
        assertEquals(6, AlignedArrays.skip(16, 8));
        assertEquals(13, AlignedArrays.skip(12, 4)); // compact object headers
        assertEquals(0, AlignedArrays.skip(64, 4));
        for (int base = 8; base <= 64; base += 4) {
            assertEquals(0, (base + 4 * AlignedArrays.skip(base, 4)) % 64, "base " + base);
        }
    }

    @Test
    void onG1TheArraysAreHumongousAndSkipToALine() {
        boolean g1 = ManagementFactory.getGarbageCollectorMXBeans().stream()
                .map(GarbageCollectorMXBean::getName).anyMatch(n -> n.startsWith("G1"));
        if (!g1) {
            assertEquals(0, AlignedArrays.FLOAT_SKIP);
            assertEquals(0, AlignedArrays.DOUBLE_SKIP);
            return;
        }
        assertTrue(AlignedArrays.HUMONGOUS_BYTES >= 512 << 10, "half a G1 region: " + AlignedArrays.HUMONGOUS_BYTES);
        assertEquals(AlignedArrays.skip(sun.misc.Unsafe.ARRAY_FLOAT_BASE_OFFSET, 4), AlignedArrays.FLOAT_SKIP);
        assertEquals(AlignedArrays.skip(sun.misc.Unsafe.ARRAY_DOUBLE_BASE_OFFSET, 8), AlignedArrays.DOUBLE_SKIP);
        float[] f = AlignedArrays.floats(10);
        assertTrue(4L * f.length >= AlignedArrays.HUMONGOUS_BYTES && f.length >= 10 + AlignedArrays.FLOAT_SKIP);
        double[] d = AlignedArrays.doubles(1 << 22);
        assertTrue(d.length >= (1 << 22) + AlignedArrays.DOUBLE_SKIP);
    }
}
