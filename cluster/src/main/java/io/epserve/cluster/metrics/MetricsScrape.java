package io.epserve.cluster.metrics;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One scrape of a {@code /metrics} endpoint in the Prometheus text format, parsed into samples: for tests, the load
 * generator and anyone who wants a figure without a Prometheus server.
 */
public final class MetricsScrape {
    /** One sample line: {@code name{labels} value}. */
    public record Sample(String name, Map<String, String> labels, double value) {}

    private final String text;
    private final List<Sample> samples;

    private MetricsScrape(String text, List<Sample> samples) {
        this.text = text;
        this.samples = samples;
    }

    /** GET http://host:port/metrics (10 s timeout); throws IOException for anything but 200. */
    public static MetricsScrape fetch(String host, int port) throws IOException {
        try (HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build()) {
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://" + host + ":" + port
                    + "/metrics")).timeout(Duration.ofSeconds(10)).GET().build(), HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() != 200) {
                throw new IOException("GET /metrics on " + host + ":" + port + " answered " + r.statusCode());
            }
            return parse(r.body());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
    }

    /** Parses the text format (comments skipped). */
    public static MetricsScrape parse(String text) {
        List<Sample> out = new ArrayList<>();
        for (String line : text.split("\n")) {
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            int brace = line.indexOf('{');
            int space = line.indexOf(' ');
            String name;
            Map<String, String> labels = new LinkedHashMap<>();
            int rest;
            if (brace >= 0 && brace < space) {
                name = line.substring(0, brace);
                int i = brace + 1;
                while (line.charAt(i) != '}') {
                    int eq = line.indexOf('=', i);
                    String key = line.substring(i, eq).trim();
                    StringBuilder v = new StringBuilder();
                    int j = eq + 2; // past ="
                    while (line.charAt(j) != '"') {
                        char ch = line.charAt(j);
                        if (ch == '\\') {
                            char n = line.charAt(++j);
                            v.append(n == 'n' ? '\n' : n);
                        } else {
                            v.append(ch);
                        }
                        j++;
                    }
                    labels.put(key, v.toString());
                    i = j + 1;
                    if (line.charAt(i) == ',') {
                        i++;
                    }
                }
                rest = i + 1;
            } else {
                name = line.substring(0, space);
                rest = space;
            }
            String[] v = line.substring(rest).trim().split("\\s+");
            out.add(new Sample(name, labels, parseValue(v[0])));
        }
        return new MetricsScrape(text, out);
    }

    private static double parseValue(String s) {
        return switch (s) {
            case "+Inf" -> Double.POSITIVE_INFINITY;
            case "-Inf" -> Double.NEGATIVE_INFINITY;
            case "NaN" -> Double.NaN;
            default -> Double.parseDouble(s);
        };
    }

    public String text() {
        return text;
    }

    public List<Sample> samples() {
        return samples;
    }

    /** The samples named {@code name} whose labels include the given key, value pairs. */
    public List<Sample> samples(String name, String... labelPairs) {
        if (labelPairs.length % 2 != 0) {
            throw new IllegalArgumentException("label pairs: key, value, key, value, ...");
        }
        List<Sample> out = new ArrayList<>();
        next:
        for (Sample s : samples) {
            if (!s.name().equals(name)) {
                continue;
            }
            for (int i = 0; i < labelPairs.length; i += 2) {
                if (!labelPairs[i + 1].equals(s.labels().get(labelPairs[i]))) {
                    continue next;
                }
            }
            out.add(s);
        }
        return out;
    }

    public boolean has(String name) {
        return samples.stream().anyMatch(s -> s.name().equals(name));
    }

    /** The sum of the matching samples (0 when none match). */
    public double sum(String name, String... labelPairs) {
        double s = 0;
        for (Sample x : samples(name, labelPairs)) {
            s += x.value();
        }
        return s;
    }

    /** The one matching sample's value; throws IllegalStateException when there are none or several. */
    public double value(String name, String... labelPairs) {
        List<Sample> m = samples(name, labelPairs);
        if (m.size() != 1) {
            throw new IllegalStateException(m.size() + " samples match " + name + " " + List.of(labelPairs)
                    + (m.isEmpty() ? "" : ": " + m));
        }
        return m.get(0).value();
    }
}
