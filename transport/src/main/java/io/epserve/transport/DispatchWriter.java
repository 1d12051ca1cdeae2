package io.epserve.transport;

import io.epserve.transport.sbe.BooleanType;
import io.epserve.transport.sbe.DispatchEncoder;
import org.agrona.DirectBuffer;

/**
 * Writes one dispatch exchange (the rows of a step, layer, micro-batch and wave for one receiver) as one or more
 * {@code Dispatch} messages, each at most the sink's maximum message length. A message is sent as soon as it is full;
 * the final one, flagged {@code last}, is sent by {@link #end()}. Per row, call {@link #row}, then {@link #slot} once
 * per slot, then {@link #activation} (the order of the wire layout). Nothing is allocated after construction.
 * Not thread-safe.
 *
 * <pre>{@code
 * writer.begin(epoch, source, step, layer, microBatch, wave, hiddenDim, topK, rows);
 * for (each token with experts on this receiver) {
 *     writer.row(tokenIndex, slotCount);
 *     for (each of its slots served here) writer.slot(expertId, slot, weight);
 *     writer.activation(codes, codesOffset, scales, scalesOffset);
 * }
 * writer.end();
 * }</pre>
 */
public final class DispatchWriter {
    private final MessageSink sink;
    private final EncodeBuffer out;
    private final int maxMessageLength;

    private long epoch;
    private long step;
    private int source;
    private int layer;
    private int microBatch;
    private int wave;
    private int hiddenDim;
    private int topK;
    private int scaleCount;

    private int rowsTotal;
    private int rowsPerPart;
    private int rowsDone;
    private int part;
    private int partRows;
    private int rowsInPart;
    private int slotsExpected;
    private int slotsDone;
    private boolean inExchange;
    private boolean inRow;

    private DispatchEncoder.RowsEncoder rows;
    private DispatchEncoder.RowsEncoder.SlotsEncoder slots;

    /** A writer whose messages are at most {@code sink.maxMessageLength()} bytes. */
    public DispatchWriter(MessageSink sink) {
        this(sink, sink.maxMessageLength());
    }

    /** A writer whose messages are at most {@code maxMessageLength} bytes (no more than the sink accepts). */
    public DispatchWriter(MessageSink sink, int maxMessageLength) {
        if (maxMessageLength > sink.maxMessageLength()) {
            throw new IllegalArgumentException("maxMessageLength " + maxMessageLength + " exceeds the sink's "
                    + sink.maxMessageLength());
        }
        this.sink = sink;
        this.maxMessageLength = maxMessageLength;
        this.out = new EncodeBuffer(maxMessageLength);
    }

    public int maxMessageLength() {
        return maxMessageLength;
    }

    /**
     * Starts an exchange of {@code rowCount} rows (0 is allowed: one empty message flagged last is sent by
     * {@link #end()}).
     *
     * @param epoch placement-table epoch (uint64)
     * @param source sender's worker id (uint32)
     * @param topK experts per token in the model; rows carry 1..topK slots
     */
    public DispatchWriter begin(long epoch, int source, long step, int layer, int microBatch, int wave,
                                int hiddenDim, int topK, int rowCount) {
        if (inExchange) {
            throw new IllegalStateException("begin() while an exchange is open: call end() first");
        }
        checkRange("layer", layer, 0xFFFF);
        checkRange("microBatch", microBatch, 0xFF);
        checkRange("wave", wave, 0xFF);
        checkRange("topK", topK, 0xFF);
        if (topK < 1) {
            throw new IllegalArgumentException("topK must be at least 1, got " + topK);
        }
        if (rowCount < 0) {
            throw new IllegalArgumentException("rowCount must be non-negative, got " + rowCount);
        }
        this.scaleCount = WireLayout.scaleCount(hiddenDim);
        this.epoch = epoch;
        this.source = source;
        this.step = step;
        this.layer = layer;
        this.microBatch = microBatch;
        this.wave = wave;
        this.hiddenDim = hiddenDim;
        this.topK = topK;
        this.rowsTotal = rowCount;
        this.rowsPerPart = WireLayout.dispatchRowsPerMessage(maxMessageLength, hiddenDim, topK);
        this.rowsDone = 0;
        this.part = -1;
        this.inExchange = true;
        this.inRow = false;
        startPart();
        return this;
    }

    /** Starts the next row: the token's row in the sender's micro-batch and how many slots follow. */
    public DispatchWriter row(int tokenIndex, int slotCount) {
        if (!inExchange) {
            throw new IllegalStateException("row() outside an exchange: call begin() first");
        }
        if (inRow) {
            throw new IllegalStateException("row() before the previous row's activation()");
        }
        if (rowsDone == rowsTotal) {
            throw new IllegalStateException("more rows than the " + rowsTotal + " declared in begin()");
        }
        if (tokenIndex < 0) {
            throw new IllegalArgumentException("tokenIndex must be non-negative, got " + tokenIndex);
        }
        if (slotCount < 1 || slotCount > topK) {
            throw new IllegalArgumentException("slotCount must be in 1.." + topK + ", got " + slotCount);
        }
        if (rowsInPart == partRows) {
            startPart();
        }
        rows.next().tokenIndex(tokenIndex);
        slots = rows.slotsCount(slotCount);
        slotsExpected = slotCount;
        slotsDone = 0;
        inRow = true;
        return this;
    }

    /** One expert slot of the current row: expert id, position in the token's top-k, routing weight (exact). */
    public DispatchWriter slot(int expertId, int slot, double weight) {
        if (!inRow || slotsDone == slotsExpected) {
            throw new IllegalStateException(inRow ? "more slots than the " + slotsExpected + " declared in row()"
                    : "slot() outside a row: call row() first");
        }
        checkRange("expertId", expertId, 0xFFFF);
        if (slot < 0 || slot >= topK) {
            throw new IllegalArgumentException("slot must be in 0.." + (topK - 1) + ", got " + slot);
        }
        slots.next().weight(weight).expertId(expertId).slot((short) slot);
        slotsDone++;
        return this;
    }

    /** The current row's activation: hiddenDim FP8 codes and ceil(hiddenDim/128) int8 scale exponents. */
    public DispatchWriter activation(DirectBuffer codes, int codesOffset, DirectBuffer scales, int scalesOffset) {
        checkActivation();
        rows.putCodes(codes, codesOffset, hiddenDim);
        rows.putScales(scales, scalesOffset, scaleCount);
        return finishRow();
    }

    /** The current row's activation from heap arrays. */
    public DispatchWriter activation(byte[] codes, int codesOffset, byte[] scales, int scalesOffset) {
        checkActivation();
        rows.putCodes(codes, codesOffset, hiddenDim);
        rows.putScales(scales, scalesOffset, scaleCount);
        return finishRow();
    }

    /** Sends the final message of the exchange (flagged last) and returns how many messages the exchange took. */
    public int end() {
        if (!inExchange) {
            throw new IllegalStateException("end() outside an exchange");
        }
        if (inRow) {
            throw new IllegalStateException("end() inside a row: the row's slots or activation are missing");
        }
        if (rowsDone != rowsTotal) {
            throw new IllegalStateException("end() after " + rowsDone + " of the " + rowsTotal + " rows declared");
        }
        out.sendTo(sink);
        inExchange = false;
        return part + 1;
    }

    /** Rows per message in the current exchange. */
    public int rowsPerPart() {
        return rowsPerPart;
    }

    private void checkActivation() {
        if (!inRow) {
            throw new IllegalStateException("activation() outside a row: call row() first");
        }
        if (slotsDone != slotsExpected) {
            throw new IllegalStateException("activation() after " + slotsDone + " of " + slotsExpected + " slots");
        }
    }

    private DispatchWriter finishRow() {
        inRow = false;
        rowsInPart++;
        rowsDone++;
        if (rowsInPart == partRows && rowsDone < rowsTotal) {
            out.sendTo(sink);
        }
        return this;
    }

    private void startPart() {
        part++;
        if (part > 0xFFFE) {
            throw new IllegalStateException("an exchange may span at most 65535 messages");
        }
        partRows = Math.min(rowsPerPart, rowsTotal - rowsDone);
        rowsInPart = 0;
        boolean last = rowsDone + partRows == rowsTotal;
        rows = out.wrapDispatch()
                .epoch(epoch)
                .step(step)
                .source(source & 0xFFFF_FFFFL)
                .hiddenDim(hiddenDim)
                .layer(layer)
                .part(part)
                .microBatch((short) microBatch)
                .wave((short) wave)
                .topK((short) topK)
                .last(last ? BooleanType.TRUE : BooleanType.FALSE)
                .rowsCount(partRows);
    }

    static void checkRange(String name, int value, int max) {
        if (value < 0 || value > max) {
            throw new IllegalArgumentException(name + " must be in 0.." + max + ", got " + value);
        }
    }
}
