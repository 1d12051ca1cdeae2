package io.epserve.cli.commands;

import io.epserve.attention.AttentionWorker;
import io.epserve.cli.cluster.LocalCluster;
import io.epserve.router.Router;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import io.epserve.cluster.TerminationSignals;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "up", mixinStandardHelpOptions = true,
        description = {
            "Starts a local cluster on 127.0.0.1 as separate processes: expert workers (the routed experts split between"
                    + " them), attention workers and a router serving epserve.v1 on --port. Without --model it serves the"
                    + " embedded default (a random-weight tiny checkpoint made on first use).",
            "Runs until Ctrl-C or SIGTERM, then stops every process cleanly. If a process dies, prints its log and"
                    + " stops the others."
        })
public final class UpCommand implements Callable<Integer> {
    @Option(names = "--model", description = "Model directory; default: the embedded random-weight tiny model.")
    Path model;

    @Option(names = "--port", defaultValue = "50051", description = "The router's gRPC port. Default: ${DEFAULT-VALUE}.")
    int port;

    @Option(names = "--expert-workers", defaultValue = "2", paramLabel = "N", description = "Default: ${DEFAULT-VALUE}.")
    int expertWorkers;

    @Option(names = "--attention-workers", defaultValue = "1", paramLabel = "N", description = "Default: ${DEFAULT-VALUE}.")
    int attentionWorkers;

    @Option(names = "--micro-batches", defaultValue = "2", paramLabel = "M", description = "1..4. Default: ${DEFAULT-VALUE}.")
    int microBatches;

    @Option(names = "--kernels", defaultValue = "fast", description = "exact or fast. Default: ${DEFAULT-VALUE}.")
    String kernels;

    @Option(names = "--threads", description = "Compute threads per worker (default: available cores).")
    Integer threads;

    @Option(names = "--log-dir", description = "Where the processes' logs go (default: a new temporary directory).")
    Path logDir;

    @Option(names = "--no-control-plane",
            description = "Run without Hazelcast: a fixed expert placement, no scaling or failover.")
    boolean noControlPlane;

    @Option(names = "--single-process",
            description = "Serve the same API from this one process (router and an engine with every expert), for one"
                    + " machine; --expert-workers and --micro-batches do not apply.")
    boolean singleProcess;

    @Option(names = "--metrics",
            description = "Every process serves Prometheus metrics on a free port of 127.0.0.1 (printed at start).")
    boolean metrics;

    @Override
    public Integer call() {
        if (microBatches < 1 || microBatches > 4) {
            return CliErrors.usage("--micro-batches must be 1..4, got " + microBatches);
        }
        if (port < 1 || port > 65535 || expertWorkers < 1 || attentionWorkers < 1) {
            return CliErrors.usage("--port must be in 1..65535 and the worker counts positive");
        }
        Path dir = model;
        if (dir == null) {
            try {
                dir = EmbeddedModel.ensure(System.err);
            } catch (RuntimeException e) {
                return CliErrors.usage("cannot prepare the embedded default model: " + e.getMessage());
            }
            System.err.println("note: the embedded default model has random weights, so its text is meaningless;"
                    + " use --model DIR with a real DeepSeek-V4 checkpoint for real answers.");
        }
        if (singleProcess) {
            return singleProcess(dir);
        }
        LocalCluster.Options o = LocalCluster.options().model(dir).expertWorkers(expertWorkers)
                .attentionWorkers(attentionWorkers).microBatches(microBatches).kernels(kernels)
                .attentionThreads(threads).expertThreads(threads).logDir(logDir).router(port)
                .controlPlane(!noControlPlane).clusterName("epserve-up-" + ProcessHandle.current().pid()).metrics(metrics);
        try (LocalCluster cluster = LocalCluster.start(o)) {
            System.out.printf("epserve up: serving %s on 127.0.0.1:%d (router pid %d); %d attention worker%s, %d expert"
                            + " worker%s, %d micro-batch%s, %s kernels; logs in %s. Ctrl-C stops.%n",
                    dir, cluster.router().grpcPort(), cluster.router().pid(), attentionWorkers,
                    attentionWorkers == 1 ? "" : "s", expertWorkers, expertWorkers == 1 ? "" : "s", microBatches,
                    microBatches == 1 ? "" : "es", kernels, cluster.router().log.getParent());
            if (!noControlPlane) {
                String flags = String.join(" ", cluster.clusterFlags());
                System.out.printf("epserve up: operate it with `epserve admin status|placement|drain ID|rebalance"
                        + " --router 127.0.0.1:%d`; add an expert worker with `epserve expert-worker --model %s"
                        + " --listen 127.0.0.1:UDP_PORT --worker-id ID %s`.%n", cluster.router().grpcPort(), dir, flags);
            }
            if (metrics) {
                List<LocalCluster.Worker> all = new ArrayList<>(List.of(cluster.router()));
                all.addAll(cluster.attentionWorkers());
                all.addAll(cluster.expertWorkers());
                java.util.StringJoiner urls = new java.util.StringJoiner(", ", "epserve up: metrics at ", "");
                for (LocalCluster.Worker w : all) {
                    urls.add(w.role + (w.role.equals("router") ? "" : " " + w.id) + " http://127.0.0.1:"
                            + w.metricsPort() + "/metrics");
                }
                System.out.println(urls);
            }
            System.out.flush();
            CountDownLatch stop = TerminationSignals.install();
            java.util.Set<LocalCluster.Worker> reported = new java.util.HashSet<>();
            while (!stop.await(500, TimeUnit.MILLISECONDS)) {
                LocalCluster.Worker dead = cluster.firstDead(reported);
                if (dead == null) {
                    continue;
                }
                if (noControlPlane || dead == cluster.router()) {
                    System.err.println("epserve up: " + dead + " exited with code " + dead.process.exitValue()
                            + "; stopping the others. Its log ends with:\n" + dead.logTail(20));
                    return 1;
                }
                // With the control plane the others carry on: its experts move, its sequences are resubmitted.
                reported.add(dead);
                System.err.println("epserve up: " + dead + " exited with code " + dead.process.exitValue()
                        + (dead.process.exitValue() == 0 ? " (drained)" : "; the cluster carries on without it."
                        + " Its log ends with:\n" + dead.logTail(10)));
            }
            System.err.println("epserve up: stopping");
            return 0;
        } catch (IllegalStateException | IllegalArgumentException e) {
            System.err.println("epserve up: " + e.getMessage());
            return 1;
        } catch (IOException e) {
            System.err.println("epserve up: " + e.getMessage());
            return 1;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 1;
        }
    }

    private int singleProcess(Path dir) {
        AttentionWorker.Options wo = AttentionWorker.options().model(dir).localExperts(true).kernels(kernels).port(0)
                .metricsPort(metrics ? 0 : -1).log(System.err::println);
        if (threads != null) {
            wo.threads(threads);
        }
        try (AttentionWorker worker = AttentionWorker.start(wo);
             Router router = Router.start(Router.options().model(dir).attentionWorker("127.0.0.1:" + worker.port())
                     .port(port).metricsPort(metrics ? 0 : -1).log(System.err::println))) {
            System.out.printf("epserve up: serving %s on 127.0.0.1:%d from this process (pid %d), %s kernels."
                    + " Ctrl-C stops.%n", dir, router.port(), ProcessHandle.current().pid(), kernels);
            if (metrics) {
                System.out.printf("epserve up: metrics at router http://127.0.0.1:%d/metrics, attention-worker"
                        + " http://127.0.0.1:%d/metrics%n", router.metricsPort(), worker.metrics().port());
            }
            System.out.flush();
            CountDownLatch stop = TerminationSignals.install();
            stop.await();
            System.err.println("epserve up: stopping");
            return 0;
        } catch (IllegalArgumentException | io.epserve.model.config.ConfigException
                 | io.epserve.model.safetensors.CheckpointException e) {
            return CliErrors.usage("cannot serve " + dir + ": " + e.getMessage());
        } catch (IOException e) {
            System.err.println("epserve up: " + e.getMessage());
            return 1;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 1;
        }
    }

}
