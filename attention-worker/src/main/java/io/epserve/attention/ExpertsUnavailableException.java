package io.epserve.attention;

/** A step could not get its routed experts computed: a worker is lost, refused the dispatch, or did not answer in time. */
public class ExpertsUnavailableException extends RuntimeException {
    private final boolean timeout;

    public ExpertsUnavailableException(String message) {
        this(message, null, false);
    }

    public ExpertsUnavailableException(String message, Throwable cause) {
        this(message, cause, false);
    }

    public ExpertsUnavailableException(String message, Throwable cause, boolean timeout) {
        super(message, cause);
        this.timeout = timeout;
    }

    /** Whether the step failed because a worker did not answer before the deadline. */
    public boolean isTimeout() {
        return timeout;
    }
}
