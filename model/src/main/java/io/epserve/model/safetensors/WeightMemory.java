package io.epserve.model.safetensors;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Where a process keeps the weights it computes with.
 *
 * <ul>
 * <li>{@link #MAPPED}: views of the memory-mapped checkpoint files (page cache, 4 KiB pages).
 * <li>{@link #HUGE_PAGES}: a copy of the tensors the process uses in private anonymous memory advised for
 *     transparent huge pages (2 MiB). The kernels stream weights from DRAM at every step, and from 2 MiB pages
 *     FP4 products took 0.72-0.80 (1 token) and 0.72-0.76 (4 tokens) of their time from 4 KiB pages (AMD EPYC
 *     Zen 5 VM, one thread, 141 matrices of 2048x4096 cycled, alternating rounds; bench/README, fourteenth pass).
 * </ul>
 *
 * <p>The default is {@code HUGE_PAGES} where the kernel offers transparent huge pages (mode "always" or
 * "madvise" in {@code /sys/kernel/mm/transparent_hugepage/enabled}) and {@code MAPPED} elsewhere. The system
 * property {@code epserve.weights} or the environment variable {@code EPSERVE_WEIGHTS} ({@code mapped} or
 * {@code huge-pages}) choose otherwise; worker processes inherit the variable.
 */
public enum WeightMemory {
    MAPPED,
    HUGE_PAGES;

    static final Path THP_MODE = Path.of("/sys/kernel/mm/transparent_hugepage/enabled");
    static final long HUGE_PAGE = 2L << 20;
    private static final int PROT_READ_WRITE = 0x3;
    private static final int MAP_PRIVATE_ANONYMOUS = 0x22;
    private static final int MADV_HUGEPAGE = 14;
    private static final int MADV_DONTNEED = 4;

    /** The choice of the property or variable, else HUGE_PAGES if the kernel offers them, else MAPPED. */
    public static WeightMemory configured() {
        String v = System.getProperty("epserve.weights");
        if (v == null || v.isBlank()) {
            v = System.getenv("EPSERVE_WEIGHTS");
        }
        if (v != null && !v.isBlank()) {
            return parse(v);
        }
        return hugePagesOffered() ? HUGE_PAGES : MAPPED;
    }

    /** {@code mapped} or {@code huge-pages} (case-insensitive). */
    public static WeightMemory parse(String v) {
        return switch (v.trim().toLowerCase(Locale.ROOT)) {
            case "mapped" -> MAPPED;
            case "huge-pages" -> HUGE_PAGES;
            default -> throw new IllegalArgumentException("epserve.weights / EPSERVE_WEIGHTS: '" + v
                    + "' is neither 'mapped' nor 'huge-pages'");
        };
    }

    /** True if transparent huge pages are on for madvised memory (mode "always" or "madvise"). */
    static boolean hugePagesOffered() {
        try {
            String mode = Files.readString(THP_MODE);
            return !mode.contains("[never]") && mode.contains("[");
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /** The name {@link #parse} accepts. */
    public String flagValue() {
        return this == MAPPED ? "mapped" : "huge-pages";
    }

    /**
     * {@code bytes} of zeroed memory of this kind for weights that do not come from a file (benchmarks, tests), freed
     * when {@code arena} closes: plain 64-byte aligned memory for MAPPED, huge pages for HUGE_PAGES (plain memory if
     * none can be had).
     */
    public MemorySegment allocate(long bytes, Arena arena) {
        if (this == HUGE_PAGES) {
            try {
                return allocateHuge(bytes, arena);
            } catch (RuntimeException e) {
                // as Checkpoint does: without huge pages the weights live in ordinary pages
            }
        }
        return arena.allocate(bytes, 64);
    }

    /**
     * {@code bytes} of zeroed private anonymous memory on a 2 MiB boundary, advised for huge pages before it is
     * first touched (so the first write faults in 2 MiB pages); unmapped when {@code arena} closes.
     */
    static MemorySegment allocateHuge(long bytes, Arena arena) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("bytes " + bytes);
        }
        long len = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
        long mapLen = len + HUGE_PAGE;
        MemorySegment base;
        try {
            base = (MemorySegment) Native.MMAP.invokeExact(MemorySegment.NULL, mapLen, PROT_READ_WRITE,
                    MAP_PRIVATE_ANONYMOUS, -1, 0L);
        } catch (Throwable t) {
            throw new IllegalStateException("mmap of " + mapLen + " bytes failed", t);
        }
        if (base.address() == -1L || base.address() == 0L) {
            throw new IllegalStateException("mmap of " + mapLen + " bytes failed (out of memory or address space)");
        }
        long start = (base.address() + HUGE_PAGE - 1) & -HUGE_PAGE;
        MemorySegment region = MemorySegment.ofAddress(start).reinterpret(len);
        try {
            int rc = (int) Native.MADVISE.invokeExact(region, len, MADV_HUGEPAGE);
            if (rc != 0) {
                throw new IllegalStateException("madvise(MADV_HUGEPAGE) returned " + rc);
            }
        } catch (Throwable t) {
            unmap(base, mapLen);
            throw t instanceof IllegalStateException e ? e : new IllegalStateException("madvise failed", t);
        }
        return MemorySegment.ofAddress(start).reinterpret(bytes, arena, s -> unmap(base, mapLen));
    }

    /** madvise(MADV_DONTNEED) over a file mapping (page-aligned: it starts where mmap put it); best effort. */
    static void dropPages(MemorySegment mapping) {
        if (mapping.byteSize() == 0 || mapping.address() % 4096 != 0) {
            return;
        }
        try {
            int rc = (int) Native.MADVISE.invokeExact(mapping, mapping.byteSize(), MADV_DONTNEED);
            assert rc == 0 : rc;
        } catch (Throwable t) {
            // only resident memory is at stake, never a result
        }
    }

    private static void unmap(MemorySegment base, long len) {
        try {
            int rc = (int) Native.MUNMAP.invokeExact(base, len);
            assert rc == 0 : rc;
        } catch (Throwable t) {
            throw new IllegalStateException("munmap failed", t);
        }
    }

    /** libc's mmap, madvise and munmap, looked up on first use. */
    private static final class Native {
        static final Linker LINKER = Linker.nativeLinker();
        static final MethodHandle MMAP = LINKER.downcallHandle(LINKER.defaultLookup().find("mmap").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG,
                        ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
        static final MethodHandle MADVISE = LINKER.downcallHandle(
                LINKER.defaultLookup().find("madvise").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG,
                        ValueLayout.JAVA_INT));
        static final MethodHandle MUNMAP = LINKER.downcallHandle(LINKER.defaultLookup().find("munmap").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
    }
}
