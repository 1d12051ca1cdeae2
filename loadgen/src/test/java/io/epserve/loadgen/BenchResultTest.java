package io.epserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import io.epserve.proto.v1.GenerateRequest;
import io.epserve.proto.v1.SamplingParams;
import io.epserve.proto.v1.TokenIds;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** vLLM's definitions of TTFT, TPOT, ITL, E2EL, goodput and peaks on streams with known timings. */
class BenchResultTest {
    private static final long MS = 1_000_000;

    static LoadRunner.Run knownRun() {
        List<RequestOutcome> o = new ArrayList<>();
        // 4 tokens one by one: TTFT 100, gaps 50, 50, 50, E2EL 260, TPOT (260 - 100) / 3.
        o.add(RequestOutcome.of(0, 0, new long[] {100 * MS, 150 * MS, 200 * MS, 250 * MS}, new int[] {1, 1, 1, 1},
                260 * MS, 10));
        // 3 tokens in two messages: TTFT 300, one gap of 100, E2EL 400, TPOT (400 - 300) / 2 = 50.
        o.add(RequestOutcome.of(1, 1_000 * MS, new long[] {1_300 * MS, 1_400 * MS}, new int[] {2, 1}, 1_400 * MS,
                20));
        o.add(RequestOutcome.failed(2, 400 * MS, 500 * MS, "RESOURCE_EXHAUSTED: queue full"));
        // One token: no TPOT (0 for goodput), TTFT 100, E2EL 110.
        o.add(RequestOutcome.of(3, 1_100 * MS, new long[] {1_200 * MS}, new int[] {1}, 1_210 * MS, 30));
        return new LoadRunner.Run(o, 0, 1_400 * MS);
    }

    static List<BenchRequest> requests(int n) {
        GenerateRequest r = GenerateRequest.newBuilder().setTokenIds(TokenIds.newBuilder().addIds(1))
                .setSampling(SamplingParams.newBuilder().setMaxTokens(4)).build();
        return Collections.nCopies(n, BenchRequest.generate(r, 1));
    }

    static BenchResult.Info info(Map<String, Double> slo, boolean detailed) {
        return new BenchResult.Info("20261129-200000", "epserve-grpc", "test", "tiny", "127.0.0.1:1", 4, 1, null,
                new RandomDataset(8, 4, 0, 0).describe(), 0, true, 0, slo, BenchResult.METRICS,
                new double[] {50, 90, 99, 99.9}, detailed);
    }

    @Test
    void vllmDefinitions() {
        Map<String, Double> slo = new LinkedHashMap<>();
        slo.put("ttft", 150.0);
        slo.put("tpot", 60.0);
        JsonNode r = BenchResult.build(knownRun(), requests(4), info(slo, true), null);
        assertEquals(1.4, r.get("duration").asDouble(), 1e-12);
        assertEquals(3, r.get("completed").asInt());
        assertEquals(1, r.get("failed").asInt());
        assertEquals(60, r.get("total_input_tokens").asInt());
        assertEquals(8, r.get("total_output_tokens").asInt());
        assertEquals(3 / 1.4, r.get("request_throughput").asDouble(), 1e-12);
        assertEquals(8 / 1.4, r.get("output_throughput").asDouble(), 1e-12);
        assertEquals(68 / 1.4, r.get("total_token_throughput").asDouble(), 1e-12);
        // Good: request 0 (TTFT 100, TPOT 53.3) and request 3 (TTFT 100, TPOT counted 0); request 1 misses TTFT.
        assertEquals(2 / 1.4, r.get("request_goodput").asDouble(), 1e-12);
        assertEquals((100 + 300 + 100) / 3.0, r.get("mean_ttft_ms").asDouble(), 1e-9);
        assertEquals(100, r.get("median_ttft_ms").asDouble(), 1e-9);
        assertEquals((160 / 3.0 + 50) / 2, r.get("mean_tpot_ms").asDouble(), 1e-9);
        // ITL pooled over requests: 50, 50, 50, 100.
        assertEquals(62.5, r.get("mean_itl_ms").asDouble(), 1e-9);
        assertEquals(50, r.get("median_itl_ms").asDouble(), 1e-9);
        assertEquals(98.5, r.get("p99_itl_ms").asDouble(), 1e-9);
        assertEquals(Math.sqrt(3 * 12.5 * 12.5 + 37.5 * 37.5) / 2, r.get("std_itl_ms").asDouble(), 1e-9);
        assertEquals((260 + 400 + 110) / 3.0, r.get("mean_e2el_ms").asDouble(), 1e-9);
        assertTrue(r.has("p99.9_e2el_ms"));
        // Token buckets: 4 tokens in second 0, 3 + 1 in second 1; requests 1 and 3 overlap.
        assertEquals(4, r.get("max_output_tokens_per_s").asDouble(), 1e-12);
        assertEquals(2, r.get("max_concurrent_requests").asInt());
        // Detailed arrays, in workload order, failures included.
        assertEquals("[10,20,1,30]", r.get("input_lens").toString()); // a failed one: the dataset's count
        assertEquals("[4,3,0,1]", r.get("output_lens").toString());
        assertEquals("RESOURCE_EXHAUSTED: queue full", r.get("errors").get(2).asText());
        assertEquals(1, r.get("itls").get(1).size());
        assertEquals(0.1, r.get("itls").get(1).get(0).asDouble(), 1e-12);
        // AIPerf names: inter_token_latency is TPOT, inter_chunk_latency is ITL.
        assertEquals(r.get("mean_tpot_ms").asDouble(), r.at("/aiperf/inter_token_latency/avg").asDouble(), 1e-12);
        assertEquals(r.get("mean_itl_ms").asDouble(), r.at("/aiperf/inter_chunk_latency/avg").asDouble(), 1e-12);
        assertEquals(275, r.at("/aiperf/time_to_second_token/p50").asDouble(), 1e-9); // 150 (req 0) and 400 (req 1)
        // epserve's own.
        assertEquals(1, r.at("/epserve/failures/reasons/RESOURCE_EXHAUSTED: queue full").asInt());
        assertEquals(8, r.at("/epserve/server_output_tokens").asInt());
        assertEquals("[4,4]", r.at("/epserve/timeline/output_tokens").toString());
        assertEquals("[1,2]", r.at("/epserve/timeline/completed_requests").toString());
        assertEquals("[2,2]", r.at("/epserve/timeline/started_requests").toString());
        assertEquals(List.of(), ResultSchema.errors(r.toString()));
    }

    @Test
    void noSloNoGoodputAndTheSchemaCatchesABrokenResult() {
        JsonNode r = BenchResult.build(knownRun(), requests(4), info(Map.of(), false), null);
        assertTrue(r.get("request_goodput").isNull());
        assertFalse(r.has("ttfts"));
        assertEquals(List.of(), ResultSchema.errors(r.toString()));
        var broken = ((com.fasterxml.jackson.databind.node.ObjectNode) r.deepCopy());
        broken.remove("completed");
        broken.put("failed", -1);
        broken.set("request_rate", JsonNodeFactory.instance.textNode("fast"));
        String errors = ResultSchema.errors(broken.toString()).toString();
        assertTrue(errors.contains("/request_rate") && errors.contains("/failed") && errors.contains("completed"),
                errors);
    }
}
