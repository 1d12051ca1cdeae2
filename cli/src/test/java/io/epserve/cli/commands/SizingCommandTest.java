package io.epserve.cli.commands;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.epserve.model.checkpoint.RandomCheckpoint;
import io.epserve.model.checkpoint.SafetensorsWriter;
import io.epserve.model.config.ModelConfig;
import io.epserve.model.engine.CacheLayout;
import io.epserve.model.safetensors.Checkpoint;
import io.epserve.model.safetensors.TensorInfo;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** `epserve sizing`: the tensor layout it sums is a real checkpoint's, and its arithmetic. */
class SizingCommandTest {

    @Test
    void layoutIsExactlyTheTensorsOfARealCheckpoint() {
        ModelConfig c = ModelConfig.load(EngineCommandsTest.TINY);
        Map<String, Long> planned = new TreeMap<>();
        for (SafetensorsWriter.Entry e : RandomCheckpoint.layout(c)) {
            planned.put(e.name(), e.byteSize());
        }
        Map<String, Long> actual = new TreeMap<>();
        try (Checkpoint ck = Checkpoint.open(EngineCommandsTest.TINY)) {
            for (TensorInfo t : ck.tensors().values()) {
                actual.put(t.name(), t.data().byteSize());
            }
        }
        assertEquals(actual, planned, "the golden tiny checkpoint (an independent implementation) has these tensors");
    }

    @Test
    void v4FlashExpertsAndKvFromTheConfig() {
        ModelConfig c = ModelConfig.builtin("v4-flash");
        SizingCommand.Sizing s = SizingCommand.of("v4-flash", c, 8, 2, 0, 131072, 16);
        long inter = c.moeInterDim();
        long dim = c.dim();
        // w1, w3: [inter, dim], w2: [dim, inter]; FP4 packs two per byte, one E8M0 scale per 32.
        assertEquals(3 * (inter * dim / 2 + inter * dim / 32), s.bytesPerExpert());
        assertEquals(c.nLayers() + 1, s.expertLayers(), "the MTP block has routed experts too");
        assertEquals(32, s.expertsPerWorkerLayer());
        assertEquals(s.bytesPerExpert() * 32 * s.expertLayers(), s.expertWorkerWeightBytes());
        assertEquals(s.routedExpertBytes() + s.attentionWeightBytes(), s.checkpointBytes());
        assertEquals((long) Math.ceil(CacheLayout.of(c).bytesFor(131072)) * 16, s.kvBudgetBytes());
        assertEquals(SizingCommand.AERON_FIXED + 8 * SizingCommand.AERON_PER_PEER, s.attentionShmBytes());
        assertTrue(s.expertMemoryLimit() > s.expertMemoryRequest());
        assertEquals(0, s.expertMemoryRequest() % SizingCommand.GIB);
    }

    @Test
    void redundantSlotsAndUnevenShares() {
        ModelConfig c = ModelConfig.builtin("v4-pro");
        assertEquals(12, SizingCommand.of("v4-pro", c, 32, 4, 0, 8192, 1).expertsPerWorkerLayer());
        assertEquals(13, SizingCommand.of("v4-pro", c, 32, 4, 1, 8192, 1).expertsPerWorkerLayer());
        assertEquals(55, SizingCommand.of("v4-pro", c, 7, 4, 0, 8192, 1).expertsPerWorkerLayer(), "384 / 7, rounded up");
    }

    @Test
    void printsTheManifestValues() {
        EngineCommandsTest.Run r = EngineCommandsTest.run("sizing", "--builtin", "v4-flash", "--expert-workers", "8",
                "--attention-workers", "2");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("12.75 MiB"), r.out());
        assertTrue(r.out().contains("expert-worker:    replicas 8; JDK_JAVA_OPTIONS -Xmx2g; /dev/shm sizeLimit 256Mi;"
                + " memory request 21Gi, limit 26Gi"), r.out());
        assertEquals(2, EngineCommandsTest.run("sizing", "--builtin", "v4-flash", "--expert-workers", "0").exit());
    }
}
