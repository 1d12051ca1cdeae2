package io.epserve.model.text;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.Iterator;
import java.util.Map;

/**
 * JSON as Python's {@code json} module reads and writes it, which is what the official chat encoder
 * ({@code encoding_dsv4.py}, spec §6) uses: {@link #dumps} is {@code json.dumps(value, ensure_ascii=False)} with its
 * default {@code ", "} and {@code ": "} separators, keys in their original order, non-ASCII text kept, and floats
 * written the way Python's {@code repr} writes them ({@code 1000.0}, {@code 1e-05}, {@code 1e+16}). {@link #loads}
 * is {@code json.loads}: one JSON value with optional surrounding whitespace, integers of any size, floats as
 * doubles, {@code NaN} and {@code Infinity} accepted.
 */
public final class PythonJson {
    private static final JsonMapper MAPPER = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .build();

    private PythonJson() {}

    /** The mapper used to read JSON here (order-preserving, trailing garbage rejected). */
    public static JsonMapper mapper() {
        return MAPPER;
    }

    /** Parses one JSON value, as {@code json.loads}; throws {@link IllegalArgumentException} on invalid JSON. */
    public static JsonNode loads(String text) {
        JsonNode node;
        try {
            node = MAPPER.readTree(text);
        } catch (JsonProcessingException e) {
            String why = e.getOriginalMessage().replaceAll(" ?\\(start marker at \\[Source: [^\\]]*\\]\\)", "");
            JsonLocation at = e.getLocation();
            String where = at == null ? "" : " (line " + at.getLineNr() + ", column " + at.getColumnNr() + ")";
            throw new IllegalArgumentException("not valid JSON: " + why + where, e);
        }
        if (node == null || node.isMissingNode()) {
            throw new IllegalArgumentException("not valid JSON: no value");
        }
        return node;
    }

    /** {@code json.dumps(value, ensure_ascii=False)}. */
    public static String dumps(JsonNode value) {
        StringBuilder sb = new StringBuilder();
        write(sb, value);
        return sb.toString();
    }

    /** {@code json.dumps(text, ensure_ascii=False)}: the string in double quotes, escaped. */
    public static String quote(String text) {
        StringBuilder sb = new StringBuilder(text.length() + 2).append('"');
        escape(sb, text);
        return sb.append('"').toString();
    }

    /**
     * Appends {@code text} escaped as inside a Python JSON string (no quotes): {@code \" \\ \n \r \t \b \f}, other
     * control characters as six-character {@code u00XX} escapes (lower-case hex), everything else as is. Escaping
     * works character by character, so pieces of a string escaped separately concatenate to the escaped whole.
     */
    public static void escape(StringBuilder sb, CharSequence text) {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
    }

    private static void write(StringBuilder sb, JsonNode v) {
        switch (v.getNodeType()) {
            case OBJECT -> {
                sb.append('{');
                boolean first = true;
                for (Iterator<Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> e = it.next();
                    if (!first) {
                        sb.append(", ");
                    }
                    first = false;
                    sb.append('"');
                    escape(sb, e.getKey());
                    sb.append("\": ");
                    write(sb, e.getValue());
                }
                sb.append('}');
            }
            case ARRAY -> {
                sb.append('[');
                for (int i = 0; i < v.size(); i++) {
                    if (i > 0) {
                        sb.append(", ");
                    }
                    write(sb, v.get(i));
                }
                sb.append(']');
            }
            case STRING -> {
                sb.append('"');
                escape(sb, v.textValue());
                sb.append('"');
            }
            case NUMBER -> {
                if (v.isIntegralNumber()) {
                    sb.append(v.bigIntegerValue());
                } else {
                    sb.append(floatRepr(v.doubleValue()));
                }
            }
            case BOOLEAN -> sb.append(v.booleanValue() ? "true" : "false");
            case NULL -> sb.append("null");
            default -> throw new IllegalArgumentException("cannot write a " + v.getNodeType() + " node as JSON");
        }
    }

    /**
     * Python's {@code repr(float)}: the shortest decimal that reads back as {@code d} (the closest one if several),
     * in positional notation when the decimal exponent is in [-4, 16), else as {@code d.ddde±XX}.
     */
    static String floatRepr(double d) {
        if (Double.isNaN(d)) {
            return "NaN";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "Infinity" : "-Infinity";
        }
        if (d == 0) {
            return 1 / d < 0 ? "-0.0" : "0.0";
        }
        String sign = d < 0 ? "-" : "";
        double a = Math.abs(d);
        BigDecimal shortest = new BigDecimal(Double.toString(a)).stripTrailingZeros();
        if (shortest.precision() == 2) {
            // Java writes at least two digits and then takes the closest of the 1- and 2-digit decimals that read
            // back (4.9E-324); Python takes a 1-digit one whenever one reads back (5e-324).
            BigDecimal exact = new BigDecimal(a);
            BigDecimal best = null;
            for (RoundingMode mode : new RoundingMode[] {RoundingMode.FLOOR, RoundingMode.CEILING}) {
                BigDecimal c = shortest.round(new MathContext(1, mode));
                if (c.signum() > 0 && Double.parseDouble(c.toString()) == a) {
                    if (best == null) {
                        best = c;
                    } else {
                        int cmp = c.subtract(exact).abs().compareTo(best.subtract(exact).abs());
                        if (cmp < 0 || (cmp == 0 && !c.unscaledValue().testBit(0))) {
                            best = c;
                        }
                    }
                }
            }
            if (best != null) {
                shortest = best.stripTrailingZeros();
            }
        }
        String digits = shortest.unscaledValue().toString();
        int n = digits.length();
        int decpt = n - shortest.scale(); // value = 0.digits * 10^decpt
        StringBuilder sb = new StringBuilder(sign);
        if (decpt > 16 || decpt <= -4) {
            int exp = decpt - 1;
            sb.append(digits.charAt(0));
            if (n > 1) {
                sb.append('.').append(digits, 1, n);
            }
            sb.append('e').append(exp < 0 ? '-' : '+');
            int ae = Math.abs(exp);
            if (ae < 10) {
                sb.append('0');
            }
            sb.append(ae);
        } else if (decpt <= 0) {
            sb.append("0.").append("0".repeat(-decpt)).append(digits);
        } else if (decpt >= n) {
            sb.append(digits).append("0".repeat(decpt - n)).append(".0");
        } else {
            sb.append(digits, 0, decpt).append('.').append(digits, decpt, n);
        }
        return sb.toString();
    }
}
