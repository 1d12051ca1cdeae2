package io.epserve.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.cli.cluster.LocalCluster;
import io.epserve.proto.admin.v1.AdminGrpc;
import io.epserve.proto.admin.v1.PlacementRequest;
import io.epserve.proto.admin.v1.PlacementResponse;
import io.epserve.proto.v1.GenerateRequest;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.BindMode;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.output.OutputFrame;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.junit.jupiter.Testcontainers;
import org.testcontainers.lifecycle.Startables;
import org.testcontainers.utility.DockerImageName;

/**
 * The cluster with each role in its own container of the epserve image, on the host's network only (never a bridge's
 * private addresses: everything stays on 127.0.0.1): two expert workers, an attention worker and a router; requests
 * stream; one expert worker's container is killed and a new container replaces it; the tokens stay the same.
 *
 * <p>Runs whenever a Docker engine is reachable (`.ci/run` provides one where it can) and skips, saying so, where
 * none is. The image is {@code -Depserve.image} (default {@code epserve:VERSION}), built and loaded by the
 * {@code containers} profile, which Maven turns on when a Docker socket exists.
 */
@Testcontainers(disabledWithoutDocker = true)
class ContainerClusterIT {
    static final String IMAGE = System.getProperty("epserve.image", "epserve:0.1.0-SNAPSHOT");
    static final String MODEL = "/model";

    final String cluster = "epserve-ct-" + ProcessHandle.current().pid();
    int clusterPort;
    final List<GenericContainer<?>> started = new ArrayList<>();
    /** The first and the last lines each container wrote, printed when the test fails: a container that exits or
     *  hangs before its ready line otherwise leaves nothing behind (Testcontainers logs through SLF4J, silent here). */
    final Map<String, ContainerLog> logs = new LinkedHashMap<>();

    List<String> clusterFlags() {
        return List.of("--cluster-name", cluster, "--cluster-port", Integer.toString(clusterPort),
                "--cluster-members", "127.0.0.1:" + clusterPort + "-" + (clusterPort + 9));
    }

    /** One role in its own container (not started): host network, the tiny model read-only at /model. */
    GenericContainer<?> role(String role, List<String> args) {
        List<String> cmd = new ArrayList<>(List.of(role, "--model", MODEL));
        cmd.addAll(args);
        cmd.addAll(clusterFlags());
        ContainerLog log = new ContainerLog();
        logs.put(role + " #" + (started.size() + 1) + " " + String.join(" ", args), log);
        GenericContainer<?> c = new GenericContainer<>(DockerImageName.parse(IMAGE))
                .withNetworkMode("host")
                .withFileSystemBind(ElasticClusterIT.TINY.toAbsolutePath().toString(), MODEL, BindMode.READ_ONLY)
                .withEnv("JDK_JAVA_OPTIONS", "-Xmx384m")
                // Aeron's term buffers live in /dev/shm, whose container default (64 MiB) is too small.
                .withSharedMemorySize(1L << 30)
                .withCommand(cmd.toArray(String[]::new))
                .withLogConsumer(log::add)
                .waitingFor(Wait.forLogMessage("^" + role + " .*ready: .*\\n", 1)
                        .withStartupTimeout(Duration.ofMinutes(3)));
        started.add(c);
        return c;
    }

    GenericContainer<?> expertWorker(int id) throws java.io.IOException {
        return role("expert-worker", List.of("--listen", "127.0.0.1:" + LocalCluster.freeUdpPort(),
                "--worker-id", Integer.toString(id), "--kernels", "exact", "--threads", "1"));
    }

    @Test
    @Timeout(value = 8, unit = TimeUnit.MINUTES)
    void aClusterOfContainersSurvivesAKilledAndReplacedExpertWorker() throws Exception {
        assertTrue(DockerClientFactory.instance().isDockerAvailable());
        Assumptions.assumeTrue(System.getenv("EPSERVE_CONTAINER_TESTS") != null, "a Docker engine is there but the"
                + " image was not built for the tests: set EPSERVE_CONTAINER_TESTS=1 after deploy/image/build-base.sh"
                + " (.ci/run does both when it can start an engine)");
        clusterPort = 34_000 + (int) (ProcessHandle.current().pid() % 100) * 10;
        int routerPort = LocalCluster.freeUdpPort();
        try {
            // All four at once: each finds the others through Hazelcast, whatever the order.
            GenericContainer<?> first = expertWorker(1);
            GenericContainer<?> second = expertWorker(2);
            GenericContainer<?> attention = role("attention-worker", List.of("--listen",
                    "127.0.0.1:" + LocalCluster.freeUdpPort(), "--port", "0", "--worker-id", "100", "--kernels",
                    "exact", "--threads", "1"));
            GenericContainer<?> router = role("router", List.of("--port", Integer.toString(routerPort)));
            Startables.deepStart(first, second, attention, router).join();
            ManagedChannel ch = ManagedChannelBuilder.forAddress("127.0.0.1", routerPort).usePlaintext().build();
            try {
                var admin = AdminGrpc.newBlockingStub(ch);
                ElasticClusterIT.waitFor("a placement over expert workers 1 and 2", 60_000,
                        () -> placementOver(admin, "[1, 2]"));
                // The router learns of the attention worker apart from the placement, and says UNAVAILABLE until then.
                ElasticClusterIT.awaitReadyAttentionWorkers(admin, 1);
                List<GenerateRequest> reqs = ElasticClusterIT.requests(24);
                List<List<Integer>> reference = ElasticClusterIT.awaitAll(ElasticClusterIT.startAll(ch, reqs));

                List<ElasticClusterIT.Stream> streams = ElasticClusterIT.startAll(ch, reqs);
                ElasticClusterIT.waitFor("first tokens", 60_000,
                        () -> ElasticClusterIT.everyStreamHasTokens(streams, 3));
                // SIGKILL, as a machine failure would; then a new container takes its place.
                DockerClientFactory.instance().client().killContainerCmd(second.getContainerId()).exec();
                assertEquals(reference, ElasticClusterIT.awaitAll(streams), "tokens changed by the failover");
                expertWorker(3).start();
                ElasticClusterIT.waitFor("a placement over expert workers 1 and 3", 90_000,
                        () -> placementOver(admin, "[1, 3]"));
                assertEquals(reference, ElasticClusterIT.awaitAll(ElasticClusterIT.startAll(ch, reqs)),
                        "tokens changed with the replacement");
            } finally {
                ch.shutdownNow();
            }
        } catch (Throwable t) {
            printLogs();
            throw t;
        } finally {
            for (int i = started.size() - 1; i >= 0; i--) {
                started.get(i).stop();
            }
        }
    }

    void printLogs() {
        logs.forEach((name, log) -> log.print(name));
    }

    /** The first 80 and the last 200 lines a container wrote (the first say how it started, the last how it ended). */
    static final class ContainerLog {
        static final int HEAD = 80;
        static final int TAIL = 200;
        private final List<String> head = new ArrayList<>();
        private final Deque<String> tail = new ArrayDeque<>();
        private long dropped;

        synchronized void add(OutputFrame frame) {
            if (frame.getType() == OutputFrame.OutputType.END) {
                return;
            }
            String line = (frame.getType() == OutputFrame.OutputType.STDERR ? "err| " : "out| ")
                    + frame.getUtf8StringWithoutLineEnding();
            if (head.size() < HEAD) {
                head.add(line);
                return;
            }
            if (tail.size() == TAIL) {
                tail.removeFirst();
                dropped++;
            }
            tail.addLast(line);
        }

        synchronized void print(String name) {
            System.err.println("---- container " + name + ": its first " + head.size() + " lines");
            head.forEach(System.err::println);
            if (!tail.isEmpty()) {
                System.err.println("---- (" + dropped + " lines left out) its last " + tail.size() + " lines");
                tail.forEach(System.err::println);
            }
        }
    }

    static boolean placementOver(AdminGrpc.AdminBlockingStub admin, String workers) {
        try {
            PlacementResponse p = admin.withDeadlineAfter(5, TimeUnit.SECONDS)
                    .placement(PlacementRequest.getDefaultInstance());
            return p.getTargetEpoch() == 0 && ElasticClusterIT.workers(p).equals(workers);
        } catch (StatusRuntimeException e) {
            return false;
        }
    }
}
