package io.epserve.expert;

import io.epserve.transport.sbe.ErrorCode;

/**
 * A dispatch the expert worker refuses (an expert it does not hold, a wrong hidden size or layer, too many tokens, a
 * part out of order): the worker answers with an {@code Error} message carrying {@link #code()} and the message, and
 * goes on serving. Off the hot path; no stack trace.
 */
public final class DispatchRejectedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final ErrorCode code;

    public DispatchRejectedException(ErrorCode code, String message) {
        super(message, null, false, false);
        this.code = code;
    }

    public ErrorCode code() {
        return code;
    }
}
