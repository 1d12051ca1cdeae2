package io.epserve.model.text;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * One message of a conversation, in the shape the official DeepSeek-V4 encoder reads (spec §6; {@link ChatJson}
 * reads it from JSON).
 *
 * @param role             who speaks
 * @param content          the text (null is rendered as empty)
 * @param reasoningContent an assistant's reasoning ({@code reasoning_content}), or null
 * @param toolCalls        an assistant's tool calls (never null)
 * @param toolCallId       a tool result's {@code tool_call_id}, or null
 * @param tools            tools declared on a system or developer message (never null)
 * @param responseFormat   a JSON schema the answer must follow (system or developer message), or null
 * @param task             a quick-instruction task token after this message, or null
 * @param omitEos          an assistant turn without the closing {@code <｜end▁of▁sentence｜>} ({@code wo_eos}),
 *                         to continue a prefilled answer
 */
public record ChatMessage(
        Role role,
        String content,
        String reasoningContent,
        List<ToolCall> toolCalls,
        String toolCallId,
        List<ToolSpec> tools,
        JsonNode responseFormat,
        Task task,
        boolean omitEos) {

    public ChatMessage {
        Objects.requireNonNull(role, "role");
        toolCalls = toolCalls == null ? List.of() : List.copyOf(toolCalls);
        tools = tools == null ? List.of() : List.copyOf(tools);
        responseFormat = responseFormat == null || responseFormat.isNull() ? null : responseFormat.deepCopy();
    }

    /** The roles of spec §6.2, named as in the JSON. */
    public enum Role {
        SYSTEM, DEVELOPER, USER, ASSISTANT, TOOL, LATEST_REMINDER;

        public String wireName() {
            return name().toLowerCase(Locale.ROOT);
        }

        public static Role parse(String name) {
            for (Role r : values()) {
                if (r.wireName().equals(name)) {
                    return r;
                }
            }
            throw new IllegalArgumentException("unknown role '" + name
                    + "' (expected system, developer, user, assistant, tool or latest_reminder)");
        }
    }

    /** Quick-instruction tasks of the official encoder and their special tokens (spec §6.1-6.2). */
    public enum Task {
        ACTION("<｜action｜>"),
        QUERY("<｜query｜>"),
        AUTHORITY("<｜authority｜>"),
        DOMAIN("<｜domain｜>"),
        TITLE("<｜title｜>"),
        READ_URL("<｜read_url｜>");

        private final String token;

        Task(String token) {
            this.token = token;
        }

        public String token() {
            return token;
        }

        public String wireName() {
            return name().toLowerCase(Locale.ROOT);
        }

        public static Task parse(String name) {
            for (Task t : values()) {
                if (t.wireName().equals(name)) {
                    return t;
                }
            }
            throw new IllegalArgumentException("unknown task '" + name
                    + "' (expected action, query, authority, domain, title or read_url)");
        }
    }

    public static ChatMessage system(String content) {
        return of(Role.SYSTEM, content);
    }

    public static ChatMessage developer(String content) {
        return of(Role.DEVELOPER, content);
    }

    public static ChatMessage user(String content) {
        return of(Role.USER, content);
    }

    public static ChatMessage latestReminder(String content) {
        return of(Role.LATEST_REMINDER, content);
    }

    public static ChatMessage assistant(String content, String reasoningContent, List<ToolCall> toolCalls) {
        return new ChatMessage(Role.ASSISTANT, content, reasoningContent, toolCalls, null, null, null, null, false);
    }

    public static ChatMessage tool(String toolCallId, String content) {
        return new ChatMessage(Role.TOOL, content, null, null, toolCallId, null, null, null, false);
    }

    private static ChatMessage of(Role role, String content) {
        return new ChatMessage(role, content, null, null, null, null, null, null, false);
    }

    public ChatMessage withTools(List<ToolSpec> tools) {
        return new ChatMessage(role, content, reasoningContent, toolCalls, toolCallId, tools, responseFormat, task,
                omitEos);
    }

    public ChatMessage withResponseFormat(JsonNode responseFormat) {
        return new ChatMessage(role, content, reasoningContent, toolCalls, toolCallId, tools, responseFormat, task,
                omitEos);
    }

    public ChatMessage withTask(Task task) {
        return new ChatMessage(role, content, reasoningContent, toolCalls, toolCallId, tools, responseFormat, task,
                omitEos);
    }

    public ChatMessage withOmitEos(boolean omitEos) {
        return new ChatMessage(role, content, reasoningContent, toolCalls, toolCallId, tools, responseFormat, task,
                omitEos);
    }

    @Override
    public JsonNode responseFormat() {
        return responseFormat == null ? null : responseFormat.deepCopy();
    }
}
