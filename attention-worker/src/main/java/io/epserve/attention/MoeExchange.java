package io.epserve.attention;

import io.epserve.model.engine.Transformer;
import io.epserve.model.format.QuantSim;
import io.epserve.transport.DispatchWriter;
import io.epserve.transport.TransportException;
import java.util.Arrays;
import java.util.List;

/**
 * The routed experts of one micro-batch at one layer, done remotely: sends each expert worker the rows that have
 * slots there (FP8 codes and power-of-two exponents, computed once per token), collects the expert outputs that come
 * back in any order and any number of waves, and adds them to the pass's float64 sums in ascending expert id — the
 * order of the single-process engine — so the result does not depend on placement, waves or timing.
 *
 * <p>Buffers grow to the largest micro-batch seen and are reused; nothing is allocated per layer after that.
 */
final class MoeExchange {
    final int microBatch;
    private final int d;
    private final int k;
    private final int scaleCount;

    // The exchange in flight.
    long step = -1;
    int layer = -1;
    /** The placement epoch of the last (re)send. */
    long epoch;
    boolean open;
    int tokens;
    int pending;
    long sentNs;
    long deadlineNs;
    String failure;
    private int[] pendingPerLink = new int[0];

    private int[] experts = new int[0];
    private double[] weights = new double[0];
    private int[] ownerOf = new int[0];
    private boolean[] got = new boolean[0];
    private float[] out = new float[0];
    private byte[] codes = new byte[0];
    private byte[] scales = new byte[0];
    private int[] exps = new int[0];
    private final int[] order;

    MoeExchange(int microBatch, int hiddenDim, int topK) {
        this.microBatch = microBatch;
        this.d = hiddenDim;
        this.k = topK;
        this.scaleCount = (hiddenDim + 127) / 128;
        this.order = new int[topK];
    }

    private void ensure(int T, int links) {
        if (experts.length < T * k) {
            if (open) {
                throw new IllegalStateException("an exchange in flight cannot grow its buffers");
            }
            int n = Math.max(T * k, experts.length * 2);
            experts = new int[n];
            weights = new double[n];
            ownerOf = new int[n];
            got = new boolean[n];
            out = new float[n * d];
            int rows = n / k;
            codes = new byte[rows * d];
            scales = new byte[rows * scaleCount];
            exps = new int[rows * scaleCount];
        }
        if (pendingPerLink.length < links) {
            pendingPerLink = new int[links];
        }
    }

    /**
     * Sends the pass's current layer to the expert workers of {@code map}; returns the dispatch bytes handed to Aeron.
     * Counts each routed slot in {@code load} [layer][expert]. Throws {@link ExpertsUnavailableException} when a
     * needed worker is lost or a send times out.
     */
    long send(int source, long step, Transformer.Pass p, ExpertMap map, List<ExpertLink> links, long timeoutNs,
              long[][] load) {
        int T = p.tokens();
        int layer = p.layer();
        Transformer.Routing rt = p.routing();
        if (rt.perToken() != k) {
            throw new IllegalStateException("routing has " + rt.perToken() + " experts per token, expected " + k);
        }
        ensure(T, links.size());
        this.step = step;
        this.layer = layer;
        this.tokens = T;
        this.failure = null;
        long[] layerLoad = load[layer];
        for (int i = 0; i < T * k; i++) {
            experts[i] = rt.experts()[i];
            weights[i] = rt.weights()[i];
            got[i] = false;
            layerLoad[experts[i]]++;
        }
        pending = T * k;
        float[] x = p.ffnInput();
        for (int t = 0; t < T; t++) {
            QuantSim.fp8Quantize(x, t * d, d, 128, codes, t * d, exps, t * scaleCount);
        }
        for (int i = 0; i < T * scaleCount; i++) {
            scales[i] = (byte) exps[i];
        }
        return route(source, map, links, timeoutNs);
    }

    /**
     * Sends again, under {@code map} (a newer placement), the slots whose outputs have not arrived — the failover of
     * an exchange whose expert worker died. Outputs already received are kept, so each slot is still summed once.
     */
    long resend(int source, ExpertMap map, List<ExpertLink> links, long timeoutNs) {
        ensure(tokens, links.size());
        failure = null;
        return route(source, map, links, timeoutNs);
    }

    private long route(int source, ExpertMap map, List<ExpertLink> links, long timeoutNs) {
        int T = tokens;
        Arrays.fill(pendingPerLink, 0);
        for (int i = 0; i < T * k; i++) {
            if (!got[i]) {
                int owner = map.owner(layer, experts[i], i / k);
                ownerOf[i] = owner;
                pendingPerLink[owner]++;
            }
        }
        epoch = map.epoch;
        open = true;
        sentNs = System.nanoTime();
        deadlineNs = sentNs + timeoutNs;
        long bytes = 0;
        for (ExpertLink link : links) {
            if (pendingPerLink[link.index] == 0) {
                continue;
            }
            if (link.lost != null) {
                open = false;
                throw new ExpertsUnavailableException(link.name() + " is lost (" + link.lost + "); it serves experts "
                        + "of layer " + layer + " that step " + step + " needs");
            }
            int rows = 0;
            for (int t = 0; t < T; t++) {
                if (slotsOn(t, link.index) > 0) {
                    rows++;
                }
            }
            long before = link.sender.bytes();
            DispatchWriter w = link.dispatch;
            try {
                w.begin(epoch, source, step, layer, microBatch, 0, d, k, rows);
                for (int t = 0; t < T; t++) {
                    int n = slotsOn(t, link.index);
                    if (n == 0) {
                        continue;
                    }
                    w.row(t, n);
                    for (int s = 0; s < k; s++) {
                        int i = t * k + s;
                        if (!got[i] && ownerOf[i] == link.index) {
                            w.slot(experts[i], s, weights[i]);
                        }
                    }
                    w.activation(codes, t * d, scales, t * scaleCount);
                }
                w.end();
            } catch (TransportException e) {
                open = false;
                link.lost = "a dispatch could not be sent: " + e.getMessage();
                throw new ExpertsUnavailableException(link.name() + ": " + link.lost, e);
            }
            bytes += link.sender.bytes() - before;
        }
        return bytes;
    }

    /** Slots of token t still awaited from link. */
    private int slotsOn(int t, int link) {
        int n = 0;
        for (int s = 0; s < k; s++) {
            if (!got[t * k + s] && ownerOf[t * k + s] == link) {
                n++;
            }
        }
        return n;
    }

    boolean matches(long step, int layer) {
        return open && this.step == step && this.layer == layer;
    }

    /**
     * One expert output row from link {@code linkIndex}: bf16 little-endian bytes. Returns null when accepted, else
     * why the row is a protocol violation (the caller fails the exchange).
     */
    String accept(int linkIndex, int token, int expert, int slot, byte[] bf16) {
        if (token < 0 || token >= tokens || slot < 0 || slot >= k) {
            return "combine row for token " + token + " slot " + slot + " outside the dispatched " + tokens + " x " + k;
        }
        int i = token * k + slot;
        if (experts[i] != expert || ownerOf[i] != linkIndex) {
            return "combine row for token " + token + " slot " + slot + " names expert " + expert
                    + ", which was not dispatched there";
        }
        if (got[i]) {
            return "duplicate combine row for token " + token + " slot " + slot + " (expert " + expert + ")";
        }
        got[i] = true;
        int o = i * d;
        for (int j = 0; j < d; j++) {
            int bits = (bf16[2 * j] & 0xff) | (bf16[2 * j + 1] & 0xff) << 8;
            out[o + j] = Float.intBitsToFloat(bits << 16);
        }
        pending--;
        pendingPerLink[linkIndex]--;
        return null;
    }

    boolean complete() {
        return open && pending == 0 && failure == null;
    }

    int pendingOn(int linkIndex) {
        return linkIndex < pendingPerLink.length ? pendingPerLink[linkIndex] : 0;
    }

    void fail(String why) {
        if (open && failure == null) {
            failure = why;
        }
    }

    /** Adds every token's expert outputs to acc [T, D] in ascending expert id (then slot), and closes the exchange. */
    void sumInto(double[] acc) {
        for (int t = 0; t < tokens; t++) {
            int base = t * k;
            for (int s = 0; s < k; s++) {
                int j = s;
                while (j > 0 && experts[base + order[j - 1]] > experts[base + s]) {
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = s;
            }
            for (int q = 0; q < k; q++) {
                int o = (base + order[q]) * d;
                int a = t * d;
                for (int i = 0; i < d; i++) {
                    acc[a + i] += out[o + i];
                }
            }
        }
        open = false;
    }

    void close() {
        open = false;
    }
}
