#include "forget/bias_experiment.h"

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
#include "eval/svg_plot.h"
#include "forget/debias.h"
#include "forget/vocab.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/json_file.h"
#include "io/emoji.h"
#include "models/clip_encode.h"
#include "io/file_open.h"

void bias_experiment_defaults(BiasExperimentOpts *o) {
    memset(o, 0, sizeof *o);
    o->K = 8;
    o->vocab = 2000;
    o->seed = 1;
}

/* ------------------------------------------------------------ evaluation sets */

typedef struct {
    char name[96];
    int *rows, n;   /* image rows of the split's table */
    int32_t *label; /* index into cls */
    int *cls, C;    /* subjects of the classes */
} ZsTask;

typedef struct {
    char *subject;
    int *rows, n;
    int32_t *attr[2];
    uint8_t use[2]; /* which attributes this query measures */
} BiasQuery;

typedef struct {
    float *img;     /* [n_img, E] original image features */
    int n_img;
    char **subj;    /* class subjects, shared by the tasks */
    int n_subj;
    ZsTask *tasks;
    int n_tasks;
    BiasQuery *q;
    int n_q, n_attr, A[2];
    int group_task; /* spurious: the task whose (class, tint) groups give worst-group accuracy; -1 none */
    int32_t *group;
    int G;
    char **heldout; /* vocabulary words for the neighbourhood measure */
    int n_heldout;
} EvalSet;

typedef struct {
    double skew[2], kl[2], ndkl[2]; /* per attribute, mean over queries */
    double avg, worst;              /* group accuracy (spurious) */
    double general;                 /* mean zero-shot top-1 over tasks */
    double neighbour;               /* 10-NN overlap of held-out words */
    double bias;                    /* the setting's scalar */
    double *task_acc;
    double *unit;                   /* what the bias is made of, for the bootstrap: emoji [n_q][2] MaxSkew
                                       (NaN: not measured), spurious [n] 1/0 right on the group task */
    int n_unit, unit_stride;        /* queries (stride 2) or images (stride 1) */
} Metrics;

static void evalset_free(EvalSet *s) {
    free(s->img);
    for (int i = 0; i < s->n_subj; i++) free(s->subj[i]);
    free(s->subj);
    for (int t = 0; t < s->n_tasks; t++) free(s->tasks[t].rows), free(s->tasks[t].label), free(s->tasks[t].cls);
    free(s->tasks);
    for (int i = 0; i < s->n_q; i++) free(s->q[i].subject), free(s->q[i].rows), free(s->q[i].attr[0]), free(s->q[i].attr[1]);
    free(s->q), free(s->group);
    for (int i = 0; i < s->n_heldout; i++) free(s->heldout[i]);
    free(s->heldout);
    memset(s, 0, sizeof *s);
}

/* Image features of every sample of d (appended to s->img); returns the first row. */
static int add_images(EvalSet *s, const ClipModel *m, const Dataset *d, const int *idx, int n, Err *e) {
    const int E = m->cfg.embed_dim, R = m->cfg.image_res, first = s->n_img;
    s->img = xrealloc(s->img, sizeof(float) * (size_t)(s->n_img + n) * E);
    float *px = xalloc_floats((size_t)CLIP_ENCODE_BATCH * 3 * R * R);
    int rc = 0;
    for (int b = 0; b < n && rc == 0; b += CLIP_ENCODE_BATCH) {
        const int nb = n - b < CLIP_ENCODE_BATCH ? n - b : CLIP_ENCODE_BATCH;
        dataset_pixels(d, idx + b, nb, R, &PIXELS_CLIP, px, NULL, 0);
        rc = clip_encode_image(m, px, nb, s->img + (size_t)(first + b) * E, NULL, e);
    }
    free(px);
    s->n_img += n;
    return rc ? -1 : first;
}

static int add_subject(EvalSet *s, const char *subj) {
    s->subj = xrealloc(s->subj, sizeof(char *) * (size_t)(s->n_subj + 1));
    s->subj[s->n_subj] = xstrdup(subj);
    return s->n_subj++;
}

/* A zero-shot task over classes cls_of[...] (dataset class ids mapped to subjects base + id). */
static ZsTask *add_task(EvalSet *s, const char *name) {
    s->tasks = xrealloc(s->tasks, sizeof(ZsTask) * (size_t)(s->n_tasks + 1));
    ZsTask *t = &s->tasks[s->n_tasks++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

/* Every class of d as a task over rows first.. (all samples, or those of domain dom >= 0). */
static void task_all_classes(EvalSet *s, const char *name, const Dataset *d, int first, int subj_base, int n_rows, const int *idx,
                             int dom) {
    ZsTask *t = add_task(s, name);
    t->C = d->n_classes;
    t->cls = xmalloc(sizeof(int) * (size_t)t->C);
    for (int c = 0; c < t->C; c++) t->cls[c] = subj_base + c;
    t->rows = xmalloc(sizeof(int) * (size_t)n_rows), t->label = xmalloc(sizeof(int32_t) * (size_t)n_rows);
    for (int i = 0; i < n_rows; i++) {
        if (dom >= 0 && d->domains[idx[i]] != dom) continue;
        t->rows[t->n] = first + i, t->label[t->n++] = d->labels[idx[i]];
    }
}

/* ------------------------------------------------------------ the settings */

typedef struct {
    int spurious;
    const char *tpl;
    EvalSet val, test;
    DebiasData data;
    /* owned storage behind data */
    char **bias, **pa, **pb, **vocab, **aug, **trq, **keep;
    int n_bias, n_pairs, n_vocab, n_aug, n_trq, n_keep;
    float *ref;
    int32_t *ref_attr;
    int n_ref;
} Setting;

static char **strv_push(char **v, int *n, const char *s) {
    v = xrealloc(v, sizeof(char *) * (size_t)(*n + 1));
    v[(*n)++] = xstrdup(s);
    return v;
}

/* One positive pair: two prompts that differ only in the attribute. */
static void push_pair(Setting *st, const char *a, const char *b) {
    int n = st->n_pairs;
    st->pa = strv_push(st->pa, &n, a);
    n = st->n_pairs;
    st->pb = strv_push(st->pb, &n, b);
    st->n_pairs = n;
}

static void strv_free(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void setting_free(Setting *st) {
    evalset_free(&st->val), evalset_free(&st->test);
    strv_free(st->bias, st->n_bias), strv_free(st->pa, st->n_pairs), strv_free(st->pb, st->n_pairs);
    strv_free(st->vocab, st->n_vocab), strv_free(st->aug, st->n_aug), strv_free(st->trq, st->n_trq);
    strv_free(st->keep, st->n_keep);
    free(st->ref), free(st->ref_attr);
}

static int *iota_step(int n, int step, int *count) {
    int k = (n + step - 1) / step, *v = xmalloc(sizeof(int) * (size_t)(k ? k : 1));
    for (int i = 0; i < k; i++) v[i] = i * step;
    *count = k;
    return v;
}

/* Queries: each neutral phrase with its people variants (colour images) in d; phrases alternate
 * between validation (odd) and test (even). */
static void emoji_queries(EvalSet *s, const Dataset *d, int first, const int *idx, int n_rows, int parity) {
    s->n_attr = 2, s->A[0] = 3, s->A[1] = 6;
    char **seen = NULL;
    int ns = 0;
    for (int c = 0; c < d->n_classes; c++) {
        const char *ph = d->people && d->people->class_neutral ? d->people->class_neutral[c] : NULL;
        if (!ph || d->people->class_gender[c] != GENDER_PERSON || d->people->class_tone[c] != TONE_NONE) continue;
        int dup = 0;
        for (int k = 0; k < ns && !dup; k++) dup = strcmp(seen[k], ph) == 0;
        if (dup) continue;
        seen = strv_push(seen, &ns, ph);
        if (parity >= 0 && (ns - 1) % 2 != parity) continue;
        s->q = xrealloc(s->q, sizeof(BiasQuery) * (size_t)(s->n_q + 1));
        BiasQuery *q = &s->q[s->n_q++];
        memset(q, 0, sizeof *q);
        q->subject = xstrdup(ph);
        q->use[0] = q->use[1] = 1;
        q->rows = xmalloc(sizeof(int) * (size_t)n_rows);
        q->attr[0] = xmalloc(sizeof(int32_t) * (size_t)n_rows), q->attr[1] = xmalloc(sizeof(int32_t) * (size_t)n_rows);
        for (int i = 0; i < n_rows; i++) {
            const int j = idx[i], cj = d->labels[j];
            if (d->domains[j] != STYLE_COLOR || !d->people->class_neutral[cj] || strcmp(d->people->class_neutral[cj], ph)) continue;
            const int g = d->people->class_gender[cj];
            q->rows[q->n] = first + i;
            q->attr[0][q->n] = g == GENDER_MAN ? 0 : g == GENDER_WOMAN ? 1 : g == GENDER_PERSON ? 2 : -1;
            q->attr[1][q->n] = d->people->class_tone[cj];
            q->n++;
        }
    }
    strv_free(seen, ns);
}

/* Groups and subgroups of d as tasks (classes of each, at least 2). */
static void emoji_group_tasks(EvalSet *s, const Dataset *d, int first, const int *idx, int n_rows, int subj_base) {
    for (int level = 0; level < 2; level++) {
        char **names = !d->people ? NULL : level ? d->people->class_subgroup : d->people->class_group;
        char **done = NULL;
        int nd = 0;
        for (int c = 0; c < d->n_classes; c++) {
            int dup = 0;
            for (int k = 0; k < nd && !dup; k++) dup = strcmp(done[k], names[c]) == 0;
            if (dup) continue;
            done = strv_push(done, &nd, names[c]);
            int *map = xmalloc(sizeof(int) * (size_t)d->n_classes), C = 0;
            for (int k = 0; k < d->n_classes; k++) map[k] = strcmp(names[k], names[c]) == 0 ? C++ : -1;
            if (C >= 2) {
                char nm[96];
                snprintf(nm, sizeof nm, "%s %s", level ? "subgroup" : "group", names[c]);
                ZsTask *t = add_task(s, nm);
                t->C = C;
                t->cls = xmalloc(sizeof(int) * (size_t)C);
                for (int k = 0; k < d->n_classes; k++)
                    if (map[k] >= 0) t->cls[map[k]] = subj_base + k;
                t->rows = xmalloc(sizeof(int) * (size_t)n_rows), t->label = xmalloc(sizeof(int32_t) * (size_t)n_rows);
                for (int i = 0; i < n_rows; i++)
                    if (map[d->labels[idx[i]]] >= 0) t->rows[t->n] = first + i, t->label[t->n++] = map[d->labels[idx[i]]];
            }
            free(map);
        }
        strv_free(done, nd);
    }
}

static const char *const TONE_WORDS[5] = {"light", "medium-light", "medium", "medium-dark", "dark"};

static int setup_emoji(Setting *st, const ClipModel *m, const Tokenizer *t, const BiasExperimentOpts *o, Err *e) {
    (void)t;
    st->tpl = "an emoji of {}.";
    const char *splits[2] = {"val", "test"};
    int rc = 0;
    for (int sp = 0; sp < 2 && rc == 0; sp++) {
        EvalSet *s = sp ? &st->test : &st->val;
        s->group_task = -1;
        Dataset d, d100;
        char spec[64];
        snprintf(spec, sizeof spec, "emoji:%s", splits[sp]);
        if (dataset_load_named(&d, spec, o->data_dir, e)) return -1;
        snprintf(spec, sizeof spec, "emoji100:%s", splits[sp]);
        if (dataset_load_named(&d100, spec, o->data_dir, e)) {
            dataset_free(&d);
            return -1;
        }
        int n, n100;
        int *idx = iota_step(d.n, 1, &n), *idx100 = iota_step(d100.n, 1, &n100);
        const int first = add_images(s, m, &d, idx, n, e);
        const int first100 = first < 0 ? -1 : add_images(s, m, &d100, idx100, n100, e);
        if (first < 0 || first100 < 0) rc = -1;
        if (rc == 0) {
            const int base = s->n_subj;
            for (int c = 0; c < d.n_classes; c++) add_subject(s, d.class_names[c]);
            const int base100 = s->n_subj;
            for (int c = 0; c < d100.n_classes; c++) add_subject(s, d100.class_names[c]);
            task_all_classes(s, "emoji100", &d100, first100, base100, n100, idx100, -1);
            emoji_group_tasks(s, &d, first, idx, n, base);
            emoji_queries(s, &d, first, idx, n, sp == 0 ? 1 : o->queries ? -1 : 0);
            if (sp == 0) { /* what the methods are built from: validation-side phrases, emoji100 classes */
                for (int i = 0; i < s->n_q; i++) st->trq = strv_push(st->trq, &st->n_trq, s->q[i].subject);
                for (int c = 0; c < d100.n_classes; c++) st->keep = strv_push(st->keep, &st->n_keep, d100.class_names[c]);
            }
        }
        free(idx), free(idx100);
        dataset_free(&d), dataset_free(&d100);
    }
    if (rc) return rc;
    /* biased prompts, positive pairs and augmentations name only the attribute */
    const char *g[3] = {"a man", "a woman", "a person"};
    char buf[256];
    for (int i = 0; i < 3; i++) snprintf(buf, sizeof buf, "an emoji of %s.", g[i]), st->bias = strv_push(st->bias, &st->n_bias, buf);
    for (int i = 0; i < 5; i++)
        snprintf(buf, sizeof buf, "an emoji of %s skin tone.", TONE_WORDS[i]), st->bias = strv_push(st->bias, &st->n_bias, buf);
    st->aug = strv_push(st->aug, &st->n_aug, "an emoji of {} who is a man.");
    st->aug = strv_push(st->aug, &st->n_aug, "an emoji of {} who is a woman.");
    for (int i = 0; i < 5; i++) {
        snprintf(buf, sizeof buf, "an emoji of {}: %s skin tone.", TONE_WORDS[i]);
        st->aug = strv_push(st->aug, &st->n_aug, buf);
    }
    char other[256];
    for (int i = 0; i < st->n_trq; i++) {
        const char *ph = st->trq[i];
        snprintf(buf, sizeof buf, "an emoji of %s who is a man.", ph);
        snprintf(other, sizeof other, "an emoji of %s who is a woman.", ph);
        push_pair(st, buf, other);
        for (int a = 0; a < 2; a++) { /* light vs dark, medium-light vs medium-dark */
            snprintf(buf, sizeof buf, "an emoji of %s: %s skin tone.", ph, TONE_WORDS[a]);
            snprintf(other, sizeof other, "an emoji of %s: %s skin tone.", ph, TONE_WORDS[4 - a]);
            push_pair(st, buf, other);
        }
    }
    /* reference images: the training split's colour people emoji with a binary gender */
    Dataset tr;
    if (dataset_load_named(&tr, "emoji:train", o->data_dir, e)) return -1;
    int *idx = xmalloc(sizeof(int) * (size_t)tr.n), n = 0;
    for (int i = 0; i < tr.n; i++) {
        const int c = tr.labels[i];
        if (tr.domains[i] == STYLE_COLOR && (tr.people->class_gender[c] == GENDER_MAN || tr.people->class_gender[c] == GENDER_WOMAN)) idx[n++] = i;
    }
    EvalSet tmp = {0};
    rc = add_images(&tmp, m, &tr, idx, n, e) < 0 ? -1 : 0;
    st->ref = tmp.img, st->n_ref = n;
    st->ref_attr = xmalloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) st->ref_attr[i] = tr.people->class_gender[tr.labels[idx[i]]] == GENDER_MAN ? 0 : 1;
    free(idx);
    dataset_free(&tr);
    return rc;
}

static int setup_spurious(Setting *st, const ClipModel *m, const BiasExperimentOpts *o, Err *e) {
    st->spurious = 1;
    st->tpl = "a photo of a {}.";
    int rc = 0;
    for (int sp = 0; sp < 2 && rc == 0; sp++) {
        EvalSet *s = sp ? &st->test : &st->val;
        const char *split = sp ? "test" : "train";
        Dataset ds, df, dd;
        char spec[64];
        /* validation as in the spurious-correlation benchmarks (Waterbirds): training images with the
         * test's balanced groups, not the training split's skew */
        snprintf(spec, sizeof spec, "fmnist-spurious:%s", sp ? "test" : "val");
        if (dataset_load_named(&ds, spec, o->data_dir, e)) return -1;
        snprintf(spec, sizeof spec, "fmnist:%s", split);
        if (dataset_load_named(&df, spec, o->data_dir, e)) return dataset_free(&ds), -1;
        snprintf(spec, sizeof spec, "fmnist-domains:%s", split);
        if (dataset_load_named(&dd, spec, o->data_dir, e)) return dataset_free(&ds), dataset_free(&df), -1;
        /* test: the whole tinted split; validation: every 12th training image (5,000), tints balanced */
        int ns, nf, nd;
        int *is = iota_step(ds.n, sp ? 1 : 12, &ns), *if_ = iota_step(df.n, df.n / 2000, &nf), *id = iota_step(dd.n, dd.n / 4000, &nd);
        const int fs = add_images(s, m, &ds, is, ns, e), ff = fs < 0 ? -1 : add_images(s, m, &df, if_, nf, e);
        const int fd = ff < 0 ? -1 : add_images(s, m, &dd, id, nd, e);
        if (fs < 0 || ff < 0 || fd < 0) rc = -1;
        if (rc == 0) {
            for (int c = 0; c < ds.n_classes; c++) add_subject(s, ds.class_names[c]);
            task_all_classes(s, "fmnist-spurious", &ds, fs, 0, ns, is, -1);
            task_all_classes(s, "fmnist", &df, ff, 0, nf, if_, -1);
            for (int dom = 0; dom < dd.n_domains; dom++) {
                char nm[64];
                snprintf(nm, sizeof nm, "fmnist-domains %s", dd.domain_names[dom]);
                task_all_classes(s, nm, &dd, fd, 0, nd, id, dom);
            }
            s->group_task = 0, s->G = 2 * ds.n_classes;
            s->group = xmalloc(sizeof(int32_t) * (size_t)ns);
            for (int i = 0; i < ns; i++) s->group[i] = ds.labels[is[i]] * 2 + ds.domains[is[i]];
            /* retrieval: each class query among its own images, the tint as the attribute */
            s->n_attr = 1, s->A[0] = 2;
            for (int c = 0; c < ds.n_classes; c++) {
                s->q = xrealloc(s->q, sizeof(BiasQuery) * (size_t)(s->n_q + 1));
                BiasQuery *q = &s->q[s->n_q++];
                memset(q, 0, sizeof *q);
                q->subject = xstrdup(ds.class_names[c]);
                q->use[0] = 1;
                q->rows = xmalloc(sizeof(int) * (size_t)ns), q->attr[0] = xmalloc(sizeof(int32_t) * (size_t)ns);
                for (int i = 0; i < ns; i++)
                    if (ds.labels[is[i]] == c) q->rows[q->n] = fs + i, q->attr[0][q->n++] = ds.domains[is[i]];
            }
            if (sp == 0) {
                for (int c = 0; c < ds.n_classes; c++) {
                    st->trq = strv_push(st->trq, &st->n_trq, ds.class_names[c]);
                    st->keep = strv_push(st->keep, &st->n_keep, ds.class_names[c]);
                }
                /* the reference images: the validation rows of the tinted set, tint as attribute */
                st->n_ref = ns;
                st->ref = xalloc_floats((size_t)ns * m->cfg.embed_dim);
                memcpy(st->ref, s->img + (size_t)fs * m->cfg.embed_dim, sizeof(float) * (size_t)ns * m->cfg.embed_dim);
                st->ref_attr = xmalloc(sizeof(int32_t) * (size_t)ns);
                for (int i = 0; i < ns; i++) st->ref_attr[i] = ds.domains[is[i]];
            }
        }
        free(is), free(if_), free(id);
        dataset_free(&ds), dataset_free(&df), dataset_free(&dd);
    }
    const char *tints[2] = {"red", "blue"};
    char buf[256];
    for (int i = 0; i < 2; i++) {
        snprintf(buf, sizeof buf, "a %s photo.", tints[i]), st->bias = strv_push(st->bias, &st->n_bias, buf);
        snprintf(buf, sizeof buf, "a %s photo of a {}.", tints[i]), st->aug = strv_push(st->aug, &st->n_aug, buf);
    }
    char other[256];
    for (int c = 0; c < st->n_trq; c++) {
        snprintf(buf, sizeof buf, "a red photo of a %s.", st->trq[c]);
        snprintf(other, sizeof other, "a blue photo of a %s.", st->trq[c]);
        push_pair(st, buf, other);
    }
    return rc;
}

/* --queries FILE: "phrase<TAB>attribute[,attribute]" per line (blank lines and # comments
 * skipped) choosing the test queries and what each measures. s NULL: check the file's form and
 * attribute names only (before the data is loaded). */
static int apply_query_file(EvalSet *s, const char *path, int spurious, Err *e) {
    static const char *const EMOJI_ATTR[2] = {"gender", "tone"}, *const SPUR_ATTR[1] = {"tint"};
    const char *const *names = spurious ? SPUR_ATTR : EMOJI_ATTR;
    const int na = spurious ? 1 : 2;
    FILE *f = fopen_regular(path, e);
    if (!f) return err_prefix(e, "the query file: ");
    const int nq0 = s && s->n_q ? s->n_q : 1;
    uint8_t *keep = xcalloc((size_t)nq0, 1);
    uint8_t (*use)[2] = xcalloc((size_t)nq0, sizeof *use);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0, nkept = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0 || line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab || tab == line || strchr(tab + 1, '\t')) {
            rc = err_set(e, "%s:%d: expected \"phrase<TAB>attribute[,attribute]\" (two columns)", path, lineno);
            break;
        }
        *tab = 0;
        int qi = -1;
        for (int i = 0; s && i < s->n_q && qi < 0; i++)
            if (strcmp(s->q[i].subject, line) == 0) qi = i;
        if (s && qi < 0) {
            rc = err_set(e, "%s:%d: \"%s\" is not a query of this setting (%s)", path, lineno, line,
                         spurious ? "a Fashion-MNIST class name" : "a neutral profession or activity phrase of Emoji-Domains, e.g. \"a farmer\"");
            break;
        }
        char *save = NULL;
        for (char *a = strtok_r(tab + 1, ",", &save); a && rc == 0; a = strtok_r(NULL, ",", &save)) {
            while (*a == ' ') a++;
            int ai = -1;
            for (int k = 0; k < na; k++)
                if (strcmp(a, names[k]) == 0) ai = k;
            if (ai < 0) rc = err_set(e, "%s:%d: unknown attribute \"%s\" (this setting has: %s%s%s)", path, lineno, a, names[0],
                                     na > 1 ? ", " : "", na > 1 ? names[1] : "");
            else if (s) use[qi][ai] = 1;
        }
        if (rc == 0 && !s) nkept++;
        else if (rc == 0 && !keep[qi]) keep[qi] = 1, nkept++;
    }
    free(line);
    fclose(f);
    if (rc == 0 && nkept == 0) rc = err_set(e, "%s: no queries", path);
    if (rc == 0 && s) { /* keep the chosen queries, in their order of the data set */
        int k = 0;
        for (int i = 0; i < s->n_q; i++) {
            if (!keep[i]) {
                free(s->q[i].subject), free(s->q[i].rows), free(s->q[i].attr[0]), free(s->q[i].attr[1]);
                continue;
            }
            s->q[k] = s->q[i];
            s->q[k].use[0] = use[i][0], s->q[k].use[1] = use[i][1];
            k++;
        }
        s->n_q = k;
    }
    free(keep), free(use);
    return rc;
}

/* The general vocabulary (calibration) and held-out words (neighbourhood), bias words excluded. */
static int setup_vocab(Setting *st, const BiasExperimentOpts *o, Err *e) {
    static const char *const EXCLUDE[] = {"man", "woman", "men", "women", "male", "female", "boy", "girl", "person",
                                          "light", "dark", "medium", "skin", "tone", "red", "blue", "tint", "photo",
                                          "lady", "gentleman", "husband", "wife", "mother", "father", NULL};
    Vocab v;
    if (o->vocab_file ? vocab_load_strict(&v, o->vocab_file, e) : vocab_load(&v, NULL, EXCLUDE, o->vocab + 500, o->seed, e)) return -1;
    const int nh = v.n > 1000 ? 500 : v.n / 3;
    for (int i = 0; i < v.n; i++) {
        if (i < v.n - nh) st->vocab = strv_push(st->vocab, &st->n_vocab, v.words[i]);
        else {
            st->val.heldout = strv_push(st->val.heldout, &st->val.n_heldout, v.words[i]);
            st->test.heldout = strv_push(st->test.heldout, &st->test.n_heldout, v.words[i]);
        }
    }
    vocab_free(&v);
    DebiasData *d = &st->data;
    *d = (DebiasData){st->tpl, (const char *const *)st->bias, st->n_bias, (const char *const *)st->pa,
                      (const char *const *)st->pb, st->n_pairs, (const char *const *)st->vocab, st->n_vocab,
                      (const char *const *)st->aug, st->n_aug, st->ref, st->ref_attr, st->n_ref, 2,
                      (const char *const *)st->trq, st->n_trq, (const char *const *)st->keep, st->n_keep};
    return 0;
}

/* ------------------------------------------------------------ measuring */

static int text_features(const Debias *d, const ClipModel *m, const Tokenizer *t, const char *tpl, char **subj, int n, float *out,
                         Err *e) {
    return d ? debias_encode_texts(d, m, t, tpl, (const char *const *)subj, n, out, e)
             : clip_encode_filled(m, t, tpl, (const char *const *)subj, n, out, e);
}

static int measure(const Setting *st, const EvalSet *s, const Debias *d, const ClipModel *m, const Tokenizer *t, int K,
                   const float *orig_heldout, Metrics *out, Err *e) {
    const int E = m->cfg.embed_dim;
    memset(out, 0, sizeof *out);
    float *img = xalloc_floats((size_t)s->n_img * E), *txt = xalloc_floats((size_t)s->n_subj * E);
    memcpy(img, s->img, sizeof(float) * (size_t)s->n_img * E);
    if (d) debias_images(d, img, s->n_img);
    l2norm_forward(img, NULL, img, s->n_img, E);
    int rc = text_features(d, m, t, st->tpl, s->subj, s->n_subj, txt, e);
    if (rc == 0) l2norm_forward(txt, NULL, txt, s->n_subj, E);
    out->task_acc = xcalloc((size_t)s->n_tasks, sizeof(double));
    for (int k = 0; k < s->n_tasks && rc == 0; k++) {
        const ZsTask *tk = &s->tasks[k];
        float *tt = xalloc_floats((size_t)tk->C * E), *ii = xalloc_floats((size_t)(tk->n ? tk->n : 1) * E);
        float *lg = xalloc_floats((size_t)(tk->n ? tk->n : 1) * tk->C);
        for (int c = 0; c < tk->C; c++) memcpy(tt + (size_t)c * E, txt + (size_t)tk->cls[c] * E, sizeof(float) * (size_t)E);
        for (int i = 0; i < tk->n; i++) memcpy(ii + (size_t)i * E, img + (size_t)tk->rows[i] * E, sizeof(float) * (size_t)E);
        if (tk->n) sgemm(false, true, tk->n, tk->C, E, 1.0f, ii, E, tt, E, 0.0f, lg, tk->C);
        int32_t *pred = xmalloc(sizeof(int32_t) * (size_t)(tk->n ? tk->n : 1));
        long right = 0;
        for (int i = 0; i < tk->n; i++) {
            int best = 0;
            for (int c = 1; c < tk->C; c++)
                if (lg[(size_t)i * tk->C + c] > lg[(size_t)i * tk->C + best]) best = c;
            pred[i] = best;
            right += best == tk->label[i];
        }
        out->task_acc[k] = tk->n ? (double)right / tk->n : 0;
        out->general += out->task_acc[k] / s->n_tasks;
        if (k == s->group_task) {
            out->avg = group_accuracy(pred, tk->label, s->group, tk->n, s->G, &out->worst, NULL);
            out->unit = xmalloc(sizeof(double) * (size_t)(tk->n ? tk->n : 1)), out->n_unit = tk->n, out->unit_stride = 1;
            for (int i = 0; i < tk->n; i++) out->unit[i] = pred[i] == tk->label[i];
        }
        free(tt), free(ii), free(lg), free(pred);
    }
    /* retrieval bias */
    if (rc == 0 && s->n_q) {
        char **qs = xmalloc(sizeof(char *) * (size_t)s->n_q);
        for (int i = 0; i < s->n_q; i++) qs[i] = s->q[i].subject;
        float *qf = xalloc_floats((size_t)s->n_q * E);
        rc = text_features(d, m, t, st->tpl, qs, s->n_q, qf, e);
        if (rc == 0) l2norm_forward(qf, NULL, qf, s->n_q, E);
        int nqa[2] = {0, 0};
        if (!st->spurious) {
            out->unit = xmalloc(sizeof(double) * (size_t)s->n_q * 2), out->n_unit = s->n_q, out->unit_stride = 2;
            for (int i = 0; i < 2 * s->n_q; i++) out->unit[i] = NAN;
        }
        for (int i = 0; i < s->n_q && rc == 0; i++) {
            const BiasQuery *q = &s->q[i];
            if (q->n < 2) continue;
            float *sc = xalloc_floats((size_t)q->n);
            for (int j = 0; j < q->n; j++) {
                double dot = 0;
                for (int k = 0; k < E; k++) dot += (double)qf[(size_t)i * E + k] * img[(size_t)q->rows[j] * E + k];
                sc[j] = (float)dot;
            }
            const int Kq = K < q->n ? K : q->n;
            int *top = xmalloc(sizeof(int) * (size_t)Kq), *at = xmalloc(sizeof(int) * (size_t)Kq);
            top_k_indices(sc, q->n, Kq, top);
            for (int a = 0; a < s->n_attr; a++) {
                if (!q->use[a]) continue;
                nqa[a]++;
                double prior[8] = {0};
                int cnt = 0;
                for (int j = 0; j < q->n; j++)
                    if (q->attr[a][j] >= 0 && q->attr[a][j] < s->A[a]) prior[q->attr[a][j]]++, cnt++;
                for (int v = 0; v < s->A[a]; v++) prior[v] /= cnt ? cnt : 1;
                for (int k = 0; k < Kq; k++) at[k] = q->attr[a][top[k]];
                const double sk = max_skew_at_k(at, Kq, prior, s->A[a]);
                out->skew[a] += sk;
                if (!st->spurious && a < 2) out->unit[(size_t)i * 2 + a] = sk;
                out->kl[a] += kl_at_k(at, Kq, prior, s->A[a]);
                out->ndkl[a] += ndkl(at, Kq, prior, s->A[a]);
            }
            free(sc), free(top), free(at);
        }
        for (int a = 0; a < s->n_attr; a++) {
            const int nq = nqa[a] ? nqa[a] : 1;
            out->skew[a] /= nq, out->kl[a] /= nq, out->ndkl[a] /= nq;
        }
        free(qs), free(qf);
    }
    /* neighbourhoods of held-out words: the share of each word's 10 nearest kept */
    if (rc == 0 && s->n_heldout > 11 && orig_heldout) {
        const int n = s->n_heldout, NK = 10;
        float *h = xalloc_floats((size_t)n * E), *g0 = xalloc_floats((size_t)n * n), *g1 = xalloc_floats((size_t)n * n);
        rc = text_features(d, m, t, st->tpl, s->heldout, n, h, e);
        if (rc == 0) {
            l2norm_forward(h, NULL, h, n, E);
            sgemm(false, true, n, n, E, 1.0f, orig_heldout, E, orig_heldout, E, 0.0f, g0, n);
            sgemm(false, true, n, n, E, 1.0f, h, E, h, E, 0.0f, g1, n);
            int *t0 = xmalloc(sizeof(int) * (NK + 1)), *t1 = xmalloc(sizeof(int) * (NK + 1));
            double overlap = 0;
            for (int i = 0; i < n; i++) {
                top_k_indices(g0 + (size_t)i * n, n, NK + 1, t0); /* the word itself comes first */
                top_k_indices(g1 + (size_t)i * n, n, NK + 1, t1);
                int same = 0;
                for (int a = 0; a <= NK; a++)
                    for (int b = 0; b <= NK; b++) same += t0[a] == t1[b] && t0[a] != i;
                overlap += (double)same / NK / n;
            }
            out->neighbour = overlap;
            free(t0), free(t1);
        }
        free(h), free(g0), free(g1);
    }
    /* spurious: 1 - worst-group accuracy (the gap to the average would reward a collapse of both) */
    out->bias = st->spurious ? 1 - out->worst : 0.5 * (out->skew[0] + out->skew[1]);
    free(img), free(txt);
    return rc;
}

/* ------------------------------------------------------------ the run */

typedef struct {
    char name[48], base[32];
    DebiasMethod method;
    int calibrated;
    double lambda, mu;
    Metrics val, test;
    double seconds;
} Entry;

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

static int write_outputs(const BiasExperimentOpts *o, const Setting *st, const Metrics *orig, Entry *en, int ne, Err *e) {
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
        cJSON_AddStringToObject(j, "family", en[i].calibrated ? "projection (calibrated)" : DEBIAS_FAMILY[en[i].method]);
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
        const char *nm = i < 0 ? "original" : en[i].name, *fam = i < 0 ? "—" : en[i].calibrated ? "projection+cal" : DEBIAS_FAMILY[en[i].method];
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
            if (!en[k].calibrated && en[k].method <= DB_BEND && orig->general - en[k].test.general < worst_loss)
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
               "max-width:1000px;margin:2em auto}</style></head><body><h1>Debiasing %s</h1>\n", o->model);
    const double W = 640, H = 440, L = 60, R = 200, T = 30, B = 50, pw = W - L - R, ph = H - T - B;
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
        const char *col = en[i].calibrated ? "#009E73" : en[i].method <= DB_BEND ? "#0072B2" : en[i].method <= DB_SFID ? "#D55E00" : "#CC79A7";
        const double px = SX(x[i]), py = SY(y[i]);
        if (en[i].calibrated || en[i].method <= DB_BEND)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>", px, py, col);
        else if (en[i].method <= DB_SFID)
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
    /* the Markdown table as preformatted text keeps one source of truth */
    fprintf(f, "<h2>Table</h2><pre>%s</pre></body></html>\n", md);
    fclose(f);
    path = xasprintf("%s/report.html", o->out);
    if (rc == 0) rc = write_file_atomic(path, html, hl, e);
    free(path);
    free(md), free(html), free(x), free(y), free(ci), free(has);
    return rc;
}

static void metrics_free(Metrics *m) {
    free(m->task_acc), free(m->unit);
    m->task_acc = NULL, m->unit = NULL, m->n_unit = 0;
}

/* ------------------------------------------------------------ checkpoint */

/* DIR/checkpoint.json holds every finished method's figures, so a stopped experiment resumes
 * where it was; it belongs to one model, setting and set of options. */
static cJSON *metrics_to_json(const Metrics *m, int n_tasks) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "skew", cJSON_CreateDoubleArray(m->skew, 2));
    cJSON_AddItemToObject(j, "kl", cJSON_CreateDoubleArray(m->kl, 2));
    cJSON_AddItemToObject(j, "ndkl", cJSON_CreateDoubleArray(m->ndkl, 2));
    const double v[5] = {m->avg, m->worst, m->general, m->neighbour, m->bias};
    cJSON_AddItemToObject(j, "scalars", cJSON_CreateDoubleArray(v, 5));
    cJSON_AddItemToObject(j, "tasks", cJSON_CreateDoubleArray(m->task_acc, n_tasks));
    cJSON *u = cJSON_AddArrayToObject(j, "units"); /* NaN (unmeasured) as null */
    for (int i = 0; i < m->n_unit * m->unit_stride; i++)
        cJSON_AddItemToArray(u, isnan(m->unit[i]) ? cJSON_CreateNull() : cJSON_CreateNumber(m->unit[i]));
    cJSON_AddNumberToObject(j, "unit_stride", m->unit_stride);
    return j;
}

static int metrics_from_json(const cJSON *j, Metrics *m, int n_tasks) {
    memset(m, 0, sizeof *m);
    const cJSON *sk = cJSON_GetObjectItem(j, "skew"), *kl = cJSON_GetObjectItem(j, "kl"), *nd = cJSON_GetObjectItem(j, "ndkl");
    const cJSON *sc = cJSON_GetObjectItem(j, "scalars"), *tk = cJSON_GetObjectItem(j, "tasks");
    if (cJSON_GetArraySize(sk) != 2 || cJSON_GetArraySize(kl) != 2 || cJSON_GetArraySize(nd) != 2 || cJSON_GetArraySize(sc) != 5 ||
        cJSON_GetArraySize(tk) != n_tasks)
        return -1;
    for (int a = 0; a < 2; a++)
        m->skew[a] = cJSON_GetArrayItem(sk, a)->valuedouble, m->kl[a] = cJSON_GetArrayItem(kl, a)->valuedouble,
        m->ndkl[a] = cJSON_GetArrayItem(nd, a)->valuedouble;
    double *v[5] = {&m->avg, &m->worst, &m->general, &m->neighbour, &m->bias};
    for (int i = 0; i < 5; i++) *v[i] = cJSON_GetArrayItem(sc, i)->valuedouble;
    m->task_acc = xmalloc(sizeof(double) * (size_t)(n_tasks ? n_tasks : 1));
    for (int i = 0; i < n_tasks; i++) m->task_acc[i] = cJSON_GetArrayItem(tk, i)->valuedouble;
    const cJSON *u = cJSON_GetObjectItem(j, "units"), *us = cJSON_GetObjectItem(j, "unit_stride");
    const int stride = cJSON_IsNumber(us) ? us->valueint : 0, nu = cJSON_GetArraySize(u);
    if (stride >= 1 && stride <= 2 && nu % stride == 0 && nu > 0) { /* absent in older checkpoints: no bootstrap then */
        m->unit = xmalloc(sizeof(double) * (size_t)nu), m->n_unit = nu / stride, m->unit_stride = stride;
        int i = 0;
        for (const cJSON *x = u->child; x; x = x->next, i++) m->unit[i] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
    }
    return 0;
}

static char *checkpoint_key(const BiasExperimentOpts *o, const char *setting) {
    return xasprintf("%s|%s|K%d|vocab%d|%s|%s|seed%llu", o->model, setting, o->K, o->vocab, o->vocab_file ? o->vocab_file : "-",
             o->queries ? o->queries : "-", (unsigned long long)o->seed);
}

static int checkpoint_save(const BiasExperimentOpts *o, const char *setting, const Setting *st, const Entry *en, int ne, Err *e) {
    cJSON *root = cJSON_CreateObject();
    char *key = checkpoint_key(o, setting);
    cJSON_AddStringToObject(root, "key", key);
    free(key);
    cJSON *arr = cJSON_AddArrayToObject(root, "entries");
    for (int i = 0; i < ne; i++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", en[i].name);
        cJSON_AddStringToObject(j, "base", en[i].base);
        cJSON_AddNumberToObject(j, "method", en[i].method);
        cJSON_AddNumberToObject(j, "calibrated", en[i].calibrated);
        cJSON_AddNumberToObject(j, "lambda", en[i].lambda);
        cJSON_AddNumberToObject(j, "mu", en[i].mu);
        cJSON_AddNumberToObject(j, "seconds", en[i].seconds);
        cJSON_AddItemToObject(j, "val", metrics_to_json(&en[i].val, st->val.n_tasks));
        cJSON_AddItemToObject(j, "test", metrics_to_json(&en[i].test, st->test.n_tasks));
        cJSON_AddItemToArray(arr, j);
    }
    char *path = xasprintf("%s/checkpoint.json", o->out);
    int rc = json_write_atomic(path, root, e);
    free(path);
    cJSON_Delete(root);
    return rc;
}

/* The finished entry called name, from the checkpoint (NULL root: none). */
static int checkpoint_find(const cJSON *root, const char *name, const Setting *st, Entry *x) {
    const cJSON *arr = root ? cJSON_GetObjectItem(root, "entries") : NULL, *j;
    cJSON_ArrayForEach(j, arr) {
        const cJSON *nm = cJSON_GetObjectItem(j, "name");
        if (!cJSON_IsString(nm) || strcmp(nm->valuestring, name)) continue;
        memset(x, 0, sizeof *x);
        snprintf(x->name, sizeof x->name, "%s", name);
        const cJSON *b = cJSON_GetObjectItem(j, "base");
        snprintf(x->base, sizeof x->base, "%s", cJSON_IsString(b) ? b->valuestring : "");
        const cJSON *me = cJSON_GetObjectItem(j, "method"), *ca = cJSON_GetObjectItem(j, "calibrated"),
                    *la = cJSON_GetObjectItem(j, "lambda"), *mu = cJSON_GetObjectItem(j, "mu"),
                    *se = cJSON_GetObjectItem(j, "seconds");
        if (!cJSON_IsNumber(me) || !cJSON_IsNumber(ca) || !cJSON_IsNumber(la) || !cJSON_IsNumber(mu) || !cJSON_IsNumber(se) ||
            me->valueint < 0 || me->valueint >= DB_N_METHODS)
            return 0; /* a damaged entry is redone, not trusted */
        x->method = (DebiasMethod)me->valueint;
        x->calibrated = ca->valueint;
        x->lambda = la->valuedouble;
        x->mu = mu->valuedouble;
        x->seconds = se->valuedouble;
        if (metrics_from_json(cJSON_GetObjectItem(j, "val"), &x->val, st->val.n_tasks) ||
            metrics_from_json(cJSON_GetObjectItem(j, "test"), &x->test, st->test.n_tasks)) {
            free(x->val.task_acc), free(x->test.task_acc);
            return 0;
        }
        return 1;
    }
    return 0;
}

static cJSON *checkpoint_load(const BiasExperimentOpts *o, const char *setting) {
    char *path = xasprintf("%s/checkpoint.json", o->out), *key = checkpoint_key(o, setting);
    cJSON *root = json_read_file(path);
    const cJSON *k = root ? cJSON_GetObjectItem(root, "key") : NULL;
    if (!cJSON_IsString(k) || strcmp(k->valuestring, key) || !cJSON_IsArray(cJSON_GetObjectItem(root, "entries"))) {
        cJSON_Delete(root); /* another experiment's, or damaged: start afresh */
        root = NULL;
    } else if (!o->quiet) {
        fprintf(stderr, "resuming from %s (%d methods done)\n", path, cJSON_GetArraySize(cJSON_GetObjectItem(root, "entries")));
    }
    free(path), free(key);
    return root;
}

/* The setting's name, the model (both towers) and the user's files, all checked before minutes of
 * loading; what names the command in errors. */
static int open_setting(const BiasExperimentOpts *o, const char *what, const char **setting, ClipModel *m, Err *e) {
    *setting = o->setting;
    if (!*setting) *setting = strstr(o->model, "emoji") ? "emoji" : strstr(o->model, "fmnist") ? "spurious" : NULL;
    if (!*setting || (strcmp(*setting, "emoji") && strcmp(*setting, "spurious")))
        return err_set(e, "--setting must be emoji or spurious (it could not be told from the model's file name)");
    if (clip_load(m, o->model, NULL, e)) return -1;
    if (!m->cfg.has_text || !m->cfg.has_vision) {
        const char *lacks = m->cfg.has_text ? "the image tower" : "the text tower";
        clip_free(m);
        return err_set(e, "%s: %s needs both towers (this model lacks %s)", o->model, what, lacks);
    }
    int rc = o->queries ? apply_query_file(NULL, o->queries, strcmp(*setting, "spurious") == 0, e) : 0;
    if (rc == 0 && o->vocab_file) {
        Vocab v;
        if ((rc = vocab_load_strict(&v, o->vocab_file, e)) == 0) vocab_free(&v);
    }
    if (rc) clip_free(m);
    return rc;
}

int bias_experiment_run(const BiasExperimentOpts *o, Err *e) {
    if (mkdir(o->out, 0755) != 0) {
        struct stat sb;
        if (stat(o->out, &sb) != 0 || !S_ISDIR(sb.st_mode)) return err_set(e, "cannot create the output directory %s", o->out);
    }
    const char *setting;
    ClipModel m;
    Tokenizer t;
    if (open_setting(o, "a bias experiment", &setting, &m, e)) return -1;
    if (tokenizer_init(&t, e)) return clip_free(&m), -1;
    Setting st;
    memset(&st, 0, sizeof st);
    double t0 = now_seconds();
    if (!o->quiet) fprintf(stderr, "encoding the %s setting's images (validation, test, references)...\n", setting);
    int rc = strcmp(setting, "emoji") == 0 ? setup_emoji(&st, &m, &t, o, e) : setup_spurious(&st, &m, o, e);
    if (rc == 0) rc = setup_vocab(&st, o, e);
    if (rc == 0 && o->queries) rc = apply_query_file(&st.test, o->queries, st.spurious, e);
    if (!o->quiet && rc == 0)
        fprintf(stderr, "%s setting: %d/%d validation/test queries, %d/%d tasks, %d reference images, %d vocabulary words (%.1f s)\n",
                setting, st.val.n_q, st.test.n_q, st.val.n_tasks, st.test.n_tasks, st.n_ref, st.n_vocab, now_seconds() - t0);
    const int E = m.cfg.embed_dim;
    float *oh_val = NULL, *oh_test = NULL;
    Metrics orig_val = {0}, orig_test = {0};
    if (rc == 0) { /* the held-out words' original features, and the model as it is */
        oh_val = xalloc_floats((size_t)st.val.n_heldout * E), oh_test = xalloc_floats((size_t)st.test.n_heldout * E);
        rc = text_features(NULL, &m, &t, st.tpl, st.val.heldout, st.val.n_heldout, oh_val, e);
        if (rc == 0) rc = text_features(NULL, &m, &t, st.tpl, st.test.heldout, st.test.n_heldout, oh_test, e);
        if (rc == 0) l2norm_forward(oh_val, NULL, oh_val, st.val.n_heldout, E), l2norm_forward(oh_test, NULL, oh_test, st.test.n_heldout, E);
        if (rc == 0) rc = measure(&st, &st.val, NULL, &m, &t, o->K, oh_val, &orig_val, e);
        if (rc == 0) rc = measure(&st, &st.test, NULL, &m, &t, o->K, oh_test, &orig_test, e);
        if (rc == 0 && !o->quiet)
            fprintf(stderr, "original: bias %.4f, general accuracy %.2f%% (test)\n", orig_test.bias, 100 * orig_test.general);
    }
    Entry *en = xcalloc(DB_N_METHODS + 3, sizeof(Entry));
    int ne = 0;
    DebiasParams p;
    debias_params_default(&p);
    p.dims = E / 8;
    p.seed = o->seed;
    cJSON *ckpt = rc == 0 ? checkpoint_load(o, setting) : NULL;
    for (int k = 0; k < DB_N_METHODS && rc == 0; k++) {
        if (o->methods && !strstr(o->methods, DEBIAS_METHOD_NAMES[k])) continue;
        if (checkpoint_find(ckpt, DEBIAS_METHOD_NAMES[k], &st, &en[ne])) {
            ne++;
            continue;
        }
        double ts = now_seconds();
        Debias d;
        Entry *x = &en[ne];
        snprintf(x->name, sizeof x->name, "%s", DEBIAS_METHOD_NAMES[k]);
        x->method = (DebiasMethod)k;
        if ((rc = debias_build(&d, (DebiasMethod)k, &m, &t, &st.data, &p, e)) != 0) break;
        rc = measure(&st, &st.val, &d, &m, &t, o->K, oh_val, &x->val, e);
        if (rc == 0) rc = measure(&st, &st.test, &d, &m, &t, o->K, oh_test, &x->test, e);
        x->seconds = now_seconds() - ts;
        ne++;
        if (!o->quiet && rc == 0)
            fprintf(stderr, "%-12s bias %.4f (reduction %.1f%%), general %.2f%% (%.1f s)\n", x->name, x->test.bias,
                    100 * (1 - x->test.bias / orig_test.bias), 100 * x->test.general, x->seconds);
        debias_free(&d);
        if (rc == 0) rc = checkpoint_save(o, setting, &st, en, ne, e);
    }
    /* the calibration on top of each projection; lambda, mu chosen on validation */
    static const double LAMBDAS[3] = {0, 100, 1000}, MUS[8] = {1, 3, 10, 30, 100, 300, 1000, 3000};
    const int nbase = ne;
    for (int b = 0; b < nbase && rc == 0; b++) {
        if (en[b].method > DB_BEND || en[b].calibrated) continue;
        char cname[48];
        snprintf(cname, sizeof cname, "%s+cal", DEBIAS_METHOD_NAMES[en[b].method]);
        if (checkpoint_find(ckpt, cname, &st, &en[ne])) {
            ne++;
            continue;
        }
        const double base_red = 1 - en[b].val.bias / orig_val.bias;
        double best_score = -INFINITY, bl = 0, bm = 0;
        int found = 0;
        double ts = now_seconds();
        Debias d; /* built once: each calibration starts again from its uncalibrated projection */
        if ((rc = debias_build(&d, en[b].method, &m, &t, &st.data, &p, e)) != 0) break;
        char label[64];
        snprintf(label, sizeof label, "tuning %s+cal", DEBIAS_METHOD_NAMES[en[b].method]);
        Progress prog;
        progress_start(&prog, label, 3 * 8, o->quiet);
        for (int li = 0; li < 3 && rc == 0; li++)
            for (int mi = 0; mi < 8 && rc == 0; mi++) {
                progress_update(&prog, li * 8 + mi, 1, "pairs", "lambda, mu on validation");
                Metrics mv;
                rc = debias_calibrate(&d, &m, &t, &st.data, LAMBDAS[li], MUS[mi], e);
                if (rc == 0) rc = measure(&st, &st.val, &d, &m, &t, o->K, NULL, &mv, e);
                if (rc) break;
                const double red = 1 - mv.bias / orig_val.bias;
                /* keep >= 97% of the base's validation reduction (a margin over the 95% asked on test), then
                 * the most general accuracy; failing that, the most reduction */
                const int ok = red >= 0.97 * base_red;
                const double score = ok ? 10 + mv.general : red;
                if ((ok && !found) || (ok == found && score > best_score)) best_score = score, bl = LAMBDAS[li], bm = MUS[mi], found |= ok;
                metrics_free(&mv);
            }
        progress_end(&prog);
        if (rc) {
            debias_free(&d);
            break;
        }
        Entry *x = &en[ne];
        snprintf(x->name, sizeof x->name, "%s+cal", DEBIAS_METHOD_NAMES[en[b].method]);
        snprintf(x->base, sizeof x->base, "%s", DEBIAS_METHOD_NAMES[en[b].method]);
        x->method = en[b].method, x->calibrated = 1, x->lambda = bl, x->mu = bm;
        rc = debias_calibrate(&d, &m, &t, &st.data, bl, bm, e);
        if (rc == 0) rc = measure(&st, &st.val, &d, &m, &t, o->K, oh_val, &x->val, e);
        if (rc == 0) rc = measure(&st, &st.test, &d, &m, &t, o->K, oh_test, &x->test, e);
        if (rc == 0 && o->out) { /* the calibrated transform itself, for forget classify/embed --debias */
            char *path = xasprintf("%s/%s.debias.safetensors", o->out, x->name);
            rc = debias_save(&d, path, e);
            free(path);
        }
        debias_free(&d);
        x->seconds = now_seconds() - ts;
        ne++;
        if (!o->quiet && rc == 0)
            fprintf(stderr, "%-12s lambda %g mu %g: bias %.4f (reduction %.1f%%), general %.2f%% (%.1f s with tuning)\n", x->name, bl, bm,
                    x->test.bias, 100 * (1 - x->test.bias / orig_test.bias), 100 * x->test.general, x->seconds);
        if (rc == 0) rc = checkpoint_save(o, setting, &st, en, ne, e);
    }
    cJSON_Delete(ckpt);
    if (rc == 0) rc = write_outputs(o, &st, &orig_test, en, ne, e);
    if (rc == 0 && !o->quiet) fprintf(stderr, "wrote %s/results.json, results.md, report.html (%.0f s)\n", o->out, now_seconds() - t0);
    for (int i = 0; i < ne; i++) metrics_free(&en[i].val), metrics_free(&en[i].test);
    metrics_free(&orig_val), metrics_free(&orig_test);
    free(en), free(oh_val), free(oh_test);
    setting_free(&st);
    tokenizer_free(&t);
    clip_free(&m);
    return rc;
}

int debias_build_for_setting(const BiasExperimentOpts *o, const char *method, int calibrate, double lambda, double mu, int dims,
                             const char *out, Err *e) {
    DebiasMethod dm;
    if (debias_method_from_name(method, &dm))
        return err_set(e, "--method: \"%s\" is not a debiasing method (orth-proj, orth-cali, bend-vlm, clip-clip, sfid, "
                          "prompt-array, dear)", method);
    if (calibrate && dm > DB_BEND) return err_set(e, "--calibrate applies to projection methods (orth-proj, orth-cali, bend-vlm), not %s", method);
    const char *setting;
    ClipModel m;
    Tokenizer t;
    if (open_setting(o, "debiasing", &setting, &m, e)) return -1;
    if (tokenizer_init(&t, e)) return clip_free(&m), -1;
    Setting st;
    memset(&st, 0, sizeof st);
    int rc = strcmp(setting, "emoji") == 0 ? setup_emoji(&st, &m, &t, o, e) : setup_spurious(&st, &m, o, e);
    if (rc == 0) rc = setup_vocab(&st, o, e);
    DebiasParams p;
    debias_params_default(&p);
    p.dims = dims > 0 ? dims : m.cfg.embed_dim / 8;
    p.seed = o->seed;
    Debias d;
    if (rc == 0) rc = debias_build(&d, dm, &m, &t, &st.data, &p, e);
    if (rc == 0) {
        if (calibrate) rc = debias_calibrate(&d, &m, &t, &st.data, lambda, mu, e);
        if (rc == 0) rc = debias_save(&d, out, e);
        debias_free(&d);
    }
    setting_free(&st);
    tokenizer_free(&t);
    clip_free(&m);
    return rc;
}
