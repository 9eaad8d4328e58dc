/* The bias experiment's results: results.json, results.md and report.html. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/gemm.h"
#include "core/ops.h"
#include "core/progress.h"
#include "core/threads.h"
#include "eval/bias_metrics.h"
#include "eval/report_html.h"
#include "eval/svg_plot.h"
#include "forget/bias_internal.h"
#include "forget/resume.h"
#include "forget/vocab.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/emoji.h"
#include "io/file_open.h"
#include "io/json_file.h"
#include "models/clip_encode.h"

/* ------------------------------------------------------------ the run */


static void metrics_json(cJSON *o, const Metrics *m, const EvalSet *s, int spurious) {
    const char *an[2] = {spurious ? "tint" : "gender", "tone"};
    for (int a = 0; a < s->n_attr; a++) {
        char k[48];
        snprintf(k, sizeof k, "maxskew_%s", an[a]), cJSON_AddNumberToObject(o, k, m->skew[a]);
        snprintf(k, sizeof k, "kl_%s", an[a]), cJSON_AddNumberToObject(o, k, m->kl[a]);
        snprintf(k, sizeof k, "ndkl_%s", an[a]), cJSON_AddNumberToObject(o, k, m->ndkl[a]);
    }
    if (spurious) cJSON_AddNumberToObject(o, "average_accuracy", m->avg), cJSON_AddNumberToObject(o, "worst_group_accuracy", m->worst);
    cJSON_AddNumberToObject(o, "bias", m->bias);
    cJSON_AddNumberToObject(o, "general_accuracy_abs", m->general);
    cJSON_AddNumberToObject(o, "neighbourhood_overlap", m->neighbour);
    cJSON *t = cJSON_AddObjectToObject(o, "tasks");
    for (int k = 0; k < s->n_tasks; k++) cJSON_AddNumberToObject(t, s->tasks[k].name, m->task_acc[k]);
}

/* The calibrated method's kept share of its base's bias reduction under a paired bootstrap of
 * the test units (queries or images); -1 when a checkpoint from before the units has no data. */
static int keep_interval(const Setting *st, const Metrics *orig, const Metrics *base, const Metrics *cal, RetentionCI *ci) {
    if (!orig->unit || !base->unit || !cal->unit || orig->n_unit != base->n_unit || orig->n_unit != cal->n_unit) return -1;
    if (st->spurious)
        retention_bootstrap(RB_GROUPS, orig->unit, base->unit, cal->unit, orig->n_unit, st->test.group, st->test.G, 2000, 0.95, 7, ci);
    else
        retention_bootstrap(RB_QUERIES, orig->unit, base->unit, cal->unit, orig->n_unit, NULL, 0, 2000, 0.95, 7, ci);
    return ci->n_valid > 0 ? 0 : -1;
}

/* The uncalibrated entry a calibrated one started from, or NULL. */
static const Entry *base_of(const Entry *en, int ne, const Entry *cal) {
    for (int k = 0; k < ne; k++)
        if (!en[k].calibrated && strcmp(en[k].name, cal->base) == 0) return &en[k];
    return NULL;
}

int bias_write_outputs(const BiasExperimentOpts *o, const Setting *st, const Metrics *orig, Entry *en, int ne, Err *e) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", o->model);
    cJSON_AddStringToObject(root, "setting", st->spurious ? "spurious" : "emoji");
    cJSON_AddStringToObject(root, "calibration", "reconstruction (shared/methods/vlm-bias.md D.2)");
    cJSON_AddNumberToObject(root, "K", o->K);
    metrics_json(cJSON_AddObjectToObject(root, "original"), orig, &st->test, st->spurious);
    /* each calibrated method's bootstrap, once, for results.json and the claims (has[i]: computed) */
    RetentionCI *ci = xcalloc((size_t)(ne ? ne : 1), sizeof(RetentionCI));
    int *has = xcalloc((size_t)(ne ? ne : 1), sizeof(int));
    for (int i = 0; i < ne; i++) {
        const Entry *b = en[i].calibrated ? base_of(en, ne, &en[i]) : NULL;
        has[i] = b && keep_interval(st, orig, &b->test, &en[i].test, &ci[i]) == 0;
    }
    cJSON *arr = cJSON_AddArrayToObject(root, "methods");
    for (int i = 0; i < ne; i++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", en[i].name);
        cJSON_AddStringToObject(j, "family", en[i].calibrated ? "projection (calibrated)" : DEBIAS_FAMILY_NAMES[DEBIAS_METHODS[en[i].method].family]);
        if (en[i].calibrated) cJSON_AddStringToObject(j, "base", en[i].base);
        else cJSON_AddNullToObject(j, "base");
        const double br = orig->bias > 0 ? 1 - en[i].test.bias / orig->bias : 0;
        cJSON_AddNumberToObject(j, "bias_reduction", br);
        cJSON_AddNumberToObject(j, "general_accuracy", orig->general > 0 ? en[i].test.general / orig->general : 0);
        if (en[i].calibrated) cJSON_AddNumberToObject(j, "lambda", en[i].lambda), cJSON_AddNumberToObject(j, "mu", en[i].mu);
        if (has[i]) {
            const double rb = 1 - base_of(en, ne, &en[i])->test.bias / orig->bias;
            cJSON_AddNumberToObject(j, "keeps_of_base_reduction", rb > 0 ? br / rb : 0);
            const double iv[2] = {ci[i].lo, ci[i].hi};
            cJSON_AddItemToObject(j, "keeps_bootstrap_90", cJSON_CreateDoubleArray(iv, 2));
            cJSON_AddNumberToObject(j, "keeps_95_share_of_resamples", ci[i].p_keep);
        }
        cJSON_AddNumberToObject(j, "seconds", en[i].seconds);
        metrics_json(j, &en[i].test, &st->test, st->spurious);
        cJSON_AddItemToArray(arr, j);
    }
    char *path = xasprintf("%s/results.json", o->out);
    int rc = json_write_atomic(path, root, e);
    free(path);
    cJSON_Delete(root);
    /* table, claims and the scatter plot */
    char *md = NULL, *html = NULL;
    size_t ml = 0, hl = 0;
    FILE *f = open_memstream(&md, &ml);
    fprintf(f, "# Debiasing: %s (%s setting)\n\nCommand: `forget experiment bias --model %s --setting %s --out %s`. "
               "Test split figures; lambda, mu chosen on the validation split. `+cal` is the calibration, OUR RECONSTRUCTION.\n\n",
            o->model, st->spurious ? "spurious" : "emoji", o->model, st->spurious ? "spurious" : "emoji", o->out);
    if (st->spurious)
        fprintf(f, "| method | family | bias (1 - worst-group) | bias reduction %% | worst-group %% | average %% | MaxSkew tint | general %% | retained %% | neighbours %% |\n|---|---|---|---|---|---|---|---|---|---|\n");
    else
        fprintf(f, "| method | family | bias (MaxSkew) | bias reduction %% | MaxSkew gender | MaxSkew tone | KL gender | KL tone | NDKL gender | NDKL tone | general %% | retained %% | neighbours %% |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = -1; i < ne; i++) {
        const Metrics *mm = i < 0 ? orig : &en[i].test;
        const char *nm = i < 0 ? "original" : en[i].name, *fam = i < 0 ? "—" : en[i].calibrated ? "projection+cal" : DEBIAS_FAMILY_NAMES[DEBIAS_METHODS[en[i].method].family];
        const double br = orig->bias > 0 ? 100 * (1 - mm->bias / orig->bias) : 0, ret = 100 * mm->general / orig->general;
        if (st->spurious)
            fprintf(f, "| %s | %s | %.4f | %.1f | %.2f | %.2f | %.3f | %.2f | %.1f | %.1f |\n", nm, fam, mm->bias, br, 100 * mm->worst,
                    100 * mm->avg, mm->skew[0], 100 * mm->general, ret, 100 * mm->neighbour);
        else
            fprintf(f, "| %s | %s | %.3f | %.1f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.2f | %.1f | %.1f |\n", nm, fam, mm->bias, br,
                    mm->skew[0], mm->skew[1], mm->kl[0], mm->kl[1], mm->ndkl[0], mm->ndkl[1], 100 * mm->general, ret,
                    100 * mm->neighbour);
    }
    fprintf(f, "\nClaims (test split; the interval is a paired bootstrap of the test %s, 2,000 resamples, 5th-95th percentile):\n\n",
            st->spurious ? "images within their (class, tint) groups" : "queries");
    for (int i = 0; i < ne; i++) {
        if (!en[i].calibrated) continue;
        const Entry *b = base_of(en, ne, &en[i]);
        if (!b) continue;
        const double rb = 1 - b->test.bias / orig->bias, rc2 = 1 - en[i].test.bias / orig->bias;
        double worst_loss = INFINITY;
        const char *who = "";
        for (int k = 0; k < ne; k++)
            if (!en[k].calibrated && DEBIAS_METHODS[en[k].method].family == DB_PROJECTION && orig->general - en[k].test.general < worst_loss)
                worst_loss = orig->general - en[k].test.general, who = en[k].name;
        const double loss = orig->general - en[i].test.general;
        char civ[160] = " (no bootstrap: units missing from the checkpoint)";
        if (has[i])
            snprintf(civ, sizeof civ, " (bootstrap %.0f-%.0f%%, >= 95%% in %.0f%% of resamples)", 100 * ci[i].lo, 100 * ci[i].hi,
                     100 * ci[i].p_keep);
        fprintf(f, "- %s keeps %.1f%% of %s's bias reduction (%.1f%% vs %.1f%%)%s: %s; loses %.2f points of general accuracy, "
                   "the least-losing uncalibrated projection (%s) %.2f: %s\n",
                en[i].name, rb > 0 ? 100 * rc2 / rb : 0, b->name, 100 * rc2, 100 * rb, civ, rb > 0 && rc2 >= 0.95 * rb ? "yes" : "NO",
                100 * loss, who, 100 * worst_loss, loss < worst_loss ? "less, yes" : "NO");
    }
    fclose(f);
    path = xasprintf("%s/results.md", o->out);
    if (rc == 0) rc = write_file_atomic(path, md, ml, e);
    free(path);
    /* scatter: x bias reduction, y retained general accuracy */
    double *x = xmalloc(sizeof(double) * (size_t)(ne + 1)), *y = xmalloc(sizeof(double) * (size_t)(ne + 1));
    for (int i = 0; i < ne; i++)
        x[i] = orig->bias > 0 ? 1 - en[i].test.bias / orig->bias : 0, y[i] = en[i].test.general / orig->general;
    f = open_memstream(&html, &hl);
    fprintf(f, "<!doctype html><html><head><meta charset=\"utf-8\"><title>forget: debiasing</title><style>body{font-family:sans-serif;"
               "max-width:1100px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
               "padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}code{font-size:90%%}</style></head><body><h1>Debiasing %s</h1>\n", o->model);
    const double W = 780, H = 440, L = 60, R = 300, T = 30, B = 50, pw = W - L - R, ph = H - T - B;
    double x0 = 0, x1 = 0.01, y0 = 1, y1 = 1;
    for (int i = 0; i < ne; i++) x0 = fmin(x0, x[i]), x1 = fmax(x1, x[i]), y0 = fmin(y0, y[i]), y1 = fmax(y1, y[i]);
    x0 -= 0.05, x1 += 0.05, y0 -= 0.02, y1 += 0.02;
#define SX(v) (L + ((v) - x0) / (x1 - x0) * pw)
#define SY(v) (T + ph - ((v) - y0) / (y1 - y0) * ph)
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-size=\"12\" font-family=\"sans-serif\">"
               "<defs><marker id=\"ar\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#555\"/></marker></defs>"
               "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#888\"/>\n", W, H, L, T, pw, ph);
    for (int k = 0; k <= 5; k++) {
        const double vx = x0 + (x1 - x0) * k / 5, vy = y0 + (y1 - y0) * k / 5;
        fprintf(f, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%.0f%%</text><text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%.0f%%</text>\n",
                SX(vx), T + ph + 16, 100 * vx, L - 6, SY(vy) + 4, 100 * vy);
    }
    fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">bias reduction (test)</text><text transform=\"translate(14,%g) rotate(-90)\" "
               "text-anchor=\"middle\">general accuracy retained</text>\n", L + pw / 2, H - 10, T + ph / 2);
    for (int i = 0; i < ne; i++) {
        const Entry *b = en[i].calibrated ? base_of(en, ne, &en[i]) : NULL;
        if (!b) continue;
        const long k = b - en;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" marker-end=\"url(#ar)\"/>\n", SX(x[k]), SY(y[k]),
                SX(x[i]), SY(y[i]));
    }
    for (int i = 0; i < ne; i++) {
        const DebiasFamily fam = DEBIAS_METHODS[en[i].method].family;
        const char *col = en[i].calibrated ? "#009E73" : fam == DB_PROJECTION ? "#0072B2" : fam == DB_PROBING ? "#D55E00" : "#CC79A7";
        const double px = SX(x[i]), py = SY(y[i]);
        if (en[i].calibrated || fam == DB_PROJECTION)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>", px, py, col);
        else if (fam == DB_PROBING)
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>", px - 5, py - 5, col);
        else
            fprintf(f, "<path d=\"M%.1f,%.1f l6,10 l-12,0 z\" fill=\"%s\"/>", px, py - 6, col);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", px + 7, py - 6, en[i].name);
    }
    const char *leg[4] = {"projection", "projection, calibrated (reconstruction)", "probing", "adapter"};
    const char *lc[4] = {"#0072B2", "#009E73", "#D55E00", "#CC79A7"};
    for (int k = 0; k < 4; k++)
        fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%g\" y=\"%g\">%s</text>\n", W - R + 10,
                T + 10 + 18.0 * k, lc[k], W - R + 26, T + 19 + 18.0 * k, leg[k]);
    fprintf(f, "</svg>\n");
#undef SX
#undef SY
    /* results.md rendered: one source of truth for the numbers, as real tables */
    html_from_markdown(f, md);
    fputs("</body></html>\n", f);
    fclose(f);
    path = xasprintf("%s/report.html", o->out);
    if (rc == 0) rc = write_file_atomic(path, html, hl, e);
    free(path);
    free(md), free(html), free(x), free(y), free(ci), free(has);
    return rc;
}

