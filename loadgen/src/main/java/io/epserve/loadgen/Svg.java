package io.epserve.loadgen;

import static io.epserve.loadgen.Html.esc;
import static io.epserve.loadgen.Html.fmt;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Inline SVG for the HTML reports: x/y charts of lines and bars drawn here, well-formed XML, no scripts or fonts. */
final class Svg {
    // matplotlib's tab10: distinct for ten series, and the first six are the ones the reports always used
    static final String[] COLOURS = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
        "#7f7f7f", "#bcbd22", "#17becf"};

    private Svg() {
    }

    /** SVG coordinate: one decimal, 0 for anything not finite. */
    static String px(double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%.1f", v) : "0";
    }

    static void svgOpen(StringBuilder b, int w, int h, String title) {
        b.append("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 ").append(w).append(' ').append(h)
                .append("\" width=\"").append(w).append("\" height=\"").append(h)
                .append("\" role=\"img\" font-family=\"system-ui,sans-serif\" font-size=\"11\">\n<title>")
                .append(esc(title)).append("</title>\n<text x=\"").append(w / 2).append("\" y=\"18\" text-anchor=")
                .append("\"middle\" font-size=\"13\" font-weight=\"600\">").append(esc(title)).append("</text>\n");
    }

    static void text(StringBuilder b, double x, double y, String anchor, String s, String extra) {
        b.append("<text x=\"").append(px(x)).append("\" y=\"").append(px(y)).append("\" text-anchor=\"")
                .append(anchor).append('"').append(extra).append('>').append(esc(s)).append("</text>\n");
    }

    record Series(String name, double[] xs, double[] ys, boolean bars, boolean marks, String[] pointLabels) {
        Series(String name, double[] xs, double[] ys, boolean bars, boolean marks) {
            this(name, xs, ys, bars, marks, null);
        }

        Series labels(String[] l) {
            return new Series(name, xs, ys, bars, marks, l);
        }

        boolean ok(int i) {
            return i < xs.length && i < ys.length && Double.isFinite(xs[i]) && Double.isFinite(ys[i]);
        }
    }

    /** An x/y chart of lines (optionally with marked, labelled points) and grouped bars. */
    static final class Chart {
        private static final int W = 520, H = 300, L = 64, B = 44;
        private final String title, xLabel, yLabel;
        private final List<Series> series = new ArrayList<>();
        private double yLo = Double.NaN, yHi = Double.NaN;
        private boolean integerX;
        private String[] categories;
        private String pointName = "";

        Chart(String title, String xLabel, String yLabel) {
            this.title = title;
            this.xLabel = xLabel;
            this.yLabel = yLabel;
        }

        Chart add(Series s) {
            series.add(s);
            return this;
        }

        Chart yFixed(double lo, double hi) {
            yLo = lo;
            yHi = hi;
            return this;
        }

        Chart pointName(String name) {
            pointName = name;
            return this;
        }

        Chart integerX() {
            integerX = true;
            return this;
        }

        /** A categorical x axis: x = i is drawn and named as {@code names[i]} (for bars per load point). */
        Chart xCategories(String[] names) {
            categories = names.clone();
            integerX = true;
            return this;
        }

        private String xName(double x) {
            long i = Math.round(x);
            return categories != null && x == i && i >= 0 && i < categories.length ? categories[(int) i] : fmt(x);
        }

        /** The SVG, or "" when no series has a finite point. */
        String svg() {
            List<Series> live = series.stream().filter(s -> {
                for (int i = 0; i < s.xs.length; i++) if (s.ok(i)) return true;
                return false;
            }).toList();
            if (live.isEmpty()) return "";
            double x0 = Double.POSITIVE_INFINITY, x1 = Double.NEGATIVE_INFINITY, y0 = 0, y1 = Double.NEGATIVE_INFINITY;
            double spacing = Double.POSITIVE_INFINITY;
            List<Double> barXs = new ArrayList<>();
            for (Series s : live)
                for (int i = 0; i < s.xs.length; i++) {
                    if (!s.ok(i)) continue;
                    x0 = Math.min(x0, s.xs[i]);
                    x1 = Math.max(x1, s.xs[i]);
                    y0 = Math.min(y0, s.ys[i]);
                    y1 = Math.max(y1, s.ys[i]);
                    if (s.bars) barXs.add(s.xs[i]);
                }
            int nBars = (int) live.stream().filter(Series::bars).count();
            if (nBars > 0) {
                List<Double> sorted = barXs.stream().sorted().distinct().toList();
                for (int i = 1; i < sorted.size(); i++) spacing = Math.min(spacing, sorted.get(i) - sorted.get(i - 1));
                if (!Double.isFinite(spacing)) spacing = 1;
                x0 -= spacing / 2;
                x1 += spacing / 2;
            }
            boolean marked = live.stream().anyMatch(Series::marks), tight = nBars > 0 || marked;
            if (marked) { // room for the points and their labels
                double d = x1 > x0 ? (x1 - x0) * 0.06 : Math.max(Math.abs(x0) * 0.1, 1);
                x0 -= d;
                x1 += d;
            }
            if (!Double.isNaN(yLo)) {
                y0 = yLo;
                y1 = yHi;
            } else {
                y1 += (y1 - y0) * 0.06;
            }
            double[] xt = categories != null ? categoryTicks(x0, x1) : ticks(x0, x1, 6, integerX);
            double[] yt = ticks(y0, y1, 5, false);
            double ax0 = tight ? x0 : xt[0], ax1 = tight ? x1 : xt[xt.length - 1];
            double ay0 = yt[0], ay1 = yt[yt.length - 1];
            boolean legend = live.size() > 1;
            // legend entries flow left to right and wrap, so many or long labels push the plot down, not off the edge
            List<double[]> at = new ArrayList<>();
            double lx = L, ly = 28;
            for (int k = 0; legend && k < live.size(); k++) {
                double w = 30 + 6.5 * live.get(k).name.length();
                if (lx > L && lx + w > W - 8) {
                    lx = L;
                    ly += 15;
                }
                at.add(new double[] {lx, ly});
                lx += w;
            }
            int T = legend ? (int) ly + 18 : 30, pw = W - L - 28, ph = H - T - B;
            StringBuilder b = new StringBuilder(4096);
            svgOpen(b, W, H, title);
            java.util.function.DoubleUnaryOperator fx = x -> L + (x - ax0) / (ax1 - ax0) * pw;
            java.util.function.DoubleUnaryOperator fy = y -> T + ph - (y - ay0) / (ay1 - ay0) * ph;
            b.append("<g stroke=\"#e5e5e5\" stroke-width=\"1\">\n");
            for (double y : yt) line(b, L, fy.applyAsDouble(y), L + pw, fy.applyAsDouble(y));
            for (double x : xt) if (x >= ax0 && x <= ax1) line(b, fx.applyAsDouble(x), T, fx.applyAsDouble(x), T + ph);
            b.append("</g>\n<g stroke=\"#444\" stroke-width=\"1\">\n");
            line(b, L, T + ph, L + pw, T + ph);
            line(b, L, T, L, T + ph);
            b.append("</g>\n");
            int yd = decimals(yt), xd = decimals(xt);
            for (double y : yt) text(b, L - 6, fy.applyAsDouble(y) + 4, "end", tick(y, yd), "");
            for (double x : xt)
                if (x >= ax0 && x <= ax1) text(b, fx.applyAsDouble(x), T + ph + 15, "middle",
                        categories != null ? xName(x) : tick(x, xd), "");
            text(b, L + pw / 2.0, H - 8, "middle", xLabel, "");
            text(b, 14, T + ph / 2.0, "middle", yLabel, " transform=\"rotate(-90 14 " + px(T + ph / 2.0) + ")\"");
            int bar = 0;
            for (int k = 0; k < live.size(); k++) {
                Series s = live.get(k);
                String col = COLOURS[series.indexOf(s) % COLOURS.length];
                if (s.bars) {
                    double full = spacing / (ax1 - ax0) * pw * 0.85, w = full / nBars;
                    b.append("<g fill=\"").append(col).append("\">\n");
                    for (int i = 0; i < s.xs.length; i++) {
                        if (!s.ok(i)) continue;
                        double x = fx.applyAsDouble(s.xs[i]) - full / 2 + bar * w;
                        double ya = fy.applyAsDouble(Math.max(0, ay0)), yb = fy.applyAsDouble(s.ys[i]);
                        b.append("<rect x=\"").append(px(x)).append("\" y=\"").append(px(Math.min(ya, yb)))
                                .append("\" width=\"").append(px(Math.max(w, 0.5))).append("\" height=\"")
                                .append(px(Math.abs(ya - yb))).append("\"><title>").append(esc(s.name + ": "
                                        + xName(s.xs[i]) + " \u2192 " + fmt(s.ys[i]))).append("</title></rect>\n");
                    }
                    b.append("</g>\n");
                    bar++;
                    continue;
                }
                b.append("<polyline fill=\"none\" stroke=\"").append(col).append("\" stroke-width=\"1.8\" points=\"");
                for (int i = 0; i < s.xs.length; i++)
                    if (s.ok(i)) b.append(px(fx.applyAsDouble(s.xs[i]))).append(',')
                            .append(px(fy.applyAsDouble(s.ys[i]))).append(' ');
                b.append("\"/>\n");
                if (!s.marks) continue;
                for (int i = 0; i < s.xs.length; i++) {
                    if (!s.ok(i)) continue;
                    double x = fx.applyAsDouble(s.xs[i]), y = fy.applyAsDouble(s.ys[i]);
                    String lab = s.pointLabels != null && i < s.pointLabels.length ? s.pointLabels[i] : null;
                    b.append("<circle cx=\"").append(px(x)).append("\" cy=\"").append(px(y)).append("\" r=\"3.5\" ")
                            .append("fill=\"").append(col).append("\"><title>").append(esc((lab == null ? "" : pointName
                                    + "=" + lab + ": ") + s.name + " " + fmt(s.ys[i]) + " at " + fmt(s.xs[i])))
                            .append("</title></circle>\n");
                    boolean right = x > L + pw * 0.85;
                    if (lab != null) text(b, right ? x - 6 : x + 6, y - 6, right ? "end" : "start", lab,
                            " fill=\"" + col + "\" font-size=\"10\"");
                }
            }
            for (int k = 0; k < at.size(); k++) {
                String col = COLOURS[series.indexOf(live.get(k)) % COLOURS.length];
                double[] p = at.get(k);
                b.append("<rect x=\"").append(px(p[0])).append("\" y=\"").append(px(p[1]))
                        .append("\" width=\"12\" height=\"10\" fill=\"").append(col).append("\"/>\n");
                text(b, p[0] + 16, p[1] + 9, "start", live.get(k).name, "");
            }
            return b.append("</svg>\n").toString();
        }

        private static void line(StringBuilder b, double x1, double y1, double x2, double y2) {
            b.append("<line x1=\"").append(px(x1)).append("\" y1=\"").append(px(y1)).append("\" x2=\"")
                    .append(px(x2)).append("\" y2=\"").append(px(y2)).append("\"/>\n");
        }
    }

    /** One tick per whole x in [lo, hi]: every category is named, whatever the spacing. */
    private static double[] categoryTicks(double lo, double hi) {
        long a = (long) Math.ceil(lo), e = (long) Math.floor(hi);
        if (!Double.isFinite(lo) || !Double.isFinite(hi) || e < a || e - a > 1000) return new double[] {lo, hi};
        double[] t = new double[(int) (e - a + 1)];
        for (int i = 0; i < t.length; i++) t[i] = a + i;
        return t;
    }

    /** Round tick values covering [lo, hi], about n of them. */
    static double[] ticks(double lo, double hi, int n, boolean integer) {
        if (!Double.isFinite(lo) || !Double.isFinite(hi)) return new double[] {0, 1};
        if (hi <= lo) {
            double d = lo == 0 ? 1 : Math.abs(lo) * 0.1;
            hi = lo + d;
            if (lo != 0) lo -= d;
        }
        double raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / mag;
        double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
        if (integer) step = Math.max(1, step);
        double s = Math.floor(lo / step) * step, e = Math.ceil(hi / step) * step;
        long count = Math.round((e - s) / step);
        if (!Double.isFinite(step) || step <= 0 || count < 1 || count > 100) return new double[] {lo, hi};
        double[] t = new double[(int) count + 1];
        for (int i = 0; i <= count; i++) t[i] = Math.abs(s + i * step) < step * 1e-9 ? 0 : s + i * step;
        return t;
    }

    static int decimals(double[] ticks) {
        double step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
        return step >= 1 || step <= 0 ? 0 : (int) Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
    }

    static String tick(double v, int decimals) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%,." + decimals + "f", v) : "";
    }
}
