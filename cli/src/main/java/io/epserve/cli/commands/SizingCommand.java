package io.epserve.cli.commands;

import io.epserve.model.checkpoint.RandomCheckpoint;
import io.epserve.model.checkpoint.SafetensorsWriter;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.CacheLayout;
import io.epserve.model.weights.ExpertWeights;
import io.epserve.transport.MediaDriverHandle;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "sizing", mixinStandardHelpOptions = true,
        description = {
            "Sizes a cluster from a model config alone: the checkpoint's tensors in the official layout (the routed"
                    + " experts' FP4 bytes per expert and the rest, which attention workers map), the share of experts"
                    + " each of --expert-workers maps, the compact KV cache per token and per sequence of --context"
                    + " tokens, and the memory of an expert-worker and an attention-worker pod.",
            "Pod memory = mapped weights (page cache: they must stay resident) + JVM heap + Aeron log buffers in"
                    + " /dev/shm + JVM overhead. The heaps and the overhead are estimates (printed); the rest is computed."
        })
public final class SizingCommand implements Callable<Integer> {
    static final long MIB = 1L << 20;
    static final long GIB = 1L << 30;
    /** Expert worker heap: dispatch scratch, bounded by --max-tokens-per-dispatch (an estimate). */
    public static final long EXPERT_HEAP = 2 * GIB;
    /** Attention worker heap beyond the KV budget: activations of a step, logits, requests (an estimate). */
    public static final long ATTENTION_WORKING_HEAP = 4 * GIB;
    /** Metaspace, code cache, thread stacks, direct buffers, Hazelcast, gRPC (an estimate). */
    public static final long JVM_OVERHEAD = 1 * GIB;
    /** Aeron per peer: an exclusive publication and an image, each 3 terms (48 MiB + 4 KiB each, measured). */
    public static final long AERON_PER_PEER = 2L * (3 * MediaDriverHandle.DEFAULT_TERM_LENGTH + 4096);
    /** The media driver's own files: cnc.dat (46 MiB, measured) and the loss report. */
    public static final long AERON_FIXED = 48 * MIB;

    @ArgGroup(exclusive = true, multiplicity = "1")
    CacheSizeCommand.Source source;

    @Option(names = "--expert-workers", defaultValue = "8", paramLabel = "N",
            description = "Expert workers sharing the routed experts. Default: ${DEFAULT-VALUE}.")
    int expertWorkers;

    @Option(names = "--attention-workers", defaultValue = "2", paramLabel = "N",
            description = "Attention workers (each is an Aeron peer of every expert worker). Default: ${DEFAULT-VALUE}.")
    int attentionWorkers;

    @Option(names = "--redundant-experts", defaultValue = "0", paramLabel = "R",
            description = "Extra expert slots per expert worker and layer (as the coordinator's flag). Default: ${DEFAULT-VALUE}.")
    int redundant;

    @Option(names = "--context", defaultValue = "131072", paramLabel = "TOKENS",
            description = "Tokens per sequence (prompt + generated) to size the KV cache for. Default: ${DEFAULT-VALUE}.")
    long context;

    @Option(names = "--sequences", defaultValue = "16", paramLabel = "S",
            description = "Sequences of --context tokens each attention worker holds at once. Default: ${DEFAULT-VALUE}.")
    int sequences;

    /** What a deployment of a model needs, in bytes. */
    public record Sizing(String model, ModelConfig config, int tensors, long checkpointBytes, int expertLayers,
                         long bytesPerExpert, long routedExpertBytes, long attentionWeightBytes, int expertWorkers,
                         int attentionWorkers, int redundant, int expertsPerWorkerLayer, long expertWorkerWeightBytes,
                         double kvBytesPerToken, long kvFixedBytes, long context, int sequences,
                         long kvBytesPerSequence, long kvBudgetBytes) {

        /** Aeron /dev/shm of an expert worker: one peer per attention worker. */
        public long expertShmBytes() {
            return AERON_FIXED + attentionWorkers * AERON_PER_PEER;
        }

        /** Aeron /dev/shm of an attention worker: one peer per expert worker. */
        public long attentionShmBytes() {
            return AERON_FIXED + expertWorkers * AERON_PER_PEER;
        }

        public long expertPodBytes() {
            return expertWorkerWeightBytes + EXPERT_HEAP + expertShmBytes() + JVM_OVERHEAD;
        }

        /** The attention worker's -Xmx: the KV budget (--kv-memory) and its working heap. */
        public long attentionHeapBytes() {
            return kvBudgetBytes + ATTENTION_WORKING_HEAP;
        }

        public long attentionPodBytes() {
            return attentionWeightBytes + attentionHeapBytes() + attentionShmBytes() + JVM_OVERHEAD;
        }

        // The values a manifest uses: the above rounded up (heaps and requests to GiB, /dev/shm to 128 MiB).

        /** The expert worker's /dev/shm (memory emptyDir) sizeLimit. */
        public long expertShmLimit() {
            return roundUp(expertShmBytes(), SHM_STEP);
        }

        public long expertMemoryRequest() {
            return roundUp(expertWorkerWeightBytes + EXPERT_HEAP + expertShmLimit() + JVM_OVERHEAD, GIB);
        }

        /**
         * The request plus a quarter of the weights: in a re-placement a worker maps its new experts before it
         * unmaps the old ones (page cache, reclaimable, but resident while both are in use).
         */
        public long expertMemoryLimit() {
            return roundUp(expertMemoryRequest() + expertWorkerWeightBytes / 4, GIB);
        }

        /** The attention worker's --kv-memory. */
        public long attentionKvMemory() {
            return roundUp(kvBudgetBytes, MIB);
        }

        /** The attention worker's -Xmx: --kv-memory and the working heap. */
        public long attentionHeap() {
            return roundUp(attentionKvMemory() + ATTENTION_WORKING_HEAP, GIB);
        }

        public long attentionShmLimit() {
            return roundUp(attentionShmBytes(), SHM_STEP);
        }

        /** Request and limit alike: nothing of an attention worker grows beyond its heap and its weights. */
        public long attentionMemoryRequest() {
            return roundUp(attentionWeightBytes + attentionHeap() + attentionShmLimit() + JVM_OVERHEAD, GIB);
        }
    }

    static final long SHM_STEP = 128 * MIB;

    static long roundUp(long bytes, long step) {
        return (bytes + step - 1) / step * step;
    }

    /** Sizes {@code c} for these workers and this KV budget. */
    public static Sizing of(String model, ModelConfig c, int expertWorkers, int attentionWorkers, int redundant,
                            long context, int sequences) {
        if (expertWorkers < 1 || attentionWorkers < 1 || redundant < 0 || context < 1 || sequences < 0) {
            throw new IllegalArgumentException("--expert-workers and --attention-workers must be at least 1,"
                    + " --context positive, --redundant-experts and --sequences not negative");
        }
        long total = 0;
        long routed = 0;
        int tensors = 0;
        for (SafetensorsWriter.Entry e : RandomCheckpoint.layout(c)) {
            total += e.byteSize();
            tensors++;
            if (e.name().contains(".ffn.experts.")) {
                routed += e.byteSize();
            }
        }
        int layers = ExpertWeights.layerCount(c);
        long experts = (long) layers * c.nRoutedExperts();
        if (routed % experts != 0) {
            throw new IllegalStateException("routed experts of unequal size: " + routed + " B over " + experts);
        }
        long perExpert = routed / experts;
        int perWorkerLayer = Math.min(c.nRoutedExperts(), ceilDiv(c.nRoutedExperts(), expertWorkers)) + redundant;
        CacheLayout l = CacheLayout.of(c);
        long perSequence = (long) Math.ceil(l.bytesFor(context));
        return new Sizing(model, c, tensors, total, layers, perExpert, routed, total - routed, expertWorkers,
                attentionWorkers, redundant, perWorkerLayer, perExpert * perWorkerLayer * layers, l.bytesPerToken(),
                l.fixedBytes(), context, sequences, perSequence, perSequence * sequences);
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    /** Bytes as a Kubernetes quantity, rounded up to whole GiB. */
    public static String gi(long bytes) {
        return ((bytes + GIB - 1) / GIB) + "Gi";
    }

    /** Bytes as a Kubernetes quantity in MiB, rounded up. */
    public static String mi(long bytes) {
        return ((bytes + MIB - 1) / MIB) + "Mi";
    }

    static String g(double bytes) {
        return String.format(Locale.ROOT, "%.2f GiB", bytes / GIB);
    }

    static String m(double bytes) {
        return String.format(Locale.ROOT, "%.2f MiB", bytes / MIB);
    }

    @Override
    public Integer call() {
        CacheSizeCommand.Named named;
        try {
            named = source.load();
        } catch (CliErrors.Failure f) {
            return f.exitCode;
        }
        ModelConfig c = named.config();
        String name = named.name();
        Sizing s;
        try {
            s = of(name, c, expertWorkers, attentionWorkers, redundant, context, sequences);
        } catch (IllegalArgumentException e) {
            return CliErrors.usage(e.getMessage());
        }
        var o = System.out;
        o.printf(Locale.ROOT, "%s: %d layers%s, %d routed experts per layer (top %d), hidden %d, expert inter %d%n",
                name, c.nLayers(), c.nMtpLayers() > 0 ? " + MTP block" : "", c.nRoutedExperts(),
                c.nActivatedExperts(), c.dim(), c.moeInterDim());
        o.printf(Locale.ROOT, "checkpoint: %s in %,d tensors (official layout)%n", g(s.checkpointBytes()), s.tensors());
        o.printf(Locale.ROOT, "  routed experts: %d layers x %d experts x %s = %s (FP4 w1, w2, w3 + E8M0 scales)%n",
                s.expertLayers(), c.nRoutedExperts(), m(s.bytesPerExpert()), g(s.routedExpertBytes()));
        o.printf(Locale.ROOT, "  everything else (each attention worker maps it): %s%n", g(s.attentionWeightBytes()));
        o.printf(Locale.ROOT, "KV cache: %.1f B per token + %s per sequence; %,d tokens: %s per sequence, x %d = %s"
                        + " (--kv-memory)%n", s.kvBytesPerToken(), m(s.kvFixedBytes()), s.context(),
                g(s.kvBytesPerSequence()), s.sequences(), g(s.kvBudgetBytes()));
        o.printf(Locale.ROOT, "expert worker (1 of %d): %d experts per layer%s x %d layers x %s = %s mapped%n",
                s.expertWorkers(), s.expertsPerWorkerLayer(),
                s.redundant() > 0 ? " (" + s.redundant() + " redundant)" : "", s.expertLayers(), m(s.bytesPerExpert()),
                g(s.expertWorkerWeightBytes()));
        o.printf(Locale.ROOT, "  pod memory %s = %s weights + %s heap (-Xmx) + %s Aeron /dev/shm (%d attention"
                        + " workers) + %s JVM overhead%n", g(s.expertPodBytes()), g(s.expertWorkerWeightBytes()),
                g(EXPERT_HEAP), g(s.expertShmBytes()), s.attentionWorkers(), g(JVM_OVERHEAD));
        o.printf(Locale.ROOT, "attention worker (1 of %d): %s weights mapped + %s heap (-Xmx: %s KV + %s working)%n",
                s.attentionWorkers(), g(s.attentionWeightBytes()), g(s.attentionHeapBytes()),
                g(s.kvBudgetBytes()), g(ATTENTION_WORKING_HEAP));
        o.printf(Locale.ROOT, "  pod memory %s = %s weights + %s heap + %s Aeron /dev/shm (%d expert workers) + %s JVM"
                        + " overhead%n", g(s.attentionPodBytes()), g(s.attentionWeightBytes()),
                g(s.attentionHeapBytes()), g(s.attentionShmBytes()), s.expertWorkers(), g(JVM_OVERHEAD));
        o.printf(Locale.ROOT, "cluster: %s of expert weights mapped (%d workers), %s of KV (%d attention workers)%n",
                g((double) s.expertWorkerWeightBytes() * s.expertWorkers()), s.expertWorkers(),
                g((double) s.kvBudgetBytes() * s.attentionWorkers()), s.attentionWorkers());
        o.printf(Locale.ROOT, "manifest values (rounded up; deploy/k8s overlays):%n");
        o.printf(Locale.ROOT, "  expert-worker:    replicas %d; JDK_JAVA_OPTIONS -Xmx%dg; /dev/shm sizeLimit %s;"
                        + " memory request %s, limit %s%n", s.expertWorkers(), EXPERT_HEAP / GIB,
                mi(s.expertShmLimit()), gi(s.expertMemoryRequest()), gi(s.expertMemoryLimit()));
        o.printf(Locale.ROOT, "  attention-worker: replicas %d; EPSERVE_KV_MEMORY %dm; JDK_JAVA_OPTIONS -Xmx%dg;"
                        + " /dev/shm sizeLimit %s; memory request and limit %s%n", s.attentionWorkers(),
                s.attentionKvMemory() / MIB, s.attentionHeap() / GIB, mi(s.attentionShmLimit()),
                gi(s.attentionMemoryRequest()));
        o.printf(Locale.ROOT, "  EPSERVE_REDUNDANT_EXPERTS %d%n", s.redundant());
        return 0;
    }
}
