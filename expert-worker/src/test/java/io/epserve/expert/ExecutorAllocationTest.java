package io.epserve.expert;

import io.epserve.cluster.Placement;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.kernel.Kernels;
import io.epserve.model.weights.Bf16Matrix;
import io.epserve.model.weights.F32Matrix;
import io.epserve.model.weights.Fp4Matrix;
import io.epserve.model.weights.Fp8Matrix;
import io.epserve.model.weights.ExpertWeights;
import io.epserve.transport.CombineWriter;
import io.epserve.transport.DispatchWriter;
import io.epserve.transport.MessageSink;
import io.epserve.transport.WireDecoder;
import io.epserve.transport.WireHandler;
import io.epserve.transport.sbe.DispatchDecoder;
import java.lang.management.ManagementFactory;
import java.util.List;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

/**
 * Once its scratch has grown, the executor allocates nothing per dispatch: decode, grouping, the expert calls and
 * the combine encoding. Measured with the thread's allocated-bytes counter over repeated dispatches of the golden
 * layer-1 rows after a warm-up. The kernels are a no-op stand-in: this checks the executor's own code; the kernel
 * sets' allocation is theirs to test (the exact set allocates a weight row per call by design).
 */
class ExecutorAllocationTest {
    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    @Test
    void steadyStateDispatchesAllocateNothing() {
        Tiny.Layer1 golden = new Tiny.Layer1();
        List<Tiny.Row> rows = golden.rows(e -> e < 4);
        CaptureSink sink = new CaptureSink(2 << 20);
        golden.dispatch(new DispatchWriter(sink), 1, 3, Tiny.LAYER, rows);
        assertEquals(1, sink.messages.size());
        UnsafeBuffer message = new UnsafeBuffer(sink.messages.get(0));
        long[] combineBytes = {0};
        MessageSink discard = new MessageSink() {
            @Override
            public void send(DirectBuffer buffer, int offset, int length) {
                combineBytes[0] += length;
            }

            @Override
            public int maxMessageLength() {
                return 2 << 20;
            }
        };
        try (ExpertWeights w = ExpertWeights.open(Tiny.dir(), Placement.ofSpec("0-3", golden.c));
             Kernels k = new NoKernels()) {
            ExpertExecutor ex = new ExpertExecutor(w, k, 1, 256);
            CombineWriter out = new CombineWriter(discard);
            WireDecoder decoder = new WireDecoder();
            WireHandler handler = new WireHandler() {
                @Override
                public void onDispatch(DispatchDecoder d) {
                    ex.run(d, 7, out);
                }
            };
            for (int i = 0; i < 1000; i++) {
                decoder.decode(message, 0, message.capacity(), handler);
            }
            long thread = Thread.currentThread().threadId();
            long before = THREADS.getThreadAllocatedBytes(thread);
            int iterations = 1000;
            for (int i = 0; i < iterations; i++) {
                decoder.decode(message, 0, message.capacity(), handler);
            }
            long allocated = THREADS.getThreadAllocatedBytes(thread) - before;
            assertEquals(2000, ex.exchanges());
            assertTrue(combineBytes[0] > 0);
            System.out.printf("executor allocation: %d bytes over %d dispatches of %d rows%n", allocated, iterations,
                    rows.size());
            assertTrue(allocated < 4096, allocated + " bytes allocated over " + iterations + " dispatches");
        }
    }

    /** Kernels that compute nothing (the outputs keep whatever the scratch held). */
    private static final class NoKernels implements Kernels {
        @Override
        public String name() {
            return "none";
        }

        @Override
        public void fp8Linear(Fp8Matrix w, int rowStart, int rowCount, float[] x, int xOff, int xStride, int tokens,
                              float[] y, int yOff, int yStride) {
        }

        @Override
        public void fp4Linear(Fp4Matrix w, float[] x, int xOff, int xStride, int tokens, float[] y, int yOff,
                              int yStride) {
        }

        @Override
        public void fp8DequantLinear(Fp8Matrix w, int rowStart, int rowCount, float[] x, int xOff, int xStride,
                                     int tokens, float[] y, int yOff, int yStride) {
        }

        @Override
        public void bf16Linear(Bf16Matrix w, float[] x, int xOff, int xStride, int tokens, float[] y, int yOff,
                               int yStride) {
        }

        @Override
        public void bf16LinearWide(Bf16Matrix w, float[] x, int xOff, int xStride, int tokens, double[] y, int yOff,
                                   int yStride) {
        }

        @Override
        public void f32LinearWide(F32Matrix w, float[] x, int xOff, int xStride, int tokens, double[] y, int yOff,
                                  int yStride) {
        }

        @Override
        public void attention(float[] q, int qOff, int heads, int headDim, float[] kv, int windowValid, int windowSize,
                              int compressedCount, float[] sink, float scale, float[] out, int outOff) {
        }

        @Override
        public void indexScores(float[] q, int qOff, int heads, int dim, float[] w, int wOff, float[] keys, int count,
                                float[] scores) {
        }
    }
}
