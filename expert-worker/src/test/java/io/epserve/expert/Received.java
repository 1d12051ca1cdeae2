package io.epserve.expert;

import io.epserve.transport.WireHandler;
import io.epserve.transport.sbe.BooleanType;
import io.epserve.transport.sbe.CombineDecoder;
import io.epserve.transport.sbe.ErrorCode;
import io.epserve.transport.sbe.ErrorDecoder;
import io.epserve.transport.sbe.HelloDecoder;
import io.epserve.transport.sbe.HelloStatus;
import io.epserve.transport.sbe.Role;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/** What an attention worker receives: combine rows (with their header), errors and hellos, copied out. */
final class Received implements WireHandler {
    record CombineRow(long step, int layer, int wave, int part, boolean last, long source, int token, int expert,
                      int slot, short[] bf16) {}

    record Error(long step, int layer, int microBatch, ErrorCode code, String message) {}

    record Hello(long source, Role role, HelloStatus status, String fingerprint, String replyChannel,
                 int replyStreamId) {}

    record Message(long step, int wave, int part, boolean last, int rows) {}

    final List<CombineRow> rows = new CopyOnWriteArrayList<>();
    final List<Message> combines = new CopyOnWriteArrayList<>();
    final List<Error> errors = new CopyOnWriteArrayList<>();
    final List<Hello> hellos = new CopyOnWriteArrayList<>();

    @Override
    public void onCombine(CombineDecoder m) {
        long step = m.step();
        long source = m.source();
        int hiddenDim = (int) m.hiddenDim();
        int layer = m.layer();
        int part = m.part();
        int wave = m.wave();
        boolean last = m.last() == BooleanType.TRUE;
        CombineDecoder.RowsDecoder r = m.rows();
        combines.add(new Message(step, wave, part, last, r.count()));
        List<CombineRow> got = new ArrayList<>();
        while (r.hasNext()) {
            r.next();
            int token = (int) r.tokenIndex();
            int expert = r.expertId();
            int slot = r.slot();
            byte[] bytes = new byte[2 * hiddenDim];
            r.getOutput(bytes, 0, bytes.length);
            short[] v = new short[hiddenDim];
            for (int i = 0; i < hiddenDim; i++) {
                v[i] = (short) ((bytes[2 * i] & 0xff) | (bytes[2 * i + 1] & 0xff) << 8);
            }
            got.add(new CombineRow(step, layer, wave, part, last, source, token, expert, slot, v));
        }
        rows.addAll(got);
    }

    @Override
    public void onError(ErrorDecoder e) {
        long step = e.step();
        int layer = e.layer();
        ErrorCode code = e.code();
        int mb = e.microBatch();
        errors.add(new Error(step, layer, mb, code, e.message()));
    }

    @Override
    public void onHello(HelloDecoder h) {
        long source = h.source();
        int stream = h.replyStreamId();
        Role role = h.role();
        HelloStatus status = h.status();
        String fp = h.fingerprint();
        hellos.add(new Hello(source, role, status, fp, h.replyChannel(), stream));
    }

    List<CombineRow> rowsOf(long step) {
        return rows.stream().filter(r -> r.step() == step).toList();
    }

    void clear() {
        rows.clear();
        combines.clear();
        errors.clear();
        hellos.clear();
    }
}
