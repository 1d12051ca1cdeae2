package io.epserve.model.checkpoint;

import io.epserve.model.checkpoint.SafetensorsWriter.Entry;
import io.epserve.model.checkpoint.SafetensorsWriter.Location;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.Tap;
import io.epserve.model.engine.Transformer;
import io.epserve.model.format.Bf16;
import io.epserve.model.format.Fp4E2m1;
import io.epserve.model.format.Fp8E4m3;
import io.epserve.model.kernel.ExactKernels;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.safetensors.DType;
import io.epserve.model.safetensors.WeightMemory;
import io.epserve.model.weights.ModelWeights;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Consumer;

/**
 * Writes a random-weight DeepSeek-V4 model directory in the official Hugging Face layout (spec §1–§2):
 * {@code config.json}, {@code model.safetensors} (or shards + index), {@code tokenizer.json} and
 * {@code tokenizer_config.json}. The result is deterministic for a seed: every tensor draws from its own generator
 * seeded by (seed, tensor name), so the bytes do not depend on thread scheduling or on the shard layout.
 *
 * <h2>How the weights keep activations healthy</h2>
 * Following the golden generator (GOLDEN.md "How the numbers were produced"), with std = gain / sqrt(fan_in):
 * <ul>
 *   <li>FP8 linears (wq_a, wq_b, wkv, wo_a, wo_b, indexer wq_b, MTP e_proj/h_proj): gain 1 (variance preserving).
 *       Each 128x128 block gets its own random gain 2^U(-1.25,1.25) (renormalised over the matrix) and its own
 *       E8M0 scale from its amax, so scales vary and the whole e4m3 code range is used.</li>
 *   <li>Routed and shared experts: w1/w3 gain 3.48, so gate/up values have std ~3.5 and the SwiGLU clamp at 10 fires on
 *       well under 1% of them; w2 gain {@code 0.93 / (8.33 sqrt(1 + route_scale^2 / k))}, where 8.33 is the RMS of
 *       the clamped silu(g)*u, so routed + shared output has RMS ~0.9. FP4 blocks of 32 get gains 2^U(-1.7,1.7).</li>
 *   <li>Embeddings = a shared mean vector (std 0.69) + per-token noise (std 0.66); the indexer's weights_proj rows
 *       are 0.4 x that mean direction + noise, so the indexer head weights are mostly positive; the router rows have
 *       that direction projected out, so no expert gets a systematic head start.</li>
 *   <li>Norm weights U(0.7,1.3) (attn/ffn), U(0.8,1.2) (q, final, MTP), U(0.8,1.6) (kv and compressor norms);
 *       lm head gain 2.5 (logit std ~2.5); gate gain 1.5; compressor wkv gain 1, wgate gain 2, ape N(0,1).</li>
 *   <li>mHC: fn gain 1 over the 4D inputs, bases N(0,0.5) with +2 on the Sinkhorn diagonal, scales U(0.5,1.5).</li>
 *   <li>Attention sinks ln(min(window, 32)) + U(-2.77,-0.27) (U(0,2.5) at window 16, as the golden): a minority of
 *       the softmax mass from short prompts to full windows.</li>
 *   <li>Gate biases (non-hash layers and MTP) are balanced on random calibration tokens run through the exact engine,
 *       so that every expert receives traffic; hash layers get a random tid2eid of distinct experts per token.</li>
 * </ul>
 */
public final class RandomCheckpoint {
    private RandomCheckpoint() {}

    /** Calibration tokens per preset when not given. */
    public static int defaultCalibrationTokens(Preset p) {
        return p == Preset.TINY ? 256 : 128;
    }

    /** What to write. {@code shardSize <= 0}: one file; {@code calibrationTokens == 0}: gate biases stay zero. */
    public record Options(Preset preset, long seed, long shardSize, int calibrationTokens) {
        public static Options of(Preset preset, long seed) {
            return new Options(preset, seed, 0, defaultCalibrationTokens(preset));
        }

        public Options withShardSize(long bytes) {
            return new Options(preset, seed, bytes, calibrationTokens);
        }

        public Options withCalibrationTokens(int n) {
            return new Options(preset, seed, shardSize, n);
        }
    }

    /**
     * What was written. {@code fp4ExpertBytes} counts the packed FP4 routed-expert weights (I8 tensors), and
     * {@code fp4ExpertScaleBytes} their E8M0 scales. {@code expertCounts} holds, per calibrated layer (index
     * nLayers = MTP), the expert assignment counts on the calibration tokens after balancing.
     */
    public record Summary(Path dir, ModelConfig config, List<Path> files, int tensorCount, long tensorBytes,
                          long fp4ExpertBytes, long fp4ExpertScaleBytes, Map<Integer, int[]> expertCounts,
                          long generateMillis, long calibrateMillis) {}

    /**
     * Writes the model directory (created if needed). Model files already there are replaced: a stale index or stale
     * shards would otherwise shadow or mix with the new tensors. Other files are left alone.
     */
    public static Summary write(Path dir, Options o, Consumer<String> log) throws IOException {
        long t0 = System.nanoTime();
        Files.createDirectories(dir);
        try (var files = Files.list(dir)) {
            for (Path p : files.toList()) {
                String n = p.getFileName().toString();
                boolean shard = n.matches("model-\\d+-of-\\d+\\.safetensors");
                if (shard || n.equals(Checkpoint.SINGLE) || n.equals(Checkpoint.INDEX)) {
                    Files.delete(p);
                }
            }
        }
        String configJson = configJson(o.preset());
        ModelConfig c = ModelConfig.parse(new java.io.ByteArrayInputStream(configJson.getBytes(StandardCharsets.UTF_8)),
                "preset " + o.preset().id());
        Files.writeString(dir.resolve(ModelConfig.FILE), configJson, StandardCharsets.UTF_8);
        Files.writeString(dir.resolve("tokenizer.json"), tokenizerJson(c.vocabSize()), StandardCharsets.UTF_8);
        Files.writeString(dir.resolve("tokenizer_config.json"), tokenizerConfigJson(), StandardCharsets.UTF_8);

        Plan plan = new Plan(c, o.seed());
        List<Entry> entries = SafetensorsWriter.canonicalOrder(plan.entries());
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "pt");
        meta.put("generator", "epserve make-checkpoint --preset " + o.preset().id() + " --seed " + o.seed());
        SafetensorsWriter.Result res;
        try (Pipeline pipe = new Pipeline(plan, entries)) {
            res = SafetensorsWriter.write(dir, entries, meta, o.shardSize(), pipe::write);
        }
        long fp4 = 0;
        long fp4Scales = 0;
        for (Entry e : entries) {
            if (e.name().contains(".ffn.experts.")) {
                if (e.dtype() == DType.I8) {
                    fp4 += e.byteSize();
                } else {
                    fp4Scales += e.byteSize();
                }
            }
        }
        long t1 = System.nanoTime();
        log.accept(String.format("wrote %d tensors, %,d bytes in %d file(s) (%.1f s)", res.tensorCount(),
                res.tensorBytes(), res.files().size(), (t1 - t0) / 1e9));
        Map<Integer, int[]> counts = new LinkedHashMap<>();
        if (o.calibrationTokens() > 0) {
            counts = calibrateGateBiases(dir, c, o.seed(), o.calibrationTokens(), res.locations(), log);
        }
        long t2 = System.nanoTime();
        return new Summary(dir, c, res.files(), res.tensorCount(), res.tensorBytes(), fp4, fp4Scales, counts,
                (t1 - t0) / 1_000_000, (t2 - t1) / 1_000_000);
    }

    /**
     * Every tensor of a checkpoint of {@code c} in the official layout (name, dtype, shape: what {@link #write} writes
     * and {@code ModelWeights} binds), without drawing any weights: for sizing a deployment from a config alone.
     */
    public static List<SafetensorsWriter.Entry> layout(ModelConfig c) {
        return new Plan(c, 0).entries();
    }

    // ------------------------------------------------------------------------------------------------ config files

    /** config.json of a preset, formatted as the golden's (Python json.dumps, indent 2). */
    public static String configJson(Preset p) {
        Preset.Shape s = p.shape;
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("architectures", List.of("DeepseekV4ForCausalLM"));
        m.put("model_type", "deepseek_v4");
        m.put("hidden_size", s.hiddenSize());
        m.put("num_hidden_layers", s.numHiddenLayers());
        m.put("num_attention_heads", s.numAttentionHeads());
        m.put("num_key_value_heads", 1);
        m.put("head_dim", s.headDim());
        m.put("qk_rope_head_dim", 64);
        m.put("q_lora_rank", s.qLoraRank());
        m.put("o_groups", s.oGroups());
        m.put("o_lora_rank", s.oLoraRank());
        m.put("sliding_window", s.slidingWindow());
        List<Object> ratios = new ArrayList<>();
        for (int r : s.compressRatios()) {
            ratios.add(r);
        }
        m.put("compress_ratios", ratios);
        m.put("compress_rope_theta", 160000);
        m.put("rope_theta", 10000);
        Map<String, Object> yarn = new LinkedHashMap<>();
        yarn.put("type", "yarn");
        yarn.put("factor", 16);
        yarn.put("original_max_position_embeddings", 65536);
        yarn.put("beta_fast", 32);
        yarn.put("beta_slow", 1);
        m.put("rope_scaling", yarn);
        m.put("max_position_embeddings", s.maxPositionEmbeddings());
        m.put("index_n_heads", s.indexNHeads());
        m.put("index_head_dim", 128);
        m.put("index_topk", s.indexTopk());
        m.put("n_routed_experts", s.nRoutedExperts());
        m.put("n_shared_experts", 1);
        m.put("num_experts_per_tok", s.numExpertsPerTok());
        m.put("moe_intermediate_size", s.moeIntermediateSize());
        m.put("scoring_func", "sqrtsoftplus");
        m.put("topk_method", "noaux_tc");
        m.put("norm_topk_prob", true);
        m.put("routed_scaling_factor", new Json.Raw(pyFloat(s.routedScalingFactor())));
        m.put("num_hash_layers", s.numHashLayers());
        m.put("swiglu_limit", new Json.Raw("10.0"));
        m.put("hc_mult", 4);
        m.put("hc_sinkhorn_iters", 20);
        m.put("hc_eps", new Json.Raw("1e-06"));
        m.put("rms_norm_eps", new Json.Raw("1e-06"));
        m.put("num_nextn_predict_layers", 1);
        m.put("vocab_size", s.vocabSize());
        m.put("bos_token_id", 0);
        m.put("eos_token_id", 1);
        m.put("tie_word_embeddings", false);
        m.put("hidden_act", "silu");
        m.put("torch_dtype", "bfloat16");
        Map<String, Object> q = new LinkedHashMap<>();
        q.put("quant_method", "fp8");
        q.put("fmt", "e4m3");
        q.put("scale_fmt", "ue8m0");
        q.put("weight_block_size", List.of(128, 128));
        q.put("activation_scheme", "dynamic");
        m.put("quantization_config", q);
        m.put("expert_dtype", "fp4");
        return Json.dump(m, 2);
    }

    private static String pyFloat(double v) {
        return v == Math.rint(v) ? String.format("%.1f", v) : Double.toString(v);
    }

    public static final String BOS = "<｜begin▁of▁sentence｜>";
    public static final String EOS = "<｜end▁of▁sentence｜>";
    public static final String PAD = "<｜▁pad▁｜>";
    public static final int USER_ID = 259;
    public static final int ASSISTANT_ID = 260;
    public static final int THINK_END_ID = 262;

    /**
     * A byte-level BPE tokenizer.json in the style of the golden's: id = 3 + byte (GPT-2 byte-to-unicode characters),
     * BOS 0, EOS 1, pad 2, {@code <｜User｜>} 259, {@code <｜Assistant｜>} 260, {@code <think>} 261, {@code </think>}
     * 262, {@code ｜DSML｜} 263, placeholders up to vocab - 1; no merges.
     */
    public static String tokenizerJson(int vocab) {
        if (vocab < 264) {
            throw new IllegalArgumentException("vocab " + vocab + " too small for the byte-level tokenizer (>= 264)");
        }
        String[] special = new String[vocab];
        boolean[] isSpecial = new boolean[vocab];
        special[0] = BOS;
        special[1] = EOS;
        special[2] = PAD;
        special[259] = "<｜User｜>";
        special[260] = "<｜Assistant｜>";
        special[261] = "<think>";
        special[262] = "</think>";
        special[263] = "｜DSML｜";
        for (int i = 264; i < vocab; i++) {
            special[i] = "<｜place▁holder▁no▁" + (i - 264) + "｜>";
        }
        for (int i = 0; i < vocab; i++) {
            isSpecial[i] = special[i] != null && (i < 3 || i == 259 || i == 260 || i >= 264);
        }
        String[] byteChar = byteToUnicode();
        List<Object> added = new ArrayList<>();
        Map<String, Object> vocabMap = new LinkedHashMap<>();
        for (int i = 0; i < vocab; i++) {
            String content = special[i] != null ? special[i] : byteChar[i - 3];
            vocabMap.put(content, i);
            if (special[i] != null) {
                Map<String, Object> t = new LinkedHashMap<>();
                t.put("id", i);
                t.put("content", content);
                t.put("single_word", false);
                t.put("lstrip", false);
                t.put("rstrip", false);
                t.put("normalized", false);
                t.put("special", isSpecial[i]);
                added.add(t);
            }
        }
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("version", "1.0");
        root.put("truncation", null);
        root.put("padding", null);
        root.put("added_tokens", added);
        root.put("normalizer", null);
        root.put("pre_tokenizer", byteLevel(false));
        root.put("post_processor", null);
        root.put("decoder", byteLevel(true));
        Map<String, Object> model = new LinkedHashMap<>();
        model.put("type", "BPE");
        model.put("dropout", null);
        model.put("unk_token", null);
        model.put("continuing_subword_prefix", null);
        model.put("end_of_word_suffix", null);
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        model.put("ignore_merges", false);
        model.put("vocab", vocabMap);
        model.put("merges", List.of());
        root.put("model", model);
        return Json.dump(root, 1);
    }

    private static Map<String, Object> byteLevel(boolean prefixSpace) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", "ByteLevel");
        m.put("add_prefix_space", prefixSpace);
        m.put("trim_offsets", true);
        m.put("use_regex", true);
        return m;
    }

    public static String tokenizerConfigJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("add_bos_token", false);
        m.put("add_eos_token", false);
        m.put("bos_token", BOS);
        m.put("eos_token", EOS);
        m.put("pad_token", PAD);
        m.put("clean_up_tokenization_spaces", false);
        m.put("legacy", true);
        m.put("model_max_length", 1048576);
        m.put("tokenizer_class", "PreTrainedTokenizerFast");
        return Json.dump(m, 2);
    }

    /** GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 upwards. */
    static String[] byteToUnicode() {
        String[] out = new String[256];
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            out[b] = printable ? String.valueOf((char) b) : String.valueOf((char) (256 + n++));
        }
        return out;
    }

    /** Token ids of a chat prompt in this tokenizer: BOS, User, the bytes, Assistant, {@code </think>}. */
    public static int[] chatPrompt(String text) {
        byte[] b = text.getBytes(StandardCharsets.UTF_8);
        int[] t = new int[b.length + 4];
        t[0] = 0;
        t[1] = USER_ID;
        for (int i = 0; i < b.length; i++) {
            t[2 + i] = 3 + (b[i] & 0xff);
        }
        t[b.length + 2] = ASSISTANT_ID;
        t[b.length + 3] = THINK_END_ID;
        return t;
    }

    /** Python-compatible JSON output (json.dumps(indent=n, ensure_ascii=False)) of maps, lists and scalars. */
    static final class Json {
        private Json() {}

        /** A pre-formatted number. */
        record Raw(String text) {}

        static String dump(Object v, int indent) {
            StringBuilder sb = new StringBuilder();
            write(sb, v, indent, 0);
            return sb.toString();
        }

        private static void write(StringBuilder sb, Object v, int indent, int depth) {
            switch (v) {
                case null -> sb.append("null");
                case String s -> sb.append(SafetensorsWriter.Json.quote(s));
                case Raw r -> sb.append(r.text());
                case Boolean b -> sb.append(b);
                case Integer i -> sb.append(i);
                case Long l -> sb.append(l);
                case Map<?, ?> m -> {
                    if (m.isEmpty()) {
                        sb.append("{}");
                        return;
                    }
                    sb.append("{\n");
                    int i = 0;
                    for (Map.Entry<?, ?> e : m.entrySet()) {
                        pad(sb, indent * (depth + 1));
                        sb.append(SafetensorsWriter.Json.quote((String) e.getKey())).append(": ");
                        write(sb, e.getValue(), indent, depth + 1);
                        sb.append(++i < m.size() ? ",\n" : "\n");
                    }
                    pad(sb, indent * depth);
                    sb.append('}');
                }
                case List<?> l -> {
                    if (l.isEmpty()) {
                        sb.append("[]");
                        return;
                    }
                    sb.append("[\n");
                    for (int i = 0; i < l.size(); i++) {
                        pad(sb, indent * (depth + 1));
                        write(sb, l.get(i), indent, depth + 1);
                        sb.append(i + 1 < l.size() ? ",\n" : "\n");
                    }
                    pad(sb, indent * depth);
                    sb.append(']');
                }
                default -> throw new IllegalArgumentException("cannot write " + v.getClass());
            }
        }

        private static void pad(StringBuilder sb, int n) {
            sb.append(" ".repeat(n));
        }
    }

    // ------------------------------------------------------------------------------------------------ tensor plan

    /** Generates the bytes of a group of tensors (e.g. an FP8 weight and its scale) from one random stream. */
    @FunctionalInterface
    interface Generator {
        byte[][] generate(SplittableRandom r);
    }

    /** One unit of generation: its entries (in the order of the generated parts) and its generator. */
    record Job(String key, List<Entry> entries, Generator gen) {}

    /** Every tensor of a config and how to draw it. */
    static final class Plan {
        final ModelConfig c;
        final long seed;
        final List<Job> jobs = new ArrayList<>();
        final Map<String, Job> jobOf = new HashMap<>();
        final Map<String, Integer> partOf = new HashMap<>();
        /** The shared mean vector of the embeddings (its direction also feeds the indexer weights_proj). */
        final double[] embedMean;

        Plan(ModelConfig c, long seed) {
            this.c = c;
            this.seed = seed;
            int d = c.dim();
            SplittableRandom r = rng(seed, "embed.mean");
            embedMean = new double[d];
            for (int i = 0; i < d; i++) {
                embedMean[i] = EMBED_MEAN_STD * r.nextGaussian();
            }
            build();
        }

        List<Entry> entries() {
            List<Entry> out = new ArrayList<>();
            for (Job j : jobs) {
                out.addAll(j.entries());
            }
            return out;
        }

        private void add(Job j) {
            jobs.add(j);
            for (int i = 0; i < j.entries().size(); i++) {
                Entry e = j.entries().get(i);
                if (jobOf.put(e.name(), j) != null) {
                    throw new IllegalStateException("tensor " + e.name() + " planned twice");
                }
                partOf.put(e.name(), i);
            }
        }

        private void build() {
            int d = c.dim();
            int hc = c.hcMult();
            int v = c.vocabSize();
            double[] mean = embedMean;
            add(single("embed.weight", DType.BF16, new long[] {v, d}, r -> {
                short[] out = new short[v * d];
                for (int i = 0; i < v; i++) {
                    for (int j = 0; j < d; j++) {
                        out[i * d + j] = Bf16.bits((float) (mean[j] + EMBED_NOISE_STD * r.nextGaussian()));
                    }
                }
                return bytes(out);
            }));
            add(bf16Normal("head.weight", v, d, HEAD_GAIN / Math.sqrt(d)));
            add(bf16Uniform("norm.weight", d, 0.8, 1.2));
            hcHead("", d, hc);
            for (int i = 0; i < c.nLayers(); i++) {
                layer("layers." + i + ".", c.compressRatio(i), c.isHashLayer(i));
            }
            if (c.nMtpLayers() > 0) {
                String p = "mtp.0.";
                layer(p, c.compressRatio(c.nLayers()), false);
                add(fp8(p + "e_proj", d, d, 1.0 / Math.sqrt(d)));
                add(fp8(p + "h_proj", d, d, 1.0 / Math.sqrt(d)));
                add(bf16Uniform(p + "enorm.weight", d, 0.8, 1.2));
                add(bf16Uniform(p + "hnorm.weight", d, 0.8, 1.2));
                add(bf16Uniform(p + "norm.weight", d, 0.8, 1.2));
                hcHead(p, d, hc);
            }
        }

        private void hcHead(String p, int d, int hc) {
            add(f32Normal(p + "hc_head_fn", new long[] {hc, (long) hc * d}, 1.0 / Math.sqrt(hc * d), 0));
            add(f32Normal(p + "hc_head_base", new long[] {hc}, 0.25, 0.1));
            add(f32Uniform(p + "hc_head_scale", 1, 0.5, 1.5));
        }

        private void layer(String p, int ratio, boolean hash) {
            int d = c.dim();
            int hc = c.hcMult();
            int mix = c.hcMixDim();
            int h = c.nHeads();
            int hd = c.headDim();
            int ql = c.qLoraRank();
            int e = c.nRoutedExperts();
            int inter = c.moeInterDim();
            add(bf16Uniform(p + "attn_norm.weight", d, 0.7, 1.3));
            add(bf16Uniform(p + "ffn_norm.weight", d, 0.7, 1.3));
            for (String s : new String[] {"hc_attn", "hc_ffn"}) {
                add(f32Normal(p + s + "_fn", new long[] {mix, (long) hc * d}, 1.0 / Math.sqrt(hc * d), 0));
                add(single(p + s + "_base", DType.F32, new long[] {mix}, r -> {
                    float[] b = new float[mix];
                    for (int i = 0; i < mix; i++) {
                        b[i] = (float) (HC_BASE_STD * r.nextGaussian());
                    }
                    for (int j = 0; j < hc; j++) {
                        b[2 * hc + j * hc + j] += (float) HC_COMB_DIAGONAL;
                    }
                    return bytes(b);
                }));
                add(f32Uniform(p + s + "_scale", 3, 0.5, 1.5));
            }
            double sinkBase = Math.log(Math.min(c.window(), SINK_WINDOW_CAP));
            add(f32Uniform(p + "attn.attn_sink", h, sinkBase - 2.77, sinkBase - 0.27));
            add(fp8(p + "attn.wq_a", ql, d, 1.0 / Math.sqrt(d)));
            add(bf16Uniform(p + "attn.q_norm.weight", ql, 0.8, 1.2));
            add(fp8(p + "attn.wq_b", h * hd, ql, 1.0 / Math.sqrt(ql)));
            add(fp8(p + "attn.wkv", hd, d, 1.0 / Math.sqrt(d)));
            add(bf16Uniform(p + "attn.kv_norm.weight", hd, 0.8, 1.6));
            int groupIn = h * hd / c.oGroups();
            int gr = c.oGroups() * c.oLoraRank();
            add(fp8(p + "attn.wo_a", gr, groupIn, 1.0 / Math.sqrt(groupIn)));
            add(fp8(p + "attn.wo_b", d, gr, 1.0 / Math.sqrt(gr)));
            if (ratio > 0) {
                compressor(p + "attn.compressor.", ratio, hd);
                if (ratio == 4) {
                    int ih = c.indexHeads();
                    int ihd = c.indexHeadDim();
                    add(fp8(p + "attn.indexer.wq_b", ih * ihd, ql, 1.0 / Math.sqrt(ql)));
                    add(indexerWeights(p + "attn.indexer.weights_proj.weight", ih, d));
                    compressor(p + "attn.indexer.compressor.", ratio, ihd);
                }
            }
            add(gate(p + "ffn.gate.weight", e, d, GATE_GAIN / Math.sqrt(d)));
            if (hash) {
                add(tid2eid(p + "ffn.gate.tid2eid", c.vocabSize(), c.nActivatedExperts(), e));
            } else {
                add(single(p + "ffn.gate.bias", DType.F32, new long[] {e}, r -> new byte[4 * e]));
            }
            double w13 = EXPERT_IN_GAIN / Math.sqrt(d);
            double w2 = expertOutGain(c) / Math.sqrt(inter);
            for (int x = 0; x < e; x++) {
                String q = p + "ffn.experts." + x + ".";
                add(fp4(q + "w1", inter, d, w13));
                add(fp4(q + "w2", d, inter, w2));
                add(fp4(q + "w3", inter, d, w13));
            }
            String s = p + "ffn.shared_experts.";
            add(fp8(s + "w1", inter, d, w13));
            add(fp8(s + "w2", d, inter, w2));
            add(fp8(s + "w3", inter, d, w13));
        }

        private void compressor(String p, int ratio, int dim) {
            int d = c.dim();
            int width = (ratio == 4 ? 2 : 1) * dim;
            add(bf16Normal(p + "wkv.weight", width, d, 1.0 / Math.sqrt(d)));
            add(bf16Normal(p + "wgate.weight", width, d, COMPRESSOR_GATE_GAIN / Math.sqrt(d)));
            add(f32Normal(p + "ape", new long[] {ratio, width}, 1.0, 0));
            add(bf16Uniform(p + "norm.weight", dim, 0.8, 1.6));
        }

        /** The unit vector along the embeddings' shared mean. */
        private double[] meanDirection() {
            double norm = 0;
            for (double x : embedMean) {
                norm += x * x;
            }
            double inv = 1.0 / Math.sqrt(norm);
            double[] dir = new double[embedMean.length];
            for (int i = 0; i < dir.length; i++) {
                dir[i] = embedMean[i] * inv;
            }
            return dir;
        }

        /**
         * Router weights with the shared mean direction projected out of every row, so that the common component of
         * the hidden states gives no expert a systematic head start (the gate bias then only evens out noise).
         */
        private Job gate(String name, int experts, int d, double std) {
            double[] dir = meanDirection();
            return single(name, DType.BF16, new long[] {experts, d}, r -> {
                short[] out = new short[experts * d];
                double[] row = new double[d];
                for (int e = 0; e < experts; e++) {
                    double dot = 0;
                    for (int i = 0; i < d; i++) {
                        row[i] = std * r.nextGaussian();
                        dot += row[i] * dir[i];
                    }
                    for (int i = 0; i < d; i++) {
                        out[e * d + i] = Bf16.bits((float) (row[i] - dot * dir[i]));
                    }
                }
                return bytes(out);
            });
        }

        private Job indexerWeights(String name, int heads, int d) {
            double[] dir = meanDirection();
            return single(name, DType.BF16, new long[] {heads, d}, r -> {
                short[] out = new short[heads * d];
                for (int h = 0; h < heads; h++) {
                    for (int i = 0; i < d; i++) {
                        double x = INDEXER_MEAN_WEIGHT * dir[i] + r.nextGaussian() / Math.sqrt(d);
                        out[h * d + i] = Bf16.bits((float) x);
                    }
                }
                return bytes(out);
            });
        }

        private Job single(String name, DType dt, long[] shape, java.util.function.Function<SplittableRandom, byte[]> g) {
            return new Job(name, List.of(new Entry(name, dt, shape)), r -> new byte[][] {g.apply(r)});
        }

        private Job bf16Normal(String name, int rows, int cols, double std) {
            return single(name, DType.BF16, new long[] {rows, cols}, r -> {
                short[] out = new short[rows * cols];
                for (int i = 0; i < out.length; i++) {
                    out[i] = Bf16.bits((float) (std * r.nextGaussian()));
                }
                return bytes(out);
            });
        }

        private Job bf16Uniform(String name, int n, double lo, double hi) {
            return single(name, DType.BF16, new long[] {n}, r -> {
                short[] out = new short[n];
                for (int i = 0; i < n; i++) {
                    out[i] = Bf16.bits((float) (lo + (hi - lo) * r.nextDouble()));
                }
                return bytes(out);
            });
        }

        private Job f32Normal(String name, long[] shape, double std, double mean) {
            int n = (int) new Entry(name, DType.F32, shape).elementCount();
            return single(name, DType.F32, shape, r -> {
                float[] out = new float[n];
                for (int i = 0; i < n; i++) {
                    out[i] = (float) (mean + std * r.nextGaussian());
                }
                return bytes(out);
            });
        }

        private Job f32Uniform(String name, int n, double lo, double hi) {
            return single(name, DType.F32, new long[] {n}, r -> {
                float[] out = new float[n];
                for (int i = 0; i < n; i++) {
                    out[i] = (float) (lo + (hi - lo) * r.nextDouble());
                }
                return bytes(out);
            });
        }

        private Job tid2eid(String name, int vocab, int k, int experts) {
            return single(name, DType.I64, new long[] {vocab, k}, r -> {
                ByteBuffer b = ByteBuffer.allocate(8 * vocab * k).order(ByteOrder.LITTLE_ENDIAN);
                int[] perm = new int[experts];
                for (int t = 0; t < vocab; t++) {
                    for (int i = 0; i < experts; i++) {
                        perm[i] = i;
                    }
                    for (int i = 0; i < k; i++) {
                        int j = i + r.nextInt(experts - i);
                        int tmp = perm[i];
                        perm[i] = perm[j];
                        perm[j] = tmp;
                        b.putLong(perm[i]);
                    }
                }
                return b.array();
            });
        }

        /** An FP8 e4m3 weight with E8M0 128x128 block scales; every block has its own random gain. */
        private Job fp8(String p, int rows, int cols, double std) {
            int br = (rows + 127) / 128;
            int bc = (cols + 127) / 128;
            List<Entry> es = List.of(new Entry(p + ".weight", DType.F8_E4M3, new long[] {rows, cols}),
                    new Entry(p + ".scale", DType.F8_E8M0, new long[] {br, bc}));
            return new Job(p, es, r -> {
                double[] gain = gains(r, br * bc, FP8_BLOCK_GAIN_LOG2);
                float[] v = new float[rows * cols];
                for (int i = 0; i < rows; i++) {
                    for (int j = 0; j < cols; j++) {
                        // Full-resolution deviates: e4m3 subnormal codes resolve values 2^-9 of the block maximum.
                        v[i * cols + j] = (float) (std * gain[(i / 128) * bc + j / 128] * r.nextGaussian());
                    }
                }
                byte[] codes = new byte[rows * cols];
                byte[] scales = new byte[br * bc];
                for (int bi = 0; bi < br; bi++) {
                    for (int bj = 0; bj < bc; bj++) {
                        int r1 = Math.min(rows, bi * 128 + 128);
                        int c1 = Math.min(cols, bj * 128 + 128);
                        double amax = 0;
                        for (int i = bi * 128; i < r1; i++) {
                            for (int j = bj * 128; j < c1; j++) {
                                amax = Math.max(amax, Math.abs(v[i * cols + j]));
                            }
                        }
                        int k = scaleExponent(amax, Fp8E4m3.MAX);
                        scales[bi * bc + bj] = (byte) (k + 127);
                        double inv = Math.scalb(1.0, -k);
                        for (int i = bi * 128; i < r1; i++) {
                            for (int j = bj * 128; j < c1; j++) {
                                codes[i * cols + j] = Fp8E4m3.encode(v[i * cols + j] * inv);
                            }
                        }
                    }
                }
                return new byte[][] {codes, scales};
            });
        }

        /** An FP4 e2m1 weight (two per byte, low nibble first) with E8M0 scales per row and 32 columns. */
        private Job fp4(String p, int rows, int cols, double std) {
            int nb = cols / 32;
            List<Entry> es = List.of(new Entry(p + ".weight", DType.I8, new long[] {rows, cols / 2}),
                    new Entry(p + ".scale", DType.F8_E8M0, new long[] {rows, nb}));
            return new Job(p, es, r -> {
                double[] gain = gains(r, rows * nb, FP4_BLOCK_GAIN_LOG2);
                Gauss gauss = new Gauss(r);
                byte[] packed = new byte[rows * cols / 2];
                byte[] scales = new byte[rows * nb];
                double[] blk = new double[32];
                for (int i = 0; i < rows; i++) {
                    for (int b = 0; b < nb; b++) {
                        double g = std * gain[i * nb + b];
                        double amax = 0;
                        for (int j = 0; j < 32; j++) {
                            blk[j] = g * gauss.next();
                            amax = Math.max(amax, Math.abs(blk[j]));
                        }
                        int k = scaleExponent(amax, Fp4E2m1.MAX);
                        scales[i * nb + b] = (byte) (k + 127);
                        double inv = Math.scalb(1.0, -k);
                        int base = (i * cols + b * 32) / 2;
                        for (int j = 0; j < 32; j += 2) {
                            int lo = fp4CodeFast(blk[j] * inv);
                            int hi = fp4CodeFast(blk[j + 1] * inv);
                            packed[base + j / 2] = (byte) (lo | (hi << 4));
                        }
                    }
                }
                return new byte[][] {packed, scales};
            });
        }
    }

    // Weight-scale constants (see the class comment).
    static final double EMBED_MEAN_STD = 0.69;
    static final double EMBED_NOISE_STD = 0.66;
    static final double HEAD_GAIN = 2.5;
    static final double GATE_GAIN = 1.5;
    static final double EXPERT_IN_GAIN = 3.48;
    /** RMS of bf16(silu(min(g,10)) * clamp(u,+-10)) for g, u ~ N(0, 3.48^2). */
    static final double SWIGLU_RMS = 8.33;
    static final double FFN_OUT_RMS = 0.93;
    static final double COMPRESSOR_GATE_GAIN = 2.0;
    static final double INDEXER_MEAN_WEIGHT = 0.4;
    static final double HC_BASE_STD = 0.5;
    /** Sinks are sized for windows of up to 32 visible rows (so they stay a minority on short prompts too). */
    static final int SINK_WINDOW_CAP = 32;
    static final double HC_COMB_DIAGONAL = 2.0;
    static final double FP8_BLOCK_GAIN_LOG2 = 1.25;
    static final double FP4_BLOCK_GAIN_LOG2 = 1.7;

    /** w2 gain: routed (k experts, weights summing to route_scale) plus shared output reach RMS ~FFN_OUT_RMS. */
    static double expertOutGain(ModelConfig c) {
        double rs = c.routeScale();
        return FFN_OUT_RMS / (SWIGLU_RMS * Math.sqrt(1 + rs * rs / c.nActivatedExperts()));
    }

    /** n block gains 2^U(-s, s), renormalised to RMS 1. */
    static double[] gains(SplittableRandom r, int n, double s) {
        double[] g = new double[n];
        double ss = 0;
        for (int i = 0; i < n; i++) {
            g[i] = Math.pow(2, s * (2 * r.nextDouble() - 1));
            ss += g[i] * g[i];
        }
        double norm = Math.sqrt(n / ss);
        for (int i = 0; i < n; i++) {
            g[i] *= norm;
        }
        return g;
    }

    /** The smallest k with amax <= max * 2^k (amax 0: the k of max itself). */
    static int scaleExponent(double amax, double max) {
        if (!(amax > 0)) {
            return 0;
        }
        int k = Math.getExponent(amax) - Math.getExponent(max);
        while (amax > Math.scalb(max, k)) {
            k++;
        }
        while (amax <= Math.scalb(max, k - 1)) {
            k--;
        }
        return Math.max(-127, Math.min(127, k));
    }

    /** Nearest e2m1 code, ties to the even code (the same rounding as {@link Fp4E2m1#encode}); |v| <= 6. */
    static int fp4Code(double v) {
        int sign = Double.doubleToRawLongBits(v) < 0 ? 8 : 0;
        double a = Math.abs(v);
        int code;
        if (a <= 0.25) {
            code = 0;
        } else if (a < 0.75) {
            code = 1;
        } else if (a <= 1.25) {
            code = 2;
        } else if (a < 1.75) {
            code = 3;
        } else if (a <= 2.5) {
            code = 4;
        } else if (a < 3.5) {
            code = 5;
        } else if (a <= 5) {
            code = 6;
        } else {
            code = 7;
        }
        return sign | code;
    }

    /**
     * Standard normal deviates for the FP4 experts, 4 per 64-bit draw: the inverse normal CDF at the midpoints of 65536
     * equal-probability cells (|z| <= 4.17). The values are quantised to e2m1 (steps of 1/12 of the block maximum)
     * anyway, so the 16-bit resolution is invisible, and this is several times faster than
     * {@link SplittableRandom#nextGaussian}.
     */
    static final class Gauss {
        private static final double[] TABLE = new double[1 << 16];

        static {
            for (int i = 0; i < TABLE.length; i++) {
                TABLE[i] = inverseNormalCdf((i + 0.5) / TABLE.length);
            }
        }

        private final SplittableRandom r;
        private long bits;
        private int left;

        Gauss(SplittableRandom r) {
            this.r = r;
        }

        double next() {
            if (left == 0) {
                bits = r.nextLong();
                left = 4;
            }
            int i = (int) (bits & 0xffff);
            bits >>>= 16;
            left--;
            return TABLE[i];
        }

        /** Acklam's rational approximation (relative error < 1.2e-9). */
        static double inverseNormalCdf(double p) {
            double[] a = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
                -3.066479806614716e+01, 2.506628277459239e+00};
            double[] b = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
                -1.328068155288572e+01};
            double[] c = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
                4.374664141464968e+00, 2.938163982698783e+00};
            double[] d = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00};
            double x;
            if (p < 0.02425) {
                double q = Math.sqrt(-2 * Math.log(p));
                x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
                        / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
            } else if (p > 1 - 0.02425) {
                double q = Math.sqrt(-2 * Math.log(1 - p));
                x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
                        / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
            } else {
                double q = p - 0.5;
                double t = q * q;
                x = (((((a[0] * t + a[1]) * t + a[2]) * t + a[3]) * t + a[4]) * t + a[5]) * q
                        / (((((b[0] * t + b[1]) * t + b[2]) * t + b[3]) * t + b[4]) * t + 1);
            }
            return x;
        }
    }

    /** fp4Code by cells of width 1/4 (every rounding boundary is a multiple of 1/4); exact boundaries go the slow way. */
    private static final byte[] FP4_CELL = new byte[25];

    static {
        for (int i = 0; i < FP4_CELL.length; i++) {
            FP4_CELL[i] = (byte) fp4Code(Math.min(6.0, (i + 0.5) / 4));
        }
    }

    static int fp4CodeFast(double v) {
        double a4 = Math.abs(v) * 4;
        int i = (int) a4;
        if (i == a4 || i >= FP4_CELL.length) {
            return fp4Code(v);
        }
        return (Double.doubleToRawLongBits(v) < 0 ? 8 : 0) | FP4_CELL[i];
    }

    static SplittableRandom rng(long seed, String key) {
        long h = seed * 0x9E3779B97F4A7C15L + 0x632BE59BD9B4E019L;
        for (int i = 0; i < key.length(); i++) {
            h = (h ^ key.charAt(i)) * 0x100000001B3L;
        }
        h ^= h >>> 33;
        h *= 0xff51afd7ed558ccdL;
        h ^= h >>> 33;
        h *= 0xc4ceb9fe1a85ec53L;
        h ^= h >>> 33;
        return new SplittableRandom(h);
    }

    static byte[] bytes(short[] v) {
        ByteBuffer b = ByteBuffer.allocate(2 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asShortBuffer().put(v);
        return b.array();
    }

    static byte[] bytes(float[] v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(v);
        return b.array();
    }

    // ------------------------------------------------------------------------------------------------ generation

    /**
     * Generates jobs on all cores a bounded distance ahead of the writer, which consumes the tensors in file order.
     * Memory stays at a few jobs' worth of bytes (the largest tensor of `small` is 4 MiB).
     */
    static final class Pipeline implements AutoCloseable {
        private final Plan plan;
        private final List<Job> order = new ArrayList<>();
        private final Map<Job, Integer> indexOf = new HashMap<>();
        private final Map<Job, Future<byte[][]>> running = new HashMap<>();
        private final Map<Job, Integer> remainingParts = new HashMap<>();
        private final ExecutorService pool;
        private final int ahead;
        private int submitted;

        Pipeline(Plan plan, List<Entry> fileOrder) {
            this.plan = plan;
            for (Entry e : fileOrder) {
                Job j = plan.jobOf.get(e.name());
                if (!indexOf.containsKey(j)) {
                    indexOf.put(j, order.size());
                    order.add(j);
                    remainingParts.put(j, j.entries().size());
                }
            }
            int threads = Math.max(1, Runtime.getRuntime().availableProcessors());
            this.ahead = 2 * threads + 2;
            this.pool = Executors.newFixedThreadPool(threads, r -> {
                Thread t = new Thread(r, "checkpoint-gen");
                t.setDaemon(true);
                return t;
            });
        }

        void write(Entry e, SafetensorsWriter.TensorSink out) throws IOException {
            Job j = plan.jobOf.get(e.name());
            int idx = indexOf.get(j);
            while (submitted < order.size() && submitted <= idx + ahead) {
                Job next = order.get(submitted++);
                long seed = plan.seed;
                running.put(next, pool.submit(() -> next.gen().generate(rng(seed, next.key()))));
            }
            byte[][] parts;
            try {
                parts = running.get(j).get();
            } catch (InterruptedException ex) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while generating " + e.name());
            } catch (ExecutionException ex) {
                throw new IOException("generating " + e.name() + " failed: " + ex.getCause(), ex.getCause());
            }
            out.put(parts[plan.partOf.get(e.name())]);
            if (remainingParts.merge(j, -1, Integer::sum) == 0) {
                running.remove(j);
            }
        }

        @Override
        public void close() {
            pool.shutdownNow();
        }
    }

    // ------------------------------------------------------------------------------------------------ calibration

    /** Random calibration tokens: BOS, then printable ASCII bytes (95 values) and some newlines, like prompt text. */
    public static int[] calibrationTokens(long seed, int n) {
        SplittableRandom r = rng(seed, "calibration.tokens");
        int[] t = new int[n];
        for (int i = 1; i < n; i++) {
            int b = r.nextInt(100);
            t[i] = 3 + (b < 95 ? 32 + b : '\n');
        }
        return t;
    }

    /**
     * Runs the calibration tokens through the exact engine and, at every non-hash layer (and the MTP block), sets the
     * gate bias so the experts share the assignments evenly before that layer routes them (the tap sees the whole
     * batch of ffn_in rows before routing). The balanced biases are then written into the checkpoint.
     */
    static Map<Integer, int[]> calibrateGateBiases(Path dir, ModelConfig c, long seed, int n,
                                                   Map<String, Location> where, Consumer<String> log)
            throws IOException {
        int L = c.nLayers();
        int E = c.nRoutedExperts();
        int K = c.nActivatedExperts();
        int d = c.dim();
        int[] tokens = calibrationTokens(seed, n);
        Map<Integer, float[]> biases = new LinkedHashMap<>();
        Map<Integer, int[]> counts = new LinkedHashMap<>();
        Map<Integer, int[]> actual = new LinkedHashMap<>();
        // one calibration pass: reading the files in place costs less than copying them
        try (Checkpoint ck = Checkpoint.open(dir, name -> true, WeightMemory.MAPPED)) {
            ModelWeights w = new ModelWeights(c, ck, ModelWeights.ExpertFilter.ALL);
            Transformer tr = new Transformer(w, new ExactKernels());
            Map<Integer, float[]> rows = new HashMap<>();
            Tap tap = (layer, name, pos, row, off, len) -> {
                ModelWeights.Layer lw = layer < L ? w.layers[layer] : w.mtp.block();
                if (lw.hash()) {
                    return;
                }
                int expected = layer < L ? n : n - 1;
                if (name.equals("topk")) {
                    int[] a = actual.computeIfAbsent(layer, k -> new int[E]);
                    for (int i = 0; i < len; i++) {
                        a[(int) row[off + i]]++;
                    }
                    return;
                }
                if (!name.equals("ffn_in")) {
                    return;
                }
                float[] x = rows.computeIfAbsent(layer, k -> new float[expected * d]);
                System.arraycopy(row, off, x, (int) pos * d, d);
                if (pos == expected - 1) {
                    double[] scores = gateScores(lw.ffn().gate(), x, expected, d, E);
                    float[] b = balance(scores, expected, E, K);
                    System.arraycopy(b, 0, lw.ffn().bias(), 0, E);
                    biases.put(layer, b);
                    counts.put(layer, assignmentCounts(scores, b, expected, E, K));
                    rows.remove(layer);
                }
            };
            tr.setTap(tap);
            try {
                var seq = tr.newSequence(n);
                Transformer.Output out = tr.forward(List.of(new Transformer.Chunk(seq, tokens)), false);
                if (w.mtp != null && n > 1) {
                    float[] streams = Arrays.copyOf(out.finalStreams(), (n - 1) * c.hcMult() * d);
                    tr.mtpForward(seq, streams, Arrays.copyOfRange(tokens, 1, n));
                }
            } finally {
                tr.setTap(null);
            }
        }
        for (Map.Entry<Integer, float[]> e : biases.entrySet()) {
            int layer = e.getKey();
            int[] predicted = counts.get(layer);
            int[] got = actual.get(layer);
            int diff = 0;
            for (int x = 0; got != null && x < E; x++) {
                diff += Math.abs(predicted[x] - got[x]);
            }
            // Equal up to a rare near-tie decided differently by another summation order.
            if (got == null || diff > Math.max(2, (layer < L ? n : n - 1) * K / 100)) {
                throw new IllegalStateException("gate bias calibration of layer " + layer
                        + " did not take effect before routing (predicted " + Arrays.toString(predicted) + ", routed "
                        + Arrays.toString(got) + ")");
            }
            String name = (layer < L ? "layers." + layer + "." : "mtp.0.") + "ffn.gate.bias";
            ByteBuffer b = ByteBuffer.allocate(4 * E).order(ByteOrder.LITTLE_ENDIAN);
            b.asFloatBuffer().put(e.getValue());
            SafetensorsWriter.patch(where.get(name), b);
            int min = Arrays.stream(got).min().orElse(0);
            int max = Arrays.stream(got).max().orElse(0);
            log.accept(String.format("calibrated %s on %d tokens: expert assignments %d..%d (ideal %.1f)", name,
                    layer < L ? n : n - 1, min, max, (layer < L ? n : n - 1) * (double) K / E));
        }
        return counts;
    }

    /** sqrt(softplus(x . gate)) of every row, [T, E] (the routing scores before the bias). */
    static double[] gateScores(io.epserve.model.weights.Bf16Matrix gate, float[] x, int T, int d, int E) {
        double[] s = new double[T * E];
        float[] wrow = new float[d];
        for (int e = 0; e < E; e++) {
            gate.row(e, wrow, 0);
            for (int t = 0; t < T; t++) {
                double acc = 0;
                for (int i = 0; i < d; i++) {
                    acc += (double) x[t * d + i] * wrow[i];
                }
                double sp = acc > 20 ? acc : Math.log1p(Math.exp(acc));
                s[t * E + e] = Math.sqrt(sp);
            }
        }
        return s;
    }

    /**
     * A bias that spreads the top-k assignments of the rows evenly over the experts: sign updates with a shrinking
     * step (as in auxiliary-loss-free balancing), keeping the most even bias seen.
     */
    static float[] balance(double[] scores, int T, int E, int K) {
        double mean = 0;
        for (double s : scores) {
            mean += s;
        }
        mean /= scores.length;
        double var = 0;
        for (double s : scores) {
            var += (s - mean) * (s - mean);
        }
        double sd = Math.sqrt(var / scores.length) + 1e-6;
        double target = (double) T * K / E;
        float[] b = new float[E];
        float[] best = b.clone();
        double bestDev = Double.MAX_VALUE;
        int iters = 600;
        for (int it = 0; it < iters; it++) {
            int[] cnt = assignmentCounts(scores, b, T, E, K);
            double dev = 0;
            for (int e = 0; e < E; e++) {
                dev += Math.abs(cnt[e] - target);
            }
            int minCount = Arrays.stream(cnt).min().orElse(0);
            // Prefer biases under which every expert is used, then the most even.
            double score = dev + (minCount == 0 ? 1e9 : 0);
            if (score < bestDev) {
                bestDev = score;
                best = b.clone();
            }
            double step = sd * 0.2 * Math.pow(0.01, (double) it / iters);
            for (int e = 0; e < E; e++) {
                b[e] += (float) (step * Math.signum(target - cnt[e]));
            }
        }
        // Centre (a common offset changes nothing).
        double avg = 0;
        for (float x : best) {
            avg += x;
        }
        avg /= E;
        float[] out = new float[E];
        for (int e = 0; e < E; e++) {
            out[e] = (float) (best[e] - avg);
        }
        return out;
    }

    /** Expert assignment counts of top-k(score + bias) (ties: lower id, as the engine). */
    static int[] assignmentCounts(double[] scores, float[] bias, int T, int E, int K) {
        int[] cnt = new int[E];
        double[] v = new double[E];
        for (int t = 0; t < T; t++) {
            for (int e = 0; e < E; e++) {
                v[e] = scores[t * E + e] + bias[e];
            }
            for (int e : Transformer.topK(v, E, K)) {
                cnt[e]++;
            }
        }
        return cnt;
    }
}
