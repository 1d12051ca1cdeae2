package io.epserve.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.hazelcast.cluster.Member;
import com.hazelcast.cluster.MembershipEvent;
import com.hazelcast.cluster.MembershipListener;
import com.hazelcast.config.Config;
import com.hazelcast.config.JoinConfig;
import com.hazelcast.config.MapConfig;
import com.hazelcast.config.NetworkConfig;
import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.map.IMap;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.weights.ExpertWeights;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * This process as a member of the epserve cluster: a Hazelcast member (TCP-IP join on the given addresses, or
 * Kubernetes discovery), its {@link MemberInfo} in the member map, and typed access to the shared state:
 *
 * <ul>
 *   <li>{@code epserve-cluster}: the model the cluster serves (fingerprint and shape), set by the first member; a
 *       process with another model is refused at join with an error naming both;
 *   <li>{@code epserve-members}: member uuid -> {@link MemberInfo} JSON; only entries of live members count;
 *   <li>{@code epserve-placement}: {@code current} and {@code target} {@link PlacementTable}s;
 *   <li>{@code epserve-load}: attention worker id -> routed token counts per (layer, expert) over a sliding window;
 *   <li>{@code epserve-requests}: operator requests ({@code drain:ID}, {@code rebalance}).
 * </ul>
 *
 * The coordinator is the oldest member (Hazelcast keeps members in join order on every member), so it is re-elected
 * by itself when it leaves or dies. Every map keeps two synchronous backups, so the state survives any one or two
 * processes dying.
 */
public final class ClusterNode implements AutoCloseable {
    public static final String CLUSTER_MAP = "epserve-cluster";
    public static final String MEMBERS_MAP = "epserve-members";
    public static final String PLACEMENT_MAP = "epserve-placement";
    public static final String LOAD_MAP = "epserve-load";
    public static final String REQUESTS_MAP = "epserve-requests";
    static final String CURRENT = "current";
    static final String TARGET = "target";
    static final String REBALANCE = "rebalance";
    static final String REBALANCE_RESULT = "rebalance-result";
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Settings; every setter returns this. */
    public static final class Options {
        String name = "epserve";
        String host = "127.0.0.1";
        int port = 5701;
        List<String> members = new ArrayList<>(List.of("127.0.0.1:5701-5710"));
        String kubernetesService;
        String kubernetesNamespace;
        Consumer<String> log = s -> { };

        public Options name(String v) { name = v; return this; }
        /** The address this member binds and announces (0.0.0.0: every interface, announcing the first). */
        public Options host(String v) { host = v; return this; }
        /** First port tried; the next free one up to +100 is taken. */
        public Options port(int v) { port = v; return this; }
        /** TCP-IP join addresses, "HOST:PORT" or "HOST:PORT-PORT". */
        public Options members(List<String> v) { members = new ArrayList<>(v); return this; }
        /** Kubernetes discovery through the DNS of this headless service (replaces the TCP-IP list). */
        public Options kubernetesService(String v) { kubernetesService = v; return this; }
        public Options kubernetesNamespace(String v) { kubernetesNamespace = v; return this; }
        public Options log(Consumer<String> v) { log = v; return this; }

        public void validate() {
            if (name == null || name.isBlank()) {
                throw new IllegalArgumentException("--cluster-name must not be empty");
            }
            if (port < 1 || port > 65535) {
                throw new IllegalArgumentException("--cluster-port must be in 1..65535, got " + port);
            }
            if (kubernetesService == null && members.isEmpty()) {
                throw new IllegalArgumentException("--cluster-members: give at least one HOST:PORT to join");
            }
            for (String m : members) {
                if (!m.matches("[^:\\s]+:\\d{1,5}(-\\d{1,5})?")) {
                    throw new IllegalArgumentException("--cluster-members: '" + m + "' is not HOST:PORT or HOST:PORT-PORT");
                }
            }
            expand(members);
        }
    }

    public static Options options() {
        return new Options();
    }

    /**
     * The model every member of one cluster must serve: its config's fingerprint and shape, and for workers (which
     * hold weights) the checkpoint's fingerprint ({@link Fingerprint#checkpoint}); null for a router.
     */
    public record ModelIdentity(String fingerprint, int layers, int experts, boolean mtp, String checkpoint) {
        public ModelIdentity(String fingerprint, int layers, int experts, boolean mtp) {
            this(fingerprint, layers, experts, mtp, null);
        }

        public static ModelIdentity of(String fingerprint, ModelConfig c) {
            return new ModelIdentity(fingerprint, ExpertWeights.layerCount(c), c.nRoutedExperts(), c.nMtpLayers() > 0);
        }

        /** A worker's identity: the config's fingerprint and its checkpoint's. */
        public ModelIdentity withCheckpoint(String checkpointFingerprint) {
            return new ModelIdentity(fingerprint, layers, experts, mtp, checkpointFingerprint);
        }

        String toJson() {
            ObjectNode n = JSON.createObjectNode();
            n.put("fingerprint", fingerprint).put("layers", layers).put("experts", experts).put("mtp", mtp);
            return n.toString();
        }

        static ModelIdentity fromJson(String s) {
            try {
                JsonNode n = JSON.readTree(s);
                return new ModelIdentity(n.path("fingerprint").asText(), n.path("layers").asInt(),
                        n.path("experts").asInt(), n.path("mtp").asBoolean());
            } catch (IOException e) {
                throw new IllegalStateException("unreadable cluster model record: " + s, e);
            }
        }
    }

    private final Options o;
    private final HazelcastInstance hz;
    private final ModelIdentity model;
    private final IMap<String, String> cluster;
    private final IMap<String, String> members;
    private final IMap<String, String> placement;
    private final IMap<String, String> load;
    private final IMap<String, String> requests;
    private final String uuid;
    private final List<Runnable> membershipListeners = new CopyOnWriteArrayList<>();
    private volatile MemberInfo self;
    private volatile boolean closed;

    private ClusterNode(Options o, HazelcastInstance hz, ModelIdentity model) {
        this.o = o;
        this.hz = hz;
        this.model = model;
        this.cluster = hz.getMap(CLUSTER_MAP);
        this.members = hz.getMap(MEMBERS_MAP);
        this.placement = hz.getMap(PLACEMENT_MAP);
        this.load = hz.getMap(LOAD_MAP);
        this.requests = hz.getMap(REQUESTS_MAP);
        this.uuid = hz.getCluster().getLocalMember().getUuid().toString();
        hz.getCluster().addMembershipListener(new MembershipListener() {
            @Override
            public void memberAdded(MembershipEvent e) {
                membershipListeners.forEach(Runnable::run);
            }

            @Override
            public void memberRemoved(MembershipEvent e) {
                membershipListeners.forEach(Runnable::run);
            }
        });
    }

    /**
     * Joins (or founds) the cluster, checks that it serves the same model and that no live member has the same role
     * and id, then announces {@code info}. Throws {@link ClusterException} with the reason otherwise (nothing left
     * running).
     */
    public static ClusterNode join(Options o, ModelIdentity model, MemberInfo info) {
        o.validate();
        quietHazelcastLogs();
        HazelcastInstance hz;
        try {
            hz = Hazelcast.newHazelcastInstance(config(o));
        } catch (RuntimeException e) {
            throw new ClusterException("cannot join cluster '" + o.name + "' (" + String.join(",", o.members) + "): "
                    + e.getMessage(), e);
        }
        try {
            ClusterNode node = new ClusterNode(o, hz, model);
            String theirs = node.cluster.putIfAbsent("model", model.toJson());
            if (theirs != null) {
                ModelIdentity c = ModelIdentity.fromJson(theirs);
                if (!c.fingerprint().equals(model.fingerprint())) {
                    throw new ClusterException("cluster '" + o.name + "' serves model " + c.fingerprint()
                            + "; this " + info.role() + " was started with model " + model.fingerprint()
                            + " (point --model at the cluster's model, or use another --cluster-name)");
                }
            }
            if (model.checkpoint() != null) {
                String ck = node.cluster.putIfAbsent("checkpoint", model.checkpoint());
                if (ck != null && !ck.equals(model.checkpoint())) {
                    throw new ClusterException("cluster '" + o.name + "' serves model " + model.fingerprint()
                            + " with the weights of checkpoint " + ck + "; this " + info.role() + " was started with"
                            + " the same config but other weights (checkpoint " + model.checkpoint() + "): point"
                            + " --model at the cluster's checkpoint, or use another --cluster-name");
                }
            }
            if (!info.isRouter()) {
                for (MemberInfo m : node.liveMembers()) {
                    if (m.role().equals(info.role()) && m.id() == info.id()) {
                        throw new ClusterException("cluster '" + o.name + "' already has " + m.name()
                                + "; give this " + info.role() + " another --worker-id");
                    }
                }
            }
            node.announce(info);
            o.log.accept("joined cluster '" + o.name + "' as member " + node.uuid + " at "
                    + hz.getCluster().getLocalMember().getAddress() + " (" + hz.getCluster().getMembers().size()
                    + " members)");
            return node;
        } catch (RuntimeException e) {
            hz.shutdown();
            throw e;
        }
    }

    /**
     * Hazelcast's warnings on one line each, without stack traces: a member that dies makes every other member log
     * connection resets and retried operations, which say nothing the membership events do not.
     */
    private static synchronized void quietHazelcastLogs() {
        Logger hz = Logger.getLogger("com.hazelcast");
        if (hz.getUseParentHandlers()) {
            hz.setUseParentHandlers(false);
            hz.setLevel(Level.WARNING);
            java.util.logging.Handler h = new java.util.logging.StreamHandler(System.err,
                    new java.util.logging.Formatter() {
                        @Override
                        public String format(java.util.logging.LogRecord r) {
                            Throwable t = r.getThrown();
                            return "hazelcast " + r.getLevel().getName().toLowerCase(java.util.Locale.ROOT) + ": "
                                    + formatMessage(r) + (t == null ? "" : " (" + t + ")") + System.lineSeparator();
                        }
                    }) {
                @Override
                public synchronized void publish(java.util.logging.LogRecord r) {
                    super.publish(r);
                    flush();
                }
            };
            h.setLevel(Level.WARNING);
            hz.addHandler(h);
        }
    }

    private static Config config(Options o) {
        Config c = new Config();
        c.setClusterName(o.name);
        c.setProperty("hazelcast.logging.type", "jdk");
        c.setProperty("hazelcast.phone.home.enabled", "false");
        c.setProperty("hazelcast.shutdownhook.enabled", "false");
        c.setProperty("hazelcast.wait.seconds.before.join", "0");
        // A dead member is noticed from its closed connections within a second or so; the heartbeat bound is the
        // backstop for a member that hangs without closing them.
        c.setProperty("hazelcast.heartbeat.interval.seconds", "1");
        c.setProperty("hazelcast.max.no.heartbeat.seconds", "10");
        c.setProperty("hazelcast.merge.first.run.delay.seconds", "5");
        c.setProperty("hazelcast.merge.next.run.delay.seconds", "5");
        c.getJetConfig().setEnabled(false);
        c.addMapConfig(new MapConfig("epserve-*").setBackupCount(2));
        NetworkConfig n = c.getNetworkConfig();
        n.setPort(o.port).setPortAutoIncrement(true).setPortCount(100);
        JoinConfig j = n.getJoin();
        j.getMulticastConfig().setEnabled(false);
        j.getAutoDetectionConfig().setEnabled(false);
        if (o.kubernetesService != null) {
            j.getKubernetesConfig().setEnabled(true).setProperty("service-dns", o.kubernetesService
                    + (o.kubernetesNamespace != null ? "." + o.kubernetesNamespace + ".svc.cluster.local" : ""));
        } else {
            j.getTcpIpConfig().setEnabled(true).setMembers(expand(o.members));
            if (!o.host.equals("0.0.0.0")) {
                c.setProperty("hazelcast.socket.bind.any", "false");
                n.getInterfaces().setEnabled(true).addInterface(o.host);
            }
        }
        return c;
    }

    /** "HOST:P1-P2" -> one address per port (Hazelcast's interface matching does not take ranges). */
    static List<String> expand(List<String> members) {
        List<String> out = new ArrayList<>();
        for (String m : members) {
            int colon = m.lastIndexOf(':');
            String ports = m.substring(colon + 1);
            int dash = ports.indexOf('-');
            if (dash < 0) {
                out.add(m);
                continue;
            }
            int lo = Integer.parseInt(ports.substring(0, dash));
            int hi = Integer.parseInt(ports.substring(dash + 1));
            if (hi < lo || hi - lo > 200) {
                throw new IllegalArgumentException("--cluster-members: '" + m + "' is not a range of at most 200 ports");
            }
            for (int p = lo; p <= hi; p++) {
                out.add(m.substring(0, colon + 1) + p);
            }
        }
        return out;
    }

    public String uuid() {
        return uuid;
    }

    public String clusterName() {
        return o.name;
    }

    public ModelIdentity model() {
        return model;
    }

    public MemberInfo self() {
        return self;
    }

    /** "HOST:PORT" of this Hazelcast member. */
    public String address() {
        var a = hz.getCluster().getLocalMember().getAddress();
        return a.getHost() + ":" + a.getPort();
    }

    /** Runs {@code r} (on a Hazelcast thread: keep it short) when a member joins or leaves. */
    public void onMembershipChange(Runnable r) {
        membershipListeners.add(r);
    }

    /** Publishes this member's record. */
    public synchronized void announce(MemberInfo info) {
        MemberInfo withId = info.withUuid(uuid);
        self = withId;
        if (!closed) {
            members.set(uuid, withId.toJson());
        }
    }

    /** Changes and republishes this member's record. */
    public synchronized void update(UnaryOperator<MemberInfo> change) {
        announce(change.apply(self));
    }

    /** Uuids of the live members, oldest first. */
    public List<String> liveUuids() {
        List<String> ids = new ArrayList<>();
        for (Member m : hz.getCluster().getMembers()) {
            ids.add(m.getUuid().toString());
        }
        return ids;
    }

    /** Whether this member is the oldest, i.e. the coordinator. */
    public boolean isCoordinator() {
        return hz.getCluster().getMembers().iterator().next().localMember();
    }

    /** The records of live members, oldest member first (records not yet written are skipped). */
    public List<MemberInfo> liveMembers() {
        List<String> live = liveUuids();
        Map<String, String> all = members.getAll(new HashSet<>(live));
        List<MemberInfo> out = new ArrayList<>();
        for (String id : live) {
            String json = all.get(id);
            if (json != null) {
                try {
                    out.add(MemberInfo.fromJson(json));
                } catch (IllegalArgumentException e) {
                    o.log.accept("skipped member " + id + ": " + e.getMessage());
                }
            }
        }
        return out;
    }

    /** Removes the records of members that are gone (the coordinator's housekeeping). */
    void forgetDeparted() {
        Set<String> live = new HashSet<>(liveUuids());
        for (String k : members.keySet()) {
            if (!live.contains(k)) {
                members.delete(k);
            }
        }
    }

    public PlacementTable current() {
        return table(CURRENT);
    }

    public PlacementTable target() {
        return table(TARGET);
    }

    private PlacementTable table(String key) {
        String json = placement.get(key);
        return json == null ? null : PlacementTable.fromJson(json);
    }

    void putTarget(PlacementTable t) {
        placement.set(TARGET, t.toJson());
    }

    void clearTarget() {
        placement.delete(TARGET);
    }

    /** The coordinator's flip: the target becomes current. */
    void putCurrent(PlacementTable t) {
        placement.set(CURRENT, t.toJson());
        placement.delete(TARGET);
    }

    /** An attention worker's routed tokens per [layer][expert] over its window. */
    public void putLoad(int attentionWorker, long[][] counts) {
        load.set(Integer.toString(attentionWorker), JSON.valueToTree(counts).toString());
    }

    /** Every attention worker's reported counts summed (live workers only), or null when none reported. */
    public double[][] load() {
        return load(liveMembers());
    }

    /** As {@link #load()}, for the attention workers among {@code members} (a list the caller already read). */
    public double[][] load(List<MemberInfo> members) {
        Set<Integer> live = new HashSet<>();
        for (MemberInfo m : members) {
            if (m.isAttentionWorker()) {
                live.add(m.id());
            }
        }
        double[][] sum = null;
        for (Map.Entry<String, String> e : load.entrySet()) {
            if (!live.contains(Integer.parseInt(e.getKey()))) {
                continue;
            }
            try {
                long[][] c = JSON.readValue(e.getValue(), long[][].class);
                if (sum == null) {
                    sum = new double[c.length][c.length == 0 ? 0 : c[0].length];
                }
                for (int l = 0; l < Math.min(c.length, sum.length); l++) {
                    for (int x = 0; x < Math.min(c[l].length, sum[l].length); x++) {
                        sum[l][x] += c[l][x];
                    }
                }
            } catch (IOException ex) {
                o.log.accept("skipped the load of attention worker " + e.getKey() + ": " + ex.getMessage());
            }
        }
        return sum;
    }

    /** Asks the coordinator to move every expert off expert worker {@code id}, after which it exits. */
    public void requestDrain(int id) {
        requests.set("drain:" + id, Long.toString(System.currentTimeMillis()));
    }

    public boolean drainRequested(int id) {
        return requests.containsKey("drain:" + id);
    }

    /** Expert worker ids with a drain request. */
    public Set<Integer> drainRequests() {
        Set<Integer> ids = new HashSet<>();
        for (String k : requests.keySet()) {
            if (k.startsWith("drain:")) {
                ids.add(Integer.parseInt(k.substring(6)));
            }
        }
        return ids;
    }

    void forgetDrain(int id) {
        requests.delete("drain:" + id);
    }

    /** Asks the coordinator for an EPLB rebalance now, whatever the gain. */
    public void requestRebalance() {
        requests.delete(REBALANCE_RESULT);
        requests.set(REBALANCE, Long.toString(System.currentTimeMillis()));
    }

    /** The coordinator's answer to the last rebalance request: "target N", "unchanged N" or "failed: why". */
    public String rebalanceResult() {
        return requests.get(REBALANCE_RESULT);
    }

    void rebalanceResult(String result) {
        requests.set(REBALANCE_RESULT, result);
    }

    /** Takes the pending rebalance request, if any. */
    boolean takeRebalanceRequest() {
        return requests.remove(REBALANCE) != null;
    }

    /** The coordinator's uuid. */
    public String coordinatorUuid() {
        return hz.getCluster().getMembers().iterator().next().getUuid().toString();
    }

    public int size() {
        return hz.getCluster().getMembers().size();
    }

    /** Removes this member's record and leaves the cluster (its partitions migrate to the others). */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        try {
            members.delete(uuid);
        } catch (RuntimeException e) {
            // Leaving anyway: the coordinator forgets records of departed members.
        }
        hz.shutdown();
    }

    /** For log lines: "3 members: router 0, attention-worker 0, expert-worker 0". */
    public String describeMembers() {
        List<MemberInfo> live = liveMembers();
        StringBuilder sb = new StringBuilder(live.size() + " members:");
        for (MemberInfo m : live) {
            sb.append(' ').append(m.role()).append(' ').append(m.id()).append(',');
        }
        return sb.substring(0, sb.length() - 1);
    }

    static Map<Integer, MemberInfo> byId(List<MemberInfo> infos, String role) {
        Map<Integer, MemberInfo> m = new HashMap<>();
        for (MemberInfo i : infos) {
            if (i.role().equals(role)) {
                m.put(i.id(), i);
            }
        }
        return m;
    }
}
