package io.epserve.model.config;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * config.json parsing (spec §1): the golden configs, the released Flash and Pro configs written from the spec's table
 * (test resources configs/v4-flash.json, v4-pro.json), and rejection of missing or unsupported fields by name.
 */
class ModelConfigTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static ObjectNode resource(String path) throws IOException {
        try (InputStream in = ModelConfigTest.class.getResourceAsStream(path)) {
            assertTrue(in != null, path);
            return (ObjectNode) JSON.readTree(in);
        }
    }

    static ModelConfig parse(JsonNode n) {
        return ModelConfig.parse(n, "test-config.json");
    }

    /** Asserts that the edited golden tiny config is rejected with a message naming every given string. */
    static ConfigException rejects(Consumer<ObjectNode> edit, String... names) throws IOException {
        ObjectNode n = resource("/golden/tiny/config.json");
        edit.accept(n);
        ConfigException e = assertThrows(ConfigException.class, () -> parse(n));
        for (String s : names) {
            assertTrue(e.getMessage().contains(s), "message should name '" + s + "': " + e.getMessage());
        }
        assertTrue(e.getMessage().contains("test-config.json"), e.getMessage());
        return e;
    }

    @Test
    void goldenTinyConfig(@TempDir Path tmp) throws IOException {
        ModelConfig c = parse(resource("/golden/tiny/config.json"));
        assertEquals(256, c.dim());
        assertEquals(4, c.nLayers());
        assertEquals(4, c.nHeads());
        assertEquals(128, c.headDim());
        assertEquals(64, c.ropeDim());
        assertEquals(64, c.nopeDim());
        assertEquals(128, c.qLoraRank());
        assertEquals(2, c.oGroups());
        assertEquals(128, c.oLoraRank());
        assertEquals(16, c.window());
        assertArrayEquals(new int[] {0, 4, 16, 4, 0}, c.compressRatios());
        assertEquals(4, c.indexHeads());
        assertEquals(4, c.indexTopk());
        assertEquals(8, c.nRoutedExperts());
        assertEquals(2, c.nActivatedExperts());
        assertEquals(1.5, c.routeScale());
        assertEquals(1, c.nHashLayers());
        assertTrue(c.isHashLayer(0));
        assertFalse(c.isHashLayer(1));
        assertEquals(24, c.hcMixDim());
        assertEquals(512, c.vocabSize());
        assertEquals(1, c.nMtpLayers());
        assertEquals(16.0, c.ropeFactor());
        assertEquals(65536, c.originalSeqLen());
        assertEquals(160000.0, c.compressRopeTheta());
        // load() from a directory and from the file itself
        Files.writeString(tmp.resolve("config.json"), resource("/golden/tiny/config.json").toString());
        assertEquals(c.toString(), ModelConfig.load(tmp).toString());
        assertEquals(c.toString(), ModelConfig.load(tmp.resolve("config.json")).toString());
    }

    @Test
    void goldenWideConfig() throws IOException {
        ModelConfig c = parse(resource("/golden/wide/config.json"));
        assertEquals(512, c.headDim());
        assertEquals(448, c.nopeDim());
        assertEquals(128, c.window());
        assertArrayEquals(new int[] {0, 4, 128, 4, 0}, c.compressRatios());
        assertEquals(8, c.indexHeads());
        assertEquals(16, c.indexTopk());
        assertEquals(3, c.nActivatedExperts());
        assertEquals(2.5, c.routeScale());
    }

    @Test
    void flashConfigFromTheSpec() throws IOException {
        ModelConfig c = parse(resource("/configs/v4-flash.json"));
        assertEquals(4096, c.dim());
        assertEquals(43, c.nLayers());
        assertEquals(64, c.nHeads());
        assertEquals(512, c.headDim());
        assertEquals(1024, c.qLoraRank());
        assertEquals(8, c.oGroups());
        assertEquals(1024, c.oLoraRank());
        assertEquals(128, c.window());
        assertEquals(512, c.indexTopk());
        assertEquals(256, c.nRoutedExperts());
        assertEquals(6, c.nActivatedExperts());
        assertEquals(2048, c.moeInterDim());
        assertEquals(1.5, c.routeScale());
        assertEquals(10.0, c.swigluLimit());
        assertEquals(1048576, c.maxPositionEmbeddings());
        assertEquals(129280, c.vocabSize());
        assertEquals(44, c.compressRatios().length);
        int csa = 0;
        int hca = 0;
        for (int l = 0; l < 43; l++) {
            int want = l < 2 ? 0 : l % 2 == 0 ? 4 : 128;
            assertEquals(want, c.compressRatio(l), "Flash layer " + l);
            csa += c.compressRatio(l) == 4 ? 1 : 0;
            hca += c.compressRatio(l) == 128 ? 1 : 0;
        }
        assertEquals(0, c.compressRatio(43), "MTP block is window-only");
        assertEquals(21, csa);
        assertEquals(20, hca);
        for (int l = 0; l < 43; l++) {
            assertEquals(l < 3, c.isHashLayer(l), "hash layer " + l);
        }
    }

    @Test
    void proConfigFromTheSpec() throws IOException {
        ModelConfig c = parse(resource("/configs/v4-pro.json"));
        assertEquals(7168, c.dim());
        assertEquals(61, c.nLayers());
        assertEquals(128, c.nHeads());
        assertEquals(1536, c.qLoraRank());
        assertEquals(16, c.oGroups());
        assertEquals(1024, c.indexTopk());
        assertEquals(384, c.nRoutedExperts());
        assertEquals(3072, c.moeInterDim());
        assertEquals(2.5, c.routeScale());
        assertEquals(62, c.compressRatios().length);
        int csa = 0;
        int hca = 0;
        for (int l = 0; l < 61; l++) {
            int want = l < 2 ? 128 : l % 2 == 0 ? 4 : 128;
            assertEquals(want, c.compressRatio(l), "Pro layer " + l);
            csa += c.compressRatio(l) == 4 ? 1 : 0;
            hca += c.compressRatio(l) == 128 ? 1 : 0;
        }
        assertEquals(0, c.compressRatio(61));
        assertEquals(30, csa);
        assertEquals(31, hca, "29 odd layers plus layers 0 and 1");
    }

    @ParameterizedTest
    @ValueSource(strings = {"v4-flash", "v4-pro"})
    void builtinConfigsAgreeWithTheSpecTable(String name) throws IOException {
        ModelConfig spec = parse(resource("/configs/" + name + ".json"));
        ModelConfig builtin = ModelConfig.builtin(name);
        // field by field: equals() of ModelConfig compares only a summary string
        assertEquals(describe(spec), describe(builtin));
    }

    /** Every component of the record. */
    static String describe(ModelConfig c) {
        StringBuilder sb = new StringBuilder();
        for (var comp : ModelConfig.class.getRecordComponents()) {
            try {
                Object v = comp.getAccessor().invoke(c);
                sb.append(comp.getName()).append('=')
                        .append(v instanceof int[] a ? java.util.Arrays.toString(a) : String.valueOf(v)).append('\n');
            } catch (ReflectiveOperationException e) {
                throw new AssertionError(e);
            }
        }
        return sb.toString();
    }

    @Test
    void missingRequiredFieldsAreNamed() throws IOException {
        rejects(n -> n.remove("hidden_size"), "'hidden_size'", "missing");
        rejects(n -> n.remove("compress_ratios"), "'compress_ratios'", "missing");
        rejects(n -> ((ObjectNode) n.get("rope_scaling")).remove("factor"), "rope_scaling", "'factor'", "missing");
        rejects(n -> n.remove("rope_scaling"), "'rope_scaling'");
        rejects(n -> n.remove("quantization_config"), "'quantization_config'", "missing");
        rejects(n -> ((ObjectNode) n.get("quantization_config")).remove("weight_block_size"), "'weight_block_size'");
        rejects(n -> n.remove("num_attention_heads"), "'num_attention_heads'");
        rejects(n -> n.remove("vocab_size"), "'vocab_size'");
        rejects(n -> n.remove("hc_sinkhorn_iters"), "'hc_sinkhorn_iters'");
        rejects(n -> n.remove("scoring_func"), "'scoring_func'");
        rejects(n -> n.putNull("index_topk"), "'index_topk'");
    }

    @Test
    void unsupportedValuesAreNamed() throws IOException {
        rejects(n -> n.put("scoring_func", "softmax"), "'scoring_func'", "softmax");
        rejects(n -> n.put("num_key_value_heads", 2), "'num_key_value_heads'", "2");
        rejects(n -> ((ArrayNode) n.get("compress_ratios")).remove(0), "'compress_ratios'", "4 entries");
        rejects(n -> ((ArrayNode) n.get("compress_ratios")).add(0), "'compress_ratios'");
        rejects(n -> n.put("compress_ratios", "0,4,16,4,0"), "'compress_ratios'");
        rejects(n -> ((ArrayNode) n.get("compress_ratios")).set(1, 2), "compress_ratios[1]");
        rejects(n -> ((ArrayNode) n.get("compress_ratios")).set(4, 4), "compress_ratios[4]", "MTP");
        rejects(n -> n.put("expert_dtype", "fp8"), "'expert_dtype'", "fp8");
        rejects(n -> n.put("model_type", "deepseek_v3"), "'model_type'");
        rejects(n -> ((ObjectNode) n.get("rope_scaling")).put("type", "linear"), "'type'", "linear");
        rejects(n -> ((ObjectNode) n.get("quantization_config")).put("fmt", "e5m2"), "'fmt'");
        rejects(n -> ((ObjectNode) n.get("quantization_config")).putArray("weight_block_size").add(64).add(64),
                "'weight_block_size'");
        rejects(n -> n.put("hidden_size", 200), "'hidden_size'", "128");
        rejects(n -> n.put("hidden_size", "256"), "'hidden_size'", "integer");
        rejects(n -> n.put("hidden_size", 256.5), "'hidden_size'");
        rejects(n -> n.put("num_hidden_layers", -4), "'num_hidden_layers'");
        rejects(n -> n.put("tie_word_embeddings", true), "'tie_word_embeddings'");
        rejects(n -> n.put("index_head_dim", 64), "'index_head_dim'");
        rejects(n -> n.put("num_experts_per_tok", 9), "'num_experts_per_tok'");
        rejects(n -> n.put("o_groups", 3), "'o_groups'");
        rejects(n -> n.put("eos_token_id", 512), "eos_token_id");
    }

    @Test
    void notJsonOrMissingFile(@TempDir Path tmp) throws IOException {
        ConfigException e = assertThrows(ConfigException.class, () -> ModelConfig.load(tmp));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
        Files.writeString(tmp.resolve("config.json"), "{\"hidden_size\": ");
        e = assertThrows(ConfigException.class, () -> ModelConfig.load(tmp));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
    }

    @Test
    void equalityCoversEveryField() throws IOException {
        ObjectNode a = resource("/configs/v4-flash.json");
        ObjectNode b = a.deepCopy();
        b.put("routed_scaling_factor", 2.5);
        assertNotEquals(parse(a), parse(b), "routed_scaling_factor");
        ObjectNode r = a.deepCopy();
        r.put("rope_theta", 50000);
        assertNotEquals(parse(a), parse(r), "rope_theta");
    }
}
