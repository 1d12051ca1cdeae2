package io.epserve.loadgen;

import com.networknt.schema.Error;
import com.networknt.schema.InputFormat;
import com.networknt.schema.Schema;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SpecificationVersion;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.List;

/** The published JSON Schema of a run result, for validating what the harness writes. */
public final class ResultSchema {
    private static final Schema SCHEMA = load();

    private ResultSchema() {
    }

    private static Schema load() {
        try (InputStream in = Bench.class.getResourceAsStream("bench-result.schema.json")) {
            return SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12).getSchema(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The schema's complaints about a JSON text (empty: valid). */
    public static List<String> errors(String json) {
        List<Error> errors = SCHEMA.validate(json, InputFormat.JSON);
        return errors.stream().map(Error::toString).toList();
    }
}
