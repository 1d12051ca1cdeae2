package io.epserve.model.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.text.CompletionEvent.ContentDelta;
import io.epserve.model.text.CompletionEvent.Malformed;
import io.epserve.model.text.CompletionEvent.ReasoningDelta;
import io.epserve.model.text.CompletionEvent.ToolCallArgumentsDelta;
import io.epserve.model.text.CompletionEvent.ToolCallEnd;
import io.epserve.model.text.CompletionEvent.ToolCallStart;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class CompletionParserTest {
    static final String EOS = "<｜end▁of▁sentence｜>";
    static final String D = "｜DSML｜";

    /** The text after the first (or last) occurrence of {@code start} up to the next {@code <｜User｜>} or the end. */
    static String completion(String prompt, String start, boolean last) {
        int i = last ? prompt.lastIndexOf(start) : prompt.indexOf(start);
        int from = i + start.length();
        int to = prompt.indexOf("<｜User｜>", from);
        return prompt.substring(from, to < 0 ? prompt.length() : to);
    }

    static String invoke(String name, String... params) {
        StringBuilder sb = new StringBuilder("<" + D + "invoke name=\"" + name + "\">\n");
        for (String p : params) {
            sb.append(p).append('\n');
        }
        return sb.append("</" + D + "invoke>").toString();
    }

    static String param(String name, boolean string, String value) {
        return "<" + D + "parameter name=\"" + name + "\" string=\"" + string + "\">" + value + "</" + D + "parameter>";
    }

    static String block(String... invokes) {
        return "\n\n<" + D + "tool_calls>\n" + String.join("\n", invokes) + "\n</" + D + "tool_calls>";
    }

    // ---- the README's parsing checks ----

    @Test
    void case1FirstCompletionIsAToolCall() {
        String text = completion(EncodingFixtures.output(1), "<｜Assistant｜><think>", false);
        ParsedCompletion p = CompletionParser.parse(text, ThinkingMode.THINKING);
        assertEquals("The user wants to know the weather in Beijing. I should use the get_weather tool.",
                p.reasoningContent());
        assertEquals("", p.content());
        assertEquals(1, p.toolCalls().size());
        assertEquals("get_weather", p.toolCalls().get(0).name());
        assertEquals("{\"location\": \"Beijing\", \"unit\": \"celsius\"}", p.toolCalls().get(0).arguments());
        assertEquals(PythonJson.loads("{\"location\": \"Beijing\", \"unit\": \"celsius\"}"),
                p.toolCalls().get(0).argumentsJson());
        assertFalse(p.malformed());
    }

    @Test
    void case1LastCompletionIsTheAnswer() {
        String text = completion(EncodingFixtures.output(1), "<｜Assistant｜><think>", true);
        ParsedCompletion p = CompletionParser.parse(text, ThinkingMode.THINKING);
        assertEquals("Got the weather data. Let me format a nice response.", p.reasoningContent());
        assertTrue(p.content().contains("22°C"), p.content());
        assertEquals("The weather in Beijing is currently sunny with a temperature of 22°C and 45% humidity.",
                p.content());
        assertTrue(p.toolCalls().isEmpty());
        assertFalse(p.malformed());
    }

    @Test
    void case2LastCompletion() {
        String text = completion(EncodingFixtures.output(2), "<｜Assistant｜><think>", true);
        ParsedCompletion p = CompletionParser.parse(text, ThinkingMode.THINKING);
        assertEquals("The user asks about the capital of France. It is Paris.", p.reasoningContent());
        assertEquals("The capital of France is Paris.", p.content());
        assertTrue(p.toolCalls().isEmpty());
    }

    @Test
    void case3AndCase4Completions() {
        String out3 = EncodingFixtures.output(3);
        ParsedCompletion first = CompletionParser.parse(completion(out3, "<｜Assistant｜><think>", false),
                ThinkingMode.THINKING);
        assertEquals("用户想知道小柴胡冲剂和布洛芬能否一起服用。", first.reasoningContent());
        assertEquals("", first.content());
        assertEquals(List.of(new ToolCall(null, "search", "{\"queries\": \"小柴胡冲剂 布洛芬 相互作用 一起吃\"}")),
                first.toolCalls());
        ParsedCompletion last = CompletionParser.parse(completion(out3, "<｜Assistant｜><think>", true),
                ThinkingMode.THINKING);
        assertEquals("现在开始组织回答。", last.reasoningContent());
        assertEquals("请及时就医。", last.content());

        ParsedCompletion chat = CompletionParser.parse(
                completion(EncodingFixtures.output(4), "<｜Assistant｜></think>", false), ThinkingMode.CHAT);
        assertEquals("", chat.reasoningContent());
        assertTrue(chat.content().startsWith("关于热海大滚锅") && chat.content().endsWith("进一步的信息。"));
        assertTrue(chat.content().contains("### 💡 游玩攻略"));
    }

    // ---- DSML ----

    @Test
    void stringFalseValuesAreJsonAndStringTrueValuesAreStrings() {
        String text = "Checking.</think>Let me look." + block(
                invoke("get_weather", param("location", true, "Beijing \"north\"\n"), param("days", false, "5"),
                        param("opts", false, "{\"a\":[1, 2.50,\n true]}"), param("flag", false, " null ")),
                invoke("noop"),
                invoke("echo", param("text", true, "<b>x</b> ｜ < / 💡"))) + EOS;
        ParsedCompletion p = CompletionParser.parse(text, ThinkingMode.THINKING);
        assertEquals("Checking.", p.reasoningContent());
        assertEquals("Let me look.", p.content());
        assertFalse(p.malformed());
        assertEquals(List.of(
                new ToolCall(null, "get_weather", "{\"location\": \"Beijing \\\"north\\\"\\n\", \"days\": 5, "
                        + "\"opts\": {\"a\": [1, 2.5, true]}, \"flag\": null}"),
                new ToolCall(null, "noop", "{}"),
                new ToolCall(null, "echo", "{\"text\": \"<b>x</b> ｜ < / 💡\"}")), p.toolCalls());
    }

    @Test
    void renderedToolCallsParseBackToTheSameCalls() {
        List<ToolCall> calls = List.of(
                new ToolCall(null, "f", "{\"s\": \"multi\\nline <tag> ｜\", \"n\": -3, \"x\": 0.25, \"l\": [\"a\", {}]}"),
                new ToolCall(null, "g", "{}"),
                new ToolCall(null, "h", "{\"empty\": \"\", \"t\": true}"));
        String text = "Here." + ChatEncoding.renderToolCalls(calls) + EOS;
        ParsedCompletion p = CompletionParser.parse(text, ThinkingMode.CHAT);
        assertEquals("Here.", p.content());
        assertEquals(calls, p.toolCalls());
        // and the parsed turn renders back to the same text
        String rendered = ChatEncoding.render(List.of(ChatMessage.user("Q"), p.toMessage()), ThinkingMode.CHAT);
        assertTrue(rendered.endsWith("<｜Assistant｜></think>" + text), rendered);
    }

    @Test
    void aBlockRightAfterThinkNeedsNoBlankLine() {
        String text = "r</think><" + D + "tool_calls>\n" + invoke("f", param("a", true, "1")) + "\n</" + D + "tool_calls>";
        ParsedCompletion p = CompletionParser.parse(text, ThinkingMode.THINKING);
        assertEquals("", p.content());
        assertEquals(List.of(new ToolCall(null, "f", "{\"a\": \"1\"}")), p.toolCalls());
        assertFalse(p.malformed());
    }

    // ---- malformed DSML comes back as flagged text ----

    @Test
    void malformedBlockIsContentWithTheFlag() {
        String bad = block(invoke("f", "<" + D + "parameter name=\"a\" string=\"maybe\">1</" + D + "parameter>"));
        List<CompletionEvent> events = new ArrayList<>();
        CompletionParser parser = new CompletionParser(ThinkingMode.THINKING, events::add);
        parser.feed("ok</think>Sure." + bad + EOS);
        ParsedCompletion p = parser.finish();
        assertTrue(p.malformed());
        assertEquals("Sure." + bad, p.content());
        assertTrue(p.toolCalls().isEmpty());
        Malformed m = (Malformed) events.stream().filter(e -> e instanceof Malformed).findFirst().orElseThrow();
        assertEquals(0, m.abandonedCall());
        assertTrue(m.reason().contains("parameter"), m.reason());
    }

    @Test
    void malformedCasesKeepEveryCharacter() {
        String good = invoke("f", param("a", true, "1"));
        String[][] cases = {
            // truncated block (no end tag): content gets the block text
            {"Sure." + "\n\n<" + D + "tool_calls>\n" + good + "\n<" + D + "invoke name=\"g\">\n" + param("b", true, "x"),
                "Sure.", "<" + D + "invoke name=\"g\">\n" + param("b", true, "x"), "1"},
            // string="false" value that is not JSON; the first call is committed
            {"A" + block(good, invoke("g", param("b", false, "not json"))), "A",
                invoke("g", param("b", false, "not json")) + "\n</" + D + "tool_calls>", "1"},
            // no newline after the opening tag
            {"A\n\n<" + D + "tool_calls>" + good, "A", "\n\n<" + D + "tool_calls>" + good, "0"},
            // duplicate parameter
            {"A" + block(invoke("f", param("a", true, "1"), param("a", true, "2"))), "A",
                block(invoke("f", param("a", true, "1"), param("a", true, "2"))), "0"},
            // a parameter value not closed by </｜DSML｜parameter>
            {"A" + block(invoke("f", "<" + D + "parameter name=\"a\" string=\"true\">1/" + D + "parameter>")), "A",
                block(invoke("f", "<" + D + "parameter name=\"a\" string=\"true\">1/" + D + "parameter>")), "0"},
            // text after the block
            {"A" + block(good) + "\nmore", "A", "\nmore", "1"},
            // a DSML token outside a block
            {"A <" + D + "invoke name=\"f\"> B", "A ", "<" + D + "invoke name=\"f\"> B", "0"},
        };
        for (String[] c : cases) {
            ParsedCompletion p = CompletionParser.parse(c[0], ThinkingMode.CHAT);
            assertTrue(p.malformed(), c[0]);
            assertEquals(c[1] + c[2], p.content(), c[0]);
            assertEquals(Integer.parseInt(c[3]), p.toolCalls().size(), c[0]);
            assertStreamingInvariant(c[0], ThinkingMode.CHAT);
        }
    }

    // ---- streaming ----

    @Test
    void heldBackTextIsNeverPartOfAMarker() {
        List<CompletionEvent> events = new ArrayList<>();
        CompletionParser p = new CompletionParser(ThinkingMode.THINKING, events::add);
        p.feed("abc</thi");
        assertEquals(List.of(new ReasoningDelta("abc")), events);
        events.clear();
        p.feed("nk>Ans");
        assertEquals(List.of(new ContentDelta("Ans")), events);
        events.clear();
        p.feed("wer\n\n<｜DSML｜tool_ca");
        assertEquals(List.of(new ContentDelta("wer")), events);
        events.clear();
        p.feed("lls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"q\" string=\"true\">hi <");
        assertEquals(List.of(new ToolCallStart(0, "f"), new ToolCallArgumentsDelta(0, "{\"q\": \""),
                new ToolCallArgumentsDelta(0, "hi ")), events);
        events.clear();
        p.feed("/｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of");
        assertEquals(List.of(new ToolCallArgumentsDelta(0, "\""), new ToolCallArgumentsDelta(0, "}"),
                new ToolCallEnd(0, new ToolCall(null, "f", "{\"q\": \"hi \"}"))), events);
        events.clear();
        p.feed("▁sentence｜>ignored");
        assertTrue(p.ended());
        ParsedCompletion r = p.finish();
        assertEquals(List.of(), events);
        assertEquals(new ParsedCompletion("abc", "Answer", List.of(new ToolCall(null, "f", "{\"q\": \"hi \"}")), false), r);
    }

    @Test
    void finishFlushesHeldBackText() {
        ParsedCompletion p = CompletionParser.parse("r</think>a\n\n<｜DS", ThinkingMode.MAX);
        assertEquals(new ParsedCompletion("r", "a\n\n<｜DS", List.of(), false), p);
        assertEquals(new ParsedCompletion("still thinking </th", "", List.of(), false),
                CompletionParser.parse("still thinking </th", ThinkingMode.THINKING));
        assertEquals(new ParsedCompletion("", "x <｜end▁of▁sent", List.of(), false),
                CompletionParser.parse("x <｜end▁of▁sent", ThinkingMode.CHAT));
    }

    @Test
    void everyChunkBoundaryGivesTheSameMessageAndDeltas() {
        List<String[]> texts = new ArrayList<>();
        for (int n = 1; n <= 3; n++) {
            String out = EncodingFixtures.output(n);
            texts.add(new String[] {completion(out, "<｜Assistant｜><think>", false), "thinking"});
            texts.add(new String[] {completion(out, "<｜Assistant｜><think>", true), "thinking"});
        }
        texts.add(new String[] {completion(EncodingFixtures.output(4), "<｜Assistant｜></think>", false), "chat"});
        texts.add(new String[] {"Checking.</think>Let me look." + block(
                invoke("get_weather", param("location", true, "Bei<jing\n<"), param("days", false, "[5, {\"a\": 1}]")),
                invoke("noop"), invoke("e", param("t", true, "💡</x>｜/"))) + EOS + "junk", "thinking"});
        texts.add(new String[] {"a\n\n\nb\n\n<x｜D</think>\n" + block(invoke("f", param("a", true, "</"))), "chat"});
        for (String[] t : texts) {
            assertStreamingInvariant(t[0], ThinkingMode.parse(t[1]));
        }
    }

    @Test
    void randomTextsFromMarkerPiecesStreamLikeTheyParseInBulk() {
        String[] pieces = {
            "a", "x y", "\n", "\n\n", "<", "/", ">", "\"", "｜", "💡", "5", "[1, 2]", "{\"k\": null}",
            "</think>", "</thi", "<｜DSML｜tool_calls>\n", "\n\n<｜DSML｜tool_calls>\n", "<｜DSML｜tool_calls",
            "<｜DSML｜invoke name=\"f\">\n", "<｜DSML｜invoke name=\"g\">\n", " name=\"p\" string=\"true\">",
            "<｜DSML｜parameter name=\"p\" string=\"true\">", "<｜DSML｜parameter name=\"q\" string=\"false\">",
            "</｜DSML｜parameter>\n", "/｜DSML｜parameter>", "</｜DSML｜invoke>\n", "</｜DSML｜invoke>",
            "</｜DSML｜tool_calls>", "｜DSML｜", EOS, "<｜end▁of", "▁sentence｜>",
        };
        Random rnd = new Random(42);
        for (int t = 0; t < 300; t++) {
            StringBuilder sb = new StringBuilder();
            if (t % 3 == 0) {
                // mostly well-formed: a valid turn with one piece inserted somewhere
                String valid = "r</think>c" + block(invoke("f", param("p", true, "v<"), param("q", false, "[1]")),
                        invoke("g")) + EOS;
                int at = rnd.nextInt(valid.length() + 1);
                sb.append(valid, 0, at).append(pieces[rnd.nextInt(pieces.length)]).append(valid.substring(at));
            } else {
                for (int n = 1 + rnd.nextInt(14); n > 0; n--) {
                    sb.append(pieces[rnd.nextInt(pieces.length)]);
                }
            }
            for (ThinkingMode mode : new ThinkingMode[] {ThinkingMode.CHAT, ThinkingMode.THINKING}) {
                assertStreamingInvariant(sb.toString(), mode);
            }
        }
    }

    /** Every split in two, single characters and random chunkings give the bulk parse's result and events. */
    static void assertStreamingInvariant(String text, ThinkingMode mode) {
        List<CompletionEvent> bulkEvents = new ArrayList<>();
        ParsedCompletion bulk = run(text, mode, List.of(text), bulkEvents);
        List<CompletionEvent> expected = merge(bulkEvents);
        checkDeltasAddUp(bulk, bulkEvents);
        for (int i = 0; i <= text.length(); i++) {
            assertSame(text, mode, List.of(text.substring(0, i), text.substring(i)), bulk, expected, "split at " + i);
        }
        List<String> chars = new ArrayList<>();
        for (int i = 0; i < text.length(); i++) {
            chars.add(text.substring(i, i + 1)); // UTF-16 units: surrogate pairs are split too
        }
        assertSame(text, mode, chars, bulk, expected, "single characters");
        Random rnd = new Random(text.hashCode());
        for (int r = 0; r < 20; r++) {
            List<String> chunks = new ArrayList<>();
            for (int i = 0; i < text.length(); ) {
                int n = Math.min(text.length() - i, 1 + rnd.nextInt(12));
                chunks.add(text.substring(i, i + n));
                i += n;
            }
            assertSame(text, mode, chunks, bulk, expected, "random chunks " + chunks);
        }
    }

    private static void assertSame(String text, ThinkingMode mode, List<String> chunks, ParsedCompletion bulk,
                                   List<CompletionEvent> expected, String what) {
        List<CompletionEvent> events = new ArrayList<>();
        ParsedCompletion p = run(text, mode, chunks, events);
        assertEquals(bulk, p, what + " of " + text);
        assertEquals(expected, merge(events), what + " of " + text);
        checkDeltasAddUp(p, events);
    }

    private static ParsedCompletion run(String text, ThinkingMode mode, List<String> chunks, List<CompletionEvent> events) {
        CompletionParser parser = new CompletionParser(mode, events::add);
        for (String c : chunks) {
            parser.feed(c);
        }
        return parser.finish();
    }

    /** The deltas of each kind concatenate to the result's fields; ended calls are the result's calls. */
    private static void checkDeltasAddUp(ParsedCompletion p, List<CompletionEvent> events) {
        StringBuilder reasoning = new StringBuilder();
        StringBuilder content = new StringBuilder();
        List<StringBuilder> args = new ArrayList<>();
        List<ToolCall> ended = new ArrayList<>();
        for (CompletionEvent e : events) {
            switch (e) {
                case ReasoningDelta d -> reasoning.append(d.text());
                case ContentDelta d -> content.append(d.text());
                case ToolCallStart s -> {
                    assertEquals(args.size(), s.index());
                    args.add(new StringBuilder());
                }
                case ToolCallArgumentsDelta d -> args.get(d.index()).append(d.text());
                case ToolCallEnd end -> {
                    assertEquals(args.get(end.index()).toString(), end.call().arguments());
                    ended.add(end.call());
                }
                case Malformed m -> assertTrue(p.malformed());
            }
        }
        assertEquals(p.reasoningContent(), reasoning.toString());
        assertEquals(p.content(), content.toString());
        assertEquals(p.toolCalls(), ended);
    }

    /** Adjacent text deltas of one kind (and call) joined. */
    static List<CompletionEvent> merge(List<CompletionEvent> events) {
        List<CompletionEvent> out = new ArrayList<>();
        for (CompletionEvent e : events) {
            CompletionEvent last = out.isEmpty() ? null : out.get(out.size() - 1);
            if (e instanceof ReasoningDelta d && last instanceof ReasoningDelta l) {
                out.set(out.size() - 1, new ReasoningDelta(l.text() + d.text()));
            } else if (e instanceof ContentDelta d && last instanceof ContentDelta l) {
                out.set(out.size() - 1, new ContentDelta(l.text() + d.text()));
            } else if (e instanceof ToolCallArgumentsDelta d && last instanceof ToolCallArgumentsDelta l
                    && l.index() == d.index()) {
                out.set(out.size() - 1, new ToolCallArgumentsDelta(d.index(), l.text() + d.text()));
            } else {
                out.add(e);
            }
        }
        return out;
    }
}
