package io.epserve.model;

import io.epserve.model.safetensors.DType;
import io.epserve.model.safetensors.SafetensorsFile;
import io.epserve.model.safetensors.TensorInfo;
import java.lang.foreign.ValueLayout;
import java.net.URISyntaxException;
import java.nio.ByteOrder;
import java.nio.file.Path;

/** The golden fixtures copied from shared/golden into the test resources (tiny and wide). */
public final class GoldenData implements AutoCloseable {
    public final String name;
    public final Path dir;
    private final SafetensorsFile file;

    private GoldenData(String name) {
        this.name = name;
        try {
            this.dir = Path.of(GoldenData.class.getResource("/golden/" + name + "/config.json").toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
        this.file = SafetensorsFile.open(dir.resolve("golden.safetensors"));
    }

    public static GoldenData open(String name) {
        return new GoldenData(name);
    }

    public boolean has(String tensor) {
        return file.tensors().containsKey(tensor);
    }

    public long[] shape(String tensor) {
        return info(tensor).shape();
    }

    private TensorInfo info(String tensor) {
        TensorInfo t = file.tensors().get(tensor);
        if (t == null) {
            throw new IllegalArgumentException("golden " + name + " has no tensor " + tensor);
        }
        return t;
    }

    public float[] floats(String tensor) {
        TensorInfo t = info(tensor);
        int n = (int) t.elementCount();
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            if (t.dtype() == DType.F32) {
                v[i] = t.data().get(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 4L * i);
            } else if (t.dtype() == DType.BF16) {
                int b = t.data().get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 2L * i) & 0xffff;
                v[i] = Float.intBitsToFloat(b << 16);
            } else {
                throw new IllegalArgumentException(tensor + " is " + t.dtype());
            }
        }
        return v;
    }

    public int[] ints(String tensor) {
        TensorInfo t = info(tensor);
        int n = (int) t.elementCount();
        int[] v = new int[n];
        for (int i = 0; i < n; i++) {
            v[i] = t.data().get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 4L * i);
        }
        return v;
    }

    @Override
    public void close() {
        file.close();
    }
}
