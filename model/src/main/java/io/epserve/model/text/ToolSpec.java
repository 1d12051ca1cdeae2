package io.epserve.model.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * A tool the model may call: the {@code function} object of an OpenAI-format tool ({@code name},
 * {@code description}, {@code parameters}, and whatever else it holds). The prompt lists it as
 * {@code json.dumps(function)} (spec Appendix A), so it is kept as the JSON it came in, keys in their order.
 */
public record ToolSpec(ObjectNode function) {
    public ToolSpec {
        if (function == null) {
            throw new IllegalArgumentException("a tool needs a function object");
        }
        function = function.deepCopy();
    }

    /** The tool from an OpenAI-format tool {@code {"type": "function", "function": {...}}}. */
    public static ToolSpec fromOpenAi(JsonNode tool) {
        if (tool == null || !tool.isObject() || !tool.path("function").isObject()) {
            throw new IllegalArgumentException("a tool must be an object with a \"function\" object, got "
                    + (tool == null ? "nothing" : PythonJson.dumps(tool)));
        }
        return new ToolSpec((ObjectNode) tool.get("function"));
    }

    /** The function's name, or null if it has none. */
    public String name() {
        JsonNode n = function.get("name");
        return n != null && n.isTextual() ? n.textValue() : null;
    }

    @Override
    public ObjectNode function() {
        return function.deepCopy();
    }

    /** The line of the "Available Tool Schemas" list. */
    public String schemaJson() {
        return PythonJson.dumps(function);
    }
}
