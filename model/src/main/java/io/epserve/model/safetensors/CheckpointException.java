package io.epserve.model.safetensors;

/** A checkpoint file or tensor that cannot be used; the message names the file and, where known, the tensor. */
public class CheckpointException extends RuntimeException {
    public CheckpointException(String message) {
        super(message);
    }

    public CheckpointException(String message, Throwable cause) {
        super(message, cause);
    }
}
