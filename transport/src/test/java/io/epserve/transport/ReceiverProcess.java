package io.epserve.transport;

import io.epserve.transport.sbe.DispatchDecoder;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * A receiving worker in its own process, for tests that kill it: embedded driver, one subscription, prints
 * "READY <aeron dir>" and then one line per message. Args: channel, stream id. Stops by itself after 30 s.
 */
public final class ReceiverProcess {
    private ReceiverProcess() {
    }

    public static void main(String[] args) {
        String channel = args[0];
        int stream = Integer.parseInt(args[1]);
        try (MediaDriverHandle driver = MediaDriverHandle.launchEmbedded(MediaDriverHandle.options().name("child"));
             MessageReceiver in = driver.newReceiver(channel, stream, new WireHandler() {
                 @Override
                 public void onDispatch(DispatchDecoder dispatch) {
                     System.out.println("STEP " + dispatch.step());
                 }
             })) {
            System.out.println("READY " + driver.aeronDirectoryName());
            System.out.flush();
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (System.nanoTime() < end) {
                if (in.poll(16) == 0) {
                    LockSupport.parkNanos(100_000);
                }
            }
        }
    }
}
