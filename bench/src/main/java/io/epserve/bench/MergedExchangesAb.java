package io.epserve.bench;

import io.epserve.cluster.Placement;
import io.epserve.expert.ExpertExecutor;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.format.QuantSim;
import io.epserve.model.kernel.KernelSets;
import io.epserve.model.kernel.Kernels;
import io.epserve.model.weights.ExpertWeights;
import io.epserve.transport.CombineWriter;
import io.epserve.transport.DispatchWriter;
import io.epserve.transport.MessageSink;
import io.epserve.transport.WireDecoder;
import io.epserve.transport.WireHandler;
import io.epserve.transport.sbe.DispatchDecoder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * What an expert worker gains by running the exchanges of several attention workers for one layer together: the same
 * exchanges (uniform random routing, random activations, FP8-quantised as the engine sends them) executed one by one
 * and together, alternating in one JVM on the same data, layer after layer so the experts' weights come from memory as
 * in a step. Prints the median of the per-round ratios together / one by one and its interquartile range.
 *
 * <pre>
 * java $(flags) -cp bench/target/benchmarks.jar io.epserve.bench.MergedExchangesAb --model /tmp/small \
 *     --tokens 16 --exchanges 2 --rounds 64 [--threads 1] [--kernels fast]
 * </pre>
 * ({@code flags}: the parent pom's {@code epserve.jvm.flags}; pin it with {@code taskset -c N} for one core.)
 */
public final class MergedExchangesAb {
    private MergedExchangesAb() {}

    /** Keeps nothing: the combines' bytes are not the point here. */
    private static final class Discard implements MessageSink {
        @Override
        public void send(DirectBuffer buffer, int offset, int length) {
        }

        @Override
        public int maxMessageLength() {
            return 1 << 20;
        }
    }

    /** Keeps copies of the dispatch messages, to append them again before each timed run. */
    private static final class Capture implements MessageSink {
        final List<byte[]> messages = new ArrayList<>();

        @Override
        public void send(DirectBuffer buffer, int offset, int length) {
            byte[] copy = new byte[length];
            buffer.getBytes(offset, copy);
            messages.add(copy);
        }

        @Override
        public int maxMessageLength() {
            return 1 << 20;
        }
    }

    public static void main(String[] args) throws Exception {
        Path model = null;
        int tokens = 16;
        int exchanges = 2;
        int rounds = 64;
        int threads = 1;
        String kernels = "fast";
        for (int i = 0; i + 1 < args.length; i += 2) {
            String v = args[i + 1];
            switch (args[i]) {
                case "--model" -> model = Path.of(v);
                case "--tokens" -> tokens = Integer.parseInt(v);
                case "--exchanges" -> exchanges = Integer.parseInt(v);
                case "--rounds" -> rounds = Integer.parseInt(v);
                case "--threads" -> threads = Integer.parseInt(v);
                case "--kernels" -> kernels = v;
                default -> throw new IllegalArgumentException("unknown flag " + args[i]);
            }
        }
        if (model == null || args.length % 2 != 0 || tokens < 1 || exchanges < 1 || rounds < 4) {
            System.err.println("usage: --model DIR [--tokens N] [--exchanges N] [--rounds N >= 4] [--threads N]"
                    + " [--kernels exact|fast]");
            System.exit(2);
        }
        ModelConfig c = ModelConfig.load(model);
        int d = c.dim();
        int topK = c.nActivatedExperts();
        int experts = c.nRoutedExperts();
        SplittableRandom r = new SplittableRandom(1);
        try (ExpertWeights w = ExpertWeights.open(model, Placement.ofSpec("all", c));
             Kernels k = KernelSets.create(kernels, threads)) {
            int layers = c.nLayers();
            ExpertExecutor ex = new ExpertExecutor(w, k, 1, 4096);
            ExpertExecutor.Exchange[] exs = new ExpertExecutor.Exchange[exchanges];
            CombineWriter[] outs = new CombineWriter[exchanges];
            for (int x = 0; x < exchanges; x++) {
                exs[x] = ex.newExchange();
                outs[x] = new CombineWriter(new Discard());
            }
            RuntimeException[] failed = new RuntimeException[exchanges];
            float[] act = new float[d];
            byte[] codes = new byte[d];
            int[] exps = new int[(d + 127) / 128];
            byte[] scales = new byte[exps.length];
            int[] chosen = new int[topK];
            List<Double> ratios = new ArrayList<>();
            double togetherMs = 0;
            double aloneMs = 0;
            int warm = rounds / 4;
            for (int round = 0; round < rounds; round++) {
                int layer = round % layers;
                List<List<byte[]>> messages = new ArrayList<>();
                for (int x = 0; x < exchanges; x++) {
                    Capture cap = new Capture();
                    DispatchWriter dw = new DispatchWriter(cap);
                    dw.begin(0, x + 1, round, layer, 0, 0, d, topK, tokens);
                    for (int t = 0; t < tokens; t++) {
                        for (int i = 0; i < d; i++) {
                            act[i] = (float) r.nextGaussian();
                        }
                        QuantSim.fp8Quantize(act, 0, d, 128, codes, 0, exps, 0);
                        for (int i = 0; i < exps.length; i++) {
                            scales[i] = (byte) exps[i];
                        }
                        dw.row(t, topK);
                        for (int s = 0; s < topK; s++) {
                            int e;
                            do {
                                e = r.nextInt(experts);
                            } while (contains(chosen, s, e));
                            chosen[s] = e;
                            dw.slot(e, s, 1.0 / topK);
                        }
                        dw.activation(codes, 0, scales, 0);
                    }
                    dw.end();
                    messages.add(cap.messages);
                }
                long alone = 0;
                long together = 0;
                for (int half = 0; half < 2; half++) {
                    boolean merged = (half == 0) == (round % 2 == 0); // alternate which runs first
                    for (int x = 0; x < exchanges; x++) {
                        append(ex, exs[x], messages.get(x));
                    }
                    long t0 = System.nanoTime();
                    if (merged) {
                        ex.execute(exs, outs, exchanges, 9, failed);
                    } else {
                        for (int x = 0; x < exchanges; x++) {
                            ex.execute(exs[x], 9, outs[x]);
                        }
                    }
                    long dt = System.nanoTime() - t0;
                    if (merged) {
                        together = dt;
                    } else {
                        alone = dt;
                    }
                }
                if (round >= warm) {
                    ratios.add((double) together / alone);
                    togetherMs += together / 1e6;
                    aloneMs += alone / 1e6;
                }
            }
            double[] q = ratios.stream().mapToDouble(Double::doubleValue).sorted().toArray();
            int n = q.length;
            System.out.printf(Locale.ROOT, "%s, %s kernels, %d thread(s): %d exchanges of %d tokens (top-%d of %d"
                            + " experts, uniform), layers cycled, %d rounds after %d of warm-up%n", model, kernels,
                    threads, exchanges, tokens, topK, experts, n, warm);
            System.out.printf(Locale.ROOT, "together / one by one: median %.3f [IQR %.3f-%.3f]; mean per round %.2f"
                    + " ms together, %.2f ms one by one%n", q[n / 2], q[n / 4], q[3 * n / 4], togetherMs / n,
                    aloneMs / n);
        }
    }

    private static boolean contains(int[] a, int n, int v) {
        return Arrays.stream(a, 0, n).anyMatch(e -> e == v);
    }

    private static void append(ExpertExecutor ex, ExpertExecutor.Exchange into, List<byte[]> messages) {
        WireDecoder decoder = new WireDecoder();
        for (byte[] m : messages) {
            decoder.decode(new UnsafeBuffer(m), 0, m.length, new WireHandler() {
                @Override
                public void onDispatch(DispatchDecoder dispatch) {
                    ex.append(into, dispatch);
                }
            });
        }
    }
}
