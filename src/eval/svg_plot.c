#include "eval/svg_plot.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

typedef struct {
    char *s;
    size_t len, cap;
} Str;

static void put(Str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Str *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
        b->s = xrealloc(b->s, b->cap);
    }
}

/* Colour-blind-safe palette (Okabe-Ito). */
static const char *COLOURS[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"};

char *svg_line_chart(const PlotAxes *a, const PlotSeries *s, int n_series) {
    const double W = 640, H = 400, L = 60, R = 170, T = 36, B = 52;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < n_series; k++)
        for (int i = 0; i < s[k].n; i++) {
            double x = a->log2_x ? log2(s[k].x[i]) : s[k].x[i], e = s[k].err ? s[k].err[i] : 0;
            x0 = fmin(x0, x), x1 = fmax(x1, x);
            y0 = fmin(y0, s[k].y[i] - e), y1 = fmax(y1, s[k].y[i] + e);
        }
    if (a->ymin != a->ymax) y0 = a->ymin, y1 = a->ymax;
    if (!isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    if (x1 == x0) x0 -= 1, x1 += 1;
    if (y1 == y0) y0 -= 0.05, y1 += 0.05;
    const double pw = W - L - R, ph = H - T - B;
#define PX(x) (L + ((a->log2_x ? log2(x) : (x)) - x0) / (x1 - x0) * pw)
#define PY(y) (T + ph - ((y) - y0) / (y1 - y0) * ph)
    Str b = {0};
    put(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    put(&b, "<text x=\"%g\" y=\"20\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", L, a->title);
    put(&b, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#888\"/>\n", L, T, pw, ph);
    for (int t = 0; t <= 5; t++) { /* y grid */
        double y = y0 + (y1 - y0) * t / 5;
        put(&b, "<line x1=\"%g\" x2=\"%g\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", L, L + pw, PY(y), PY(y));
        put(&b, "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", L - 6, PY(y) + 4, y);
    }
    if (a->log2_x) {
        for (int p = (int)ceil(x0); p <= (int)floor(x1); p++)
            put(&b, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%g</text>\n", L + (p - x0) / (x1 - x0) * pw, T + ph + 16, pow(2, p));
    } else if (x1 - x0 <= 12 && x0 == floor(x0) && x1 == floor(x1)) { /* a small integer axis (tasks): every integer */
        for (double x = x0; x <= x1; x += 1)
            put(&b, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%g</text>\n", L + (x - x0) / (x1 - x0) * pw, T + ph + 16, x);
    } else {
        for (int t = 0; t <= 5; t++) {
            double x = x0 + (x1 - x0) * t / 5;
            put(&b, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%.4g</text>\n", L + pw * t / 5, T + ph + 16, x);
        }
    }
    put(&b, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%s</text>\n", L + pw / 2, H - 12, a->xlabel);
    put(&b, "<text transform=\"translate(14,%g) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", T + ph / 2, a->ylabel);
    for (int k = 0; k < n_series; k++) {
        const char *col = COLOURS[(s[k].colour > 0 ? s[k].colour - 1 : k) % 8];
        if (s[k].err && s[k].band && s[k].n > 0) { /* y + err along the line, then y - err back */
            put(&b, "<polygon fill=\"%s\" fill-opacity=\"0.18\" stroke=\"none\" points=\"", col);
            for (int i = 0; i < s[k].n; i++) put(&b, "%.1f,%.1f ", PX(s[k].x[i]), PY(fmin(y1, s[k].y[i] + s[k].err[i])));
            for (int i = s[k].n - 1; i >= 0; i--) put(&b, "%.1f,%.1f ", PX(s[k].x[i]), PY(fmax(y0, s[k].y[i] - s[k].err[i])));
            put(&b, "\"/>\n");
        }
        put(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (int i = 0; i < s[k].n; i++) put(&b, "%.1f,%.1f ", PX(s[k].x[i]), PY(s[k].y[i]));
        put(&b, "\"/>\n");
        for (int i = 0; i < s[k].n; i++) {
            if (s[k].ring)
                put(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"><title>%s: (%g, %.4f)</title></circle>",
                    PX(s[k].x[i]), PY(s[k].y[i]), col, s[k].name, s[k].x[i], s[k].y[i]);
            else
                put(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>%s: (%g, %.4f)</title></circle>", PX(s[k].x[i]),
                    PY(s[k].y[i]), col, s[k].name, s[k].x[i], s[k].y[i]);
            if (s[k].err && !s[k].band && s[k].err[i] > 0)
                put(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>", PX(s[k].x[i]), PX(s[k].x[i]),
                    PY(s[k].y[i] - s[k].err[i]), PY(s[k].y[i] + s[k].err[i]), col);
        }
        put(&b, "\n<rect x=\"%g\" y=\"%g\" width=\"12\" height=\"3\" fill=\"%s\"/><text x=\"%g\" y=\"%g\">%s</text>\n", W - R + 14,
            T + 8 + 18.0 * k, col, W - R + 32, T + 13 + 18.0 * k, s[k].name);
    }
    put(&b, "</svg>\n");
#undef PX
#undef PY
    return b.s;
}

char *svg_scatter(const char *title, const float *xy, const int *group, int n, const char *const *group_names,
                  int n_groups) {
    const double W = 460, H = 420, L = 16, R = 120, T = 36, B = 16;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        x0 = fmin(x0, xy[2 * i]), x1 = fmax(x1, xy[2 * i]);
        y0 = fmin(y0, xy[2 * i + 1]), y1 = fmax(y1, xy[2 * i + 1]);
    }
    if (!(x1 > x0)) x0 = -1, x1 = 1;
    if (!(y1 > y0)) y0 = -1, y1 = 1;
    const double pw = W - L - R, ph = H - T - B;
    Str b = {0};
    put(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    put(&b, "<text x=\"%g\" y=\"20\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", L, title);
    put(&b, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#888\"/>\n", L, T, pw, ph);
    for (int i = 0; i < n; i++) /* no axes: t-SNE coordinates carry no units */
        put(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\" fill=\"%s\" fill-opacity=\"0.7\"/>", L + (xy[2 * i] - x0) / (x1 - x0) * pw,
            T + ph - (xy[2 * i + 1] - y0) / (y1 - y0) * ph, COLOURS[group[i] % 8]);
    put(&b, "\n");
    for (int k = 0; k < n_groups; k++)
        put(&b, "<circle cx=\"%g\" cy=\"%g\" r=\"5\" fill=\"%s\"/><text x=\"%g\" y=\"%g\">%s</text>\n", W - R + 16,
            T + 10 + 18.0 * k, COLOURS[k % 8], W - R + 26, T + 14 + 18.0 * k, group_names[k]);
    put(&b, "</svg>\n");
    return b.s;
}
