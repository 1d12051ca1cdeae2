package io.epserve.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Dispatch and combine over real Aeron: UDP on 127.0.0.1 between two embedded media drivers with separate
 * directories (as two processes would have), and IPC through one shared driver. Messages bigger than the MTU are
 * fragmented by Aeron and reassembled by {@link MessageReceiver}.
 */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class LoopbackTest {
    private static final int HIDDEN = 1024;
    private static final int TOP_K = 6;
    private static final int[] TOKENS = {1, 8, 64, 256};

    static void assertNoDriverDirectoriesLeft() throws IOException {
        String prefix = MediaDriverHandle.DIR_PREFIX + ProcessHandle.current().pid() + "-";
        try (Stream<Path> entries = Files.list(MediaDriverHandle.defaultBaseDir())) {
            List<Path> left = entries.filter(p -> p.getFileName().toString().startsWith(prefix)).toList();
            assertEquals(List.of(), left, "driver directories left behind");
        }
    }

    @AfterAll
    static void driversCleanedUp() throws IOException {
        assertNoDriverDirectoriesLeft();
    }

    /** Attention worker on driver {@code aw}, expert worker on driver {@code ew}: dispatches one way, combines back. */
    private static void exchange(MediaDriverHandle aw, MediaDriverHandle ew, String dispatchChannel,
                                 String combineChannel) {
        Collector atExpert = new Collector();
        Collector atAttention = new Collector();
        try (MessageReceiver dispatchIn = ew.newReceiver(dispatchChannel, Channels.DISPATCH_STREAM, atExpert);
             MessageReceiver combineIn = aw.newReceiver(combineChannel, Channels.COMBINE_STREAM, atAttention);
             MessageSender dispatchOut = aw.newSender(dispatchChannel, Channels.DISPATCH_STREAM);
             MessageSender combineOut = ew.newSender(combineChannel, Channels.COMBINE_STREAM)) {
            dispatchOut.awaitConnected(TimeUnit.SECONDS.toNanos(5));
            combineOut.awaitConnected(TimeUnit.SECONDS.toNanos(5));
            assertEquals(2 * 1024 * 1024, dispatchOut.maxMessageLength());

            List<Fixtures.DispatchRow> sentDispatch = new ArrayList<>();
            List<Fixtures.CombineRow> sentCombine = new ArrayList<>();
            int dispatchMessages = 0;
            int combineMessages = 0;
            DispatchWriter dispatchWriter = new DispatchWriter(dispatchOut);
            CombineWriter combineWriter = new CombineWriter(combineOut);
            try (Poller expert = new Poller(dispatchIn); Poller attention = new Poller(combineIn)) {
                for (int tokens : TOKENS) {
                    List<Fixtures.DispatchRow> rows = Fixtures.fullDispatchRows(tokens, tokens, HIDDEN, TOP_K);
                    dispatchMessages += Fixtures.write(dispatchWriter, 1, 0, tokens, 5, 1, 0, HIDDEN, TOP_K, rows,
                            tokens % 2 == 0);
                    sentDispatch.addAll(rows);
                    // combine: one bf16 row per token and slot; 256 x 6 rows is 3.1 MB, two messages
                    List<Fixtures.CombineRow> outputs = Fixtures.combineRows(tokens + 1000, tokens, TOP_K, HIDDEN);
                    combineMessages += Fixtures.write(combineWriter, 1, 7, tokens, 5, 1, 0, HIDDEN, outputs);
                    sentCombine.addAll(outputs);
                }
                int wantDispatch = dispatchMessages;
                int wantCombine = combineMessages;
                expert.await(() -> atExpert.seen.get() == wantDispatch, Duration.ofSeconds(5), "dispatches");
                attention.await(() -> atAttention.seen.get() == wantCombine, Duration.ofSeconds(5), "combines");
            }
            assertEquals(TOKENS.length, dispatchMessages);
            assertEquals(TOKENS.length + 1, combineMessages);
            Fixtures.assertDispatchRowsEqual(sentDispatch, atExpert.dispatchRows);
            Fixtures.assertCombineRowsEqual(sentCombine, atAttention.combineRows);
            for (int i = 0; i < TOKENS.length; i++) {
                Fixtures.Header h = atExpert.headers.get(i);
                assertEquals(new Fixtures.Header(1, 0, TOKENS[i], 5, 1, 0, HIDDEN, TOP_K, 0, true, TOKENS[i]), h);
            }
            Fixtures.Header lastCombinePart = atAttention.headers.get(atAttention.headers.size() - 1);
            assertEquals(1, lastCombinePart.part());
            assertTrue(lastCombinePart.last());
            assertFalse(atAttention.headers.get(atAttention.headers.size() - 2).last());
            assertEquals(dispatchOut.messages(), dispatchIn.messages());
            assertEquals(dispatchOut.bytes(), dispatchIn.bytes());
        }
    }

    @Test
    void udpBetweenTwoMediaDrivers() {
        try (MediaDriverHandle aw = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("aw"));
             MediaDriverHandle ew = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("ew"))) {
            assertTrue(aw.isEmbedded());
            assertTrue(Files.isDirectory(Path.of(aw.aeronDirectoryName())));
            exchange(aw, ew, Channels.loopback(Channels.freeLoopbackPort()),
                    Channels.loopback(Channels.freeLoopbackPort()));
        }
    }

    @Test
    void ipcThroughOneSharedMediaDriver() {
        try (MediaDriverHandle driver = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("ipc"));
             MediaDriverHandle attached = MediaDriverHandle.attach(driver.aeronDirectoryName())) {
            assertFalse(attached.isEmbedded());
            // the "expert worker" is a second client of the same driver, as a second process on the host would be
            exchange(driver, attached, Channels.ipc(), Channels.ipc());
        }
    }

    @Test
    void closingDeletesTheDriverDirectory() {
        MediaDriverHandle driver = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("close"));
        Path dir = Path.of(driver.aeronDirectoryName());
        assertTrue(dir.getFileName().toString().startsWith(
                MediaDriverHandle.DIR_PREFIX + ProcessHandle.current().pid() + "-"));
        assertTrue(Files.isDirectory(dir));
        driver.close();
        driver.close();
        assertFalse(Files.exists(dir));
    }

    @Test
    void staleDirectoriesOfDeadProcessesAreDeleted(@org.junit.jupiter.api.io.TempDir Path base) throws IOException {
        // a pid that cannot be alive (above pid_max) and one that is: this process
        Path dead = Files.createDirectories(base.resolve(MediaDriverHandle.DIR_PREFIX + "999999999-1"));
        Files.writeString(dead.resolve("cnc.dat"), "x");
        Path alive = Files.createDirectories(base.resolve(MediaDriverHandle.DIR_PREFIX
                + ProcessHandle.current().pid() + "-1"));
        Path other = Files.createDirectories(base.resolve("aeron-someone-else"));
        assertEquals(1, MediaDriverHandle.deleteStaleDirectories(base));
        assertFalse(Files.exists(dead));
        assertTrue(Files.exists(alive));
        assertTrue(Files.exists(other));
    }

    @Test
    @Timeout(value = 40, unit = TimeUnit.SECONDS)
    void aClientWhoseDriverStopsAnsweringReportsTheLossOnce() throws Exception {
        MediaDriverHandle driver = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("gone"));
        try (MediaDriverHandle client = MediaDriverHandle.attach(driver.aeronDirectoryName(), 3_000)) {
            java.util.concurrent.CompletableFuture<String> lost = new java.util.concurrent.CompletableFuture<>();
            java.util.concurrent.atomic.AtomicInteger calls = new java.util.concurrent.atomic.AtomicInteger();
            client.onLoss(r -> {
                calls.incrementAndGet();
                lost.complete(r);
            });
            assertEquals(null, client.lostReason());
            driver.close();
            String reason = lost.get(30, TimeUnit.SECONDS);
            assertTrue(reason.contains(driver.aeronDirectoryName()) && reason.contains("Timeout"), reason);
            assertEquals(reason, client.lostReason());
            // Heard at once by a listener that comes late; the first only once.
            java.util.concurrent.CompletableFuture<String> late = new java.util.concurrent.CompletableFuture<>();
            client.onLoss(late::complete);
            assertEquals(reason, late.getNow(null));
            Thread.sleep(200);
            assertEquals(1, calls.get());
        }
    }

    @Test
    void anOrderlyCloseIsNoLoss() throws Exception {
        java.util.concurrent.atomic.AtomicReference<String> heard = new java.util.concurrent.atomic.AtomicReference<>();
        MediaDriverHandle driver = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("orderly"));
        try (MediaDriverHandle client = MediaDriverHandle.attach(driver.aeronDirectoryName())) {
            client.onLoss(heard::set);
            driver.onLoss(heard::set);
        } finally {
            driver.close();
        }
        Thread.sleep(100);
        assertEquals(null, heard.get());
        assertEquals(null, driver.lostReason());
    }

    @Test
    void attachingWithoutADriverFailsClearly(@org.junit.jupiter.api.io.TempDir Path base) {
        TransportException e = assertThrows(TransportException.class,
                () -> MediaDriverHandle.attach(base.resolve("none").toString(), 300));
        assertTrue(e.getMessage().startsWith("no Aeron media driver answering in "), e.getMessage());
    }

    @Test
    void malformedMessageFailsOnePollAndTheStreamGoesOn() {
        try (MediaDriverHandle driver = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("bad"))) {
            Collector collector = new Collector();
            try (MessageReceiver in = driver.newReceiver(Channels.ipc(), Channels.CONTROL_STREAM, collector);
                 MessageSender out = driver.newSender(Channels.ipc(), Channels.CONTROL_STREAM)) {
                out.awaitConnected(TimeUnit.SECONDS.toNanos(5));
                // a good dispatch of 8 tokens (two IPC fragments), a bad one, a good one
                DispatchWriter writer = new DispatchWriter(out);
                List<Fixtures.DispatchRow> first = Fixtures.dispatchRows(1, 8, HIDDEN, TOP_K, 256);
                List<Fixtures.DispatchRow> third = Fixtures.dispatchRows(3, 8, HIDDEN, TOP_K, 256);
                Fixtures.write(writer, 1, 1, 1, 1, 0, 0, HIDDEN, TOP_K, first, false);
                Fixtures.CapturingSink capture = new Fixtures.CapturingSink(out.maxMessageLength());
                Fixtures.write(new DispatchWriter(capture), 1, 1, 2, 1, 0, 0, HIDDEN, TOP_K, third, false);
                byte[] bad = capture.messages.get(0).clone();
                new UnsafeBuffer(bad).putShort(6, (short) 9, java.nio.ByteOrder.LITTLE_ENDIAN);
                out.send(new UnsafeBuffer(bad), 0, bad.length);
                Fixtures.write(writer, 1, 1, 3, 1, 0, 0, HIDDEN, TOP_K, third, true);

                WireFormatException e = null;
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
                while (collector.dispatches < 2 && System.nanoTime() < deadline) {
                    try {
                        in.poll(10);
                    } catch (WireFormatException thrown) {
                        assertEquals(null, e, "only one message is malformed");
                        e = thrown;
                    }
                }
                assertTrue(e != null && e.getMessage().startsWith("message of schema id 17744 version 9"),
                        String.valueOf(e));
                assertEquals(2, collector.dispatches);
                assertEquals(List.of(1L, 3L), collector.headers.stream().map(Fixtures.Header::step).toList());
                List<Fixtures.DispatchRow> both = new ArrayList<>(first);
                both.addAll(third);
                Fixtures.assertDispatchRowsEqual(both, collector.dispatchRows);
                assertEquals(3, in.messages());
            }
        }
    }

    @Test
    void peerErrorSurfacesFromPoll() {
        try (MediaDriverHandle driver = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("err"));
             MessageReceiver in = driver.newReceiver(Channels.ipc(), Channels.COMBINE_STREAM, new WireHandler() { });
             MessageSender out = driver.newSender(Channels.ipc(), Channels.COMBINE_STREAM)) {
            out.awaitConnected(TimeUnit.SECONDS.toNanos(5));
            new ControlWriter(out).error(4, 2, 17, 3, 1, io.epserve.transport.sbe.ErrorCode.UNKNOWN_EXPERT,
                    "expert 9 is not placed on worker 2");
            PeerErrorException e = null;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (e == null && System.nanoTime() < deadline) {
                try {
                    in.poll(10);
                } catch (PeerErrorException thrown) {
                    e = thrown;
                }
            }
            assertTrue(e != null, "no error surfaced");
            assertEquals("worker 2 failed step 17 layer 3 micro-batch 1 (epoch 4): UNKNOWN_EXPERT: expert 9 is not "
                    + "placed on worker 2", e.getMessage());
        }
    }
}
