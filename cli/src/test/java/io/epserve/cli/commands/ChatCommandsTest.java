package io.epserve.cli.commands;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.epserve.cli.Main;
import io.epserve.model.text.PythonJson;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** render-chat and parse-completion in-process, on the official encoding fixtures of the model module. */
class ChatCommandsTest {
    static final Path FIXTURES = Path.of("../model/src/test/resources/encoding").toAbsolutePath().normalize();

    @TempDir
    Path tmp;

    static EngineCommandsTest.Run runWithStdin(String stdin, String... args) {
        InputStream old = System.in;
        try {
            System.setIn(new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8)));
            return EngineCommandsTest.run(args);
        } finally {
            System.setIn(old);
        }
    }

    @Test
    void renderChatPrintsFixtureOneExactly() throws IOException {
        EngineCommandsTest.Run r = EngineCommandsTest.run("render-chat",
                "--messages", FIXTURES.resolve("test_input_1.json").toString(), "--thinking", "thinking");
        assertEquals(0, r.exit(), r.err());
        assertEquals(Files.readString(FIXTURES.resolve("test_output_1.txt"), StandardCharsets.UTF_8), r.out());
        // chat mode on fixture 4
        r = EngineCommandsTest.run("render-chat", "--messages", FIXTURES.resolve("test_input_4.json").toString(),
                "--thinking", "chat");
        assertEquals(0, r.exit(), r.err());
        assertEquals(Files.readString(FIXTURES.resolve("test_output_4.txt"), StandardCharsets.UTF_8), r.out());
    }

    /** Like admin and bench, chat asks the router that `epserve up` serves unless told otherwise. */
    @Test
    void chatAsksTheLocalRouterByDefault() {
        var r = Main.commandLine().parseArgs("chat", "hi");
        assertEquals("127.0.0.1:50051", ((ChatCommand) r.subcommand().commandSpec().userObject()).target);
        r = Main.commandLine().parseArgs("chat", "--target", "10.1.2.3:7000", "hi");
        assertEquals("10.1.2.3:7000", ((ChatCommand) r.subcommand().commandSpec().userObject()).target);
    }

    @Test
    void parseCompletionParsesAToolCall() {
        String completion = "Need the weather.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
                + "<｜DSML｜parameter name=\"location\" string=\"true\">北京</｜DSML｜parameter>\n"
                + "<｜DSML｜parameter name=\"days\" string=\"false\">5</｜DSML｜parameter>\n"
                + "</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>";
        EngineCommandsTest.Run r = runWithStdin(completion, "parse-completion", "--thinking", "thinking");
        assertEquals(0, r.exit(), r.err());
        JsonNode m = PythonJson.loads(r.out());
        assertEquals("assistant", m.get("role").asText());
        assertEquals("Need the weather.", m.get("reasoning_content").asText());
        assertEquals("", m.get("content").asText());
        assertEquals(false, m.get("malformed").asBoolean());
        assertEquals(1, m.get("tool_calls").size());
        JsonNode f = m.get("tool_calls").get(0).get("function");
        assertEquals("get_weather", f.get("name").asText());
        assertEquals("{\"location\": \"北京\", \"days\": 5}", f.get("arguments").asText());
    }

    @Test
    void parseCompletionFlagsMalformedDsml() {
        String completion = "Hi\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\nbroken";
        EngineCommandsTest.Run r = runWithStdin(completion, "parse-completion", "--thinking", "chat");
        assertEquals(0, r.exit(), r.err());
        JsonNode m = PythonJson.loads(r.out());
        assertEquals(true, m.get("malformed").asBoolean());
        assertEquals(completion, m.get("content").asText());
        assertEquals(0, m.get("tool_calls").size());
        assertTrue(r.err().contains("malformed DSML"), r.err());
    }

    @Test
    void badInputExitsWithCode2AndAMessage() throws IOException {
        EngineCommandsTest.Run r = EngineCommandsTest.run("render-chat", "--messages", tmp.resolve("missing.json").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("missing.json"), r.err());

        Path invalid = Files.writeString(tmp.resolve("invalid.json"), "[{\"role\": \"user\", ");
        r = EngineCommandsTest.run("render-chat", "--messages", invalid.toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("not valid JSON"), r.err());

        Path badRole = Files.writeString(tmp.resolve("role.json"), "[{\"role\": \"robot\", \"content\": \"x\"}]");
        r = EngineCommandsTest.run("render-chat", "--messages", badRole.toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("unknown role 'robot'"), r.err());

        r = EngineCommandsTest.run("render-chat", "--messages", FIXTURES.resolve("test_input_2.json").toString(),
                "--thinking", "deep");
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("deep"), r.err());
        assertEquals("", r.out());

        r = runWithStdin("x", "parse-completion", "--thinking", "high");
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("high"), r.err());
        assertEquals(2, runWithStdin("x", "parse-completion").exit(), "--thinking is required");
    }
}
