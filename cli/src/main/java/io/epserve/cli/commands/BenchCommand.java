package io.epserve.cli.commands;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.epserve.loadgen.ArrivalSchedule;
import io.epserve.loadgen.Bench;
import io.epserve.loadgen.BenchResult;
import io.epserve.loadgen.ChatToolsDataset;
import io.epserve.loadgen.Dataset;
import io.epserve.loadgen.HtmlReport;
import io.epserve.loadgen.RandomDataset;
import io.epserve.loadgen.ServerView;
import io.epserve.loadgen.ShareGptDataset;
import io.epserve.loadgen.SharedPrefixDataset;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "bench", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Load test of a running server (router or single process) through the public epserve.v1 gRPC"
                + " API, with vLLM `bench serve`'s metrics, names and semantics: TTFT, TPOT, ITL, E2EL, throughput,"
                + " goodput; plus the servers' own view scraped from their /metrics (queue, prefill and decode steps,"
                + " per-layer dispatch and combine, exposed communication, expert balance). Writes a summary table,"
                + " a JSON result (loadgen/RESULT.md) and a self-contained HTML report.",
            "--sweep runs one measurement per value of --request-rate or --max-concurrency."})
public final class BenchCommand implements Callable<Integer> {
    @Option(names = "--target", defaultValue = "127.0.0.1:50051", paramLabel = "HOST:PORT",
            description = "The server. Default: ${DEFAULT-VALUE}.")
    String target;

    @Option(names = "--host", paramLabel = "HOST",
            description = "vLLM's spelling: the server's host (with --port; default 127.0.0.1). Overrides --target.")
    String host;

    @Option(names = "--port", paramLabel = "PORT", description = "vLLM's spelling: the server's port (default 50051).")
    Integer port;

    @Option(names = "--model", paramLabel = "NAME",
            description = "The model id the requests name (default: the first model the server lists).")
    String modelId;

    @Option(names = "--label", description = "Label of the result (default: the backend, epserve-grpc[-chat]).")
    String label;

    @Option(names = "--dataset-name", defaultValue = "random", paramLabel = "NAME",
            description = "random | sharegpt | generated-shared-prefix | chat-tools. Default: ${DEFAULT-VALUE}.")
    String datasetName;

    @Option(names = "--dataset-path", paramLabel = "FILE", description = "ShareGPT-style JSON or JSONL (sharegpt).")
    Path datasetPath;

    @Option(names = "--num-prompts", defaultValue = "100", description = "Measured requests. Default: ${DEFAULT-VALUE}.")
    int numPrompts;

    @Option(names = "--random-input-len", defaultValue = "1024", description = "Default: ${DEFAULT-VALUE}.")
    int randomInputLen;

    @Option(names = "--random-output-len", defaultValue = "128", description = "Default: ${DEFAULT-VALUE}.")
    int randomOutputLen;

    @Option(names = "--random-range-ratio", defaultValue = "0.0",
            description = "Lengths uniform in len x [1 - r, 1 + r]. Default: ${DEFAULT-VALUE}.")
    double randomRangeRatio;

    @Option(names = "--random-prefix-len", defaultValue = "0",
            description = "Random tokens shared by every prompt. Default: ${DEFAULT-VALUE}.")
    int randomPrefixLen;

    @Option(names = "--sharegpt-output-len", defaultValue = "0",
            description = "Fixed output length (0: the recorded reply's). Default: ${DEFAULT-VALUE}.")
    int sharegptOutputLen;

    @Option(names = "--gsp-num-groups", defaultValue = "64", description = "Default: ${DEFAULT-VALUE}.")
    int gspGroups;

    @Option(names = "--gsp-prompts-per-group", defaultValue = "16", description = "Default: ${DEFAULT-VALUE}.")
    int gspPerGroup;

    @Option(names = "--gsp-system-prompt-len", defaultValue = "2048", description = "Default: ${DEFAULT-VALUE}.")
    int gspSystemLen;

    @Option(names = "--gsp-question-len", defaultValue = "128", description = "Default: ${DEFAULT-VALUE}.")
    int gspQuestionLen;

    @Option(names = "--gsp-output-len", defaultValue = "256", description = "Default: ${DEFAULT-VALUE}.")
    int gspOutputLen;

    @Option(names = "--chat-output-len", defaultValue = "128", description = "Default: ${DEFAULT-VALUE}.")
    int chatOutputLen;

    @Option(names = "--request-rate", defaultValue = "inf", split = ",", paramLabel = "RPS",
            description = "Requests per second, or inf (all at once); a list with --sweep. Default: ${DEFAULT-VALUE}.")
    List<String> requestRate;

    @Option(names = "--burstiness", defaultValue = "1.0",
            description = "Gamma shape of the gaps: 1 Poisson, < 1 burstier, > 1 steadier. Default: ${DEFAULT-VALUE}.")
    double burstiness;

    @Option(names = "--max-concurrency", split = ",", paramLabel = "N",
            description = "Cap on requests in flight; a list with --sweep.")
    List<Integer> maxConcurrency;

    @Option(names = "--ramp-up-strategy", paramLabel = "linear|exponential",
            description = "Raise the rate from --ramp-up-start-rps to --ramp-up-end-rps over the run.")
    String rampUp;

    @Option(names = "--ramp-up-start-rps", defaultValue = "0")
    double rampUpStart;

    @Option(names = "--ramp-up-end-rps", defaultValue = "0")
    double rampUpEnd;

    @Option(names = "--num-warmups", defaultValue = "0",
            description = "Unmeasured requests (the first prompt) before the run. Default: ${DEFAULT-VALUE}.")
    int numWarmups;

    @Option(names = "--seed", defaultValue = "0", description = "Workload, arrivals and sampling. Default: ${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--ignore-eos", description = "Generate exactly the requested output lengths.")
    boolean ignoreEos;

    @Option(names = "--temperature", defaultValue = "0", description = "0: greedy. Default: ${DEFAULT-VALUE}.")
    double temperature;

    @Option(names = "--top-p")
    Double topP;

    @Option(names = "--goodput", arity = "1..*", paramLabel = "METRIC:MS",
            description = "SLOs for goodput, e.g. --goodput ttft:500 tpot:100 (ttft, tpot, e2el in ms).")
    List<String> goodput;

    @Option(names = "--percentile-metrics", defaultValue = "ttft,tpot,itl,e2el", split = ",",
            description = "Metrics with percentiles. Default: ${DEFAULT-VALUE}.")
    List<String> percentileMetrics;

    @Option(names = "--metric-percentiles", defaultValue = "50,90,95,99", split = ",",
            description = "Percentiles reported. Default: ${DEFAULT-VALUE}.")
    List<Double> metricPercentiles;

    @Option(names = "--metrics-url", split = ",", paramLabel = "URL",
            description = "/metrics endpoints to scrape (default: every cluster member that serves one, found"
                    + " through the router's admin API).")
    List<String> metricsUrls;

    @Option(names = "--no-server-metrics", description = "Do not scrape the servers.")
    boolean noServerMetrics;

    @Option(names = "--save-result", description = "Write the JSON result.")
    boolean saveResult;

    @Option(names = "--save-detailed", description = "Also write per-request arrays (as vLLM).")
    boolean saveDetailed;

    @Option(names = "--result-dir", defaultValue = ".", description = "Default: the current directory.")
    Path resultDir;

    @Option(names = "--result-filename", description = "Default: LABEL-RATEqps[-concurrencyN]-MODEL-DATE.json.")
    String resultFilename;

    @Option(names = "--html", paramLabel = "FILE",
            description = "Write the HTML report here (with --save-result: next to the JSON by default).")
    Path html;

    @Option(names = "--sweep", description = "One run per value of --request-rate or --max-concurrency.")
    boolean sweep;

    @Option(names = "--cancel-fraction", defaultValue = "0", paramLabel = "F",
            description = "Cancel this fraction of the requests (a seeded choice) mid-stream, to exercise the abort"
                    + " path; they count as failed with their own reason. Default: ${DEFAULT-VALUE}.")
    double cancelFraction;

    @Option(names = "--cancel-after-tokens", defaultValue = "1", paramLabel = "N",
            description = "With --cancel-fraction: cancel after this many tokens. Default: ${DEFAULT-VALUE}.")
    int cancelAfterTokens;

    @Option(names = "--request-timeout", defaultValue = "600", paramLabel = "SECONDS",
            description = "Per request; a slower request fails DEADLINE_EXCEEDED. Default: ${DEFAULT-VALUE}.")
    long requestTimeout;

    @Option(names = "--max-duration", defaultValue = "3600", paramLabel = "SECONDS",
            description = "Per run; then whatever is left is cancelled and counted failed. Default: ${DEFAULT-VALUE}.")
    long maxDuration;

    @Option(names = "--connect-timeout", defaultValue = "30", paramLabel = "SECONDS",
            description = "How long to wait for the server to answer at all. Default: ${DEFAULT-VALUE}.")
    long connectTimeout;

    @Option(names = "--no-progress", description = "No progress line on stderr.")
    boolean noProgress;

    @Override
    public Integer call() throws Exception {
        Bench.Options o = new Bench.Options();
        double[] rates;
        try {
            rates = requestRate.stream().mapToDouble(BenchCommand::rate).toArray();
            o.dataset = dataset();
            o.goodput = slos(goodput);
            for (String m : percentileMetrics) {
                if (!BenchResult.METRICS.contains(m)) {
                    return CliErrors.usage("--percentile-metrics: unknown metric '" + m + "' (ttft, tpot, itl, e2el)");
                }
            }
            for (double p : metricPercentiles) {
                if (!(p > 0 && p < 100)) {
                    return CliErrors.usage("--metric-percentiles must be in (0, 100), got " + p);
                }
            }
            if (!(burstiness > 0)) {
                return CliErrors.usage("--burstiness must be > 0");
            }
        } catch (IllegalArgumentException e) {
            return CliErrors.usage(e.getMessage());
        }
        if (numPrompts < 1 || numWarmups < 0 || requestTimeout < 1 || maxDuration < 1 || connectTimeout < 1) {
            return CliErrors.usage("--num-prompts, --request-timeout, --max-duration and --connect-timeout must be"
                    + " >= 1, --num-warmups >= 0");
        }
        if (!(cancelFraction >= 0 && cancelFraction <= 1) || cancelAfterTokens < 1) {
            return CliErrors.usage("--cancel-fraction must be in [0, 1] and --cancel-after-tokens >= 1");
        }
        if (maxConcurrency != null && maxConcurrency.stream().anyMatch(c -> c < 1)) {
            return CliErrors.usage("--max-concurrency must be >= 1");
        }
        int rateValues = rates.length;
        int concValues = maxConcurrency == null ? 0 : maxConcurrency.size();
        if (!sweep && (rateValues > 1 || concValues > 1)) {
            return CliErrors.usage("several values of --request-rate or --max-concurrency need --sweep");
        }
        if (sweep && (rateValues > 1) == (concValues > 1)) {
            return CliErrors.usage("--sweep varies exactly one of --request-rate and --max-concurrency: give that one"
                    + " a list of values (e.g. --request-rate 1,2,4,inf)");
        }
        if (rampUp != null) {
            try {
                o.rampUp = ArrivalSchedule.RampUp.valueOf(rampUp.toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                return CliErrors.usage("--ramp-up-strategy is linear or exponential, not " + rampUp);
            }
            if (!(rampUpStart > 0 && rampUpEnd > 0)) {
                return CliErrors.usage("--ramp-up-strategy needs --ramp-up-start-rps and --ramp-up-end-rps > 0");
            }
            o.rampUpStartRps = rampUpStart;
            o.rampUpEndRps = rampUpEnd;
        }
        o.target = host != null || port != null
                ? (host != null ? host : "127.0.0.1") + ":" + (port != null ? port : 50051) : target;
        o.modelId = modelId;
        o.label = label;
        o.numPrompts = o.dataset instanceof SharedPrefixDataset g ? g.size() : numPrompts;
        o.requestRate = rates[0];
        o.burstiness = burstiness;
        o.maxConcurrency = concValues == 0 ? null : maxConcurrency.get(0);
        o.numWarmups = numWarmups;
        o.seed = seed;
        o.ignoreEos = ignoreEos;
        o.temperature = temperature;
        o.topP = topP;
        o.percentileMetrics = percentileMetrics;
        o.percentiles = metricPercentiles.stream().mapToDouble(Double::doubleValue).toArray();
        o.saveDetailed = saveDetailed;
        o.metricsEndpoints = noServerMetrics ? List.of() : metricsUrls == null ? null
                : metricsUrls.stream().map(u -> new ServerView.Endpoint(u, "")).toList();
        o.cancelFraction = cancelFraction;
        o.cancelAfterTokens = cancelAfterTokens;
        o.requestTimeout = Duration.ofSeconds(requestTimeout);
        o.maxDuration = Duration.ofSeconds(maxDuration);
        o.connectTimeout = Duration.ofSeconds(connectTimeout);
        PrintStream progress = noProgress ? null : System.err;
        PrintStream out = System.out;
        ObjectNode result;
        try {
            if (sweep) {
                boolean byRate = rateValues > 1;
                double[] values = byRate ? rates : maxConcurrency.stream().mapToDouble(Integer::doubleValue).toArray();
                result = Bench.sweep(o, byRate ? "request_rate" : "max_concurrency", values, progress);
                for (JsonNode run : result.path("runs")) {
                    Bench.printSummary(run, out);
                }
                printSweep(result, out);
            } else {
                result = Bench.run(o, progress);
                Bench.printSummary(result, out);
            }
        } catch (Bench.UnreachableException e) {
            System.err.println("epserve bench: " + e.getMessage());
            return 1;
        } catch (io.grpc.StatusRuntimeException e) {
            // Outside the measured requests (e.g. the Tokenize calls of the sharegpt dataset).
            System.err.println("epserve bench: the server failed a call before the run: " + e.getStatus());
            return 1;
        } catch (IllegalArgumentException | IOException e) {
            return CliErrors.usage(e.getMessage());
        }
        write(result, out);
        return 0;
    }

    private void write(ObjectNode result, PrintStream out) throws IOException {
        Path json = null;
        if (saveResult) {
            Files.createDirectories(resultDir);
            json = resultDir.resolve(resultFilename != null ? resultFilename : defaultName(result));
            new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(json.toFile(), result);
            out.println("Result: " + json.toAbsolutePath().normalize());
        }
        Path page = html != null ? html : json == null ? null
                : json.resolveSibling(json.getFileName().toString().replaceFirst("\\.json$", "") + ".html");
        if (page != null) {
            if (page.toAbsolutePath().getParent() != null) {
                Files.createDirectories(page.toAbsolutePath().getParent());
            }
            Files.writeString(page, sweep ? HtmlReport.sweep(result) : HtmlReport.run(result), StandardCharsets.UTF_8);
            out.println("Report: " + page.toAbsolutePath().normalize());
        }
    }

    /** vLLM's file name: LABEL-RATEqps[-concurrencyN]-MODEL-DATE.json (a sweep: LABEL-sweep-VARIABLE-...). */
    private String defaultName(JsonNode r) {
        String date = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
        JsonNode first = sweep ? r.path("runs").path(0) : r;
        String model = first.path("model_id").asText("model").replaceAll("[^A-Za-z0-9._-]", "_");
        String lbl = first.path("label").asText("epserve-grpc").replaceAll("[^A-Za-z0-9._-]", "_");
        if (sweep) {
            return lbl + "-sweep-" + r.path("sweep").path("variable").asText() + "-" + model + "-" + date + ".json";
        }
        String rate = first.path("request_rate").isNumber() ? Double.toString(first.path("request_rate").asDouble())
                : "inf";
        String conc = first.path("max_concurrency").isNumber()
                ? "-concurrency" + first.path("max_concurrency").asInt() : "";
        return lbl + "-" + rate + "qps" + conc + "-" + model + "-" + date + ".json";
    }

    private static void printSweep(JsonNode r, PrintStream out) {
        String var = r.path("sweep").path("variable").asText();
        out.println("=".repeat(24) + " Sweep " + "=".repeat(24));
        out.printf(Locale.ROOT, "%-16s %9s %7s %10s %10s %10s %10s %10s%n", var, "completed", "failed", "req/s",
                "out tok/s", "TTFT p50", "TPOT p50", "E2EL p99");
        int i = 0;
        for (JsonNode run : r.path("runs")) {
            out.printf(Locale.ROOT, "%-16s %9d %7d %10.2f %10.2f %10.1f %10.1f %10.1f%n",
                    r.path("sweep").path("values").path(i++).asText(), run.path("completed").asInt(),
                    run.path("failed").asInt(), run.path("request_throughput").asDouble(),
                    run.path("output_throughput").asDouble(), run.path("median_ttft_ms").asDouble(),
                    run.path("median_tpot_ms").asDouble(), run.path("p99_e2el_ms").asDouble());
        }
        out.println("=".repeat(55));
    }

    private Dataset dataset() {
        return switch (datasetName) {
            case "random" -> new RandomDataset(randomInputLen, randomOutputLen, randomRangeRatio, randomPrefixLen);
            case "sharegpt" -> new ShareGptDataset(datasetPath, sharegptOutputLen);
            case "generated-shared-prefix", "shared-prefix" -> new SharedPrefixDataset(gspGroups, gspPerGroup,
                    gspSystemLen, gspQuestionLen, gspOutputLen);
            case "chat-tools" -> new ChatToolsDataset(chatOutputLen);
            default -> throw new IllegalArgumentException("--dataset-name: unknown dataset '" + datasetName
                    + "' (random, sharegpt, generated-shared-prefix, chat-tools)");
        };
    }

    static double rate(String v) {
        if (v.equalsIgnoreCase("inf")) {
            return Double.POSITIVE_INFINITY;
        }
        try {
            double d = Double.parseDouble(v);
            if (d > 0 && !Double.isNaN(d)) {
                return d;
            }
        } catch (NumberFormatException e) {
            // below
        }
        throw new IllegalArgumentException("--request-rate: '" + v + "' is not a number > 0 or inf");
    }

    static Map<String, Double> slos(List<String> pairs) {
        Map<String, Double> m = new LinkedHashMap<>();
        if (pairs == null) {
            return m;
        }
        for (String p : pairs) {
            String[] kv = p.split(":");
            if (kv.length != 2 || !List.of("ttft", "tpot", "e2el").contains(kv[0])) {
                throw new IllegalArgumentException("--goodput takes METRIC:MS pairs with METRIC ttft, tpot or e2el,"
                        + " got '" + p + "'");
            }
            try {
                double ms = Double.parseDouble(kv[1]);
                if (!(ms >= 0)) {
                    throw new NumberFormatException();
                }
                m.put(kv[0], ms);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--goodput: '" + kv[1] + "' is not a number of ms >= 0");
            }
        }
        return m;
    }
}
