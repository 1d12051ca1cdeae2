package io.epserve.router;

import io.epserve.cluster.ClusterNode;
import io.epserve.cluster.Eplb;
import io.epserve.cluster.MemberInfo;
import io.epserve.cluster.PlacementPlanner;
import io.epserve.cluster.PlacementTable;
import io.epserve.proto.admin.v1.AdminGrpc;
import io.epserve.proto.admin.v1.DrainRequest;
import io.epserve.proto.admin.v1.DrainResponse;
import io.epserve.proto.admin.v1.ExpertReplicas;
import io.epserve.proto.admin.v1.Member;
import io.epserve.proto.admin.v1.PlacementRequest;
import io.epserve.proto.admin.v1.PlacementResponse;
import io.epserve.proto.admin.v1.RebalanceRequest;
import io.epserve.proto.admin.v1.RebalanceResponse;
import io.epserve.proto.admin.v1.StatusRequest;
import io.epserve.proto.admin.v1.StatusResponse;
import io.epserve.proto.admin.v1.WorkerLoad;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.util.List;
import java.util.Locale;

/**
 * {@code epserve.admin.v1.Admin} on the router: reads the cluster's state from Hazelcast and files the operator's
 * requests (drain, rebalance) for the coordinator, which alone changes the placement. Waiting calls are bounded and
 * stop when the client goes away.
 */
final class AdminService extends AdminGrpc.AdminImplBase {
    private static final long POLL_MS = 50;

    private final ClusterNode node;

    AdminService(ClusterNode node) {
        this.node = node;
    }

    @Override
    public void status(StatusRequest req, StreamObserver<StatusResponse> obs) {
        answer(obs, () -> {
            PlacementTable current = node.current();
            PlacementTable target = node.target();
            String coordinator = node.coordinatorUuid();
            StatusResponse.Builder b = StatusResponse.newBuilder().setClusterName(node.clusterName())
                    .setModelFingerprint(node.model().fingerprint())
                    .setPlacementEpoch(current == null ? 0 : current.epoch())
                    .setTargetEpoch(target == null ? 0 : target.epoch());
            for (MemberInfo m : node.liveMembers()) {
                b.addMembers(Member.newBuilder().setRole(m.role()).setId(m.id()).setState(m.state()).setGrpc(m.grpc())
                        .setAeron(m.aeron()).setPid(m.pid()).setEpoch(m.epoch()).setHeld(m.held())
                        .putAllGauges(m.gauges()).setCoordinator(m.uuid().equals(coordinator))
                        .setMemberUuid(m.uuid()).setModelFingerprint(m.model()));
            }
            if (current != null) {
                b.setBalance(PlacementPlanner.balance(load(current), current));
            }
            return b.build();
        });
    }

    @Override
    public void placement(PlacementRequest req, StreamObserver<PlacementResponse> obs) {
        answer(obs, () -> {
            PlacementTable t = node.current();
            if (t == null) {
                throw Status.FAILED_PRECONDITION.withDescription("no placement yet: the coordinator places the experts"
                        + " once expert workers have joined").asRuntimeException();
            }
            PlacementTable target = node.target();
            double[][] load = load(t);
            PlacementResponse.Builder b = PlacementResponse.newBuilder().setEpoch(t.epoch()).setLayers(t.layerCount())
                    .setExpertsPerLayer(t.expertsPerLayer()).setTargetEpoch(target == null ? 0 : target.epoch())
                    .setTableJson(t.toJson());
            for (int l = 0; l < t.layerCount(); l++) {
                for (int e = 0; e < t.expertsPerLayer(); e++) {
                    ExpertReplicas.Builder r = ExpertReplicas.newBuilder().setLayer(l).setExpert(e).setLoad(load[l][e]);
                    for (int w : t.replicas(l, e)) {
                        r.addWorkers(w);
                    }
                    b.addReplicas(r);
                }
            }
            int[] workers = t.workers();
            double[] perWorker = PlacementPlanner.workerLoad(load, t);
            var entries = t.entriesPerWorker();
            double max = 0;
            double sum = 0;
            for (int i = 0; i < workers.length; i++) {
                b.addWorkers(WorkerLoad.newBuilder().setWorkerId(workers[i]).setExperts(entries.get(workers[i]))
                        .setLoad(perWorker[i]));
                max = Math.max(max, perWorker[i]);
                sum += perWorker[i];
            }
            double mean = workers.length == 0 ? 0 : sum / workers.length;
            return b.setMeanLoad(mean).setMaxLoad(max).setBalance(PlacementPlanner.balance(load, t)).build();
        });
    }

    @Override
    public void drain(DrainRequest req, StreamObserver<DrainResponse> obs) {
        answer(obs, () -> {
            int id = req.getWorkerId();
            List<MemberInfo> live = node.liveMembers();
            MemberInfo worker = live.stream().filter(m -> m.isExpertWorker() && m.id() == id).findFirst().orElse(null);
            if (worker == null) {
                throw Status.NOT_FOUND.withDescription("no expert worker " + id + " in cluster '" + node.clusterName()
                        + "' (" + node.describeMembers() + ")").asRuntimeException();
            }
            boolean heir = live.stream().anyMatch(m -> m.isExpertWorker() && m.id() != id && !m.draining()
                    && !node.drainRequested(m.id()));
            if (!heir) {
                throw Status.FAILED_PRECONDITION.withDescription("expert worker " + id + " is the only one left that"
                        + " could hold the experts; start another before draining it").asRuntimeException();
            }
            node.requestDrain(id);
            if (!req.getWait()) {
                return DrainResponse.newBuilder().setMessage("drain of expert worker " + id + " requested").build();
            }
            long timeout = req.getTimeoutMs() == 0 ? 120_000 : req.getTimeoutMs();
            long until = System.currentTimeMillis() + timeout;
            while (System.currentTimeMillis() < until && !Context.current().isCancelled()) {
                if (!node.liveUuids().contains(worker.uuid())) {
                    PlacementTable t = node.current();
                    return DrainResponse.newBuilder().setDone(true).setEpoch(t == null ? 0 : t.epoch())
                            .setMessage("expert worker " + id + " drained and left; placement epoch "
                                    + (t == null ? "-" : t.epoch())).build();
                }
                sleep();
            }
            throw Status.DEADLINE_EXCEEDED.withDescription("expert worker " + id + " has not left within " + timeout
                    + " ms; the drain goes on (see `admin status`)").asRuntimeException();
        });
    }

    @Override
    public void rebalance(RebalanceRequest req, StreamObserver<RebalanceResponse> obs) {
        answer(obs, () -> {
            PlacementTable before = node.current();
            if (before == null) {
                throw Status.FAILED_PRECONDITION.withDescription("no placement yet to rebalance").asRuntimeException();
            }
            node.requestRebalance();
            long timeout = req.getTimeoutMs() == 0 ? 30_000 : req.getTimeoutMs();
            long until = System.currentTimeMillis() + timeout;
            while (System.currentTimeMillis() < until && !Context.current().isCancelled()) {
                PlacementTable now = node.current();
                if (now != null && now.epoch() > before.epoch()) {
                    double[][] load = load(now);
                    return RebalanceResponse.newBuilder().setEpoch(now.epoch())
                            .setBalanceBefore(PlacementPlanner.balance(load, before))
                            .setBalanceAfter(PlacementPlanner.balance(load, now)).setMoved(Eplb.moves(before.replicas(), now.replicas()))
                            .setMessage(String.format(Locale.ROOT, "placement epoch %d: %s", now.epoch(),
                                    now.describe())).build();
                }
                String result = node.rebalanceResult();
                if (result != null && result.startsWith("failed")) {
                    throw Status.INTERNAL.withDescription("the coordinator could not rebalance: " + result)
                            .asRuntimeException();
                }
                if (result != null && result.startsWith("unchanged") && now != null
                        && now.epoch() == before.epoch()) {
                    double b = PlacementPlanner.balance(load(now), now);
                    return RebalanceResponse.newBuilder().setEpoch(now.epoch()).setBalanceBefore(b).setBalanceAfter(b)
                            .setMessage("EPLB found nothing better; placement epoch " + now.epoch() + " stays").build();
                }
                sleep();
            }
            throw Status.DEADLINE_EXCEEDED.withDescription("no new placement within " + timeout + " ms (expert"
                    + " workers still mapping? see `admin status`)").asRuntimeException();
        });
    }

    /** The measured load, or uniform when nothing was measured. */
    private double[][] load(PlacementTable t) {
        double[][] l = node.load();
        return l != null ? l : PlacementPlanner.uniform(t.layerCount(), t.expertsPerLayer());
    }

    private static void sleep() {
        try {
            Thread.sleep(POLL_MS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw Status.CANCELLED.withDescription("interrupted").asRuntimeException();
        }
    }

    private interface Work<T> {
        T run();
    }

    private static <T> void answer(StreamObserver<T> obs, Work<T> work) {
        T result;
        try {
            result = work.run();
        } catch (StatusRuntimeException e) {
            obs.onError(e);
            return;
        } catch (RuntimeException e) {
            obs.onError(Status.UNAVAILABLE.withDescription("the cluster state could not be read: " + e)
                    .asRuntimeException());
            return;
        }
        obs.onNext(result);
        obs.onCompleted();
    }
}
