/* The PULSE experiment's summary, results.md and report.html, all from DIR/results.json. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/report_html.h"
#include "eval/svg_plot.h"
#include "forget/llm/pulse.h"
#include "forget/llm/unlearn.h"
#include "forget/resume.h"
#include "io/atomic_file.h"
#include "io/json_file.h"

/* runs[i].part.task.field, NAN when absent. */
static double get(const cJSON *r, const char *part, const char *task, const char *field) {
    const cJSON *p = cJSON_GetObjectItem(r, part), *t = p ? cJSON_GetObjectItem(p, task) : NULL;
    return t ? resume_num(t, field) : NAN;
}

enum { F_FIMG, F_FTXT, F_TEST, F_FROUGE, F_FCLOZE, F_RET, F_RROUGE, F_RCLOZE, F_GEN, F_SECS, F_PEAK, F_LR, F_EP, NF };
static const char *const FIELD[NF] = {"forget_acc_image", "forget_acc_text", "test_acc", "forget_rouge", "forget_cloze",
                                      "retain_acc", "retain_rouge", "retain_cloze", "general_acc", "seconds", "peak_mib",
                                      "lr", "epochs"};

static void fields(const cJSON *r, double v[NF]) {
    v[F_FIMG] = get(r, "forget", "choice", "acc_image"), v[F_FTXT] = get(r, "forget", "choice", "acc_text");
    v[F_TEST] = get(r, "test", "choice", "acc"), v[F_FROUGE] = get(r, "forget", "generate", "acc");
    v[F_FCLOZE] = get(r, "forget", "cloze", "acc"), v[F_RET] = get(r, "retain", "choice", "acc");
    v[F_RROUGE] = get(r, "retain", "generate", "acc"), v[F_RCLOZE] = get(r, "retain", "cloze", "acc");
    v[F_GEN] = get(r, "general", "choice", "acc"), v[F_SECS] = resume_num(r, "seconds");
    v[F_PEAK] = resume_num(r, "peak_mib"), v[F_LR] = resume_num(r, "lr"), v[F_EP] = resume_num(r, "epochs");
}

typedef struct {
    char method[24], scenario[16], knowledge[16];
    int step, n;
    double v[NF];
} Row;

static Row *rows_of(const cJSON *runs, int *n_out) {
    Row *rows = NULL;
    int n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, runs) {
        const char *m = resume_str(r, "method"), *s = resume_str(r, "scenario"), *k = resume_str(r, "knowledge");
        const double step = resume_num(r, "step");
        if (!m || !s || !k || isnan(step)) continue;
        int i = 0;
        while (i < n && !(strcmp(rows[i].method, m) == 0 && strcmp(rows[i].scenario, s) == 0 &&
                          strcmp(rows[i].knowledge, k) == 0 && rows[i].step == (int)step))
            i++;
        if (i == n) {
            rows = xrealloc(rows, sizeof(Row) * (size_t)(n + 1));
            memset(&rows[n], 0, sizeof(Row));
            snprintf(rows[n].method, sizeof rows[n].method, "%s", m);
            snprintf(rows[n].scenario, sizeof rows[n].scenario, "%s", s);
            snprintf(rows[n].knowledge, sizeof rows[n].knowledge, "%s", k);
            rows[n].step = (int)step;
            n++;
        }
        double v[NF];
        fields(r, v);
        for (int f = 0; f < NF; f++) rows[i].v[f] += isnan(v[f]) ? 0 : v[f];
        rows[i].n++;
    }
    for (int i = 0; i < n; i++)
        for (int f = 0; f < NF; f++) rows[i].v[f] /= rows[i].n;
    *n_out = n;
    return rows;
}

static const Row *row(const Row *rows, int n, const char *m, const char *s, const char *k, int step) {
    for (int i = 0; i < n; i++)
        if (strcmp(rows[i].method, m) == 0 && strcmp(rows[i].scenario, s) == 0 && strcmp(rows[i].knowledge, k) == 0 &&
            rows[i].step == step)
            return &rows[i];
    return NULL;
}

static double pct(double x) { return 100 * x; }

/* Selection seconds of a method (all seeds and knowledge kinds) and its validation outcome. */
static double select_seconds(const cJSON *sel, const char *m, const char *k, int *reached, double *val, int *n) {
    double s = 0;
    *reached = 1, *val = 0, *n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, sel) {
        const char *mm = resume_str(e, "method"), *kk = resume_str(e, "knowledge");
        if (!mm || !kk || strcmp(mm, m) || strcmp(kk, k)) continue;
        s += resume_num(e, "seconds"), *val += resume_num(e, "val_forget_acc"), (*n)++;
        if (!cJSON_IsTrue(cJSON_GetObjectItem(e, "reached_target"))) *reached = 0;
    }
    if (*n) *val /= *n;
    return s;
}

static void write_md(FILE *f, const cJSON *root, const Row *rows, int n) {
    const cJSON *sel = cJSON_GetObjectItem(root, "select");
    const char *settings = resume_str(root, "settings");
    fprintf(f, "# PULSE on the MLLM (our reconstruction of the protocol)\n\n");
    fprintf(f, "Settings: `%s`.\nAccuracies are 4-choice (chance 25 %%), means over seeds; ROUGE-L F of greedy answers; "
               "cloze exact match. Forget = trained forms of the people forgotten so far, test = their held-out forms, "
               "retain = the other people, general = the held-out general benchmark.\n\n", settings ? settings : "");
    int n_methods = 0;
    const char *methods[16];
    for (int i = 0; i < n; i++) {
        if (strcmp(rows[i].scenario, "batch")) continue;
        int seen = 0;
        for (int k = 0; k < n_methods; k++) seen |= strcmp(methods[k], rows[i].method) == 0;
        if (!seen && n_methods < 16) methods[n_methods++] = rows[i].method;
    }
    fprintf(f, "## Scenario 1: pre-trained (set A) versus fine-tuned (set B) knowledge\n\n");
    fprintf(f, "| method | knowledge | lr | epochs | val. forget | forget img | forget text | test | forget ROUGE | forget cloze "
               "| retain | Δ retain | retain ROUGE | general | Δ general | select s | run s | peak MiB |\n");
    fprintf(f, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    static const char *const KN[2] = {"pretrained", "finetuned"};
    for (int k = 0; k < 2; k++) {
        const Row *o = row(rows, n, "none", "original", KN[k], 0);
        if (o)
            fprintf(f, "| (original) | %s | | | | %.1f | %.1f | %.1f | %.3f | %.1f | %.1f | | %.3f | %.1f | | | | |\n", KN[k],
                    pct(o->v[F_FIMG]), pct(o->v[F_FTXT]), pct(o->v[F_TEST]), o->v[F_FROUGE], pct(o->v[F_FCLOZE]),
                    pct(o->v[F_RET]), o->v[F_RROUGE], pct(o->v[F_GEN]));
    }
    for (int mi = 0; mi < n_methods; mi++)
        for (int k = 0; k < 2; k++) {
            const Row *r = row(rows, n, methods[mi], "batch", KN[k], 1), *o = row(rows, n, "none", "original", KN[k], 0);
            if (!r) continue;
            int reached, ns;
            double val;
            const double ss = select_seconds(sel, methods[mi], KN[k], &reached, &val, &ns);
            fprintf(f, "| %s | %s | %g | %.1f | %.1f%s | %.1f | %.1f | %.1f | %.3f | %.1f | %.1f | %+.1f | %.3f | %.1f | %+.1f | %.0f | %.0f | %.0f |\n",
                    methods[mi], KN[k], r->v[F_LR], r->v[F_EP], pct(val), reached ? "" : " (target not reached)",
                    pct(r->v[F_FIMG]), pct(r->v[F_FTXT]), pct(r->v[F_TEST]), r->v[F_FROUGE], pct(r->v[F_FCLOZE]),
                    pct(r->v[F_RET]), o ? pct(r->v[F_RET] - o->v[F_RET]) : NAN, r->v[F_RROUGE], pct(r->v[F_GEN]),
                    o ? pct(r->v[F_GEN] - o->v[F_GEN]) : NAN, ss, r->v[F_SECS], r->v[F_PEAK]);
        }
    fprintf(f, "\n## Scenario 2: sequential requests (set A) against the batch run\n\n");
    fprintf(f, "| method | step | forget img | forget text | test | retain | general | run s |\n|---|---|---|---|---|---|---|---|\n");
    for (int mi = 0; mi < n_methods; mi++) {
        for (int s = 1; s <= 64; s++) {
            const Row *r = row(rows, n, methods[mi], "sequential", "pretrained", s);
            if (!r) break;
            fprintf(f, "| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f |\n", methods[mi], s, pct(r->v[F_FIMG]),
                    pct(r->v[F_FTXT]), pct(r->v[F_TEST]), pct(r->v[F_RET]), pct(r->v[F_GEN]), r->v[F_SECS]);
        }
        const Row *b = row(rows, n, methods[mi], "batch", "pretrained", 1);
        if (b)
            fprintf(f, "| %s | batch | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f |\n", methods[mi], pct(b->v[F_FIMG]),
                    pct(b->v[F_FTXT]), pct(b->v[F_TEST]), pct(b->v[F_RET]), pct(b->v[F_GEN]), b->v[F_SECS]);
    }
    /* the three findings, checked on these numbers */
    fprintf(f, "\n## The three findings on these numbers\n\n");
    int c1 = 0, n1 = 0, c2 = 0, n2 = 0, c3 = 0, n3 = 0;
    for (int mi = 0; mi < n_methods; mi++) {
        const Row *a = row(rows, n, methods[mi], "batch", "pretrained", 1), *b = row(rows, n, methods[mi], "batch", "finetuned", 1);
        const Row *oa = row(rows, n, "none", "original", "pretrained", 0), *ob = row(rows, n, "none", "original", "finetuned", 0);
        if (a && b && oa && ob) {
            const double ca = (oa->v[F_RET] - a->v[F_RET]) + (oa->v[F_GEN] - a->v[F_GEN]);
            const double cb = (ob->v[F_RET] - b->v[F_RET]) + (ob->v[F_GEN] - b->v[F_GEN]);
            n1++, c1 += ca > cb;
            fprintf(f, "- (1) %s: retain + general points lost forgetting pre-trained people %.1f, fine-tuned people %.1f "
                       "(forget accuracy reached %.1f / %.1f): %s\n", methods[mi], pct(ca), pct(cb),
                    pct((a->v[F_FIMG] + a->v[F_FTXT]) / 2), pct((b->v[F_FIMG] + b->v[F_FTXT]) / 2),
                    ca > cb ? "pre-trained costs more" : "pre-trained does not cost more");
        }
        int steps = 0, falls = 1;
        double last_r = NAN, last_g = NAN;
        for (int s = 1; s <= 64; s++) {
            const Row *r = row(rows, n, methods[mi], "sequential", "pretrained", s);
            if (!r) break;
            if (s > 1 && (r->v[F_RET] > last_r + 1e-9 || r->v[F_GEN] > last_g + 1e-9)) falls = 0;
            last_r = r->v[F_RET], last_g = r->v[F_GEN], steps = s;
        }
        if (steps > 1 && a) {
            const int below = last_r < a->v[F_RET] && last_g < a->v[F_GEN];
            n2++, c2 += falls && below;
            fprintf(f, "- (2) %s: after %d sequential requests retain %.1f / general %.1f against the batch run's %.1f / %.1f; "
                       "%s step after step, %s the batch run\n", methods[mi], steps, pct(last_r), pct(last_g),
                    pct(a->v[F_RET]), pct(a->v[F_GEN]), falls ? "falling" : "not falling", below ? "ending below" : "not ending below");
        }
        if (a && b) {
            const double ti = (a->v[F_FIMG] + b->v[F_FIMG]) / 2, tt = (a->v[F_FTXT] + b->v[F_FTXT]) / 2;
            n3++, c3 += tt > ti;
            fprintf(f, "- (3) %s: forgotten people's questions answered: text-only %.1f %%, image+text %.1f %%\n", methods[mi],
                    pct(tt), pct(ti));
        }
    }
    fprintf(f, "\nFinding (1) holds for %d of %d methods, (2) for %d of %d, (3) for %d of %d.\n", c1, n1, c2, n2, c3, n3);
}

static char *chart(const Row *rows, int n, const char *method) {
    static const char *const NAMES[4] = {"forget (image+text)", "forget (text-only)", "retain", "general"};
    const int fi[4] = {F_FIMG, F_FTXT, F_RET, F_GEN};
    double x[4][65], y[4][65], bx[4], by[4];
    int cnt = 0;
    const Row *o = row(rows, n, "none", "original", "pretrained", 0);
    if (o)
        for (int k = 0; k < 4; k++) x[k][cnt] = 0, y[k][cnt] = pct(o->v[fi[k]]);
    cnt += o != NULL;
    for (int s = 1; s <= 64; s++) {
        const Row *r = row(rows, n, method, "sequential", "pretrained", s);
        if (!r) break;
        for (int k = 0; k < 4; k++) x[k][cnt] = s, y[k][cnt] = pct(r->v[fi[k]]);
        cnt++;
    }
    const Row *b = row(rows, n, method, "batch", "pretrained", 1);
    PlotSeries ps[8];
    int ns = 0;
    for (int k = 0; k < 4; k++) ps[ns++] = (PlotSeries){.name = NAMES[k], .n = cnt, .x = x[k], .y = y[k]};
    static const char *const BN[4] = {"batch: forget (image+text)", "batch: forget (text-only)", "batch: retain", "batch: general"};
    if (b)
        for (int k = 0; k < 4; k++) {
            bx[k] = cnt > 1 ? x[0][cnt - 1] : 1, by[k] = pct(b->v[fi[k]]);
            ps[ns++] = (PlotSeries){.name = BN[k], .n = 1, .x = &bx[k], .y = &by[k], .colour = k + 1, .ring = 1};
        }
    char title[96];
    snprintf(title, sizeof title, "%s: sequential requests on set A", method);
    const PlotAxes ax = {.title = title, .xlabel = "request (0: before)", .ylabel = "4-choice accuracy %", .ymin = 0, .ymax = 100};
    return svg_line_chart(&ax, ps, ns);
}

int pulse_report(const char *dir, Err *e) {
    char *path = xasprintf("%s/results.json", dir);
    cJSON *root = NULL;
    int rc = resume_load(path, "runs", NULL, NULL, 0, &root, e);
    if (rc == 0 && !root) rc = err_set(e, "%s: no results yet", path);
    if (rc) {
        free(path);
        return -1;
    }
    int n;
    Row *rows = rows_of(cJSON_GetObjectItem(root, "runs"), &n);
    cJSON *summary = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "method", rows[i].method);
        cJSON_AddStringToObject(s, "scenario", rows[i].scenario);
        cJSON_AddStringToObject(s, "knowledge", rows[i].knowledge);
        cJSON_AddNumberToObject(s, "step", rows[i].step);
        cJSON_AddNumberToObject(s, "seeds", rows[i].n);
        for (int f = 0; f < NF; f++) cJSON_AddNumberToObject(s, FIELD[f], rows[i].v[f]);
        cJSON_AddItemToArray(summary, s);
    }
    cJSON_ReplaceItemInObject(root, "summary", summary);
    rc = json_write_atomic(path, root, e);
    char *md = NULL, *html = NULL;
    size_t md_len = 0, html_len = 0;
    FILE *fm = open_memstream(&md, &md_len);
    write_md(fm, root, rows, n);
    fclose(fm);
    FILE *fh = open_memstream(&html, &html_len);
    html_report_begin(fh, "PULSE on the MLLM");
    fprintf(fh, "<h1>PULSE on the MLLM (our reconstruction)</h1><p>Scenario 2: each panel one method, its 4-choice "
                "accuracies after each sequential request on set A (the people forgotten so far; the dots at the last "
                "request: the one batch run on their union, as rings of the same colour). Command: forget experiment pulse --model MODEL --out DIR.</p><div style=\"display:flex;flex-wrap:wrap\">\n");
    const char *seen[16];
    int n_seen = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(rows[i].scenario, "sequential")) continue;
        int dup = 0;
        for (int k = 0; k < n_seen; k++) dup |= strcmp(seen[k], rows[i].method) == 0;
        if (dup || n_seen == 16) continue;
        seen[n_seen++] = rows[i].method;
        char *svg = chart(rows, n, rows[i].method);
        fprintf(fh, "<div style=\"width:620px\">%s</div>\n", svg);
        free(svg);
    }
    fprintf(fh, "</div>\n");
    html_from_markdown(fh, md);
    fprintf(fh, "</body></html>\n");
    fclose(fh);
    char *mp = xasprintf("%s/results.md", dir), *hp = xasprintf("%s/report.html", dir);
    if (rc == 0) rc = write_file_atomic(mp, md, md_len, e);
    if (rc == 0) rc = write_file_atomic(hp, html, html_len, e);
    free(mp), free(hp), free(md), free(html), free(rows), free(path);
    cJSON_Delete(root);
    return rc;
}
