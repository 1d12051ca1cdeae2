package io.epserve.router;

import java.util.List;

/**
 * Stop strings over streamed text: text is released only once no stop string can start inside it, so a stop string
 * split across tokens is still found and never shown. Not thread-safe (one per request).
 */
final class StopStrings {
    private final List<String> stops;
    private final StringBuilder held = new StringBuilder();
    private String matched;

    StopStrings(List<String> stops) {
        for (String s : stops) {
            if (s.isEmpty()) {
                throw new IllegalArgumentException("a stop string is empty");
            }
        }
        this.stops = List.copyOf(stops);
    }

    /** The stop string found, or null. */
    String matched() {
        return matched;
    }

    /** Adds text; returns what can be released now (after a match: the text before the stop string, then nothing). */
    String push(String text) {
        if (matched != null) {
            return "";
        }
        if (stops.isEmpty()) {
            return text;
        }
        held.append(text);
        int first = -1;
        for (String s : stops) {
            int i = held.indexOf(s);
            if (i >= 0 && (first < 0 || i < first)) {
                first = i;
                matched = s;
            }
        }
        if (first >= 0) {
            String out = held.substring(0, first);
            held.setLength(0);
            return out;
        }
        int keep = 0;
        String h = held.toString();
        for (String s : stops) {
            for (int k = Math.min(s.length() - 1, h.length()); k > keep; k--) {
                if (h.regionMatches(h.length() - k, s, 0, k)) {
                    keep = k;
                    break;
                }
            }
        }
        String out = held.substring(0, held.length() - keep);
        held.delete(0, held.length() - keep);
        return out;
    }

    /** The text still held back at the end of the stream (no stop string completed). */
    String flush() {
        String out = matched != null ? "" : held.toString();
        held.setLength(0);
        return out;
    }
}
