package io.epserve.transport;

import io.epserve.transport.sbe.CombineDecoder;
import io.epserve.transport.sbe.DispatchDecoder;
import io.epserve.transport.sbe.ErrorDecoder;
import io.epserve.transport.sbe.HelloDecoder;

/**
 * Receives decoded messages. Each decoder is a reused flyweight over the received bytes, already checked by
 * {@link WireDecoder} (schema, version, and that every row and length lies inside the message); it is valid only
 * during the call: copy what you keep. Read rows in schema order (per row: fields, slots, then codes and scales).
 *
 * <p>A message type a receiver does not implement is a protocol error: the default methods throw
 * {@link WireFormatException}, except {@link #onError}, which throws the peer's error.
 */
public interface WireHandler {
    default void onDispatch(DispatchDecoder dispatch) {
        throw new WireFormatException("unexpected Dispatch message on this receiver");
    }

    default void onCombine(CombineDecoder combine) {
        throw new WireFormatException("unexpected Combine message on this receiver");
    }

    /** By default a peer's error fails the receiving call with a {@link PeerErrorException} naming its reason. */
    default void onError(ErrorDecoder error) {
        throw PeerErrorException.of(error);
    }

    default void onHello(HelloDecoder hello) {
        throw new WireFormatException("unexpected Hello message on this receiver");
    }
}
