package io.epserve.transport;

import io.aeron.ChannelUriStringBuilder;
import io.aeron.CommonContext;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;

/**
 * Aeron channel URIs with epserve's defaults. UDP: MTU 8192 (one fragment carries 8 KiB; bigger messages are
 * fragmented by Aeron and reassembled by {@link MessageReceiver}), 2 MiB socket send/receive buffers and a 2 MiB
 * receiver window (the measured best on 127.0.0.1, notes/java-stack.md §2c). IPC: one shared media driver, no copy
 * through the network stack. The term length is the driver's default ({@link MediaDriverHandle#DEFAULT_TERM_LENGTH})
 * unless given here.
 *
 * <p>Stream ids: {@link #DISPATCH_STREAM} for dispatches into an expert worker, {@link #COMBINE_STREAM} for combines
 * into an attention worker, {@link #CONTROL_STREAM} for Hello/Error traffic.
 */
public final class Channels {
    public static final int MTU = 8192;
    public static final int SOCKET_BUFFER_LENGTH = 2 * 1024 * 1024;
    public static final int RECEIVER_WINDOW_LENGTH = 2 * 1024 * 1024;

    public static final int DISPATCH_STREAM = 1001;
    public static final int COMBINE_STREAM = 1002;
    public static final int CONTROL_STREAM = 1003;

    private Channels() {
    }

    /** {@code aeron:udp?endpoint=host:port|mtu=8192|so-sndbuf=2m|so-rcvbuf=2m|rcv-wnd=2m} (as byte counts). */
    public static String udp(String host, int port) {
        return udp(host, port, 0);
    }

    /** As {@link #udp(String, int)}, with the given term length (a power of two, 64 KiB .. 1 GiB) if positive. */
    public static String udp(String host, int port, int termLength) {
        if (port <= 0 || port > 65535) {
            throw new IllegalArgumentException("UDP port must be in 1..65535, got " + port);
        }
        ChannelUriStringBuilder uri = new ChannelUriStringBuilder()
                .media(CommonContext.UDP_MEDIA)
                .endpoint(host + ":" + port)
                .mtu(MTU)
                .socketSndbufLength(SOCKET_BUFFER_LENGTH)
                .socketRcvbufLength(SOCKET_BUFFER_LENGTH)
                .receiverWindowLength(RECEIVER_WINDOW_LENGTH);
        if (termLength > 0) {
            uri.termLength(termLength);
        }
        return uri.build();
    }

    /** UDP on 127.0.0.1. */
    public static String loopback(int port) {
        return udp("127.0.0.1", port);
    }

    /** UDP on 127.0.0.1 with the given term length. */
    public static String loopback(int port, int termLength) {
        return udp("127.0.0.1", port, termLength);
    }

    /** {@code aeron:ipc?mtu=8192}. */
    public static String ipc() {
        return ipc(0);
    }

    /** IPC with the given term length if positive. */
    public static String ipc(int termLength) {
        ChannelUriStringBuilder uri = new ChannelUriStringBuilder().media(CommonContext.IPC_MEDIA).mtu(MTU);
        if (termLength > 0) {
            uri.termLength(termLength);
        }
        return uri.build();
    }

    /**
     * A UDP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close). For tests and local
     * clusters; another process may take it in between, so a caller should be ready to retry.
     */
    public static int freeLoopbackPort() {
        try (DatagramSocket socket = new DatagramSocket(new InetSocketAddress(
                InetAddress.getByAddress(new byte[] {127, 0, 0, 1}), 0))) {
            return socket.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException("no free UDP port on 127.0.0.1", e);
        }
    }

    /**
     * The channel of an endpoint as operators write it: {@code HOST:PORT} (UDP), {@code ipc} (both ends on one media
     * driver), or an {@code aeron:} URI taken as given.
     */
    public static String ofEndpoint(String endpoint) {
        if (endpoint.equals("ipc")) {
            return ipc();
        }
        if (endpoint.startsWith("aeron:")) {
            return endpoint;
        }
        int colon = endpoint.lastIndexOf(':');
        if (colon <= 0 || colon == endpoint.length() - 1) {
            throw new IllegalArgumentException("endpoint must be HOST:PORT (e.g. 127.0.0.1:40123), ipc or an aeron: "
                    + "channel URI, got '" + endpoint + "'");
        }
        int port;
        try {
            port = Integer.parseInt(endpoint.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("endpoint port is not a number: '" + endpoint + "'");
        }
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("endpoint port must be in 1..65535, got " + port + " in '" + endpoint + "'");
        }
        return udp(endpoint.substring(0, colon), port);
    }
}
