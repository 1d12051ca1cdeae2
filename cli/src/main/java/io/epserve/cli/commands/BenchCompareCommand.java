package io.epserve.cli.commands;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.epserve.loadgen.HtmlReport;
import io.epserve.loadgen.SweepComparison;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "bench-compare", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Compares sweep results of `epserve bench --sweep` load point by load point (e.g. a cluster"
                + " against a single process on the same workload): each series' throughput and latencies and their"
                + " ratios to the first file, the baseline. Prints a table; writes the comparison as JSON"
                + " (loadgen/RESULT.md, \"Comparisons\") and a self-contained HTML report with latency against"
                + " throughput per series."})
public final class BenchCompareCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "BASELINE.json", description = "The sweep result the others are divided by.")
    Path baseline;

    @Parameters(index = "1..*", arity = "1..*", paramLabel = "OTHER.json",
            description = "Sweep results over the same variable (request_rate or max_concurrency).")
    List<Path> others;

    @Option(names = "--html", paramLabel = "FILE", description = "Write the HTML report here.")
    Path html;

    @Option(names = "--json", paramLabel = "FILE", description = "Write the comparison JSON here.")
    Path json;

    @Override
    public Integer call() throws Exception {
        ObjectMapper mapper = new ObjectMapper();
        List<JsonNode> sweeps = new ArrayList<>();
        List<String> names = new ArrayList<>();
        List<Path> files = new ArrayList<>(List.of(baseline));
        files.addAll(others);
        for (Path f : files) {
            if (!Files.isRegularFile(f)) {
                return CliErrors.usage("bench-compare: no such file: " + f);
            }
            try {
                sweeps.add(mapper.readTree(f.toFile()));
            } catch (IOException e) {
                return CliErrors.usage("bench-compare: cannot read " + f + ": " + e.getMessage());
            }
            names.add(f.toString());
        }
        ObjectNode comparison;
        try {
            comparison = SweepComparison.compare(sweeps, names);
        } catch (IllegalArgumentException e) {
            return CliErrors.usage("bench-compare: " + e.getMessage());
        }
        PrintStream out = System.out;
        SweepComparison.print(comparison, out);
        try {
            if (json != null) {
                createParent(json);
                mapper.writerWithDefaultPrettyPrinter().writeValue(json.toFile(), comparison);
                out.println("Comparison: " + json.toAbsolutePath().normalize());
            }
            if (html != null) {
                createParent(html);
                Files.writeString(html, HtmlReport.compare(comparison, sweeps), StandardCharsets.UTF_8);
                out.println("Report: " + html.toAbsolutePath().normalize());
            }
        } catch (IOException e) {
            return CliErrors.usage("bench-compare: cannot write: " + e.getMessage());
        }
        return 0;
    }

    private static void createParent(Path file) throws IOException {
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
    }
}
