package io.epserve.cli.commands;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.epserve.cli.EnvDefaults;
import io.epserve.cli.Main;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;

/**
 * Checks rendered Kubernetes manifests (deploy/k8s) against the code: every flag and EPSERVE_ variable is an option
 * of the container's subcommand and the whole command line parses and validates as the process would; container
 * ports, Service ports and gRPC probes are the ports those flags make the process use; the image is the one the
 * pom builds; grace periods outlast the drain timeouts; and, for an overlay annotated with its
 * {@code epserve sizing} command, that replicas, heaps, /dev/shm and memory requests are what the sizing computes.
 * Every problem found is collected, so one run names them all.
 */
final class ManifestCheck {
    static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
    static final Set<String> ROLES = Set.of("router", "attention-worker", "expert-worker");
    /** Variables a container may set that are not EPSERVE_ options: downward-API values and the JVM's options. */
    static final Set<String> OTHER_ENV = Set.of("POD_IP", "POD_NAME", "JDK_JAVA_OPTIONS");
    /** What the downward API gives, for parsing the command lines as a pod would run them. */
    static final String POD_IP = "10.1.2.3";
    static final String POD_INDEX_LABEL = "metadata.labels['apps.kubernetes.io/pod-index']";
    static final Map<String, String> FIELD_REFS = Map.of("status.podIP", POD_IP, "metadata.namespace", "epserve-test",
            "metadata.name", "epserve-expert-worker-3", POD_INDEX_LABEL, "3");
    /** The expert worker's liveness service name (io.epserve.expert.HealthEndpoint.LIVENESS). */
    static final String LIVENESS_SERVICE = "liveness";
    static final String SIZING_ANNOTATION = "epserve.io/sizing";

    final String where;
    final List<JsonNode> docs;
    final String image;
    final List<String> problems = new ArrayList<>();
    final Map<String, Map<String, String>> configMaps = new HashMap<>();
    final List<Workload> workloads = new ArrayList<>();

    /** A Deployment or StatefulSet and what its container's command line means. */
    static final class Workload {
        JsonNode doc;
        String kind;
        String name;
        JsonNode pod;
        JsonNode container;
        String role;
        Map<String, String> env = new LinkedHashMap<>();
        List<String> args = new ArrayList<>();
        CommandSpec spec;

        Object opt(String name) {
            return spec.optionsMap().get(name).getValue();
        }

        JsonNode labels() {
            return pod.path("metadata").path("labels");
        }

        int replicas() {
            return doc.path("spec").path("replicas").asInt(1);
        }
    }

    ManifestCheck(String where, List<JsonNode> docs, String image) {
        this.where = where;
        this.docs = docs;
        this.image = image;
    }

    // -------------------------------------------------------------------------------------------------- rendering

    /** kubectl on the PATH (-Depserve.test.kubectl=false checks as if there were none). */
    static boolean kubectlAvailable() {
        if (!Boolean.parseBoolean(System.getProperty("epserve.test.kubectl", "true"))) {
            return false;
        }
        for (String dir : System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator)) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, "kubectl"))) {
                return true;
            }
        }
        return false;
    }

    /** {@code kubectl kustomize DIR}: what {@code kubectl apply -k DIR} would apply. */
    static List<JsonNode> kustomize(Path dir) throws IOException, InterruptedException {
        Path out = Files.createTempFile("kustomize-", ".yaml");
        Path err = Files.createTempFile("kustomize-", ".err");
        try {
            Process p = new ProcessBuilder("kubectl", "kustomize", dir.toString()).redirectOutput(out.toFile())
                    .redirectError(err.toFile()).start();
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException("kubectl kustomize " + dir + " did not finish in 120 s");
            }
            if (p.exitValue() != 0) {
                throw new IOException("kubectl kustomize " + dir + " failed: " + Files.readString(err));
            }
            return parse(Files.readString(out));
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }

    static List<JsonNode> parse(String yaml) throws IOException {
        List<JsonNode> docs = new ArrayList<>();
        try (var it = YAML.readerFor(JsonNode.class).readValues(yaml)) {
            while (it.hasNext()) {
                JsonNode n = (JsonNode) it.next();
                if (n != null && !n.isNull() && !n.isMissingNode()) {
                    docs.add(n);
                }
            }
        }
        return docs;
    }

    /**
     * The base without kubectl: its resources as written, with the kustomization's image and generated ConfigMap
     * applied (the two transformations the base uses; overlays need kubectl).
     */
    static List<JsonNode> renderBaseWithoutKubectl(Path base) throws IOException {
        JsonNode k = YAML.readTree(Files.readString(base.resolve("kustomization.yaml"), StandardCharsets.UTF_8));
        List<JsonNode> docs = new ArrayList<>();
        for (JsonNode r : k.path("resources")) {
            docs.addAll(parse(Files.readString(base.resolve(r.asText()), StandardCharsets.UTF_8)));
        }
        for (JsonNode gen : k.path("configMapGenerator")) {
            ObjectNode cm = YAML.createObjectNode();
            cm.put("apiVersion", "v1").put("kind", "ConfigMap").putObject("metadata").put("name", gen.path("name").asText());
            ObjectNode data = cm.putObject("data");
            for (JsonNode lit : gen.path("literals")) {
                String s = lit.asText();
                int eq = s.indexOf('=');
                data.put(s.substring(0, eq), s.substring(eq + 1));
            }
            docs.add(cm);
        }
        for (JsonNode img : k.path("images")) {
            String name = img.path("name").asText();
            String to = img.path("newName").asText(name) + (img.has("newTag") ? ":" + img.path("newTag").asText() : "");
            for (JsonNode d : docs) {
                for (JsonNode c : d.path("spec").path("template").path("spec").path("containers")) {
                    if (c.path("image").asText().equals(name)) {
                        ((ObjectNode) c).put("image", to);
                    }
                }
            }
        }
        return docs;
    }

    // ------------------------------------------------------------------------------------------------------ checks

    void problem(String what) {
        problems.add(where + ": " + what);
    }

    List<String> run() {
        for (JsonNode d : docs) {
            if (d.path("kind").asText().equals("ConfigMap")) {
                Map<String, String> data = new LinkedHashMap<>();
                d.path("data").properties().forEach(e -> data.put(e.getKey(), e.getValue().asText()));
                configMaps.put(d.path("metadata").path("name").asText(), data);
            }
        }
        for (JsonNode d : docs) {
            String kind = d.path("kind").asText();
            if (kind.equals("Deployment") || kind.equals("StatefulSet")) {
                Workload w = workload(d);
                if (w != null) {
                    workloads.add(w);
                }
            }
        }
        for (String role : ROLES) {
            if (workloads.stream().noneMatch(w -> role.equals(w.role))) {
                problem("no workload runs `epserve " + role + "`");
            }
        }
        for (Workload w : workloads) {
            if (w.spec != null) {
                checkWorkload(w);
            }
        }
        checkServices();
        checkDisruptionBudgets();
        checkSizing();
        return problems;
    }

    private Workload workload(JsonNode d) {
        Workload w = new Workload();
        w.doc = d;
        w.kind = d.path("kind").asText();
        w.name = d.path("metadata").path("name").asText();
        w.pod = d.path("spec").path("template");
        JsonNode containers = w.pod.path("spec").path("containers");
        if (containers.size() != 1) {
            problem(w.name + ": expected one container, found " + containers.size());
            return null;
        }
        w.container = containers.get(0);
        String img = w.container.path("image").asText();
        if (!img.equals(image)) {
            problem(w.name + ": image '" + img + "', but the pom builds '" + image + "' (cli/pom.xml epserve.image)");
        }
        for (JsonNode a : w.container.path("args")) {
            w.args.add(a.asText());
        }
        if (w.container.has("command")) {
            problem(w.name + ": sets command; the image's entrypoint runs epserve and args are its arguments");
        }
        if (w.args.isEmpty() || !ROLES.contains(w.args.get(0))) {
            problem(w.name + ": args must start with one of " + ROLES + ", got " + w.args);
            return null;
        }
        w.role = w.args.get(0);
        CommandSpec declared = Main.commandLine().getSubcommands().get(w.role).getCommandSpec();
        // The environment as the pod sees it: envFrom first, env over it (explicit entries win).
        for (JsonNode from : w.container.path("envFrom")) {
            String ref = from.path("configMapRef").path("name").asText();
            Map<String, String> data = configMaps.get(ref);
            if (data == null) {
                problem(w.name + ": envFrom names ConfigMap '" + ref + "', which the manifests do not define");
            } else {
                w.env.putAll(data);
            }
        }
        for (JsonNode e : w.container.path("env")) {
            String key = e.path("name").asText();
            if (e.has("value")) {
                w.env.put(key, expand(w, e.path("value").asText()));
            } else {
                String field = e.path("valueFrom").path("fieldRef").path("fieldPath").asText();
                String v = FIELD_REFS.get(field);
                if (v == null) {
                    problem(w.name + ": env " + key + " comes from " + e.path("valueFrom") + ", not a known field");
                    v = "";
                }
                w.env.put(key, v);
            }
        }
        for (String key : w.env.keySet()) {
            if (key.startsWith(EnvDefaults.PREFIX)) {
                String option = "--" + key.substring(EnvDefaults.PREFIX.length()).toLowerCase(Locale.ROOT).replace('_', '-');
                if (!declared.optionsMap().containsKey(option)) {
                    problem(w.name + ": env " + key + " is not an option of `epserve " + w.role + "` (no " + option + ")");
                }
            } else if (!OTHER_ENV.contains(key)) {
                problem(w.name + ": env " + key + " is neither an EPSERVE_ option nor one of " + OTHER_ENV);
            }
        }
        List<String> args = new ArrayList<>();
        for (String a : w.args) {
            String x = expand(w, a);
            if (x.startsWith("--") && !declared.optionsMap().containsKey(x.split("=", 2)[0])) {
                problem(w.name + ": " + x + " is not an option of `epserve " + w.role + "`");
            }
            args.add(x);
        }
        try {
            Map<String, String> env = w.env;
            CommandLine.ParseResult r = Main.commandLine(env::get).parseArgs(args.toArray(String[]::new));
            w.spec = r.subcommand().commandSpec();
        } catch (CommandLine.ParameterException e) {
            problem(w.name + ": `epserve " + String.join(" ", args) + "` does not parse with its environment: "
                    + e.getMessage());
            return w;
        }
        try {
            // What the process does first with its flags: build and validate its options (no files are read).
            switch (w.spec.userObject()) {
                case ExpertWorkerCommand c -> c.flags.toOptions();
                case AttentionWorkerCommand c -> c.flags.toOptions();
                case RouterCommand c -> c.flags.toOptions();
                default -> problem(w.name + ": unexpected command " + w.spec.userObject());
            }
        } catch (IllegalArgumentException e) {
            problem(w.name + ": the process would refuse its flags: " + e.getMessage());
        }
        return w;
    }

    /** Kubernetes' $(VAR) expansion from the container's environment; an unknown reference stays as written. */
    private String expand(Workload w, String s) {
        Matcher m = Pattern.compile("\\$\\(([A-Za-z_][A-Za-z0-9_]*)\\)").matcher(s);
        StringBuilder sb = new StringBuilder();
        while (m.find()) {
            String v = w.env.get(m.group(1));
            if (v == null) {
                problem(w.name + ": '" + s + "' refers to $(" + m.group(1) + "), which the container does not define");
                v = m.group(0);
            }
            m.appendReplacement(sb, Matcher.quoteReplacement(v));
        }
        return m.appendTail(sb).toString();
    }

    private static int portOf(String endpoint) {
        return Integer.parseInt(endpoint.substring(endpoint.lastIndexOf(':') + 1));
    }

    private JsonNode containerPort(Workload w, String name) {
        for (JsonNode p : w.container.path("ports")) {
            if (p.path("name").asText().equals(name)) {
                return p;
            }
        }
        return null;
    }

    private void expectPort(Workload w, String name, int port, String protocol, String because) {
        JsonNode p = containerPort(w, name);
        if (p == null) {
            problem(w.name + ": no container port '" + name + "' (" + because + " is " + port + "/" + protocol + ")");
            return;
        }
        if (p.path("containerPort").asInt() != port || !p.path("protocol").asText("TCP").equals(protocol)) {
            problem(w.name + ": container port '" + name + "' is " + p.path("containerPort").asInt() + "/"
                    + p.path("protocol").asText("TCP") + ", but " + because + " is " + port + "/" + protocol);
        }
    }

    private void expectProbes(Workload w, int port, String readinessService, String livenessService) {
        for (String probe : List.of("startupProbe", "readinessProbe", "livenessProbe")) {
            JsonNode grpc = w.container.path(probe).path("grpc");
            if (grpc.isMissingNode()) {
                problem(w.name + ": " + probe + " is not a grpc probe (grpc.health.v1 on port " + port + ")");
                continue;
            }
            if (grpc.path("port").asInt() != port) {
                problem(w.name + ": " + probe + " asks port " + grpc.path("port").asInt() + ", but grpc.health.v1 is"
                        + " served on " + port);
            }
            String service = grpc.path("service").asText("");
            String want = probe.equals("readinessProbe") ? readinessService : livenessService;
            if (!probe.equals("startupProbe") && !service.equals(want)) {
                problem(w.name + ": " + probe + " asks service '" + service + "', expected '" + want + "'");
            }
        }
    }

    private void expectAdvertisesPodIp(Workload w) {
        if (!POD_IP.equals(w.opt("--advertise-host"))) {
            problem(w.name + ": --advertise-host is " + w.opt("--advertise-host") + ", not the pod's IP");
        }
    }

    private void expectBindAll(Workload w, String option) {
        Object v = w.opt(option);
        if (!"0.0.0.0".equals(v)) {
            problem(w.name + ": " + option + " is " + v + "; in a pod it must be 0.0.0.0 (probes and peers come from"
                    + " outside the container)");
        }
    }

    private void checkWorkload(Workload w) {
        // Cluster, metrics: the same for every role.
        if (w.opt("--kubernetes-service") == null) {
            problem(w.name + ": no --kubernetes-service (EPSERVE_KUBERNETES_SERVICE): it would not join the cluster");
        }
        expectBindAll(w, "--cluster-host");
        expectPort(w, "hazelcast", (int) w.opt("--cluster-port"), "TCP", "--cluster-port");
        int metrics = (int) w.opt("--metrics-port");
        if (metrics <= 0) {
            problem(w.name + ": --metrics-port is " + metrics + "; give it a fixed port to scrape");
        } else {
            expectBindAll(w, "--metrics-host");
            expectPort(w, "metrics", metrics, "TCP", "--metrics-port");
            String annotated = w.pod.path("metadata").path("annotations").path("prometheus.io/port").asText("");
            if (!annotated.equals(Integer.toString(metrics))) {
                problem(w.name + ": prometheus.io/port is '" + annotated + "', --metrics-port " + metrics);
            }
        }
        checkModelVolume(w);
        switch (w.role) {
            case "expert-worker" -> {
                int listen = portOf((String) w.opt("--listen"));
                expectPort(w, "aeron", listen, "UDP", "--listen");
                String advertise = (String) w.opt("--advertise");
                if (!(POD_IP + ":" + listen).equals(advertise)) {
                    problem(w.name + ": --advertise is " + advertise + "; attention workers must be sent to the pod's"
                            + " IP on the --listen port ($(POD_IP):" + listen + ")");
                }
                int health = (int) w.opt("--health-port");
                if (health <= 0) {
                    problem(w.name + ": --health-port is " + health + ": no grpc.health.v1 for the probes");
                } else {
                    expectBindAll(w, "--health-host");
                    expectPort(w, "health", health, "TCP", "--health-port");
                    expectProbes(w, health, "", LIVENESS_SERVICE);
                }
                expectGraceAbove(w, (long) w.opt("--drain-timeout-ms"));
                expectStatefulWorkerId(w);
                expectShm(w);
            }
            case "attention-worker" -> {
                expectPort(w, "aeron", portOf((String) w.opt("--listen")), "UDP", "--listen");
                int grpc = (int) w.opt("--port");
                expectPort(w, "grpc", grpc, "TCP", "--port");
                expectBindAll(w, "--host");
                expectAdvertisesPodIp(w);
                expectProbes(w, grpc, "", "");
                expectGraceAbove(w, (long) w.opt("--drain-timeout-ms"));
                expectStatefulWorkerId(w);
                expectShm(w);
            }
            case "router" -> {
                int grpc = (int) w.opt("--port");
                expectPort(w, "grpc", grpc, "TCP", "--port");
                expectBindAll(w, "--host");
                expectAdvertisesPodIp(w);
                expectProbes(w, grpc, "", "");
            }
            default -> throw new IllegalStateException(w.role);
        }
    }

    private void expectGraceAbove(Workload w, long drainMs) {
        long grace = w.pod.path("spec").path("terminationGracePeriodSeconds").asLong(30);
        if (grace * 1000 <= drainMs) {
            problem(w.name + ": terminationGracePeriodSeconds " + grace + " does not outlast --drain-timeout-ms "
                    + drainMs + ": SIGKILL would cut the drain short");
        }
    }

    private void expectStatefulWorkerId(Workload w) {
        if (!w.kind.equals("StatefulSet")) {
            problem(w.name + ": a " + w.role + " needs a stable --worker-id: run it in a StatefulSet");
        }
        JsonNode id = null;
        for (JsonNode e : w.container.path("env")) {
            if (e.path("name").asText().equals(EnvDefaults.variable("--worker-id"))) {
                id = e;
            }
        }
        if (id == null || !id.path("valueFrom").path("fieldRef").path("fieldPath").asText().equals(POD_INDEX_LABEL)) {
            problem(w.name + ": EPSERVE_WORKER_ID must come from the pod's ordinal (" + POD_INDEX_LABEL + ")");
        }
    }

    private JsonNode volume(Workload w, String name) {
        for (JsonNode v : w.pod.path("spec").path("volumes")) {
            if (v.path("name").asText().equals(name)) {
                return v;
            }
        }
        return null;
    }

    private JsonNode mountAt(Workload w, String path) {
        for (JsonNode m : w.container.path("volumeMounts")) {
            if (m.path("mountPath").asText().equals(path)) {
                return m;
            }
        }
        return null;
    }

    private void checkModelVolume(Workload w) {
        Path model = (Path) w.opt("--model");
        JsonNode mount = null;
        for (JsonNode m : w.container.path("volumeMounts")) {
            if (model.startsWith(Path.of(m.path("mountPath").asText()))) {
                mount = m;
            }
        }
        if (mount == null) {
            problem(w.name + ": no volume is mounted at --model " + model);
            return;
        }
        if (!mount.path("readOnly").asBoolean(false)) {
            problem(w.name + ": the model volume must be mounted readOnly");
        }
        JsonNode v = volume(w, mount.path("name").asText());
        if (v == null || !(v.has("persistentVolumeClaim") || v.has("hostPath"))) {
            problem(w.name + ": the model volume " + mount.path("name").asText() + " is neither a PVC nor a hostPath");
        }
    }

    /** The /dev/shm an Aeron driver needs: a memory emptyDir of at least its log buffers for this many peers. */
    private void expectShm(Workload w) {
        JsonNode mount = mountAt(w, "/dev/shm");
        JsonNode v = mount == null ? null : volume(w, mount.path("name").asText());
        if (v == null || !v.path("emptyDir").path("medium").asText().equals("Memory")) {
            problem(w.name + ": Aeron needs /dev/shm from an emptyDir with medium Memory (the default is 64 MiB)");
            return;
        }
        String role = w.role.equals("expert-worker") ? "attention-worker" : "expert-worker";
        int peers = workloads.stream().filter(o -> role.equals(o.role)).mapToInt(Workload::replicas).sum();
        long need = SizingCommand.AERON_FIXED + peers * SizingCommand.AERON_PER_PEER;
        long limit = quantity(v.path("emptyDir").path("sizeLimit").asText("0"));
        if (limit < need) {
            problem(w.name + ": /dev/shm sizeLimit " + v.path("emptyDir").path("sizeLimit").asText() + " < "
                    + need / SizingCommand.MIB + " MiB of Aeron files for " + peers + " " + role + "s");
        }
    }

    private boolean selects(JsonNode selector, JsonNode labels) {
        if (selector.isMissingNode() || selector.isEmpty()) {
            return false;
        }
        for (var e : selector.properties()) {
            if (!e.getValue().asText().equals(labels.path(e.getKey()).asText(null))) {
                return false;
            }
        }
        return true;
    }

    private void checkServices() {
        Map<String, JsonNode> services = new HashMap<>();
        for (JsonNode d : docs) {
            if (!d.path("kind").asText().equals("Service")) {
                continue;
            }
            String name = d.path("metadata").path("name").asText();
            services.put(name, d);
            JsonNode selector = d.path("spec").path("selector");
            List<Workload> selected = workloads.stream().filter(w -> selects(selector, w.labels())).toList();
            if (selected.isEmpty()) {
                problem("Service " + name + " selects no workload");
            }
            for (JsonNode p : d.path("spec").path("ports")) {
                String protocol = p.path("protocol").asText("TCP");
                JsonNode target = p.path("targetPort");
                for (Workload w : selected) {
                    JsonNode cp = null;
                    for (JsonNode c : w.container.path("ports")) {
                        if (target.isTextual() ? c.path("name").asText().equals(target.asText())
                                : c.path("containerPort").asInt() == (target.isMissingNode() ? p.path("port").asInt()
                                : target.asInt())) {
                            cp = c;
                        }
                    }
                    if (cp == null) {
                        problem("Service " + name + " port " + p.path("port").asInt() + " targets '" + target.asText()
                                + "', which " + w.name + " does not declare");
                    } else if (!cp.path("protocol").asText("TCP").equals(protocol)
                            || cp.path("containerPort").asInt() != p.path("port").asInt()) {
                        problem("Service " + name + " port " + p.path("port").asInt() + "/" + protocol + " reaches "
                                + w.name + " port " + cp.path("containerPort").asInt() + "/"
                                + cp.path("protocol").asText("TCP") + " (expected the same port and protocol)");
                    }
                }
            }
        }
        Set<String> discovery = new java.util.HashSet<>();
        for (Workload w : workloads) {
            if (w.spec == null) {
                continue;
            }
            String svc = (String) w.opt("--kubernetes-service");
            if (svc == null) {
                continue;
            }
            discovery.add(svc);
            JsonNode s = services.get(svc);
            if (s == null) {
                problem(w.name + ": --kubernetes-service " + svc + " is not a Service of the manifests");
                continue;
            }
            if (!selects(s.path("spec").path("selector"), w.labels())) {
                problem("Service " + svc + " (Hazelcast discovery) does not select " + w.name);
            }
            boolean port = false;
            for (JsonNode p : s.path("spec").path("ports")) {
                port |= p.path("port").asInt() == (int) w.opt("--cluster-port");
            }
            if (!port) {
                problem("Service " + svc + " has no port " + w.opt("--cluster-port") + " (--cluster-port of " + w.name + ")");
            }
        }
        if (discovery.size() > 1) {
            problem("processes join through different services " + discovery + ": they would form separate clusters");
        }
        for (String svc : discovery) {
            JsonNode s = services.get(svc);
            if (s != null && (!s.path("spec").path("clusterIP").asText().equals("None")
                    || !s.path("spec").path("publishNotReadyAddresses").asBoolean(false))) {
                problem("Service " + svc + " must be headless (clusterIP: None) and publish not-ready pods: members"
                        + " must find each other before they are ready");
            }
        }
        for (Workload w : workloads) {
            if (w.kind.equals("StatefulSet")) {
                String sn = w.doc.path("spec").path("serviceName").asText();
                JsonNode s = services.get(sn);
                if (s == null || !s.path("spec").path("clusterIP").asText().equals("None")) {
                    problem(w.name + ": serviceName '" + sn + "' is not a headless Service of the manifests");
                }
            }
        }
        Workload router = workloads.stream().filter(w -> "router".equals(w.role) && w.spec != null).findFirst()
                .orElse(null);
        if (router != null) {
            boolean exposed = services.values().stream().anyMatch(s -> selects(s.path("spec").path("selector"),
                    router.labels()) && !s.path("spec").path("clusterIP").asText().equals("None")
                    && s.path("spec").path("ports").findValues("port").stream()
                    .anyMatch(p -> p.asInt() == (int) router.opt("--port")));
            if (!exposed) {
                problem("no Service exposes the router's gRPC port " + router.opt("--port"));
            }
        }
    }

    private void checkDisruptionBudgets() {
        for (Workload w : workloads) {
            boolean covered = docs.stream().anyMatch(d -> d.path("kind").asText().equals("PodDisruptionBudget")
                    && selects(d.path("spec").path("selector").path("matchLabels"), w.labels()));
            if (!covered) {
                problem(w.name + ": no PodDisruptionBudget");
            }
        }
    }

    /** An overlay annotated with `epserve sizing ...`: its numbers must be what that command computes. */
    private void checkSizing() {
        String command = null;
        for (Workload w : workloads) {
            if (w.kind.equals("StatefulSet")) {
                String a = w.doc.path("metadata").path("annotations").path(SIZING_ANNOTATION).asText(null);
                if (command != null && !command.equals(a)) {
                    problem("the StatefulSets carry different " + SIZING_ANNOTATION + " annotations");
                }
                command = a;
            }
        }
        if (command == null) {
            return;
        }
        CommandLine cl = Main.commandLine(Map.<String, String>of()::get);
        SizingCommand sc;
        try {
            sc = (SizingCommand) cl.parseArgs(command.trim().split("\\s+")).subcommand().commandSpec().userObject();
        } catch (CommandLine.ParameterException | ClassCastException e) {
            problem(SIZING_ANNOTATION + " '" + command + "' is not an `epserve sizing` command line: " + e.getMessage());
            return;
        }
        var c = io.epserve.model.config.ModelConfig.builtin(sc.source.builtin);
        SizingCommand.Sizing s = SizingCommand.of(sc.source.builtin, c, sc.expertWorkers, sc.attentionWorkers,
                sc.redundant, sc.context, sc.sequences);
        for (Workload w : workloads) {
            if (w.spec == null) {
                continue;
            }
            if (!w.role.equals("router") && (int) w.opt("--redundant-experts") != s.redundant()) {
                problem(w.name + ": --redundant-experts " + w.opt("--redundant-experts") + ", sized for " + s.redundant());
            }
            JsonNode res = w.container.path("resources");
            long request = quantity(res.path("requests").path("memory").asText("0"));
            long limit = quantity(res.path("limits").path("memory").asText("0"));
            long xmx = xmx(w);
            switch (w.role) {
                case "expert-worker" -> {
                    expectEq(w, "replicas", w.replicas(), s.expertWorkers());
                    expectAtLeast(w, "memory request", request, s.expertMemoryRequest());
                    expectAtLeast(w, "memory limit", limit, s.expertMemoryLimit());
                    if (xmx <= 0 || xmx > SizingCommand.EXPERT_HEAP) {
                        problem(w.name + ": -Xmx " + xmx + " B in JDK_JAVA_OPTIONS; the sizing counts "
                                + SizingCommand.EXPERT_HEAP + " B of heap");
                    }
                    expectAtLeast(w, "/dev/shm sizeLimit", shmLimit(w), s.expertShmBytes());
                }
                case "attention-worker" -> {
                    expectEq(w, "replicas", w.replicas(), s.attentionWorkers());
                    String kv = (String) w.opt("--kv-memory");
                    long kvBytes = kv == null ? 0 : jvmBytes(kv);
                    expectAtLeast(w, "--kv-memory", kvBytes, s.kvBudgetBytes());
                    expectAtLeast(w, "-Xmx", xmx, kvBytes + SizingCommand.ATTENTION_WORKING_HEAP);
                    expectAtLeast(w, "memory request", request, s.attentionMemoryRequest());
                    expectAtLeast(w, "memory limit", limit, request);
                    expectAtLeast(w, "/dev/shm sizeLimit", shmLimit(w), s.attentionShmBytes());
                    expectAtLeast(w, "memory request (weights + -Xmx + /dev/shm + overhead)", request,
                            s.attentionWeightBytes() + xmx + shmLimit(w) + SizingCommand.JVM_OVERHEAD);
                }
                default -> {
                }
            }
        }
    }

    private void expectEq(Workload w, String what, long have, long want) {
        if (have != want) {
            problem(w.name + ": " + what + " " + have + ", but " + SIZING_ANNOTATION + " sizes it for " + want);
        }
    }

    private void expectAtLeast(Workload w, String what, long have, long want) {
        if (have < want) {
            problem(String.format(Locale.ROOT, "%s: %s is %.2f GiB, below the %.2f GiB `epserve sizing` computes",
                    w.name, what, have / (double) SizingCommand.GIB, want / (double) SizingCommand.GIB));
        }
    }

    private long shmLimit(Workload w) {
        JsonNode mount = mountAt(w, "/dev/shm");
        JsonNode v = mount == null ? null : volume(w, mount.path("name").asText());
        return v == null ? 0 : quantity(v.path("emptyDir").path("sizeLimit").asText("0"));
    }

    /** -Xmx of JDK_JAVA_OPTIONS, 0 if none. */
    static long xmx(Workload w) {
        String opts = w.env.getOrDefault("JDK_JAVA_OPTIONS", "");
        long x = 0;
        for (String o : opts.trim().split("\\s+")) {
            if (o.startsWith("-Xmx")) {
                x = jvmBytes(o.substring(4));
            }
        }
        return x;
    }

    /** A JVM or --kv-memory size: 512m, 4g (binary), or bytes. */
    static long jvmBytes(String v) {
        String t = v.trim().toLowerCase(Locale.ROOT);
        long mult = switch (t.charAt(t.length() - 1)) {
            case 'k' -> 1L << 10;
            case 'm' -> 1L << 20;
            case 'g' -> 1L << 30;
            case 't' -> 1L << 40;
            default -> 1;
        };
        return Long.parseLong(mult == 1 ? t : t.substring(0, t.length() - 1)) * mult;
    }

    /** A Kubernetes quantity of bytes: 21Gi, 896Mi, 1G, 1000. */
    static long quantity(String q) {
        Matcher m = Pattern.compile("(\\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?").matcher(q.trim());
        if (!m.matches()) {
            throw new IllegalArgumentException("not a quantity: " + q);
        }
        long n = Long.parseLong(m.group(1));
        String u = m.group(2) == null ? "" : m.group(2);
        return n * switch (u) {
            case "Ki" -> 1L << 10;
            case "Mi" -> 1L << 20;
            case "Gi" -> 1L << 30;
            case "Ti" -> 1L << 40;
            case "k" -> 1000L;
            case "M" -> 1000_000L;
            case "G" -> 1000_000_000L;
            case "T" -> 1000_000_000_000L;
            default -> 1L;
        };
    }
}
