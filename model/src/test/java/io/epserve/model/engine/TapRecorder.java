package io.epserve.model.engine;

import java.util.HashMap;
import java.util.Map;

/** Collects tapped rows by "layer{i}.{name}" and position into dense [positions, width] matrices. */
final class TapRecorder implements Tap {
    private final Map<String, Map<Long, float[]>> rows = new HashMap<>();

    @Override
    public void row(int layer, String name, long position, float[] row, int off, int len) {
        float[] copy = new float[len];
        System.arraycopy(row, off, copy, 0, len);
        rows.computeIfAbsent("layer" + layer + "." + name, k -> new HashMap<>()).put(position, copy);
    }

    boolean has(String key) {
        return rows.containsKey(key);
    }

    /** Row at a position, or null. */
    float[] row(String key, long position) {
        Map<Long, float[]> m = rows.get(key);
        return m == null ? null : m.get(position);
    }

    int count(String key) {
        Map<Long, float[]> m = rows.get(key);
        return m == null ? 0 : m.size();
    }
}
