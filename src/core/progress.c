#include "core/progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/threads.h"

void progress_start(Progress *p, const char *label, long total, int quiet) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->t0 = now_seconds();
    p->tty = isatty(2);
    p->quiet = quiet;
}

void progress_update(Progress *p, long done, double per_item, const char *rate_unit, const char *status) {
    if (p->quiet) return;
    double now = now_seconds(), el = now - p->t0;
    if (done < p->total && now - p->last < (p->tty ? 0.25 : 10.0)) return;
    p->last = now;
    double frac = p->total > 0 ? (double)done / p->total : 1.0, rate = el > 0 ? done * per_item / el : 0;
    double eta = done > 0 ? el * (p->total - done) / done : 0;
    char bar[21];
    int fill = (int)(frac * 20);
    for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
    bar[20] = 0;
    fprintf(stderr, "%s%s [%s] %ld/%ld %.1f %s/s ETA %d:%02d %s%s", p->tty ? "\r\033[K" : "", p->label, bar, done,
            p->total, rate, rate_unit, (int)(eta / 60), (int)eta % 60, status ? status : "", p->tty ? "" : "\n");
    fflush(stderr);
}

void progress_end(Progress *p) {
    if (!p->quiet && p->tty) fputc('\n', stderr);
}
