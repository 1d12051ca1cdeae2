package io.epserve.model.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.epserve.model.text.ChatMessage.Role;
import io.epserve.model.text.ChatMessage.Task;
import java.util.ArrayList;
import java.util.List;

/**
 * Conversations in JSON, the shape of the official encoder's test inputs and of OpenAI chat requests: an array of
 * messages, or an object {@code {"messages": [...], "tools": [...]}} whose tools go on the first message. A message
 * has {@code role} (system, developer, user, assistant, tool, latest_reminder) and {@code content}; an assistant may
 * have {@code reasoning_content} and {@code tool_calls} ({@code [{"id", "type": "function", "function": {"name",
 * "arguments"}}]}, arguments as a JSON string or object); a tool result has {@code tool_call_id}; a system or
 * developer message may have {@code tools} (OpenAI format) and {@code response_format}; any message may have a
 * {@code task} and {@code wo_eos}. Other fields (such as {@code mask}) are ignored.
 */
public final class ChatJson {
    private ChatJson() {}

    /** Reads a conversation; throws {@link IllegalArgumentException} with what is wrong and where. */
    public static List<ChatMessage> parseConversation(String json) {
        return conversation(PythonJson.loads(json));
    }

    /** A conversation from parsed JSON (array of messages, or object with messages and tools). */
    public static List<ChatMessage> conversation(JsonNode root) {
        JsonNode messages;
        JsonNode tools = null;
        if (root.isArray()) {
            messages = root;
        } else if (root.isObject()) {
            messages = root.get("messages");
            if (messages == null || !messages.isArray()) {
                throw new IllegalArgumentException("the conversation object needs a \"messages\" array");
            }
            tools = root.get("tools");
            if (tools != null && !tools.isNull() && !tools.isArray()) {
                throw new IllegalArgumentException("\"tools\" must be an array");
            }
        } else {
            throw new IllegalArgumentException(
                    "a conversation is an array of messages or an object with \"messages\", not " + root.getNodeType());
        }
        List<ChatMessage> out = new ArrayList<>();
        for (int i = 0; i < messages.size(); i++) {
            try {
                out.add(message(messages.get(i)));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("messages[" + i + "]: " + e.getMessage(), e);
            }
        }
        if (tools != null && !tools.isNull()) {
            if (out.isEmpty()) {
                throw new IllegalArgumentException("\"tools\" given but there are no messages to put them on");
            }
            try {
                out.set(0, out.get(0).withTools(tools(tools)));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("tools: " + e.getMessage(), e);
            }
        }
        return out;
    }

    /** One message. */
    public static ChatMessage message(JsonNode m) {
        if (m == null || !m.isObject()) {
            throw new IllegalArgumentException("a message must be a JSON object");
        }
        JsonNode roleNode = m.get("role");
        if (roleNode == null || !roleNode.isTextual()) {
            throw new IllegalArgumentException("a message needs a \"role\" string");
        }
        Role role = Role.parse(roleNode.textValue());
        String content = role == Role.TOOL ? toolContent(m.get("content")) : optString(m, "content");
        String reasoning = optString(m, "reasoning_content");
        if (reasoning == null) {
            reasoning = optString(m, "reasoning");
        }
        List<ToolCall> calls = new ArrayList<>();
        JsonNode tc = m.get("tool_calls");
        if (tc != null && !tc.isNull()) {
            if (!tc.isArray()) {
                throw new IllegalArgumentException("\"tool_calls\" must be an array");
            }
            for (int i = 0; i < tc.size(); i++) {
                try {
                    calls.add(toolCall(tc.get(i)));
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("tool_calls[" + i + "]: " + e.getMessage(), e);
                }
            }
        }
        List<ToolSpec> tools = List.of();
        JsonNode t = m.get("tools");
        if (t != null && !t.isNull()) {
            if (!t.isArray()) {
                throw new IllegalArgumentException("\"tools\" must be an array");
            }
            tools = tools(t);
        }
        Task task = null;
        String taskName = optString(m, "task");
        if (taskName != null) {
            task = Task.parse(taskName);
        }
        JsonNode woEos = m.get("wo_eos");
        if (woEos != null && !woEos.isNull() && !woEos.isBoolean()) {
            throw new IllegalArgumentException("\"wo_eos\" must be true or false");
        }
        return new ChatMessage(role, content, reasoning, calls, optString(m, "tool_call_id"), tools,
                m.get("response_format"), task, woEos != null && woEos.asBoolean(false));
    }

    /** OpenAI-format tools ({@code [{"type": "function", "function": {...}}]}). */
    public static List<ToolSpec> tools(JsonNode tools) {
        List<ToolSpec> out = new ArrayList<>();
        for (int i = 0; i < tools.size(); i++) {
            try {
                out.add(ToolSpec.fromOpenAi(tools.get(i)));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("tools[" + i + "]: " + e.getMessage(), e);
            }
        }
        return out;
    }

    /** An OpenAI-format tool call. */
    public static ToolCall toolCall(JsonNode c) {
        if (c == null || !c.isObject()) {
            throw new IllegalArgumentException("a tool call must be an object");
        }
        JsonNode f = c.get("function");
        if (f == null || !f.isObject()) {
            throw new IllegalArgumentException("a tool call needs a \"function\" object");
        }
        String name = optString(f, "name");
        if (name == null) {
            throw new IllegalArgumentException("a tool call needs a function \"name\"");
        }
        JsonNode a = f.get("arguments");
        String arguments;
        if (a == null || a.isNull()) {
            throw new IllegalArgumentException("tool call '" + name + "' needs \"arguments\"");
        } else if (a.isTextual()) {
            arguments = a.textValue();
        } else if (a.isObject()) {
            arguments = PythonJson.dumps(a);
        } else {
            throw new IllegalArgumentException("arguments of tool call '" + name + "' must be a JSON string or object");
        }
        String id = optString(c, "id");
        if (id == null) {
            id = optString(f, "id");
        }
        return new ToolCall(id, name, arguments);
    }

    /**
     * The parsed completion as an OpenAI-style assistant message (so it can be appended to a conversation):
     * {@code role}, {@code reasoning_content}, {@code content}, {@code tool_calls} with the arguments as a JSON string
     * (and the {@code id} if the call has one), and {@code malformed}.
     */
    public static ObjectNode completionJson(ParsedCompletion p) {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("role", "assistant");
        o.put("reasoning_content", p.reasoningContent());
        o.put("content", p.content());
        ArrayNode calls = o.putArray("tool_calls");
        for (ToolCall c : p.toolCalls()) {
            ObjectNode call = calls.addObject();
            if (c.id() != null) {
                call.put("id", c.id());
            }
            call.put("type", "function");
            ObjectNode f = call.putObject("function");
            f.put("name", c.name());
            f.put("arguments", c.arguments());
        }
        o.put("malformed", p.malformed());
        return o;
    }

    private static String optString(JsonNode m, String field) {
        JsonNode v = m.get(field);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isTextual()) {
            throw new IllegalArgumentException("\"" + field + "\" must be a string");
        }
        return v.textValue();
    }

    /** A tool result's content: a string, or text parts joined by a blank line as the official encoder does. */
    private static String toolContent(JsonNode v) {
        if (v == null || v.isNull()) {
            return null;
        }
        if (v.isTextual()) {
            return v.textValue();
        }
        if (v.isArray()) {
            List<String> parts = new ArrayList<>();
            for (JsonNode b : v) {
                String type = b.path("type").asText("");
                if (type.equals("text")) {
                    parts.add(b.path("text").asText(""));
                } else {
                    parts.add("[Unsupported " + (type.isEmpty() ? "None" : type) + "]");
                }
            }
            return String.join("\n\n", parts);
        }
        throw new IllegalArgumentException("\"content\" must be a string or an array of content parts");
    }
}
