package io.epserve.router;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;

class StopStringsTest {
    /** Feeds text in pieces of the given size; returns what was released, then the match. */
    static String[] feed(List<String> stops, String text, int piece) {
        StopStrings s = new StopStrings(stops);
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < text.length(); i += piece) {
            out.append(s.push(text.substring(i, Math.min(text.length(), i + piece))));
        }
        out.append(s.flush());
        return new String[] {out.toString(), s.matched()};
    }

    @Test
    void aStopStringSplitAcrossPiecesIsFoundAndNeverShown() {
        for (int piece = 1; piece <= 12; piece++) {
            String[] r = feed(List.of("END", "\n\n"), "The answer is 42.END and more", piece);
            assertEquals("The answer is 42.", r[0], "piece " + piece);
            assertEquals("END", r[1]);
            r = feed(List.of("END", "\n\n"), "line one\n\nline two END", piece);
            assertEquals("line one", r[0], "the earliest stop wins, piece " + piece);
            assertEquals("\n\n", r[1]);
        }
    }

    @Test
    void textThatOnlyLooksLikeAStopStringIsReleasedAtTheEnd() {
        for (int piece = 1; piece <= 5; piece++) {
            String[] r = feed(List.of("ENDING"), "we END here, ENDIN", piece);
            assertEquals("we END here, ENDIN", r[0]);
            assertNull(r[1]);
        }
        StopStrings s = new StopStrings(List.of("ab"));
        assertEquals("x", s.push("xa"));
        assertEquals("ac", s.push("c"));
        assertEquals("", s.flush());
        assertEquals("plain", feed(List.of(), "plain", 2)[0]);
        assertThrows(IllegalArgumentException.class, () -> new StopStrings(List.of("")));
    }
}
