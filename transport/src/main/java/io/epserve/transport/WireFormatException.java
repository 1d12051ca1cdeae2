package io.epserve.transport;

/** A received message is not a well-formed message of this build's wire schema (id, version, template or layout). */
public final class WireFormatException extends TransportException {
    private static final long serialVersionUID = 1L;

    public WireFormatException(String message) {
        super(message);
    }
}
