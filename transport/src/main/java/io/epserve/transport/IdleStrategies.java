package io.epserve.transport;

import java.util.List;
import org.agrona.concurrent.BusySpinIdleStrategy;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.NoOpIdleStrategy;
import org.agrona.concurrent.SleepingMillisIdleStrategy;
import org.agrona.concurrent.YieldingIdleStrategy;

/** Agrona idle strategies by name, for the {@code --idle} flag. */
public final class IdleStrategies {
    public static final List<String> NAMES = List.of("backoff", "busy-spin", "yielding", "sleeping", "noop");

    private IdleStrategies() {
    }

    /**
     * backoff (default, {@link TieredBackoffIdleStrategy}: spin 10, yield 5, then park 1 us doubling to 50 us while
     * work is recent, to 1 ms once idle for 200 ms, so an idle worker costs almost nothing on a 2-core machine and a
     * busy one answers within tens of microseconds), busy-spin (lowest latency, burns a core), yielding, sleeping
     * (1 ms), noop.
     */
    public static IdleStrategy of(String name) {
        return switch (name) {
            case "backoff" -> new TieredBackoffIdleStrategy();
            case "busy-spin" -> new BusySpinIdleStrategy();
            case "yielding" -> new YieldingIdleStrategy();
            case "sleeping" -> new SleepingMillisIdleStrategy(1);
            case "noop" -> new NoOpIdleStrategy();
            default -> throw new IllegalArgumentException("unknown idle strategy '" + name + "' (use one of "
                    + String.join(", ", NAMES) + ")");
        };
    }
}
