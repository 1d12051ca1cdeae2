package io.epserve.transport;

import io.epserve.transport.sbe.CombineDecoder;
import io.epserve.transport.sbe.DispatchDecoder;
import io.epserve.transport.sbe.ErrorDecoder;
import io.epserve.transport.sbe.HelloDecoder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/** A handler that turns every message into objects (allocates: for correctness tests, not the allocation test). */
final class Collector implements WireHandler {
    final List<Fixtures.Header> headers = new ArrayList<>();
    final List<Fixtures.DispatchRow> dispatchRows = new ArrayList<>();
    final List<Fixtures.CombineRow> combineRows = new ArrayList<>();
    final List<String> errors = new ArrayList<>();
    final List<String> hellos = new ArrayList<>();
    int dispatches;
    int combines;
    /** Messages handled, readable from another thread while a poller runs (the lists only after it stopped). */
    final AtomicInteger seen = new AtomicInteger();

    @Override
    public void onDispatch(DispatchDecoder d) {
        Fixtures.Header h = Fixtures.header(d);
        List<Fixtures.DispatchRow> rows = Fixtures.readRows(d);
        headers.add(new Fixtures.Header(h.epoch(), h.source(), h.step(), h.layer(), h.microBatch(), h.wave(),
                h.hiddenDim(), h.topK(), h.part(), h.last(), rows.size()));
        dispatchRows.addAll(rows);
        dispatches++;
        seen.incrementAndGet();
    }

    @Override
    public void onCombine(CombineDecoder d) {
        Fixtures.Header h = Fixtures.header(d);
        List<Fixtures.CombineRow> rows = Fixtures.readRows(d);
        headers.add(new Fixtures.Header(h.epoch(), h.source(), h.step(), h.layer(), h.microBatch(), h.wave(),
                h.hiddenDim(), h.topK(), h.part(), h.last(), rows.size()));
        combineRows.addAll(rows);
        combines++;
        seen.incrementAndGet();
    }

    @Override
    public void onError(ErrorDecoder e) {
        errors.add(Long.toUnsignedString(e.epoch()) + "/" + e.step() + "/" + e.source() + "/" + e.layer() + "/"
                + e.code() + "/" + e.microBatch() + "/" + e.message());
        seen.incrementAndGet();
    }

    @Override
    public void onHello(HelloDecoder h) {
        hellos.add(Long.toUnsignedString(h.epoch()) + "/" + h.source() + "/" + h.replyStreamId() + "/" + h.role()
                + "/" + h.status() + "/" + h.fingerprint() + "/" + h.replyChannel());
        seen.incrementAndGet();
    }
}
