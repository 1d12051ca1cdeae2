package io.epserve.transport;

import io.epserve.transport.sbe.CombineDecoder;
import io.epserve.transport.sbe.DispatchDecoder;
import io.epserve.transport.sbe.ErrorDecoder;
import io.epserve.transport.sbe.HelloDecoder;
import io.epserve.transport.sbe.MessageHeaderDecoder;
import org.agrona.DirectBuffer;

/**
 * Checks and dispatches one received message to a {@link WireHandler}. Before the handler sees a message, the decoder
 * verifies the schema id and version (exactly this build's), the template, the fixed block length, and walks the
 * rows to check that every group and variable-length field lies inside the message and has the length the header
 * implies (codes = hiddenDim, scales = ceil(hiddenDim/128), bf16 output = 2 x hiddenDim, 1..topK slots per row, each
 * slot below topK). A message that fails any check is rejected with a {@link WireFormatException} naming the problem;
 * the handler is not called. The walk reads only headers and lengths, never the payload bytes.
 *
 * <p>Reuses one decoder per message type: nothing is allocated per message (except on the error path). Not
 * thread-safe.
 */
public final class WireDecoder {
    public static final int SCHEMA_ID = MessageHeaderDecoder.SCHEMA_ID;
    public static final int SCHEMA_VERSION = MessageHeaderDecoder.SCHEMA_VERSION;

    private final MessageHeaderDecoder header = new MessageHeaderDecoder();
    private final DispatchDecoder dispatch = new DispatchDecoder();
    private final CombineDecoder combine = new CombineDecoder();
    private final ErrorDecoder error = new ErrorDecoder();
    private final HelloDecoder hello = new HelloDecoder();

    /**
     * Decodes the message at {@code buffer[offset, offset + length)} and calls the handler's method for its type.
     *
     * @return the message's template id
     * @throws WireFormatException if the bytes are not a well-formed message of this schema and version
     */
    public int decode(DirectBuffer buffer, int offset, int length, WireHandler handler) {
        int end = offset + length;
        if (length < MessageHeaderDecoder.ENCODED_LENGTH) {
            throw new WireFormatException("message of " + length + " bytes is shorter than the "
                    + MessageHeaderDecoder.ENCODED_LENGTH + "-byte message header");
        }
        header.wrap(buffer, offset);
        int schemaId = header.schemaId();
        int version = header.version();
        if (schemaId != SCHEMA_ID || version != SCHEMA_VERSION) {
            throw new WireFormatException("message of schema id " + schemaId + " version " + version
                    + ", expected the epserve wire schema id " + SCHEMA_ID + " version " + SCHEMA_VERSION
                    + " (a peer of another build or another protocol)");
        }
        int templateId = header.templateId();
        int blockLength = header.blockLength();
        int body = offset + MessageHeaderDecoder.ENCODED_LENGTH;
        switch (templateId) {
            case DispatchDecoder.TEMPLATE_ID -> {
                checkBlock("Dispatch", blockLength, DispatchDecoder.BLOCK_LENGTH, body, end);
                dispatch.wrap(buffer, body, blockLength, version);
                checkDispatch(end);
                handler.onDispatch(dispatch.sbeRewind());
            }
            case CombineDecoder.TEMPLATE_ID -> {
                checkBlock("Combine", blockLength, CombineDecoder.BLOCK_LENGTH, body, end);
                combine.wrap(buffer, body, blockLength, version);
                checkCombine(end);
                handler.onCombine(combine.sbeRewind());
            }
            case ErrorDecoder.TEMPLATE_ID -> {
                checkBlock("Error", blockLength, ErrorDecoder.BLOCK_LENGTH, body, end);
                error.wrap(buffer, body, blockLength, version);
                checkVar("Error.message", error.limit(), ErrorDecoder.messageHeaderLength(), end);
                checkData("Error.message", error.limit(), ErrorDecoder.messageHeaderLength(), error.messageLength(),
                        end);
                error.skipMessage();
                checkEnd("Error", error.limit(), end);
                handler.onError(error.sbeRewind());
            }
            case HelloDecoder.TEMPLATE_ID -> {
                checkBlock("Hello", blockLength, HelloDecoder.BLOCK_LENGTH, body, end);
                hello.wrap(buffer, body, blockLength, version);
                checkVar("Hello.fingerprint", hello.limit(), HelloDecoder.fingerprintHeaderLength(), end);
                checkData("Hello.fingerprint", hello.limit(), HelloDecoder.fingerprintHeaderLength(),
                        hello.fingerprintLength(), end);
                hello.skipFingerprint();
                checkVar("Hello.replyChannel", hello.limit(), HelloDecoder.replyChannelHeaderLength(), end);
                checkData("Hello.replyChannel", hello.limit(), HelloDecoder.replyChannelHeaderLength(),
                        hello.replyChannelLength(), end);
                hello.skipReplyChannel();
                checkEnd("Hello", hello.limit(), end);
                handler.onHello(hello.sbeRewind());
            }
            default -> throw new WireFormatException("unknown message template id " + templateId
                    + " in schema " + SCHEMA_ID + " version " + SCHEMA_VERSION);
        }
        return templateId;
    }

    private void checkDispatch(int end) {
        long hiddenDim = dispatch.hiddenDim();
        int topK = dispatch.topK();
        if (hiddenDim <= 0 || hiddenDim > Integer.MAX_VALUE / 2 || topK == 0) {
            throw new WireFormatException("Dispatch with hiddenDim " + hiddenDim + " and topK " + topK);
        }
        int codes = (int) hiddenDim;
        int scales = WireLayout.scaleCount(codes);
        checkGroupHeader("Dispatch.rows", dispatch.limit(), DispatchDecoder.RowsDecoder.sbeHeaderSize(), end);
        DispatchDecoder.RowsDecoder rows = dispatch.rows();
        checkGroupBlock("Dispatch.rows", rows.actingBlockLength(), DispatchDecoder.RowsDecoder.sbeBlockLength());
        int row = 0;
        while (rows.hasNext()) {
            checkRow("Dispatch", dispatch.limit(), rows.actingBlockLength(), end);
            rows.next();
            checkGroupHeader("Dispatch.rows.slots", dispatch.limit(),
                    DispatchDecoder.RowsDecoder.SlotsDecoder.sbeHeaderSize(), end);
            DispatchDecoder.RowsDecoder.SlotsDecoder slots = rows.slots();
            checkGroupBlock("Dispatch.rows.slots", slots.actingBlockLength(),
                    DispatchDecoder.RowsDecoder.SlotsDecoder.sbeBlockLength());
            int count = slots.count();
            if (count < 1 || count > topK) {
                throw new WireFormatException("Dispatch row " + row + " has " + count
                        + " slots, expected 1.." + topK);
            }
            while (slots.hasNext()) {
                checkRow("Dispatch slot", dispatch.limit(), slots.actingBlockLength(), end);
                slots.next();
                if (slots.slot() >= topK) {
                    throw new WireFormatException("Dispatch row " + row + " has slot " + slots.slot()
                            + " >= topK " + topK);
                }
            }
            checkVar("Dispatch.codes", dispatch.limit(), DispatchDecoder.RowsDecoder.codesHeaderLength(), end);
            checkLength("Dispatch.codes", rows.codesLength(), codes);
            checkData("Dispatch.codes", dispatch.limit(), DispatchDecoder.RowsDecoder.codesHeaderLength(), codes, end);
            rows.skipCodes();
            checkVar("Dispatch.scales", dispatch.limit(), DispatchDecoder.RowsDecoder.scalesHeaderLength(), end);
            checkLength("Dispatch.scales", rows.scalesLength(), scales);
            checkData("Dispatch.scales", dispatch.limit(), DispatchDecoder.RowsDecoder.scalesHeaderLength(), scales,
                    end);
            rows.skipScales();
            row++;
        }
        checkEnd("Dispatch", dispatch.limit(), end);
    }

    private void checkCombine(int end) {
        long hiddenDim = combine.hiddenDim();
        if (hiddenDim <= 0 || hiddenDim > Integer.MAX_VALUE / 4) {
            throw new WireFormatException("Combine with hiddenDim " + hiddenDim);
        }
        int outputBytes = (int) hiddenDim * WireLayout.BF16_BYTES;
        checkGroupHeader("Combine.rows", combine.limit(), CombineDecoder.RowsDecoder.sbeHeaderSize(), end);
        CombineDecoder.RowsDecoder rows = combine.rows();
        checkGroupBlock("Combine.rows", rows.actingBlockLength(), CombineDecoder.RowsDecoder.sbeBlockLength());
        while (rows.hasNext()) {
            checkRow("Combine", combine.limit(), rows.actingBlockLength(), end);
            rows.next();
            checkVar("Combine.output", combine.limit(), CombineDecoder.RowsDecoder.outputHeaderLength(), end);
            checkLength("Combine.output", rows.outputLength(), outputBytes);
            checkData("Combine.output", combine.limit(), CombineDecoder.RowsDecoder.outputHeaderLength(), outputBytes,
                    end);
            rows.skipOutput();
        }
        checkEnd("Combine", combine.limit(), end);
    }

    private static void checkBlock(String name, int blockLength, int expected, int body, int end) {
        if (blockLength != expected) {
            throw new WireFormatException(name + " with block length " + blockLength + ", expected " + expected);
        }
        if (body + blockLength > end) {
            throw new WireFormatException(name + " truncated: " + (end - body) + " bytes after the header, the fixed "
                    + "block needs " + blockLength);
        }
    }

    private static void checkGroupHeader(String name, int limit, int headerLength, int end) {
        if (limit + headerLength > end) {
            throw new WireFormatException(name + " group header runs past the end of the message");
        }
    }

    private static void checkGroupBlock(String name, int blockLength, int expected) {
        if (blockLength != expected) {
            throw new WireFormatException(name + " with row block length " + blockLength + ", expected " + expected);
        }
    }

    private static void checkRow(String name, int limit, int blockLength, int end) {
        if (limit + blockLength > end) {
            throw new WireFormatException(name + " row runs past the end of the message");
        }
    }

    private static void checkVar(String name, int limit, int headerLength, int end) {
        if (limit + headerLength > end) {
            throw new WireFormatException(name + " length runs past the end of the message");
        }
    }

    private static void checkData(String name, int limit, int headerLength, int length, int end) {
        if (length < 0 || length > end - limit - headerLength) {
            throw new WireFormatException(name + " of " + Integer.toUnsignedString(length)
                    + " bytes runs past the end of the message");
        }
    }

    private static void checkLength(String name, int length, int expected) {
        if (length != expected) {
            throw new WireFormatException(name + " of " + length + " bytes, expected " + expected);
        }
    }

    private static void checkEnd(String name, int limit, int end) {
        if (limit < end) {
            throw new WireFormatException(name + " ends " + (end - limit) + " bytes before the end of the message");
        }
        if (limit > end) {
            throw new WireFormatException(name + " runs " + (limit - end) + " bytes past the end of the message");
        }
    }
}
