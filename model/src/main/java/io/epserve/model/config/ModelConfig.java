package io.epserve.model.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * The typed form of a Hugging Face DeepSeek-V4 {@code config.json} (spec §1). Field names follow the HF file;
 * accessors use the reference's names where those are clearer.
 */
public record ModelConfig(
        int dim,
        int nLayers,
        int nHeads,
        int headDim,
        int ropeDim,
        int qLoraRank,
        int oGroups,
        int oLoraRank,
        int window,
        int[] compressRatios,
        double compressRopeTheta,
        double ropeTheta,
        double ropeFactor,
        int originalSeqLen,
        int betaFast,
        int betaSlow,
        int maxPositionEmbeddings,
        int indexHeads,
        int indexHeadDim,
        int indexTopk,
        int nRoutedExperts,
        int nSharedExperts,
        int nActivatedExperts,
        int moeInterDim,
        double routeScale,
        int nHashLayers,
        double swigluLimit,
        int hcMult,
        int hcSinkhornIters,
        double hcEps,
        double normEps,
        int nMtpLayers,
        int vocabSize,
        int bosTokenId,
        int eosTokenId) {

    public static final String FILE = "config.json";

    /** Dimensions that are not rotated: head_dim - qk_rope_head_dim. */
    public int nopeDim() {
        return headDim - ropeDim;
    }

    /** Compress ratio of main layer i (0 = window only, 4 = CSA, larger = HCA); index nLayers is the MTP block. */
    public int compressRatio(int layer) {
        return compressRatios[layer];
    }

    public boolean isHashLayer(int layer) {
        return layer < nHashLayers;
    }

    /** Width of the mHC mixing vector: pre (hc) + post (hc) + comb (hc x hc). */
    public int hcMixDim() {
        return (2 + hcMult) * hcMult;
    }

    public static ModelConfig load(Path dir) {
        Path p = Files.isDirectory(dir) ? dir.resolve(FILE) : dir;
        if (!Files.isRegularFile(p)) {
            throw new ConfigException(p + ": not found (a model directory needs config.json)");
        }
        try {
            return parse(new ObjectMapper().readTree(p.toFile()), p.toString());
        } catch (IOException e) {
            throw new ConfigException(p + ": not valid JSON: " + e.getMessage(), e);
        }
    }

    /** Names of the configs shipped with the engine (the released V4 models). */
    public static final java.util.List<String> BUILTIN = java.util.List.of("v4-flash", "v4-pro");

    /** A config shipped with the engine: "v4-flash" or "v4-pro" (spec §1.1). */
    public static ModelConfig builtin(String name) {
        if (!BUILTIN.contains(name)) {
            throw new ConfigException("unknown built-in config '" + name + "' (known: " + BUILTIN + ")");
        }
        try (InputStream in = ModelConfig.class.getResourceAsStream("/io/epserve/model/configs/" + name + ".json")) {
            return parse(in, name + ".json");
        } catch (IOException e) {
            throw new ConfigException("cannot read built-in config " + name, e);
        }
    }

    public static ModelConfig parse(InputStream in, String source) {
        try {
            return parse(new ObjectMapper().readTree(in), source);
        } catch (IOException e) {
            throw new ConfigException(source + ": not valid JSON: " + e.getMessage(), e);
        }
    }

    public static ModelConfig parse(JsonNode n, String source) {
        Reader r = new Reader(n, source);
        String modelType = r.str("model_type");
        if (!modelType.equals("deepseek_v4")) {
            throw r.unsupported("model_type", modelType, "deepseek_v4");
        }
        int dim = r.positive("hidden_size");
        int nLayers = r.positive("num_hidden_layers");
        int nHeads = r.positive("num_attention_heads");
        int kvHeads = r.positive("num_key_value_heads");
        if (kvHeads != 1) {
            throw r.unsupported("num_key_value_heads", kvHeads, "1 (the single shared K=V head)");
        }
        int headDim = r.positive("head_dim");
        int ropeDim = r.positive("qk_rope_head_dim");
        if (ropeDim % 2 != 0 || ropeDim >= headDim) {
            throw r.unsupported("qk_rope_head_dim", ropeDim, "an even number below head_dim");
        }
        int nMtp = r.nonNegative("num_nextn_predict_layers");
        if (nMtp > 1) {
            throw r.unsupported("num_nextn_predict_layers", nMtp, "0 or 1");
        }
        JsonNode ratiosNode = r.require("compress_ratios");
        if (!ratiosNode.isArray()) {
            throw new ConfigException(source + ": field 'compress_ratios' must be an array");
        }
        int[] ratios = new int[ratiosNode.size()];
        for (int i = 0; i < ratios.length; i++) {
            ratios[i] = ratiosNode.get(i).asInt(-1);
            if (ratios[i] < 0 || ratios[i] == 1 || ratios[i] == 2 || ratios[i] == 3) {
                throw new ConfigException(source + ": field 'compress_ratios[" + i + "]' = " + ratiosNode.get(i)
                        + " is unsupported (0 = window, 4 = CSA, >4 = HCA)");
            }
        }
        if (ratios.length != nLayers + 1) {
            throw new ConfigException(source + ": field 'compress_ratios' has " + ratios.length
                    + " entries but num_hidden_layers + 1 = " + (nLayers + 1) + " are required");
        }
        if (ratios[nLayers] != 0) {
            throw new ConfigException(source + ": field 'compress_ratios[" + nLayers + "]' (the MTP block) must be 0");
        }
        int qLora = r.positive("q_lora_rank");
        int oGroups = r.positive("o_groups");
        if (nHeads % oGroups != 0) {
            throw r.unsupported("o_groups", oGroups, "a divisor of num_attention_heads");
        }
        int oLora = r.positive("o_lora_rank");
        int window = r.positive("sliding_window");
        JsonNode scaling = r.require("rope_scaling");
        Reader s = new Reader(scaling, source + " rope_scaling");
        String type = s.has("type") ? s.str("type") : s.str("rope_type");
        if (!type.equals("yarn")) {
            throw s.unsupported("type", type, "yarn");
        }
        String scoring = r.str("scoring_func");
        if (!scoring.equals("sqrtsoftplus")) {
            throw r.unsupported("scoring_func", scoring, "sqrtsoftplus");
        }
        String act = r.has("hidden_act") ? r.str("hidden_act") : "silu";
        if (!act.equals("silu")) {
            throw r.unsupported("hidden_act", act, "silu");
        }
        if (r.has("tie_word_embeddings") && n.get("tie_word_embeddings").asBoolean()) {
            throw r.unsupported("tie_word_embeddings", true, "false");
        }
        int nShared = r.nonNegative("n_shared_experts");
        if (nShared != 1) {
            throw r.unsupported("n_shared_experts", nShared, "1");
        }
        JsonNode q = r.require("quantization_config");
        Reader qr = new Reader(q, source + " quantization_config");
        if (!qr.str("quant_method").equals("fp8")) {
            throw qr.unsupported("quant_method", qr.str("quant_method"), "fp8");
        }
        if (qr.has("fmt") && !qr.str("fmt").equals("e4m3")) {
            throw qr.unsupported("fmt", qr.str("fmt"), "e4m3");
        }
        if (qr.has("scale_fmt") && !qr.str("scale_fmt").equals("ue8m0")) {
            throw qr.unsupported("scale_fmt", qr.str("scale_fmt"), "ue8m0");
        }
        JsonNode block = qr.require("weight_block_size");
        if (!block.isArray() || block.size() != 2 || block.get(0).asInt() != 128 || block.get(1).asInt() != 128) {
            throw qr.unsupported("weight_block_size", block, "[128, 128]");
        }
        String expertDtype = r.has("expert_dtype") ? r.str("expert_dtype") : "fp4";
        if (!expertDtype.equals("fp4")) {
            throw r.unsupported("expert_dtype", expertDtype, "fp4");
        }
        int moeInter = r.positive("moe_intermediate_size");
        int indexHeadDim = r.positive("index_head_dim");
        if (indexHeadDim != 128) {
            throw r.unsupported("index_head_dim", indexHeadDim, "128 (the indexer's Hadamard size)");
        }
        ModelConfig c = new ModelConfig(
                dim, nLayers, nHeads, headDim, ropeDim, qLora, oGroups, oLora, window, ratios,
                r.positiveDouble("compress_rope_theta"),
                r.positiveDouble("rope_theta"),
                s.positiveDouble("factor"),
                s.positive("original_max_position_embeddings"),
                s.positive("beta_fast"),
                s.positive("beta_slow"),
                r.positive("max_position_embeddings"),
                r.positive("index_n_heads"),
                indexHeadDim,
                r.positive("index_topk"),
                r.positive("n_routed_experts"),
                nShared,
                r.positive("num_experts_per_tok"),
                moeInter,
                r.positiveDouble("routed_scaling_factor"),
                r.nonNegative("num_hash_layers"),
                r.nonNegativeDouble("swiglu_limit"),
                r.positive("hc_mult"),
                r.positive("hc_sinkhorn_iters"),
                r.positiveDouble("hc_eps"),
                r.positiveDouble("rms_norm_eps"),
                nMtp,
                r.positive("vocab_size"),
                r.nonNegative("bos_token_id"),
                r.nonNegative("eos_token_id"));
        c.checkShapes(source);
        return c;
    }

    private void checkShapes(String source) {
        // The FP8 block layouts and the 64-wide KV quantisation blocks need these multiples.
        requireMultiple(source, "hidden_size", dim, 128);
        requireMultiple(source, "q_lora_rank", qLoraRank, 128);
        requireMultiple(source, "moe_intermediate_size", moeInterDim, 128);
        requireMultiple(source, "head_dim - qk_rope_head_dim", nopeDim(), 64);
        requireMultiple(source, "o_lora_rank", oLoraRank, 128);
        if (nActivatedExperts > nRoutedExperts) {
            throw new ConfigException(source + ": field 'num_experts_per_tok' = " + nActivatedExperts
                    + " exceeds n_routed_experts = " + nRoutedExperts);
        }
        if (nHashLayers > nLayers) {
            throw new ConfigException(source + ": field 'num_hash_layers' exceeds num_hidden_layers");
        }
        if (bosTokenId >= vocabSize || eosTokenId >= vocabSize) {
            throw new ConfigException(source + ": field 'bos_token_id'/'eos_token_id' lies outside vocab_size");
        }
    }

    private static void requireMultiple(String source, String field, int value, int of) {
        if (value % of != 0) {
            throw new ConfigException(source + ": field '" + field + "' = " + value + " must be a multiple of " + of);
        }
    }

    /** Every field, arrays by content (a record compares arrays by reference). */
    @Override
    public boolean equals(Object o) {
        if (!(o instanceof ModelConfig m)) {
            return false;
        }
        try {
            for (java.lang.reflect.RecordComponent rc : ModelConfig.class.getRecordComponents()) {
                if (!java.util.Objects.deepEquals(rc.getAccessor().invoke(this), rc.getAccessor().invoke(m))) {
                    return false;
                }
            }
            return true;
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public int hashCode() {
        return java.util.Objects.hash(dim, nLayers, nHeads, headDim, Arrays.hashCode(compressRatios), nRoutedExperts,
                moeInterDim, vocabSize);
    }

    @Override
    public String toString() {
        return "ModelConfig[dim=" + dim + ", layers=" + nLayers + ", heads=" + nHeads + "x" + headDim
                + ", ratios=" + Arrays.toString(compressRatios) + ", experts=" + nRoutedExperts + " top-"
                + nActivatedExperts + " inter " + moeInterDim + ", vocab=" + vocabSize + ", window=" + window
                + ", qLora=" + qLoraRank + ", oGroups=" + oGroups + "x" + oLoraRank + ", index=" + indexHeads + "x"
                + indexHeadDim + " top-" + indexTopk + ", hash=" + nHashLayers + ", mtp=" + nMtpLayers + "]";
    }

    private record Reader(JsonNode n, String source) {
        boolean has(String f) {
            return n.has(f) && !n.get(f).isNull();
        }

        JsonNode require(String f) {
            if (!has(f)) {
                throw new ConfigException(source + ": missing field '" + f + "'");
            }
            return n.get(f);
        }

        String str(String f) {
            JsonNode v = require(f);
            if (!v.isTextual()) {
                throw new ConfigException(source + ": field '" + f + "' must be a string, got " + v);
            }
            return v.asText();
        }

        int positive(String f) {
            int v = integer(f);
            if (v <= 0) {
                throw new ConfigException(source + ": field '" + f + "' must be positive, got " + v);
            }
            return v;
        }

        int nonNegative(String f) {
            int v = integer(f);
            if (v < 0) {
                throw new ConfigException(source + ": field '" + f + "' must not be negative, got " + v);
            }
            return v;
        }

        int integer(String f) {
            JsonNode v = require(f);
            if (!v.canConvertToInt() || !(v.isIntegralNumber() || (v.isNumber() && v.asDouble() == Math.rint(v.asDouble())))) {
                throw new ConfigException(source + ": field '" + f + "' must be an integer, got " + v);
            }
            return v.asInt();
        }

        double positiveDouble(String f) {
            double v = number(f);
            if (!(v > 0)) {
                throw new ConfigException(source + ": field '" + f + "' must be positive, got " + v);
            }
            return v;
        }

        double nonNegativeDouble(String f) {
            double v = number(f);
            if (!(v >= 0)) {
                throw new ConfigException(source + ": field '" + f + "' must not be negative, got " + v);
            }
            return v;
        }

        double number(String f) {
            JsonNode v = require(f);
            if (!v.isNumber()) {
                throw new ConfigException(source + ": field '" + f + "' must be a number, got " + v);
            }
            return v.asDouble();
        }

        ConfigException unsupported(String f, Object value, String supported) {
            return new ConfigException(source + ": field '" + f + "' = " + value + " is unsupported (supported: "
                    + supported + ")");
        }
    }
}
