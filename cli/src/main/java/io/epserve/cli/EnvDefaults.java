package io.epserve.cli;

import java.util.Locale;
import java.util.function.Function;
import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * Option defaults from the environment: {@code EPSERVE_FLAG_NAME} is the default of {@code --flag-name} (the option's
 * longest name, without the dashes, upper-cased, '-' as '_'), for every subcommand. A flag on the command line wins
 * over the variable, the variable over the built-in default; a variable also satisfies a required option. Multi-value
 * options split the value like the flag does ({@code EPSERVE_CLUSTER_MEMBERS=a:5701,b:5701}). Meant for containers
 * (Kubernetes {@code env:} with the downward API), where a variable is easier to set than an argument.
 */
public final class EnvDefaults implements CommandLine.IDefaultValueProvider {
    public static final String PREFIX = "EPSERVE_";

    private final Function<String, String> env;

    /** Reads variables through {@code env} (tests pass a map's {@code get}). */
    public EnvDefaults(Function<String, String> env) {
        this.env = env;
    }

    /** Reads the process environment. */
    public static EnvDefaults system() {
        return new EnvDefaults(System::getenv);
    }

    /** The variable of an option name: {@code --drain-timeout-ms} -> {@code EPSERVE_DRAIN_TIMEOUT_MS}. */
    public static String variable(String optionName) {
        String bare = optionName.replaceFirst("^-+", "");
        return PREFIX + bare.toUpperCase(Locale.ROOT).replace('-', '_');
    }

    /** The variable of an option, or null for options it does not apply to (help, version, positionals). */
    public static String variable(ArgSpec arg) {
        if (!(arg instanceof OptionSpec o) || o.usageHelp() || o.versionHelp()) {
            return null;
        }
        return variable(o.longestName());
    }

    @Override
    public String defaultValue(ArgSpec arg) {
        String name = variable(arg);
        if (name == null) {
            return null;
        }
        String v = env.apply(name);
        return v == null || v.isEmpty() ? null : v;
    }
}
