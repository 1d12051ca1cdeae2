package io.epserve.loadgen;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The result of a run as the JSON object of loadgen/RESULT.md: vLLM {@code bench serve}'s fields with its
 * definitions, the same figures under AIPerf's names, and epserve's own (failure reasons, timeline, server view).
 * Pure arithmetic over the outcomes, so the definitions are testable on streams with known timings.
 */
public final class BenchResult {
    /** The metrics that have percentiles, in vLLM's order. */
    public static final List<String> METRICS = List.of("ttft", "tpot", "itl", "e2el");
    private static final double[] AIPERF_PERCENTILES = {1, 5, 10, 25, 50, 75, 90, 95, 99};
    private static final int CDF_POINTS = 2_000;
    private static final int MAX_REASONS = 50;

    /** How the run was set up (what the result file repeats). */
    public record Info(String date, String backend, String label, String modelId, String target, double requestRate,
                       double burstiness, Integer maxConcurrency, ObjectNode dataset, long seed, boolean ignoreEos,
                       int numWarmups, Map<String, Double> goodput, List<String> percentileMetrics,
                       double[] percentiles, boolean saveDetailed) {}

    private BenchResult() {
    }

    public static ObjectNode build(LoadRunner.Run run, List<BenchRequest> requests, Info info, JsonNode server) {
        JsonNodeFactory f = JsonNodeFactory.instance;
        List<RequestOutcome> all = run.outcomes();
        double dur = run.durationSeconds();
        List<Double> ttfts = new ArrayList<>();
        List<Double> tpots = new ArrayList<>();
        List<Double> allTpots = new ArrayList<>();
        List<Double> itls = new ArrayList<>();
        List<Double> e2els = new ArrayList<>();
        List<Double> ttsts = new ArrayList<>();
        List<Double> inLens = new ArrayList<>();
        List<Double> outLens = new ArrayList<>();
        List<Double> perUser = new ArrayList<>();
        List<Double> queue = new ArrayList<>();
        long totalIn = 0;
        long totalOut = 0;
        long serverOut = 0;
        int completed = 0;
        int good = 0;
        Map<String, Integer> reasons = new LinkedHashMap<>();
        Map<String, Integer> finish = new TreeMap<>();
        for (RequestOutcome o : all) {
            if (!o.success) {
                String key = reasons.size() < MAX_REASONS || reasons.containsKey(o.error) ? o.error : "(other reasons)";
                reasons.merge(key, 1, Integer::sum);
                continue;
            }
            completed++;
            int in = inputLen(o, requests.get(o.index));
            totalIn += in;
            totalOut += o.outputTokens;
            serverOut += Math.max(0, o.serverCompletionTokens);
            finish.merge(o.finishReason, 1, Integer::sum);
            inLens.add((double) in);
            outLens.add((double) o.outputTokens);
            double ttft = o.chunks == 0 ? 0.0 : o.ttft(); // as vLLM: no token, TTFT 0
            ttfts.add(ttft);
            e2els.add(o.latency());
            double tpot = 0;
            if (o.outputTokens > 1) {
                tpot = o.tpot();
                tpots.add(tpot);
                perUser.add(1.0 / tpot);
            }
            allTpots.add(tpot);
            for (double g : o.itl()) {
                itls.add(g);
            }
            if (o.chunks >= 2) {
                ttsts.add(o.ttst());
            }
            if (!Double.isNaN(o.serverQueueSeconds)) {
                queue.add(o.serverQueueSeconds);
            }
            if (meets(info.goodput(), ttft, tpot, o.latency())) {
                good++;
            }
        }
        ObjectNode r = f.objectNode();
        r.put("date", info.date());
        r.put("backend", info.backend());
        r.put("endpoint_type", info.backend());
        r.put("label", info.label());
        r.put("model_id", info.modelId());
        r.put("num_prompts", all.size());
        if (Double.isInfinite(info.requestRate())) {
            r.put("request_rate", "inf");
        } else {
            r.put("request_rate", info.requestRate());
        }
        r.put("burstiness", info.burstiness());
        if (info.maxConcurrency() == null) {
            r.putNull("max_concurrency");
        } else {
            r.put("max_concurrency", info.maxConcurrency());
        }
        r.put("duration", dur);
        r.put("completed", completed);
        r.put("failed", all.size() - completed);
        r.put("total_input_tokens", totalIn);
        r.put("total_output_tokens", totalOut);
        r.put("request_throughput", per(completed, dur));
        if (info.goodput().isEmpty()) {
            r.putNull("request_goodput");
        } else {
            r.put("request_goodput", per(good, dur));
        }
        r.put("output_throughput", per(totalOut, dur));
        r.put("total_token_throughput", per(totalIn + totalOut, dur));
        Timeline tl = timeline(all, run);
        r.put("max_output_tokens_per_s", tl.maxTokensPerSecond);
        r.put("max_concurrent_requests", peakConcurrency(all));
        Map<String, Stats> stats = Map.of("ttft", Stats.of(ms(ttfts)), "tpot", Stats.of(ms(tpots)),
                "itl", Stats.of(ms(itls)), "e2el", Stats.of(ms(e2els)));
        for (String m : info.percentileMetrics()) {
            Stats s = stats.get(m);
            r.put("mean_" + m + "_ms", s.mean());
            r.put("median_" + m + "_ms", s.median());
            r.put("std_" + m + "_ms", s.std());
            for (double p : info.percentiles()) {
                r.put("p" + percentileWord(p) + "_" + m + "_ms", s.percentile(p));
            }
        }
        if (info.saveDetailed()) {
            detailed(r, all, requests);
        }
        ObjectNode ai = r.putObject("aiperf");
        aiperf(ai, "time_to_first_token", "ms", stats.get("ttft"));
        aiperf(ai, "time_to_second_token", "ms", Stats.of(ms(ttsts)));
        aiperf(ai, "inter_token_latency", "ms", stats.get("tpot"));
        aiperf(ai, "inter_chunk_latency", "ms", stats.get("itl"));
        aiperf(ai, "request_latency", "ms", stats.get("e2el"));
        aiperf(ai, "output_sequence_length", "tokens", Stats.of(unboxed(outLens)));
        aiperf(ai, "input_sequence_length", "tokens", Stats.of(unboxed(inLens)));
        aiperf(ai, "output_token_throughput_per_user", "tokens/sec/user", Stats.of(unboxed(perUser)));
        ai.putObject("request_throughput").put("unit", "requests/sec").put("avg", per(completed, dur));
        ai.putObject("output_token_throughput").put("unit", "tokens/sec").put("avg", per(totalOut, dur));
        ai.putObject("request_count").put("unit", "requests").put("avg", completed);

        ObjectNode e = r.putObject("epserve");
        e.put("target", info.target());
        e.set("dataset", info.dataset());
        e.put("seed", info.seed());
        e.put("ignore_eos", info.ignoreEos());
        e.put("num_warmups", info.numWarmups());
        ObjectNode slos = e.putObject("goodput_slos");
        info.goodput().forEach(slos::put);
        ObjectNode fail = e.putObject("failures");
        fail.put("count", all.size() - completed);
        ObjectNode why = fail.putObject("reasons");
        reasons.forEach(why::put);
        ObjectNode fin = e.putObject("finish_reasons");
        finish.forEach(fin::put);
        e.put("server_output_tokens", serverOut);
        Stats q = Stats.of(ms(queue));
        e.putObject("server_queue_ms").put("mean", q.mean()).put("median", q.median()).put("p50", q.percentile(50))
                .put("p90", q.percentile(90)).put("p99", q.percentile(99));
        ObjectNode t = e.putObject("timeline");
        t.put("bucket_seconds", 1);
        t.set("output_tokens", ints(tl.tokens));
        t.set("completed_requests", ints(tl.completed));
        t.set("concurrent_requests", ints(tl.concurrent));
        t.set("started_requests", ints(tl.started));
        ObjectNode samples = e.putObject("latency_samples_ms");
        for (String m : METRICS) {
            ArrayNode a = samples.putArray(m);
            for (double v : stats.get(m).thinned(CDF_POINTS)) {
                a.add(v);
            }
        }
        if (server == null) {
            e.putNull("server");
        } else {
            e.set("server", server);
        }
        return r;
    }

    /** The input length of a request: what the server counted, else what the dataset counted (0 if neither). */
    private static int inputLen(RequestOutcome o, BenchRequest r) {
        return o.promptTokens >= 0 ? o.promptTokens : Math.max(0, r.promptLen());
    }

    static boolean meets(Map<String, Double> slo, double ttft, double tpot, double e2el) {
        return (!slo.containsKey("ttft") || ttft * 1e3 <= slo.get("ttft"))
                && (!slo.containsKey("tpot") || tpot * 1e3 <= slo.get("tpot"))
                && (!slo.containsKey("e2el") || e2el * 1e3 <= slo.get("e2el"));
    }

    /** As vLLM writes a percentile in a key: 99 -> "99", 99.9 -> "99.9". */
    public static String percentileWord(double p) {
        return p == Math.rint(p) ? Long.toString((long) p) : Double.toString(p);
    }

    private static void detailed(ObjectNode r, List<RequestOutcome> all, List<BenchRequest> requests) {
        ArrayNode in = r.putArray("input_lens");
        ArrayNode out = r.putArray("output_lens");
        ArrayNode ttfts = r.putArray("ttfts");
        ArrayNode itls = r.putArray("itls");
        ArrayNode lat = r.putArray("latencies");
        ArrayNode starts = r.putArray("start_times");
        ArrayNode texts = r.putArray("generated_texts");
        ArrayNode errors = r.putArray("errors");
        for (RequestOutcome o : all) {
            in.add(inputLen(o, requests.get(o.index)));
            out.add(o.success ? o.outputTokens : 0);
            ttfts.add(o.success && o.chunks > 0 ? o.ttft() : 0.0);
            ArrayNode g = itls.addArray();
            if (o.success) {
                for (double v : o.itl()) {
                    g.add(v);
                }
            }
            lat.add(o.success ? o.latency() : 0.0);
            starts.add(o.sendNs / 1e9);
            texts.add(o.text.toString());
            errors.add(o.error);
        }
    }

    private static void aiperf(ObjectNode ai, String name, String unit, Stats s) {
        ObjectNode n = ai.putObject(name);
        n.put("unit", unit).put("avg", s.mean()).put("min", s.min()).put("max", s.max());
        for (double p : AIPERF_PERCENTILES) {
            n.put("p" + percentileWord(p), s.percentile(p));
        }
        n.put("std", s.std());
    }

    /** Per-second buckets from the run's start over every request (failed ones occupy the server too). */
    private record Timeline(int[] tokens, int[] completed, int[] concurrent, int[] started, int maxTokensPerSecond) {}

    private static Timeline timeline(List<RequestOutcome> all, LoadRunner.Run run) {
        long span = run.endNs() - run.startNs();
        int buckets = (int) (span / 1_000_000_000L) + 1;
        int[] tokens = new int[buckets];
        int[] completed = new int[buckets];
        int[] concurrent = new int[buckets];
        int[] started = new int[buckets];
        int[] successTokens = new int[buckets];
        for (RequestOutcome o : all) {
            for (int i = 0; i < o.chunks; i++) {
                int b = bucket(o.chunkNs[i], buckets);
                tokens[b] += o.chunkTokens[i];
                if (o.success) {
                    successTokens[b] += o.chunkTokens[i];
                }
            }
            started[bucket(o.sendNs, buckets)]++;
            if (o.success) {
                completed[bucket(o.endNs, buckets)]++;
            }
            for (int b = 0; b < buckets; b++) {
                long mid = b * 1_000_000_000L + 500_000_000L;
                if (o.sendNs <= mid && mid < o.endNs) {
                    concurrent[b]++;
                }
            }
        }
        // vLLM counts the tokens of successful requests only for its peak.
        int max = Arrays.stream(successTokens).max().orElse(0);
        return new Timeline(tokens, completed, concurrent, started, max);
    }

    private static int bucket(long ns, int buckets) {
        return (int) Math.max(0, Math.min(buckets - 1, ns / 1_000_000_000L));
    }

    /** vLLM's sweep line over the [send, end) intervals of completed requests; ends before starts at a tie. */
    static int peakConcurrency(List<RequestOutcome> all) {
        List<long[]> ev = new ArrayList<>();
        for (RequestOutcome o : all) {
            if (o.success) {
                ev.add(new long[] {o.sendNs, 1});
                ev.add(new long[] {o.endNs, -1});
            }
        }
        ev.sort((a, b) -> a[0] != b[0] ? Long.compare(a[0], b[0]) : Long.compare(a[1], b[1]));
        int cur = 0;
        int peak = 0;
        for (long[] e : ev) {
            cur += (int) e[1];
            peak = Math.max(peak, cur);
        }
        return peak;
    }

    private static double per(double v, double seconds) {
        return seconds > 0 ? v / seconds : 0;
    }

    private static double[] ms(List<Double> seconds) {
        double[] a = new double[seconds.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = seconds.get(i) * 1e3;
        }
        return a;
    }

    private static double[] unboxed(List<Double> v) {
        double[] a = new double[v.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = v.get(i);
        }
        return a;
    }

    private static ArrayNode ints(int[] v) {
        ArrayNode a = JsonNodeFactory.instance.arrayNode();
        for (int x : v) {
            a.add(x);
        }
        return a;
    }
}
