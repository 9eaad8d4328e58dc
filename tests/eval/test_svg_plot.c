/* The SVG line chart: one polyline per series with its points, error bars by default, and with
 * band set a shaded polygon through y + err forward and y - err back instead of bars. */
#include <stdlib.h>
#include <string.h>

#include "eval/svg_plot.h"
#include "test.h"

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p++) n++;
    return n;
}

TEST(svg_line_chart_bars_and_bands) {
    const double x[3] = {0, 1, 2}, y[3] = {50, 60, 70}, e[3] = {5, 0, 10};
    PlotSeries bars = {"a", 3, x, y, e, 0, 0, 0}, band = {"b", 3, x, y, e, 1, 0, 0};
    const PlotAxes ax = {"t", "x", "y", 0, 0, 100};
    char *s = svg_line_chart(&ax, &bars, 1);
    CHECK_INT(count(s, "<polyline"), 1);
    CHECK_INT(count(s, "<polygon"), 0);
    CHECK_INT(count(s, "<circle"), 3);
    free(s);
    s = svg_line_chart(&ax, &band, 1);
    CHECK_INT(count(s, "<polygon"), 1);
    CHECK(strstr(s, "fill-opacity") != NULL);
    /* y range 0..100 over 312 px: the band's first vertex is y + err = 55 at x = 0, its last y - err = 45 */
    const char *pts = strstr(strstr(s, "<polygon"), "points=\"") + 8;
    double px, py;
    CHECK(sscanf(pts, "%lf,%lf", &px, &py) == 2);
    CHECK_NEAR(py, 36 + 312 - 0.55 * 312, 0.11);
    free(s);
    /* a reference point drawn as a ring in another series' colour (the first palette colour) */
    PlotSeries two[2] = {bars, {.name = "ref", .n = 1, .x = x, .y = y, .colour = 1, .ring = 1}};
    s = svg_line_chart(&ax, two, 2);
    CHECK_INT(count(s, "r=\"6\" fill=\"none\" stroke=\"#0072B2\""), 1);
    free(s);
}
