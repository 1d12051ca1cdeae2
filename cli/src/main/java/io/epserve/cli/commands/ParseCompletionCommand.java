package io.epserve.cli.commands;

import io.epserve.model.text.ChatJson;
import io.epserve.model.text.CompletionEvent;
import io.epserve.model.text.CompletionParser;
import io.epserve.model.text.ParsedCompletion;
import io.epserve.model.text.PythonJson;
import io.epserve.model.text.ThinkingMode;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.Reader;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "parse-completion", mixinStandardHelpOptions = true,
        description = "Reads one assistant turn of model output on stdin (the text after the generation prompt) and"
                + " prints it as a JSON assistant message: reasoning_content (before </think>), content, tool_calls"
                + " parsed from DSML (arguments as a JSON string), and malformed (true if some DSML did not parse;"
                + " its text is then in content, and the reasons go to stderr).")
public final class ParseCompletionCommand implements Callable<Integer> {
    @Option(names = "--thinking", required = true,
            description = "The mode of the prompt the output follows: chat, thinking or max.")
    String thinking;

    @Override
    public Integer call() {
        ThinkingMode mode;
        try {
            mode = ThinkingMode.parse(thinking);
        } catch (IllegalArgumentException e) {
            return CliErrors.usage("--thinking: " + e.getMessage());
        }
        List<String> problems = new ArrayList<>();
        CompletionParser parser = new CompletionParser(mode, e -> {
            if (e instanceof CompletionEvent.Malformed m) {
                problems.add(m.reason());
            }
        });
        // Fed as it is read, as a server would feed decoded tokens.
        Reader in = new InputStreamReader(System.in, StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT));
        char[] chunk = new char[8192];
        try {
            for (int n; (n = in.read(chunk)) >= 0; ) {
                parser.feed(new String(chunk, 0, n));
            }
        } catch (CharacterCodingException e) {
            return CliErrors.usage("stdin is not UTF-8 text");
        } catch (IOException e) {
            return CliErrors.usage("cannot read stdin: " + e.getMessage());
        }
        ParsedCompletion result = parser.finish();
        for (String p : problems) {
            System.err.println("epserve: malformed DSML: " + p);
        }
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        out.println(PythonJson.dumps(ChatJson.completionJson(result)));
        out.flush();
        return 0;
    }
}
