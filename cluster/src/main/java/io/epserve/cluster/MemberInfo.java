package io.epserve.cluster;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.Map;
import java.util.TreeMap;

/**
 * What a process announces about itself in the cluster's member map (keyed by its Hazelcast member id), rewritten
 * whenever it changes: role and worker id, where to reach it (gRPC address; Aeron endpoint of its data-plane inbox),
 * the model it serves, readiness, the experts it holds (expert workers), the placement epoch it uses (attention
 * workers) and a few gauges for the operator API. Stored as JSON so that any version of any process can read it.
 *
 * @param role {@link #ROUTER}, {@link #ATTENTION_WORKER} or {@link #EXPERT_WORKER}
 * @param state {@link #STARTING}, {@link #READY} or {@link #DRAINING}
 * @param held an expert worker's mapped experts, {@link Placement#canonical()} ({@code none} before any)
 * @param epoch the placement epoch an attention worker steps with (0 before the first)
 * @param gauges role-specific numbers for the operator (queue depths, KV bytes, rows computed, ...), and
 *     {@link #METRICS_PORT} for every process that serves /metrics
 */
@JsonIgnoreProperties(ignoreUnknown = true)
public record MemberInfo(String uuid, String role, int id, String grpc, String aeron, String model, long pid,
                         String state, String held, long epoch, Map<String, Long> gauges, long updatedMs) {
    public static final String ROUTER = "router";
    public static final String ATTENTION_WORKER = "attention-worker";
    public static final String EXPERT_WORKER = "expert-worker";
    public static final String STARTING = "starting";
    public static final String READY = "ready";
    public static final String DRAINING = "draining";

    /**
     * The gauge under which every process that serves /metrics ({@code --metrics-port}) announces the endpoint's
     * port, so that a client of the router's admin API (Status) finds every endpoint. The endpoint's host is not
     * announced: it is the member's own, {@link #host(String, String)} of its gRPC address and Aeron endpoint — the
     * advertised gRPC host for routers and attention workers, the Aeron endpoint's host for expert workers (no gRPC
     * server). So that others can scrape it there, bind it ({@code --metrics-host}) to an address that host reaches,
     * e.g. 0.0.0.0 in a pod.
     */
    public static final String METRICS_PORT = "metrics_port";

    private static final ObjectMapper JSON = new ObjectMapper();

    public MemberInfo {
        gauges = gauges == null ? Map.of() : Map.copyOf(gauges);
        held = held == null ? Placement.NONE : held;
        grpc = grpc == null ? "" : grpc;
        aeron = aeron == null ? "" : aeron;
    }

    public static MemberInfo of(String role, int id, String grpc, String aeron, String model) {
        return new MemberInfo("", role, id, grpc, aeron, model, ProcessHandle.current().pid(), STARTING, Placement.NONE,
                0, Map.of(), System.currentTimeMillis());
    }

    public MemberInfo withUuid(String v) {
        return new MemberInfo(v, role, id, grpc, aeron, model, pid, state, held, epoch, gauges, updatedMs);
    }

    public MemberInfo withState(String v) {
        return new MemberInfo(uuid, role, id, grpc, aeron, model, pid, v, held, epoch, gauges, System.currentTimeMillis());
    }

    public MemberInfo withHeld(String v) {
        return new MemberInfo(uuid, role, id, grpc, aeron, model, pid, state, v, epoch, gauges, System.currentTimeMillis());
    }

    public MemberInfo withEpoch(long v) {
        return new MemberInfo(uuid, role, id, grpc, aeron, model, pid, state, held, v, gauges, System.currentTimeMillis());
    }

    public MemberInfo withGauges(Map<String, Long> v) {
        return new MemberInfo(uuid, role, id, grpc, aeron, model, pid, state, held, epoch, new TreeMap<>(v),
                System.currentTimeMillis());
    }

    public MemberInfo withGrpc(String v) {
        return new MemberInfo(uuid, role, id, v, aeron, model, pid, state, held, epoch, gauges, System.currentTimeMillis());
    }

    public boolean isExpertWorker() {
        return EXPERT_WORKER.equals(role);
    }

    public boolean isAttentionWorker() {
        return ATTENTION_WORKER.equals(role);
    }

    public boolean isRouter() {
        return ROUTER.equals(role);
    }

    public boolean ready() {
        return READY.equals(state);
    }

    public boolean draining() {
        return DRAINING.equals(state);
    }

    /**
     * The host a member is reached at: that of its gRPC address (HOST:PORT) when it has one, else that of its Aeron
     * endpoint (HOST:PORT, or the {@code endpoint=} of an {@code aeron:udp} URI); null when neither names a host (an
     * expert worker on Aeron IPC shares the machine of its attention workers). IPv6 hosts keep their brackets.
     */
    public static String host(String grpc, String aeron) {
        String h = hostOf(grpc);
        if (h != null || aeron == null) {
            return h;
        }
        return hostOf(aeron.startsWith("aeron:") ? uriEndpoint(aeron) : aeron);
    }

    private static String hostOf(String hostPort) {
        if (hostPort == null || hostPort.isEmpty()) {
            return null;
        }
        int colon = hostPort.lastIndexOf(':');
        return colon <= 0 || hostPort.endsWith("]") ? null : hostPort.substring(0, colon);
    }

    private static String uriEndpoint(String uri) {
        int q = uri.indexOf('?');
        if (q < 0) {
            return null;
        }
        for (String p : uri.substring(q + 1).split("\\|")) {
            if (p.startsWith("endpoint=")) {
                return p.substring("endpoint=".length());
            }
        }
        return null;
    }

    /** "expert-worker 1 (pid 123)". */
    public String name() {
        return role + " " + id + " (pid " + pid + ")";
    }

    public String toJson() {
        try {
            return JSON.writeValueAsString(this);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    public static MemberInfo fromJson(String json) {
        try {
            return JSON.readValue(json, MemberInfo.class);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("unreadable member record: " + e.getOriginalMessage(), e);
        }
    }
}
