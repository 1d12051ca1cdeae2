package io.epserve.loadgen;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.epserve.proto.v1.InferenceGrpc;
import io.epserve.proto.v1.ListModelsRequest;
import io.epserve.proto.v1.ListModelsResponse;
import io.epserve.proto.v1.Model;
import io.epserve.proto.v1.SamplingParams;
import io.epserve.proto.v1.TokenizeRequest;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.io.PrintStream;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One load test against a running server of the epserve.v1 API: asks the server for its model (a ready check that
 * fails fast on a wrong address), makes the workload, sends the warm-ups, scrapes the servers' /metrics, runs the
 * measured requests, scrapes again and returns the result object of RESULT.md. A sweep repeats that per load point.
 */
public final class Bench {
    /** Everything a run needs (the command line's flags). */
    public static final class Options {
        public String target = "127.0.0.1:50051";
        public String label;
        /** The model id the requests name; null: the first model the server lists. */
        public String modelId;
        public Dataset dataset;
        public int numPrompts = 100;
        public double requestRate = Double.POSITIVE_INFINITY;
        public double burstiness = 1.0;
        public Integer maxConcurrency;
        public ArrivalSchedule.RampUp rampUp = ArrivalSchedule.RampUp.NONE;
        public double rampUpStartRps;
        public double rampUpEndRps;
        public int numWarmups;
        public long seed;
        public boolean ignoreEos;
        public double temperature;
        public Double topP;
        public Map<String, Double> goodput = new LinkedHashMap<>();
        public List<String> percentileMetrics = BenchResult.METRICS;
        public double[] percentiles = {50, 90, 95, 99};
        public boolean saveDetailed;
        /** /metrics endpoints to scrape; null: ask the router's admin API; empty: none. */
        public List<ServerView.Endpoint> metricsEndpoints;
        /** The fraction of requests the client cancels after {@link #cancelAfterTokens} tokens (abort path). */
        public double cancelFraction;
        public int cancelAfterTokens = 1;
        public Duration requestTimeout = Duration.ofMinutes(10);
        public Duration maxDuration = Duration.ofHours(1);
        public Duration connectTimeout = Duration.ofSeconds(30);
    }

    /** The server could not be reached or asked (exit code 1 of the command, with this message). */
    public static final class UnreachableException extends Exception {
        UnreachableException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private Bench() {
    }

    /** One run. */
    public static ObjectNode run(Options o, PrintStream progress) throws IOException, InterruptedException,
            UnreachableException {
        ManagedChannel ch = ManagedChannelBuilder.forTarget(o.target).usePlaintext().build();
        try {
            return measure(ch, o, prepare(ch, o), o.requestRate, o.maxConcurrency, progress, "");
        } finally {
            ch.shutdownNow();
            ch.awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    /**
     * A sweep: one run per value of the request rate (variable {@code request_rate}) or of the concurrency cap
     * ({@code max_concurrency}), each with the same workload and a fresh scrape.
     */
    public static ObjectNode sweep(Options o, String variable, double[] values, PrintStream progress)
            throws IOException, InterruptedException, UnreachableException {
        if (!variable.equals("request_rate") && !variable.equals("max_concurrency")) {
            throw new IllegalArgumentException("a sweep varies request_rate or max_concurrency, not " + variable);
        }
        ObjectNode out = JsonNodeFactory.instance.objectNode();
        ObjectNode sw = out.putObject("sweep");
        sw.put("variable", variable);
        ArrayNode vs = sw.putArray("values");
        ArrayNode runs = out.putArray("runs");
        ManagedChannel ch = ManagedChannelBuilder.forTarget(o.target).usePlaintext().build();
        try {
            // One workload for every point (sampled once: a sharegpt file is tokenised once), so that only the
            // load differs between them.
            Workload w = prepare(ch, o);
            boolean byRate = variable.equals("request_rate");
            for (int i = 0; i < values.length; i++) {
                double v = values[i];
                if (byRate) {
                    vs.add(Double.isInfinite(v) ? JsonNodeFactory.instance.textNode("inf")
                            : JsonNodeFactory.instance.numberNode(v));
                } else {
                    vs.add((int) v);
                }
                String point = String.format(Locale.ROOT, "%s=%s (%d/%d) ", variable,
                        Double.isInfinite(v) ? "inf" : BenchResult.percentileWord(v), i + 1, values.length);
                runs.add(measure(ch, o, w, byRate ? v : o.requestRate, byRate ? o.maxConcurrency : Integer.valueOf((int) v),
                        progress, point));
            }
        } finally {
            ch.shutdownNow();
            ch.awaitTermination(5, TimeUnit.SECONDS);
        }
        return out;
    }

    /** The served model and the requests of a run. */
    private record Workload(Model model, List<BenchRequest> requests) {}

    /** Asks the server for its model (the ready check) and makes the workload. */
    private static Workload prepare(ManagedChannel ch, Options o) throws IOException, UnreachableException {
        InferenceGrpc.InferenceBlockingStub api = InferenceGrpc.newBlockingStub(ch);
        ListModelsResponse models;
        try {
            models = api.withDeadlineAfter(o.connectTimeout.toMillis(), TimeUnit.MILLISECONDS)
                    .withWaitForReady().listModels(ListModelsRequest.getDefaultInstance());
        } catch (StatusRuntimeException e) {
            throw new UnreachableException("no epserve.v1 server answered at " + o.target + " within "
                    + o.connectTimeout.toSeconds() + " s: " + e.getStatus().getCode()
                    + (e.getStatus().getDescription() == null ? "" : " (" + e.getStatus().getDescription() + ")"), e);
        }
        if (models.getModelsCount() == 0) {
            throw new UnreachableException("the server at " + o.target + " lists no model", null);
        }
        var model = o.modelId == null ? models.getModels(0) : models.getModelsList().stream()
                .filter(m -> m.getId().equals(o.modelId)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("--model " + o.modelId + ": the server at " + o.target
                        + " serves " + models.getModelsList().stream().map(m -> m.getId()).toList()));
        SamplingParams.Builder sampling = SamplingParams.newBuilder().setTemperature((float) o.temperature)
                .setIgnoreEos(o.ignoreEos).setSeed(o.seed);
        if (o.topP != null) {
            sampling.setTopP(o.topP.floatValue());
        }
        Dataset.Context ctx = new Dataset.Context(model.getId(), model.getVocabSize(), model.getContextLength(),
                sampling.build(), text -> api.withDeadlineAfter(30, TimeUnit.SECONDS)
                        .tokenize(TokenizeRequest.newBuilder().setModel(model.getId()).setText(text).build())
                        .getTokenIdsCount());
        List<BenchRequest> requests = o.dataset.sample(o.numPrompts, o.seed, ctx);
        if (requests.isEmpty()) {
            throw new IllegalArgumentException("the workload has no request (--num-prompts 0?)");
        }
        return new Workload(model, requests);
    }

    /** One measured run of the workload at a request rate and concurrency cap. */
    private static ObjectNode measure(ManagedChannel ch, Options o, Workload w, double requestRate,
                                      Integer maxConcurrency, PrintStream progress, String point)
            throws InterruptedException {
        List<BenchRequest> requests = w.requests();
        LoadRunner.Settings measured = new LoadRunner.Settings(ArrivalSchedule.offsets(requests.size(), requestRate,
                o.burstiness, o.rampUp, o.rampUpStartRps, o.rampUpEndRps, o.seed),
                maxConcurrency == null ? 0 : maxConcurrency, o.requestTimeout, o.maxDuration,
                cancellations(requests.size(), o));
        if (o.numWarmups > 0) {
            // As vLLM: the workload's first request, numWarmups times, under the same concurrency cap.
            LoadRunner.Settings warm = new LoadRunner.Settings(new double[o.numWarmups], measured.maxConcurrency(),
                    o.requestTimeout, o.maxDuration);
            LoadRunner.run(ch, Collections.nCopies(o.numWarmups, requests.get(0)), warm, progress,
                    point + "warm-up ");
        }
        List<ServerView.Endpoint> endpoints = o.metricsEndpoints;
        if (endpoints == null) {
            try {
                endpoints = ServerView.discover(ch, Duration.ofSeconds(10));
            } catch (StatusRuntimeException e) {
                // The run is worth having without the server's view; say why it is missing.
                System.err.println("epserve bench: no server-side view (the admin API's Status failed: "
                        + e.getStatus().getCode() + "); name the endpoints with --metrics-url");
                endpoints = List.of();
            }
        }
        ServerView.Snapshot before = endpoints.isEmpty() ? null : ServerView.scrape(endpoints);
        String date = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
        LoadRunner.Run run = LoadRunner.run(ch, requests, measured, progress, point);
        JsonNode server = before == null ? null : ServerView.delta(before, ServerView.scrape(endpoints));
        String backend = requests.get(0).isChat() ? "epserve-grpc-chat" : "epserve-grpc";
        BenchResult.Info info = new BenchResult.Info(date, backend, o.label == null ? backend : o.label,
                w.model().getId(), o.target, requestRate, o.burstiness, maxConcurrency, o.dataset.describe(), o.seed,
                o.ignoreEos, o.numWarmups, o.goodput, o.percentileMetrics, o.percentiles, o.saveDetailed);
        return BenchResult.build(run, requests, info, server);
    }

    /** Which requests the client cancels, and after how many tokens: a seeded choice of cancelFraction of them. */
    static int[] cancellations(int n, Options o) {
        if (o.cancelFraction <= 0) {
            return null;
        }
        java.util.SplittableRandom rng = new java.util.SplittableRandom(o.seed ^ 0x5DEECE66DL);
        int[] after = new int[n];
        for (int i = 0; i < n; i++) {
            after[i] = rng.nextDouble() < o.cancelFraction ? o.cancelAfterTokens : 0;
        }
        return after;
    }

    /** vLLM's result table, plus the failure reasons and the server-side headline figures. */
    public static void printSummary(JsonNode r, PrintStream out) {
        out.println(center(" Serving Benchmark Result ", '='));
        row(out, "Successful requests:", r.path("completed").asText());
        row(out, "Failed requests:", r.path("failed").asText());
        if (!r.path("max_concurrency").isNull() && r.has("max_concurrency")) {
            row(out, "Maximum request concurrency:", r.path("max_concurrency").asText());
        }
        if (r.path("request_rate").isNumber()) {
            row(out, "Request rate configured (RPS):", f2(r.path("request_rate").asDouble()));
        }
        row(out, "Benchmark duration (s):", f2(r.path("duration").asDouble()));
        row(out, "Total input tokens:", r.path("total_input_tokens").asText());
        row(out, "Total generated tokens:", r.path("total_output_tokens").asText());
        row(out, "Request throughput (req/s):", f2(r.path("request_throughput").asDouble()));
        if (r.path("request_goodput").isNumber()) {
            row(out, "Request goodput (req/s):", f2(r.path("request_goodput").asDouble()));
        }
        row(out, "Output token throughput (tok/s):", f2(r.path("output_throughput").asDouble()));
        row(out, "Peak output token throughput (tok/s):", f2(r.path("max_output_tokens_per_s").asDouble()));
        row(out, "Peak concurrent requests:", f2(r.path("max_concurrent_requests").asDouble()));
        row(out, "Total token throughput (tok/s):", f2(r.path("total_token_throughput").asDouble()));
        String[][] names = {{"ttft", "TTFT", "Time to First Token"},
            {"tpot", "TPOT", "Time per Output Token (excl. 1st token)"}, {"itl", "ITL", "Inter-token Latency"},
            {"e2el", "E2EL", "End-to-end Latency"}};
        for (String[] m : names) {
            if (!r.has("mean_" + m[0] + "_ms")) {
                continue;
            }
            out.println(center(m[2], '-'));
            row(out, "Mean " + m[1] + " (ms):", f2(r.path("mean_" + m[0] + "_ms").asDouble()));
            row(out, "Median " + m[1] + " (ms):", f2(r.path("median_" + m[0] + "_ms").asDouble()));
            List<String> keys = new ArrayList<>();
            r.fieldNames().forEachRemaining(keys::add);
            for (String k : keys) {
                if (k.matches("p[0-9.]+_" + m[0] + "_ms")) {
                    row(out, "P" + k.substring(1, k.indexOf('_')) + " " + m[1] + " (ms):", f2(r.path(k).asDouble()));
                }
            }
        }
        JsonNode reasons = r.path("epserve").path("failures").path("reasons");
        if (reasons.size() > 0) {
            out.println(center("Failures", '-'));
            reasons.fields().forEachRemaining(e -> out.printf(Locale.ROOT, "%6d  %s%n", e.getValue().asInt(),
                    e.getKey()));
        }
        JsonNode s = r.path("epserve").path("server");
        if (s.isObject()) {
            out.println(center("Server side", '-'));
            hist(out, "Queue time at the attention worker (ms):", s.path("queue_ms"));
            hist(out, "Prefill step (ms):", s.path("prefill_step_ms"));
            hist(out, "Decode step (ms):", s.path("decode_step_ms"));
            if (s.path("decode_batch_mean").isNumber()) {
                row(out, "Mean decode batch (tokens/step):", f2(s.path("decode_batch_mean").asDouble()));
            }
            JsonNode ts = s.path("time_split");
            if (ts.path("step").asDouble() > 0) {
                row(out, "Exposed communication (of step time):",
                        String.format(Locale.ROOT, "%.1f %%", 100 * ts.path("exposed_communication_fraction").asDouble()));
            }
            JsonNode load = s.path("expert_load");
            if (load.isObject() && load.has("balance_mean")) {
                row(out, "Expert balance (mean/max per layer):", String.format(Locale.ROOT, "%.3f",
                        load.path("balance_mean").asDouble()));
            }
        }
        out.println("=".repeat(50));
    }

    private static void hist(PrintStream out, String name, JsonNode h) {
        if (h.path("count").asLong() > 0) {
            row(out, name, String.format(Locale.ROOT, "mean %.2f  p50 %.2f  p99 %.2f  (n=%d)", h.path("mean")
                    .asDouble(), h.path("p50").asDouble(), h.path("p99").asDouble(), h.path("count").asLong()));
        }
    }

    private static String center(String s, char c) {
        int pad = Math.max(0, 50 - s.length());
        return String.valueOf(c).repeat(pad / 2) + s + String.valueOf(c).repeat(pad - pad / 2);
    }

    private static void row(PrintStream out, String k, String v) {
        out.printf(Locale.ROOT, "%-40s %-10s%n", k, v);
    }

    private static String f2(double v) {
        return String.format(Locale.ROOT, "%.2f", v);
    }
}
