package io.epserve.cluster;

import java.util.function.Consumer;

/**
 * One process's part in the control plane: its {@link ClusterNode} and the {@link PlacementCoordinator} that acts
 * while this member is the oldest. Closing leaves the cluster.
 */
public final class ControlPlane implements AutoCloseable {
    /** How a process joins: the node's settings and the coordinator's. */
    public record Settings(ClusterNode.Options node, PlacementCoordinator.Options coordinator) {
        public void validate() {
            node.validate();
            coordinator.validate();
        }
    }

    private final ClusterNode node;
    private final PlacementCoordinator coordinator;

    private ControlPlane(ClusterNode node, PlacementCoordinator coordinator) {
        this.node = node;
        this.coordinator = coordinator;
    }

    /** Joins the cluster as {@code info} and starts this member's coordinator. */
    public static ControlPlane join(Settings s, ClusterNode.ModelIdentity model, MemberInfo info, Consumer<String> log) {
        ClusterNode node = ClusterNode.join(s.node().log(log), model, info);
        try {
            return new ControlPlane(node, new PlacementCoordinator(node, s.coordinator(), log).start());
        } catch (RuntimeException e) {
            node.close();
            throw e;
        }
    }

    public ClusterNode node() {
        return node;
    }

    public PlacementCoordinator coordinator() {
        return coordinator;
    }

    @Override
    public void close() {
        coordinator.close();
        node.close();
    }
}
