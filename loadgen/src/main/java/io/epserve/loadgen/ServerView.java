package io.epserve.loadgen;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.epserve.cluster.MemberInfo;
import io.epserve.cluster.metrics.Metrics;
import io.epserve.cluster.metrics.MetricsScrape;
import io.epserve.proto.admin.v1.AdminGrpc;
import io.epserve.proto.admin.v1.Member;
import io.epserve.proto.admin.v1.StatusRequest;
import io.epserve.proto.admin.v1.StatusResponse;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The server-side view of a benchmark run: the servers' /metrics endpoints (found through the router's admin API, or
 * named by the user), a scrape of all of them before and after the run, and the difference of their counters and
 * histograms as the {@code epserve.server} object of a result (loadgen/RESULT.md).
 *
 * <p>Differences are taken per endpoint and per series, then summed over the endpoints of a role (several attention
 * workers add up). A series whose value went down belongs to a restarted process: it counts from 0, i.e. its value
 * after the run. Histogram quantiles are interpolated inside the buckets as Prometheus' {@code histogram_quantile}
 * does, so they agree with a dashboard over the same endpoints.
 */
public final class ServerView {
    /** Bound of one endpoint's fetch (connect and answer) when none is given. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(5);

    private static final JsonNodeFactory JSON = JsonNodeFactory.instance;
    /** The router's client RPCs that a benchmark drives; Tokenize, ListModels and the like are left out. */
    private static final Set<String> STREAMING_RPCS = Set.of("Generate", "Chat");
    private static final List<String> ROLE_ORDER = List.of(MemberInfo.ROUTER, MemberInfo.ATTENTION_WORKER,
            MemberInfo.EXPERT_WORKER);

    private ServerView() {
    }

    /** A /metrics URL and the role of the process behind it ("" when unknown: the scrape's build info tells). */
    public record Endpoint(String url, String role) {
        public Endpoint {
            role = role == null ? "" : role;
        }
    }

    /** One endpoint's scrape: the parsed text, or why there is none. */
    public record Scraped(Endpoint endpoint, MetricsScrape metrics, String error) {
        public boolean ok() {
            return metrics != null;
        }

        /** The role its {@code epserve_build_info} names, else the endpoint's. */
        public String role() {
            if (metrics != null) {
                for (MetricsScrape.Sample s : metrics.samples(Metrics.BUILD_INFO)) {
                    String r = s.labels().get("role");
                    if (r != null && !r.isEmpty()) {
                        return r;
                    }
                }
            }
            return endpoint.role();
        }
    }

    /** A scrape of every endpoint, in the order given. */
    public record Snapshot(List<Scraped> endpoints) {
        public Snapshot {
            endpoints = List.copyOf(endpoints);
        }

        Scraped find(String url) {
            for (Scraped s : endpoints) {
                if (s.endpoint().url().equals(url)) {
                    return s;
                }
            }
            return null;
        }
    }

    // ------------------------------------------------------------------------------------------ discovery

    /**
     * The /metrics endpoints of the router's cluster: every member whose Admin Status gauges announce
     * {@link MemberInfo#METRICS_PORT}, at the member's host ({@link MemberInfo#host}); a member that names no host,
     * or a wildcard one, is taken to be on the host the router is reached at. Routers first, then attention and
     * expert workers, each by id. Empty when the server has no admin API (UNIMPLEMENTED: a router outside a cluster,
     * the single-process server); any other failure of the call is thrown.
     */
    public static List<Endpoint> discover(Channel router, Duration timeout) {
        StatusResponse st;
        try {
            st = AdminGrpc.newBlockingStub(router).withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS)
                    .status(StatusRequest.getDefaultInstance());
        } catch (StatusRuntimeException e) {
            if (e.getStatus().getCode() == Status.Code.UNIMPLEMENTED) {
                return List.of();
            }
            throw e;
        }
        String routerHost = hostOf(router.authority());
        List<Member> members = new ArrayList<>(st.getMembersList());
        members.sort(Comparator.comparingInt((Member m) -> roleRank(m.getRole())).thenComparingInt(Member::getId));
        List<Endpoint> out = new ArrayList<>();
        for (Member m : members) {
            Long port = m.getGaugesMap().get(MemberInfo.METRICS_PORT);
            if (port == null || port <= 0) {
                continue;
            }
            String host = MemberInfo.host(m.getGrpc(), m.getAeron());
            if (host == null || isWildcard(host)) {
                host = routerHost;
            }
            out.add(new Endpoint("http://" + host + ":" + port + "/metrics", m.getRole()));
        }
        return out;
    }

    private static int roleRank(String role) {
        int i = ROLE_ORDER.indexOf(role);
        return i < 0 ? ROLE_ORDER.size() : i;
    }

    private static boolean isWildcard(String host) {
        return host.equals("0.0.0.0") || host.equals("[::]") || host.equals("::");
    }

    /** The host of a HOST:PORT authority (IPv6 keeps its brackets). */
    private static String hostOf(String authority) {
        int colon = authority.lastIndexOf(':');
        return colon <= 0 || authority.endsWith("]") ? authority : authority.substring(0, colon);
    }

    // ------------------------------------------------------------------------------------------ scraping

    /** {@link #scrape(List, Duration)} with {@link #DEFAULT_TIMEOUT}. */
    public static Snapshot scrape(List<Endpoint> endpoints) {
        return scrape(endpoints, DEFAULT_TIMEOUT);
    }

    /**
     * Fetches every endpoint at once, each bounded by {@code timeout} (connect, answer and body); an endpoint that
     * cannot be reached, answers anything but 200 or sends unparsable text is an entry with its error, never an
     * exception.
     */
    public static Snapshot scrape(List<Endpoint> endpoints, Duration timeout) {
        HttpClient http = HttpClient.newBuilder().connectTimeout(timeout).build();
        try {
            List<CompletableFuture<HttpResponse<String>>> pending = new ArrayList<>();
            List<String> early = new ArrayList<>();
            for (Endpoint e : endpoints) {
                try {
                    pending.add(http.sendAsync(HttpRequest.newBuilder(URI.create(e.url())).timeout(timeout).GET()
                            .build(), HttpResponse.BodyHandlers.ofString()));
                    early.add(null);
                } catch (IllegalArgumentException ex) {
                    pending.add(null);
                    early.add("bad URL: " + ex.getMessage());
                }
            }
            // The request timeout bounds the wait for the answer's headers only: the deadline also bounds the body.
            long deadline = System.nanoTime() + timeout.toNanos();
            List<Scraped> out = new ArrayList<>();
            for (int i = 0; i < endpoints.size(); i++) {
                Endpoint e = endpoints.get(i);
                CompletableFuture<HttpResponse<String>> f = pending.get(i);
                if (f == null) {
                    out.add(new Scraped(e, null, early.get(i)));
                    continue;
                }
                try {
                    HttpResponse<String> r = f.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                    if (r.statusCode() != 200) {
                        out.add(new Scraped(e, null, "HTTP " + r.statusCode()));
                    } else {
                        out.add(new Scraped(e, MetricsScrape.parse(r.body()), null));
                    }
                } catch (TimeoutException ex) {
                    f.cancel(true);
                    out.add(new Scraped(e, null, "no answer within " + timeout.toMillis() + " ms"));
                } catch (ExecutionException ex) {
                    Throwable c = ex.getCause() != null ? ex.getCause() : ex;
                    out.add(new Scraped(e, null, c.getClass().getSimpleName()
                            + (c.getMessage() == null ? "" : ": " + c.getMessage())));
                } catch (InterruptedException ex) {
                    Thread.currentThread().interrupt();
                    out.add(new Scraped(e, null, "interrupted"));
                } catch (RuntimeException ex) {
                    out.add(new Scraped(e, null, "unreadable metrics: " + ex));
                }
            }
            return new Snapshot(out);
        } finally {
            // close() would wait for a hung exchange; nothing here is worth waiting for any more.
            http.shutdownNow();
        }
    }

    // ------------------------------------------------------------------------------------------ difference

    /**
     * The {@code epserve.server} object: what the servers counted between the two snapshots. Only endpoints that
     * answered both scrapes count; {@code router} is null without such a router endpoint, and the attention
     * workers' fields are null without such an attention-worker endpoint.
     */
    public static ObjectNode delta(Snapshot before, Snapshot after) {
        ObjectNode out = JSON.objectNode();
        ArrayNode endpoints = out.putArray("endpoints");
        List<Pair> router = new ArrayList<>();
        List<Pair> attention = new ArrayList<>();
        Set<String> urls = new LinkedHashSet<>();
        after.endpoints().forEach(s -> urls.add(s.endpoint().url()));
        before.endpoints().forEach(s -> urls.add(s.endpoint().url()));
        for (String url : urls) {
            Scraped b = before.find(url);
            Scraped a = after.find(url);
            String role = a != null && a.ok() ? a.role() : b != null && b.ok() ? b.role()
                    : (a != null ? a : b).endpoint().role();
            String error = b == null ? "not scraped before the run" : !b.ok() ? "before the run: " + b.error()
                    : a == null ? "not scraped after the run" : !a.ok() ? "after the run: " + a.error() : null;
            ObjectNode e = endpoints.addObject().put("url", url).put("role", role).put("ok", error == null);
            e.put("error", error);
            if (error == null) {
                Pair p = new Pair(b.metrics(), a.metrics());
                if (role.equals(MemberInfo.ROUTER)) {
                    router.add(p);
                } else if (role.equals(MemberInfo.ATTENTION_WORKER)) {
                    attention.add(p);
                }
            }
        }
        out.set("router", router.isEmpty() ? null : router(router));
        if (attention.isEmpty()) {
            for (String f : List.of("queue_ms", "prefill_step_ms", "decode_step_ms", "steps", "step_tokens",
                    "decode_batch_mean", "time_split", "layers", "expert_load")) {
                out.putNull(f);
            }
        } else {
            attention(out, attention);
        }
        return out;
    }

    private static ObjectNode router(List<Pair> ps) {
        ObjectNode r = JSON.objectNode();
        ObjectNode codes = r.putObject("requests");
        Map<String, Double> byCode = new TreeMap<>();
        for (Map.Entry<Map<String, String>, Double> e : counterSeries(ps, Metrics.ROUTER_REQUESTS).entrySet()) {
            if (STREAMING_RPCS.contains(e.getKey().get("rpc"))) {
                byCode.merge(e.getKey().getOrDefault("code", ""), e.getValue(), Double::sum);
            }
        }
        byCode.forEach((code, n) -> {
            if (n > 0) {
                codes.put(code, Math.round(n));
            }
        });
        r.put("prompt_tokens", Math.round(counter(ps, Metrics.ROUTER_PROMPT_TOKENS)));
        r.put("generated_tokens", Math.round(counter(ps, Metrics.ROUTER_GENERATED_TOKENS)));
        r.set("ttft_ms", histogram(ps, Metrics.ROUTER_TTFT, null).summary(1e3));
        r.set("inter_token_ms", histogram(ps, Metrics.ROUTER_INTER_TOKEN, null).summary(1e3));
        r.set("request_ms", histogram(ps, Metrics.ROUTER_REQUEST_DURATION,
                l -> STREAMING_RPCS.contains(l.get("rpc"))).summary(1e3));
        return r;
    }

    private static void attention(ObjectNode out, List<Pair> ps) {
        out.set("queue_ms", histogram(ps, Metrics.ATTENTION_QUEUE, null).summary(1e3));
        out.set("prefill_step_ms", histogram(ps, Metrics.ATTENTION_STEP_DURATION, kind("prefill")).summary(1e3));
        out.set("decode_step_ms", histogram(ps, Metrics.ATTENTION_STEP_DURATION, kind("decode")).summary(1e3));
        long prefillSteps = Math.round(counter(ps, Metrics.ATTENTION_STEPS, "kind", "prefill"));
        long decodeSteps = Math.round(counter(ps, Metrics.ATTENTION_STEPS, "kind", "decode"));
        ObjectNode steps = out.putObject("steps");
        steps.put("prefill", prefillSteps);
        steps.put("decode", decodeSteps);
        steps.put("failed", Math.round(counter(ps, Metrics.ATTENTION_FAILED_STEPS)));
        long decodeTokens = Math.round(counter(ps, Metrics.ATTENTION_STEP_TOKENS, "kind", "decode"));
        ObjectNode tokens = out.putObject("step_tokens");
        tokens.put("prefill", Math.round(counter(ps, Metrics.ATTENTION_STEP_TOKENS, "kind", "prefill")));
        tokens.put("decode", decodeTokens);
        out.put("decode_batch_mean", decodeSteps == 0 ? 0.0 : (double) decodeTokens / decodeSteps);

        ObjectNode split = out.putObject("time_split");
        double step = counter(ps, Metrics.ATTENTION_ENGINE_SECONDS, "part", "step");
        split.put("step", step);
        split.put("attention", counter(ps, Metrics.ATTENTION_ENGINE_SECONDS, "part", "attention"));
        split.put("shared_expert", counter(ps, Metrics.ATTENTION_ENGINE_SECONDS, "part", "shared_expert"));
        split.put("dispatch", counter(ps, Metrics.ATTENTION_ENGINE_SECONDS, "part", "dispatch"));
        double wait = counter(ps, Metrics.ATTENTION_ENGINE_SECONDS, "part", "exposed_wait");
        split.put("exposed_wait", wait);
        split.put("exposed_communication_fraction", step > 0 ? wait / step : 0.0);

        ArrayNode layers = out.putArray("layers");
        Map<String, Hist> dispatch = histogramsBy(ps, Metrics.ATTENTION_DISPATCH, "layer");
        Map<String, Hist> roundTrip = histogramsBy(ps, Metrics.ATTENTION_ROUND_TRIP, "layer");
        TreeMap<Integer, String> layerIds = new TreeMap<>();
        for (String l : dispatch.keySet()) {
            layerIds.put(Integer.parseInt(l), l);
        }
        for (String l : roundTrip.keySet()) {
            layerIds.put(Integer.parseInt(l), l);
        }
        for (Map.Entry<Integer, String> l : layerIds.entrySet()) {
            ObjectNode n = layers.addObject().put("layer", l.getKey());
            n.set("dispatch_us", dispatch.getOrDefault(l.getValue(), new Hist()).summary(1e6));
            n.set("round_trip_us", roundTrip.getOrDefault(l.getValue(), new Hist()).summary(1e6));
        }
        out.set("expert_load", expertLoad(ps));
    }

    /** Tokens per (layer, expert) during the run; null when no attention worker exports them (local experts). */
    private static ObjectNode expertLoad(List<Pair> ps) {
        Map<Map<String, String>, Double> cells = counterSeries(ps, Metrics.ATTENTION_EXPERT_TOKENS);
        if (cells.isEmpty()) {
            return null;
        }
        // Every cell is exported (0 included), so the highest expert id seen + 1 is the number of experts.
        int experts = 0;
        for (Map<String, String> k : cells.keySet()) {
            experts = Math.max(experts, Integer.parseInt(k.get("expert")) + 1);
        }
        int width = experts;
        TreeMap<Integer, long[]> perLayer = new TreeMap<>();
        for (Map.Entry<Map<String, String>, Double> c : cells.entrySet()) {
            long[] t = perLayer.computeIfAbsent(Integer.parseInt(c.getKey().get("layer")), x -> new long[width]);
            t[Integer.parseInt(c.getKey().get("expert"))] += Math.round(c.getValue());
        }
        ObjectNode load = JSON.objectNode().put("experts", experts);
        ArrayNode layers = load.putArray("layers");
        double balanceSum = 0;
        int counted = 0;
        for (Map.Entry<Integer, long[]> l : perLayer.entrySet()) {
            long max = 0;
            long sum = 0;
            for (long v : l.getValue()) {
                max = Math.max(max, v);
                sum += v;
            }
            if (sum == 0) {
                continue;
            }
            double balance = (double) sum / experts / max;
            ObjectNode n = layers.addObject().put("layer", l.getKey());
            ArrayNode t = n.putArray("tokens");
            for (long v : l.getValue()) {
                t.add(v);
            }
            n.put("balance", balance);
            balanceSum += balance;
            counted++;
        }
        if (counted == 0) {
            load.putNull("balance_mean");
        } else {
            load.put("balance_mean", balanceSum / counted);
        }
        return load;
    }

    private static java.util.function.Predicate<Map<String, String>> kind(String k) {
        return l -> k.equals(l.get("kind"));
    }

    // ------------------------------------------------------------------------------------------ arithmetic

    /** One endpoint's two scrapes. */
    private record Pair(MetricsScrape before, MetricsScrape after) {}

    /** What a counter series grew by: after - before, or after when it went down (its process restarted). */
    static double increase(double before, double after) {
        return after >= before ? after - before : after;
    }

    /** The increase of every series of a counter, by label set, summed over the endpoints. */
    private static Map<Map<String, String>, Double> counterSeries(List<Pair> ps, String name) {
        Map<Map<String, String>, Double> out = new LinkedHashMap<>();
        for (Pair p : ps) {
            Map<Map<String, String>, Double> before = new HashMap<>();
            for (MetricsScrape.Sample s : p.before().samples(name)) {
                before.put(s.labels(), s.value());
            }
            for (MetricsScrape.Sample s : p.after().samples(name)) {
                out.merge(s.labels(), increase(before.getOrDefault(s.labels(), 0.0), s.value()), Double::sum);
            }
        }
        return out;
    }

    /** The increase of a counter's series that have these labels, summed. */
    private static double counter(List<Pair> ps, String name, String... labelPairs) {
        double sum = 0;
        for (Map.Entry<Map<String, String>, Double> e : counterSeries(ps, name).entrySet()) {
            boolean match = true;
            for (int i = 0; i < labelPairs.length; i += 2) {
                match &= labelPairs[i + 1].equals(e.getKey().get(labelPairs[i]));
            }
            if (match) {
                sum += e.getValue();
            }
        }
        return sum;
    }

    /** A histogram's difference: cumulative bucket counts by upper bound, count and sum, in the metric's unit. */
    static final class Hist {
        final TreeMap<Double, Double> buckets = new TreeMap<>();
        double count;
        double sum;

        void add(Hist h) {
            h.buckets.forEach((le, c) -> buckets.merge(le, c, Double::sum));
            count += h.count;
            sum += h.sum;
        }

        /**
         * Prometheus' histogram_quantile: the bucket holding the q-th observation, linearly interpolated between its
         * bounds (the first bucket starts at 0); in the +Inf bucket, the largest finite bound.
         */
        double quantile(double q) {
            List<Map.Entry<Double, Double>> b = new ArrayList<>(buckets.entrySet());
            if (b.size() < 2 || !b.get(b.size() - 1).getKey().isInfinite()) {
                return Double.NaN;
            }
            double total = b.get(b.size() - 1).getValue();
            if (total <= 0) {
                return Double.NaN;
            }
            double rank = q * total;
            int i = 0;
            while (i < b.size() - 1 && b.get(i).getValue() < rank) {
                i++;
            }
            if (i == b.size() - 1) {
                return b.get(b.size() - 2).getKey();
            }
            if (i == 0 && b.get(0).getKey() <= 0) {
                return b.get(0).getKey();
            }
            double start = 0;
            double end = b.get(i).getKey();
            double inBucket = b.get(i).getValue();
            if (i > 0) {
                start = b.get(i - 1).getKey();
                inBucket -= b.get(i - 1).getValue();
                rank -= b.get(i - 1).getValue();
            }
            return start + (end - start) * (rank / inBucket);
        }

        /** {"count", "mean", "p50", "p90", "p99"} scaled by {@code unit} (1e3: seconds to ms), or {"count": 0}. */
        ObjectNode summary(double unit) {
            ObjectNode n = JSON.objectNode();
            long c = Math.round(count);
            n.put("count", c);
            if (c > 0) {
                n.put("mean", sum / count * unit);
                n.put("p50", quantile(0.5) * unit);
                n.put("p90", quantile(0.9) * unit);
                n.put("p99", quantile(0.99) * unit);
            }
            return n;
        }
    }

    /** The difference of every series of histogram {@code name}, by label set without {@code le}, over the endpoints. */
    private static Map<Map<String, String>, Hist> histogramSeries(List<Pair> ps, String name) {
        Map<Map<String, String>, Hist> out = new LinkedHashMap<>();
        for (Pair p : ps) {
            Map<Map<String, String>, Hist> before = series(p.before(), name);
            for (Map.Entry<Map<String, String>, Hist> e : series(p.after(), name).entrySet()) {
                Hist a = e.getValue();
                Hist b = before.get(e.getKey());
                Hist d = new Hist();
                boolean restarted = b != null && (a.count < b.count || a.buckets.entrySet().stream()
                        .anyMatch(x -> x.getValue() < b.buckets.getOrDefault(x.getKey(), 0.0)));
                if (b == null || restarted) {
                    d.add(a);
                } else {
                    a.buckets.forEach((le, c) -> d.buckets.put(le, c - b.buckets.getOrDefault(le, 0.0)));
                    d.count = a.count - b.count;
                    d.sum = a.sum - b.sum;
                }
                out.computeIfAbsent(e.getKey(), k -> new Hist()).add(d);
            }
        }
        return out;
    }

    /** One scrape's series of histogram {@code name}: its _bucket, _count and _sum samples by label set. */
    private static Map<Map<String, String>, Hist> series(MetricsScrape s, String name) {
        Map<Map<String, String>, Hist> out = new LinkedHashMap<>();
        for (MetricsScrape.Sample x : s.samples(name + "_bucket")) {
            Map<String, String> labels = new LinkedHashMap<>(x.labels());
            String le = labels.remove("le");
            if (le == null) {
                continue;
            }
            double bound = le.equals("+Inf") ? Double.POSITIVE_INFINITY : Double.parseDouble(le);
            out.computeIfAbsent(labels, k -> new Hist()).buckets.put(bound, x.value());
        }
        for (MetricsScrape.Sample x : s.samples(name + "_count")) {
            out.computeIfAbsent(x.labels(), k -> new Hist()).count = x.value();
        }
        for (MetricsScrape.Sample x : s.samples(name + "_sum")) {
            out.computeIfAbsent(x.labels(), k -> new Hist()).sum = x.value();
        }
        return out;
    }

    /** The difference of histogram {@code name} over its series whose labels pass {@code filter} (null: all). */
    private static Hist histogram(List<Pair> ps, String name, java.util.function.Predicate<Map<String, String>> filter) {
        Hist h = new Hist();
        histogramSeries(ps, name).forEach((labels, d) -> {
            if (filter == null || filter.test(labels)) {
                h.add(d);
            }
        });
        return h;
    }

    /** The difference of histogram {@code name} by the value of one label. */
    private static Map<String, Hist> histogramsBy(List<Pair> ps, String name, String label) {
        Map<String, Hist> out = new LinkedHashMap<>();
        histogramSeries(ps, name).forEach((labels, d) -> {
            String v = labels.get(label);
            if (v != null) {
                out.computeIfAbsent(v, k -> new Hist()).add(d);
            }
        });
        return out;
    }
}
