package io.epserve.model.text;

import com.fasterxml.jackson.databind.JsonNode;
import io.epserve.model.text.ChatMessage.Role;
import io.epserve.model.text.ChatMessage.Task;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * The DeepSeek-V4 chat encoding (spec §6 and Appendix A): a conversation to the prompt text the model reads, byte for
 * byte as the official {@code encoding_dsv4.py} writes it. Tool results become user turns, earlier reasoning is dropped
 * in thinking mode unless tools are declared, tool calls are written in DSML, and a conversation that ends with a user
 * (or developer) message ends with the generation prompt {@code <｜Assistant｜>} + {@code <think>} or {@code </think>}.
 * {@link CompletionParser} reads the model's answer back.
 */
public final class ChatEncoding {
    public static final String BOS = "<｜begin▁of▁sentence｜>";
    public static final String EOS = "<｜end▁of▁sentence｜>";
    public static final String USER = "<｜User｜>";
    public static final String ASSISTANT = "<｜Assistant｜>";
    public static final String LATEST_REMINDER = "<｜latest_reminder｜>";
    public static final String THINK_START = "<think>";
    public static final String THINK_END = "</think>";
    /** The DSML marker: one special token, without angle brackets. */
    public static final String DSML = "｜DSML｜";

    /** Inserted right after BOS in {@link ThinkingMode#MAX} (spec §6.2, exact bytes). */
    public static final String REASONING_EFFORT_MAX = "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
            + "You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the root"
            + " cause, rigorously stress-testing your logic against all potential paths, edge cases, and adversarial"
            + " scenarios.\n"
            + "Explicitly write out your entire deliberation process, documenting every intermediate step, considered"
            + " alternative, and rejected hypothesis to ensure absolutely no assumption is left unchecked.\n\n";

    private static final String TOOLS_HEAD = "## Tools\n\n"
            + "You have access to a set of tools to help answer the user's question. You can invoke tools by writing a"
            + " \"<" + DSML + "tool_calls>\" block like the following:\n\n"
            + "<" + DSML + "tool_calls>\n"
            + "<" + DSML + "invoke name=\"$TOOL_NAME\">\n"
            + "<" + DSML + "parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</" + DSML
            + "parameter>\n"
            + "...\n"
            + "</" + DSML + "invoke>\n"
            + "<" + DSML + "invoke name=\"$TOOL_NAME2\">\n"
            + "...\n"
            + "</" + DSML + "invoke>\n"
            + "</" + DSML + "tool_calls>\n\n"
            + "String parameters should be specified as is and set `string=\"true\"`. For all other types (numbers,"
            + " booleans, arrays, objects), pass the value in JSON format and set `string=\"false\"`.\n\n"
            + "If thinking_mode is enabled (triggered by <think>), you MUST output your complete reasoning inside"
            + " <think>...</think> BEFORE any tool calls or final response.\n\n"
            + "Otherwise, output directly after </think> with tool calls or final response.\n\n"
            + "### Available Tool Schemas\n\n";
    private static final String TOOLS_TAIL = "\n\nYou MUST strictly follow the above defined tool name and parameter"
            + " schemas to invoke tool calls.\n";
    private static final String RESPONSE_FORMAT_HEAD =
            "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n";

    private ChatEncoding() {}

    /** The prompt of a conversation, earlier reasoning dropped as the official encoder does by default. */
    public static String render(List<ChatMessage> messages, ThinkingMode mode) {
        return render(messages, mode, true);
    }

    /**
     * The prompt of a conversation. With {@code dropThinking} (the default) and a thinking mode, the reasoning of
     * assistant turns before the last user (or developer) message is left out and developer messages before it are
     * dropped; declaring tools on any message turns this off. Throws {@link IllegalArgumentException} on a message
     * the official encoder rejects (a developer message without content, tool-call arguments that are not a JSON
     * object, a latest_reminder without content).
     */
    public static String render(List<ChatMessage> messages, ThinkingMode mode, boolean dropThinking) {
        List<Turn> turns = sortToolResults(mergeToolMessages(messages));
        boolean drop = dropThinking;
        for (Turn t : turns) {
            if (!t.msg.tools().isEmpty()) {
                drop = false;
                break;
            }
        }
        if (mode.thinking() && drop) {
            turns = dropThinking(turns);
        }
        StringBuilder sb = new StringBuilder(BOS);
        for (int i = 0; i < turns.size(); i++) {
            renderTurn(sb, i, turns, mode, drop);
        }
        return sb.toString();
    }

    /** The "## Tools" block of Appendix A for these tools (without the {@code \n\n} that precedes it). */
    public static String renderTools(List<ToolSpec> tools) {
        StringBuilder sb = new StringBuilder(TOOLS_HEAD);
        for (int i = 0; i < tools.size(); i++) {
            if (i > 0) {
                sb.append('\n');
            }
            sb.append(tools.get(i).schemaJson());
        }
        return sb.append(TOOLS_TAIL).toString();
    }

    /**
     * The DSML block of an assistant turn's tool calls, with the {@code \n\n} before it (spec §6.3). String arguments
     * are written as they are with {@code string="true"}, every other value as JSON with {@code string="false"}.
     */
    public static String renderToolCalls(List<ToolCall> calls) {
        StringBuilder sb = new StringBuilder("\n\n<").append(DSML).append("tool_calls>\n");
        for (int i = 0; i < calls.size(); i++) {
            ToolCall call = calls.get(i);
            if (i > 0) {
                sb.append('\n');
            }
            sb.append('<').append(DSML).append("invoke name=\"").append(call.name()).append("\">\n");
            JsonNode args;
            try {
                args = call.argumentsJson();
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("arguments of tool call '" + call.name() + "' are "
                        + e.getMessage(), e);
            }
            if (!args.isObject()) {
                throw new IllegalArgumentException("arguments of tool call '" + call.name()
                        + "' must be a JSON object, got " + call.arguments());
            }
            boolean first = true;
            for (Iterator<Map.Entry<String, JsonNode>> it = args.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (!first) {
                    sb.append('\n');
                }
                first = false;
                JsonNode v = e.getValue();
                sb.append('<').append(DSML).append("parameter name=\"").append(e.getKey()).append("\" string=\"")
                        .append(v.isTextual() ? "true" : "false").append("\">")
                        .append(v.isTextual() ? v.textValue() : PythonJson.dumps(v))
                        .append("</").append(DSML).append("parameter>");
            }
            sb.append('\n').append("</").append(DSML).append("invoke>");
        }
        return sb.append("\n</").append(DSML).append("tool_calls>").toString();
    }

    // ---- preprocessing (merge_tool_messages, sort_tool_results_by_call_order, _drop_thinking_messages) ----

    /** A piece of a user turn: text, or a tool result with the id of the call it answers. */
    private record Block(boolean toolResult, String toolCallId, String text) {}

    /** A message after preprocessing; user turns carry their blocks. */
    private record Turn(ChatMessage msg, List<Block> blocks) {
        Role role() {
            return msg.role();
        }
    }

    private static List<Turn> mergeToolMessages(List<ChatMessage> messages) {
        List<Turn> merged = new ArrayList<>();
        for (ChatMessage m : messages) {
            Turn last = merged.isEmpty() ? null : merged.get(merged.size() - 1);
            if (m.role() == Role.TOOL) {
                Block b = new Block(true, m.toolCallId() == null ? "" : m.toolCallId(), orEmpty(m.content()));
                if (last != null && last.role() == Role.USER) {
                    last.blocks.add(b);
                } else {
                    List<Block> blocks = new ArrayList<>();
                    blocks.add(b);
                    merged.add(new Turn(ChatMessage.user(null), blocks));
                }
            } else if (m.role() == Role.USER) {
                Block b = new Block(false, null, orEmpty(m.content()));
                // As the official encoder: a user message joins the user turn before it unless that turn has a task
                // (its own task, if any, is then not kept).
                if (last != null && last.role() == Role.USER && last.msg.task() == null) {
                    last.blocks.add(b);
                } else {
                    List<Block> blocks = new ArrayList<>();
                    blocks.add(b);
                    ChatMessage u = ChatMessage.user(m.content()).withTask(m.task()).withOmitEos(m.omitEos());
                    merged.add(new Turn(u, blocks));
                }
            } else {
                merged.add(new Turn(m, null));
            }
        }
        return merged;
    }

    /** Tool results of a user turn in the order of the calls of the last assistant turn with calls. */
    private static List<Turn> sortToolResults(List<Turn> turns) {
        Map<String, Integer> order = new HashMap<>();
        for (Turn t : turns) {
            if (t.role() == Role.ASSISTANT && !t.msg.toolCalls().isEmpty()) {
                order = new HashMap<>();
                List<ToolCall> calls = t.msg.toolCalls();
                for (int i = 0; i < calls.size(); i++) {
                    String id = calls.get(i).id();
                    if (id != null && !id.isEmpty()) {
                        order.put(id, i);
                    }
                }
            } else if (t.role() == Role.USER) {
                List<Block> results = new ArrayList<>();
                for (Block b : t.blocks) {
                    if (b.toolResult) {
                        results.add(b);
                    }
                }
                if (results.size() > 1 && !order.isEmpty()) {
                    Map<String, Integer> o = order;
                    results.sort(Comparator.comparingInt(b -> o.getOrDefault(b.toolCallId, 0))); // stable
                    int k = 0;
                    for (int i = 0; i < t.blocks.size(); i++) {
                        if (t.blocks.get(i).toolResult) {
                            t.blocks.set(i, results.get(k++));
                        }
                    }
                }
            }
        }
        return turns;
    }

    private static int lastUserIndex(List<Turn> turns) {
        for (int i = turns.size() - 1; i >= 0; i--) {
            Role r = turns.get(i).role();
            if (r == Role.USER || r == Role.DEVELOPER) {
                return i;
            }
        }
        return -1;
    }

    private static List<Turn> dropThinking(List<Turn> turns) {
        int lastUser = lastUserIndex(turns);
        List<Turn> kept = new ArrayList<>();
        for (int i = 0; i < turns.size(); i++) {
            Turn t = turns.get(i);
            Role r = t.role();
            if (r == Role.USER || r == Role.SYSTEM || r == Role.TOOL || r == Role.LATEST_REMINDER || i >= lastUser) {
                kept.add(t);
            } else if (r == Role.ASSISTANT) {
                ChatMessage m = t.msg;
                kept.add(new Turn(new ChatMessage(m.role(), m.content(), null, m.toolCalls(), m.toolCallId(),
                        m.tools(), m.responseFormat(), m.task(), m.omitEos()), null));
            }
            // developer messages before the last user message are dropped
        }
        return kept;
    }

    // ---- rendering (render_message) ----

    private static void renderTurn(StringBuilder sb, int index, List<Turn> turns, ThinkingMode mode, boolean drop) {
        Turn turn = turns.get(index);
        ChatMessage m = turn.msg;
        int lastUser = lastUserIndex(turns);
        boolean thinking = mode.thinking();
        if (index == 0 && mode == ThinkingMode.MAX) {
            sb.append(REASONING_EFFORT_MAX);
        }
        switch (m.role()) {
            case SYSTEM -> {
                sb.append(orEmpty(m.content()));
                appendToolsAndFormat(sb, m);
            }
            case DEVELOPER -> {
                if (m.content() == null || m.content().isEmpty()) {
                    throw new IllegalArgumentException("a developer message needs content");
                }
                sb.append(USER).append(m.content());
                appendToolsAndFormat(sb, m);
            }
            case USER -> {
                sb.append(USER);
                for (int i = 0; i < turn.blocks.size(); i++) {
                    Block b = turn.blocks.get(i);
                    if (i > 0) {
                        sb.append("\n\n");
                    }
                    if (b.toolResult) {
                        sb.append("<tool_result>").append(b.text).append("</tool_result>");
                    } else {
                        sb.append(b.text);
                    }
                }
            }
            case LATEST_REMINDER -> {
                if (m.content() == null) {
                    throw new IllegalArgumentException("a latest_reminder message needs content");
                }
                sb.append(LATEST_REMINDER).append(m.content());
            }
            case ASSISTANT -> {
                boolean prevHasTask = index > 0 && turns.get(index - 1).msg.task() != null;
                if (thinking && !prevHasTask && (!drop || index > lastUser)) {
                    sb.append(orEmpty(m.reasoningContent())).append(THINK_END);
                }
                sb.append(orEmpty(m.content()));
                if (!m.toolCalls().isEmpty()) {
                    sb.append(renderToolCalls(m.toolCalls()));
                }
                if (!m.omitEos()) {
                    sb.append(EOS);
                }
            }
            case TOOL -> throw new IllegalStateException("tool messages are merged into user turns");
        }

        // What follows the message: nothing if another non-assistant turn comes next; else a task token or the
        // generation prompt.
        if (index + 1 < turns.size()) {
            Role next = turns.get(index + 1).role();
            if (next != Role.ASSISTANT && next != Role.LATEST_REMINDER) {
                return;
            }
        }
        Task task = m.task();
        if (task != null) {
            if (task != Task.ACTION) {
                sb.append(task.token());
            } else {
                sb.append(ASSISTANT).append(thinking ? THINK_START : THINK_END).append(task.token());
            }
        } else if (m.role() == Role.USER || m.role() == Role.DEVELOPER) {
            sb.append(ASSISTANT);
            if (thinking && (!drop || index >= lastUser)) {
                sb.append(THINK_START);
            } else {
                sb.append(THINK_END);
            }
        }
    }

    private static void appendToolsAndFormat(StringBuilder sb, ChatMessage m) {
        if (!m.tools().isEmpty()) {
            sb.append("\n\n").append(renderTools(m.tools()));
        }
        if (truthy(m.responseFormat())) {
            sb.append("\n\n").append(RESPONSE_FORMAT_HEAD).append(PythonJson.dumps(m.responseFormat()));
        }
    }

    /** Python truthiness, which decides whether the official encoder writes a response format. */
    private static boolean truthy(JsonNode v) {
        if (v == null || v.isNull()) {
            return false;
        }
        if (v.isContainerNode()) {
            return !v.isEmpty();
        }
        if (v.isTextual()) {
            return !v.textValue().isEmpty();
        }
        if (v.isBoolean()) {
            return v.booleanValue();
        }
        if (v.isNumber()) {
            return v.isIntegralNumber() ? v.bigIntegerValue().signum() != 0 : v.doubleValue() != 0;
        }
        return true;
    }

    private static String orEmpty(String s) {
        return s == null ? "" : s;
    }
}
