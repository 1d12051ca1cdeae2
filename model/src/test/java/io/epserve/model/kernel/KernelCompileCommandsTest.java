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
 * boxed), and the indexer's weighting out of its 4-key loop, whose vector operations C2 otherwise left to the Java
 * fallback in some compilations. A rename of any of them would silently drop that: this test names them.
 */
class KernelCompileCommandsTest {
    @Test
    void theDontInlineCommandsNameMethodsThatExist() {
        List<String> args = ManagementFactory.getRuntimeMXBean().getInputArguments();
        for (String[] jm : List.of(new String[] {"AttentionJob", "weights"}, new String[] {"AttentionJob", "scores"},
                new String[] {"IndexJob", "weigh4"})) {
            Class<?> job = Arrays.stream(FastKernels.class.getDeclaredClasses())
                    .filter(c -> c.getSimpleName().equals(jm[0])).findFirst().orElseThrow();
            String command = "-XX:CompileCommand=dontinline,*" + jm[0] + "::" + jm[1];
            assertTrue(args.contains(command), command + " missing from this JVM's flags " + args);
            assertTrue(Arrays.stream(job.getDeclaredMethods()).map(Method::getName).anyMatch(jm[1]::equals),
                    job.getName() + " has no method " + jm[1]);
        }
        assertTrue(args.contains("-XX:CompileCommand=quiet"), "without quiet the JVM prints each command on stdout");
    }
}
