package io.epserve.loadgen;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.epserve.proto.v1.GenerateRequest;
import io.epserve.proto.v1.TokenIds;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;

/**
 * SGLang's {@code generated-shared-prefix} workload: groups of prompts that share a long system prompt, each followed
 * by its own short question (random token ids), all in a seeded random order. The run has groups x prompts-per-group
 * requests, whatever {@code --num-prompts} says (as in SGLang).
 */
public final class SharedPrefixDataset implements Dataset {
    private final int groups;
    private final int promptsPerGroup;
    private final int systemPromptLen;
    private final int questionLen;
    private final int outputLen;

    public SharedPrefixDataset(int groups, int promptsPerGroup, int systemPromptLen, int questionLen, int outputLen) {
        if (groups < 1 || promptsPerGroup < 1 || systemPromptLen < 0 || questionLen < 1 || outputLen < 1) {
            throw new IllegalArgumentException("--gsp-num-groups, --gsp-prompts-per-group, --gsp-question-len and"
                    + " --gsp-output-len must be >= 1, --gsp-system-prompt-len >= 0");
        }
        this.groups = groups;
        this.promptsPerGroup = promptsPerGroup;
        this.systemPromptLen = systemPromptLen;
        this.questionLen = questionLen;
        this.outputLen = outputLen;
    }

    /** The number of requests a run has. */
    public int size() {
        return groups * promptsPerGroup;
    }

    @Override
    public String name() {
        return "generated-shared-prefix";
    }

    @Override
    public ObjectNode describe() {
        return JsonNodeFactory.instance.objectNode().put("name", name()).put("gsp_num_groups", groups)
                .put("gsp_prompts_per_group", promptsPerGroup).put("gsp_system_prompt_len", systemPromptLen)
                .put("gsp_question_len", questionLen).put("gsp_output_len", outputLen);
    }

    @Override
    public List<BenchRequest> sample(int n, long seed, Context c) {
        SplittableRandom rng = new SplittableRandom(seed);
        List<BenchRequest> out = new ArrayList<>(size());
        for (int g = 0; g < groups; g++) {
            int[] system = RandomDataset.randomTokens(rng, systemPromptLen, c.vocabSize());
            for (int q = 0; q < promptsPerGroup; q++) {
                TokenIds.Builder ids = TokenIds.newBuilder();
                for (int t : system) {
                    ids.addIds(t);
                }
                for (int t : RandomDataset.randomTokens(rng, questionLen, c.vocabSize())) {
                    ids.addIds(t);
                }
                GenerateRequest r = GenerateRequest.newBuilder().setModel(c.modelId()).setTokenIds(ids)
                        .setSampling(c.sampling().toBuilder().setMaxTokens(outputLen)).build();
                out.add(BenchRequest.generate(r, systemPromptLen + questionLen));
            }
        }
        Collections.shuffle(out, new Random(seed));
        return out;
    }
}
