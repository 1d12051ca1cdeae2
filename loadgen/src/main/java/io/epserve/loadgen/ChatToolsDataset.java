package io.epserve.loadgen;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.epserve.proto.v1.ChatMessage;
import io.epserve.proto.v1.ChatRequest;
import io.epserve.proto.v1.ThinkingMode;
import io.epserve.proto.v1.ToolCall;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Chat with tools, through the API's Chat call (the server renders DeepSeek-V4's chat template and parses tool
 * calls): each conversation declares two to four of a fixed set of function tools and asks something one of them
 * answers; about a third of them already hold a tool call and its result, so the model writes the turn after a tool
 * (the agent loop's second request, with a longer prompt). Made from a seed; prompt lengths are the server's.
 */
public final class ChatToolsDataset implements Dataset {
    private static final String[][] TOOLS = {
        {"get_weather", "Current weather for a city", "{\"city\":{\"type\":\"string\"},\"unit\":{\"type\":\"string\","
                + "\"enum\":[\"celsius\",\"fahrenheit\"]}}", "city"},
        {"search_web", "Search the web and return the top results", "{\"query\":{\"type\":\"string\"},\"max_results\":"
                + "{\"type\":\"integer\"}}", "query"},
        {"get_stock_price", "Latest price of a stock ticker", "{\"ticker\":{\"type\":\"string\"}}", "ticker"},
        {"convert_currency", "Convert an amount between currencies", "{\"amount\":{\"type\":\"number\"},\"from\":"
                + "{\"type\":\"string\"},\"to\":{\"type\":\"string\"}}", "amount"},
        {"book_meeting", "Book a meeting room", "{\"room\":{\"type\":\"string\"},\"start\":{\"type\":\"string\"},"
                + "\"minutes\":{\"type\":\"integer\"}}", "room"},
        {"run_sql", "Run a read-only SQL query on the sales database", "{\"sql\":{\"type\":\"string\"}}", "sql"},
    };
    private static final String[][] ASKS = {
        {"0", "What's the weather like in %s right now?", "{\"city\":\"%s\",\"unit\":\"celsius\"}",
            "{\"temperature\":14,\"condition\":\"light rain\"}"},
        {"1", "Find me recent articles about %s.", "{\"query\":\"%s\",\"max_results\":5}",
            "[{\"title\":\"An overview\",\"url\":\"https://example.org/a\"}]"},
        {"2", "How is %s trading today?", "{\"ticker\":\"%s\"}", "{\"price\":187.3,\"change\":-0.4}"},
        {"3", "How much is 250 %s in euros?", "{\"amount\":250,\"from\":\"%s\",\"to\":\"EUR\"}",
            "{\"amount\":231.8,\"currency\":\"EUR\"}"},
        {"4", "Book room %s for a 30 minute sync at 3pm.", "{\"room\":\"%s\",\"start\":\"15:00\",\"minutes\":30}",
            "{\"booked\":true}"},
        {"5", "Which region sold the most %s last quarter?", "{\"sql\":\"SELECT region FROM sales WHERE product='%s'"
                + " ORDER BY units DESC LIMIT 1\"}", "[{\"region\":\"EMEA\"}]"},
    };
    private static final String[][] FILL = {
        {"Lisbon", "Osaka", "Nairobi", "Montreal", "Reykjavik"},
        {"mixture-of-experts inference", "CPU vector instructions", "Aeron messaging", "sparse attention"},
        {"ACME", "GLOBX", "INIT", "UMBR"},
        {"USD", "GBP", "JPY", "CHF"},
        {"Ada", "Turing", "Hopper", "Lovelace"},
        {"espresso machines", "bicycles", "headphones"},
    };

    private final int outputLen;

    public ChatToolsDataset(int outputLen) {
        if (outputLen < 1) {
            throw new IllegalArgumentException("--chat-output-len must be >= 1");
        }
        this.outputLen = outputLen;
    }

    @Override
    public String name() {
        return "chat-tools";
    }

    @Override
    public ObjectNode describe() {
        return JsonNodeFactory.instance.objectNode().put("name", name()).put("chat_output_len", outputLen)
                .put("tools", TOOLS.length);
    }

    @Override
    public List<BenchRequest> sample(int n, long seed, Context c) {
        SplittableRandom rng = new SplittableRandom(seed);
        List<BenchRequest> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            String[] ask = ASKS[rng.nextInt(ASKS.length)];
            int tool = Integer.parseInt(ask[0]);
            String[] fill = FILL[tool];
            String value = fill[rng.nextInt(fill.length)];
            ChatRequest.Builder r = ChatRequest.newBuilder().setModel(c.modelId()).setThinking(ThinkingMode.CHAT)
                    .setSampling(c.sampling().toBuilder().setMaxTokens(outputLen))
                    .setRequestId("chat-tools-" + i);
            // The asked-for tool plus one to three others, in a seeded order.
            List<Integer> declared = new ArrayList<>(List.of(tool));
            int extra = 1 + rng.nextInt(3);
            while (declared.size() < 1 + extra) {
                int t = rng.nextInt(TOOLS.length);
                if (!declared.contains(t)) {
                    declared.add(rng.nextInt(declared.size() + 1), t);
                }
            }
            for (int t : declared) {
                r.addToolsJson(toolJson(TOOLS[t]));
            }
            r.addMessages(ChatMessage.newBuilder().setRole("system")
                    .setContent("You are a concise assistant. Use a tool when it can answer."));
            r.addMessages(ChatMessage.newBuilder().setRole("user").setContent(String.format(ask[1], value)));
            if (rng.nextInt(3) == 0) {
                String id = "call_" + i;
                r.addMessages(ChatMessage.newBuilder().setRole("assistant").addToolCalls(ToolCall.newBuilder()
                        .setId(id).setName(TOOLS[tool][0]).setArguments(String.format(ask[2], value))));
                r.addMessages(ChatMessage.newBuilder().setRole("tool").setToolCallId(id).setContent(ask[3]));
            }
            out.add(BenchRequest.chat(r.build()));
        }
        return out;
    }

    private static String toolJson(String[] t) {
        return "{\"type\":\"function\",\"function\":{\"name\":\"" + t[0] + "\",\"description\":\"" + t[1]
                + "\",\"parameters\":{\"type\":\"object\",\"properties\":" + t[2] + ",\"required\":[\"" + t[3]
                + "\"]}}}";
    }
}
