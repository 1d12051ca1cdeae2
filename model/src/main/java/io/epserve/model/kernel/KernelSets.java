package io.epserve.model.kernel;

import java.util.List;

/** Creates a kernel set by name: "exact" (scalar float64, the golden's mode A) or "fast" (Vector API, threads). */
public final class KernelSets {
    private KernelSets() {}

    public static final List<String> NAMES = List.of("exact", "fast");

    public static Kernels create(String name, int threads) {
        return switch (name) {
            case "exact" -> new ExactKernels();
            case "fast" -> new FastKernels(Math.max(1, threads));
            default -> throw new IllegalArgumentException("unknown kernel set '" + name + "' (use exact or fast)");
        };
    }
}
