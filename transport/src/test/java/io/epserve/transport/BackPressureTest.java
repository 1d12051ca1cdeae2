package io.epserve.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.Publication;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Back-pressure over UDP with a 64 KiB term (so at most 8 KiB per message and a 32 KiB publication window): a slow
 * receiver makes the sender wait, nothing is dropped or reordered; a receiver that is gone makes the send fail with
 * {@link TransportTimeoutException} within its deadline.
 */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class BackPressureTest {
    private static final int SMALL_TERM = 64 * 1024;
    private static final int HIDDEN = 1024;
    private static final int TOP_K = 2;

    @AfterAll
    static void driversCleanedUp() throws IOException {
        LoopbackTest.assertNoDriverDirectoriesLeft();
    }

    @Test
    void slowReceiverBackPressuresTheSenderAndLosesNothing() {
        try (MediaDriverHandle a = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("bp-a"));
             MediaDriverHandle b = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("bp-b"))) {
            String channel = Channels.loopback(Channels.freeLoopbackPort(), SMALL_TERM);
            Collector collector = new Collector();
            try (MessageReceiver in = b.newReceiver(channel, Channels.DISPATCH_STREAM, collector);
                 MessageSender out = a.newSender(channel, Channels.DISPATCH_STREAM, new BackoffIdleStrategy(),
                         TimeUnit.SECONDS.toNanos(5))) {
                out.awaitConnected(TimeUnit.SECONDS.toNanos(5));
                assertEquals(SMALL_TERM / 8, out.maxMessageLength());
                DispatchWriter writer = new DispatchWriter(out);
                List<Fixtures.DispatchRow> sent = new ArrayList<>();
                List<Integer> partsPerStep = new ArrayList<>();
                int messages = 0;
                // the receiver takes one fragment per millisecond: ~5 MB/s against a sender that could do 100x that
                try (Poller slow = new Poller(in, 1, TimeUnit.MILLISECONDS.toNanos(1))) {
                    for (int step = 0; step < 150; step++) {
                        // 1..10 tokens of ~1.1 KB: one message up to 7 tokens, two above
                        List<Fixtures.DispatchRow> rows = Fixtures.dispatchRows(step, 1 + step % 10, HIDDEN, TOP_K, 64);
                        int parts = Fixtures.write(writer, 2, 1, step, 3, 0, 0, HIDDEN, TOP_K, rows, step % 2 == 0);
                        partsPerStep.add(parts);
                        messages += parts;
                        sent.addAll(rows);
                    }
                    int want = messages;
                    slow.await(() -> collector.seen.get() == want, Duration.ofSeconds(8), "all messages");
                }
                assertTrue(out.backPressured() > 0, "the sender never saw BACK_PRESSURED");
                assertEquals(out.backPressured(), a.offerCounters().backPressured(),
                        "the driver handle's shared counters see the sender's failed offers");
                assertEquals(0, b.offerCounters().backPressured());
                assertTrue(partsPerStep.contains(2), "some steps needed two messages");
                // every message, in order: steps ascending, parts 0..n-1 with last only on the final part
                int i = 0;
                for (int step = 0; step < partsPerStep.size(); step++) {
                    for (int part = 0; part < partsPerStep.get(step); part++) {
                        Fixtures.Header h = collector.headers.get(i++);
                        assertEquals(step, h.step(), "step of message " + (i - 1));
                        assertEquals(part, h.part(), "part of message " + (i - 1));
                        assertEquals(part == partsPerStep.get(step) - 1, h.last(), "last flag of message " + (i - 1));
                    }
                }
                assertEquals(messages, collector.headers.size());
                Fixtures.assertDispatchRowsEqual(sent, collector.dispatchRows);
                System.out.printf("back-pressure: %d messages, %d BACK_PRESSURED offers, %d ADMIN_ACTION%n",
                        out.messages(), out.backPressured(), out.adminActions());
            }
        }
    }

    @Test
    void sendFailsWithinTheDeadlineWhenTheReceiverIsGone() {
        long timeoutNs = TimeUnit.MILLISECONDS.toNanos(500);
        try (MediaDriverHandle a = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("gone-a"))) {
            String channel = Channels.loopback(Channels.freeLoopbackPort(), SMALL_TERM);
            MediaDriverHandle b = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("gone-b"));
            Collector collector = new Collector();
            MessageReceiver in = b.newReceiver(channel, Channels.DISPATCH_STREAM, collector);
            try (MessageSender out = a.newSender(channel, Channels.DISPATCH_STREAM, new BackoffIdleStrategy(),
                    timeoutNs)) {
                out.awaitConnected(TimeUnit.SECONDS.toNanos(5));
                UnsafeBuffer message = new UnsafeBuffer(new byte[4096]);
                try (Poller poller = new Poller(in)) {
                    for (int k = 0; k < 5; k++) {
                        sendDispatch(out, k);
                    }
                    poller.await(() -> collector.seen.get() == 5, Duration.ofSeconds(5), "the first messages");
                }
                // the receiving process goes away: its subscription and its media driver
                in.close();
                b.close();

                long start = System.nanoTime();
                long failedCallStart = start;
                int sentAfter = 0;
                TransportTimeoutException e = null;
                while (e == null && System.nanoTime() - start < TimeUnit.SECONDS.toNanos(8)) {
                    failedCallStart = System.nanoTime();
                    try {
                        sendDispatch(out, 5 + sentAfter);
                        sentAfter++;
                    } catch (TransportTimeoutException thrown) {
                        e = thrown;
                    }
                }
                long failedCallNs = System.nanoTime() - failedCallStart;
                assertTrue(e != null, "sends kept succeeding with the receiver gone");
                assertTrue(failedCallNs >= timeoutNs, "failed before the deadline: " + failedCallNs);
                assertTrue(failedCallNs < timeoutNs + TimeUnit.MILLISECONDS.toNanos(500),
                        "failed " + TimeUnit.NANOSECONDS.toMillis(failedCallNs) + " ms after the call");
                // only what fits in the publication window goes out before the sender blocks
                assertTrue(sentAfter <= SMALL_TERM / 2 / 4000 + 2, sentAfter + " sends succeeded");
                assertTrue(e.lastOfferResult() == Publication.BACK_PRESSURED
                        || e.lastOfferResult() == Publication.NOT_CONNECTED, e.getMessage());
                assertTrue(e.getMessage().startsWith("send of a "), e.getMessage());
                assertTrue(e.getMessage().contains(" timed out after "), e.getMessage());
                System.out.printf("receiver gone: %d sends went out, then: %s%n", sentAfter, e.getMessage());
            } finally {
                b.close();
            }
        }
    }

    /** The JVM flags this test JVM was started with that the child needs (module exports and opens). */
    private static List<String> moduleFlags() {
        List<String> in = ManagementFactory.getRuntimeMXBean().getInputArguments();
        List<String> out = new ArrayList<>();
        for (int i = 0; i < in.size(); i++) {
            String arg = in.get(i);
            if (arg.startsWith("--add-") || arg.startsWith("--enable-native-access")
                    || arg.startsWith("--sun-misc-unsafe")) {
                out.add(arg);
                if (!arg.contains("=") && i + 1 < in.size()) {
                    out.add(in.get(++i));
                }
            }
        }
        return out;
    }

    @Test
    void sendFailsWithinTheDeadlineWhenTheReceiverProcessIsKilled() throws Exception {
        long timeoutNs = TimeUnit.MILLISECONDS.toNanos(500);
        String channel = Channels.loopback(Channels.freeLoopbackPort(), SMALL_TERM);
        BlockingQueue<String> lines = new LinkedBlockingQueue<>();
        Process child = startReceiverProcess(channel, lines);
        Path childDir = null;
        try (MediaDriverHandle a = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("kill-a"));
             MessageSender out = a.newSender(channel, Channels.DISPATCH_STREAM, new BackoffIdleStrategy(),
                     timeoutNs)) {
            String ready = awaitLine(lines, "READY ", child);
            childDir = Path.of(ready.substring("READY ".length()));
            out.awaitConnected(TimeUnit.SECONDS.toNanos(5));
            for (int k = 0; k < 5; k++) {
                sendDispatch(out, k);
            }
            awaitLine(lines, "STEP 4", child);

            child.destroyForcibly();   // SIGKILL: no goodbye, its driver just stops answering
            assertTrue(child.waitFor(5, TimeUnit.SECONDS));

            long start = System.nanoTime();
            long failedCallStart = start;
            int sentAfter = 0;
            TransportTimeoutException e = null;
            while (e == null && System.nanoTime() - start < TimeUnit.SECONDS.toNanos(6)) {
                failedCallStart = System.nanoTime();
                try {
                    sendDispatch(out, 5 + sentAfter);
                    sentAfter++;
                } catch (TransportTimeoutException thrown) {
                    e = thrown;
                }
            }
            long failedCallNs = System.nanoTime() - failedCallStart;
            assertTrue(e != null, "sends kept succeeding with the receiver killed");
            assertTrue(failedCallNs >= timeoutNs, "failed before the deadline: " + failedCallNs);
            assertTrue(failedCallNs < timeoutNs + TimeUnit.MILLISECONDS.toNanos(500),
                    "failed " + TimeUnit.NANOSECONDS.toMillis(failedCallNs) + " ms after the call");
            // only what the windows allow goes out before the sender blocks: the receiver window (term / 2) past the
            // last position the dead receiver acknowledged, plus the publication window (term / 2) past what the
            // driver sent; messages are ~3.2 KB
            assertTrue(sentAfter <= SMALL_TERM / 3000 + 2, sentAfter + " sends succeeded");
            assertEquals(Publication.BACK_PRESSURED, e.lastOfferResult(), e.getMessage());
            assertTrue(e.getMessage().contains("back-pressured: the receiver is not consuming"), e.getMessage());
            System.out.printf("receiver killed: %d sends went out, then: %s%n", sentAfter, e.getMessage());
        } finally {
            child.destroyForcibly();
            child.waitFor(5, TimeUnit.SECONDS);
        }
        // the killed process left its driver directory; the next launch (or this call) deletes it
        assertTrue(childDir != null && Files.isDirectory(childDir), "the killed child's directory " + childDir);
        assertTrue(MediaDriverHandle.deleteStaleDirectories(childDir.getParent()) >= 1);
        assertTrue(!Files.exists(childDir), "stale directory not deleted: " + childDir);
    }

    @Test
    void aClientOfAKilledDriverReportsTheLossWithinItsDriverTimeout() throws Exception {
        BlockingQueue<String> lines = new LinkedBlockingQueue<>();
        Process child = startReceiverProcess(Channels.ipc(), lines);
        Path childDir;
        try {
            childDir = Path.of(awaitLine(lines, "READY ", child).substring("READY ".length()));
            // The driver proves it lives about once a second: 3 s leaves room for a slow machine.
            try (MediaDriverHandle client = MediaDriverHandle.attach(childDir.toString(), 3_000)) {
                java.util.concurrent.CompletableFuture<String> lost = new java.util.concurrent.CompletableFuture<>();
                client.onLoss(lost::complete);
                Thread.sleep(4_000);
                assertEquals(null, client.lostReason(), "lost while its driver was alive");
                child.destroyForcibly();   // SIGKILL: the driver just stops answering
                assertTrue(child.waitFor(5, TimeUnit.SECONDS));
                long killed = System.nanoTime();
                String reason = lost.get(10, TimeUnit.SECONDS);
                long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killed);
                assertTrue(reason.contains("DriverTimeoutException") && reason.contains(childDir.toString()), reason);
                assertTrue(ms < 8_000, "heard after " + ms + " ms");
                System.out.printf("driver killed: the client heard after %d ms: %s%n", ms, reason);
            }
        } finally {
            child.destroyForcibly();
            child.waitFor(5, TimeUnit.SECONDS);
        }
        MediaDriverHandle.deleteStaleDirectories(childDir.getParent());
    }

    /** A {@link ReceiverProcess} on {@code channel} (its own JVM and embedded driver); its output lines go to lines. */
    private static Process startReceiverProcess(String channel, BlockingQueue<String> lines) throws IOException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(moduleFlags());
        command.addAll(List.of("-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"),
                ReceiverProcess.class.getName(), channel, String.valueOf(Channels.DISPATCH_STREAM)));
        Process child = new ProcessBuilder(command).redirectErrorStream(true).start();
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(
                    new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    lines.add(line);
                }
            } catch (IOException ignored) {
                // the child was killed
            }
        }, "child-output");
        reader.setDaemon(true);
        reader.start();
        return child;
    }

    private static String awaitLine(BlockingQueue<String> lines, String prefix, Process child)
            throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(6);
        List<String> seen = new ArrayList<>();
        while (System.nanoTime() < deadline) {
            String line = lines.poll(100, TimeUnit.MILLISECONDS);
            if (line != null) {
                if (line.startsWith(prefix)) {
                    return line;
                }
                seen.add(line);
            } else if (!child.isAlive()) {
                break;
            }
        }
        throw new AssertionError("child never printed '" + prefix + "'; it printed: " + seen);
    }

    @Test
    void sendWithoutAnySubscriberTimesOutAsNotConnected() {
        try (MediaDriverHandle a = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("nosub"));
             MessageSender out = a.newSender(Channels.loopback(Channels.freeLoopbackPort()), Channels.DISPATCH_STREAM,
                     new BackoffIdleStrategy(), TimeUnit.MILLISECONDS.toNanos(200))) {
            TransportTimeoutException e = assertThrows(TransportTimeoutException.class, () -> sendDispatch(out, 0));
            assertEquals(Publication.NOT_CONNECTED, e.lastOfferResult());
            assertTrue(e.getMessage().contains("no subscriber connected"), e.getMessage());
            assertTrue(e.waitedNs() >= TimeUnit.MILLISECONDS.toNanos(200));
            TransportTimeoutException notConnected = assertThrows(TransportTimeoutException.class,
                    () -> out.awaitConnected(TimeUnit.MILLISECONDS.toNanos(100)));
            assertTrue(notConnected.getMessage().startsWith("no subscriber connected within 100 ms"));
        }
    }

    @Test
    void closedPublicationFailsAtOnce() {
        try (MediaDriverHandle a = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("closed"))) {
            MessageSender out = a.newSender(Channels.ipc(), Channels.DISPATCH_STREAM);
            out.close();
            long start = System.nanoTime();
            TransportException e = assertThrows(TransportException.class, () -> sendDispatch(out, 0));
            assertTrue(e.getMessage().startsWith("publication closed: aeron:ipc"), e.getMessage());
            assertTrue(System.nanoTime() - start < TimeUnit.MILLISECONDS.toNanos(100));
        }
    }

    /** One dispatch of 3 tokens (~3.4 KB). */
    private static void sendDispatch(MessageSender out, int step) {
        DispatchWriter writer = new DispatchWriter(out);
        Fixtures.write(writer, 1, 1, step, 0, 0, 0, HIDDEN, TOP_K, Fixtures.dispatchRows(step, 3, HIDDEN, TOP_K, 8),
                false);
    }
}
