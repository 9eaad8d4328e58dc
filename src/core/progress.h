/* A progress line on stderr for anything longer than a few seconds: a bar,
 * count, rate, ETA and a caller-supplied status. Redrawn in place on a
 * terminal, printed as plain lines (at most every 10 s) elsewhere. */
#ifndef FORGET_PROGRESS_H
#define FORGET_PROGRESS_H

typedef struct {
    const char *label;
    long total;
    double t0, last;
    int tty, quiet;
} Progress;

void progress_start(Progress *p, const char *label, long total, int quiet);
/* done items of total; rate_unit names what per second is counted (rate = items_per_unit * done / s). */
void progress_update(Progress *p, long done, double per_item, const char *rate_unit, const char *status);
void progress_end(Progress *p);

#endif
