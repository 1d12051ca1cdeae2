package io.epserve.model.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The huge-page copy of a checkpoint's tensors: same bytes, only the wanted tensors, released on close. */
class WeightMemoryTest {
    @TempDir
    Path dir;

    private Path writeCheckpoint() throws IOException {
        float[] a = new float[1000];
        float[] b = new float[777];
        for (int i = 0; i < a.length; i++) {
            a[i] = i * 0.5f - 3;
        }
        for (int i = 0; i < b.length; i++) {
            b[i] = -i;
        }
        LoaderRejectionTest.write(dir.resolve(Checkpoint.SINGLE), List.of(LoaderRejectionTest.f32("kept.a", a),
                LoaderRejectionTest.f32("other.b", b), LoaderRejectionTest.f32("kept.c", 1f, 2f, 3f)));
        return dir;
    }

    @Test
    void parsesTheTwoNamesAndRejectsOthersNamingTheSetting() {
        assertEquals(WeightMemory.MAPPED, WeightMemory.parse("mapped"));
        assertEquals(WeightMemory.HUGE_PAGES, WeightMemory.parse(" Huge-Pages "));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> WeightMemory.parse("thp"));
        assertTrue(e.getMessage().contains("EPSERVE_WEIGHTS") && e.getMessage().contains("'thp'"), e.getMessage());
        for (WeightMemory m : WeightMemory.values()) {
            assertEquals(m, WeightMemory.parse(m.flagValue()));
        }
    }

    @Test
    void hugePagesCopyHoldsTheSameBytesOfTheWantedTensorsOnly() throws IOException {
        Path d = writeCheckpoint();
        try (Checkpoint mapped = Checkpoint.open(d, n -> true, WeightMemory.MAPPED);
             Checkpoint copy = Checkpoint.open(d, n -> n.startsWith("kept."), WeightMemory.HUGE_PAGES)) {
            assertEquals(WeightMemory.MAPPED, mapped.memory());
            assertEquals(0, mapped.copiedBytes());
            Assumptions.assumeTrue(copy.memory() == WeightMemory.HUGE_PAGES, "no anonymous huge-page memory here");
            for (String name : List.of("kept.a", "kept.c", "other.b")) {
                TensorInfo m = mapped.tensors().get(name);
                TensorInfo c = copy.tensors().get(name);
                assertEquals(m.dtype(), c.dtype());
                assertArrayEquals(m.shape(), c.shape());
                assertEquals(m.file(), c.file(), "messages still name the file");
                assertArrayEquals(m.data().toArray(ValueLayout.JAVA_BYTE), c.data().toArray(ValueLayout.JAVA_BYTE),
                        name);
                assertTrue(c.data().isReadOnly(), name);
            }
            MemorySegment a = copy.tensors().get("kept.a").data();
            MemorySegment c = copy.tensors().get("kept.c").data();
            assertNotEquals(mapped.tensors().get("kept.a").data().address(), a.address(), "kept.a was copied");
            assertEquals(0, a.address() % WeightMemory.HUGE_PAGE, "the copy starts on a huge page");
            assertEquals(0, c.address() % 64, "every copied tensor starts on a cache line");
            assertEquals(4032 + 12, copy.copiedBytes(), "only the wanted tensors, each aligned");
            // the unwanted tensor stays a view of the file, as mapped (an expert worker reads no other expert)
            MemorySegment b = copy.tensors().get("other.b").data();
            assertTrue(b.address() < a.address() || b.address() >= a.address() + copy.copiedBytes());
            assertTrue(copy.memoryDescription().contains("huge pages"), copy.memoryDescription());
        }
    }

    @Test
    void closingReleasesTheCopyAndLaterReadsFailCleanly() throws IOException {
        Path d = writeCheckpoint();
        Checkpoint copy = Checkpoint.open(d, n -> true, WeightMemory.HUGE_PAGES);
        Assumptions.assumeTrue(copy.memory() == WeightMemory.HUGE_PAGES, "no anonymous huge-page memory here");
        MemorySegment a = copy.tensors().get("kept.a").data();
        assertEquals(-3f, a.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 0));
        copy.close();
        assertThrows(IllegalStateException.class, () -> a.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 0));
    }

    @Test
    void nothingWantedMeansNothingCopied() throws IOException {
        Path d = writeCheckpoint();
        try (Checkpoint none = Checkpoint.open(d, n -> false, WeightMemory.HUGE_PAGES)) {
            assertEquals(WeightMemory.MAPPED, none.memory());
            assertEquals(0, none.copiedBytes());
            assertEquals(3, none.tensors().size());
        }
    }
}
