package io.epserve.model.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.text.ChatMessage.Task;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

class ChatEncodingTest {
    static final String BOS = "<｜begin▁of▁sentence｜>";
    static final String EOS = "<｜end▁of▁sentence｜>";

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4})
    void officialFixturesRenderByteForByte(int n) {
        List<ChatMessage> messages = ChatJson.parseConversation(EncodingFixtures.input(n));
        String prompt = ChatEncoding.render(messages, EncodingFixtures.mode(n));
        assertArrayEquals(EncodingFixtures.output(n).getBytes(StandardCharsets.UTF_8),
                prompt.getBytes(StandardCharsets.UTF_8), () -> "case " + n + ":\n" + prompt);
    }

    @Test
    void specialStringsUseFullWidthBarAndLowerOneEighthBlock() {
        assertEquals("<\uFF5Cbegin\u2581of\u2581sentence\uFF5C>", ChatEncoding.BOS);
        assertEquals("<\uFF5Cend\u2581of\u2581sentence\uFF5C>", ChatEncoding.EOS);
        assertEquals("\uFF5CDSML\uFF5C", ChatEncoding.DSML);
        assertEquals("<\uFF5CUser\uFF5C>", ChatEncoding.USER);
        assertEquals("<\uFF5CAssistant\uFF5C>", ChatEncoding.ASSISTANT);
    }

    @Test
    void maxModeInsertsTheExactReasoningEffortTextAfterBos() {
        String effort = "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
                + "You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the "
                + "root cause, rigorously stress-testing your logic against all potential paths, edge cases, and "
                + "adversarial scenarios.\nExplicitly write out your entire deliberation process, documenting every "
                + "intermediate step, considered alternative, and rejected hypothesis to ensure absolutely no "
                + "assumption is left unchecked.\n\n";
        assertEquals(effort, ChatEncoding.REASONING_EFFORT_MAX);
        assertEquals(476, effort.getBytes(StandardCharsets.UTF_8).length);
        for (int n = 1; n <= 3; n++) {
            List<ChatMessage> messages = ChatJson.parseConversation(EncodingFixtures.input(n));
            String thinking = EncodingFixtures.output(n);
            assertEquals(BOS + effort + thinking.substring(BOS.length()),
                    ChatEncoding.render(messages, ThinkingMode.MAX), "case " + n);
        }
        // chat mode ignores it; a conversation that starts with a user message gets it before <｜User｜>
        List<ChatMessage> chat = List.of(ChatMessage.user("Hi"));
        assertEquals(BOS + "<｜User｜>Hi<｜Assistant｜></think>", ChatEncoding.render(chat, ThinkingMode.CHAT));
        assertEquals(BOS + effort + "<｜User｜>Hi<｜Assistant｜><think>", ChatEncoding.render(chat, ThinkingMode.MAX));
    }

    @Test
    void generationPromptEndsWithThinkOrEndThink() {
        List<ChatMessage> m = List.of(ChatMessage.system("S"), ChatMessage.user("Q1"),
                ChatMessage.assistant("A1", "R1", null), ChatMessage.user("Q2"));
        assertEquals(BOS + "S<｜User｜>Q1<｜Assistant｜></think>A1" + EOS + "<｜User｜>Q2<｜Assistant｜><think>",
                ChatEncoding.render(m, ThinkingMode.THINKING));
        assertEquals(BOS + "S<｜User｜>Q1<｜Assistant｜></think>A1" + EOS + "<｜User｜>Q2<｜Assistant｜></think>",
                ChatEncoding.render(m, ThinkingMode.CHAT));
        // without drop_thinking the earlier reasoning stays, opened by <think>
        assertEquals(BOS + "S<｜User｜>Q1<｜Assistant｜><think>R1</think>A1" + EOS + "<｜User｜>Q2<｜Assistant｜><think>",
                ChatEncoding.render(m, ThinkingMode.THINKING, false));
    }

    @Test
    void toolResultsMergeIntoOneUserTurnInCallOrderWithUserText() {
        List<ToolCall> calls = List.of(new ToolCall("a", "f", "{\"x\": 1}"), new ToolCall("b", "g", "{}"));
        List<ChatMessage> m = List.of(ChatMessage.user("Q"), ChatMessage.assistant(null, "R", calls),
                ChatMessage.tool("b", "B"), ChatMessage.tool("a", "A"), ChatMessage.user("more"));
        String p = ChatEncoding.render(m, ThinkingMode.CHAT);
        assertTrue(p.endsWith(EOS + "<｜User｜><tool_result>A</tool_result>\n\n<tool_result>B</tool_result>\n\nmore"
                + "<｜Assistant｜></think>"), p);
        assertTrue(p.contains("<｜Assistant｜></think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n"
                + "<｜DSML｜parameter name=\"x\" string=\"false\">1</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
                + "<｜DSML｜invoke name=\"g\">\n\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>" + EOS), p);
    }

    @Test
    void nonStringArgumentsAreWrittenAsPythonJson() {
        ToolCall call = new ToolCall(null, "f",
                "{\"s\": \"a\\nb\", \"n\": 5, \"x\": 1e3, \"o\": {\"k\":[1,true,null,\"ü\"]}, \"e\": 1e-5}");
        assertEquals("\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n"
                + "<｜DSML｜parameter name=\"s\" string=\"true\">a\nb</｜DSML｜parameter>\n"
                + "<｜DSML｜parameter name=\"n\" string=\"false\">5</｜DSML｜parameter>\n"
                + "<｜DSML｜parameter name=\"x\" string=\"false\">1000.0</｜DSML｜parameter>\n"
                + "<｜DSML｜parameter name=\"o\" string=\"false\">{\"k\": [1, true, null, \"ü\"]}</｜DSML｜parameter>\n"
                + "<｜DSML｜parameter name=\"e\" string=\"false\">1e-05</｜DSML｜parameter>\n"
                + "</｜DSML｜invoke>\n</｜DSML｜tool_calls>", ChatEncoding.renderToolCalls(List.of(call)));
    }

    @Test
    void responseFormatFollowsTheToolsBlock() {
        ChatMessage sys = ChatMessage.system("S").withResponseFormat(PythonJson.loads("{\"type\": \"object\"}"));
        String p = ChatEncoding.render(List.of(sys, ChatMessage.user("Q")), ThinkingMode.CHAT);
        assertEquals(BOS + "S\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n"
                + "{\"type\": \"object\"}<｜User｜>Q<｜Assistant｜></think>", p);
        ChatMessage empty = ChatMessage.system("S").withResponseFormat(PythonJson.loads("{}"));
        assertEquals(BOS + "S", ChatEncoding.render(List.of(empty), ThinkingMode.CHAT), "{} is falsy in Python");
    }

    @Test
    void taskTokens() {
        List<ChatMessage> query = List.of(ChatMessage.user("Q").withTask(Task.QUERY), ChatMessage.assistant("q", null, null));
        assertEquals(BOS + "<｜User｜>Q<｜query｜>q" + EOS, ChatEncoding.render(query, ThinkingMode.THINKING));
        List<ChatMessage> action = List.of(ChatMessage.user("Q").withTask(Task.ACTION));
        assertEquals(BOS + "<｜User｜>Q<｜Assistant｜><think><｜action｜>", ChatEncoding.render(action, ThinkingMode.THINKING));
        List<ChatMessage> title = List.of(ChatMessage.user("Q"), ChatMessage.assistant("A", null, null).withTask(Task.TITLE));
        assertEquals(BOS + "<｜User｜>Q<｜Assistant｜></think>A" + EOS + "<｜title｜>",
                ChatEncoding.render(title, ThinkingMode.CHAT));
    }

    @Test
    void rejectsWhatTheOfficialEncoderRejects() {
        assertThrows(IllegalArgumentException.class,
                () -> ChatEncoding.render(List.of(ChatMessage.developer("")), ThinkingMode.CHAT));
        List<ChatMessage> badArgs = List.of(ChatMessage.user("Q"),
                ChatMessage.assistant(null, null, List.of(new ToolCall(null, "f", "{not json"))));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ChatEncoding.render(badArgs, ThinkingMode.CHAT));
        assertTrue(e.getMessage().contains("'f'"), e.getMessage());
        List<ChatMessage> arrayArgs = List.of(ChatMessage.assistant(null, null, List.of(new ToolCall(null, "f", "[1]"))));
        assertThrows(IllegalArgumentException.class, () -> ChatEncoding.render(arrayArgs, ThinkingMode.CHAT));
    }

    @Test
    void jsonInputErrorsSayWhere() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ChatJson.parseConversation("[{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"bot\"}]"));
        assertTrue(e.getMessage().contains("messages[1]") && e.getMessage().contains("bot"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ChatJson.parseConversation("[{\"role\": \"user\"}"));
        assertThrows(IllegalArgumentException.class, () -> ChatJson.parseConversation("\"hello\""));
        assertThrows(IllegalArgumentException.class,
                () -> ChatJson.parseConversation("[{\"role\": \"user\", \"content\": 5}]"));
        assertThrows(IllegalArgumentException.class,
                () -> ChatJson.parseConversation("[{\"role\": \"user\", \"content\": \"x\", \"task\": \"nope\"}]"));
        assertThrows(IllegalArgumentException.class,
                () -> ChatJson.parseConversation("{\"messages\": [], \"tools\": []}").get(0));
    }

    @Test
    void pythonFloatRepr() {
        String[][] cases = {
            {"1.0", "1.0"}, {"1e3", "1000.0"}, {"0.1", "0.1"}, {"1e16", "1e+16"}, {"1e15", "1000000000000000.0"},
            {"0.0001", "0.0001"}, {"0.00001", "1e-05"}, {"-2.5e-7", "-2.5e-07"}, {"5e-324", "5e-324"},
            {"1.7976931348623157e308", "1.7976931348623157e+308"}, {"123456789.125", "123456789.125"},
            {"-0.0", "-0.0"}, {"0.30000000000000004", "0.30000000000000004"}, {"2e22", "2e+22"},
        };
        for (String[] c : cases) {
            assertEquals(c[1], PythonJson.dumps(PythonJson.loads(c[0])), c[0]);
        }
        assertEquals("123456789012345678901234567890", PythonJson.dumps(PythonJson.loads("123456789012345678901234567890")));
        assertEquals("\"a\\\"b\\\\c\\u0001\\n€\"", PythonJson.quote("a\"b\\c\u0001\n€"));
    }
}
