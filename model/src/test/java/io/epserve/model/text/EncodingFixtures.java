package io.epserve.model.text;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;

/** The official encoding test vectors, copied from shared/golden/encoding into the test resources. */
final class EncodingFixtures {
    private EncodingFixtures() {}

    /** The mode each case is rendered in (README.md of the fixtures). */
    static ThinkingMode mode(int n) {
        return n == 4 ? ThinkingMode.CHAT : ThinkingMode.THINKING;
    }

    static String input(int n) {
        return read("test_input_" + n + ".json");
    }

    static String output(int n) {
        return read("test_output_" + n + ".txt");
    }

    static String read(String name) {
        try (InputStream in = EncodingFixtures.class.getResourceAsStream("/encoding/" + name)) {
            if (in == null) {
                throw new IllegalStateException("missing test resource /encoding/" + name);
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
