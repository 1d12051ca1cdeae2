package io.epserve.cli.commands;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageOrBuilder;
import com.google.protobuf.util.JsonFormat;
import io.epserve.proto.admin.v1.AdminGrpc;
import io.epserve.proto.admin.v1.DrainRequest;
import io.epserve.proto.admin.v1.DrainResponse;
import io.epserve.proto.admin.v1.Member;
import io.epserve.proto.admin.v1.PlacementRequest;
import io.epserve.proto.admin.v1.PlacementResponse;
import io.epserve.proto.admin.v1.RebalanceRequest;
import io.epserve.proto.admin.v1.RebalanceResponse;
import io.epserve.proto.admin.v1.StatusRequest;
import io.epserve.proto.admin.v1.StatusResponse;
import io.epserve.proto.admin.v1.WorkerLoad;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import java.io.PrintStream;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.ScopeType;

/** {@code epserve admin status|placement|drain|rebalance}: the operator API (epserve.admin.v1) of a router. */
@Command(name = "admin", mixinStandardHelpOptions = true,
        description = "Operate a cluster through its router: members, placement, drain an expert worker, rebalance.",
        subcommands = {AdminCommand.StatusCommand.class, AdminCommand.PlacementCommand.class,
                AdminCommand.DrainCommand.class, AdminCommand.RebalanceCommand.class})
public final class AdminCommand implements Callable<Integer> {
    // INHERIT: the options go before or after the subcommand alike (`admin status --router H:P` is what people type)
    @Option(names = "--router", defaultValue = "127.0.0.1:50051", paramLabel = "HOST:PORT", scope = ScopeType.INHERIT,
            description = "The router's gRPC address. Default: ${DEFAULT-VALUE}.")
    String router;

    @Option(names = "--json", scope = ScopeType.INHERIT, description = "Print the answer as JSON (proto3 JSON mapping).")
    boolean json;

    @Option(names = "--timeout-s", defaultValue = "150", scope = ScopeType.INHERIT,
            description = "Deadline of the call. Default: ${DEFAULT-VALUE}.")
    long timeoutSeconds;

    @Override
    public Integer call() {
        return CliErrors.usage("admin: give a subcommand: status, placement, drain WORKER or rebalance");
    }

    /** Calls the router; prints the answer (JSON or {@code text}); gRPC errors become exit code 1 with the status. */
    <T extends MessageOrBuilder> int run(Function<AdminGrpc.AdminBlockingStub, T> call, Function<T, String> text,
                                         PrintStream out) {
        ManagedChannel ch = ManagedChannelBuilder.forTarget(router).usePlaintext().build();
        try {
            T answer = call.apply(AdminGrpc.newBlockingStub(ch).withDeadlineAfter(timeoutSeconds, TimeUnit.SECONDS));
            out.println(json ? JsonFormat.printer().print(answer) : text.apply(answer));
            return 0;
        } catch (StatusRuntimeException e) {
            System.err.println("epserve admin: " + e.getStatus().getCode() + ": " + e.getStatus().getDescription());
            return 1;
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalStateException(e);
        } finally {
            ch.shutdownNow();
        }
    }

    @Command(name = "status", mixinStandardHelpOptions = true, description = "Members, roles, readiness, epochs, gauges.")
    static final class StatusCommand implements Callable<Integer> {
        @ParentCommand
        AdminCommand admin;

        @Override
        public Integer call() {
            return admin.run(s -> s.status(StatusRequest.getDefaultInstance()), StatusCommand::text, System.out);
        }

        static String text(StatusResponse r) {
            StringBuilder sb = new StringBuilder();
            sb.append(String.format(Locale.ROOT, "cluster %s, model %s, placement epoch %d%s, balance %.3f%n",
                    r.getClusterName(), r.getModelFingerprint(), r.getPlacementEpoch(),
                    r.getTargetEpoch() > 0 ? " (changing to " + r.getTargetEpoch() + ")" : "", r.getBalance()));
            sb.append(String.format(Locale.ROOT, "%-17s %4s %-9s %-22s %-22s %8s %6s  %s%n", "ROLE", "ID", "STATE",
                    "GRPC", "AERON", "PID", "EPOCH", "HELD / GAUGES"));
            for (Member m : r.getMembersList()) {
                StringBuilder g = new StringBuilder(m.getRole().equals("expert-worker") ? m.getHeld() : "");
                for (Map.Entry<String, Long> e : new java.util.TreeMap<>(m.getGaugesMap()).entrySet()) {
                    g.append(g.isEmpty() ? "" : " ").append(e.getKey()).append('=').append(e.getValue());
                }
                sb.append(String.format(Locale.ROOT, "%-17s %4d %-9s %-22s %-22s %8d %6s  %s%s%n", m.getRole(),
                        m.getId(), m.getState(), m.getGrpc(), abbreviate(m.getAeron()), m.getPid(),
                        m.getRole().equals("attention-worker") ? Long.toString(m.getEpoch()) : "-", g,
                        m.getCoordinator() ? " [coordinator]" : ""));
            }
            return sb.toString().stripTrailing();
        }

        private static String abbreviate(String s) {
            return s.length() > 22 ? s.substring(0, 21) + "…" : s;
        }
    }

    @Command(name = "placement", mixinStandardHelpOptions = true,
            description = "The placement table with its epoch, load per expert and per expert worker, balance.")
    static final class PlacementCommand implements Callable<Integer> {
        @ParentCommand
        AdminCommand admin;

        @Override
        public Integer call() {
            return admin.run(s -> s.placement(PlacementRequest.getDefaultInstance()), PlacementCommand::text,
                    System.out);
        }

        static String text(PlacementResponse r) {
            StringBuilder sb = new StringBuilder(String.format(Locale.ROOT,
                    "placement epoch %d%s: %d layers x %d experts; load per expert worker mean %.1f max %.1f; balance"
                            + " (per layer mean/max) %.3f%n", r.getEpoch(),
                    r.getTargetEpoch() > 0 ? " (changing to " + r.getTargetEpoch() + ")" : "", r.getLayers(),
                    r.getExpertsPerLayer(), r.getMeanLoad(), r.getMaxLoad(), r.getBalance()));
            for (WorkerLoad w : r.getWorkersList()) {
                sb.append(String.format(Locale.ROOT, "  expert worker %d: %d experts, load %.1f%n", w.getWorkerId(),
                        w.getExperts(), w.getLoad()));
            }
            int layer = -1;
            for (var x : r.getReplicasList()) {
                if (x.getLayer() != layer) {
                    layer = x.getLayer();
                    sb.append(String.format(Locale.ROOT, "  layer %d:", layer));
                }
                sb.append(' ').append(x.getExpert()).append("->").append(x.getWorkersList().toString().replace(" ", ""));
                if (x.getExpert() == r.getExpertsPerLayer() - 1) {
                    sb.append('\n');
                }
            }
            return sb.toString().stripTrailing();
        }
    }

    @Command(name = "drain", mixinStandardHelpOptions = true,
            description = "Move every expert off an expert worker; it exits 0 once nothing can be sent to it.")
    static final class DrainCommand implements Callable<Integer> {
        @ParentCommand
        AdminCommand admin;

        @Parameters(index = "0", paramLabel = "WORKER", description = "The expert worker's id.")
        int worker;

        @Option(names = "--no-wait", description = "Return once the drain is requested.")
        boolean noWait;

        @Override
        public Integer call() {
            return admin.run(s -> s.drain(DrainRequest.newBuilder().setWorkerId(worker).setWait(!noWait)
                    .setTimeoutMs((int) Math.min(Integer.MAX_VALUE, TimeUnit.SECONDS.toMillis(admin.timeoutSeconds)
                            - 1_000)).build()), DrainResponse::getMessage, System.out);
        }
    }

    @Command(name = "rebalance", mixinStandardHelpOptions = true,
            description = "Run EPLB on the measured load now and wait for the new placement epoch.")
    static final class RebalanceCommand implements Callable<Integer> {
        @ParentCommand
        AdminCommand admin;

        @Override
        public Integer call() {
            return admin.run(s -> s.rebalance(RebalanceRequest.newBuilder().setTimeoutMs(30_000).build()),
                    RebalanceCommand::text, System.out);
        }

        static String text(RebalanceResponse r) {
            return String.format(Locale.ROOT, "%s%nbalance %.3f -> %.3f, %d replicas moved", r.getMessage(),
                    r.getBalanceBefore(), r.getBalanceAfter(), r.getMoved());
        }
    }
}
