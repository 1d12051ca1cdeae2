package io.epserve.cli.commands;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Kubernetes manifests of deploy/k8s agree with the code ({@link ManifestCheck}): rendered with
 * {@code kubectl kustomize} (base, overlays/small, overlays/large, and an overlay with components/model-hostpath);
 * without kubectl only the base is checked, read as written.
 */
class DeployManifestsTest {
    static final Path K8S = Path.of("../deploy/k8s").toAbsolutePath().normalize();

    /** The image the pom builds: the property Surefire passes, else read from the poms (an IDE run). */
    static String image() throws Exception {
        String p = System.getProperty("epserve.image");
        if (p != null && !p.isBlank()) {
            return p;
        }
        String cli = Files.readString(Path.of("pom.xml"));
        Matcher m = Pattern.compile("<epserve.image>([^<]+)</epserve.image>").matcher(cli);
        assertTrue(m.find(), "cli/pom.xml defines epserve.image");
        Matcher v = Pattern.compile("<parent>.*?<version>([^<]+)</version>", Pattern.DOTALL).matcher(cli);
        assertTrue(v.find());
        return m.group(1).replace("${project.version}", v.group(1));
    }

    static List<JsonNode> render(String dir) throws Exception {
        Path d = K8S.resolve(dir);
        if (ManifestCheck.kubectlAvailable()) {
            return ManifestCheck.kustomize(d);
        }
        assumeTrue(dir.equals("base"), "kubectl is not installed: only the base is checked (as written)");
        return ManifestCheck.renderBaseWithoutKubectl(d);
    }

    static List<String> check(String where, List<JsonNode> docs) throws Exception {
        return new ManifestCheck(where, docs, image()).run();
    }

    static void assertAgrees(String dir) throws Exception {
        List<String> problems = check(dir, render(dir));
        assertTrue(problems.isEmpty(), () -> problems.size() + " problem(s):\n  " + String.join("\n  ", problems));
    }

    @Test
    void baseAgreesWithTheCode() throws Exception {
        assertAgrees("base");
    }

    @Test
    void smallOverlayAgreesWithTheCodeAndItsSizing() throws Exception {
        assertAgrees("overlays/small");
    }

    @Test
    void largeOverlayAgreesWithTheCodeAndItsSizing() throws Exception {
        assertAgrees("overlays/large");
    }

    @Test
    void overlaysAreSizedFromAnEpserveSizingCommand() throws Exception {
        for (String o : List.of("overlays/small", "overlays/large")) {
            List<JsonNode> docs = render(o);
            long sized = docs.stream().filter(d -> d.path("kind").asText().equals("StatefulSet"))
                    .filter(d -> d.path("metadata").path("annotations").has(ManifestCheck.SIZING_ANNOTATION)).count();
            assertEquals(2, sized, o + ": both StatefulSets carry " + ManifestCheck.SIZING_ANNOTATION);
        }
    }

    @Test
    void hostPathComponentKeepsTheModelReadOnly(@TempDir Path tmp) throws Exception {
        assumeTrue(ManifestCheck.kubectlAvailable(), "needs kubectl");
        Path overlay = tmp.resolve("hostpath");
        Files.createDirectories(overlay);
        // kustomize takes only relative paths to other kustomizations.
        Files.writeString(overlay.resolve("kustomization.yaml"), String.join("\n",
                "apiVersion: kustomize.config.k8s.io/v1beta1",
                "kind: Kustomization",
                "resources:",
                "  - " + overlay.relativize(K8S.resolve("overlays/small")),
                "components:",
                "  - " + overlay.relativize(K8S.resolve("components/model-hostpath")),
                ""));
        List<JsonNode> docs = ManifestCheck.kustomize(overlay);
        List<String> problems = check("small + model-hostpath", docs);
        assertTrue(problems.isEmpty(), () -> String.join("\n", problems));
        assertFalse(docs.stream().anyMatch(d -> d.path("kind").asText().equals("PersistentVolumeClaim")));
        assertEquals(3, docs.stream().filter(d -> d.path("spec").path("template").path("spec").path("volumes")
                .findValues("hostPath").size() == 1).count(), "the three workloads mount the model from the node");
    }

    // ---------------------------------------------------------------------------------- the checks can fail

    private static JsonNode container(List<JsonNode> docs, String workload) {
        for (JsonNode d : docs) {
            if (d.path("metadata").path("name").asText().equals(workload) && d.path("spec").has("template")) {
                return d.path("spec").path("template").path("spec").path("containers").get(0);
            }
        }
        throw new AssertionError("no workload " + workload);
    }

    private static JsonNode workload(List<JsonNode> docs, String name) {
        return docs.stream().filter(d -> d.path("metadata").path("name").asText().equals(name)
                && d.path("spec").has("template")).findFirst().orElseThrow();
    }

    private static void port(List<JsonNode> docs, String workload, String name, int to) {
        for (JsonNode p : container(docs, workload).path("ports")) {
            if (p.path("name").asText().equals(name)) {
                ((ObjectNode) p).put("containerPort", to);
            }
        }
    }

    private static void assertCaught(String mistake, String expected, Consumer<List<JsonNode>> corrupt)
            throws Exception {
        List<JsonNode> docs = new ArrayList<>();
        for (JsonNode d : render("base")) {
            docs.add(d.deepCopy());
        }
        assertTrue(check("base", docs).isEmpty(), "the base is clean before " + mistake);
        corrupt.accept(docs);
        List<String> problems = check("base", docs);
        assertTrue(problems.stream().anyMatch(p -> p.contains(expected)),
                () -> mistake + " should be reported (mentioning '" + expected + "'), got " + problems);
    }

    @Test
    void theChecksCatchMistakes() throws Exception {
        assertCaught("an expert worker's UDP port that is not its --listen port", "--listen",
                docs -> port(docs, "epserve-expert-worker", "aeron", 40002));
        assertCaught("a health port the probes do not ask", "grpc.health.v1",
                docs -> ((ObjectNode) container(docs, "epserve-expert-worker").path("readinessProbe").path("grpc"))
                        .put("port", 8082));
        assertCaught("a liveness probe that would restart a draining worker", "liveness",
                docs -> ((ObjectNode) container(docs, "epserve-expert-worker").path("livenessProbe").path("grpc"))
                        .remove("service"));
        assertCaught("an env variable that is no option", "EPSERVE_NO_SUCH_FLAG",
                docs -> ((ArrayNode) container(docs, "epserve-expert-worker").path("env")).addObject()
                        .put("name", "EPSERVE_NO_SUCH_FLAG").put("value", "1"));
        assertCaught("a router-only flag on the attention worker", "--max-in-flight",
                docs -> ((ArrayNode) container(docs, "epserve-attention-worker").path("args")).add("--max-in-flight")
                        .add("8"));
        assertCaught("a flag value the process refuses", "refuse its flags",
                docs -> ((ArrayNode) container(docs, "epserve-expert-worker").path("args")).add("--wave-experts")
                        .add("-1"));
        assertCaught("another image", "the pom builds",
                docs -> ((ObjectNode) container(docs, "epserve-router")).put("image", "epserve:0.0.0"));
        assertCaught("a grace period shorter than the drain", "terminationGracePeriodSeconds",
                docs -> ((ObjectNode) workload(docs, "epserve-expert-worker").path("spec").path("template")
                        .path("spec")).put("terminationGracePeriodSeconds", 60));
        assertCaught("a router gRPC port the Service does not reach", "Service epserve port 50051",
                docs -> port(docs, "epserve-router", "grpc", 50052));
        assertCaught("a metrics port that is not --metrics-port", "--metrics-port",
                docs -> port(docs, "epserve-attention-worker", "metrics", 9401));
        assertCaught("a Hazelcast service that misses the routers", "does not select epserve-router",
                docs -> docs.stream().filter(d -> d.path("metadata").path("name").asText().equals("epserve-hazelcast"))
                        .forEach(d -> ((ObjectNode) d.path("spec").path("selector")).put("app.kubernetes.io/component",
                                "expert-worker")));
        assertCaught("a writable model volume", "readOnly",
                docs -> container(docs, "epserve-expert-worker").path("volumeMounts").forEach(m -> {
                    if (m.path("mountPath").asText().equals("/model")) {
                        ((ObjectNode) m).put("readOnly", false);
                    }
                }));
    }

    @Test
    void theSizingCheckCatchesAnUndersizedOverlay() throws Exception {
        assumeTrue(ManifestCheck.kubectlAvailable(), "needs kubectl");
        List<JsonNode> docs = render("overlays/large");
        ((ObjectNode) container(docs, "epserve-expert-worker").path("resources").path("requests"))
                .put("memory", "20Gi");
        ((ObjectNode) workload(docs, "epserve-attention-worker").path("spec")).put("replicas", 3);
        List<String> problems = check("large", docs);
        assertTrue(problems.stream().anyMatch(p -> p.contains("memory request is 20.00 GiB")), problems::toString);
        assertTrue(problems.stream().anyMatch(p -> p.contains("replicas 3")), problems::toString);
    }
}
