package io.epserve.loadgen;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.epserve.proto.v1.GenerateRequest;
import io.epserve.proto.v1.TokenIds;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * vLLM's {@code random} dataset: prompts of random token ids, sent as ids so that their length is exact. Input and
 * output lengths are drawn uniformly from [len x (1 - range ratio), len x (1 + range ratio)]; an optional prefix of
 * random tokens is shared by every prompt (and counts towards its input length).
 */
public final class RandomDataset implements Dataset {
    private final int inputLen;
    private final int outputLen;
    private final double rangeRatio;
    private final int prefixLen;

    public RandomDataset(int inputLen, int outputLen, double rangeRatio, int prefixLen) {
        if (inputLen < 1 || outputLen < 1) {
            throw new IllegalArgumentException("--random-input-len and --random-output-len must be >= 1");
        }
        if (!(rangeRatio >= 0 && rangeRatio < 1)) {
            throw new IllegalArgumentException("--random-range-ratio must be in [0, 1), got " + rangeRatio);
        }
        if (prefixLen < 0) {
            throw new IllegalArgumentException("--random-prefix-len must be >= 0");
        }
        this.inputLen = inputLen;
        this.outputLen = outputLen;
        this.rangeRatio = rangeRatio;
        this.prefixLen = prefixLen;
    }

    @Override
    public String name() {
        return "random";
    }

    @Override
    public ObjectNode describe() {
        return JsonNodeFactory.instance.objectNode().put("name", name()).put("random_input_len", inputLen)
                .put("random_output_len", outputLen).put("random_range_ratio", rangeRatio)
                .put("random_prefix_len", prefixLen);
    }

    @Override
    public List<BenchRequest> sample(int n, long seed, Context c) {
        SplittableRandom rng = new SplittableRandom(seed);
        int[] prefix = randomTokens(rng, prefixLen, c.vocabSize());
        List<BenchRequest> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            int in = Math.max(1, draw(rng, inputLen));
            int outLen = Math.max(1, draw(rng, outputLen));
            TokenIds.Builder ids = TokenIds.newBuilder();
            for (int t : prefix) {
                ids.addIds(t);
            }
            for (int t : randomTokens(rng, in, c.vocabSize())) {
                ids.addIds(t);
            }
            GenerateRequest r = GenerateRequest.newBuilder().setModel(c.modelId()).setTokenIds(ids)
                    .setSampling(c.sampling().toBuilder().setMaxTokens(outLen)).build();
            out.add(BenchRequest.generate(r, prefixLen + in));
        }
        return out;
    }

    private int draw(SplittableRandom rng, int len) {
        int lo = (int) (len * (1 - rangeRatio));
        int hi = (int) (len * (1 + rangeRatio));
        return lo >= hi ? len : rng.nextInt(lo, hi + 1);
    }

    static int[] randomTokens(SplittableRandom rng, int n, int vocab) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = rng.nextInt(vocab);
        }
        return t;
    }
}
