package io.epserve.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.transport.sbe.CombineDecoder;
import io.epserve.transport.sbe.DispatchDecoder;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.agrona.BufferUtil;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The hot paths allocate nothing per message: encode with the writers, decode with {@link WireDecoder} and a handler
 * that copies rows into preallocated arrays, and the whole Aeron IPC path (offer, poll, reassembly). Measured with
 * the thread's allocated-bytes counter around 10k messages after a warm-up.
 */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class AllocationTest {
    private static final int HIDDEN = 1024;
    private static final int TOP_K = 6;
    private static final int TOKENS = 8;
    private static final int ITERATIONS = 10_000;
    private static final int BLOCKS = 10;
    private static final long BUDGET_BYTES = 16 * 1024;

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    /** Reads every field of every row into preallocated storage, as a worker would. */
    static final class ReadingHandler implements WireHandler {
        final byte[] codes = new byte[HIDDEN];
        final byte[] scales = new byte[HIDDEN / 128];
        final UnsafeBuffer bf16 = new UnsafeBuffer(BufferUtil.allocateDirectAligned(2 * HIDDEN, 64));
        long checksum;
        int messages;
        int rows;

        @Override
        public void onDispatch(DispatchDecoder d) {
            checksum += d.epoch() + d.step() + d.source() + d.layer() + d.microBatch() + d.wave() + d.hiddenDim()
                    + d.topK() + d.part() + d.lastRaw();
            for (DispatchDecoder.RowsDecoder row : d.rows()) {
                checksum += row.tokenIndex();
                for (DispatchDecoder.RowsDecoder.SlotsDecoder slot : row.slots()) {
                    checksum += Double.doubleToRawLongBits(slot.weight()) + slot.expertId() + slot.slot();
                }
                row.getCodes(codes, 0, codes.length);
                row.getScales(scales, 0, scales.length);
                checksum += codes[17] + scales[3];
                rows++;
            }
            messages++;
        }

        @Override
        public void onCombine(CombineDecoder c) {
            checksum += c.epoch() + c.step() + c.source() + c.layer() + c.microBatch() + c.wave() + c.hiddenDim()
                    + c.part() + c.lastRaw();
            for (CombineDecoder.RowsDecoder row : c.rows()) {
                checksum += row.tokenIndex() + row.expertId() + row.slot();
                row.getOutput(bf16, 0, bf16.capacity());
                checksum += bf16.getShort(34);
                rows++;
            }
            messages++;
        }
    }

    /** A sink that decodes each message right away, as the receiving side would. */
    static final class DecodingSink implements MessageSink {
        final WireDecoder decoder = new WireDecoder();
        final ReadingHandler handler = new ReadingHandler();

        @Override
        public void send(DirectBuffer buffer, int offset, int length) {
            decoder.decode(buffer, offset, length, handler);
        }

        @Override
        public int maxMessageLength() {
            return 2 * 1024 * 1024;
        }
    }

    /** Preallocated inputs: activations in direct buffers, bf16 outputs, routing. */
    static final class Inputs {
        final UnsafeBuffer codes = new UnsafeBuffer(BufferUtil.allocateDirectAligned(TOKENS * HIDDEN, 64));
        final UnsafeBuffer scales = new UnsafeBuffer(BufferUtil.allocateDirectAligned(TOKENS * HIDDEN / 128, 64));
        final UnsafeBuffer outputs = new UnsafeBuffer(BufferUtil.allocateDirectAligned(TOKENS * 2 * HIDDEN, 64));

        Inputs() {
            for (int i = 0; i < codes.capacity(); i++) {
                codes.putByte(i, (byte) i);
            }
            for (int i = 0; i < scales.capacity(); i++) {
                scales.putByte(i, (byte) (i % 17 - 8));
            }
            for (int i = 0; i < outputs.capacity(); i++) {
                outputs.putByte(i, (byte) (i * 7));
            }
        }

        void dispatch(DispatchWriter writer, long step) {
            writer.begin(1, 2, step, 3, 1, 0, HIDDEN, TOP_K, TOKENS);
            for (int t = 0; t < TOKENS; t++) {
                int slots = 1 + t % TOP_K;
                writer.row(t, slots);
                for (int s = 0; s < slots; s++) {
                    writer.slot(t * 8 + s, s, 0.125 * s + t);
                }
                writer.activation(codes, t * HIDDEN, scales, t * (HIDDEN / 128));
            }
            writer.end();
        }

        void combine(CombineWriter writer, long step) {
            writer.begin(1, 2, step, 3, 1, 0, HIDDEN, TOKENS);
            for (int t = 0; t < TOKENS; t++) {
                writer.row(t, t * 8, t % TOP_K, outputs, t * 2 * HIDDEN);
            }
            writer.end();
        }
    }

    private static long allocatedBytes() {
        return THREADS.getCurrentThreadAllocatedBytes();
    }

    /** Bytes the current thread allocated in each of {@link #BLOCKS} runs of {@code block}. */
    private static long[] measure(Runnable block) {
        long[] bytes = new long[BLOCKS];
        for (int b = 0; b < BLOCKS; b++) {
            long start = allocatedBytes();
            block.run();
            bytes[b] = allocatedBytes() - start;
        }
        return bytes;
    }

    /**
     * Some runs see a few hundred bytes to a few KB once or twice in a whole measurement; JFR allocation events over
     * 30k Aeron round trips showed none on the message path, so these are put down to JVM events (JIT
     * deoptimisation). So: most blocks must allocate nothing at all and the total must stay under
     * {@link #BUDGET_BYTES}; any per-message allocation (16 bytes or more) would put kilobytes into every block.
     */
    private static void check(String what, long[] blocks, int messages) {
        long total = Arrays.stream(blocks).sum();
        long clean = Arrays.stream(blocks).filter(b -> b == 0).count();
        System.out.printf("%s: %d bytes allocated over %d messages encoded and decoded (per block: %s)%n", what, total,
                messages, Arrays.toString(blocks));
        assertTrue(clean >= BLOCKS / 2, what + ": only " + clean + " of " + BLOCKS + " blocks of "
                + messages / BLOCKS + " messages allocated nothing: " + Arrays.toString(blocks));
        assertTrue(total < BUDGET_BYTES, what + ": " + total + " bytes allocated over " + messages + " messages");
    }

    @Test
    void encodeAndDecodeAllocateNothingPerMessage() {
        assertTrue(THREADS.isThreadAllocatedMemorySupported() && THREADS.isThreadAllocatedMemoryEnabled());
        Inputs inputs = new Inputs();
        DecodingSink sink = new DecodingSink();
        DispatchWriter dispatch = new DispatchWriter(sink);
        CombineWriter combine = new CombineWriter(sink);
        for (int i = 0; i < 20_000; i++) {
            inputs.dispatch(dispatch, i);
            inputs.combine(combine, i);
        }
        int before = sink.handler.messages;
        Runnable block = () -> {
            for (int i = 0; i < ITERATIONS / BLOCKS; i++) {
                inputs.dispatch(dispatch, i);
                inputs.combine(combine, i);
            }
        };
        long[] blocks = measure(block);
        assertEquals(2 * ITERATIONS, sink.handler.messages - before);
        check("codec", blocks, 2 * ITERATIONS);
    }

    @Test
    void aeronIpcSendAndReceiveAllocateNothingPerMessage() {
        Inputs inputs = new Inputs();
        ReadingHandler handler = new ReadingHandler();
        try (MediaDriverHandle driver = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("alloc"));
             MessageReceiver in = driver.newReceiver(Channels.ipc(), Channels.DISPATCH_STREAM, handler);
             MessageSender out = driver.newSender(Channels.ipc(), Channels.DISPATCH_STREAM)) {
            out.awaitConnected(TimeUnit.SECONDS.toNanos(5));
            DispatchWriter dispatch = new DispatchWriter(out);
            CombineWriter combine = new CombineWriter(out);
            // each dispatch is ~9 KB and each combine ~16 KB: 2 and 3 fragments of an 8 KiB MTU, reassembled
            for (int i = 0; i < 10_000; i++) {
                roundTrip(inputs, dispatch, combine, in, handler, i);
            }
            Runnable block = () -> {
                for (int i = 0; i < ITERATIONS / 2 / BLOCKS; i++) {
                    roundTrip(inputs, dispatch, combine, in, handler, i);
                }
            };
            check("aeron ipc", measure(block), ITERATIONS);
        }
    }

    private static void roundTrip(Inputs inputs, DispatchWriter dispatch, CombineWriter combine, MessageReceiver in,
                                  ReadingHandler handler, long step) {
        int want = handler.messages + 2;
        inputs.dispatch(dispatch, step);
        inputs.combine(combine, step);
        while (handler.messages < want) {
            in.poll(16);
        }
    }
}
