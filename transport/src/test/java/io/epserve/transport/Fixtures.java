package io.epserve.transport;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.epserve.transport.sbe.BooleanType;
import io.epserve.transport.sbe.CombineDecoder;
import io.epserve.transport.sbe.DispatchDecoder;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;

/** Test data: random dispatch and combine rows, writers' inputs and decoders' outputs as plain objects. */
final class Fixtures {
    private Fixtures() {
    }

    record DispatchRow(int tokenIndex, int[] experts, int[] slots, double[] weights, byte[] codes, byte[] scales) {
    }

    record CombineRow(int tokenIndex, int expertId, int slot, byte[] bf16) {
    }

    /** Header fields of one decoded message. */
    record Header(long epoch, long source, long step, int layer, int microBatch, int wave, long hiddenDim, int topK,
                  int part, boolean last, int rows) {
    }

    static List<DispatchRow> dispatchRows(long seed, int tokens, int hiddenDim, int topK, int numExperts) {
        SplittableRandom random = new SplittableRandom(seed);
        List<DispatchRow> rows = new ArrayList<>();
        for (int t = 0; t < tokens; t++) {
            int n = 1 + random.nextInt(topK);
            int[] experts = new int[n];
            int[] slots = new int[n];
            double[] weights = new double[n];
            int slot = random.nextInt(topK - n + 1);
            for (int i = 0; i < n; i++) {
                experts[i] = random.nextInt(numExperts);
                slots[i] = slot++;
                weights[i] = random.nextDouble();
            }
            byte[] codes = new byte[hiddenDim];
            for (int i = 0; i < hiddenDim; i++) {
                codes[i] = (byte) random.nextInt(256);
            }
            byte[] scales = new byte[WireLayout.scaleCount(hiddenDim)];
            for (int i = 0; i < scales.length; i++) {
                scales[i] = (byte) (random.nextInt(40) - 30);
            }
            rows.add(new DispatchRow(t * 3 + random.nextInt(3), experts, slots, weights, codes, scales));
        }
        return rows;
    }

    /** Rows with every slot at topK: the largest dispatch rows for these sizes. */
    static List<DispatchRow> fullDispatchRows(long seed, int tokens, int hiddenDim, int topK) {
        SplittableRandom random = new SplittableRandom(seed);
        List<DispatchRow> rows = new ArrayList<>();
        for (int t = 0; t < tokens; t++) {
            int[] experts = new int[topK];
            int[] slots = new int[topK];
            double[] weights = new double[topK];
            for (int i = 0; i < topK; i++) {
                experts[i] = random.nextInt(65536);
                slots[i] = i;
                weights[i] = random.nextDouble() * 4 - 2;
            }
            byte[] codes = new byte[hiddenDim];
            byte[] scales = new byte[WireLayout.scaleCount(hiddenDim)];
            for (int i = 0; i < hiddenDim; i++) {
                codes[i] = (byte) random.nextInt(256);
            }
            for (int i = 0; i < scales.length; i++) {
                scales[i] = (byte) random.nextInt(256);
            }
            rows.add(new DispatchRow(t, experts, slots, weights, codes, scales));
        }
        return rows;
    }

    static List<CombineRow> combineRows(long seed, int tokens, int slotsPerToken, int hiddenDim) {
        SplittableRandom random = new SplittableRandom(seed);
        List<CombineRow> rows = new ArrayList<>();
        for (int t = 0; t < tokens; t++) {
            for (int s = 0; s < slotsPerToken; s++) {
                byte[] bf16 = new byte[2 * hiddenDim];
                for (int i = 0; i < bf16.length; i++) {
                    bf16[i] = (byte) random.nextInt(256);
                }
                rows.add(new CombineRow(t, random.nextInt(65536), s, bf16));
            }
        }
        return rows;
    }

    /** Writes rows through the writer, as heap arrays or (direct = true) through DirectBuffers. */
    static int write(DispatchWriter writer, long epoch, int source, long step, int layer, int microBatch, int wave,
                     int hiddenDim, int topK, List<DispatchRow> rows, boolean direct) {
        writer.begin(epoch, source, step, layer, microBatch, wave, hiddenDim, topK, rows.size());
        for (DispatchRow row : rows) {
            writer.row(row.tokenIndex(), row.experts().length);
            for (int i = 0; i < row.experts().length; i++) {
                writer.slot(row.experts()[i], row.slots()[i], row.weights()[i]);
            }
            if (direct) {
                writer.activation(new UnsafeBuffer(row.codes()), 0, new UnsafeBuffer(row.scales()), 0);
            } else {
                writer.activation(row.codes(), 0, row.scales(), 0);
            }
        }
        return writer.end();
    }

    static int write(CombineWriter writer, long epoch, int source, long step, int layer, int microBatch, int wave,
                     int hiddenDim, List<CombineRow> rows) {
        writer.begin(epoch, source, step, layer, microBatch, wave, hiddenDim, rows.size());
        for (CombineRow row : rows) {
            writer.row(row.tokenIndex(), row.expertId(), row.slot(), row.bf16(), 0);
        }
        return writer.end();
    }

    static Header header(DispatchDecoder d) {
        return new Header(d.epoch(), d.source(), d.step(), d.layer(), d.microBatch(), d.wave(), d.hiddenDim(),
                d.topK(), d.part(), d.last() == BooleanType.TRUE, -1);
    }

    static Header header(CombineDecoder d) {
        return new Header(d.epoch(), d.source(), d.step(), d.layer(), d.microBatch(), d.wave(), d.hiddenDim(), 0,
                d.part(), d.last() == BooleanType.TRUE, -1);
    }

    /** Reads a dispatch's rows (after its header fields) into objects. */
    static List<DispatchRow> readRows(DispatchDecoder d) {
        List<DispatchRow> out = new ArrayList<>();
        for (DispatchDecoder.RowsDecoder row : d.rows()) {
            int tokenIndex = (int) row.tokenIndex();
            DispatchDecoder.RowsDecoder.SlotsDecoder slots = row.slots();
            int n = slots.count();
            int[] experts = new int[n];
            int[] slotIds = new int[n];
            double[] weights = new double[n];
            int i = 0;
            for (DispatchDecoder.RowsDecoder.SlotsDecoder s : slots) {
                weights[i] = s.weight();
                experts[i] = s.expertId();
                slotIds[i] = s.slot();
                i++;
            }
            byte[] codes = new byte[row.codesLength()];
            row.getCodes(codes, 0, codes.length);
            byte[] scales = new byte[row.scalesLength()];
            row.getScales(scales, 0, scales.length);
            out.add(new DispatchRow(tokenIndex, experts, slotIds, weights, codes, scales));
        }
        return out;
    }

    static List<CombineRow> readRows(CombineDecoder d) {
        List<CombineRow> out = new ArrayList<>();
        for (CombineDecoder.RowsDecoder row : d.rows()) {
            int tokenIndex = (int) row.tokenIndex();
            int expertId = row.expertId();
            int slot = row.slot();
            byte[] bf16 = new byte[row.outputLength()];
            row.getOutput(bf16, 0, bf16.length);
            out.add(new CombineRow(tokenIndex, expertId, slot, bf16));
        }
        return out;
    }

    static void assertDispatchRowsEqual(List<DispatchRow> expected, List<DispatchRow> actual) {
        assertEquals(expected.size(), actual.size(), "row count");
        for (int r = 0; r < expected.size(); r++) {
            DispatchRow e = expected.get(r);
            DispatchRow a = actual.get(r);
            assertEquals(e.tokenIndex(), a.tokenIndex(), "tokenIndex of row " + r);
            assertArrayEquals(e.experts(), a.experts(), "experts of row " + r);
            assertArrayEquals(e.slots(), a.slots(), "slots of row " + r);
            assertEquals(e.weights().length, a.weights().length);
            for (int i = 0; i < e.weights().length; i++) {
                assertEquals(Double.doubleToRawLongBits(e.weights()[i]), Double.doubleToRawLongBits(a.weights()[i]),
                        "weight bits of row " + r + " slot " + i);
            }
            assertArrayEquals(e.codes(), a.codes(), "codes of row " + r);
            assertArrayEquals(e.scales(), a.scales(), "scales of row " + r);
        }
    }

    static void assertCombineRowsEqual(List<CombineRow> expected, List<CombineRow> actual) {
        assertEquals(expected.size(), actual.size(), "row count");
        for (int r = 0; r < expected.size(); r++) {
            CombineRow e = expected.get(r);
            CombineRow a = actual.get(r);
            assertEquals(e.tokenIndex(), a.tokenIndex(), "tokenIndex of row " + r);
            assertEquals(e.expertId(), a.expertId(), "expertId of row " + r);
            assertEquals(e.slot(), a.slot(), "slot of row " + r);
            assertArrayEquals(e.bf16(), a.bf16(), "bf16 of row " + r);
        }
    }

    /** A sink that keeps a copy of every message. */
    static final class CapturingSink implements MessageSink {
        final List<byte[]> messages = new ArrayList<>();
        private final int maxMessageLength;

        CapturingSink(int maxMessageLength) {
            this.maxMessageLength = maxMessageLength;
        }

        @Override
        public void send(DirectBuffer buffer, int offset, int length) {
            if (length > maxMessageLength) {
                throw new IllegalArgumentException("message of " + length + " > " + maxMessageLength);
            }
            byte[] copy = new byte[length];
            buffer.getBytes(offset, copy);
            messages.add(copy);
        }

        @Override
        public int maxMessageLength() {
            return maxMessageLength;
        }
    }
}
