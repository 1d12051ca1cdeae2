package io.epserve.model.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.GoldenData;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The tokenizer on the golden tiny tokenizer.json: a byte-level vocabulary (id = 3 + byte) plus the DeepSeek
 * special tokens (GOLDEN.md "Prompt"); expectations are computed from that rule, not from the tokenizer.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class TokenizerTest {
    static final String BOS = "<｜begin▁of▁sentence｜>";
    static final String USER = "<｜User｜>";
    static final String ASSISTANT = "<｜Assistant｜>";
    static final String END_THINK = "</think>";

    private GoldenData golden;
    private Tokenizer tok;

    @BeforeAll
    void load() {
        golden = GoldenData.open("tiny");
        tok = Tokenizer.load(golden.dir);
    }

    @AfterAll
    void close() {
        tok.close();
        golden.close();
    }

    /** The byte rule of the tiny vocabulary: every UTF-8 byte b is token 3 + b. */
    static int[] byteIds(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        int[] ids = new int[b.length];
        for (int i = 0; i < b.length; i++) {
            ids[i] = 3 + (b[i] & 0xff);
        }
        return ids;
    }

    static int[] concat(int[]... parts) {
        int n = 0;
        for (int[] p : parts) {
            n += p.length;
        }
        int[] out = new int[n];
        int o = 0;
        for (int[] p : parts) {
            System.arraycopy(p, 0, out, o, p.length);
            o += p.length;
        }
        return out;
    }

    @Test
    void plainTextIsOneTokenPerByteAndNoBosIsAdded() {
        assertArrayEquals(new int[] {'W' + 3, 'h' + 3, 'a' + 3, 't' + 3}, tok.encode("What"));
        assertArrayEquals(new int[0], tok.encode(""));
        assertArrayEquals(byteIds(" a\n\tb "), tok.encode(" a\n\tb "));
        assertEquals("What", tok.decode(new int[] {90, 107, 100, 119}));
    }

    @Test
    void specialTokensInTheTextBecomeTheirIds() {
        assertArrayEquals(new int[] {0, 259, 107, 108, 260, 262}, tok.encode(BOS + USER + "hi" + ASSISTANT + END_THINK));
        // ｜DSML｜ is one token without the angle brackets: "<｜DSML｜invoke" = '<' + DSML + "invoke"
        assertArrayEquals(concat(new int[] {'<' + 3, 263}, byteIds("invoke")), tok.encode("<｜DSML｜invoke"));
        assertEquals(0, tok.tokenId(BOS));
        assertEquals(1, tok.tokenId("<｜end▁of▁sentence｜>"));
        assertEquals(259, tok.tokenId(USER));
        assertEquals(260, tok.tokenId(ASSISTANT));
        assertEquals(261, tok.tokenId("<think>"));
        assertEquals(262, tok.tokenId(END_THINK));
        assertEquals(263, tok.tokenId("｜DSML｜"));
        assertThrows(IllegalArgumentException.class, () -> tok.tokenId("<｜no such token｜>"));
        assertEquals(512, tok.vocabSize());
    }

    @Test
    void goldenPromptTokensDecodeToThePromptTextAndBack() throws IOException {
        String md = Files.readString(golden.dir.resolve("GOLDEN.md"));
        int a = md.indexOf("```\n", md.indexOf("## Prompt")) + 4;
        String text = md.substring(a, md.indexOf("\n```", a));
        assertEquals(92, text.length(), "GOLDEN.md prompt text");
        String prompt = BOS + USER + text + ASSISTANT + END_THINK;
        int[] tokens = golden.ints("tokens");
        assertEquals(96, tokens.length);
        assertArrayEquals(concat(new int[] {0, 259}, byteIds(text), new int[] {260, 262}), tokens);
        assertEquals(prompt, tok.decode(tokens));
        assertArrayEquals(tokens, tok.encode(prompt));
        // streamed token by token, the same text
        Tokenizer.Stream s = tok.stream();
        StringBuilder sb = new StringBuilder();
        for (int t : tokens) {
            sb.append(s.push(t));
        }
        sb.append(s.flush());
        assertEquals(prompt, sb.toString());
    }

    @Test
    void multiByteTextRoundTrips() {
        String text = "é漢字🙂 naïve — ok";
        int[] ids = tok.encode(text);
        assertArrayEquals(byteIds(text), ids);
        assertEquals(text, tok.decode(ids));
    }

    @Test
    void streamingNeverEmitsPartOfACharacter() {
        String text = "é漢字🙂x🙂";
        int[] ids = tok.encode(text);
        assertEquals(text.getBytes(StandardCharsets.UTF_8).length, ids.length);
        // Expected: the text is released exactly when a character's last byte arrives.
        List<String> expected = new ArrayList<>();
        text.codePoints().forEach(cp -> {
            String ch = new String(Character.toChars(cp));
            int len = ch.getBytes(StandardCharsets.UTF_8).length;
            for (int i = 1; i < len; i++) {
                expected.add("");
            }
            expected.add(ch);
        });
        Tokenizer.Stream s = tok.stream();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < ids.length; i++) {
            String piece = s.push(ids[i]);
            assertEquals(expected.get(i), piece, "after byte " + i);
            assertFalse(piece.indexOf('\uFFFD') >= 0, "replacement character after byte " + i);
            if (!piece.isEmpty()) {
                assertFalse(Character.isLowSurrogate(piece.charAt(0)), "split surrogate pair");
                assertFalse(Character.isHighSurrogate(piece.charAt(piece.length() - 1)), "split surrogate pair");
            }
            sb.append(piece);
        }
        assertEquals("", s.flush());
        assertEquals(text, sb.toString());
    }

    @Test
    void streamingHoldsAnIncompleteTailUntilFlush() {
        Tokenizer.Stream s = tok.stream();
        assertEquals("a", s.push('a' + 3));
        assertEquals("", s.push(0xE6 + 3)); // first two bytes of 漢
        assertEquals("", s.push(0xBC + 3));
        assertEquals("\uFFFD", s.flush(), "an incomplete sequence at the end comes out as one U+FFFD");
        assertEquals("", s.flush());
    }

    @Test
    void streamingKeepsSpecialTokensAsText() {
        Tokenizer.Stream s = tok.stream();
        StringBuilder sb = new StringBuilder();
        for (int id : concat(new int[] {260}, byteIds("é"), new int[] {262, 1})) {
            sb.append(s.push(id));
        }
        sb.append(s.flush());
        assertEquals(ASSISTANT + "é" + END_THINK + "<｜end▁of▁sentence｜>", sb.toString());
    }

    @Test
    void outOfRangeIdsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> tok.decode(new int[] {512}));
        assertThrows(IllegalArgumentException.class, () -> tok.decode(new int[] {-1}));
        assertThrows(IllegalArgumentException.class, () -> tok.stream().push(512));
    }

    @Test
    void missingFileIsReported() {
        Path none = golden.dir.resolve("no-such-dir");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(none));
        assertTrue(e.getMessage().contains("tokenizer.json"), e.getMessage());
    }
}
