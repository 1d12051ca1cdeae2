package io.epserve.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PlacementTest {
    /** tiny: 4 layers + MTP, 8 experts. */
    private static final int LAYERS = 5;
    private static final int EXPERTS = 8;

    @Test
    void specPlacesTheSameExpertsInEveryLayerIncludingMtp() {
        Placement p = Placement.ofSpec("0-3, 7", LAYERS, true, EXPERTS);
        for (int l = 0; l < LAYERS; l++) {
            assertArrayEquals(new int[] {0, 1, 2, 3, 7}, p.experts(l));
        }
        assertEquals(25, p.size());
        assertTrue(p.wants(4, 7));
        assertFalse(p.wants(4, 4));
        assertFalse(p.wants(5, 0));
        assertEquals("*:0-3,7", p.canonical());
        assertEquals("experts 0-3,7 of 8 in each of 5 layers (0-3, MTP 4)", p.describe());
        assertEquals(40, Placement.ofSpec("all", LAYERS, true, EXPERTS).size());
        assertEquals(Placement.ofSpec("0,1,2,3,7", LAYERS, true, EXPERTS), p);
        assertEquals(Placement.ofSpec("5", LAYERS, true, EXPERTS).size(), 5);
    }

    @Test
    void badSpecsAreRefusedWithClearErrors() {
        assertMessage("expert 8 is outside [0, 8)", () -> Placement.ofSpec("0-8", LAYERS, true, EXPERTS));
        assertMessage("expert 9 is outside [0, 8)", () -> Placement.ofSpec("9", LAYERS, true, EXPERTS));
        assertMessage("'x' is not an expert id", () -> Placement.ofSpec("1,x", LAYERS, true, EXPERTS));
        assertMessage("expert -1 is outside [0, 8)", () -> Placement.ofSpec("-1", LAYERS, true, EXPERTS));
        assertMessage("range '3-1' is empty", () -> Placement.ofSpec("3-1", LAYERS, true, EXPERTS));
        assertMessage("empty item", () -> Placement.ofSpec("1,,2", LAYERS, true, EXPERTS));
        assertMessage("empty expert list", () -> Placement.ofSpec(" ", LAYERS, true, EXPERTS));
    }

    @Test
    void jsonPlacesExpertsPerLayer(@TempDir Path tmp) throws Exception {
        Path f = tmp.resolve("placement.json");
        Files.writeString(f, "{\"layers\": {\"0\": [0, 1], \"1\": \"2-3\", \"mtp\": [5], \"3\": []}}");
        Placement p = Placement.ofFile(f, LAYERS, true, EXPERTS);
        assertArrayEquals(new int[] {0, 1}, p.experts(0));
        assertArrayEquals(new int[] {2, 3}, p.experts(1));
        assertArrayEquals(new int[] {}, p.experts(2));
        assertArrayEquals(new int[] {}, p.experts(3));
        assertArrayEquals(new int[] {5}, p.experts(4));
        assertEquals(5, p.size());
        assertEquals("0:0-1;1:2-3;4:5", p.canonical());
        assertEquals("5 experts (layer 0: 0-1; layer 1: 2-3; MTP 4: 5)", p.describe());
        assertEquals(p, Placement.ofJson("{\"layers\": {\"4\": [5], \"1\": [3, 2], \"0\": \"0,1\"}}", "x", LAYERS,
                true, EXPERTS));
    }

    @Test
    void badJsonIsRefusedWithClearErrors() {
        assertMessage("p.json: layer 5 is outside [0, 5)", () -> json("{\"layers\": {\"5\": [0]}}"));
        assertMessage("p.json: layer -1 is outside", () -> json("{\"layers\": {\"-1\": [0]}}"));
        assertMessage("p.json: layer 1: expert 8 is outside [0, 8)", () -> json("{\"layers\": {\"1\": [8]}}"));
        assertMessage("p.json: layer 1: expert 9 is outside", () -> json("{\"layers\": {\"1\": \"0-9\"}}"));
        assertMessage("layer 'first' is not a layer index", () -> json("{\"layers\": {\"first\": [0]}}"));
        assertMessage("expert 1.5 is not an integer", () -> json("{\"layers\": {\"1\": [1.5]}}"));
        assertMessage("unknown key 'layer'", () -> json("{\"layer\": {\"1\": [1]}}"));
        assertMessage("\"layers\" must be an object", () -> json("{\"layers\": [1]}"));
        assertMessage("not valid JSON", () -> json("{\"layers\": "));
        assertMessage("selects no experts", () -> json("{\"layers\": {\"1\": []}}"));
        assertMessage("has no MTP block", () -> Placement.ofJson("{\"layers\": {\"mtp\": [1]}}", "p.json", 4, false,
                EXPERTS));
    }

    private static Placement json(String text) {
        return Placement.ofJson(text, "p.json", LAYERS, true, EXPERTS);
    }

    private static void assertMessage(String part, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(part), "'" + e.getMessage() + "' should contain '" + part + "'");
    }

    @Test
    void theCanonicalTextReadsBackAsTheSamePlacement() {
        Placement uniform = Placement.ofSpec("0-2,5", 3, true, 8);
        assertEquals(uniform, Placement.ofCanonical(uniform.canonical(), 3, true, 8));
        Placement perLayer = Placement.ofJson("{\"layers\": {\"0\": [0, 1], \"2\": \"3-4,7\"}}", "t", 3, true, 8);
        assertEquals("0:0-1;2:3-4,7", perLayer.canonical());
        assertEquals(perLayer, Placement.ofCanonical(perLayer.canonical(), 3, true, 8));
        assertThrows(IllegalArgumentException.class, () -> Placement.ofCanonical("0-1", 3, true, 8));
        assertThrows(IllegalArgumentException.class, () -> Placement.ofCanonical("9:1", 3, true, 8));
    }
}
