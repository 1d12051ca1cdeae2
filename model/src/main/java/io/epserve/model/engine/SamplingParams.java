package io.epserve.model.engine;

/**
 * How the next token is chosen, as OpenAI/vLLM clients expect: penalties over the raw logits, then temperature,
 * top-k, top-p and min-p; temperature 0 is greedy. {@link #validate} names the first bad field.
 *
 * @param temperature >= 0; 0 is greedy
 * @param topP in (0, 1]
 * @param topK 0 (off) or the number of most likely tokens kept
 * @param minP in [0, 1): tokens below minP x the top probability are dropped
 * @param seed the seed of this sequence's random draws
 * @param repetitionPenalty > 0 (1 = off): logits of tokens in the prompt or output are divided (if positive) or
 *     multiplied (if negative) by it
 * @param presencePenalty in [-2, 2], subtracted once from the logit of every token already in the output
 * @param frequencyPenalty in [-2, 2], subtracted per occurrence in the output
 */
public record SamplingParams(double temperature, double topP, int topK, double minP, long seed,
                             double repetitionPenalty, double presencePenalty, double frequencyPenalty) {

    public static SamplingParams greedy() {
        return new SamplingParams(0, 1, 0, 0, 0, 1, 0, 0);
    }

    /** Throws IllegalArgumentException naming the first field out of its range. */
    public SamplingParams validate(int vocab) {
        if (!(temperature >= 0) || Double.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be >= 0, got " + temperature);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top_p must be in (0, 1], got " + topP);
        }
        if (topK < 0 || topK > vocab) {
            throw new IllegalArgumentException("top_k must be in [0, " + vocab + "], got " + topK);
        }
        if (!(minP >= 0 && minP < 1)) {
            throw new IllegalArgumentException("min_p must be in [0, 1), got " + minP);
        }
        if (!(repetitionPenalty > 0) || Double.isInfinite(repetitionPenalty)) {
            throw new IllegalArgumentException("repetition_penalty must be > 0, got " + repetitionPenalty);
        }
        if (!(presencePenalty >= -2 && presencePenalty <= 2)) {
            throw new IllegalArgumentException("presence_penalty must be in [-2, 2], got " + presencePenalty);
        }
        if (!(frequencyPenalty >= -2 && frequencyPenalty <= 2)) {
            throw new IllegalArgumentException("frequency_penalty must be in [-2, 2], got " + frequencyPenalty);
        }
        return this;
    }
}
