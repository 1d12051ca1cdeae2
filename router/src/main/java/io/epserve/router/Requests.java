package io.epserve.router;

import io.epserve.proto.worker.v1.SamplingParams;

/** What Generate and Chat share: validation of the client's sampling parameters and their worker form. */
final class Requests {
    static final int DEFAULT_MAX_TOKENS = 256;

    private Requests() {
    }

    /** Why the request is invalid, or null. */
    static String problem(Router router, int[] prompt, io.epserve.proto.v1.SamplingParams s) {
        int vocab = router.config().vocabSize();
        if (prompt.length == 0) {
            return "the prompt is empty";
        }
        if (prompt.length >= router.config().maxPositionEmbeddings()) {
            return "the prompt has " + prompt.length + " tokens; the model's context is "
                    + router.config().maxPositionEmbeddings();
        }
        for (int t : prompt) {
            if (t < 0 || t >= vocab) {
                return "token id " + t + " is outside the vocabulary [0, " + vocab + ")";
            }
        }
        if (s.hasMaxTokens() && s.getMaxTokens() <= 0) {
            return "max_tokens must be > 0, got " + s.getMaxTokens();
        }
        if (s.hasTopP() && !(s.getTopP() > 0 && s.getTopP() <= 1)) {
            return "top_p must be in (0, 1], got " + s.getTopP();
        }
        if (!(s.getTemperature() >= 0) || Float.isInfinite(s.getTemperature())) {
            return "temperature must be >= 0, got " + s.getTemperature();
        }
        if (s.getTopK() < 0) {
            return "top_k must be >= 0, got " + s.getTopK();
        }
        if (s.getLogprobs() < 0 || s.getLogprobs() > 20) {
            return "logprobs must be in [0, 20], got " + s.getLogprobs();
        }
        for (String stop : s.getStopList()) {
            if (stop.isEmpty()) {
                return "a stop string is empty";
            }
        }
        return null;
    }

    static SamplingParams.Builder workerSampling(io.epserve.proto.v1.SamplingParams s) {
        SamplingParams.Builder w = SamplingParams.newBuilder()
                .setTemperature(s.getTemperature())
                .setTopP(s.hasTopP() ? s.getTopP() : 1)
                .setTopK(s.getTopK())
                .setMinP(s.getMinP())
                .setRepetitionPenalty(s.getRepetitionPenalty())
                .setPresencePenalty(s.getPresencePenalty())
                .setFrequencyPenalty(s.getFrequencyPenalty())
                .setMaxTokens(s.hasMaxTokens() ? s.getMaxTokens() : DEFAULT_MAX_TOKENS)
                .addAllStopTokenIds(s.getStopTokenIdsList())
                .setIgnoreEos(s.getIgnoreEos())
                .setLogprobs(s.getLogprobs());
        if (s.hasSeed()) {
            w.setSeed(s.getSeed());
        }
        return w;
    }
}
