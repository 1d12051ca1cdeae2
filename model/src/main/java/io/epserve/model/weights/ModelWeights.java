package io.epserve.model.weights;

import io.epserve.model.config.ModelConfig;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.safetensors.CheckpointException;
import io.epserve.model.safetensors.DType;
import io.epserve.model.safetensors.TensorInfo;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.function.IntPredicate;

/**
 * Every weight of a DeepSeek-V4 checkpoint, bound by name and checked against the config (dtype and shape). Large
 * matrices stay views of the checkpoint's bytes (a huge-page copy or the mapped files, see
 * {@link io.epserve.model.safetensors.WeightMemory}); only vectors (norms, biases, mHC scales) are copied to the heap.
 */
public final class ModelWeights {
    public final ModelConfig config;
    public final Bf16Matrix embed;
    public final Bf16Matrix head;
    public final float[] norm;
    public final HcWeights hcHead;
    public final Layer[] layers;
    /** The MTP block, or null when the checkpoint has none. */
    public final Mtp mtp;

    public record HcWeights(F32Matrix fn, float[] base, float[] scale) {}

    public record Compressor(int ratio, boolean overlap, int dim, Bf16Matrix wkv, Bf16Matrix wgate, float[] ape, float[] norm) {}

    public record Indexer(Fp8Matrix wqB, Bf16Matrix weightsProj, Compressor compressor) {}

    public record Attention(float[] sink, Fp8Matrix wqA, float[] qNorm, Fp8Matrix wqB, Fp8Matrix wkv, float[] kvNorm,
                            Fp8Matrix woA, Fp8Matrix woB, Compressor compressor, Indexer indexer) {}

    public record Expert(Fp4Matrix w1, Fp4Matrix w2, Fp4Matrix w3) {}

    public record SharedExpert(Fp8Matrix w1, Fp8Matrix w2, Fp8Matrix w3) {}

    /** gate bias is null in hash layers; tid2eid is null outside them; experts[e] is null when not mapped here. */
    public record Ffn(Bf16Matrix gate, float[] bias, int[] tid2eid, Expert[] experts, SharedExpert shared) {}

    public record Layer(int index, int ratio, boolean hash, float[] attnNorm, float[] ffnNorm, HcWeights hcAttn,
                        HcWeights hcFfn, Attention attn, Ffn ffn) {}

    public record Mtp(Layer block, Fp8Matrix eProj, Fp8Matrix hProj, float[] enorm, float[] hnorm, float[] norm,
                      HcWeights hcHead) {}

    /** Which routed experts of a layer to bind (an expert worker binds only its own; null binds none). */
    @FunctionalInterface
    public interface ExpertFilter {
        boolean wants(int layer, int expert);

        ExpertFilter ALL = (l, e) -> true;
        ExpertFilter NONE = (l, e) -> false;
    }

    public ModelWeights(ModelConfig c, Checkpoint ck, ExpertFilter experts) {
        this.config = c;
        Binder b = new Binder(ck);
        int d = c.dim();
        embed = b.bf16Matrix("embed.weight", c.vocabSize(), d);
        head = b.bf16Matrix("head.weight", c.vocabSize(), d);
        norm = b.bf16Vector("norm.weight", d);
        hcHead = b.hc("hc_head", c.hcMult(), c.hcMult() * d, 1);
        layers = new Layer[c.nLayers()];
        for (int i = 0; i < c.nLayers(); i++) {
            int li = i;
            layers[i] = layer(c, b, layerPrefix(c, i), i, c.compressRatio(i), c.isHashLayer(i), e -> experts.wants(li, e));
        }
        if (c.nMtpLayers() > 0) {
            int mi = c.nLayers();
            String p = layerPrefix(c, mi);
            Layer block = layer(c, b, p, mi, c.compressRatio(mi), false, e -> experts.wants(mi, e));
            mtp = new Mtp(block, b.fp8(p + "e_proj", d, d), b.fp8(p + "h_proj", d, d), b.bf16Vector(p + "enorm.weight", d),
                    b.bf16Vector(p + "hnorm.weight", d), b.bf16Vector(p + "norm.weight", d),
                    b.hc(p + "hc_head", c.hcMult(), c.hcMult() * d, 1));
        } else {
            mtp = null;
        }
    }

    private static Layer layer(ModelConfig c, Binder b, String p, int index, int ratio, boolean hash, IntPredicate experts) {
        int d = c.dim();
        int hc = c.hcMult();
        int mix = c.hcMixDim();
        int hd = c.headDim();
        int h = c.nHeads();
        Compressor comp = null;
        Indexer idx = null;
        if (ratio > 0) {
            comp = compressor(b, p + "attn.compressor.", ratio, hd, d);
            if (ratio == 4) {
                int ih = c.indexHeads();
                int ihd = c.indexHeadDim();
                idx = new Indexer(b.fp8(p + "attn.indexer.wq_b", ih * ihd, c.qLoraRank()),
                        b.bf16Matrix(p + "attn.indexer.weights_proj.weight", ih, d),
                        compressor(b, p + "attn.indexer.compressor.", ratio, ihd, d));
            }
        }
        int groupIn = h * hd / c.oGroups();
        Attention attn = new Attention(
                b.f32Vector(p + "attn.attn_sink", h),
                b.fp8(p + "attn.wq_a", c.qLoraRank(), d),
                b.bf16Vector(p + "attn.q_norm.weight", c.qLoraRank()),
                b.fp8(p + "attn.wq_b", h * hd, c.qLoraRank()),
                b.fp8(p + "attn.wkv", hd, d),
                b.bf16Vector(p + "attn.kv_norm.weight", hd),
                b.fp8(p + "attn.wo_a", c.oGroups() * c.oLoraRank(), groupIn),
                b.fp8(p + "attn.wo_b", d, c.oGroups() * c.oLoraRank()),
                comp, idx);
        int e = c.nRoutedExperts();
        int inter = c.moeInterDim();
        Expert[] ex = new Expert[e];
        for (int i = 0; i < e; i++) {
            if (experts.test(i)) {
                ex[i] = expert(c, b, p, i);
            }
        }
        String s = p + "ffn.shared_experts.";
        int sInter = inter * c.nSharedExperts();
        Ffn ffn = new Ffn(
                b.bf16Matrix(p + "ffn.gate.weight", e, d),
                hash ? null : b.f32Vector(p + "ffn.gate.bias", e),
                hash ? b.tid2eid(p + "ffn.gate.tid2eid", c.vocabSize(), c.nActivatedExperts(), e) : null,
                ex,
                new SharedExpert(b.fp8(s + "w1", sInter, d), b.fp8(s + "w2", d, sInter), b.fp8(s + "w3", sInter, d)));
        return new Layer(index, ratio, hash,
                b.bf16Vector(p + "attn_norm.weight", d), b.bf16Vector(p + "ffn_norm.weight", d),
                b.hc(p + "hc_attn", mix, hc * d, 3), b.hc(p + "hc_ffn", mix, hc * d, 3), attn, ffn);
    }

    /** Tensor-name prefix of main layer {@code layer} ("layers.i."), or of the MTP block for index nLayers ("mtp.0."). */
    static String layerPrefix(ModelConfig c, int layer) {
        return layer < c.nLayers() ? "layers." + layer + "." : "mtp.0.";
    }

    /** Tensor-name prefix of routed expert {@code e} under a layer prefix: "{p}ffn.experts.{e}.". */
    static String expertPrefix(String layerPrefix, int e) {
        return layerPrefix + "ffn.experts." + e + ".";
    }

    /** Binds routed expert {@code e} of the layer with tensor prefix {@code p}, checked against the config. */
    static Expert expert(ModelConfig c, Binder b, String p, int e) {
        int d = c.dim();
        int inter = c.moeInterDim();
        String q = expertPrefix(p, e);
        return new Expert(b.fp4(q + "w1", inter, d), b.fp4(q + "w2", d, inter), b.fp4(q + "w3", inter, d));
    }

    private static Compressor compressor(Binder b, String p, int ratio, int dim, int d) {
        boolean overlap = ratio == 4;
        int c = overlap ? 2 : 1;
        return new Compressor(ratio, overlap, dim,
                b.bf16Matrix(p + "wkv.weight", c * dim, d),
                b.bf16Matrix(p + "wgate.weight", c * dim, d),
                b.f32Array(p + "ape", ratio, c * dim),
                b.bf16Vector(p + "norm.weight", dim));
    }

    /** Binds tensors by name, checking dtype and shape against the config (shared with {@link ExpertWeights}). */
    record Binder(Checkpoint ck) {
        private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

        Fp8Matrix fp8(String p, int rows, int cols) {
            TensorInfo w = ck.get(p + ".weight", DType.F8_E4M3, rows, cols);
            TensorInfo s = ck.get(p + ".scale", DType.F8_E8M0, (rows + 127) / 128, (cols + 127) / 128);
            // repacked once at load into the layout the fast kernels read (the exact ones read either)
            return new Fp8Matrix(p, rows, cols, w.data(), s.data()).panelled(ck::allocate);
        }

        Fp4Matrix fp4(String p, int rows, int cols) {
            TensorInfo w = ck.get(p + ".weight", DType.I8, rows, cols / 2);
            TensorInfo s = ck.get(p + ".scale", DType.F8_E8M0, rows, cols / 32);
            return new Fp4Matrix(p, rows, cols, w.data(), s.data()).panelled(ck::allocate);
        }

        Bf16Matrix bf16Matrix(String name, int rows, int cols) {
            return new Bf16Matrix(name, rows, cols, ck.get(name, DType.BF16, rows, cols).data());
        }

        float[] bf16Vector(String name, int n) {
            TensorInfo t = ck.get(name, DType.BF16, n);
            float[] v = new float[n];
            for (int i = 0; i < n; i++) {
                v[i] = Float.intBitsToFloat((t.data().get(BF16, 2L * i) & 0xffff) << 16);
            }
            return v;
        }

        float[] f32Vector(String name, int n) {
            return f32(ck.get(name, DType.F32, n), n);
        }

        float[] f32Array(String name, int rows, int cols) {
            return f32(ck.get(name, DType.F32, rows, cols), rows * cols);
        }

        private static float[] f32(TensorInfo t, int n) {
            float[] v = new float[n];
            for (int i = 0; i < n; i++) {
                v[i] = t.data().get(F32, 4L * i);
            }
            return v;
        }

        HcWeights hc(String p, int rows, int cols, int scales) {
            TensorInfo fn = ck.get(p + "_fn", DType.F32, rows, cols);
            return new HcWeights(new F32Matrix(p + "_fn", rows, cols, fn.data()), f32Vector(p + "_base", rows),
                    f32Vector(p + "_scale", scales));
        }

        int[] tid2eid(String name, int vocab, int k, int experts) {
            TensorInfo t = ck.tensors().get(name);
            DType dt = t == null ? DType.I64 : t.dtype();
            if (dt != DType.I32) {
                dt = DType.I64;
            }
            t = ck.get(name, dt, vocab, k);
            int[] v = new int[vocab * k];
            for (int i = 0; i < v.length; i++) {
                long e = dt == DType.I64 ? t.data().get(I64, 8L * i)
                        : t.data().get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 4L * i);
                if (e < 0 || e >= experts) {
                    throw new CheckpointException(t.file() + ": tensor '" + name + "' maps token " + (i / k)
                            + " to expert " + e + ", outside [0, " + experts + ")");
                }
                v[i] = (int) e;
            }
            return v;
        }
    }
}
