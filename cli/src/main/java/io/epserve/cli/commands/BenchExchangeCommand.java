package io.epserve.cli.commands;

import io.epserve.transport.Channels;
import io.epserve.transport.CombineWriter;
import io.epserve.transport.DispatchWriter;
import io.epserve.transport.MediaDriverHandle;
import io.epserve.transport.MessageReceiver;
import io.epserve.transport.MessageSender;
import io.epserve.transport.MessageSink;
import io.epserve.transport.WireDecoder;
import io.epserve.transport.WireHandler;
import io.epserve.transport.sbe.CombineDecoder;
import io.epserve.transport.sbe.DispatchDecoder;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.HdrHistogram.Histogram;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "bench-exchange", mixinStandardHelpOptions = true,
        description = {
            "Round trip of one MoE exchange without expert compute: a dispatch of T tokens (FP8 codes and exponents,"
                    + " top-k slots each) to a responder that decodes it and answers with one weighted bf16 row per"
                    + " (token, slot), as an expert worker would. Over Aeron UDP on 127.0.0.1 (two media drivers, as two"
                    + " processes would have) and, for comparison, the same bytes over a gRPC unary call.",
            "Prints p50/p99/mean per token count for each transport, measured side by side in one run."
        })
public final class BenchExchangeCommand implements Callable<Integer> {
    @Option(names = "--tokens", split = ",", defaultValue = "1,8,64,256", description = "Token counts. Default: ${DEFAULT-VALUE}.")
    int[] tokens;

    @Option(names = "--hidden", defaultValue = "1024", description = "Hidden size (small: 1024). Default: ${DEFAULT-VALUE}.")
    int hidden;

    @Option(names = "--top-k", defaultValue = "6", description = "Slots per token (small: 6). Default: ${DEFAULT-VALUE}.")
    int topK;

    @Option(names = "--iterations", defaultValue = "2000", description = "Measured exchanges per token count. Default: ${DEFAULT-VALUE}.")
    int iterations;

    @Option(names = "--warmup", defaultValue = "500", description = "Unmeasured exchanges first. Default: ${DEFAULT-VALUE}.")
    int warmup;

    @Override
    public Integer call() throws Exception {
        if (hidden < 1 || topK < 1 || topK > 255 || iterations < 1 || warmup < 0 || tokens.length == 0) {
            return CliErrors.usage("--hidden, --top-k (1..255), --iterations must be positive and --tokens non-empty");
        }
        int maxTokens = Arrays.stream(tokens).max().getAsInt();
        Payload payload = new Payload(maxTokens, hidden, topK);
        System.out.printf("exchange round trip, hidden %d, top-k %d, %d iterations after %d warm-up (no expert compute)%n",
                hidden, topK, iterations, warmup);
        System.out.println("transport        tokens   dispatch B   combine B      p50 us      p99 us     mean us");
        try (AeronPair aeron = new AeronPair(hidden); GrpcPair grpc = new GrpcPair(hidden)) {
            for (int t : tokens) {
                Histogram a = measure(() -> aeron.exchange(payload, t));
                print("aeron udp", t, aeron.dispatchBytes, aeron.combineBytes, a);
                Histogram g = measure(() -> grpc.exchange(payload, t));
                print("grpc unary", t, grpc.dispatchBytes, grpc.combineBytes, g);
            }
        }
        return 0;
    }

    private Histogram measure(Runnable exchange) {
        Histogram h = new Histogram(1_000, TimeUnit.SECONDS.toNanos(60), 3);
        for (int i = 0; i < warmup + iterations; i++) {
            long t0 = System.nanoTime();
            exchange.run();
            long ns = System.nanoTime() - t0;
            if (i >= warmup) {
                h.recordValue(Math.max(1_000, ns));
            }
        }
        return h;
    }

    private static void print(String transport, int tokens, long dispatch, long combine, Histogram h) {
        System.out.printf("%-14s %8d %12d %11d %11.1f %11.1f %11.1f%n", transport, tokens, dispatch, combine,
                h.getValueAtPercentile(50) / 1e3, h.getValueAtPercentile(99) / 1e3, h.getMean() / 1e3);
    }

    /** Random FP8 codes and exponents of every token, and its routing, prepared once. */
    static final class Payload {
        final byte[] codes;
        final byte[] scales;
        final int[] experts;
        final int scaleCount;

        Payload(int tokens, int hidden, int topK) {
            SplittableRandom r = new SplittableRandom(7);
            codes = new byte[tokens * hidden];
            r.nextBytes(codes);
            scaleCount = (hidden + 127) / 128;
            scales = new byte[tokens * scaleCount];
            for (int i = 0; i < scales.length; i++) {
                scales[i] = (byte) (-8 + r.nextInt(4));
            }
            experts = new int[tokens * topK];
            for (int i = 0; i < experts.length; i++) {
                experts[i] = r.nextInt(256);
            }
        }

        void write(DispatchWriter w, long step, int tokens, int hidden, int topK) {
            w.begin(0, 1, step, 3, 0, 0, hidden, topK, tokens);
            for (int t = 0; t < tokens; t++) {
                w.row(t, topK);
                for (int s = 0; s < topK; s++) {
                    w.slot(experts[t * topK + s], s, 0.125);
                }
                w.activation(codes, t * hidden, scales, t * scaleCount);
            }
            w.end();
        }
    }

    /** The expert side's work without the experts: read every dispatched row, answer one bf16 row per slot. */
    static final class Responder implements WireHandler {
        private final CombineWriter out;
        private final byte[] row;
        private final byte[] codes;
        private int[] tokenOf = new int[0];
        private int[] expertOf = new int[0];
        private int[] slotOf = new int[0];

        Responder(MessageSink sink, int hidden) {
            this.out = new CombineWriter(sink);
            this.row = new byte[2 * hidden];
            this.codes = new byte[hidden];
            for (int i = 0; i < hidden; i++) {
                row[2 * i + 1] = 0x3f; // bf16 ~0.5..1: any value, the bytes are what matter
            }
        }

        @Override
        public void onDispatch(DispatchDecoder d) {
            long step = d.step();
            int layer = d.layer();
            int hidden = (int) d.hiddenDim();
            DispatchDecoder.RowsDecoder rows = d.rows();
            int n = 0;
            int cap = rows.count() * 255;
            if (tokenOf.length < cap) {
                tokenOf = new int[cap];
                expertOf = new int[cap];
                slotOf = new int[cap];
            }
            while (rows.hasNext()) {
                rows.next();
                int token = (int) rows.tokenIndex();
                DispatchDecoder.RowsDecoder.SlotsDecoder slots = rows.slots();
                while (slots.hasNext()) {
                    slots.next();
                    slots.weight();
                    expertOf[n] = slots.expertId();
                    slotOf[n] = slots.slot();
                    tokenOf[n] = token;
                    n++;
                }
                rows.getCodes(codes, 0, hidden);
                rows.skipScales();
            }
            out.begin(0, 2, step, layer, 0, 0, hidden, n);
            for (int i = 0; i < n; i++) {
                out.row(tokenOf[i], expertOf[i], slotOf[i], row, 0);
            }
            out.end();
        }
    }

    /** Counts combine rows until the exchange is complete. */
    static final class Collector implements WireHandler {
        int rows;

        @Override
        public void onCombine(CombineDecoder c) {
            CombineDecoder.RowsDecoder r = c.rows();
            while (r.hasNext()) {
                r.next();
                r.tokenIndex();
                r.skipOutput();
                rows++;
            }
        }
    }

    /** Two embedded media drivers talking UDP over 127.0.0.1; the responder polls on its own thread. */
    final class AeronPair implements AutoCloseable {
        final MediaDriverHandle attention = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("bench-a"));
        final MediaDriverHandle expert = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("bench-e"));
        final MessageSender toExpert;
        final MessageReceiver inbox;
        final DispatchWriter writer;
        final Collector collector = new Collector();
        final BackoffIdleStrategy idle = new BackoffIdleStrategy(10, 5, 1_000, 100_000);
        final Thread responder;
        final AtomicBoolean running = new AtomicBoolean(true);
        final int hidden;
        long step;
        long dispatchBytes;
        long combineBytes;

        AeronPair(int hidden) throws IOException {
            this.hidden = hidden;
            String expertChannel = Channels.loopback(freePort());
            String inboxChannel = Channels.loopback(freePort());
            MessageSender back = expert.newSender(inboxChannel, Channels.COMBINE_STREAM);
            Responder r = new Responder(back, hidden);
            MessageReceiver in = expert.newReceiver(expertChannel, Channels.DISPATCH_STREAM, r);
            inbox = attention.newReceiver(inboxChannel, Channels.COMBINE_STREAM, collector);
            toExpert = attention.newSender(expertChannel, Channels.DISPATCH_STREAM);
            writer = new DispatchWriter(toExpert);
            responder = new Thread(() -> {
                // The workers' default idle strategy: on two cores a busy spin would starve the media drivers.
                BackoffIdleStrategy idle = new BackoffIdleStrategy(10, 5, 1_000, 100_000);
                while (running.get()) {
                    idle.idle(in.poll(64));
                }
                in.close();
                back.close();
            }, "bench-responder");
            responder.setDaemon(true);
            responder.start();
            toExpert.awaitConnected(TimeUnit.SECONDS.toNanos(10));
            back.awaitConnected(TimeUnit.SECONDS.toNanos(10));
        }

        void exchange(Payload p, int tokens) {
            collector.rows = 0;
            long before = toExpert.bytes();
            long got = inbox.bytes();
            p.write(writer, ++step, tokens, hidden, topK);
            int expected = tokens * topK;
            BackoffIdleStrategy idle = this.idle;
            idle.reset();
            while (collector.rows < expected) {
                idle.idle(inbox.poll(64));
            }
            dispatchBytes = toExpert.bytes() - before;
            combineBytes = inbox.bytes() - got;
        }

        @Override
        public void close() throws InterruptedException {
            running.set(false);
            responder.join(5_000);
            toExpert.close();
            inbox.close();
            attention.close();
            expert.close();
        }
    }

    /** The same encoded bytes as one gRPC unary call each way (length-prefixed messages concatenated). */
    final class GrpcPair implements AutoCloseable {
        final MethodDescriptor<byte[], byte[]> method = MethodDescriptor.<byte[], byte[]>newBuilder()
                .setType(MethodDescriptor.MethodType.UNARY)
                .setFullMethodName("epserve.bench.Exchange/RoundTrip")
                .setRequestMarshaller(new Bytes())
                .setResponseMarshaller(new Bytes())
                .build();
        final Server server;
        final ManagedChannel channel;
        final Capture request = new Capture();
        final DispatchWriter writer = new DispatchWriter(request);
        final WireDecoder decoder = new WireDecoder();
        final Collector collector = new Collector();
        final int hidden;
        long step;
        long dispatchBytes;
        long combineBytes;

        GrpcPair(int hidden) throws IOException {
            this.hidden = hidden;
            Capture reply = new Capture();
            Responder responder = new Responder(reply, hidden);
            WireDecoder serverDecoder = new WireDecoder();
            ServerServiceDefinition svc = ServerServiceDefinition.builder("epserve.bench.Exchange")
                    .addMethod(method, ServerCalls.asyncUnaryCall((byte[] req, io.grpc.stub.StreamObserver<byte[]> obs) -> {
                        synchronized (reply) {
                            reply.reset();
                            Capture.forEach(req, (buf, off, len) -> serverDecoder.decode(buf, off, len, responder));
                            obs.onNext(reply.toArray());
                        }
                        obs.onCompleted();
                    }))
                    .build();
            server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0)).addService(svc)
                    .maxInboundMessageSize(256 << 20).build().start();
            channel = ManagedChannelBuilder.forAddress("127.0.0.1", server.getPort()).usePlaintext()
                    .maxInboundMessageSize(256 << 20).build();
        }

        void exchange(Payload p, int tokens) {
            request.reset();
            p.write(writer, ++step, tokens, hidden, topK);
            byte[] req = request.toArray();
            byte[] resp = ClientCalls.blockingUnaryCall(channel, method, CallOptions.DEFAULT, req);
            collector.rows = 0;
            Capture.forEach(resp, (buf, off, len) -> decoder.decode(buf, off, len, collector));
            if (collector.rows != tokens * topK) {
                throw new IllegalStateException("gRPC reply had " + collector.rows + " rows, expected " + tokens * topK);
            }
            dispatchBytes = req.length;
            combineBytes = resp.length;
        }

        @Override
        public void close() throws InterruptedException {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    /** Messages appended with a 4-byte length prefix each. */
    static final class Capture implements MessageSink {
        private byte[] data = new byte[1 << 16];
        private int length;

        interface MessageVisitor {
            void visit(DirectBuffer buffer, int offset, int length);
        }

        @Override
        public void send(DirectBuffer buffer, int offset, int len) {
            if (data.length < length + 4 + len) {
                data = Arrays.copyOf(data, Math.max(data.length * 2, length + 4 + len));
            }
            new UnsafeBuffer(data).putInt(length, len);
            buffer.getBytes(offset, data, length + 4, len);
            length += 4 + len;
        }

        @Override
        public int maxMessageLength() {
            return 2 * 1024 * 1024;
        }

        void reset() {
            length = 0;
        }

        byte[] toArray() {
            return Arrays.copyOf(data, length);
        }

        static void forEach(byte[] bytes, MessageVisitor v) {
            UnsafeBuffer b = new UnsafeBuffer(bytes);
            for (int o = 0; o < bytes.length; ) {
                int len = b.getInt(o);
                v.visit(b, o + 4, len);
                o += 4 + len;
            }
        }
    }

    static final class Bytes implements MethodDescriptor.Marshaller<byte[]> {
        @Override
        public InputStream stream(byte[] value) {
            return new ByteArrayInputStream(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
            try {
                return stream.readAllBytes();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    static int freePort() throws IOException {
        try (java.net.DatagramSocket s = new java.net.DatagramSocket(0, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }
}
