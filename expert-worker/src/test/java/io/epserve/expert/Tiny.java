package io.epserve.expert;

import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.Transformer;
import io.epserve.model.format.QuantSim;
import io.epserve.model.kernel.ExactKernels;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.safetensors.DType;
import io.epserve.model.safetensors.SafetensorsFile;
import io.epserve.model.safetensors.TensorInfo;
import io.epserve.model.weights.ModelWeights;
import io.epserve.transport.DispatchWriter;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntPredicate;

/**
 * The golden tiny model and its layer-1 MoE inputs, read straight from the model module's test resources (its
 * test-jar is not shared): {@code golden.safetensors} with {@link SafetensorsFile}, routing with the engine's
 * {@link Transformer#route} on the exact kernels.
 */
final class Tiny {
    static final int LAYER = 1;

    private Tiny() {
    }

    static Path dir() {
        Path p = Path.of(System.getProperty("epserve.golden.tiny", "../model/src/test/resources/golden/tiny"));
        if (!Files.isRegularFile(p.resolve("config.json"))) {
            throw new IllegalStateException("golden tiny model not found at " + p.toAbsolutePath());
        }
        return p;
    }

    static ModelConfig config() {
        return ModelConfig.load(dir());
    }

    /** A golden tensor as floats (BF16 or F32). */
    static float[] floats(String name) {
        try (SafetensorsFile f = SafetensorsFile.open(dir().resolve("golden.safetensors"))) {
            TensorInfo t = f.tensors().get(name);
            int n = (int) t.elementCount();
            float[] v = new float[n];
            for (int i = 0; i < n; i++) {
                if (t.dtype() == DType.BF16) {
                    int b = t.data().get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 2L * i);
                    v[i] = Float.intBitsToFloat((b & 0xffff) << 16);
                } else {
                    v[i] = t.data().get(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 4L * i);
                }
            }
            return v;
        }
    }

    static int[] ints(String name) {
        try (SafetensorsFile f = SafetensorsFile.open(dir().resolve("golden.safetensors"))) {
            TensorInfo t = f.tensors().get(name);
            int n = (int) t.elementCount();
            int[] v = new int[n];
            for (int i = 0; i < n; i++) {
                v[i] = t.data().get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 4L * i);
            }
            return v;
        }
    }

    /** One (token, slot) routed to an expert. */
    record Slot(int token, int slot, int expert, double weight) {}

    /** One dispatch row: a token and its slots on the receiver. */
    record Row(int token, List<Slot> slots) {}

    /** The golden layer-1 MoE input x [T, D] (bf16) and its routing by the engine (exact kernels). */
    static final class Layer1 {
        final ModelConfig c = config();
        final int d = c.dim();
        final float[] x = floats("layer1.ffn_in_all");
        final int tokens = x.length / d;
        final Transformer.Routing routing;

        Layer1() {
            try (Checkpoint ck = Checkpoint.open(dir()); ExactKernels k = new ExactKernels()) {
                ModelWeights w = new ModelWeights(c, ck, ModelWeights.ExpertFilter.NONE);
                Transformer tr = new Transformer(w, k);
                routing = tr.route(w.layers[LAYER], x, tokens, ints("tokens"));
            }
        }

        /** The rows with at least one expert accepted by {@code served}, holding only those slots. */
        List<Row> rows(IntPredicate served) {
            List<Row> rows = new ArrayList<>();
            int k = routing.perToken();
            for (int t = 0; t < tokens; t++) {
                List<Slot> slots = new ArrayList<>();
                for (int s = 0; s < k; s++) {
                    int e = routing.experts()[t * k + s];
                    if (served.test(e)) {
                        slots.add(new Slot(t, s, e, routing.weights()[t * k + s]));
                    }
                }
                if (!slots.isEmpty()) {
                    rows.add(new Row(t, slots));
                }
            }
            return rows;
        }

        /** Writes one dispatch exchange of {@code rows}, activations FP8-quantised per 128 as the engine does. */
        void dispatch(DispatchWriter w, long step, int source, int layer, List<Row> rows) {
            dispatch(w, step, source, layer, d, rows);
        }

        void dispatch(DispatchWriter w, long step, int source, int layer, int hiddenDim, List<Row> rows) {
            byte[] codes = new byte[d];
            int[] exps = new int[(d + 127) / 128];
            byte[] scales = new byte[exps.length];
            w.begin(0, source, step, layer, 0, 0, hiddenDim, c.nActivatedExperts(), rows.size());
            for (Row r : rows) {
                QuantSim.fp8Quantize(x, r.token() * d, d, 128, codes, 0, exps, 0);
                for (int i = 0; i < exps.length; i++) {
                    scales[i] = (byte) exps[i];
                }
                w.row(r.token(), r.slots().size());
                for (Slot s : r.slots()) {
                    w.slot(s.expert(), s.slot(), s.weight());
                }
                w.activation(codes, 0, scales, 0);
            }
            w.end();
        }
    }
}
