package io.epserve.transport;

import io.epserve.transport.sbe.CombineEncoder;
import io.epserve.transport.sbe.DispatchEncoder;
import io.epserve.transport.sbe.MessageHeaderEncoder;

/**
 * Byte arithmetic of the wire layouts in {@code epserve-wire.xml}: sizes of rows and messages, and how many rows fit
 * in one Aeron message. All sizes come from the generated codecs' constants, so they follow the schema.
 */
public final class WireLayout {
    /** FP8 activations carry one power-of-two scale exponent per this many values. */
    public static final int SCALE_BLOCK = 128;

    /** Bytes per bf16 value of a combine row. */
    public static final int BF16_BYTES = 2;

    /** Most rows one message may hold (the SBE group count is a uint16 with 65535 reserved). */
    public static final int MAX_ROWS_PER_MESSAGE = DispatchEncoder.RowsEncoder.countMaxValue();

    /** Bytes before the first dispatch row: message header, fixed block, rows group header. */
    public static final int DISPATCH_FIXED_LENGTH = MessageHeaderEncoder.ENCODED_LENGTH + DispatchEncoder.BLOCK_LENGTH
            + DispatchEncoder.RowsEncoder.sbeHeaderSize();

    /** Bytes before the first combine row: message header, fixed block, rows group header. */
    public static final int COMBINE_FIXED_LENGTH = MessageHeaderEncoder.ENCODED_LENGTH + CombineEncoder.BLOCK_LENGTH
            + CombineEncoder.RowsEncoder.sbeHeaderSize();

    private WireLayout() {
    }

    /** Scale exponents of one activation row: {@code ceil(hiddenDim / 128)}. */
    public static int scaleCount(int hiddenDim) {
        checkHiddenDim(hiddenDim);
        return (hiddenDim + SCALE_BLOCK - 1) / SCALE_BLOCK;
    }

    /** Encoded bytes of one dispatch row holding {@code slots} expert slots. */
    public static int dispatchRowLength(int hiddenDim, int slots) {
        return DispatchEncoder.RowsEncoder.sbeBlockLength()
                + DispatchEncoder.RowsEncoder.SlotsEncoder.sbeHeaderSize()
                + slots * DispatchEncoder.RowsEncoder.SlotsEncoder.sbeBlockLength()
                + DispatchEncoder.RowsEncoder.codesHeaderLength() + hiddenDim
                + DispatchEncoder.RowsEncoder.scalesHeaderLength() + scaleCount(hiddenDim);
    }

    /** Encoded bytes of one combine row. */
    public static int combineRowLength(int hiddenDim) {
        checkHiddenDim(hiddenDim);
        return CombineEncoder.RowsEncoder.sbeBlockLength() + CombineEncoder.RowsEncoder.outputHeaderLength()
                + BF16_BYTES * hiddenDim;
    }

    /** Encoded bytes of a dispatch message whose rows hold {@code slotsPerRow} slots each. */
    public static long dispatchLength(int rows, int hiddenDim, int slotsPerRow) {
        return DISPATCH_FIXED_LENGTH + (long) rows * dispatchRowLength(hiddenDim, slotsPerRow);
    }

    /** Encoded bytes of a combine message. */
    public static long combineLength(int rows, int hiddenDim) {
        return COMBINE_FIXED_LENGTH + (long) rows * combineRowLength(hiddenDim);
    }

    /**
     * Dispatch rows that always fit in one message of {@code maxMessageLength} bytes, whatever the rows' slot counts
     * (each row is sized for {@code topK} slots). At least 1, or an {@link IllegalArgumentException} naming the sizes.
     */
    public static int dispatchRowsPerMessage(int maxMessageLength, int hiddenDim, int topK) {
        return rowsPerMessage(maxMessageLength, DISPATCH_FIXED_LENGTH, dispatchRowLength(hiddenDim, topK), "dispatch");
    }

    /** Combine rows that fit in one message of {@code maxMessageLength} bytes (at least 1, or an exception). */
    public static int combineRowsPerMessage(int maxMessageLength, int hiddenDim) {
        return rowsPerMessage(maxMessageLength, COMBINE_FIXED_LENGTH, combineRowLength(hiddenDim), "combine");
    }

    /** Messages needed to carry {@code rows} rows at {@code rowsPerMessage} rows each (1 for zero rows). */
    public static int parts(int rows, int rowsPerMessage) {
        return rows == 0 ? 1 : (rows + rowsPerMessage - 1) / rowsPerMessage;
    }

    private static int rowsPerMessage(int maxMessageLength, int fixedLength, int rowLength, String what) {
        int rows = (maxMessageLength - fixedLength) / rowLength;
        if (rows < 1) {
            throw new IllegalArgumentException("a " + what + " row of " + rowLength + " bytes does not fit in a "
                    + maxMessageLength + "-byte message (raise the Aeron term length: maxMessageLength = termLength / 8)");
        }
        return Math.min(rows, MAX_ROWS_PER_MESSAGE);
    }

    private static void checkHiddenDim(int hiddenDim) {
        if (hiddenDim <= 0) {
            throw new IllegalArgumentException("hiddenDim must be positive, got " + hiddenDim);
        }
    }
}
