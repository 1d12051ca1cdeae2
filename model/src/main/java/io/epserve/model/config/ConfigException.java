package io.epserve.model.config;

/** A config.json that is missing a field or asks for something this engine does not support; names the field. */
public class ConfigException extends RuntimeException {
    public ConfigException(String message) {
        super(message);
    }

    public ConfigException(String message, Throwable cause) {
        super(message, cause);
    }
}
