package io.epserve.expert;

import io.epserve.transport.Channels;
import io.epserve.transport.ControlWriter;
import io.epserve.transport.DispatchWriter;
import io.epserve.transport.MediaDriverHandle;
import io.epserve.transport.MessageReceiver;
import io.epserve.transport.MessageSender;
import io.epserve.transport.sbe.HelloStatus;
import io.epserve.transport.sbe.Role;
import java.time.Duration;
import java.util.function.BooleanSupplier;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;

/**
 * The attention-worker side of the protocol, for tests: its own embedded media driver, a combine inbox on a UDP port
 * of 127.0.0.1, and senders to an expert worker's control and dispatch streams. Polled on the test thread.
 */
final class AttentionEndpoint implements AutoCloseable {
    final MediaDriverHandle driver;
    final String inbox;
    final Received received = new Received();
    final MessageReceiver in;
    final MessageSender control;
    final MessageSender dispatch;
    final ControlWriter controlWriter;
    final DispatchWriter dispatchWriter;
    final int source;

    AttentionEndpoint(String name, int source, String workerChannel, int dispatchStream, int controlStream) {
        this(MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name(name)), null, source, workerChannel,
                dispatchStream, controlStream);
    }

    /**
     * An endpoint on {@code driver} (closed with the endpoint): its inbox is {@code inbox}, or a fresh UDP port of
     * 127.0.0.1 if null.
     */
    AttentionEndpoint(MediaDriverHandle driver, String inbox, int source, String workerChannel, int dispatchStream,
                      int controlStream) {
        this.source = source;
        this.driver = driver;
        try {
            this.inbox = inbox != null ? inbox : Channels.loopback(Channels.freeLoopbackPort());
            this.in = driver.newReceiver(this.inbox, Channels.COMBINE_STREAM, received);
            this.control = driver.newSender(workerChannel, controlStream);
            this.dispatch = driver.newSender(workerChannel, dispatchStream);
            this.controlWriter = new ControlWriter(control);
            this.dispatchWriter = new DispatchWriter(dispatch);
        } catch (RuntimeException e) {
            driver.close();
            throw e;
        }
    }

    /** Sends Hello with this model fingerprint and waits for the worker's answer (a Hello or an Error). */
    void hello(String fingerprint) {
        int before = received.hellos.size() + received.errors.size();
        controlWriter.hello(0, source, Role.ATTENTION_WORKER, HelloStatus.HELLO, fingerprint, inbox,
                Channels.COMBINE_STREAM);
        await(() -> received.hellos.size() + received.errors.size() > before, Duration.ofSeconds(10), "Hello answer");
    }

    void goodbye() {
        controlWriter.hello(0, source, Role.ATTENTION_WORKER, HelloStatus.GOODBYE, "", inbox, Channels.COMBINE_STREAM);
    }

    /** Polls the inbox until {@code done} holds, failing after {@code timeout}. */
    void await(BooleanSupplier done, Duration timeout, String what) {
        IdleStrategy idle = new BackoffIdleStrategy();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!done.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + timeout.toMillis() + " ms waiting for " + what
                        + " (received " + received.rows.size() + " combine rows, errors " + received.errors + ")");
            }
            idle.idle(in.poll(64));
        }
    }

    /** Polls for {@code duration} (to see that nothing more arrives). */
    void pollFor(Duration duration) {
        long end = System.nanoTime() + duration.toNanos();
        while (System.nanoTime() < end) {
            if (in.poll(64) == 0) {
                java.util.concurrent.locks.LockSupport.parkNanos(200_000);
            }
        }
    }

    @Override
    public void close() {
        try {
            in.close();
            control.close();
            dispatch.close();
        } finally {
            driver.close();
        }
    }
}
