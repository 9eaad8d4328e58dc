/* The bias experiment's evaluation sets: the emoji and spurious settings' images, queries,
 * tasks, references and vocabulary. */
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
#include "forget/bias_internal.h"
#include "forget/resume.h"
#include "forget/vocab.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/emoji.h"
#include "io/file_open.h"
#include "io/json_file.h"
#include "models/clip_encode.h"

/* ------------------------------------------------------------ evaluation sets */





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

void bias_setting_free(Setting *st) {
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

int bias_setup_emoji(Setting *st, const ClipModel *m, const Tokenizer *t, const BiasExperimentOpts *o, Err *e) {
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

int bias_setup_spurious(Setting *st, const ClipModel *m, const BiasExperimentOpts *o, Err *e) {
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
int bias_apply_query_file(EvalSet *s, const char *path, int spurious, Err *e) {
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
int bias_setup_vocab(Setting *st, const BiasExperimentOpts *o, Err *e) {
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

