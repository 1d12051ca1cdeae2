package io.epserve.model.text;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Objects;

/**
 * One tool call of an assistant turn, as in the OpenAI format: an optional {@code id} (used to order tool results),
 * the function {@code name}, and {@code arguments} as JSON text (an object of argument name to value).
 */
public record ToolCall(String id, String name, String arguments) {
    public ToolCall {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(arguments, "arguments");
    }

    /** The arguments parsed ({@link PythonJson#loads}); throws {@link IllegalArgumentException} if not valid JSON. */
    public JsonNode argumentsJson() {
        return PythonJson.loads(arguments);
    }
}
