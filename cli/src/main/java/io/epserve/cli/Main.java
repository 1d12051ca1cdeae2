package io.epserve.cli;

import io.epserve.cli.commands.AdminCommand;
import io.epserve.cli.commands.AttentionWorkerCommand;
import io.epserve.cli.commands.BenchClusterCommand;
import io.epserve.cli.commands.BenchCommand;
import io.epserve.cli.commands.BenchCompareCommand;
import io.epserve.cli.commands.ChatCommand;
import io.epserve.cli.commands.BenchDecodeCommand;
import io.epserve.cli.commands.BenchExchangeCommand;
import io.epserve.cli.commands.BenchRouterCommand;
import io.epserve.cli.commands.ClusterLogitsCommand;
import io.epserve.cli.commands.CacheSizeCommand;
import io.epserve.cli.commands.EnvCommand;
import io.epserve.cli.commands.ExpertWorkerCommand;
import io.epserve.cli.commands.GenerateCommand;
import io.epserve.cli.commands.LogitsCommand;
import io.epserve.cli.commands.MakeCheckpointCommand;
import io.epserve.cli.commands.ParseCompletionCommand;
import io.epserve.cli.commands.RenderChatCommand;
import io.epserve.cli.commands.RouterCommand;
import io.epserve.cli.commands.SizingCommand;
import io.epserve.cli.commands.UpCommand;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;

@Command(
        name = "epserve",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        description = {
            "epserve serves DeepSeek-V4-architecture Mixture-of-Experts models on a cluster of CPU machines."
                    + " It is expert-parallel: the routed experts are partitioned across the nodes, so a model larger"
                    + " than one machine's memory can be served, and each token is sent to the nodes that hold its"
                    + " chosen experts. The same engine also runs as a single process.",
            ""
        },
        footer = {"", "Every option --flag-name of every command also reads its default from the environment variable"
                + " EPSERVE_FLAG_NAME (e.g. EPSERVE_WORKER_ID=3 for --worker-id 3); a flag given wins."})
public final class Main {

    /** The one list of subcommands; add new commands here. */
    public static List<Object> subcommands() {
        return List.of(
                new UpCommand(),
                new GenerateCommand(),
                new ChatCommand(),
                new LogitsCommand(),
                new RenderChatCommand(),
                new ParseCompletionCommand(),
                new MakeCheckpointCommand(),
                new BenchDecodeCommand(),
                new CacheSizeCommand(),
                new SizingCommand(),
                new ExpertWorkerCommand(),
                new AttentionWorkerCommand(),
                new RouterCommand(),
                new AdminCommand(),
                new ClusterLogitsCommand(),
                new BenchClusterCommand(),
                new BenchExchangeCommand(),
                new BenchRouterCommand(),
                new BenchCommand(),
                new BenchCompareCommand(),
                new EnvCommand());
    }

    /** Built fresh each call so tests can redirect output and run commands in-process. */
    public static CommandLine commandLine() {
        return commandLine(System::getenv);
    }

    /** As {@link #commandLine()}, with option defaults read from {@code env} ({@link EnvDefaults}). */
    public static CommandLine commandLine(java.util.function.Function<String, String> env) {
        CommandLine cl = new CommandLine(new Main());
        for (Object command : subcommands()) {
            cl.addSubcommand(command);
        }
        // After the subcommands: picocli hands the provider to the commands present when it is set.
        cl.setDefaultValueProvider(new EnvDefaults(env));
        return cl;
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            // Set from the jar manifest; absent when running from target/classes (tests, IDE).
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {"epserve " + (v != null ? v : "(development build)")};
        }
    }
}
