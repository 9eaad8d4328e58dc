/* The domain-unlearning experiment: runs, summary, tables, report (domain_experiment.h). */
#include "forget/domain_experiment.h"

#include "core/mem_peak.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/mem_peak.h"
#include "eval/report_html.h"
#include "eval/svg_plot.h"
#include "forget/resume.h"
#include "io/atomic_file.h"
#include "io/json_file.h"

void domain_experiment_defaults(DomainExperimentOpts *o) {
    memset(o, 0, sizeof *o);
    domain_defaults(&o->run);
    o->run.quiet = 1;
    o->seeds = 3;
    o->map_points = 1200;
}

static char **split_list(const char *s, char sep, int *n) {
    char **v = NULL;
    *n = 0;
    const char *p = s;
    while (p && *p) {
        const char *q = strchr(p, sep);
        const size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len) {
            v = xrealloc(v, sizeof(char *) * (size_t)(*n + 1));
            v[*n] = xmalloc(len + 1);
            memcpy(v[*n], p, len);
            v[*n][len] = 0;
            (*n)++;
        }
        p = q ? q + 1 : NULL;
    }
    return v;
}

static void free_list(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

typedef struct {
    const char *model, *dataset;
    int shots, epochs, max_test;
} Same;

static int same_experiment(const cJSON *root, const void *ctx) {
    const Same *s = ctx;
    const char *m = resume_str(root, "model"), *d = resume_str(root, "dataset");
    return m && d && strcmp(m, s->model) == 0 && strcmp(d, s->dataset) == 0 && resume_num(root, "shots") == s->shots &&
           resume_num(root, "epochs") == s->epochs && resume_num(root, "max_test") == s->max_test;
}

/* A run of (method, setting, seed) already in the results. */
static cJSON *find_run(cJSON *runs, const char *method, const char *setting, int seed) {
    cJSON *r;
    cJSON_ArrayForEach(r, runs) {
        const char *m = resume_str(r, "method"), *f = resume_str(r, "forget_domains");
        if (m && f && strcmp(m, method) == 0 && strcmp(f, setting) == 0 && resume_num(r, "seed") == seed) return r;
    }
    return NULL;
}

typedef struct {
    double h, mem, fe, h_sd, mem_sd, fe_sd, probe0, probe1, trainable, peak, seconds;
    int n;
} Summary;

static Summary summarise(cJSON *runs, const char *method, const char *setting) {
    Summary s = {0};
    double hs[64], ms[64], fs[64];
    cJSON *r;
    cJSON_ArrayForEach(r, runs) {
        const char *m = resume_str(r, "method"), *f = resume_str(r, "forget_domains");
        if (!m || !f || strcmp(m, method) != 0 || strcmp(f, setting) != 0 || s.n >= 64) continue;
        hs[s.n] = resume_num(r, "H"), ms[s.n] = resume_num(r, "mem"), fs[s.n] = resume_num(r, "for");
        s.h += hs[s.n], s.mem += ms[s.n], s.fe += fs[s.n];
        s.probe0 += resume_num(r, "domain_probe_before"), s.probe1 += resume_num(r, "domain_probe_after");
        s.trainable = resume_num(r, "trainable");
        s.peak = fmax(s.peak, resume_num(r, "peak_mib"));
        s.seconds += resume_num(r, "seconds");
        s.n++;
    }
    if (!s.n) return s;
    s.h /= s.n, s.mem /= s.n, s.fe /= s.n, s.probe0 /= s.n, s.probe1 /= s.n, s.seconds /= s.n;
    for (int i = 0; i < s.n && s.n > 1; i++) {
        s.h_sd += (hs[i] - s.h) * (hs[i] - s.h) / (s.n - 1);
        s.mem_sd += (ms[i] - s.mem) * (ms[i] - s.mem) / (s.n - 1);
        s.fe_sd += (fs[i] - s.fe) * (fs[i] - s.fe) / (s.n - 1);
    }
    s.h_sd = sqrt(s.h_sd), s.mem_sd = sqrt(s.mem_sd), s.fe_sd = sqrt(s.fe_sd);
    return s;
}

static void md_row(FILE *f, const char *label, const Summary *s) {
    if (!s->n) {
        fprintf(f, "| %s | — | — | — | | | |\n", label);
        return;
    }
    fprintf(f, "| %s | %.2f ± %.2f | %.2f ± %.2f | %.2f ± %.2f | %.0f | %.0f | %.0f |\n", label, 100 * s->h,
            100 * s->h_sd, 100 * s->mem, 100 * s->mem_sd, 100 * s->fe, 100 * s->fe_sd, s->trainable, s->peak, s->seconds);
}

static int is_ablation(const char *m) {
    return strcmp(m, "adu-ddl-only") == 0 || strcmp(m, "adu-instapg-only") == 0 || strcmp(m, "ce-only") == 0 ||
           strcmp(m, "mmd-only") == 0;
}

static const char *MAIN[] = {"lp++", "clipfit", "bbf", "baseline", "adu"};
static const char *ABL[][2] = {{"baseline", "Baseline (VPT-deep)"},
                               {"adu-instapg-only", "+InstaPG"},
                               {"adu-ddl-only", "+DDL"},
                               {"adu", "Both (ADU)"}};
static const char *INSIDE[][2] = {{"mmd-only", "MMD only"}, {"ce-only", "CE only"}, {"adu", "both"}};

static char *write_markdown(const DomainExperimentOpts *o, cJSON *runs, char **settings, int n_set, const double *zs_h,
                            const double *zs_mem, const double *zs_for) {
    char *md = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&md, &len);
    fprintf(f, "# Domain unlearning on %s\n\n", o->run.dataset);
    char test_desc[96], extra[160] = "";
    if (o->run.max_test > 0) snprintf(test_desc, sizeof test_desc, "the first %d images of the test split", o->run.max_test);
    else snprintf(test_desc, sizeof test_desc, "the whole test split");
    if (o->run.max_test > 0) snprintf(extra, sizeof extra, " --max-test %d", o->run.max_test);
    if (o->run.epochs != 50) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " --epochs %d", o->run.epochs);
    if (o->run.eval_every != 5)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " --eval-every %d", o->run.eval_every);
    if (o->ablation_settings > 0)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " --ablation-settings %d", o->ablation_settings);
    if (o->methods) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " --methods %s", o->methods);
    fprintf(f, "Model `%s`; %d seeds; %d shots per class and domain for training and %d for validation (the "
               "epoch with the best validation H is kept); every number is on %s. H, Mem and For in %%, mean ± std over seeds; trainable parameters; peak resident memory of the run (MiB, the data set held in memory included); seconds "
               "per run on this machine. Command: `forget experiment domain --model %s --dataset %s --out %s "
               "--seeds %d%s`.\n\n",
            o->run.model, o->seeds, o->run.shots, o->run.val_shots, test_desc, o->run.model, o->run.dataset, o->out,
            o->seeds, extra);
    for (int s = 0; s < n_set; s++) {
        fprintf(f, "## Forgetting %s\n\n", settings[s]);
        fprintf(f, "| method | H | Mem | For | trainable | peak MiB | s/run |\n|---|---|---|---|---|---|---|\n");
        fprintf(f, "| zero-shot | %.2f | %.2f | %.2f | 0 | | |\n", 100 * zs_h[s], 100 * zs_mem[s], 100 * zs_for[s]);
        for (size_t k = 0; k < sizeof MAIN / sizeof *MAIN; k++) {
            const Summary sm = summarise(runs, MAIN[k], settings[s]);
            md_row(f, MAIN[k], &sm);
        }
        int have_abl = 0; /* the ablation tables only where their runs exist (--ablation-settings) */
        for (size_t k = 1; k < 3; k++) have_abl |= summarise(runs, ABL[k][0], settings[s]).n > 0;
        for (size_t k = 0; k < 2; k++) have_abl |= summarise(runs, INSIDE[k][0], settings[s]).n > 0;
        if (have_abl) {
            fprintf(f, "\nAblation:\n\n| configuration | H | Mem | For | trainable | peak MiB | s/run |\n"
                       "|---|---|---|---|---|---|---|\n");
            for (size_t k = 0; k < sizeof ABL / sizeof *ABL; k++) {
                const Summary sm = summarise(runs, ABL[k][0], settings[s]);
                md_row(f, ABL[k][1], &sm);
            }
            fprintf(f, "\nInside DDL (with InstaPG):\n\n| configuration | H | Mem | For | trainable | peak MiB | s/run |\n"
                       "|---|---|---|---|---|---|---|\n");
            for (size_t k = 0; k < sizeof INSIDE / sizeof *INSIDE; k++) {
                const Summary sm = summarise(runs, INSIDE[k][0], settings[s]);
                md_row(f, INSIDE[k][1], &sm);
            }
        }
        const Summary a = summarise(runs, "adu", settings[s]), b = summarise(runs, "baseline", settings[s]);
        if (a.n)
            fprintf(f, "\nDomain linear probe on the test features (fit on validation): zero-shot %.2f%%, baseline "
                       "%.2f%%, ADU %.2f%%.\n\n", 100 * a.probe0, 100 * b.probe1, 100 * a.probe1);
    }
    fclose(f);
    return md;
}

static int write_report(const DomainExperimentOpts *o, const char *md, const char *map_svg, int map_n, Err *e) {
    char *html = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&html, &len);
    html_report_begin(f, "domain unlearning");
    html_from_markdown(f, md);
    if (map_svg) {
        fprintf(f, "<h2>Feature map</h2><p>t-SNE of the normalised image features of %d test images, coloured by "
                   "domain: zero-shot (left) and with ADU's prompts (right), forgetting the first setting, seed 0 "
                   "(the picture of the seed's fig. 5; the probe accuracies above are the number).</p>\n"
                   "<div class=\"maps\">%s</div>\n", map_n, map_svg);
    }
    fprintf(f, "</body></html>\n");
    fclose(f);
    char *path = xasprintf("%s/report.html", o->out);
    const int rc = write_file_atomic(path, html, len, e);
    free(path), free(html);
    return rc;
}

static int mkdir_one(const char *d, Err *e) {
    if (mkdir(d, 0755) != 0 && errno != EEXIST) return err_set(e, "%s: cannot create: %s", d, strerror(errno));
    return 0;
}

int domain_experiment_run(const DomainExperimentOpts *o, Err *e) {
    if (mkdir_one(o->out, e)) return -1;
    const char *def = strncmp(o->run.dataset, "emoji", 5) == 0 ? "line art;color"
                                                              : "sketch;sketch,negative;sketch,negative,painting";
    int n_set, n_meth;
    char **settings = split_list(o->settings ? o->settings : def, ';', &n_set);
    char *all = NULL;
    {
        size_t l = 0;
        FILE *f = open_memstream(&all, &l);
        for (int i = 0; i < N_DOMAIN_METHODS; i++) fprintf(f, "%s%s", i ? "," : "", DOMAIN_METHODS[i].name);
        fclose(f);
    }
    char **methods = split_list(o->methods ? o->methods : all, ',', &n_meth);
    free(all);
    int rc = 0;
    for (int i = 0; i < n_meth && rc == 0; i++)
        if (!domain_method_find(methods[i])) rc = err_set(e, "--methods: unknown method \"%s\"", methods[i]);
    char *path = xasprintf("%s/results.json", o->out);
    cJSON *root = NULL;
    const Same same = {o->run.model, o->run.dataset, o->run.shots, o->run.epochs, o->run.max_test};
    if (rc == 0) rc = resume_load(path, "runs", same_experiment, &same, 0, &root, e);
    if (rc == 0 && !root) {
        root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "model", o->run.model);
        cJSON_AddStringToObject(root, "dataset", o->run.dataset);
        cJSON_AddNumberToObject(root, "shots", o->run.shots);
        cJSON_AddNumberToObject(root, "epochs", o->run.epochs);
        cJSON_AddNumberToObject(root, "max_test", o->run.max_test);
        cJSON_AddArrayToObject(root, "runs");
    }
    cJSON *runs = root ? cJSON_GetObjectItemCaseSensitive(root, "runs") : NULL;
    DomainCache *cache = domain_cache_new();
    double *zs_h = xcalloc((size_t)n_set, sizeof(double)), *zs_mem = xcalloc((size_t)n_set, sizeof(double));
    double *zs_for = xcalloc((size_t)n_set, sizeof(double));
    char *map_prompts = xasprintf("%s/adu-map.safetensors", o->out);
    const int total = n_set * n_meth * o->seeds;
    int done = 0;
    for (int s = 0; s < n_set && rc == 0; s++)
        for (int k = 0; k < n_meth && rc == 0; k++)
            for (int seed = 0; seed < o->seeds && rc == 0; seed++) {
                done++;
                if (o->ablation_settings > 0 && s >= o->ablation_settings && is_ablation(methods[k])) continue;
                cJSON *have = find_run(runs, methods[k], settings[s], seed);
                if (have) {
                    zs_h[s] = resume_num(have, "zero_shot_H"), zs_mem[s] = resume_num(have, "zero_shot_mem");
                    zs_for[s] = resume_num(have, "zero_shot_for");
                    continue;
                }
                DomainOpts ro = o->run;
                ro.method = methods[k], ro.forget = settings[s], ro.seed = (uint64_t)seed, ro.cache = cache;
                ro.out = s == 0 && seed == 0 && strcmp(methods[k], "adu") == 0 ? map_prompts : NULL;
                fprintf(stderr, "domain [%d/%d] %s, forgetting %s, seed %d\n", done, total, methods[k], settings[s],
                            seed);
                mem_peak_reset();
                DomainResult r;
                if ((rc = domain_run(&ro, &r, e))) {
                    err_prefix(e, "%s forgetting %s, seed %d: ", methods[k], settings[s], seed);
                    break;
                }
                cJSON *j = domain_result_json(&r);
                cJSON_AddNumberToObject(j, "seed", seed);
                cJSON_AddNumberToObject(j, "peak_mib", mem_peak_mib());
                cJSON_AddItemToArray(runs, j);
                zs_h[s] = r.base_h, zs_mem[s] = r.base_mem, zs_for[s] = r.base_for;
                fprintf(stderr, "  H %.2f  Mem %.2f  For %.2f  (%.0f s)\n", 100 * r.h, 100 * r.mem, 100 * r.forget_err,
                        r.seconds);
                rc = json_write_atomic(path, root, e);
            }
    if (rc == 0) { /* the summary */
        cJSON_DeleteItemFromObject(root, "summary");
        cJSON *sum = cJSON_AddArrayToObject(root, "summary");
        for (int s = 0; s < n_set; s++)
            for (int k = 0; k < n_meth; k++) {
                const Summary sm = summarise(runs, methods[k], settings[s]);
                cJSON *j = cJSON_CreateObject();
                cJSON_AddStringToObject(j, "method", methods[k]);
                cJSON_AddStringToObject(j, "forget_domains", settings[s]);
                const struct {
                    const char *key;
                    double v;
                } f[] = {{"H", sm.h}, {"mem", sm.mem}, {"for", sm.fe}, {"h_std", sm.h_sd}, {"mem_std", sm.mem_sd},
                         {"for_std", sm.fe_sd}, {"domain_probe_before", sm.probe0}, {"domain_probe_after", sm.probe1},
                         {"trainable", sm.trainable}, {"peak_mib", sm.peak}, {"seconds", sm.seconds}, {"runs", sm.n}};
                for (size_t q = 0; q < sizeof f / sizeof *f; q++) cJSON_AddNumberToObject(j, f[q].key, f[q].v);
                cJSON_AddItemToArray(sum, j);
            }
        rc = json_write_atomic(path, root, e);
    }
    char *md = NULL, *svg = NULL;
    int map_n = 0;
    if (rc == 0) {
        md = write_markdown(o, runs, settings, n_set, zs_h, zs_mem, zs_for);
        char *mdp = xasprintf("%s/results.md", o->out);
        rc = write_file_atomic(mdp, md, strlen(md), e);
        free(mdp);
    }
    struct stat sb;
    if (rc == 0 && o->map_points > 0 && stat(map_prompts, &sb) == 0) { /* the feature map, from ADU's first run */
        int n = o->map_points;
        float *a = xalloc_floats(2 * (size_t)n), *b = xalloc_floats(2 * (size_t)n);
        int *dom = xmalloc(sizeof(int) * (size_t)n);
        DomainOpts ro = o->run;
        ro.cache = cache;
        fprintf(stderr, "domain: t-SNE of %d test features, zero-shot and with ADU\n", n);
        rc = domain_feature_map(&ro, map_prompts, &n, a, b, dom, e);
        map_n = n;
        if (rc == 0) {
            const char *names[DOMAIN_MAX];
            int nd = 0;
            cJSON *r0 = cJSON_GetArrayItem(runs, 0);
            const cJSON *doms = r0 ? cJSON_GetObjectItemCaseSensitive(r0, "domains") : NULL, *d;
            cJSON_ArrayForEach(d, doms) if (nd < DOMAIN_MAX) names[nd++] = resume_str(d, "name");
            char t0[128], t1[128];
            snprintf(t0, sizeof t0, "zero-shot");
            snprintf(t1, sizeof t1, "ADU, forgetting %s", settings[0]);
            char *s0 = svg_scatter(t0, a, dom, n, names, nd), *s1 = svg_scatter(t1, b, dom, n, names, nd);
            svg = xasprintf("%s%s", s0, s1);
            free(s0), free(s1);
        }
        free(a), free(b), free(dom);
    }
    if (rc == 0) rc = write_report(o, md, svg, map_n, e);
    if (rc == 0) fprintf(stderr, "domain: wrote %s/results.json, results.md, report.html\n", o->out);
    free(md), free(svg), free(path), free(map_prompts), free(zs_h), free(zs_mem), free(zs_for);
    domain_cache_free(cache);
    cJSON_Delete(root);
    free_list(settings, n_set), free_list(methods, n_meth);
    return rc;
}
