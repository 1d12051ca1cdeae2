package io.epserve.cluster;

/** The cluster cannot be joined or refuses this process (another model, a taken worker id, no members reachable). */
public final class ClusterException extends RuntimeException {
    public ClusterException(String message) {
        super(message);
    }

    public ClusterException(String message, Throwable cause) {
        super(message, cause);
    }
}
