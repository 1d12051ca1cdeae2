package io.epserve.expert;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.cluster.ClusterNode;
import io.epserve.cluster.ControlPlane;
import io.epserve.cluster.PlacementCoordinator;
import io.epserve.transport.Channels;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code --health-port}: the expert worker's grpc.health.v1 service, as Kubernetes grpc probes ask it. Readiness
 * (service "") is SERVING while it serves and NOT_SERVING once a drain starts; liveness (service "liveness") stays
 * SERVING until close.
 */
class ExpertWorkerHealthTest {

    private static ExpertWorker.Options options(int id) {
        return ExpertWorker.options().model(Tiny.dir()).listen("127.0.0.1:" + Channels.freeLoopbackPort())
                .kernels("exact").threads(1).workerId(id).log(s -> { });
    }

    private static ServingStatus check(HealthGrpc.HealthBlockingStub stub, String service) {
        return stub.withDeadlineAfter(5, TimeUnit.SECONDS)
                .check(HealthCheckRequest.newBuilder().setService(service).build()).getStatus();
    }

    private static void waitFor(String what, BooleanSupplier cond) throws InterruptedException {
        long until = System.currentTimeMillis() + 30_000;
        while (!cond.getAsBoolean()) {
            assertTrue(System.currentTimeMillis() < until, "timed out waiting for " + what);
            Thread.sleep(20);
        }
    }

    @Test
    void offByDefault() {
        try (ExpertWorker w = ExpertWorker.start(options(1).experts("0-1"))) {
            assertEquals(ExpertWorker.HEALTH_OFF, w.healthPort());
            assertFalse(w.readyLine().contains("health"), w.readyLine());
        }
    }

    @Test
    void badPortIsRefusedNamingTheFlag() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ExpertWorker.start(options(1).experts("0-1").healthPort(-2)));
        assertTrue(e.getMessage().contains("--health-port"), e.getMessage());
    }

    @Test
    void servingThenNotServingWhileDrainingThenTerminalOnClose() throws Exception {
        ExpertWorker w = ExpertWorker.start(options(2).experts("0-3").healthPort(0));
        ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", w.healthPort()).usePlaintext().build();
        try {
            assertTrue(w.readyLine().endsWith("; health 127.0.0.1:" + w.healthPort()), w.readyLine());
            HealthGrpc.HealthBlockingStub stub = HealthGrpc.newBlockingStub(ch);
            assertEquals(ServingStatus.SERVING, check(stub, ""));
            assertEquals(ServingStatus.SERVING, check(stub, HealthEndpoint.LIVENESS));
            StatusRuntimeException unknown = assertThrows(StatusRuntimeException.class,
                    () -> check(stub, "epserve.v1.Inference"));
            assertEquals(Status.Code.NOT_FOUND, unknown.getStatus().getCode(), "it serves nothing but health");

            w.draining();
            assertEquals(ServingStatus.NOT_SERVING, check(stub, ""), "not ready while draining");
            assertEquals(ServingStatus.SERVING, check(stub, HealthEndpoint.LIVENESS), "alive while draining");

            BlockingQueue<ServingStatus> watched = new LinkedBlockingQueue<>();
            HealthGrpc.newStub(ch).watch(HealthCheckRequest.newBuilder().setService(HealthEndpoint.LIVENESS).build(),
                    new StreamObserver<>() {
                        @Override
                        public void onNext(HealthCheckResponse r) {
                            watched.add(r.getStatus());
                        }

                        @Override
                        public void onError(Throwable t) {
                        }

                        @Override
                        public void onCompleted() {
                        }
                    });
            assertEquals(ServingStatus.SERVING, watched.poll(5, TimeUnit.SECONDS));
            w.close();
            assertEquals(ServingStatus.NOT_SERVING, watched.poll(5, TimeUnit.SECONDS), "told before it stops");
            StatusRuntimeException gone = assertThrows(StatusRuntimeException.class, () -> check(stub, ""));
            assertEquals(Status.Code.UNAVAILABLE, gone.getStatus().getCode(), "the server stops with the worker");
        } finally {
            w.close();
            ch.shutdownNow();
        }
    }

    @Test
    @Timeout(value = 2, unit = TimeUnit.MINUTES)
    void aDrainInAClusterTurnsReadinessOff() throws Exception {
        String name = "ewh-" + ProcessHandle.current().pid() + "-" + System.nanoTime();
        int port = 25_000 + (int) (ProcessHandle.current().pid() % 500) * 10;
        ControlPlane.Settings plane = new ControlPlane.Settings(ClusterNode.options().name(name).port(port)
                .members(List.of("127.0.0.1:" + port + "-" + (port + 4))), PlacementCoordinator.options().settleMs(200));
        try (ExpertWorker w = ExpertWorker.start(options(3).controlPlane(plane).healthPort(0))) {
            ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", w.healthPort()).usePlaintext().build();
            try {
                HealthGrpc.HealthBlockingStub stub = HealthGrpc.newBlockingStub(ch);
                assertEquals(ServingStatus.SERVING, check(stub, ""));
                w.membership().requestDrain(); // what SIGTERM and `admin drain` do
                waitFor("readiness off", () -> check(stub, "") == ServingStatus.NOT_SERVING);
                assertEquals(ServingStatus.SERVING, check(stub, HealthEndpoint.LIVENESS));
                assertTrue(w.membership().awaitDrained(30_000), "alone, it is drained at once");
            } finally {
                ch.shutdownNow();
            }
        }
    }
}
