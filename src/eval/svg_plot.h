/* Small SVG line charts for HTML reports: several series of (x, y) points with optional error
 * bars, linear or log2 x axis, a legend. No scripts, no external files: the report opens
 * anywhere. */
#ifndef FORGET_SVG_PLOT_H
#define FORGET_SVG_PLOT_H

typedef struct {
    const char *name;
    int n;
    const double *x, *y, *err; /* err may be NULL */
    int band;                  /* 1: err drawn as a shaded band around the line (a spread), not as bars */
    int colour;                /* 1..8: that palette colour (a series drawn alike another); 0: by position */
    int ring;                  /* 1: points as large open rings (a reference point beside a line) */
} PlotSeries;

typedef struct {
    const char *title, *xlabel, *ylabel;
    int log2_x;
    double ymin, ymax; /* ymin == ymax: from the data */
} PlotAxes;

/* A malloc'd <svg> element. */
char *svg_line_chart(const PlotAxes *a, const PlotSeries *s, int n_series);

/* A scatter plot of n points xy [n, 2] coloured by group (a legend of the group names), no
 * axes (for embeddings such as t-SNE maps). A malloc'd <svg> element. */
char *svg_scatter(const char *title, const float *xy, const int *group, int n, const char *const *group_names,
                  int n_groups);

#endif
