package io.epserve.cluster;

import java.util.List;
import picocli.CommandLine.Option;

/**
 * The control-plane flags every process shares (mixed into the router, attention worker, expert worker and
 * {@code up}): how to join the Hazelcast cluster, and the coordinator's settings (the coordinator is whichever member
 * is oldest, so give every process the same values).
 */
public final class ClusterFlags {
    @Option(names = "--cluster-members", split = ",", paramLabel = "HOST:PORT[-PORT]",
            description = "Join the epserve cluster through these Hazelcast members (TCP-IP join; a range probes each"
                    + " port). Turns the control plane on: live placement, scaling, failover.")
    List<String> members;

    @Option(names = "--kubernetes-service", paramLabel = "NAME",
            description = "Join through Kubernetes discovery: the headless service's DNS name (instead of --cluster-members).")
    String kubernetesService;

    @Option(names = "--kubernetes-namespace", paramLabel = "NS", description = "Namespace of --kubernetes-service.")
    String kubernetesNamespace;

    @Option(names = "--cluster-name", defaultValue = "epserve",
            description = "Hazelcast cluster name: processes with another name never join. Default: ${DEFAULT-VALUE}.")
    String name;

    @Option(names = "--cluster-host", defaultValue = "127.0.0.1",
            description = "Address the Hazelcast member binds and announces (0.0.0.0: all). Default: ${DEFAULT-VALUE}.")
    String host;

    @Option(names = "--cluster-port", defaultValue = "5701",
            description = "First Hazelcast port to try (the next free one up to +100 is used). Default: ${DEFAULT-VALUE}.")
    int port;

    @Option(names = "--redundant-experts", defaultValue = "0", paramLabel = "N",
            description = "Coordinator: extra expert slots per expert worker and layer, filled by EPLB with replicas"
                    + " of the hottest experts. Default: ${DEFAULT-VALUE}.")
    int redundant;

    @Option(names = "--rebalance-interval-ms", defaultValue = "0", paramLabel = "MS",
            description = "Coordinator: run EPLB on the measured load this often (0: only on `admin rebalance`)."
                    + " Default: ${DEFAULT-VALUE}.")
    long rebalanceIntervalMs;

    @Option(names = "--rebalance-gain", defaultValue = "0.05", paramLabel = "X",
            description = "Coordinator: apply a scheduled rebalance only if mean/max load improves by more than this."
                    + " Default: ${DEFAULT-VALUE}.")
    double rebalanceGain;

    /** Whether the control plane is on. */
    public boolean enabled() {
        return members != null || kubernetesService != null;
    }

    public ClusterNode.Options nodeOptions() {
        ClusterNode.Options o = ClusterNode.options().name(name).host(host).port(port);
        if (members != null) {
            o.members(members);
        }
        if (kubernetesService != null) {
            o.kubernetesService(kubernetesService).kubernetesNamespace(kubernetesNamespace);
        }
        return o;
    }

    public PlacementCoordinator.Options coordinatorOptions() {
        return PlacementCoordinator.options().redundant(redundant).rebalanceIntervalMs(rebalanceIntervalMs)
                .rebalanceGain(rebalanceGain);
    }

    /** The join and coordinator settings; null when the control plane is off. */
    public ControlPlane.Settings settings() {
        return enabled() ? new ControlPlane.Settings(nodeOptions(), coordinatorOptions()) : null;
    }
}
