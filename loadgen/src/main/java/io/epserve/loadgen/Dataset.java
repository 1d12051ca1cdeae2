package io.epserve.loadgen;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.epserve.proto.v1.SamplingParams;
import java.io.IOException;
import java.util.List;
import java.util.function.ToIntFunction;

/** A workload: the requests of a run, made reproducibly from a seed. */
public interface Dataset {
    /** What the requests are made for: the served model, the sampling every request starts from, a token counter. */
    record Context(String modelId, int vocabSize, int contextLength, SamplingParams sampling,
                   ToIntFunction<String> tokenCount) {}

    /** The dataset's name as the result file writes it. */
    String name();

    /** Its parameters for the result file ({@code epserve.dataset}). */
    ObjectNode describe();

    /** {@code n} requests (some datasets fix their own count: see their documentation). */
    List<BenchRequest> sample(int n, long seed, Context context) throws IOException;
}
