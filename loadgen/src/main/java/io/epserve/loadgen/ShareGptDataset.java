package io.epserve.loadgen;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.epserve.proto.v1.GenerateRequest;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

/**
 * vLLM's {@code sharegpt} dataset: conversations from a ShareGPT-style file (a JSON array, or JSON lines, of objects
 * with {@code conversations: [{from: human|user, value}, {from: gpt|assistant, value}, ...]}; {@code role}/{@code
 * content} spellings are accepted too). The first user turn is the prompt (sent as text); the output length is the
 * token count of the reply that follows it, or a fixed length. As in vLLM, conversations are shuffled with the seed and
 * pairs shorter than 4 tokens on either side, with a prompt over 1024 tokens or a total over 2048 (or over the served
 * context) are skipped. Tokens are counted by the server (the API's Tokenize), so the counts are the served model's.
 * When the file has fewer usable conversations than requested, they are repeated in the same order.
 */
public final class ShareGptDataset implements Dataset {
    static final int MIN_LEN = 4;
    static final int MAX_PROMPT_LEN = 1024;
    static final int MAX_TOTAL_LEN = 2048;

    private final Path path;
    private final int fixedOutputLen;
    private int usable = -1;

    /** @param fixedOutputLen the max_tokens of every request, or 0 for the length of the recorded reply */
    public ShareGptDataset(Path path, int fixedOutputLen) {
        if (path == null) {
            throw new IllegalArgumentException("the sharegpt dataset needs --dataset-path FILE");
        }
        if (fixedOutputLen < 0) {
            throw new IllegalArgumentException("--sharegpt-output-len must be >= 1");
        }
        this.path = path;
        this.fixedOutputLen = fixedOutputLen;
    }

    @Override
    public String name() {
        return "sharegpt";
    }

    @Override
    public ObjectNode describe() {
        ObjectNode n = JsonNodeFactory.instance.objectNode().put("name", name()).put("dataset_path", path.toString());
        if (fixedOutputLen > 0) {
            n.put("sharegpt_output_len", fixedOutputLen);
        }
        if (usable >= 0) {
            n.put("usable_conversations", usable);
        }
        return n;
    }

    /** The (prompt, reply) pairs of the file, in file order. */
    static List<String[]> pairs(Path path) throws IOException {
        String text = Files.readString(path, StandardCharsets.UTF_8);
        ObjectMapper json = new ObjectMapper();
        List<JsonNode> entries = new ArrayList<>();
        String trimmed = text.strip();
        try {
            if (trimmed.startsWith("[")) {
                json.readTree(trimmed).forEach(entries::add);
            } else {
                int line = 0;
                for (String l : text.split("\n")) {
                    line++;
                    if (!l.isBlank()) {
                        try {
                            entries.add(json.readTree(l));
                        } catch (IOException e) {
                            throw new IOException(path + " line " + line + ": not JSON: " + e.getMessage(), e);
                        }
                    }
                }
            }
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IOException(path + ": not a JSON array or JSON lines: " + e.getOriginalMessage(), e);
        }
        List<String[]> out = new ArrayList<>();
        for (JsonNode e : entries) {
            JsonNode turns = e.has("conversations") ? e.get("conversations") : e.get("conversation");
            if (turns == null || !turns.isArray()) {
                continue;
            }
            String prompt = null;
            for (JsonNode t : turns) {
                String who = text(t, "from", "role");
                String value = text(t, "value", "content");
                if (prompt == null) {
                    if (who.equals("human") || who.equals("user")) {
                        prompt = value;
                    }
                } else if (who.equals("gpt") || who.equals("assistant") || who.equals("chatgpt")) {
                    out.add(new String[] {prompt, value});
                    break;
                } else {
                    break;
                }
            }
        }
        return out;
    }

    private static String text(JsonNode t, String a, String b) {
        JsonNode v = t.has(a) ? t.get(a) : t.get(b);
        return v == null || v.isNull() ? "" : v.asText();
    }

    @Override
    public List<BenchRequest> sample(int n, long seed, Context c) throws IOException {
        List<String[]> pairs = pairs(path);
        Collections.shuffle(pairs, new Random(seed));
        List<BenchRequest> found = new ArrayList<>();
        for (String[] p : pairs) {
            if (found.size() == n) {
                break;
            }
            int promptLen = c.tokenCount().applyAsInt(p[0]);
            int outLen = fixedOutputLen > 0 ? fixedOutputLen : c.tokenCount().applyAsInt(p[1]);
            if (promptLen < MIN_LEN || (fixedOutputLen == 0 && outLen < MIN_LEN) || promptLen > MAX_PROMPT_LEN
                    || promptLen + outLen > MAX_TOTAL_LEN || promptLen + outLen > c.contextLength()) {
                continue;
            }
            GenerateRequest r = GenerateRequest.newBuilder().setModel(c.modelId()).setText(p[0])
                    .setSampling(c.sampling().toBuilder().setMaxTokens(outLen)).build();
            found.add(BenchRequest.generate(r, promptLen));
        }
        usable = found.size();
        if (found.isEmpty()) {
            throw new IOException(path + ": no usable conversation (a user turn followed by an assistant turn, each of"
                    + " at least " + MIN_LEN + " tokens, prompt <= " + MAX_PROMPT_LEN + ", total <= "
                    + Math.min(MAX_TOTAL_LEN, c.contextLength()) + ")");
        }
        List<BenchRequest> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            out.add(found.get(i % found.size()));
        }
        return out;
    }
}
