package io.epserve.model.kernel;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import java.lang.reflect.Method;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The project's JVM flags (parent pom, epserve.jvm.flags; Surefire starts this JVM with them) keep two methods of the
 * fast attention kernel out of its head loop, so the vector helpers they call are never left un-inlined there (and
 * boxed). A rename of either method would silently drop that: this test names them.
 */
class KernelCompileCommandsTest {
    @Test
    void theDontInlineCommandsNameMethodsThatExist() {
        List<String> args = ManagementFactory.getRuntimeMXBean().getInputArguments();
        Class<?> job = Arrays.stream(FastKernels.class.getDeclaredClasses())
                .filter(c -> c.getSimpleName().equals("AttentionJob")).findFirst().orElseThrow();
        for (String method : List.of("weights", "scores")) {
            String command = "-XX:CompileCommand=dontinline,*AttentionJob::" + method;
            assertTrue(args.contains(command), command + " missing from this JVM's flags " + args);
            assertTrue(Arrays.stream(job.getDeclaredMethods()).map(Method::getName).anyMatch(method::equals),
                    job.getName() + " has no method " + method);
        }
        assertTrue(args.contains("-XX:CompileCommand=quiet"), "without quiet the JVM prints each command on stdout");
    }
}
