package io.epserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.GoldenData;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.kernel.KernelSets;
import io.epserve.model.kernel.Kernels;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.weights.ModelWeights;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The component-isolated checks of GOLDEN.md. The exact kernel set must reproduce every component bit for bit; the
 * fast set (float32 accumulation) must stay within the "mode B" table of each golden directory.
 */
class ComponentGoldenTest {
    /** GOLDEN.md "Mode B" thresholds: component -> {max fraction > 1 ulp, max relative RMS}. */
    static final Map<String, Map<String, double[]>> MODE_B = Map.of(
            "tiny", Map.ofEntries(
                    Map.entry("attn_in", new double[] {0.001, 3.4e-4}),
                    Map.entry("kv", new double[] {0.001, 1.0e-4}),
                    Map.entry("comp", new double[] {0.001, 1.0e-4}),
                    Map.entry("ikeys", new double[] {0.001, 1.0e-4}),
                    Map.entry("index_scores", new double[] {0.001, 1.0e-4}),
                    Map.entry("attn_out", new double[] {0.0149, 3.0e-3}),
                    Map.entry("mid_streams", new double[] {0.001, 1.0e-4}),
                    Map.entry("ffn_in", new double[] {0.001, 2.6e-4}),
                    Map.entry("ffn_out", new double[] {0.001, 1.0e-4}),
                    Map.entry("streams", new double[] {0.001, 1.0e-4})),
            "wide", Map.ofEntries(
                    Map.entry("attn_in", new double[] {0.001, 1.3e-4}),
                    Map.entry("kv", new double[] {0.001, 1.0e-4}),
                    Map.entry("comp", new double[] {0.001, 1.0e-4}),
                    Map.entry("ikeys", new double[] {0.001, 1.0e-4}),
                    Map.entry("index_scores", new double[] {0.001, 1.0e-4}),
                    Map.entry("attn_out", new double[] {0.0079, 1.3e-3}),
                    Map.entry("mid_streams", new double[] {0.001, 1.1e-4}),
                    Map.entry("ffn_in", new double[] {0.001, 1.0e-4}),
                    Map.entry("ffn_out", new double[] {0.0021, 6.1e-4}),
                    Map.entry("streams", new double[] {0.001, 1.0e-4})));
    /** Changed choices allowed summed over layers: {csa_sel, experts}. */
    static final Map<String, int[]> MODE_B_CHOICES = Map.of("tiny", new int[] {1, 2}, "wide", new int[] {3, 6});

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"tiny, exact", "wide, exact", "tiny, fast", "wide, fast"})
    void componentsFromGoldenInputs(String name, String kernels) {
        try (GoldenData g = GoldenData.open(name);
             Checkpoint ck = Checkpoint.open(g.dir);
             Kernels k = KernelSets.create(kernels, 2)) {
            ModelConfig c = ModelConfig.load(g.dir);
            Transformer tr = new Transformer(new ModelWeights(c, ck, ModelWeights.ExpertFilter.ALL), k);
            ComponentCheck check = new ComponentCheck(tr, g);
            check.run();
            StringBuilder report = new StringBuilder(name + " " + kernels + ":");
            check.deviations.forEach((comp, dev) -> report.append(String.format(" %s %.3f%%/%.1e", comp, 100 * dev.fractionOff(), dev.relRms())));
            report.append(" csa_sel ").append(check.changedCsaChoices).append(" experts ").append(check.changedExpertChoices);
            System.out.println(report);
            assertEquals(10, check.deviations.size(), "components checked: " + check.deviations.keySet());
            for (String comp : List.of("attn_in", "kv", "comp", "ikeys", "index_scores", "attn_out", "mid_streams", "ffn_in", "ffn_out", "streams")) {
                ComponentCheck.Deviation dev = check.deviations.get(comp);
                if (kernels.equals("exact")) {
                    assertEquals(0.0, dev.relRms(), name + " exact " + comp + " must be bit-identical");
                } else {
                    double[] bound = MODE_B.get(name).get(comp);
                    assertTrue(dev.fractionOff() <= bound[0] && dev.relRms() <= bound[1],
                            name + " fast " + comp + ": " + dev + " exceeds " + bound[0] + " / " + bound[1]);
                }
            }
            int[] choices = kernels.equals("exact") ? new int[] {0, 0} : MODE_B_CHOICES.get(name);
            assertTrue(check.changedCsaChoices <= choices[0], name + " csa_sel changed " + check.changedCsaChoices);
            assertTrue(check.changedExpertChoices <= choices[1], name + " experts changed " + check.changedExpertChoices);
        }
    }
}
