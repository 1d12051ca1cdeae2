package io.epserve.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.transport.sbe.CombineDecoder;
import io.epserve.transport.sbe.DispatchDecoder;
import io.epserve.transport.sbe.ErrorCode;
import io.epserve.transport.sbe.HelloStatus;
import io.epserve.transport.sbe.MessageHeaderDecoder;
import io.epserve.transport.sbe.Role;
import java.util.List;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

/** Codec round trips of every message type through the writers and {@link WireDecoder}, and rejections. */
class WireCodecTest {
    private static final int TWO_MIB = 2 * 1024 * 1024;

    private static Collector decodeAll(List<byte[]> messages) {
        Collector collector = new Collector();
        WireDecoder decoder = new WireDecoder();
        for (byte[] m : messages) {
            decoder.decode(new UnsafeBuffer(m), 0, m.length, collector);
        }
        return collector;
    }

    @Test
    void dispatchEdgeValuesRoundTrip() {
        double nanWithPayload = Double.longBitsToDouble(0x7ff8_0000_0000_1234L);
        Fixtures.DispatchRow row = new Fixtures.DispatchRow(Integer.MAX_VALUE,
                new int[] {0, 65535, 7, 12, 300, 65534},
                new int[] {0, 254, 1, 2, 3, 100},
                new double[] {nanWithPayload, -0.0, Double.MIN_VALUE, Double.MAX_VALUE, Double.NEGATIVE_INFINITY,
                        1.0 / 3.0},
                new byte[256], new byte[2]);
        for (int i = 0; i < 256; i++) {
            row.codes()[i] = (byte) i;
        }
        row.scales()[0] = Byte.MIN_VALUE;
        row.scales()[1] = Byte.MAX_VALUE;
        Fixtures.DispatchRow zeroRow = new Fixtures.DispatchRow(0, new int[] {1}, new int[] {0}, new double[] {0.0},
                new byte[256], new byte[2]);
        Fixtures.CapturingSink sink = new Fixtures.CapturingSink(TWO_MIB);
        int parts = Fixtures.write(new DispatchWriter(sink), -1L, -1, -2L, 65535, 255, 255, 256, 255,
                List.of(row, zeroRow), false);
        assertEquals(1, parts);
        assertEquals(WireLayout.DISPATCH_FIXED_LENGTH + WireLayout.dispatchRowLength(256, 6)
                + WireLayout.dispatchRowLength(256, 1), sink.messages.get(0).length);

        Collector c = decodeAll(sink.messages);
        assertEquals(new Fixtures.Header(-1L, 0xFFFF_FFFFL, -2L, 65535, 255, 255, 256, 255, 0, true, 2),
                c.headers.get(0));
        Fixtures.assertDispatchRowsEqual(List.of(row, zeroRow), c.dispatchRows);
        assertEquals(0x7ff8_0000_0000_1234L, Double.doubleToRawLongBits(c.dispatchRows.get(0).weights()[0]));
    }

    @Test
    void dispatchOfSmallMaxSizeIsOneMessage() {
        // `small`: 256 tokens x hiddenDim 1024 x 6 slots, ~285 KB: one message of a 16 MiB term (max 2 MiB)
        List<Fixtures.DispatchRow> rows = Fixtures.fullDispatchRows(1, 256, 1024, 6);
        Fixtures.CapturingSink sink = new Fixtures.CapturingSink(TWO_MIB);
        assertEquals(1, Fixtures.write(new DispatchWriter(sink), 7, 3, 11, 42, 1, 2, 1024, 6, rows, true));
        assertEquals(WireLayout.dispatchLength(256, 1024, 6), sink.messages.get(0).length);
        assertTrue(sink.messages.get(0).length < 300_000, "size " + sink.messages.get(0).length);
        Collector c = decodeAll(sink.messages);
        assertEquals(new Fixtures.Header(7, 3, 11, 42, 1, 2, 1024, 6, 0, true, 256), c.headers.get(0));
        Fixtures.assertDispatchRowsEqual(rows, c.dispatchRows);
    }

    @Test
    void dispatchOfHiddenDim4096RoundTrips() {
        List<Fixtures.DispatchRow> rows = Fixtures.fullDispatchRows(2, 256, 4096, 6);
        Fixtures.CapturingSink sink = new Fixtures.CapturingSink(TWO_MIB);
        assertEquals(1, Fixtures.write(new DispatchWriter(sink), 1, 2, 3, 4, 0, 0, 4096, 6, rows, false));
        assertEquals(WireLayout.dispatchLength(256, 4096, 6), sink.messages.get(0).length);
        Fixtures.assertDispatchRowsEqual(rows, decodeAll(sink.messages).dispatchRows);
    }

    @Test
    void dispatchSplitsIntoPartsWithLastFlagOnTheFinalOne() {
        List<Fixtures.DispatchRow> rows = Fixtures.dispatchRows(3, 100, 1024, 6, 256);
        Fixtures.CapturingSink sink = new Fixtures.CapturingSink(8 * 1024);
        DispatchWriter writer = new DispatchWriter(sink);
        int parts = Fixtures.write(writer, 5, 9, 77, 3, 1, 0, 1024, 6, rows, false);
        int perPart = WireLayout.dispatchRowsPerMessage(8 * 1024, 1024, 6);
        assertEquals(7, perPart);
        assertEquals(WireLayout.parts(100, perPart), parts);
        assertEquals(parts, sink.messages.size());
        Collector c = decodeAll(sink.messages);
        for (int p = 0; p < parts; p++) {
            Fixtures.Header h = c.headers.get(p);
            assertEquals(p, h.part());
            assertEquals(p == parts - 1, h.last(), "last flag of part " + p);
            assertEquals(p == parts - 1 ? 100 - perPart * (parts - 1) : perPart, h.rows());
            assertTrue(sink.messages.get(p).length <= 8 * 1024);
        }
        Fixtures.assertDispatchRowsEqual(rows, c.dispatchRows);

        // the writer is reusable for the next exchange
        List<Fixtures.DispatchRow> more = Fixtures.dispatchRows(4, 3, 1024, 6, 256);
        sink.messages.clear();
        assertEquals(1, Fixtures.write(writer, 5, 9, 78, 3, 1, 0, 1024, 6, more, true));
        Fixtures.assertDispatchRowsEqual(more, decodeAll(sink.messages).dispatchRows);
    }

    @Test
    void emptyExchangeIsOneMessageFlaggedLast() {
        Fixtures.CapturingSink sink = new Fixtures.CapturingSink(TWO_MIB);
        assertEquals(1, Fixtures.write(new DispatchWriter(sink), 1, 1, 1, 1, 0, 0, 1024, 6, List.of(), false));
        assertEquals(WireLayout.DISPATCH_FIXED_LENGTH, sink.messages.get(0).length);
        Collector c = decodeAll(sink.messages);
        assertEquals(0, c.headers.get(0).rows());
        assertTrue(c.headers.get(0).last());

        sink.messages.clear();
        assertEquals(1, Fixtures.write(new CombineWriter(sink), 1, 1, 1, 1, 0, 3, 1024, List.of()));
        c = decodeAll(sink.messages);
        assertEquals(new Fixtures.Header(1, 1, 1, 1, 0, 3, 1024, 0, 0, true, 0), c.headers.get(0));
    }

    @Test
    void combineOfSmallMaxSizeSplitsAndRoundTrips() {
        // 256 tokens x 6 slots x 2 KiB bf16 = 3.1 MB: two messages of at most 2 MiB
        List<Fixtures.CombineRow> rows = Fixtures.combineRows(5, 256, 6, 1024);
        Fixtures.CapturingSink sink = new Fixtures.CapturingSink(TWO_MIB);
        int parts = Fixtures.write(new CombineWriter(sink), -1L, 4, 123456789012L, 60, 3, 7, 1024, rows);
        assertEquals(2, parts);
        Collector c = decodeAll(sink.messages);
        assertEquals(new Fixtures.Header(-1L, 4, 123456789012L, 60, 3, 7, 1024, 0, 0, false,
                WireLayout.combineRowsPerMessage(TWO_MIB, 1024)), c.headers.get(0));
        assertTrue(c.headers.get(1).last());
        Fixtures.assertCombineRowsEqual(rows, c.combineRows);
        assertEquals(WireLayout.combineLength(256 * 6, 1024) + WireLayout.COMBINE_FIXED_LENGTH,
                sink.messages.get(0).length + sink.messages.get(1).length);
    }

    @Test
    void combineOfHiddenDim4096RoundTrips() {
        List<Fixtures.CombineRow> rows = Fixtures.combineRows(6, 256, 6, 4096);
        Fixtures.CapturingSink sink = new Fixtures.CapturingSink(TWO_MIB);
        int parts = Fixtures.write(new CombineWriter(sink), 0, 0, 0, 0, 0, 0, 4096, rows);
        assertEquals(WireLayout.parts(rows.size(), WireLayout.combineRowsPerMessage(TWO_MIB, 4096)), parts);
        Fixtures.assertCombineRowsEqual(rows, decodeAll(sink.messages).combineRows);
    }

    @Test
    void errorAndHelloRoundTrip() {
        Fixtures.CapturingSink sink = new Fixtures.CapturingSink(TWO_MIB);
        ControlWriter control = new ControlWriter(sink);
        control.error(-1L, 7, 99, 12, 2, ErrorCode.UNKNOWN_EXPERT, "expert 17 not on this worker — ünïcode");
        control.error(1, 2, 3, 4, 5, ErrorCode.INTERNAL, "");
        control.hello(5, 3, Role.EXPERT_WORKER, HelloStatus.READY, "sha256:abc123",
                Channels.loopback(40123), Channels.COMBINE_STREAM);
        control.hello(0, 0, Role.ATTENTION_WORKER, HelloStatus.HELLO, "", "", -1);
        Collector c = decodeAll(sink.messages);
        assertEquals(List.of("18446744073709551615/99/7/12/UNKNOWN_EXPERT/2/expert 17 not on this worker — ünïcode",
                "1/3/2/4/INTERNAL/5/"), c.errors);
        assertEquals(List.of("5/3/" + Channels.COMBINE_STREAM + "/EXPERT_WORKER/READY/sha256:abc123/"
                + Channels.loopback(40123), "0/0/-1/ATTENTION_WORKER/HELLO//"), c.hellos);
    }

    @Test
    void peerErrorFailsTheReceivingCallByDefault() {
        Fixtures.CapturingSink sink = new Fixtures.CapturingSink(TWO_MIB);
        new ControlWriter(sink).error(3, 8, 41, 5, 1, ErrorCode.EPOCH_MISMATCH, "placement epoch 3 is stale");
        byte[] m = sink.messages.get(0);
        PeerErrorException e = assertThrows(PeerErrorException.class,
                () -> new WireDecoder().decode(new UnsafeBuffer(m), 0, m.length, new WireHandler() { }));
        assertEquals("worker 8 failed step 41 layer 5 micro-batch 1 (epoch 3): EPOCH_MISMATCH: placement epoch 3 is "
                + "stale", e.getMessage());
        assertEquals(ErrorCode.EPOCH_MISMATCH, e.code());
    }

    private static byte[] oneDispatch() {
        Fixtures.CapturingSink sink = new Fixtures.CapturingSink(TWO_MIB);
        Fixtures.write(new DispatchWriter(sink), 1, 2, 3, 4, 0, 0, 256, 6, Fixtures.dispatchRows(9, 1, 256, 6, 8),
                false);
        return sink.messages.get(0);
    }

    private static String reject(byte[] message, int length) {
        UnsafeBuffer buffer = new UnsafeBuffer(message);
        Collector collector = new Collector();
        WireFormatException e = assertThrows(WireFormatException.class,
                () -> new WireDecoder().decode(buffer, 0, length, collector));
        assertEquals(0, collector.dispatches + collector.combines + collector.errors.size() + collector.hellos.size(),
                "the handler must not see a rejected message");
        return e.getMessage();
    }

    @Test
    void rejectsAnotherSchemaIdOrVersion() {
        byte[] m = oneDispatch();
        UnsafeBuffer b = new UnsafeBuffer(m);
        b.putShort(4, (short) 17745, java.nio.ByteOrder.LITTLE_ENDIAN);
        assertEquals("message of schema id 17745 version 1, expected the epserve wire schema id 17744 version 1 "
                + "(a peer of another build or another protocol)", reject(m, m.length));

        m = oneDispatch();
        new UnsafeBuffer(m).putShort(6, (short) 2, java.nio.ByteOrder.LITTLE_ENDIAN);
        assertTrue(reject(m, m.length).startsWith("message of schema id 17744 version 2, expected"));

        m = oneDispatch();
        new UnsafeBuffer(m).putShort(6, (short) 0, java.nio.ByteOrder.LITTLE_ENDIAN);
        assertTrue(reject(m, m.length).startsWith("message of schema id 17744 version 0, expected"));
    }

    @Test
    void rejectsMalformedMessages() {
        byte[] m = oneDispatch();
        assertEquals("message of 7 bytes is shorter than the 8-byte message header", reject(m, 7));
        assertEquals("Dispatch truncated: 20 bytes after the header, the fixed block needs 32", reject(m, 28));
        assertEquals("Dispatch.rows group header runs past the end of the message",
                reject(m, WireLayout.DISPATCH_FIXED_LENGTH - 1));
        assertEquals("Dispatch.scales of 2 bytes runs past the end of the message", reject(m, m.length - 1));

        byte[] longer = java.util.Arrays.copyOf(m, m.length + 5);
        assertEquals("Dispatch ends 5 bytes before the end of the message", reject(longer, longer.length));

        m = oneDispatch();
        new UnsafeBuffer(m).putShort(2, (short) 99, java.nio.ByteOrder.LITTLE_ENDIAN);
        assertEquals("unknown message template id 99 in schema 17744 version 1", reject(m, m.length));

        m = oneDispatch();
        new UnsafeBuffer(m).putShort(0, (short) 31, java.nio.ByteOrder.LITTLE_ENDIAN);
        assertEquals("Dispatch with block length 31, expected 32", reject(m, m.length));

        // one row: header 8 + block 32 + rows header 4 + tokenIndex 4 + slots header 4 + n x 11, then codes length
        m = oneDispatch();
        UnsafeBuffer b = new UnsafeBuffer(m);
        int slots = b.getShort(8 + 32 + 4 + 4 + 2, java.nio.ByteOrder.LITTLE_ENDIAN);
        int codesLengthAt = 8 + 32 + 4 + 4 + 4 + slots * 11;
        assertEquals(256, b.getInt(codesLengthAt, java.nio.ByteOrder.LITTLE_ENDIAN));
        b.putInt(codesLengthAt, 255, java.nio.ByteOrder.LITTLE_ENDIAN);
        assertEquals("Dispatch.codes of 255 bytes, expected 256", reject(m, m.length));

        m = oneDispatch();
        new UnsafeBuffer(m).putByte(8 + 32 + 4 + 4 + 4 + 10, (byte) 6);
        assertEquals("Dispatch row 0 has slot 6 >= topK 6", reject(m, m.length));

        m = oneDispatch();
        new UnsafeBuffer(m).putShort(8 + 32 + 4 + 4 + 2, (short) 0, java.nio.ByteOrder.LITTLE_ENDIAN);
        assertEquals("Dispatch row 0 has 0 slots, expected 1..6", reject(m, m.length));

        m = oneDispatch();
        new UnsafeBuffer(m).putShort(8 + 32 + 2, (short) 2, java.nio.ByteOrder.LITTLE_ENDIAN);
        assertEquals("Dispatch row runs past the end of the message", reject(m, m.length));
    }

    @Test
    void unexpectedMessageTypeIsAProtocolError() {
        byte[] m = oneDispatch();
        WireFormatException e = assertThrows(WireFormatException.class,
                () -> new WireDecoder().decode(new UnsafeBuffer(m), 0, m.length, new WireHandler() { }));
        assertEquals("unexpected Dispatch message on this receiver", e.getMessage());
    }

    @Test
    void writersRejectMisuse() {
        Fixtures.CapturingSink sink = new Fixtures.CapturingSink(TWO_MIB);
        DispatchWriter w = new DispatchWriter(sink);
        assertThrows(IllegalStateException.class, () -> w.row(0, 1));
        w.begin(1, 1, 1, 1, 0, 0, 256, 2, 1);
        assertThrows(IllegalArgumentException.class, () -> w.row(0, 3));
        w.row(0, 2);
        w.slot(1, 0, 0.5);
        assertThrows(IllegalStateException.class, () -> w.activation(new byte[256], 0, new byte[2], 0));
        assertThrows(IllegalArgumentException.class, () -> w.slot(1, 2, 0.5));
        w.slot(2, 1, 0.5);
        assertThrows(IllegalStateException.class, () -> w.slot(3, 1, 0.5));
        assertThrows(IllegalStateException.class, w::end);
        w.activation(new byte[256], 0, new byte[2], 0);
        assertThrows(IllegalStateException.class, () -> w.row(1, 1));
        assertEquals(1, w.end());
        assertThrows(IllegalStateException.class, w::end);
        assertFalse(sink.messages.isEmpty());

        IllegalArgumentException tooSmall = assertThrows(IllegalArgumentException.class,
                () -> new DispatchWriter(new Fixtures.CapturingSink(1024)).begin(1, 1, 1, 1, 0, 0, 1024, 6, 1));
        assertTrue(tooSmall.getMessage().contains("does not fit in a 1024-byte message"), tooSmall.getMessage());

        CombineWriter cw = new CombineWriter(sink);
        cw.begin(1, 1, 1, 1, 0, 0, 16, 1);
        assertThrows(IllegalStateException.class, cw::end);
        cw.row(0, 1, 0, new byte[32], 0);
        assertThrows(IllegalStateException.class, () -> cw.row(1, 1, 0, new byte[32], 0));
        assertEquals(1, cw.end());
    }

    @Test
    void layoutArithmeticMatchesTheSchema() {
        assertEquals(8, MessageHeaderDecoder.ENCODED_LENGTH);
        assertEquals(32, DispatchDecoder.BLOCK_LENGTH);
        assertEquals(31, CombineDecoder.BLOCK_LENGTH);
        assertEquals(44, WireLayout.DISPATCH_FIXED_LENGTH);
        assertEquals(43, WireLayout.COMBINE_FIXED_LENGTH);
        // tokenIndex 4 + slots header 4 + 6 x 11 + codes 4 + 1024 + scales 4 + 8
        assertEquals(1114, WireLayout.dispatchRowLength(1024, 6));
        assertEquals(7 + 4 + 2048, WireLayout.combineRowLength(1024));
        assertEquals(2, WireLayout.scaleCount(256));
        assertEquals(1, WireLayout.scaleCount(100));
        assertEquals(32, WireLayout.scaleCount(4096));
        assertEquals(0, DispatchDecoder.epochEncodingOffset());
        assertEquals(8, DispatchDecoder.stepEncodingOffset());
        assertEquals(16, DispatchDecoder.sourceEncodingOffset());
        assertEquals(20, DispatchDecoder.hiddenDimEncodingOffset());
        assertEquals(24, DispatchDecoder.layerEncodingOffset());
        assertEquals(26, DispatchDecoder.partEncodingOffset());
        assertEquals(28, DispatchDecoder.microBatchEncodingOffset());
        assertEquals(29, DispatchDecoder.waveEncodingOffset());
        assertEquals(30, DispatchDecoder.topKEncodingOffset());
        assertEquals(31, DispatchDecoder.lastEncodingOffset());
        assertEquals(30, CombineDecoder.lastEncodingOffset());
    }
}
