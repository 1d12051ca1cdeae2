package io.epserve.transport;

/** A message could not be sent or received. Never swallowed: the caller fails the step with this reason. */
public class TransportException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public TransportException(String message) {
        super(message);
    }

    public TransportException(String message, Throwable cause) {
        super(message, cause);
    }
}
