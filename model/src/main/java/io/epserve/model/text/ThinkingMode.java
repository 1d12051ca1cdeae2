package io.epserve.model.text;

import java.util.Locale;

/**
 * How the assistant answers (spec §6.2). {@link #CHAT}: the generation prompt ends with {@code </think>} and the
 * answer follows directly. {@link #THINKING} ("Think High"): it ends with {@code <think>}, the model reasons, closes
 * with {@code </think>} and answers. {@link #MAX} ("Think Max"): thinking plus the fixed "Reasoning Effort" text
 * right after BOS ({@code reasoning_effort="max"} of the official encoder).
 */
public enum ThinkingMode {
    CHAT,
    THINKING,
    MAX;

    /** True when the model writes reasoning before {@code </think>} (thinking and max). */
    public boolean thinking() {
        return this != CHAT;
    }

    /** The name used on the command line and in requests: chat, thinking or max. */
    public String wireName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Parses chat, thinking or max (case-insensitive); throws {@link IllegalArgumentException} otherwise. */
    public static ThinkingMode parse(String name) {
        if (name != null) {
            for (ThinkingMode m : values()) {
                if (m.wireName().equalsIgnoreCase(name.strip())) {
                    return m;
                }
            }
        }
        throw new IllegalArgumentException("thinking mode must be chat, thinking or max, got '" + name + "'");
    }
}
