package io.epserve.model.text;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * The Hugging Face {@code tokenizer.json} of a model directory (spec §6: byte-level BPE, {@code add_bos_token} false),
 * through DJL's binding of the Rust {@code tokenizers} library. The binding bundles its native library and is put in
 * offline mode before first use, so loading never touches the network.
 *
 * <p>{@link #encode} adds nothing (no BOS: the chat template writes it as text) and maps special strings such as
 * {@code <｜User｜>} in the text to their ids. {@link #decode} keeps special tokens as their text. Thread-safe.
 */
public final class Tokenizer implements AutoCloseable {
    public static final String FILE = "tokenizer.json";

    private final HuggingFaceTokenizer hf;
    private final Map<String, Integer> addedTokens;
    private final Map<String, Integer> vocab;
    private final int vocabSize;

    private Tokenizer(HuggingFaceTokenizer hf, Map<String, Integer> addedTokens, Map<String, Integer> vocab,
                      int vocabSize) {
        this.hf = hf;
        this.addedTokens = addedTokens;
        this.vocab = vocab;
        this.vocabSize = vocabSize;
    }

    /** Loads {@code tokenizer.json} from a model directory (or the file itself). */
    public static Tokenizer load(Path modelDir) {
        Path file = Files.isDirectory(modelDir) ? modelDir.resolve(FILE) : modelDir;
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(file + ": not found (a model directory needs " + FILE + ")");
        }
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException(file + ": not a tokenizer.json object");
        }
        Map<String, Integer> added = new HashMap<>();
        int maxId = -1;
        for (JsonNode t : root.path("added_tokens")) {
            int id = t.path("id").asInt(-1);
            String content = t.path("content").asText(null);
            if (id < 0 || content == null) {
                throw new IllegalArgumentException(file + ": malformed added_tokens entry " + t);
            }
            added.put(content, id);
            maxId = Math.max(maxId, id);
        }
        Map<String, Integer> vocab = new HashMap<>();
        JsonNode v = root.path("model").path("vocab");
        if (!v.isObject()) {
            throw new IllegalArgumentException(file + ": model.vocab is not an object (only BPE tokenizers are supported)");
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            int id = e.getValue().asInt(-1);
            vocab.put(e.getKey(), id);
            maxId = Math.max(maxId, id);
        }
        configureDjl();
        Map<String, String> options = new HashMap<>();
        options.put("addSpecialTokens", "false"); // add_bos_token false: the template writes BOS itself
        options.put("withOverflowingTokens", "false");
        options.put("truncation", "false");
        options.put("padding", "false");
        options.put("modelMaxLength", Integer.toString(Integer.MAX_VALUE));
        HuggingFaceTokenizer hf;
        try {
            hf = HuggingFaceTokenizer.newInstance(file, options);
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot load: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException(file + ": the tokenizers library rejected it: " + e.getMessage(), e);
        }
        return new Tokenizer(hf, Collections.unmodifiableMap(added), Collections.unmodifiableMap(vocab), maxId + 1);
    }

    /** Offline mode (no downloads, no usage "call home"); the native library is extracted from the jar. */
    private static void configureDjl() {
        if (System.getProperty("ai.djl.offline") == null) {
            System.setProperty("ai.djl.offline", "true");
        }
        if (System.getProperty("OPT_OUT_TRACKING") == null) {
            System.setProperty("OPT_OUT_TRACKING", "true");
        }
    }

    /** Token ids of a text; special strings in the text become their ids; nothing is added. */
    public int[] encode(String text) {
        long[] ids = hf.encode(text, false, false).getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
        }
        return out;
    }

    /** The text of a token sequence, special tokens included as their text. Incomplete UTF-8 becomes U+FFFD. */
    public String decode(int[] ids) {
        return decode(ids, 0, ids.length, false);
    }

    /** The text of ids[from, to); skipSpecial drops the tokens marked special in tokenizer.json. */
    public String decode(int[] ids, int from, int to, boolean skipSpecial) {
        long[] l = new long[to - from];
        for (int i = from; i < to; i++) {
            int id = ids[i];
            if (id < 0 || id >= vocabSize) {
                throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, " + vocabSize + ")");
            }
            l[i - from] = id;
        }
        return l.length == 0 ? "" : hf.decode(l, skipSpecial);
    }

    /** Number of token ids: the largest id of the vocabulary or the added tokens, plus one. */
    public int vocabSize() {
        return vocabSize;
    }

    /** The id of a token string: an added (special) token such as {@code <｜User｜>}, or a vocabulary entry. */
    public int tokenId(String token) {
        Integer id = addedTokens.get(token);
        if (id == null) {
            id = vocab.get(token);
        }
        if (id == null) {
            throw new IllegalArgumentException("no token '" + token + "' in the vocabulary");
        }
        return id;
    }

    /** A new streaming detokenizer (special tokens kept as text). */
    public Stream stream() {
        return new Stream(false);
    }

    /** A new streaming detokenizer; skipSpecial drops the tokens marked special. */
    public Stream stream(boolean skipSpecial) {
        return new Stream(skipSpecial);
    }

    @Override
    public void close() {
        hf.close();
    }

    /**
     * Incremental detokenization (vLLM's scheme): text is decoded over a short window of ids starting at
     * {@code prefixOffset}; the new text is the decode of the window with the new id minus the decode of the window
     * without it, and it is released only when it does not end in U+FFFD, i.e. when the UTF-8 bytes of the tokens
     * so far end on a character boundary. Held-back bytes come out with the token that completes them, or at
     * {@link #flush}. Not thread-safe (one stream per sequence).
     */
    public final class Stream {
        private static final char REPLACEMENT = '\uFFFD';

        private final boolean skipSpecial;
        private int[] ids = new int[16];
        private int n;
        private int prefixOffset;
        private int readOffset;

        private Stream(boolean skipSpecial) {
            this.skipSpecial = skipSpecial;
        }

        /** Appends one token; returns the text it completes (possibly empty), never part of a character. */
        public String push(int id) {
            if (id < 0 || id >= vocabSize) {
                throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, " + vocabSize + ")");
            }
            if (n == ids.length) {
                ids = Arrays.copyOf(ids, 2 * n);
            }
            ids[n++] = id;
            String prefix = decode(ids, prefixOffset, readOffset, skipSpecial);
            String full = decode(ids, prefixOffset, n, skipSpecial);
            if (full.length() > prefix.length() && full.charAt(full.length() - 1) != REPLACEMENT) {
                prefixOffset = readOffset;
                readOffset = n;
                return full.substring(prefix.length());
            }
            return "";
        }

        /** The text still held back at the end of the sequence (incomplete UTF-8 comes out as U+FFFD). */
        public String flush() {
            if (readOffset == n) {
                return "";
            }
            String prefix = decode(ids, prefixOffset, readOffset, skipSpecial);
            String full = decode(ids, prefixOffset, n, skipSpecial);
            prefixOffset = readOffset;
            readOffset = n;
            return full.length() > prefix.length() ? full.substring(prefix.length()) : "";
        }

        /** The ids pushed so far. */
        public List<Integer> ids() {
            List<Integer> l = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                l.add(ids[i]);
            }
            return l;
        }
    }
}
