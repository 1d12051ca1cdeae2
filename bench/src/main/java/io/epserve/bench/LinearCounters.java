package io.epserve.bench;

import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * Secondary results of the linear benchmarks. JMH divides each counter by the measured time, so in throughput
 * mode the column "gbytes" reads directly as GB/s of stored weight bytes (codes plus scales) and "gflops" as
 * GFLOP/s (2 * rows * cols * tokens per call). The unit JMH prints for them is "ops/s"; ignore it.
 */
@State(Scope.Thread)
@AuxCounters(AuxCounters.Type.OPERATIONS)
public class LinearCounters {
    public double gbytes;
    public double gflops;

    @Setup(Level.Iteration)
    public void reset() {
        gbytes = 0;
        gflops = 0;
    }
}
