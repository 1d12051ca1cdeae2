package io.epserve.cli.commands;

import io.epserve.model.text.ChatEncoding;
import io.epserve.model.text.ChatJson;
import io.epserve.model.text.ChatMessage;
import io.epserve.model.text.ThinkingMode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "render-chat", mixinStandardHelpOptions = true,
        description = "Prints the DeepSeek-V4 prompt of a conversation (the official chat encoding), exactly: UTF-8,"
                + " no newline added. A conversation that ends with a user message ends with the generation prompt.")
public final class RenderChatCommand implements Callable<Integer> {
    @Option(names = "--messages", required = true,
            description = "JSON file: an array of messages, or an object {\"messages\": [...], \"tools\": [...]}"
                    + " (the tools go on the first message). Messages as in the OpenAI chat format, plus"
                    + " reasoning_content, developer and latest_reminder roles, and task.")
    Path messages;

    @Option(names = "--thinking", defaultValue = "thinking",
            description = "chat, thinking or max. Default: ${DEFAULT-VALUE}.")
    String thinking;

    @Override
    public Integer call() {
        ThinkingMode mode;
        try {
            mode = ThinkingMode.parse(thinking);
        } catch (IllegalArgumentException e) {
            return CliErrors.usage("--thinking: " + e.getMessage());
        }
        String json;
        try {
            json = StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(Files.readAllBytes(messages)))
                    .toString();
        } catch (CharacterCodingException e) {
            return CliErrors.usage(messages + ": not UTF-8 text");
        } catch (IOException e) {
            return CliErrors.usage("cannot read " + messages + ": " + e.getMessage());
        }
        String prompt;
        try {
            List<ChatMessage> conversation = ChatJson.parseConversation(json);
            prompt = ChatEncoding.render(conversation, mode);
        } catch (IllegalArgumentException e) {
            return CliErrors.usage(messages + ": " + e.getMessage());
        }
        byte[] bytes = prompt.getBytes(StandardCharsets.UTF_8);
        System.out.write(bytes, 0, bytes.length);
        System.out.flush();
        return 0;
    }
}
