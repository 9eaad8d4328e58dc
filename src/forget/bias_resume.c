/* The checkpoint a stopped bias experiment resumes from: every finished method's metrics. */
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

void bias_metrics_free(Metrics *m) {
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

static char *bias_checkpoint_key(const BiasExperimentOpts *o, const char *setting) {
    return xasprintf("%s|%s|K%d|vocab%d|%s|%s|seed%llu", o->model, setting, o->K, o->vocab, o->vocab_file ? o->vocab_file : "-",
             o->queries ? o->queries : "-", (unsigned long long)o->seed);
}

int bias_checkpoint_save(const BiasExperimentOpts *o, const char *setting, const Setting *st, const Entry *en, int ne, Err *e) {
    cJSON *root = cJSON_CreateObject();
    char *key = bias_checkpoint_key(o, setting);
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
int bias_checkpoint_find(const cJSON *root, const char *name, const Setting *st, Entry *x) {
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

typedef struct {
    const char *key;
} CkptCtx;

static int same_key(const cJSON *root, const void *ctx) {
    const char *k = resume_str(root, "key");
    return k && strcmp(k, ((const CkptCtx *)ctx)->key) == 0;
}

int bias_checkpoint_load(const BiasExperimentOpts *o, const char *setting, cJSON **root, Err *e) {
    char *path = xasprintf("%s/checkpoint.json", o->out);
    CkptCtx c = {bias_checkpoint_key(o, setting)};
    int rc = resume_load(path, "entries", same_key, &c, 1, root, e);
    if (rc == 0 && *root && !o->quiet)
        fprintf(stderr, "resuming from %s (%d methods done)\n", path, cJSON_GetArraySize(cJSON_GetObjectItem(*root, "entries")));
    free(path), free((char *)c.key);
    return rc;
}

