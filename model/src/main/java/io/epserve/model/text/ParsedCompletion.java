package io.epserve.model.text;

import java.util.List;
import java.util.Objects;

/**
 * One assistant turn read back from model output by {@link CompletionParser}.
 *
 * @param reasoningContent the text before {@code </think>} (empty in chat mode)
 * @param content          the answer; DSML that could not be parsed is kept here as text
 * @param toolCalls        the well-formed tool calls, in order (ids are null: the server assigns them)
 * @param malformed        true if the output held DSML that did not parse (its text is in {@code content})
 */
public record ParsedCompletion(String reasoningContent, String content, List<ToolCall> toolCalls, boolean malformed) {
    public ParsedCompletion {
        Objects.requireNonNull(reasoningContent, "reasoningContent");
        Objects.requireNonNull(content, "content");
        toolCalls = List.copyOf(toolCalls);
    }

    /** The turn as an assistant message, to append to the conversation. */
    public ChatMessage toMessage() {
        return ChatMessage.assistant(content, reasoningContent, toolCalls);
    }
}
