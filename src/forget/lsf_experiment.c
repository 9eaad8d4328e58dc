#include "forget/lsf_experiment.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eval/report_html.h"
#include "eval/svg_plot.h"
#include "forget/resume.h"
#include "io/atomic_file.h"
#include "io/json_file.h"

enum { MAX_CODES = 3 };

void lsf_experiment_defaults(LsfExperimentOpts *o) {
    memset(o, 0, sizeof *o);
    lsf_opts_default(&o->run);
    o->seeds = 5;
}

typedef struct {
    const LsfOpts *o;
} Same;

static int same_experiment(const cJSON *root, const void *ctx) {
    const LsfOpts *o = ((const Same *)ctx)->o;
    const char *ds = resume_str(root, "dataset");
    return ds && strcmp(ds, o->dataset) == 0 && resume_num(root, "tasks") == o->tasks &&
           resume_num(root, "epochs") == o->epochs && resume_num(root, "train_per_class") == o->train_per_class &&
           resume_num(root, "layer") == o->layer && resume_num(root, "kappa") == (double)(float)o->kappa;
}

/* The code variant a run of results.json used, NULL when the entry has none. */
static const char *run_code(const cJSON *r) {
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(r, "options");
    return op ? resume_str(op, "code") : NULL;
}

static cJSON *find_run(const cJSON *runs, const char *code, int seed) {
    const cJSON *r;
    cJSON_ArrayForEach(r, runs) {
        const char *c = run_code(r);
        if (c && strcmp(c, code) == 0 && resume_num(r, "seed") == seed) return (cJSON *)r;
    }
    return NULL;
}

/* Mean and sample standard deviation of a field over the runs of one code: the final value
 * (task < 0) or that of one task; NAN where no run has it. */
static void stat_of(const cJSON *runs, const char *code, int task, const char *key, double *mean, double *sd, int *n) {
    double s = 0, ss = 0;
    int k = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, runs) {
        const char *c = run_code(r);
        if (!c || strcmp(c, code) != 0) continue;
        const cJSON *src = NULL;
        if (task < 0) src = cJSON_GetObjectItemCaseSensitive(r, "final");
        else src = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "per_task"), task);
        const double v = src ? resume_num(src, key) : NAN;
        if (isnan(v)) continue;
        s += v, ss += v * v, k++;
    }
    *mean = k ? s / k : NAN;
    *sd = k > 1 ? sqrt(fmax(0, (ss - s * s / k) / (k - 1))) : NAN; /* one run has no spread */
    if (n) *n = k;
}

/* The mean over the runs of one code of a number field, at the run's top level (section NULL) or
 * in one of its objects ("requests"); NAN where no run has it. */
static double run_mean(const cJSON *runs, const char *code, const char *section, const char *key) {
    double s = 0;
    int k = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, runs) {
        const char *c = run_code(r);
        const cJSON *src = section ? cJSON_GetObjectItemCaseSensitive(r, section) : r;
        const double v = src ? resume_num(src, key) : NAN;
        if (!c || strcmp(c, code) != 0 || isnan(v)) continue;
        s += v, k++;
    }
    return k ? s / k : NAN;
}

/* JSON cannot hold NaN: a measure no run has (or the spread of one run) is null. */
static void add_num(cJSON *j, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(j, key, v);
    else cJSON_AddNullToObject(j, key);
}

static const char *pct(char *buf, double v, double sd) {
    if (isnan(v)) snprintf(buf, 32, "-");
    else if (isnan(sd)) snprintf(buf, 32, "%.2f", 100 * v);
    else snprintf(buf, 32, "%.2f ± %.2f", 100 * v, 100 * sd);
    return buf;
}

static const char *METRICS[] = {"H", "kept_acc", "deleted_err", "current_acc"};
static const char *METRIC_TITLES[] = {"H (seen accuracy and deleted-class error)", "accuracy on kept classes of earlier tasks",
                                      "error on deleted classes", "accuracy on the current task"};

static char *write_markdown(const LsfExperimentOpts *o, const cJSON *runs, char **codes, int n_codes) {
    char *md = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&md, &len);
    const LsfOpts *r = &o->run;
    fprintf(f, "# Learning with selective forgetting on %s\n\n", r->dataset);
    fprintf(f, "%d tasks, %s, %d epochs a task, %d training images a class, batch %d, metrics on the %s split, %d seed%s. "
               "Feature codes (our reconstruction) at layer %d, kappa %g. Mean ± standard deviation over seeds, after the "
               "last task (`forget experiment lsf --dataset %s --tasks %d --seeds %d --epochs %d --batch %d "
               "--train-per-class %d --out %s`).\n\n",
            r->tasks, r->net, r->epochs, r->train_per_class, r->batch, r->split ? r->split : "test", o->seeds,
            o->seeds == 1 ? "" : "s", r->layer, (double)r->kappa, r->dataset, r->tasks, o->seeds, r->epochs, r->batch,
            r->train_per_class, o->out);
    fprintf(f, "| code | H | kept acc | deleted err | current acc | runs |\n|---|---|---|---|---|---|\n");
    for (int k = 0; k < n_codes; k++) {
        char b[4][32];
        double m[4], sd[4];
        int n = 0;
        for (int q = 0; q < 4; q++) stat_of(runs, codes[k], -1, METRICS[q], &m[q], &sd[q], q ? NULL : &n);
        fprintf(f, "| %s%s | %s | %s | %s | %s | %d |\n", codes[k], strcmp(codes[k], "feature") == 0 ? " (reconstruction)" : "",
                pct(b[0], m[0], sd[0]), pct(b[1], m[1], sd[1]), pct(b[2], m[2], sd[2]), pct(b[3], m[3], sd[3]), n);
    }
    fprintf(f, "\n## Deletion requests\n\nFor each task where requests arrive: accuracy on the classes of earlier tasks "
               "that stay kept, just before the request and after it, and the requested classes' error after it "
               "(means over requests and seeds).\n\n| code | kept before | kept after | change | requested err after |\n"
               "|---|---|---|---|---|\n");
    for (int k = 0; k < n_codes; k++) {
        const double b = run_mean(runs, codes[k], "requests", "kept_acc_before"), a = run_mean(runs, codes[k], "requests", "kept_acc_after"),
                     d = run_mean(runs, codes[k], "requests", "deleted_err_after");
        fprintf(f, "| %s | %.2f | %.2f | %+.2f | %.2f |\n", codes[k], 100 * b, 100 * a, 100 * (a - b), 100 * d);
    }
    for (int q = 0; q < 4; q++) {
        fprintf(f, "\n## %s, per task\n\n| code |", METRIC_TITLES[q]);
        for (int t = 0; t < r->tasks; t++) fprintf(f, " task %d |", t);
        fprintf(f, "\n|---|");
        for (int t = 0; t < r->tasks; t++) fprintf(f, "---|");
        fprintf(f, "\n");
        for (int k = 0; k < n_codes; k++) {
            fprintf(f, "| %s |", codes[k]);
            for (int t = 0; t < r->tasks; t++) {
                double m, sd;
                char b[32];
                stat_of(runs, codes[k], t, METRICS[q], &m, &sd, NULL);
                fprintf(f, " %s |", pct(b, m, sd));
            }
            fprintf(f, "\n");
        }
    }
    fprintf(f, "\n## Cost\n\n| code | seconds a run | training images/s |\n|---|---|---|\n");
    for (int k = 0; k < n_codes; k++)
        fprintf(f, "| %s | %.0f | %.0f |\n", codes[k], run_mean(runs, codes[k], NULL, "seconds"),
                run_mean(runs, codes[k], NULL, "train_images_per_s"));
    fclose(f);
    return md;
}

static int write_report(const LsfExperimentOpts *o, const char *md, const cJSON *runs, char **codes, int n_codes, Err *e) {
    char *html = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&html, &len);
    html_report_begin(f, "selective forgetting");
    html_from_markdown(f, md);
    fprintf(f, "<h2>Per-task curves</h2><p>Mean over seeds (line) and one standard deviation (band).</p><div class=\"charts\">\n");
    const int T = o->run.tasks;
    double *x = xmalloc(sizeof(double) * (size_t)T), *ys = xmalloc(sizeof(double) * (size_t)T * n_codes * 2);
    for (int t = 0; t < T; t++) x[t] = t;
    for (int q = 0; q < 4; q++) {
        PlotSeries s[MAX_CODES];
        int ns = 0;
        for (int k = 0; k < n_codes; k++) {
            double *y = ys + (size_t)2 * T * k, *sd = y + T;
            int first = -1, n = 0;
            for (int t = 0; t < T; t++) { /* a curve starts where the metric exists (H: the first deletion) */
                double m, d;
                stat_of(runs, codes[k], t, METRICS[q], &m, &d, NULL);
                if (isnan(m)) continue;
                if (first < 0) first = t;
                y[n] = 100 * m, sd[n] = isnan(d) ? 0 : 100 * d, n++;
            }
            if (n) s[ns++] = (PlotSeries){codes[k], n, x + first, y, sd, 1, 0, 0};
        }
        const PlotAxes ax = {METRIC_TITLES[q], "task", "%", 0, 0, 100};
        char *svg = svg_line_chart(&ax, s, ns);
        fprintf(f, "%s", svg);
        free(svg);
    }
    fprintf(f, "</div></body></html>\n");
    fclose(f);
    free(x), free(ys);
    char *path = xasprintf("%s/report.html", o->out);
    const int rc = write_file_atomic(path, html, len, e);
    free(path), free(html);
    return rc;
}

int lsf_experiment_run(const LsfExperimentOpts *o, Err *e) {
    if (!o->out) return err_set(e, "experiment lsf: --out DIR is required");
    if (o->seeds < 1 || o->seeds > 1000) return err_set(e, "--seeds %d: 1..1000", o->seeds);
    char *codes[MAX_CODES];
    int n_codes = 0, rc = 0;
    char *all = xstrdup(o->codes ? o->codes : "none,input,feature");
    for (char *save = NULL, *tok = strtok_r(all, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        LsfCode c;
        if (lsf_code_parse(tok, &c, e)) rc = -1;
        else if (n_codes == MAX_CODES) rc = err_set(e, "--codes: at most %d", MAX_CODES);
        else codes[n_codes++] = tok;
    }
    if (rc) {
        free(all);
        return -1;
    }
    mkdir(o->out, 0755);
    char *runs_dir = xasprintf("%s/runs", o->out);
    mkdir(runs_dir, 0755);
    char *path = xasprintf("%s/results.json", o->out);
    cJSON *root = NULL;
    const Same same = {&o->run};
    rc = resume_load(path, "runs", same_experiment, &same, 0, &root, e);
    if (!rc && !root) {
        root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "dataset", o->run.dataset);
        cJSON_AddNumberToObject(root, "tasks", o->run.tasks);
        cJSON_AddNumberToObject(root, "epochs", o->run.epochs);
        cJSON_AddNumberToObject(root, "train_per_class", o->run.train_per_class);
        cJSON_AddNumberToObject(root, "layer", o->run.layer);
        cJSON_AddNumberToObject(root, "kappa", (double)(float)o->run.kappa);
        cJSON_AddArrayToObject(root, "runs");
    }
    cJSON *runs = root ? cJSON_GetObjectItemCaseSensitive(root, "runs") : NULL;
    const int total = n_codes * o->seeds;
    int done = 0;
    for (int seed = 0; seed < o->seeds && !rc; seed++)
        for (int k = 0; k < n_codes && !rc; k++) {
            done++;
            if (find_run(runs, codes[k], seed)) continue;
            LsfOpts ro = o->run;
            lsf_code_parse(codes[k], &ro.code, e);
            ro.seed = (uint64_t)seed;
            char *dir = xasprintf("%s/%s-%d", runs_dir, codes[k], seed);
            ro.out_dir = dir;
            fprintf(stderr, "lsf [%d/%d] code %s, seed %d\n", done, total, codes[k], seed);
            LsfResult r;
            rc = lsf_run(&ro, &r, e);
            free(dir);
            if (rc) {
                err_prefix(e, "code %s, seed %d: ", codes[k], seed);
                break;
            }
            char *js = lsf_result_json(&ro, &r);
            cJSON *j = cJSON_Parse(js);
            free(js);
            cJSON_AddNumberToObject(j, "seed", seed);
            cJSON_AddItemToArray(runs, j);
            const LsfTaskResult *last = &r.per_task[r.n_tasks - 1];
            fprintf(stderr, "  H %.2f  kept %.2f  deleted err %.2f  current %.2f  (%.0f s)\n", 100 * last->H,
                    100 * last->kept_acc, 100 * last->deleted_err, 100 * last->current_acc, r.seconds);
            lsf_result_free(&r);
            rc = json_write_atomic(path, root, e);
        }
    if (!rc) {
        cJSON_DeleteItemFromObject(root, "summary");
        cJSON *sum = cJSON_AddArrayToObject(root, "summary");
        for (int k = 0; k < n_codes; k++) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "code", codes[k]);
            double m, sd;
            int n;
            stat_of(runs, codes[k], -1, "H", &m, &sd, &n);
            add_num(j, "H", m), add_num(j, "h_std", sd);
            const char *keys[] = {"kept_acc", "deleted_err", "current_acc", "seen_acc"};
            for (int q = 0; q < 4; q++) {
                char k2[32];
                stat_of(runs, codes[k], -1, keys[q], &m, &sd, NULL);
                add_num(j, keys[q], m);
                snprintf(k2, sizeof k2, "%s_std", keys[q]);
                add_num(j, k2, sd);
            }
            cJSON_AddNumberToObject(j, "runs", n);
            if (strcmp(codes[k], "feature") == 0) cJSON_AddStringToObject(j, "note", "reconstruction");
            cJSON_AddItemToArray(sum, j);
        }
        rc = json_write_atomic(path, root, e);
    }
    if (!rc) {
        char *md = write_markdown(o, runs, codes, n_codes);
        char *mdp = xasprintf("%s/results.md", o->out);
        rc = write_file_atomic(mdp, md, strlen(md), e);
        if (!rc) rc = write_report(o, md, runs, codes, n_codes, e);
        free(mdp), free(md);
    }
    if (!rc) fprintf(stderr, "lsf: wrote %s/results.json, results.md, report.html\n", o->out);
    cJSON_Delete(root);
    free(path), free(runs_dir), free(all);
    return rc;
}
