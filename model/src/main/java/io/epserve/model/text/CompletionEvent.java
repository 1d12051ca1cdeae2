package io.epserve.model.text;

/**
 * What {@link CompletionParser} reports as model output arrives. Text deltas never hold part of a special marker.
 * For each kind, the deltas concatenate to the final {@link ParsedCompletion} field, however the output was split
 * into chunks.
 */
public sealed interface CompletionEvent {

    /** More reasoning (text before {@code </think>}). */
    record ReasoningDelta(String text) implements CompletionEvent {}

    /** More answer text (including the text of malformed DSML, after a {@link Malformed} event). */
    record ContentDelta(String text) implements CompletionEvent {}

    /** A tool call's {@code invoke} header was read: call {@code index} (0-based) of function {@code name}. */
    record ToolCallStart(int index, String name) implements CompletionEvent {}

    /** More of call {@code index}'s arguments JSON text (string values stream as they arrive). */
    record ToolCallArgumentsDelta(int index, String text) implements CompletionEvent {}

    /** Call {@code index} is complete and well-formed; {@code call.arguments()} is its concatenated deltas. */
    record ToolCallEnd(int index, ToolCall call) implements CompletionEvent {}

    /**
     * The DSML did not parse ({@code reason} says how). If a call was started and not ended, {@code abandonedCall}
     * is its index (else -1) and it will not end. The unparsed text follows as {@link ContentDelta}s.
     */
    record Malformed(String reason, int abandonedCall) implements CompletionEvent {}
}
