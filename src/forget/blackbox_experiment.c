#include "forget/blackbox_experiment.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eval/svg_plot.h"
#include "forget/blackbox.h"
#include "io/atomic_file.h"
#include "forget/resume.h"
#include "io/json_file.h"
#include "serve/client.h"
#include "serve/server.h"

static const char *ALL_METHODS = "dirichlet,random,greedy,ga,bdpl,bbt,bbf,coop";

void bb_experiment_defaults(BbExperimentOpts *o) {
    memset(o, 0, sizeof *o);
    o->methods = ALL_METHODS;
    o->lengths = "1,2,4,8,16";
    o->forget_ratio = 0.4;
    o->seeds = 3, o->length_seeds = 1, o->L = 4, o->shots = 16;
    o->budget = 4000;
}

static int split_list(const char *s, char ***out) {
    char *dup = xstrdup(s), *save = NULL;
    int n = 0;
    *out = NULL;
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        *out = xrealloc(*out, sizeof(char *) * (size_t)(n + 1));
        (*out)[n++] = xstrdup(t);
    }
    free(dup);
    return n;
}

static void free_list(char **l, int n) {
    for (int i = 0; i < n; i++) free(l[i]);
    free(l);
}

/* Whether run r is of (method, reveal, L). */
static int run_is(const cJSON *r, const char *method, const char *reveal, int L) {
    const cJSON *m = cJSON_GetObjectItem(r, "method"), *v = cJSON_GetObjectItem(r, "revealed"), *l = cJSON_GetObjectItem(r, "L");
    return cJSON_IsString(m) && strcmp(m->valuestring, method) == 0 && cJSON_IsString(v) && strcmp(v->valuestring, reveal) == 0 &&
           cJSON_IsNumber(l) && l->valueint == L;
}

/* A run already in results (the resume path), or NULL. */
static cJSON *find_run(cJSON *runs, const char *method, const char *reveal, int L, int seed) {
    cJSON *r;
    cJSON_ArrayForEach(r, runs) {
        if (run_is(r, method, reveal, L) && resume_num(r, "seed") == seed) return r;
    }
    return NULL;
}

static double num(const cJSON *o, const char *k) { return resume_num(o, k); }

/* The results file is this experiment's: same model, data set, budget and shots. */
static int same_experiment(const cJSON *root, const void *ctx) {
    const BbExperimentOpts *o = ctx;
    const char *m = resume_str(root, "model"), *d = resume_str(root, "dataset");
    return m && d && strcmp(m, o->model) == 0 && strcmp(d, o->dataset) == 0 && num(root, "budget") == o->budget &&
           num(root, "shots") == o->shots;
}

/* Mean and std (n - 1) of field over the runs of (method, reveal, L). */
static int stats(cJSON *runs, const char *method, const char *reveal, int L, const char *field, double *mean, double *sd) {
    double s = 0, s2 = 0;
    int n = 0;
    cJSON *r;
    cJSON_ArrayForEach(r, runs) {
        if (!run_is(r, method, reveal, L)) continue;
        double x = num(r, field);
        s += x, s2 += x * x, n++;
    }
    *mean = n ? s / n : NAN;
    *sd = n > 1 ? sqrt(fmax(0, (s2 - s * s / n) / (n - 1))) : 0;
    return n;
}

static int save_json(const char *dir, cJSON *root, Err *e) {
    char *path = xasprintf("%s/results.json", dir);
    int rc = json_write_atomic(path, root, e);
    free(path);
    return rc;
}


static const char *family_name(const char *method) {
    static const char *F[] = {"strict", "loose", "white box"};
    int f = blackbox_family(method);
    return f < 0 ? "?" : F[f];
}

/* The main table (mean ± std over seeds at length L) as Markdown or HTML rows. */
static void write_table(FILE *f, int html, cJSON *runs, cJSON *zs, char **methods, int nm, int L) {
    static const char *const reveals[2] = {"probs", "labels"};
    static const char *const head[] = {"method", "family", "revealed", "seeds", "Err_forget %", "Acc_keep %", "H %", "queries", "seconds"};
    const int nh = (int)(sizeof head / sizeof *head);
    fputs(html ? "<table><tr>" : "|", f);
    for (int i = 0; i < nh; i++) fprintf(f, html ? "<th>%s</th>" : " %s |", head[i]);
    fputs(html ? "</tr>\n" : "\n|", f);
    for (int i = 0; i < nh && !html; i++) fputs("---|", f);
    if (!html) fputs("\n", f);
    /* cells joined by the format's separators */
    const char *open = html ? "<tr><td>" : "| ", *sep = html ? "</td><td>" : " | ", *close = html ? "</td></tr>\n" : " |\n";
    fprintf(f, "%szero-shot%s—%s—%s—%s%.2f%s%.2f%s%.2f%s0%s—%s", open, sep, sep, sep, sep, 100 * num(zs, "err_forget"), sep,
            100 * num(zs, "acc_keep"), sep, 100 * num(zs, "H"), sep, sep, close);
    for (int rv = 0; rv < 2; rv++)
        for (int k = 0; k < nm; k++) {
            double hm, hs, em, es, am, as, qm, qs, sm, ss;
            int n = stats(runs, methods[k], reveals[rv], L, "H", &hm, &hs);
            if (!n) continue;
            stats(runs, methods[k], reveals[rv], L, "err_forget", &em, &es);
            stats(runs, methods[k], reveals[rv], L, "acc_keep", &am, &as);
            stats(runs, methods[k], reveals[rv], L, "queries", &qm, &qs);
            stats(runs, methods[k], reveals[rv], L, "seconds", &sm, &ss);
            fprintf(f, "%s%s%s%s%s%s%s%d%s%.2f ± %.2f%s%.2f ± %.2f%s%s%.2f ± %.2f%s%s%.0f%s%.1f%s", open, methods[k], sep,
                    family_name(methods[k]), sep, reveals[rv], sep, n, sep, 100 * em, 100 * es, sep, 100 * am, 100 * as, sep,
                    html ? "<b>" : "**", 100 * hm, 100 * hs, html ? "</b>" : "**", sep, qm, sep, sm, close);
        }
    if (html) fputs("</table>\n", f);
}

/* results.md and report.html from the runs. */
static int write_reports(const BbExperimentOpts *o, cJSON *root, char **methods, int nm, const int *Ls, int nL, Err *e) {
    cJSON *runs = cJSON_GetObjectItem(root, "runs"), *zs = cJSON_GetObjectItem(root, "zero_shot");
    const char *reveals[2] = {"probs", "labels"};
    char *md = NULL;
    size_t mdl = 0;
    FILE *f = open_memstream(&md, &mdl);
    fprintf(f, "# Black-box forgetting: %s on %s\n\n", o->model, o->dataset);
    fprintf(f, "Forget %s (first %.0f%% of the classes); budget %ld queries; %d-shot; L = %d; mean ± std over seeds; "
               "test figures on the whole test split. `dirichlet` is OUR RECONSTRUCTION of the strict method.\n\n",
            cJSON_GetObjectItem(root, "forget")->valuestring, 100 * o->forget_ratio, o->budget, o->shots, o->L);
    write_table(f, 0, runs, zs, methods, nm, o->L);
    fprintf(f, "\nH %% against suffix length L (context tokens m for bbt, bbf, coop), probabilities revealed:\n\n| method |");
    for (int i = 0; i < nL; i++) fprintf(f, " L=%d |", Ls[i]);
    fprintf(f, "\n|---|");
    for (int i = 0; i < nL; i++) fprintf(f, "---|");
    fprintf(f, "\n");
    for (int k = 0; k < nm; k++) {
        fprintf(f, "| %s |", methods[k]);
        for (int i = 0; i < nL; i++) {
            double hm, hs;
            if (stats(runs, methods[k], "probs", Ls[i], "H", &hm, &hs)) fprintf(f, " %.2f |", 100 * hm);
            else fprintf(f, " — |");
        }
        fprintf(f, "\n");
    }
    fclose(f);
    char *path = xasprintf("%s/results.md", o->out);
    int rc = write_file_atomic(path, md, mdl, e);
    free(path);
    /* report.html: the table and the plots */
    PlotSeries *sl = xcalloc((size_t)nm, sizeof(PlotSeries));
    double *lx = xcalloc((size_t)nm * nL, sizeof(double)), *ly = xcalloc((size_t)nm * nL, sizeof(double)),
           *le = xcalloc((size_t)nm * nL, sizeof(double));
    int ns = 0;
    for (int k = 0; k < nm; k++) {
        int n = 0;
        for (int i = 0; i < nL; i++) {
            double hm, hs;
            if (!stats(runs, methods[k], "probs", Ls[i], "H", &hm, &hs)) continue;
            lx[k * nL + n] = Ls[i], ly[k * nL + n] = hm, le[k * nL + n] = hs, n++;
        }
        if (n) sl[ns++] = (PlotSeries){methods[k], n, lx + k * nL, ly + k * nL, le + k * nL, 0, 0, 0};
    }
    PlotAxes al = {"H against suffix length (probabilities revealed)", "L (words; context tokens for bbt, bbf, coop)", "H (test)", 1, 0, 1};
    char *svg_l = svg_line_chart(&al, sl, ns);
    char *svg_q[2] = {NULL, NULL};
    enum { MAXC = BLACKBOX_MAX_CURVE };
    double *qx = xcalloc((size_t)nm * MAXC, sizeof(double)), *qy = xcalloc((size_t)nm * MAXC, sizeof(double));
    for (int rv = 0; rv < 2; rv++) { /* mean curve over seeds at the main L */
        int nq = 0;
        PlotSeries *sq = xcalloc((size_t)nm, sizeof(PlotSeries));
        memset(qx, 0, sizeof(double) * (size_t)nm * MAXC), memset(qy, 0, sizeof(double) * (size_t)nm * MAXC);
        for (int k = 0; k < nm; k++) {
            int npts = MAXC, seeds = 0;
            cJSON *r;
            cJSON_ArrayForEach(r, runs) {
                if (!run_is(r, methods[k], reveals[rv], o->L)) continue;
                cJSON *cv = cJSON_GetObjectItem(r, "curve");
                int n = cJSON_GetArraySize(cv);
                if (n == 0) continue;
                npts = n < npts ? n : npts;
                for (int i = 0; i < n && i < MAXC; i++) { /* a point that is not [queries, H] counts as NaN */
                    const cJSON *pt = cJSON_GetArrayItem(cv, i), *x = cJSON_GetArrayItem(pt, 0), *y = cJSON_GetArrayItem(pt, 1);
                    qx[k * MAXC + i] += cJSON_IsNumber(x) ? x->valuedouble : NAN;
                    qy[k * MAXC + i] += cJSON_IsNumber(y) ? y->valuedouble : NAN;
                }
                seeds++;
            }
            if (!seeds) continue;
            for (int i = 0; i < npts; i++) qx[k * MAXC + i] /= seeds, qy[k * MAXC + i] /= seeds;
            sq[nq++] = (PlotSeries){methods[k], npts, qx + k * MAXC, qy + k * MAXC, NULL, 0, 0, 0};
        }
        if (nq) {
            PlotAxes aq = {rv ? "H against queries (labels revealed)" : "H against queries (probabilities revealed)",
                           "queries spent", "H (test) of the best-so-far candidate", 0, 0, 1};
            svg_q[rv] = svg_line_chart(&aq, sq, nq);
        }
        free(sq);
    }
    /* the Markdown table again as HTML rows: parse what we printed is brittle; print afresh */
    char *html = NULL;
    size_t hl = 0;
    f = open_memstream(&html, &hl);
    fprintf(f, "<!doctype html><html><head><meta charset=\"utf-8\"><title>forget: black-box forgetting</title>"
               "<style>body{font-family:sans-serif;max-width:980px;margin:2em auto}table{border-collapse:collapse}"
               "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}</style></head><body>\n");
    fprintf(f, "<h1>Black-box forgetting</h1><p>Model <code>%s</code>, data <code>%s</code>; forget <b>%s</b>; budget %ld "
               "queries per run; %d shots; main L = %d. Test figures on the whole test split; mean ± std over seeds. "
               "<code>dirichlet</code> is <b>our reconstruction</b> of the programme's strict method. Command: <code>%s</code></p>\n",
            o->model, o->dataset, cJSON_GetObjectItem(root, "forget")->valuestring, o->budget, o->shots, o->L,
            cJSON_GetObjectItem(root, "command")->valuestring);
    write_table(f, 1, runs, zs, methods, nm, o->L);
    fprintf(f, "</table>\n<h2>H against suffix length</h2>\n%s\n", svg_l);
    for (int rv = 0; rv < 2; rv++)
        if (svg_q[rv]) fprintf(f, "<h2>H against queries (%s)</h2>\n%s\n", reveals[rv], svg_q[rv]);
    fprintf(f, "</body></html>\n");
    fclose(f);
    path = xasprintf("%s/report.html", o->out);
    if (rc == 0) rc = write_file_atomic(path, html, hl, e);
    free(path);
    free(md), free(html), free(svg_l), free(svg_q[0]), free(svg_q[1]);
    free(sl), free(lx), free(ly), free(le), free(qx), free(qy);
    return rc;
}

int bb_experiment_run(const BbExperimentOpts *o, Err *e) {
    if (mkdir(o->out, 0755) != 0) {
        struct stat st;
        if (stat(o->out, &st) != 0 || !S_ISDIR(st.st_mode)) return err_set(e, "cannot create the output directory %s", o->out);
    }
    char **methods, **lens;
    const int nm = split_list(o->methods ? o->methods : ALL_METHODS, &methods), nLs = split_list(o->lengths, &lens);
    int *Ls = xmalloc(sizeof(int) * (size_t)(nLs + 1)), nL = 0, rc = 0;
    for (int i = 0; i < nLs && rc == 0; i++) {
        Ls[nL] = atoi(lens[i]);
        if (Ls[nL] < 1 || Ls[nL] > 32) rc = err_set(e, "--lengths: \"%s\" is not a length in 1..32", lens[i]);
        nL++;
    }
    for (int k = 0; k < nm && rc == 0; k++)
        if (blackbox_family(methods[k]) < 0) rc = err_set(e, "--methods: \"%s\" is not a method (%s)", methods[k], ALL_METHODS);
    char *train_spec = xasprintf("%s:train", o->dataset), *test_spec = xasprintf("%s:test", o->dataset);
    /* servers: strict (words only), loose (embeddings), labels only, and the evaluation split */
    BbServer *srv[4] = {NULL, NULL, NULL, NULL};
    ServerOpts so[4] = {{.model = o->model, .dataset = train_spec, .data_dir = o->data_dir},
                        {.model = o->model, .dataset = train_spec, .data_dir = o->data_dir, .allow_embeddings = 1},
                        {.model = o->model, .dataset = train_spec, .data_dir = o->data_dir, .reveal_labels = 1},
                        {.model = o->model, .dataset = test_spec, .data_dir = o->data_dir, .allow_embeddings = 1}};
    for (int i = 0; i < 4; i++) so[i].precision = o->precision;
    char url[4][64];
    for (int i = 0; i < 4 && rc == 0; i++) {
        if (i == 2 && !o->labels) continue;
        if (!(srv[i] = bb_server_start(&so[i], e))) rc = -1;
        else snprintf(url[i], sizeof url[i], "http://127.0.0.1:%d", bb_server_port(srv[i]));
    }
    /* the classes to forget: the first round(ratio * C) */
    char *forget = xstrdup("");
    int C = 0;
    if (rc == 0) {
        char **cls = NULL;
        int32_t *lab = NULL;
        int n = 0;
        BbClient c;
        if ((rc = bb_client_init(&c, url[0], NULL, e)) == 0 && (rc = bb_dataset(&c, &cls, &C, &lab, &n, e)) == 0) {
            int nf = (int)lround(o->forget_ratio * C);
            if (nf < 1 || nf >= C) rc = err_set(e, "--forget-ratio %.2f forgets %d of %d classes: at least one must go and one stay", o->forget_ratio, nf, C);
            for (int i = 0; i < nf && rc == 0; i++) {
                char *more = xasprintf("%s%s%d", forget, i ? "," : "", i);
                free(forget);
                forget = more;
            }
            bb_dataset_free(cls, C, lab);
        }
        bb_client_free(&c);
    }
    /* results so far (resume) */
    char *path = xasprintf("%s/results.json", o->out);
    cJSON *root = NULL;
    if (rc == 0 && (rc = resume_load(path, "runs", same_experiment, o, 0, &root, e)) == 0 && root && !o->quiet)
        fprintf(stderr, "resuming: %d runs already in %s\n", cJSON_GetArraySize(cJSON_GetObjectItem(root, "runs")), path);
    if (rc == 0 && !root) {
        root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "model", o->model);
        cJSON_AddStringToObject(root, "dataset", o->dataset);
        cJSON_AddNumberToObject(root, "budget", (double)o->budget);
        cJSON_AddNumberToObject(root, "shots", o->shots);
        cJSON_AddArrayToObject(root, "runs");
    }
    if (rc == 0) {
        cJSON_DeleteItemFromObject(root, "forget");
        cJSON_AddStringToObject(root, "forget", forget);
        cJSON_DeleteItemFromObject(root, "command");
        char *cmd = xasprintf(
                 "forget experiment blackbox --model %s --dataset %s --forget-ratio %g --seeds %d --budget %ld --shots %d "
                 "--suffix-len %d --lengths %s --length-seeds %d --out %s%s",
                 o->model, o->dataset, o->forget_ratio, o->seeds, o->budget, o->shots, o->L, o->lengths, o->length_seeds, o->out,
                 o->labels ? " --labels" : "");
        cJSON_AddStringToObject(root, "command", cmd);
        free(cmd);
    }
    /* the plan: (method, reveal, L, seed) */
    cJSON *runs = root ? cJSON_GetObjectItem(root, "runs") : NULL;
    int total = 0, done = 0;
    for (int pass = 0; pass < 2 && rc == 0; pass++)
        for (int rv = 0; rv < 2 && rc == 0; rv++)
            for (int k = 0; k < nm && rc == 0; k++)
                for (int li = -1; li < nL && rc == 0; li++) {
                    const int fam = blackbox_family(methods[k]);
                    if (rv == 1 && (!o->labels || fam != 0)) continue; /* labels: the strict methods */
                    if (li >= 0 && (rv == 1 || Ls[li] == o->L)) continue;
                    const int L = li < 0 ? o->L : Ls[li], seeds = li < 0 ? o->seeds : o->length_seeds;
                    for (int seed = 1; seed <= seeds && rc == 0; seed++) {
                        const char *reveal = rv ? "labels" : "probs";
                        if (pass == 0) {
                            total++;
                            continue;
                        }
                        done++;
                        BlackboxOpts bo;
                        blackbox_defaults(&bo);
                        cJSON *old = find_run(runs, methods[k], reveal, L, seed);
                        char spec[256] = "";
                        if (strcmp(methods[k], "dirichlet") == 0) dirichlet_params_format(&bo.dirichlet, spec, sizeof spec);
                        if (old && spec[0]) { /* a run with other (or unrecorded, older) dirichlet settings is redone */
                            const cJSON *was = cJSON_GetObjectItem(old, "dirichlet");
                            if (!cJSON_IsString(was) || strcmp(was->valuestring, spec) != 0) {
                                if (!o->quiet)
                                    fprintf(stderr, "dirichlet %s L=%d seed %d: stored with settings %s, now %s: running it again\n",
                                            reveal, L, seed, cJSON_IsString(was) ? was->valuestring : "(not recorded)", spec);
                                cJSON_Delete(cJSON_DetachItemViaPointer(runs, old));
                                old = NULL;
                            }
                        }
                        if (old) continue;
                        bo.api = url[rv ? 2 : fam == 1 ? 1 : 0];
                        bo.eval_api = url[3];
                        bo.forget = forget;
                        bo.method = methods[k];
                        bo.budget = o->budget;
                        bo.shots = o->shots;
                        bo.suffix_len = bo.n_ctx = L;
                        bo.seed = (uint64_t)seed;
                        bo.quiet = o->quiet; /* each run's own progress bar */
                        bo.model = o->model, bo.precision = o->precision;
                        bo.dataset = train_spec;
                        bo.data_dir = o->data_dir;
                        if (strncmp(o->dataset, "emoji", 5) == 0) bo.tpl = "an emoji of {}";
                        BlackboxResult r;
                        if ((rc = blackbox_run(&bo, &r, e)) != 0) {
                            err_prefix(e, "%s (L %d, seed %d, %s): ", methods[k], L, seed, reveal);
                            break;
                        }
                        if (!o->quiet)
                            fprintf(stderr, "[%d/%d] %-9s %-6s L=%-2d seed %d: H %.2f%% (Err_forget %.2f%%, Acc_keep %.2f%%), %ld queries, %.1f s\n",
                                    done, total, methods[k], reveal, L, seed, 100 * r.h, 100 * r.err_forget, 100 * r.acc_keep, r.queries,
                                    r.seconds);
                        cJSON *j = cJSON_CreateObject();
                        cJSON_AddStringToObject(j, "method", methods[k]);
                        cJSON_AddStringToObject(j, "family", family_name(methods[k]));
                        cJSON_AddNumberToObject(j, "L", L);
                        cJSON_AddNumberToObject(j, "seed", seed);
                        blackbox_result_json(j, &r);
                        cJSON_AddItemToArray(runs, j);
                        cJSON_DeleteItemFromObject(root, "zero_shot");
                        cJSON *z = cJSON_AddObjectToObject(root, "zero_shot");
                        cJSON_AddNumberToObject(z, "err_forget", r.base_err);
                        cJSON_AddNumberToObject(z, "acc_keep", r.base_acc);
                        cJSON_AddNumberToObject(z, "H", r.base_h);
                        if ((rc = save_json(o->out, root, e)) == 0) rc = write_reports(o, root, methods, nm, Ls, nL, e);
                    }
                }
    if (rc == 0 && root && cJSON_GetObjectItem(root, "zero_shot")) rc = write_reports(o, root, methods, nm, Ls, nL, e);
    if (rc == 0 && !o->quiet) fprintf(stderr, "wrote %s/results.json, results.md, report.html\n", o->out);
    for (int i = 0; i < 4; i++) bb_server_stop(srv[i]);
    cJSON_Delete(root);
    free_list(methods, nm), free_list(lens, nLs), free(Ls);
    free(train_spec), free(test_spec), free(forget), free(path);
    return rc;
}

int blackbox_write_report(const BlackboxOpts *o, const BlackboxResult *r, const char *path, Err *e) {
    double qx[BLACKBOX_MAX_CURVE + 1], qy[BLACKBOX_MAX_CURVE + 1];
    qx[0] = 0, qy[0] = r->base_h; /* before any query: the zero-shot prompts */
    for (int i = 0; i < r->n_curve; i++) qx[i + 1] = (double)r->curve_queries[i], qy[i + 1] = r->curve_h[i];
    PlotSeries s = {o->method, r->n_curve + 1, qx, qy, NULL, 0, 0, 0};
    PlotAxes a = {"H on the test split against queries spent", "queries", "H of the best-so-far candidate", 0, 0, 1};
    char *svg = svg_line_chart(&a, &s, 1);
    char *html = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&html, &n);
    fprintf(f, "<!doctype html><html><head><meta charset=\"utf-8\"><title>forget: black-box forgetting</title>"
               "<style>body{font-family:sans-serif;max-width:820px;margin:2em auto}table{border-collapse:collapse}"
               "td,th{border:1px solid #ccc;padding:3px 10px;text-align:right}td:first-child{text-align:left}</style></head><body>\n");
    fprintf(f, "<h1>Black-box forgetting</h1><p>API <code>%s</code>, evaluation on <code>%s</code> (whole split). Forget "
               "<b>%s</b> with <code>%s</code>%s (%s family), %ld queries, %.1f s. %s: <code>%s</code></p>\n",
            o->api, o->eval_api ? o->eval_api : o->api, o->forget, o->method,
            strcmp(o->method, "dirichlet") == 0 ? ", <b>our reconstruction</b> of the programme's strict method" : "",
            family_name(o->method), r->queries, r->seconds, r->family ? "Context" : "Suffix", r->suffix);
    fprintf(f, "<table><tr><th></th><th>Err_forget %%</th><th>Acc_keep %%</th><th>H %%</th></tr>\n"
               "<tr><td>before (zero-shot)</td><td>%.2f</td><td>%.2f</td><td>%.2f</td></tr>\n"
               "<tr><td>after</td><td>%.2f</td><td>%.2f</td><td><b>%.2f</b></td></tr></table>\n",
            100 * r->base_err, 100 * r->base_acc, 100 * r->base_h, 100 * r->err_forget, 100 * r->acc_keep, 100 * r->h);
    fprintf(f, "<p>Err_forget: top-1 error on the test images of the forgotten classes; Acc_keep: top-1 accuracy on the "
               "others; H: their harmonic mean (higher is better).</p>\n%s</body></html>\n", svg);
    fclose(f);
    int rc = write_file_atomic(path, html, n, e);
    free(html), free(svg);
    return rc;
}

void blackbox_result_json(cJSON *j, const BlackboxResult *r) {
    cJSON_AddStringToObject(j, "suffix", r->suffix);
    if (r->settings[0]) cJSON_AddStringToObject(j, "dirichlet", r->settings); /* defaults change between versions */
    cJSON_AddNumberToObject(j, "err_forget", r->err_forget);
    cJSON_AddNumberToObject(j, "acc_keep", r->acc_keep);
    cJSON_AddNumberToObject(j, "H", r->h);
    cJSON_AddNumberToObject(j, "validation_H", r->val_h);
    cJSON_AddNumberToObject(j, "queries", (double)r->queries);
    cJSON_AddNumberToObject(j, "eval_queries", (double)r->eval_queries);
    cJSON_AddNumberToObject(j, "seconds", r->seconds);
    cJSON_AddStringToObject(j, "revealed", r->labels_only ? "labels" : "probs");
    cJSON *z = cJSON_AddObjectToObject(j, "zero_shot");
    cJSON_AddNumberToObject(z, "err_forget", r->base_err);
    cJSON_AddNumberToObject(z, "acc_keep", r->base_acc);
    cJSON_AddNumberToObject(z, "H", r->base_h);
    cJSON *cv = cJSON_AddArrayToObject(j, "curve");
    for (int i = 0; i < r->n_curve; i++) {
        double pt[2] = {(double)r->curve_queries[i], r->curve_h[i]};
        cJSON_AddItemToArray(cv, cJSON_CreateDoubleArray(pt, 2));
    }
}
