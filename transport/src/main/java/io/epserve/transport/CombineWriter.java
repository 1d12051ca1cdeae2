package io.epserve.transport;

import io.epserve.transport.sbe.BooleanType;
import io.epserve.transport.sbe.CombineEncoder;
import org.agrona.DirectBuffer;

/**
 * Writes one combine exchange (expert outputs of a step, layer, micro-batch and wave for one attention worker) as one
 * or more {@code Combine} messages of at most the sink's maximum message length. A message is sent as soon as it is
 * full; the final one, flagged {@code last}, is sent by {@link #end()}. Each row is one expert's bf16 output for one
 * token slot, unweighted and unsummed (see the schema: the attention worker adds them in a fixed order). Nothing is
 * allocated after construction. Not thread-safe.
 */
public final class CombineWriter {
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
    private int outputBytes;

    private int rowsTotal;
    private int rowsPerPart;
    private int rowsDone;
    private int part;
    private int partRows;
    private int rowsInPart;
    private boolean inExchange;

    private CombineEncoder.RowsEncoder rows;

    /** A writer whose messages are at most {@code sink.maxMessageLength()} bytes. */
    public CombineWriter(MessageSink sink) {
        this(sink, sink.maxMessageLength());
    }

    /** A writer whose messages are at most {@code maxMessageLength} bytes (no more than the sink accepts). */
    public CombineWriter(MessageSink sink, int maxMessageLength) {
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

    /** Starts an exchange of {@code rowCount} rows (0 is allowed: one empty message flagged last). */
    public CombineWriter begin(long epoch, int source, long step, int layer, int microBatch, int wave, int hiddenDim,
                               int rowCount) {
        if (inExchange) {
            throw new IllegalStateException("begin() while an exchange is open: call end() first");
        }
        DispatchWriter.checkRange("layer", layer, 0xFFFF);
        DispatchWriter.checkRange("microBatch", microBatch, 0xFF);
        DispatchWriter.checkRange("wave", wave, 0xFF);
        if (rowCount < 0) {
            throw new IllegalArgumentException("rowCount must be non-negative, got " + rowCount);
        }
        this.rowsPerPart = WireLayout.combineRowsPerMessage(maxMessageLength, hiddenDim);
        this.epoch = epoch;
        this.source = source;
        this.step = step;
        this.layer = layer;
        this.microBatch = microBatch;
        this.wave = wave;
        this.hiddenDim = hiddenDim;
        this.outputBytes = WireLayout.BF16_BYTES * hiddenDim;
        this.rowsTotal = rowCount;
        this.rowsDone = 0;
        this.part = -1;
        this.inExchange = true;
        startPart();
        return this;
    }

    /** One row: the token's row in the attention worker's micro-batch, the expert, its slot, hiddenDim bf16 values. */
    public CombineWriter row(int tokenIndex, int expertId, int slot, DirectBuffer bf16, int offset) {
        nextRow(tokenIndex, expertId, slot).putOutput(bf16, offset, outputBytes);
        return finishRow();
    }

    /** One row from a heap array of little-endian bf16 bytes. */
    public CombineWriter row(int tokenIndex, int expertId, int slot, byte[] bf16, int offset) {
        nextRow(tokenIndex, expertId, slot).putOutput(bf16, offset, outputBytes);
        return finishRow();
    }

    /** Sends the final message of the exchange (flagged last) and returns how many messages the exchange took. */
    public int end() {
        if (!inExchange) {
            throw new IllegalStateException("end() outside an exchange");
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

    private CombineEncoder.RowsEncoder nextRow(int tokenIndex, int expertId, int slot) {
        if (!inExchange) {
            throw new IllegalStateException("row() outside an exchange: call begin() first");
        }
        if (rowsDone == rowsTotal) {
            throw new IllegalStateException("more rows than the " + rowsTotal + " declared in begin()");
        }
        if (tokenIndex < 0) {
            throw new IllegalArgumentException("tokenIndex must be non-negative, got " + tokenIndex);
        }
        DispatchWriter.checkRange("expertId", expertId, 0xFFFF);
        DispatchWriter.checkRange("slot", slot, 0xFF);
        if (rowsInPart == partRows) {
            startPart();
        }
        return rows.next().tokenIndex(tokenIndex).expertId(expertId).slot((short) slot);
    }

    private CombineWriter finishRow() {
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
        rows = out.wrapCombine()
                .epoch(epoch)
                .step(step)
                .source(source & 0xFFFF_FFFFL)
                .hiddenDim(hiddenDim)
                .layer(layer)
                .part(part)
                .microBatch((short) microBatch)
                .wave((short) wave)
                .last(last ? BooleanType.TRUE : BooleanType.FALSE)
                .rowsCount(partRows);
    }
}
