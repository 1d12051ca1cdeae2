package io.epserve.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.openjdk.jmh.annotations.Fork;

/**
 * JMH needs the fork flags as annotation literals, so they are copied from the parent pom's epserve.jvm.flags;
 * this test (the property reaches it through a filtered resource) fails when the two drift apart.
 */
class ForkFlagsTest {
    @ParameterizedTest
    @ValueSource(classes = {Fp4LinearBench.class, Fp8LinearBench.class, Bf16LinearBench.class,
        ReadBandwidthBench.class, Fp4MoeBench.class})
    void forkCarriesTheProjectJvmFlags(Class<?> bench) throws IOException {
        String flags;
        try (InputStream in = ForkFlagsTest.class.getResourceAsStream("jvm.flags")) {
            assertNotNull(in, "filtered resource jvm.flags");
            flags = new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
        }
        Fork fork = bench.getAnnotation(Fork.class);
        assertNotNull(fork, bench + " has no @Fork");
        assertEquals(List.of(flags.split("\\s+")), List.of(fork.jvmArgsAppend()), bench.getSimpleName());
    }
}
