package io.epserve.model.text;

import com.fasterxml.jackson.databind.JsonNode;
import io.epserve.model.text.CompletionEvent.ContentDelta;
import io.epserve.model.text.CompletionEvent.Malformed;
import io.epserve.model.text.CompletionEvent.ReasoningDelta;
import io.epserve.model.text.CompletionEvent.ToolCallArgumentsDelta;
import io.epserve.model.text.CompletionEvent.ToolCallEnd;
import io.epserve.model.text.CompletionEvent.ToolCallStart;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads one assistant turn of model output, incrementally, as the official parser reads a finished one (spec §6):
 * in a thinking mode the text up to {@code </think>} is reasoning; then comes the answer, and a DSML block
 * ({@code \n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="f">\n}
 * {@code <｜DSML｜parameter name="p" string="true">v</｜DSML｜parameter>...}) becomes structured tool calls,
 * {@code string="true"} values as JSON strings and {@code string="false"} values as the JSON they hold. The turn
 * ends at {@code <｜end▁of▁sentence｜>} (text after it is ignored) or at {@link #finish}.
 *
 * <p>{@link #feed} takes text as it is decoded and reports {@link CompletionEvent}s to the sink at once, holding back
 * only a tail that could still become a special marker ({@code </think>}, a DSML tag, the end of a parameter value,
 * EOS), so no part of a marker is ever reported as text. The events, and the result, are the same however the text is
 * split into chunks.
 *
 * <p>The DSML grammar is the official parser's, strictly ({@code >\n} after every tag, parameters in the
 * {@code name="..." string="true|false"} form, no duplicate parameter names). A call is committed when its
 * {@code </｜DSML｜invoke>\n} is read. Anything that does not parse is not dropped: a {@link Malformed} event is
 * reported, the unparsed text (from the start of the block, or of the first uncommitted call) comes back as content,
 * so does everything after it, and the result is flagged {@link ParsedCompletion#malformed}. A {@code ｜DSML｜}
 * token outside a block is kept as content and flagged too. The block may start anywhere in the answer; the
 * {@code \n\n} before it, if present, is not content.
 *
 * <p>Not thread-safe: one parser per turn.
 */
public final class CompletionParser {
    private static final String EOS = ChatEncoding.EOS;
    private static final String THINK_END = ChatEncoding.THINK_END;
    private static final String DSML = ChatEncoding.DSML;
    private static final String CALLS_TAG = "<" + DSML + "tool_calls";
    private static final String CALLS_END = "</" + DSML + "tool_calls>";
    private static final String INVOKE = "<" + DSML + "invoke";
    private static final String INVOKE_END = "</" + DSML + "invoke";
    private static final String PARAM = "<" + DSML + "parameter";
    private static final String PARAM_STOP = "/" + DSML + "parameter";
    private static final String SEP = ">\n";
    private static final String PARAM_NAME = " name=\"";
    private static final String STRING_TRUE = "\" string=\"true\">";
    private static final String STRING_FALSE = "\" string=\"false\">";
    /** The official {@code ^\s*name="(.*?)">\n$} (Python's {@code $} also matches before a final newline). */
    private static final Pattern INVOKE_HEADER = Pattern.compile("^\\s*name=\"(.*?)\">\n$",
            Pattern.DOTALL | Pattern.UNIX_LINES | Pattern.UNICODE_CHARACTER_CLASS);
    private static final String UNTERMINATED = "the tool_calls block is not terminated";

    private enum State {
        REASONING, CONTENT,
        OPEN_SEP, SELECT, INVOKE_HEADER, PARAM_HEADER, PARAM_VALUE, PARAM_SEP, PARAM_SELECT, INVOKE_SEP,
        AFTER_BLOCK, MALFORMED_TAIL
    }

    private final Consumer<CompletionEvent> sink;
    private final StringBuilder buf = new StringBuilder(); // text fed and not yet consumed
    private final StringBuilder reasoning = new StringBuilder();
    private final StringBuilder content = new StringBuilder();
    private final List<ToolCall> calls = new ArrayList<>();
    private final StringBuilder raw = new StringBuilder(); // consumed text of the block not yet committed
    private State state;
    private boolean ended;
    private boolean finished;
    private boolean malformed;

    // the call being read
    private String callName;
    private final StringBuilder args = new StringBuilder();
    private final Set<String> paramNames = new HashSet<>();
    private String paramName;
    private boolean paramIsString;
    private final StringBuilder paramValue = new StringBuilder();

    /** A parser whose events are not needed (only {@link #finish}'s result). */
    public CompletionParser(ThinkingMode mode) {
        this(mode, e -> {});
    }

    /** A parser for output that follows a prompt rendered in {@code mode}, reporting events to {@code sink}. */
    public CompletionParser(ThinkingMode mode, Consumer<CompletionEvent> sink) {
        this.sink = sink;
        this.state = mode.thinking() ? State.REASONING : State.CONTENT;
    }

    /** Parses a whole completion. */
    public static ParsedCompletion parse(String text, ThinkingMode mode) {
        CompletionParser p = new CompletionParser(mode);
        p.feed(text);
        return p.finish();
    }

    /** Takes the next piece of output; reports what it decides. Text after EOS is ignored. */
    public void feed(CharSequence text) {
        if (finished) {
            throw new IllegalStateException("the parser is finished");
        }
        if (ended || text.isEmpty()) {
            return;
        }
        buf.append(text);
        int eos = buf.indexOf(EOS);
        if (eos >= 0) {
            buf.setLength(eos);
            ended = true;
        }
        advance();
    }

    /** True once {@code <｜end▁of▁sentence｜>} was read: the turn is over. */
    public boolean ended() {
        return ended;
    }

    /** Ends the turn: reports what was held back and returns the assistant turn. Idempotent. */
    public ParsedCompletion finish() {
        if (!finished) {
            ended = true;
            advance();
            finished = true;
        }
        return new ParsedCompletion(reasoning.toString(), content.toString(), calls, malformed);
    }

    private void advance() {
        // Only text that cannot be the start of EOS is visible to the states.
        while (step(ended ? buf.length() : buf.length() - partial(buf.length(), EOS))) {
            // each step consumed text or changed state
        }
    }

    /** One move on buf[0, v); true if it should be called again. */
    private boolean step(int v) {
        switch (state) {
            case REASONING -> {
                int p = find(THINK_END, 0, v);
                if (p >= 0) {
                    reasoningDelta(take(p));
                    take(THINK_END.length());
                    state = State.CONTENT;
                    return true;
                }
                reasoningDelta(take(ended ? v : v - holdback(v, THINK_END)));
                return false;
            }
            case CONTENT -> {
                int p = find(CALLS_TAG, 0, v);
                int q = find(DSML, 0, v);
                if (q >= 0 && (p < 0 || q < p + 1)) {
                    if (!ended && q > 0 && CALLS_TAG.startsWith(buf.substring(q - 1, v))) {
                        // "<｜DSML｜tool_ca...": the opening tag may still come
                        contentDelta(take(q - 1 - holdback(q - 1, "\n\n" + CALLS_TAG)));
                        return false;
                    }
                    contentDelta(take(q));
                    malformed("a ｜DSML｜ token outside a tool_calls block", -1);
                    contentDelta(take(DSML.length()));
                    return true;
                }
                if (p >= 0) {
                    String before = take(p);
                    raw.setLength(0);
                    if (before.endsWith("\n\n")) {
                        contentDelta(before.substring(0, before.length() - 2));
                        raw.append("\n\n");
                    } else {
                        contentDelta(before);
                    }
                    raw.append(take(CALLS_TAG.length()));
                    state = State.OPEN_SEP;
                    return true;
                }
                contentDelta(take(ended ? v : v - holdback(v, "\n\n" + CALLS_TAG, CALLS_TAG, DSML)));
                return false;
            }
            case OPEN_SEP -> {
                int k = expect(v, "'>\\n' after <｜DSML｜tool_calls", SEP);
                if (k == 0) {
                    state = State.SELECT;
                }
                return k != -1;
            }
            case SELECT -> {
                int k = expect(v, "an invoke or the end of the tool_calls block", INVOKE, CALLS_END);
                if (k == 0) {
                    state = State.INVOKE_HEADER;
                } else if (k == 1) {
                    raw.setLength(0);
                    state = State.AFTER_BLOCK;
                }
                return k != -1;
            }
            case INVOKE_HEADER -> {
                int s = first(find(PARAM, 0, v), find(INVOKE_END, 0, v));
                if (s < 0) {
                    return ended && error(UNTERMINATED);
                }
                String header = take(s);
                raw.append(header);
                Matcher m = INVOKE_HEADER.matcher(header);
                if (!m.find()) {
                    return error("malformed invoke tag: " + abbreviate(header));
                }
                callName = m.group(1);
                args.setLength(0);
                paramNames.clear();
                sink.accept(new ToolCallStart(calls.size(), callName));
                if (startsWith(PARAM)) {
                    raw.append(take(PARAM.length()));
                    state = State.PARAM_HEADER;
                } else {
                    raw.append(take(INVOKE_END.length()));
                    argsDelta("{}");
                    state = State.INVOKE_SEP;
                }
                return true;
            }
            case PARAM_HEADER -> {
                int n = Math.min(v, PARAM_NAME.length());
                if (!PARAM_NAME.regionMatches(0, buf.substring(0, n), 0, n)) {
                    return error("malformed parameter tag in call '" + callName + "'");
                }
                int stop = find(PARAM_STOP, 0, v);
                int t = find(STRING_TRUE, PARAM_NAME.length(), v);
                int f = find(STRING_FALSE, PARAM_NAME.length(), v);
                int h = first(t, f);
                if (h >= 0 && (stop < 0 || h < stop)) {
                    String name = buf.substring(PARAM_NAME.length(), h);
                    if (!paramNames.add(name)) {
                        return error("duplicate parameter '" + name + "' in call '" + callName + "'");
                    }
                    paramName = name;
                    paramIsString = h == t;
                    paramValue.setLength(0);
                    raw.append(take(h + (paramIsString ? STRING_TRUE : STRING_FALSE).length()));
                    argsDelta((paramNames.size() == 1 ? "{" : ", ") + PythonJson.quote(name) + ": "
                            + (paramIsString ? "\"" : ""));
                    state = State.PARAM_VALUE;
                    return true;
                }
                if (stop >= 0) {
                    return error("malformed parameter tag in call '" + callName + "'");
                }
                return ended && error(UNTERMINATED);
            }
            case PARAM_VALUE -> {
                int stop = find(PARAM_STOP, 0, v);
                if (stop >= 0) {
                    String tail = take(stop);
                    raw.append(tail);
                    String region = paramValue + tail;
                    String value;
                    if (region.endsWith("<")) {
                        value = region.substring(0, region.length() - 1);
                    } else if (region.endsWith("<\n")) {
                        value = region.substring(0, region.length() - 2);
                    } else {
                        if (paramIsString) {
                            argsDelta(escape(tail));
                        }
                        return error("parameter '" + paramName + "' of call '" + callName
                                + "' is not closed by </｜DSML｜parameter>");
                    }
                    raw.append(take(PARAM_STOP.length()));
                    String fresh = value.substring(paramValue.length());
                    if (paramIsString) {
                        argsDelta(escape(fresh) + "\"");
                    } else {
                        JsonNode node;
                        try {
                            node = PythonJson.loads(value);
                        } catch (IllegalArgumentException e) {
                            return error("parameter '" + paramName + "' of call '" + callName
                                    + "' has string=\"false\" but its value is not JSON");
                        }
                        argsDelta(PythonJson.dumps(node));
                    }
                    state = State.PARAM_SEP;
                    return true;
                }
                int n = ended ? v : v - holdback(v, "<\n" + PARAM_STOP, "<" + PARAM_STOP, PARAM_STOP);
                if (n > 0) {
                    String s = take(n);
                    raw.append(s);
                    paramValue.append(s);
                    if (paramIsString) {
                        argsDelta(escape(s));
                    }
                }
                return ended && error(UNTERMINATED);
            }
            case PARAM_SEP -> {
                int k = expect(v, "'>\\n' after </｜DSML｜parameter", SEP);
                if (k == 0) {
                    state = State.PARAM_SELECT;
                }
                return k != -1;
            }
            case PARAM_SELECT -> {
                int k = expect(v, "a parameter or the end of the invoke", PARAM, INVOKE_END);
                if (k == 0) {
                    state = State.PARAM_HEADER;
                } else if (k == 1) {
                    argsDelta("}");
                    state = State.INVOKE_SEP;
                }
                return k != -1;
            }
            case INVOKE_SEP -> {
                int k = expect(v, "'>\\n' after </｜DSML｜invoke", SEP);
                if (k == 0) {
                    ToolCall call = new ToolCall(null, callName, args.toString());
                    int index = calls.size();
                    calls.add(call);
                    raw.setLength(0);
                    sink.accept(new ToolCallEnd(index, call));
                    state = State.SELECT;
                }
                return k != -1;
            }
            case AFTER_BLOCK -> {
                if (v == 0) {
                    return false;
                }
                malformed("text after the tool_calls block", -1);
                state = State.MALFORMED_TAIL;
                return true;
            }
            case MALFORMED_TAIL -> {
                contentDelta(take(v));
                return false;
            }
        }
        throw new AssertionError(state);
    }

    /**
     * Reads exactly one of {@code options} at the start of buf[0, v) into the raw block text: its index, -1 if more
     * text is needed, -2 if the text cannot become any of them (then the block is malformed).
     */
    private int expect(int v, String what, String... options) {
        for (int i = 0; i < options.length; i++) {
            if (v >= options[i].length() && startsWith(options[i])) {
                raw.append(take(options[i].length()));
                return i;
            }
        }
        String seen = buf.substring(0, v);
        for (String o : options) {
            if (o.startsWith(seen)) {
                if (!ended) {
                    return -1;
                }
                error(UNTERMINATED);
                return -2;
            }
        }
        error("expected " + what);
        return -2;
    }

    private boolean error(String reason) {
        int abandoned = switch (state) {
            case PARAM_HEADER, PARAM_VALUE, PARAM_SEP, PARAM_SELECT, INVOKE_SEP -> calls.size();
            default -> -1;
        };
        malformed(reason, abandoned);
        contentDelta(raw.toString());
        raw.setLength(0);
        state = State.MALFORMED_TAIL;
        return true;
    }

    private void malformed(String reason, int abandonedCall) {
        malformed = true;
        sink.accept(new Malformed(reason, abandonedCall));
    }

    private void reasoningDelta(String s) {
        if (!s.isEmpty()) {
            reasoning.append(s);
            sink.accept(new ReasoningDelta(s));
        }
    }

    private void contentDelta(String s) {
        if (!s.isEmpty()) {
            content.append(s);
            sink.accept(new ContentDelta(s));
        }
    }

    private void argsDelta(String s) {
        if (!s.isEmpty()) {
            args.append(s);
            sink.accept(new ToolCallArgumentsDelta(calls.size(), s));
        }
    }

    private static String escape(String s) {
        StringBuilder sb = new StringBuilder(s.length() + 8);
        PythonJson.escape(sb, s);
        return sb.toString();
    }

    private static String abbreviate(String s) {
        String q = PythonJson.quote(s);
        return q.length() <= 80 ? q : q.substring(0, 77) + "...";
    }

    /** Removes and returns the first n characters of buf. */
    private String take(int n) {
        String s = buf.substring(0, n);
        buf.delete(0, n);
        return s;
    }

    private boolean startsWith(String s) {
        return buf.length() >= s.length() && buf.substring(0, s.length()).equals(s);
    }

    /** The first occurrence of marker at or after from that lies wholly in buf[0, v), or -1. */
    private int find(String marker, int from, int v) {
        int p = buf.indexOf(marker, from);
        return p >= 0 && p + marker.length() <= v ? p : -1;
    }

    /** How many characters at the end of buf[0, end) could be the start of one of the markers. */
    private int holdback(int end, String... markers) {
        int k = 0;
        for (String m : markers) {
            k = Math.max(k, partial(end, m));
        }
        return k;
    }

    /** The length of the longest suffix of buf[0, end) that is a proper prefix of marker. */
    private int partial(int end, String marker) {
        for (int k = Math.min(marker.length() - 1, end); k > 0; k--) {
            boolean match = true;
            for (int i = 0; i < k; i++) {
                if (buf.charAt(end - k + i) != marker.charAt(i)) {
                    match = false;
                    break;
                }
            }
            if (match) {
                return k;
            }
        }
        return 0;
    }

    private static int first(int a, int b) {
        if (a < 0) {
            return b;
        }
        return b < 0 ? a : Math.min(a, b);
    }
}
