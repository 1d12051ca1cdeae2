package io.epserve.attention;

import io.epserve.cluster.Fingerprint;
import io.epserve.cluster.Placement;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.weights.ExpertWeights;
import io.epserve.transport.Channels;
import io.epserve.transport.MediaDriverHandle;
import io.epserve.transport.MessageReceiver;
import io.epserve.transport.MessageSender;
import io.epserve.transport.TransportException;
import io.epserve.transport.WireFormatException;
import io.epserve.transport.WireHandler;
import io.epserve.transport.sbe.CombineDecoder;
import io.epserve.transport.sbe.ErrorCode;
import io.epserve.transport.sbe.ErrorDecoder;
import io.epserve.transport.sbe.HelloDecoder;
import io.epserve.transport.sbe.HelloStatus;
import io.epserve.transport.sbe.Role;
import io.epserve.cluster.PlacementTable;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.agrona.concurrent.BackoffIdleStrategy;

/**
 * The attention worker's side of the data plane: one exclusive publication per expert worker, one inbox subscription
 * for everything they send back, the Hello/READY handshake, and the delivery of combine rows and errors to the
 * micro-batch exchanges in flight. Single-threaded: only the engine thread uses it.
 */
final class ExpertClient implements AutoCloseable, WireHandler {
    private static final int FRAGMENT_LIMIT = 64;

    private final ModelConfig config;
    private final int source;
    private final String modelFingerprint;
    private final MediaDriverHandle driver;
    private final String inboxChannel;
    /** Where expert workers send to reach the inbox: the inbox, or its advertised address (a pod's IP). */
    private final String replyChannel;
    private final int inboxStream;
    private final MessageReceiver inbox;
    /** Copy-on-write: the Status RPC reads it from a gRPC thread while the engine thread adds links. */
    private final List<ExpertLink> links = new CopyOnWriteArrayList<>();
    private final ExpertLink[] byWorker;
    private final MoeExchange[] exchanges;
    private final Consumer<String> log;
    private ExpertMap map;
    private byte[] rowBytes;
    private String handshakeFailure;
    /** Expert workers come and go with the control plane (else: the fixed list given at start). */
    private final boolean elastic;
    /** Elastic: the usable link of each expert worker id. */
    private final Map<Integer, ExpertLink> linkById = new HashMap<>();
    private volatile ClusterView view;
    /** The view the links were last matched against (engine thread). */
    private ClusterView seenView;
    private volatile long activeEpoch;
    private long nextHelloNs;
    /** Routed slots sent per [layer][expert], for the control plane's load balancing; engine thread only. */
    final long[][] load;

    long staleCombines;
    long combineBytes;
    long routedSlots;

    /**
     * Opens the publications and the inbox; {@link #connect} does the handshake.
     *
     * @param endpoints expert workers' listen endpoints (HOST:PORT, ipc or aeron: URIs), in priority order
     * @param inbox this worker's combine inbox endpoint
     */
    ExpertClient(ModelConfig config, int source, String modelFingerprint, MediaDriverHandle driver,
                 List<String> endpoints, boolean elastic, String inbox, String advertisedInbox, int dispatchStream,
                 int inboxStream, long sendTimeoutNs, Consumer<String> log) {
        if (endpoints.isEmpty() && !elastic) {
            throw new IllegalArgumentException("no expert workers given");
        }
        this.elastic = elastic;
        this.dispatchStream = dispatchStream;
        this.sendTimeoutNs = sendTimeoutNs;
        this.load = new long[ExpertWeights.layerCount(config)][config.nRoutedExperts()];
        this.config = config;
        this.source = source;
        this.modelFingerprint = modelFingerprint;
        this.driver = driver;
        this.log = log;
        this.inboxChannel = Channels.ofEndpoint(inbox);
        this.replyChannel = advertisedInbox == null ? inboxChannel : Channels.ofEndpoint(advertisedInbox);
        this.inboxStream = inboxStream;
        this.rowBytes = new byte[2 * config.dim()];
        // As many as a step may use (a decode request may ask for another m than the worker's own).
        this.exchanges = new MoeExchange[MicroBatchEngine.MAX_MICRO_BATCHES];
        for (int i = 0; i < exchanges.length; i++) {
            exchanges[i] = new MoeExchange(i, config.dim(), config.nActivatedExperts());
        }
        this.byWorker = new ExpertLink[1 << 16];
        MessageReceiver in = null;
        try {
            in = driver.newReceiver(inboxChannel, inboxStream, this);
            for (String ep : endpoints) {
                newLink(ep);
            }
        } catch (RuntimeException e) {
            links.forEach(ExpertLink::close);
            if (in != null) {
                in.close();
            }
            throw e;
        }
        this.inbox = in;
    }

    private final int dispatchStream;
    private final long sendTimeoutNs;

    private ExpertLink newLink(String endpoint) {
        String channel = Channels.ofEndpoint(endpoint);
        MessageSender s = driver.newSender(channel, dispatchStream, new BackoffIdleStrategy(), sendTimeoutNs);
        ExpertLink link = new ExpertLink(links.size(), endpoint, channel, s);
        links.add(link);
        return link;
    }

    String inboxChannel() {
        return inboxChannel;
    }

    /** What the control plane says: the current table and the live expert workers' endpoints by id. */
    record ClusterView(PlacementTable table, Map<Integer, String> endpoints) {
    }

    boolean elastic() {
        return elastic;
    }

    /** From the membership thread: the latest view, taken by the engine thread at its next {@link #refresh}. */
    void offer(ClusterView v) {
        view = v;
    }

    /** Whether the cluster has a newer table than the one steps use (any thread). */
    boolean newerTableOffered() {
        ClusterView v = view;
        return elastic && v != null && v.table() != null && v.table().epoch() > activeEpoch;
    }

    /** The placement epoch steps use now (0 before the first, or without the control plane). */
    long epoch() {
        return activeEpoch;
    }

    /**
     * Engine thread, elastic only: connects to expert workers that joined, marks those that left as lost, says Hello
     * to those not ready yet and, with {@code maySwitch} (between steps, or in a failover), moves to a newer table once
     * every worker in it is ready with its experts. Returns whether it switched.
     */
    boolean refresh(boolean maySwitch) {
        ClusterView v = view;
        if (!elastic || v == null) {
            return false;
        }
        if (v != seenView) {
            seenView = v;
            learnMembers(v);
        }
        long now = System.nanoTime();
        if (now >= nextHelloNs) {
            nextHelloNs = now + TimeUnit.MILLISECONDS.toNanos(200);
            for (ExpertLink l : linkById.values()) {
                if (!l.ready && l.lost == null && l.sender.isConnected()) {
                    try {
                        l.control.hello(0, source, Role.ATTENTION_WORKER, HelloStatus.HELLO, modelFingerprint,
                                replyChannel, inboxStream);
                    } catch (TransportException ex) {
                        // Not up yet: again at the next round.
                    }
                }
            }
            closeAbandonedLinks();
        }
        if (maySwitch && v.table() != null && (map == null || v.table().epoch() > map.epoch)) {
            ExpertMap m = ExpertMap.of(v.table(), linkById);
            if (m != null) {
                map = m;
                activeEpoch = m.epoch;
                log.accept("stepping with placement " + v.table().describe());
                return true;
            }
        }
        return false;
    }

    /**
     * Per view the membership thread offers (every 50 ms), not per poll of a waiting step: expert workers that
     * joined get a link, those that left are lost.
     */
    private void learnMembers(ClusterView v) {
        if (driver.lostReason() != null) {
            return; // nothing can connect any more; the worker is stopping (see AttentionWorker#onTransportLoss)
        }
        for (Map.Entry<Integer, String> e : v.endpoints().entrySet()) {
            int id = e.getKey();
            String ep = e.getValue();
            ExpertLink l = linkById.get(id);
            if (l != null && l.lost == null && l.endpoint.equals(ep)) {
                continue;
            }
            if (l != null && l.lost == null) {
                l.lost = "it joined again at " + ep;
            }
            ExpertLink created;
            try {
                created = newLink(ep);
            } catch (RuntimeException ex) {
                log.accept("cannot reach expert worker " + id + " at " + ep + ": " + ex.getMessage());
                continue;
            }
            created.workerId = id;
            linkById.put(id, created);
            log.accept("expert worker " + id + " at " + ep + " is in the cluster: connecting");
        }
        for (ExpertLink l : linkById.values()) {
            if (l.lost == null && !v.endpoints().containsKey(l.workerId)) {
                l.lost = "it left the cluster";
                log.accept(l.name() + " left the cluster");
            }
        }
    }

    /** Lost links no exchange waits on: their publications are closed (indices stay, so buffers stay valid). */
    private void closeAbandonedLinks() {
        for (ExpertLink l : links) {
            if (l.lost != null && !l.isClosed()) {
                boolean waitedOn = false;
                for (MoeExchange ex : exchanges) {
                    waitedOn |= ex.open && ex.pendingOn(l.index) > 0;
                }
                if (!waitedOn) {
                    l.close();
                }
            }
        }
    }

    private ExpertMap checkedMap;
    private int checkedLost = -1;
    private boolean checkedUsesLost;

    /** Whether the current map sends to a lost worker (cached until the map or the number of lost links changes). */
    boolean mapUsesLost() {
        int lost = 0;
        for (ExpertLink l : links) {
            lost += l.lost != null ? 1 : 0;
        }
        if (map != checkedMap || lost != checkedLost) {
            checkedMap = map;
            checkedLost = lost;
            checkedUsesLost = false;
            for (ExpertLink l : links) {
                if (l.lost != null && map != null && map.uses(l.index)) {
                    checkedUsesLost = true;
                    break;
                }
            }
        }
        return checkedUsesLost;
    }

    /** Why an open exchange cannot complete: a lost worker it still waits on (name and reason), or null. */
    String lostPending(MoeExchange ex) {
        for (ExpertLink l : links) {
            if (l.lost != null && ex.open && ex.pendingOn(l.index) > 0) {
                return l.name() + " (" + l.lost + ") owes " + ex.pendingOn(l.index) + " expert outputs";
            }
        }
        return null;
    }

    List<ExpertLink> links() {
        return links;
    }

    MoeExchange exchange(int microBatch) {
        return exchanges[microBatch];
    }

    /**
     * Says Hello to every expert worker and waits for all of them to answer READY (they may still be starting), then
     * builds the expert map. Throws {@link ExpertsUnavailableException} naming the workers that did not answer.
     */
    void connect(long timeoutNs) {
        if (elastic) {
            awaitTable(timeoutNs);
            return;
        }
        long deadline = System.nanoTime() + timeoutNs;
        long nextHello = 0;
        BackoffIdleStrategy idle = new BackoffIdleStrategy(10, 20, TimeUnit.MICROSECONDS.toNanos(10),
                TimeUnit.MILLISECONDS.toNanos(5));
        while (true) {
            if (handshakeFailure != null) {
                throw new ExpertsUnavailableException(handshakeFailure);
            }
            failIfTransportLost();
            boolean all = true;
            long now = System.nanoTime();
            for (ExpertLink link : links) {
                if (link.ready) {
                    continue;
                }
                all = false;
                if (now >= nextHello && link.sender.isConnected()) {
                    try {
                        link.control.hello(0, source, Role.ATTENTION_WORKER, HelloStatus.HELLO, modelFingerprint,
                                replyChannel, inboxStream);
                    } catch (TransportException e) {
                        // Not up yet: try again at the next round.
                    }
                }
            }
            if (all) {
                break;
            }
            if (now >= nextHello) {
                nextHello = now + TimeUnit.SECONDS.toNanos(1);
            }
            if (now > deadline) {
                StringBuilder sb = new StringBuilder();
                for (ExpertLink link : links) {
                    if (!link.ready) {
                        sb.append(sb.isEmpty() ? "" : ", ").append(link.endpoint)
                                .append(link.sender.isConnected() ? " (connected, no READY)" : " (not reachable)");
                    }
                }
                throw new ExpertsUnavailableException("expert workers did not answer Hello within "
                        + TimeUnit.NANOSECONDS.toMillis(timeoutNs) + " ms: " + sb, null, true);
            }
            idle.idle(poll());
        }
        map = ExpertMap.firstHolder(links, ExpertWeights.layerCount(config), config.nRoutedExperts());
    }

    /** Elastic: waits until a placement table is usable (its workers ready with their experts). */
    void awaitTable(long timeoutNs) {
        long deadline = System.nanoTime() + timeoutNs;
        BackoffIdleStrategy idle = new BackoffIdleStrategy(10, 20, TimeUnit.MICROSECONDS.toNanos(10),
                TimeUnit.MILLISECONDS.toNanos(5));
        while (map == null) {
            failIfTransportLost();
            int work = poll();
            refresh(true);
            if (map != null) {
                return;
            }
            if (System.nanoTime() > deadline) {
                ClusterView v = view;
                StringBuilder sb = new StringBuilder();
                for (ExpertLink l : linkById.values()) {
                    sb.append(sb.isEmpty() ? "" : ", ").append(l.name()).append(l.lost != null ? " (lost: " + l.lost + ")"
                            : !l.ready ? (l.sender.isConnected() ? " (connected, no READY)" : " (not reachable)")
                            : " (ready, holds " + l.placement.describe() + ")");
                }
                throw new ExpertsUnavailableException("no usable placement within "
                        + TimeUnit.NANOSECONDS.toMillis(timeoutNs) + " ms: " + (v == null ? "no news from the cluster"
                        : v.table() == null ? "the coordinator has published no placement yet (no expert worker?)"
                        : "placement " + v.table().describe() + "; expert workers: " + (sb.isEmpty() ? "none" : sb)),
                        null, true);
            }
            idle.idle(work);
        }
    }

    ExpertMap map() {
        return map;
    }

    /** Waiting on expert workers is pointless once the Aeron client is gone: it can never reach them. */
    private void failIfTransportLost() {
        String lost = driver.lostReason();
        if (lost != null) {
            throw new TransportException(lost);
        }
    }

    /** Polls the inbox once; returns the fragments read. Protocol errors fail the exchanges they concern. */
    int poll() {
        try {
            return inbox.poll(FRAGMENT_LIMIT);
        } catch (WireFormatException e) {
            log.accept("skipped a malformed message from an expert worker: " + e.getMessage());
            for (MoeExchange ex : exchanges) {
                ex.fail("a malformed message arrived while waiting: " + e.getMessage());
            }
            return 1;
        }
    }

    @Override
    public void onHello(HelloDecoder h) {
        long epoch = h.epoch();
        long src = h.source();
        h.replyStreamId();
        Role role = h.role();
        HelloStatus status = h.status();
        String fp = h.fingerprint();
        String replyChannel = h.replyChannel();
        if (role != Role.EXPERT_WORKER) {
            return;
        }
        if (status == HelloStatus.GOODBYE) {
            ExpertLink link = src < byWorker.length ? byWorker[(int) src] : null;
            if (link != null && link.lost == null) {
                link.lost = "it said goodbye";
                log.accept(link.name() + " said goodbye");
                failWaitingOn(link, link.name() + " left (GOODBYE) with expert outputs outstanding");
            }
            return;
        }
        if (status != HelloStatus.READY) {
            return;
        }
        for (ExpertLink link : links) {
            if (link.lost == null && link.channel.equals(replyChannel)) {
                if (elastic && link.workerId != src) {
                    log.accept("ignored a READY from expert worker " + src + " at " + link.endpoint
                            + ", which the cluster knows as expert worker " + link.workerId);
                    return;
                }
                if (!Fingerprint.modelPart(fp).equals(modelFingerprint)) {
                    handshakeFailure = link.endpoint + " serves another model: " + Fingerprint.modelPart(fp)
                            + ", this attention worker " + modelFingerprint;
                    if (elastic) {
                        link.lost = handshakeFailure;
                        log.accept(handshakeFailure);
                    }
                    return;
                }
                int semi = fp.indexOf(";experts=");
                if (semi < 0) {
                    handshakeFailure = link.endpoint + " announced no experts in its READY (" + fp + ")";
                    return;
                }
                Placement p;
                try {
                    p = Placement.ofCanonical(fp.substring(semi + ";experts=".length()),
                            ExpertWeights.layerCount(config), config.nMtpLayers() > 0, config.nRoutedExperts());
                } catch (IllegalArgumentException e) {
                    handshakeFailure = link.endpoint + " announced an unreadable placement: " + e.getMessage();
                    return;
                }
                if (src >= byWorker.length) {
                    handshakeFailure = link.endpoint + ": worker id " + src + " is too large";
                    return;
                }
                ExpertLink other = byWorker[(int) src];
                if (other != null && other != link && other.lost == null) {
                    handshakeFailure = link.endpoint + " and " + other.endpoint + " both call themselves expert worker "
                            + src + " (give each a distinct --worker-id)";
                    return;
                }
                byWorker[(int) src] = link;
                link.workerId = (int) src;
                link.placement = p;
                link.fingerprint = fp;
                if (!link.ready) {
                    link.ready = true;
                    log.accept("expert worker " + src + " at " + link.endpoint + " is ready: " + p.describe()
                            + " (epoch " + epoch + ")");
                }
                return;
            }
        }
    }

    @Override
    public void onError(ErrorDecoder e) {
        long step = e.step();
        long src = e.source();
        int layer = e.layer();
        ErrorCode code = e.code();
        int mb = e.microBatch();
        String message = e.message();
        ExpertLink link = src < byWorker.length ? byWorker[(int) src] : null;
        String who = link != null ? link.name() : "expert worker " + src;
        if (code == ErrorCode.FINGERPRINT_MISMATCH) {
            handshakeFailure = who + " refused this attention worker: " + message;
            return;
        }
        if (mb < exchanges.length && exchanges[mb].matches(step, layer)) {
            exchanges[mb].fail(who + " refused layer " + layer + " of step " + step + " (" + code + "): " + message);
        } else {
            log.accept(who + " reported " + code + " for step " + step + " layer " + layer + ": " + message);
        }
    }

    @Override
    public void onCombine(CombineDecoder m) {
        long step = m.step();
        long src = m.source();
        int hiddenDim = (int) m.hiddenDim();
        int layer = m.layer();
        int mb = m.microBatch();
        m.last();
        CombineDecoder.RowsDecoder rows = m.rows();
        ExpertLink link = src < byWorker.length ? byWorker[(int) src] : null;
        MoeExchange ex = mb < exchanges.length ? exchanges[mb] : null;
        if (link == null || link.lost != null || ex == null || !ex.matches(step, layer)) {
            staleCombines++;
            while (rows.hasNext()) {
                rows.next();
                rows.skipOutput();
            }
            return;
        }
        if (hiddenDim != config.dim()) {
            ex.fail(link.name() + " sent rows of " + hiddenDim + " values, the model's hidden size is " + config.dim());
            return;
        }
        while (rows.hasNext()) {
            rows.next();
            int token = (int) rows.tokenIndex();
            int expert = rows.expertId();
            int slot = rows.slot();
            int n = rows.getOutput(rowBytes, 0, rowBytes.length);
            combineBytes += n;
            String bad = ex.accept(link.index, token, expert, slot, rowBytes);
            if (bad != null) {
                ex.fail(link.name() + ": " + bad);
                while (rows.hasNext()) {
                    rows.next();
                    rows.skipOutput();
                }
                return;
            }
            routedSlots++;
        }
    }

    private void failWaitingOn(ExpertLink link, String why) {
        for (MoeExchange ex : exchanges) {
            if (ex.open && ex.pendingOn(link.index) > 0) {
                ex.fail(why);
            }
        }
    }

    /**
     * Fails exchanges waiting on a worker whose publication lost its connection (a killed worker stops sending
     * status messages; Aeron notices after its publication connection timeout).
     */
    void checkLinks() {
        for (ExpertLink link : links) {
            if (link.lost == null && link.ready && !link.sender.isConnected()) {
                for (MoeExchange ex : exchanges) {
                    if (ex.open && ex.pendingOn(link.index) > 0) {
                        link.lost = "its connection was lost";
                        ex.fail(link.name() + " is unreachable (connection lost) with expert outputs outstanding");
                    }
                }
            }
        }
    }

    /** Tells the expert workers this attention worker is leaving, then closes publications and the inbox. */
    @Override
    public void close() {
        for (ExpertLink link : links) {
            try {
                if (link.ready && link.lost == null && !link.isClosed() && link.sender.isConnected()) {
                    link.control.hello(0, source, Role.ATTENTION_WORKER, HelloStatus.GOODBYE, modelFingerprint,
                            replyChannel, inboxStream);
                }
            } catch (RuntimeException e) {
                // Best effort: it may already be gone.
            }
            link.close();
        }
        inbox.close();
    }
}
