/* forget experiment erasure's summary, results.md and report.html. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/report_html.h"
#include "forget/diffusion/erasure_internal.h"
#include "forget/resume.h"
#include "io/atomic_file.h"
#include "io/json_file.h"

static const char *const FIELDS[] = {"erased_acc", "others_acc", "H", "erased_acc_ctx", "others_acc_ctx", "H_ctx",
                                     "fd", "clip_score", "trainable_params", "peak_mb", "seconds"};
enum { N_FIELDS = sizeof FIELDS / sizeof *FIELDS };

static const char *label(const char *m) {
    if (strcmp(m, "none") == 0) return "none (the unerased model)";
    if (strcmp(m, "escape") == 0) return "escape (reconstruction)";
    if (strcmp(m, "escape-pooled") == 0) return "escape, pooled loss (ablation)";
    if (strcmp(m, "escape-proj") == 0) return "escape, TCS projection";
    return m;
}

/* Whether run r's concept is one of the picked classes. */
static int picked(const cJSON *r, const char *const *classes, const int *pick, int K) {
    const char *c = resume_str(r, "concept");
    for (int k = 0; k < K && c; k++)
        if (pick[k] && strcmp(classes[k], c) == 0) return 1;
    return 0;
}

/* The methods in first-seen order, and per method the mean of each field over its runs on the
 * picked classes. */
static cJSON *summarise(const cJSON *runs, const char *const *classes, const int *pick, int K) {
    cJSON *sum = cJSON_CreateArray();
    const cJSON *r;
    cJSON_ArrayForEach(r, runs) {
        const char *m = resume_str(r, "method");
        if (!m || !picked(r, classes, pick, K)) continue;
        int seen = 0;
        const cJSON *s;
        cJSON_ArrayForEach(s, sum) seen |= strcmp(resume_str(s, "method"), m) == 0;
        if (seen) continue;
        double tot[N_FIELDS] = {0};
        int n = 0;
        const cJSON *q;
        cJSON_ArrayForEach(q, runs) {
            const char *mq = resume_str(q, "method");
            if (!mq || strcmp(mq, m) != 0 || !picked(q, classes, pick, K)) continue;
            for (int f = 0; f < N_FIELDS; f++) tot[f] += resume_num(q, FIELDS[f]);
            n++;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "method", m);
        cJSON_AddNumberToObject(o, "concepts", n);
        for (int f = 0; f < N_FIELDS; f++) cJSON_AddNumberToObject(o, FIELDS[f], tot[f] / n);
        cJSON_AddItemToArray(sum, o);
    }
    return sum;
}

static void num_cell(FILE *f, double v, const char *fmt) {
    if (!isfinite(v) || v < 0) fputs(" - |", f);
    else {
        fputc(' ', f);
        fprintf(f, fmt, v);
        fputs(" |", f);
    }
}

int erasure_write_reports(const ErasureExpOpts *o, cJSON *root, const char *const *classes, const int *pick, int K,
                          Err *e) {
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(root, "runs");
    cJSON_DeleteItemFromObjectCaseSensitive(root, "summary");
    cJSON *sum = summarise(runs, classes, pick, K);
    cJSON_AddItemToObject(root, "summary", sum);
    char *path = xasprintf("%s/results.json", o->out);
    int rc = json_write_atomic(path, root, e);
    free(path);
    if (rc) return -1;
    char *md = NULL;
    size_t ml = 0;
    FILE *f = open_memstream(&md, &ml);
    fprintf(f, "# Concept erasure: %s\n\n", o->unet);
    fprintf(f,
            "Text encoder `%s`, judge `%s`. Each method erases one class at a time; the figures are means over the "
            "classes erased. Judged accuracy on %d images a class of \"a photo of a {}.\" and %d with context words "
            "(templates held out from the escape token's training), %d DDIM steps, guidance %g, seed %llu. "
            "H = harmonic mean of (100 - erased) and others. FD and CLIP score: the kept classes' images in the space "
            "of `%s` (FD against as many real images of those classes; `-`: no scoring CLIP). Peak memory: the "
            "erasure's own process (VmHWM), seconds its wall time with loading. The escape token is **our "
            "reconstruction** of an unpublished method (../shared/methods/diffusion-erasure.md 2.1).\n\n",
            o->clip, o->judge, o->per_class, o->per_class_ctx, o->steps, (double)o->cfg, (unsigned long long)o->seed,
            o->score_clip ? o->score_clip : "none");
    fputs("## Bare prompt\n\n| method | classes | erased acc (lower) | others acc (higher) | H | FD (lower) | CLIP score | "
          "trainable params | peak MB | seconds |\n|---|---|---|---|---|---|---|---|---|---|\n", f);
    const cJSON *s;
    cJSON_ArrayForEach(s, sum) {
        fprintf(f, "| %s | %d |", label(resume_str(s, "method")), (int)resume_num(s, "concepts"));
        num_cell(f, resume_num(s, "erased_acc"), "%.1f");
        num_cell(f, resume_num(s, "others_acc"), "%.1f");
        num_cell(f, resume_num(s, "H"), "%.1f");
        num_cell(f, resume_num(s, "fd"), "%.2f");
        num_cell(f, resume_num(s, "clip_score"), "%.2f");
        num_cell(f, resume_num(s, "trainable_params"), "%.0f");
        num_cell(f, resume_num(s, "peak_mb"), "%.0f");
        num_cell(f, resume_num(s, "seconds"), "%.1f");
        fputc('\n', f);
    }
    fputs("\n## With context words in the prompt\n\n| method | erased acc (lower) | others acc (higher) | H |\n"
          "|---|---|---|---|\n", f);
    cJSON_ArrayForEach(s, sum) {
        fprintf(f, "| %s |", label(resume_str(s, "method")));
        num_cell(f, resume_num(s, "erased_acc_ctx"), "%.1f");
        num_cell(f, resume_num(s, "others_acc_ctx"), "%.1f");
        num_cell(f, resume_num(s, "H_ctx"), "%.1f");
        fputc('\n', f);
    }
    fputs("\n## Erased-class accuracy per class (bare prompt)\n\n| method |", f);
    for (int k = 0; k < K; k++) if (pick[k]) fprintf(f, " %s |", classes[k]);
    fputs("\n|---|", f);
    for (int k = 0; k < K; k++) if (pick[k]) fputs("---|", f);
    fputc('\n', f);
    cJSON_ArrayForEach(s, sum) {
        const char *m = resume_str(s, "method");
        fprintf(f, "| %s |", label(m));
        for (int k = 0; k < K; k++) {
            if (!pick[k]) continue;
            double v = NAN;
            const cJSON *r;
            cJSON_ArrayForEach(r, runs) if (strcmp(resume_str(r, "method"), m) == 0 && strcmp(resume_str(r, "concept"), classes[k]) == 0) v =
                resume_num(r, "erased_acc");
            num_cell(f, v, "%.0f");
        }
        fputc('\n', f);
    }
    fclose(f);
    char *mdp = xasprintf("%s/results.md", o->out);
    rc = write_file_atomic(mdp, md, strlen(md), e);
    free(mdp);
    /* report.html: the same text, then one grid a method */
    char *html = NULL;
    size_t hl = 0;
    f = open_memstream(&html, &hl);
    html_report_begin(f, "concept erasure");
    html_from_markdown(f, md);
    fputs("<h2>Samples</h2><p>Each row erases one class; the images are its bare prompt at the same seeds, the "
          "unerased model's on the left.</p>\n",
          f);
    cJSON_ArrayForEach(s, sum) {
        const char *m = resume_str(s, "method");
        if (strcmp(m, "none") == 0) continue;
        fputs("<h3>", f);
        html_escape(f, label(m));
        fputs("</h3>\n<table class=\"grid\"><tr><th>erased class</th><th>original</th><th>after</th></tr>\n", f);
        for (int k = 0; k < K; k++) {
            if (!pick[k]) continue;
            int have = 0;
            const cJSON *r;
            cJSON_ArrayForEach(r, runs) have |= strcmp(resume_str(r, "method"), m) == 0 && strcmp(resume_str(r, "concept"), classes[k]) == 0;
            if (!have) continue;
            fputs("<tr><td>", f);
            html_escape(f, classes[k]);
            fprintf(f, "</td><td><img src=\"images/none-%d.png\" width=\"%d\"></td><td><img src=\"images/", k, 4 * 70);
            html_escape(f, m);
            fprintf(f, "-%d.png\" width=\"%d\"></td></tr>\n", k, 4 * 70);
        }
        fputs("</table>\n", f);
    }
    fputs("<style>table.grid img{image-rendering:pixelated}</style></body></html>\n", f);
    fclose(f);
    char *hp = xasprintf("%s/report.html", o->out);
    if (!rc) rc = write_file_atomic(hp, html, strlen(html), e);
    free(hp), free(html), free(md);
    return rc;
}
