package io.epserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.IllegalFormatException;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;

class MainTest {

    private final StringWriter out = new StringWriter();
    private final StringWriter err = new StringWriter();

    private int run(String... args) {
        CommandLine cl = Main.commandLine();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        return cl.execute(args);
    }

    @Test
    void helpExitsZeroAndListsSubcommands() {
        assertEquals(0, run("--help"));
        assertTrue(out.toString().contains("env"), out::toString);
    }

    /**
     * picocli formats every description with String.format: a lone '%' (say "65 % of") makes it print a warning and
     * the raw text instead of the help. Every command's and option's text must format.
     */
    @Test
    void everyHelpTextFormats() {
        List<String> bad = new ArrayList<>();
        checkTexts(Main.commandLine(), bad);
        assertTrue(bad.isEmpty(), () -> String.join("\n", bad));
    }

    private static void checkTexts(CommandLine cl, List<String> bad) {
        CommandSpec spec = cl.getCommandSpec();
        List<String> texts = new ArrayList<>();
        texts.addAll(List.of(spec.usageMessage().description()));
        texts.addAll(List.of(spec.usageMessage().header()));
        texts.addAll(List.of(spec.usageMessage().footer()));
        for (ArgSpec arg : spec.args()) {
            texts.addAll(List.of(arg.description()));
        }
        for (String text : texts) {
            try {
                String.format(Locale.ROOT, text);
            } catch (IllegalFormatException e) {
                bad.add(spec.qualifiedName() + ": " + e + " in: " + text);
            }
        }
        for (CommandLine sub : cl.getSubcommands().values()) {
            checkTexts(sub, bad);
        }
    }

    @Test
    void unknownOptionIsUsageErrorWithExitCode2() {
        assertEquals(2, run("--no-such-option"));
        assertTrue(err.toString().contains("--no-such-option"), err::toString);
    }

    @Test
    void missingSubcommandIsUsageError() {
        assertEquals(2, run());
    }

    @Test
    void envReportsVectorWidthAndProcessors() {
        assertEquals(0, run("env"));
        String text = out.toString();
        assertTrue(text.contains("preferred species"), text);
        assertTrue(text.contains("processors  " + Runtime.getRuntime().availableProcessors()), text);
    }
}
