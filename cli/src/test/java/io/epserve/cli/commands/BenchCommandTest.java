package io.epserve.cli.commands;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.epserve.cli.cluster.LocalCluster;
import io.epserve.loadgen.ResultSchema;
import io.epserve.proto.v1.InferenceGrpc;
import io.epserve.proto.v1.ListModelsRequest;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code epserve bench} against a real local cluster on the golden tiny model (expert workers, an attention worker
 * and a router as separate processes with the control plane and /metrics): every dataset completes, the result files
 * validate against the published schema, the client's token counts equal the server's (the final messages' usage and
 * the router's /metrics), the server-side view is filled from the scrapes, and rejected requests are failures with
 * their reasons, not missing rows.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(600)
class BenchCommandTest {
    @TempDir
    static Path tmp;

    private LocalCluster cluster;
    private String target;
    private int contextLength;

    @BeforeAll
    void start() throws Exception {
        cluster = LocalCluster.start(ClusterTest.tinyCluster(tmp.resolve("logs"), "fast").expertWorkers(2)
                .attentionWorkers(1).microBatches(2).router(0).metrics(true).controlPlane(true));
        target = "127.0.0.1:" + cluster.router().grpcPort();
        contextLength = InferenceGrpc.newBlockingStub(cluster.routerChannel())
                .listModels(ListModelsRequest.getDefaultInstance()).getModels(0).getContextLength();
    }

    @AfterAll
    void stop() {
        if (cluster != null) {
            cluster.close();
        }
    }

    private JsonNode bench(String file, String... args) throws IOException {
        List<String> a = new ArrayList<>(List.of("bench", "--target", target, "--no-progress", "--save-result",
                "--result-dir", tmp.toString(), "--result-filename", file));
        a.addAll(List.of(args));
        EngineCommandsTest.Run r = EngineCommandsTest.run(a.toArray(String[]::new));
        assertEquals(0, r.exit(), r.err() + r.out());
        assertTrue(r.out().contains("Serving Benchmark Result"), r.out());
        String json = Files.readString(tmp.resolve(file));
        JsonNode result = new ObjectMapper().readTree(json);
        if (result.has("runs")) {
            for (JsonNode run : result.get("runs")) {
                assertEquals(List.of(), ResultSchema.errors(run.toString()));
            }
        } else {
            assertEquals(List.of(), ResultSchema.errors(json));
        }
        String html = Files.readString(tmp.resolve(file.replace(".json", ".html")));
        assertTrue(html.startsWith("<!DOCTYPE html>") && html.contains("<svg"), "HTML report");
        return result;
    }

    private static long sum(JsonNode array) {
        long s = 0;
        for (JsonNode v : array) {
            s += v.asLong();
        }
        return s;
    }

    @Test
    void randomWorkloadCountsAddUpWithTheServer() throws Exception {
        JsonNode r = bench("random.json", "--dataset-name", "random", "--num-prompts", "10", "--random-input-len",
                "12", "--random-output-len", "6", "--random-range-ratio", "0.5", "--ignore-eos", "--max-concurrency",
                "4", "--request-rate", "20", "--seed", "3", "--save-detailed", "--goodput", "ttft:600000",
                "tpot:600000");
        assertEquals(10, r.get("completed").asInt());
        assertEquals(0, r.get("failed").asInt());
        assertEquals("epserve-grpc", r.get("backend").asText());
        long out = r.get("total_output_tokens").asLong();
        assertEquals(sum(r.get("output_lens")), out);
        assertEquals(out, r.at("/epserve/server_output_tokens").asLong(), "client tokens = usage.completion_tokens");
        assertEquals(out, r.at("/epserve/server/router/generated_tokens").asLong(), "client tokens = router /metrics");
        assertEquals(r.get("total_input_tokens").asLong(), sum(r.get("input_lens")));
        assertEquals(r.get("total_input_tokens").asLong(), r.at("/epserve/server/router/prompt_tokens").asLong());
        for (JsonNode len : r.get("output_lens")) {
            assertTrue(len.asInt() >= 3 && len.asInt() <= 9, "--ignore-eos gives the drawn length: " + len);
        }
        assertEquals(10 / r.get("duration").asDouble(), r.get("request_goodput").asDouble(), 1e-9);
        assertTrue(r.get("max_concurrent_requests").asInt() <= 4);
        // The server-side view came from every process's /metrics, found through the admin API.
        JsonNode s = r.at("/epserve/server");
        assertEquals(4, s.get("endpoints").size(), s.get("endpoints").toString());
        for (JsonNode e : s.get("endpoints")) {
            assertTrue(e.get("ok").asBoolean(), e.toString());
        }
        assertTrue(s.at("/decode_step_ms/count").asLong() > 0);
        assertTrue(s.at("/queue_ms/count").asLong() == 10, s.get("queue_ms").toString());
        assertTrue(s.at("/time_split/step").asDouble() > 0);
        assertTrue(s.get("layers").size() > 0);
        JsonNode load = s.get("expert_load");
        assertTrue(load.get("balance_mean").asDouble() > 0 && load.get("balance_mean").asDouble() <= 1);
        assertTrue(r.at("/epserve/timeline/output_tokens").size() >= 1);
        assertEquals(out, sum(r.at("/epserve/timeline/output_tokens")));
    }

    @Test
    void everyDatasetRuns() throws Exception {
        JsonNode chat = bench("chat.json", "--dataset-name", "chat-tools", "--num-prompts", "4", "--chat-output-len",
                "8", "--max-concurrency", "2");
        assertEquals(4, chat.get("completed").asInt(), chat.at("/epserve/failures").toString());
        assertEquals("epserve-grpc-chat", chat.get("backend").asText());
        assertTrue(chat.get("total_input_tokens").asLong() > 4 * 20, "chat prompts hold the tools");

        Path sharegpt = Path.of("src/test/resources/bench/sharegpt-sample.jsonl").toAbsolutePath();
        JsonNode sg = bench("sharegpt.json", "--dataset-name", "sharegpt", "--dataset-path", sharegpt.toString(),
                "--num-prompts", "5", "--sharegpt-output-len", "5", "--ignore-eos");
        assertEquals(5, sg.get("completed").asInt(), sg.at("/epserve/failures").toString());
        assertEquals(25, sg.get("total_output_tokens").asInt());

        JsonNode gsp = bench("gsp.json", "--dataset-name", "generated-shared-prefix", "--gsp-num-groups", "2",
                "--gsp-prompts-per-group", "3", "--gsp-system-prompt-len", "24", "--gsp-question-len", "4",
                "--gsp-output-len", "3", "--ignore-eos", "--request-rate", "50", "--burstiness", "0.5");
        assertEquals(6, gsp.get("num_prompts").asInt());
        assertEquals(6, gsp.get("completed").asInt());
        assertEquals(6 * 28, gsp.get("total_input_tokens").asInt());
    }

    @Test
    void rejectedRequestsAreFailuresWithReasons() throws Exception {
        JsonNode r = bench("rejected.json", "--dataset-name", "random", "--num-prompts", "3", "--random-input-len",
                String.valueOf(contextLength + 10), "--random-output-len", "4", "--save-detailed");
        assertEquals(0, r.get("completed").asInt());
        assertEquals(3, r.get("failed").asInt());
        assertEquals(3, r.get("errors").size());
        JsonNode reasons = r.at("/epserve/failures/reasons");
        assertEquals(3, sum(reasons));
        reasons.fieldNames().forEachRemaining(k -> assertTrue(k.startsWith("INVALID_ARGUMENT"), k));
        for (JsonNode e : r.get("errors")) {
            assertTrue(e.asText().startsWith("INVALID_ARGUMENT"), e.asText());
        }
    }

    @Test
    void clientCancellationsReachTheServer() throws Exception {
        JsonNode r = bench("cancel.json", "--dataset-name", "random", "--num-prompts", "3", "--random-input-len", "8",
                "--random-output-len", "12", "--ignore-eos", "--cancel-fraction", "1", "--cancel-after-tokens", "2");
        assertEquals(3, r.get("failed").asInt());
        assertEquals(3, r.at("/epserve/failures/reasons").path("CANCELLED: by the client mid-stream"
                + " (--cancel-fraction)").asInt(), r.at("/epserve/failures").toString());
        assertEquals(3, r.at("/epserve/server/router/requests/CANCELLED").asInt(), r.at("/epserve/server/router")
                .toString());
        // The cluster freed what the cancelled streams held: a full run right after completes.
        JsonNode after = bench("after-cancel.json", "--dataset-name", "random", "--num-prompts", "2",
                "--random-input-len", "8", "--random-output-len", "4", "--ignore-eos");
        assertEquals(2, after.get("completed").asInt());
    }

    @Test
    void sweepRunsEachLoadPoint() throws Exception {
        JsonNode r = bench("sweep.json", "--sweep", "--request-rate", "8,inf", "--num-prompts", "3",
                "--random-input-len", "6", "--random-output-len", "3", "--ignore-eos");
        assertEquals("request_rate", r.at("/sweep/variable").asText());
        assertEquals("[8.0,\"inf\"]", r.at("/sweep/values").toString());
        assertEquals(2, r.get("runs").size());
        for (JsonNode run : r.get("runs")) {
            assertEquals(3, run.get("completed").asInt());
        }
    }

    @Test
    void badUsageAndAnAbsentServerFailClearly() throws Exception {
        int closed;
        try (ServerSocket s = new ServerSocket(0)) {
            closed = s.getLocalPort();
        }
        EngineCommandsTest.Run r = EngineCommandsTest.run("bench", "--target", "127.0.0.1:" + closed,
                "--connect-timeout", "2", "--num-prompts", "1", "--no-progress");
        assertEquals(1, r.exit());
        assertTrue(r.err().contains("no epserve.v1 server answered at 127.0.0.1:" + closed), r.err());
        assertEquals(2, EngineCommandsTest.run("bench", "--request-rate", "0").exit());
        assertEquals(2, EngineCommandsTest.run("bench", "--goodput", "latency:5").exit());
        assertEquals(2, EngineCommandsTest.run("bench", "--request-rate", "1,2").exit());
        assertEquals(2, EngineCommandsTest.run("bench", "--sweep").exit());
        assertEquals(2, EngineCommandsTest.run("bench", "--dataset-name", "nope").exit());
        assertEquals(2, EngineCommandsTest.run("bench", "--dataset-name", "sharegpt", "--target", target).exit());
        EngineCommandsTest.Run wrongModel = EngineCommandsTest.run("bench", "--host", "127.0.0.1", "--port",
                target.substring(target.indexOf(':') + 1), "--model", "no-such-model", "--num-prompts", "1");
        assertEquals(2, wrongModel.exit());
        assertTrue(wrongModel.err().contains("--model no-such-model: the server at " + target + " serves"),
                wrongModel.err());
    }
}
