#include "forget/lsf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ops.h"
#include "core/rng.h"
#include "core/threads.h"
#include "forget/lsf_data.h"
#include "forget/lsf_loss.h"
#include "io/safetensors.h"
#include "models/resnet.h"
#include "train/trainer.h"

/* ------------------------------------------------------------ options */

const char *lsf_code_name(LsfCode c) { return c == LSF_CODE_INPUT ? "input" : c == LSF_CODE_FEATURE ? "feature" : "none"; }

int lsf_code_parse(const char *s, LsfCode *c, Err *e) {
    if (strcmp(s, "input") == 0) *c = LSF_CODE_INPUT;
    else if (strcmp(s, "feature") == 0) *c = LSF_CODE_FEATURE;
    else if (strcmp(s, "none") == 0) *c = LSF_CODE_NONE;
    else return err_set(e, "--code \"%s\": input, feature or none", s);
    return 0;
}

void lsf_opts_default(LsfOpts *o) {
    *o = (LsfOpts){.dataset = "fmnist", .split = "test", .tasks = 5, .code = LSF_CODE_FEATURE, .layer = 1, .kappa = 1.0f,
                   .net = "resnet-20", .epochs = 8, .batch = 64, .train_per_class = 500, .keep_batch = 32,
                   .fisher_samples = 200, .lr = 0.1, .s = 30, .m = 0.35f, .T = 2, .lambda_ewc = 100, .lambda_lwf = 5,
                   .lambda_keep = 10, .lwf_target = 0, .seed = 1};
}

int lsf_task_of(const LsfSplit *s, int cls) {
    for (int t = 0; t < s->tasks; t++)
        if (cls >= s->task_first[t] && cls < s->task_first[t] + s->task_size[t]) return t;
    return -1;
}

static int class_by_name(const LsfSplit *s, const char *name, int len) {
    for (int c = 0; c < s->n_classes; c++)
        if ((int)strlen(s->class_names[c]) == len && strncmp(s->class_names[c], name, (size_t)len) == 0) return c;
    return -1;
}

/* Whether class c may be deleted at task t: a class of this data set, of an earlier task, and t a
 * task that comes. The one check of parsed requests and of requests given as structs. */
static int check_request(const LsfSplit *s, int c, long t, Err *e) {
    if (c < 0 || c >= s->n_classes) return err_set(e, "class %d is not a class of this data set (0..%d)", c, s->n_classes - 1);
    const int own = lsf_task_of(s, c);
    if (t <= own)
        return err_set(e, "class %d (%s) belongs to task %d; a request at task %ld names a class of the %s task: "
                          "requests may only name classes of earlier tasks",
                       c, s->class_names[c], own, t, t == own ? "current" : "a future");
    if (t >= s->tasks && own == s->tasks - 1)
        return err_set(e, "class %d (%s) is learnt in the last task (%d of 0..%d): no later task can take its "
                          "deletion request",
                       c, s->class_names[c], own, s->tasks - 1);
    if (t >= s->tasks) return err_set(e, "class %d (%s): task %ld is past the last task (%d)", c, s->class_names[c], t, s->tasks - 1);
    return 0;
}

int lsf_parse_deletes(const char *spec, const LsfSplit *s, LsfDelete **out, int *n, Err *e) {
    *out = NULL, *n = 0;
    for (const char *p = spec; *p;) {
        const char *end = strchr(p, ','), *stop = end ? end : p + strlen(p);
        const char *at = memchr(p, '@', (size_t)(stop - p));
        const char *cls_end = at ? at : stop;
        char *num_end;
        long c = strtol(p, &num_end, 10);
        if (num_end != cls_end || cls_end == p) c = class_by_name(s, p, (int)(cls_end - p));
        else if (c < 0 || c >= s->n_classes) c = -1;
        if (c < 0) {
            free(*out), *out = NULL;
            return err_set(e, "--delete: \"%.*s\" is not a class of this data set (ids 0..%d or names)",
                           (int)(cls_end - p), p, s->n_classes - 1);
        }
        long t = lsf_task_of(s, (int)c) + 1;
        if (at) {
            t = strtol(at + 1, &num_end, 10);
            if (num_end != stop || num_end == at + 1 || t < 0) {
                free(*out), *out = NULL;
                return err_set(e, "--delete: \"%.*s\": the task after @ is not a count", (int)(stop - p), p);
            }
        }
        if (check_request(s, (int)c, t, e)) {
            free(*out), *out = NULL;
            return err_prefix(e, "--delete: ");
        }
        *out = xrealloc(*out, sizeof(LsfDelete) * (size_t)(*n + 1));
        (*out)[(*n)++] = (LsfDelete){(int)c, (int)t};
        p = end ? end + 1 : stop;
    }
    if (*n == 0) return err_set(e, "--delete: no class given");
    return 0;
}

int lsf_default_deletes(const LsfSplit *s, LsfDelete **out) {
    int n = 0;
    *out = xmalloc(sizeof(LsfDelete) * (size_t)(s->n_classes + 1));
    for (int t = 0; t + 1 < s->tasks; t++) {
        int k = (int)lround(0.3 * s->task_size[t]);
        if (k < 1) k = 1;
        for (int j = 0; j < k; j++) (*out)[n++] = (LsfDelete){s->task_first[t] + j, t + 1};
    }
    return n;
}

/* ------------------------------------------------------------ the run */

typedef struct {
    const LsfOpts *o;
    LsfData *d;
    ResNet net, old;
    ResNetGrads g;
    ResNetActs a_new, a_key, a_keep, a_teach;
    int t, B, spe, perm_epoch, C, H, W; /* task, batch, steps per epoch; the code layer's shape */
    int *perm;
    float *fisher, *anchor;
    int *deleted_at; /* per class: the task its request arrives at (INT_MAX: kept) */
    float *in_codes, *feat_codes;
    long in_len, feat_len;
    float *xb, *xk, *ck, *fk, *f_old, *df_new, *df_key, *df_keep, *cos, *cos_old, *dcos;
    int32_t *yb, *yk;
    double loss_parts[4];
} Run;

static int is_deleted(const Run *r, int cls, int t) { return r->deleted_at[cls] <= t; }

/* Kept mask of head h at task t. */
static void keep_mask(const Run *r, int h, uint8_t *m) {
    const LsfSplit *s = &r->d->split;
    for (int k = 0; k < s->task_size[h]; k++) m[k] = !is_deleted(r, s->task_first[h] + k, r->t);
}

/* Selective LwF of every old head on the features in acts a (current model) against the teacher
 * on the same input; gradients into df. */
static double lwf_all(Run *r, ResNetActs *a, const float *x, const float *code, float *df) {
    const LsfOpts *o = r->o;
    const LsfSplit *s = &r->d->split;
    const int B = r->B, F = resnet_feature_dim(&r->net.cfg);
    resnet_forward(&r->old, &r->a_teach, x, code, o->kappa, 0, 0);
    memcpy(r->f_old, r->a_teach.feat, sizeof(float) * (size_t)B * F);
    double loss = 0;
    const float w = o->lambda_lwf * o->s * o->s * o->T * o->T;
    for (int h = 0; h < r->t; h++) {
        const int K = s->task_size[h];
        uint8_t m[DATASET_MAX_CLASSES];
        keep_mask(r, h, m);
        resnet_head_forward(&r->net, h, a->feat, B, r->cos);
        resnet_head_forward(&r->old, h, r->f_old, B, r->cos_old);
        memset(r->dcos, 0, sizeof(float) * (size_t)B * K);
        loss += selective_lwf_loss(r->cos, r->cos_old, m, B, K, o->T, o->lwf_target, w, r->dcos);
        resnet_head_backward(&r->net, h, a->feat, B, r->dcos, df, &r->g.p);
    }
    return loss;
}

static int lsf_step(void *user, long step, float *loss, Err *e) {
    (void)e;
    Run *r = user;
    const LsfOpts *o = r->o;
    const LsfSplit *s = &r->d->split;
    const LsfImages *tr = &r->d->train[r->t];
    const int B = r->B, t = r->t, K = s->task_size[t], F = resnet_feature_dim(&r->net.cfg);
    const long per = (long)r->d->in_ch * r->d->res * r->d->res;
    const int epoch = (int)(step / r->spe), k = (int)(step % r->spe);
    if (epoch != r->perm_epoch) {
        train_epoch_order(r->perm, tr->n, train_mix(o->seed, 7000 + (uint64_t)t), epoch);
        r->perm_epoch = epoch;
    }
    Rng rr;
    rng_seed(&rr, train_mix(o->seed ^ 0x15f, (uint64_t)t * 10000000ull + (uint64_t)step));
    for (int i = 0; i < B; i++) {
        const int j = r->perm[k * B + i];
        memcpy(r->xb + (size_t)i * per, tr->x + (size_t)j * per, sizeof(float) * (size_t)per);
        r->yb[i] = tr->y[j] - s->task_first[t];
    }
    memset(r->df_new, 0, sizeof(float) * (size_t)B * F);
    memset(r->df_key, 0, sizeof(float) * (size_t)B * F);
    double parts[4] = {0};
    /* L_new */
    resnet_forward(&r->net, &r->a_new, r->xb, NULL, 0, 0, 1);
    resnet_head_forward(&r->net, t, r->a_new.feat, B, r->cos);
    memset(r->dcos, 0, sizeof(float) * (size_t)B * K);
    parts[0] += am_softmax_loss(r->cos, r->yb, B, K, o->s, o->m, 1, r->dcos);
    resnet_head_backward(&r->net, t, r->a_new.feat, B, r->dcos, r->df_new, &r->g.p);
    /* L_key: the code-mixed images (input) or the images with their class code at layer L (feature) */
    const float *key_x = r->xb, *key_code = NULL;
    if (o->code == LSF_CODE_INPUT) {
        for (int i = 0; i < B; i++) {
            const float l = rng_uniform(&rr); /* Beta(1, 1) */
            const float *c = r->in_codes + (size_t)(r->yb[i] + s->task_first[t]) * r->in_len;
            for (long p = 0; p < per; p++) r->xk[(size_t)i * per + p] = l * r->xb[(size_t)i * per + p] + (1 - l) * c[p];
        }
        key_x = r->xk;
    } else if (o->code == LSF_CODE_FEATURE) {
        for (int i = 0; i < B; i++)
            memcpy(r->fk + (size_t)i * r->feat_len, r->feat_codes + (size_t)(r->yb[i] + s->task_first[t]) * r->feat_len,
                   sizeof(float) * (size_t)r->feat_len);
        key_code = r->fk;
    }
    if (o->code != LSF_CODE_NONE) {
        resnet_forward(&r->net, &r->a_key, key_x, key_code, o->kappa, 0, 1);
        resnet_head_forward(&r->net, t, r->a_key.feat, B, r->cos);
        memset(r->dcos, 0, sizeof(float) * (size_t)B * K);
        parts[0] += am_softmax_loss(r->cos, r->yb, B, K, o->s, o->m, 1, r->dcos);
        resnet_head_backward(&r->net, t, r->a_key.feat, B, r->dcos, r->df_key, &r->g.p);
    }
    if (t > 0) {
        parts[1] += lwf_all(r, &r->a_new, r->xb, NULL, r->df_new);
        if (o->code != LSF_CODE_NONE) parts[1] += lwf_all(r, &r->a_key, key_x, key_code, r->df_key);
    }
    resnet_backward(&r->net, &r->a_new, r->df_new, &r->g.p, NULL);
    if (o->code != LSF_CODE_NONE) resnet_backward(&r->net, &r->a_key, r->df_key, &r->g.p, NULL);
    /* L_keep: old heads on codes of their kept classes alone. One forward of keep_batch codes a step,
     * dealt round-robin over the old heads that keep a class, each head's AM-softmax on its rows
     * (LSF's code draws 32 codes for every old head in a forward each: ten tasks would cost nine
     * extra forwards a step; docs/lsf.md) */
    if (t > 0 && o->code != LSF_CODE_NONE) {
        /* each old head's kept classes (local ids), once a step: kept + off[h], cnt[h] of them */
        int heads[LSF_MAX_TASKS], off[LSF_MAX_TASKS], cnt[LSF_MAX_TASKS], nh = 0, nk = 0;
        int *kept = xmalloc(sizeof(int) * (size_t)s->n_classes);
        for (int h = 0; h < t; h++) {
            off[h] = nk, cnt[h] = 0;
            for (int j = 0; j < s->task_size[h]; j++)
                if (!is_deleted(r, s->task_first[h] + j, t)) kept[nk++] = j, cnt[h]++;
            if (cnt[h]) heads[nh++] = h;
        }
        const int KB = o->keep_batch;
        if (nh > 0) {
            int *row_head = xmalloc(sizeof(int) * (size_t)KB);
            for (int i = 0; i < KB; i++) {
                const int h = heads[i % nh];
                const int j = kept[off[h] + (int)rng_below(&rr, (uint32_t)cnt[h])], cls = s->task_first[h] + j;
                r->yk[i] = j, row_head[i] = h;
                if (o->code == LSF_CODE_INPUT)
                    memcpy(r->ck + (size_t)i * per, r->in_codes + (size_t)cls * r->in_len, sizeof(float) * (size_t)per);
                else
                    memcpy(r->ck + (size_t)i * r->feat_len, r->feat_codes + (size_t)cls * r->feat_len,
                           sizeof(float) * (size_t)r->feat_len);
            }
            if (o->code == LSF_CODE_INPUT) resnet_forward(&r->net, &r->a_keep, r->ck, NULL, 0, 0, 1);
            else resnet_forward(&r->net, &r->a_keep, NULL, r->ck, o->kappa, 1, 1);
            memset(r->df_keep, 0, sizeof(float) * (size_t)KB * F);
            for (int q = 0; q < nh; q++) {
                const int h = heads[q], Kh = s->task_size[h];
                int rows = 0;
                resnet_head_forward(&r->net, h, r->a_keep.feat, KB, r->cos);
                for (int i = 0; i < KB; i++) /* this head's rows, packed */
                    if (row_head[i] == h) {
                        memmove(r->cos_old + (size_t)rows * Kh, r->cos + (size_t)i * Kh, sizeof(float) * (size_t)Kh);
                        r->yb[rows++] = r->yk[i];
                    }
                float *dsub = xcalloc((size_t)rows * Kh, sizeof(float));
                parts[2] += am_softmax_loss(r->cos_old, r->yb, rows, Kh, o->s, o->m, o->lambda_keep, dsub);
                memset(r->dcos, 0, sizeof(float) * (size_t)KB * Kh);
                for (int i = 0, k2 = 0; i < KB; i++)
                    if (row_head[i] == h) memcpy(r->dcos + (size_t)i * Kh, dsub + (size_t)(k2++) * Kh, sizeof(float) * (size_t)Kh);
                free(dsub);
                resnet_head_backward(&r->net, h, r->a_keep.feat, KB, r->dcos, r->df_keep, &r->g.p);
            }
            resnet_backward(&r->net, &r->a_keep, r->df_keep, &r->g.p, NULL);
            free(row_head);
        }
        free(kept);
    }
    if (t > 0) parts[3] = ewc_loss(r->net.arena, r->anchor, r->fisher, r->net.n_params, o->lambda_ewc, r->g.arena);
    for (int i = 0; i < 4; i++) r->loss_parts[i] = parts[i];
    *loss = (float)(parts[0] + parts[1] + parts[2] + parts[3]);
    return 0;
}

static void lsf_status(void *user, long step, float loss, char *buf, size_t cap) {
    (void)step;
    const Run *r = user;
    snprintf(buf, cap, "task %d loss %.3f (cls %.3f lwf %.3f keep %.3f ewc %.3f)", r->t, (double)loss, r->loss_parts[0],
             r->loss_parts[1], r->loss_parts[2], r->loss_parts[3]);
}

/* EWC's diagonal Fisher of task t as LSF's Comp_Fisher_Diag: squared mini-batch gradients of
 * the cross-entropy on the head's cosines (no scale, no margin), weighted by batch size and
 * averaged, here with BatchNorm in eval mode; EWC+ (weight_loss_light) keeps r F_old + (1 - r)
 * F_new for the shared layers (r = 0.5) and each head's own Fisher. */
static void update_fisher(Run *r) {
    const LsfOpts *o = r->o;
    const LsfSplit *s = &r->d->split;
    const LsfImages *tr = &r->d->train[r->t];
    const long n = r->net.n_params, per = (long)r->d->in_ch * r->d->res * r->d->res;
    const int F = resnet_feature_dim(&r->net.cfg), K = s->task_size[r->t], B = r->B;
    const int nb = (o->fisher_samples + B - 1) / B < tr->n / B ? (o->fisher_samples + B - 1) / B : tr->n / B;
    float *acc = xcalloc((size_t)n, sizeof(float));
    for (int b = 0; b < nb; b++) {
        for (int i = 0; i < B; i++) { /* evenly spaced over the task's images */
            const int j = (int)(((long)b * B + i) * tr->n / ((long)nb * B));
            memcpy(r->xb + (size_t)i * per, tr->x + (size_t)j * per, sizeof(float) * (size_t)per);
            r->yb[i] = tr->y[j] - s->task_first[r->t];
        }
        resnet_forward(&r->net, &r->a_new, r->xb, NULL, 0, 0, 0);
        resnet_head_forward(&r->net, r->t, r->a_new.feat, B, r->cos);
        memset(r->dcos, 0, sizeof(float) * (size_t)B * K);
        memset(r->df_new, 0, sizeof(float) * (size_t)B * F);
        memset(r->g.arena, 0, sizeof(float) * (size_t)n);
        am_softmax_loss(r->cos, r->yb, B, K, 1, 0, 1, r->dcos);
        resnet_head_backward(&r->net, r->t, r->a_new.feat, B, r->dcos, r->df_new, &r->g.p);
        resnet_backward(&r->net, &r->a_new, r->df_new, &r->g.p, NULL);
        for (long k = 0; k < n; k++) acc[k] += r->g.arena[k] * r->g.arena[k] / (float)nb;
    }
    for (int i = 0; i < r->net.table.n; i++) {
        const NnParam *p = &r->net.table.p[i];
        const long off = *p->slot - r->net.arena;
        const int head = strncmp(p->key[0][0], "heads.", 6) == 0;
        for (long k = off; k < off + p->count; k++)
            r->fisher[k] = p->buffer ? 0.0f : head ? r->fisher[k] + acc[k] : r->t == 0 ? acc[k] : 0.5f * r->fisher[k] + 0.5f * acc[k];
    }
    memcpy(r->anchor, r->net.arena, sizeof(float) * (size_t)n);
    memset(r->g.arena, 0, sizeof(float) * (size_t)n);
    free(acc);
}

/* Accuracy of every class of tasks 0..t with its own head, into row[class] (-1 for unseen). */
static void evaluate(Run *r, float *row) {
    const LsfSplit *s = &r->d->split;
    const long per = (long)r->d->in_ch * r->d->res * r->d->res;
    const int B = r->B;
    int *hit = xcalloc((size_t)s->n_classes, sizeof(int)), *cnt = xcalloc((size_t)s->n_classes, sizeof(int));
    float *x = xalloc_floats((size_t)B * per), *cos = xalloc_floats((size_t)B * DATASET_MAX_CLASSES);
    for (int h = 0; h <= r->t; h++) {
        const LsfImages *ev = &r->d->eval[h];
        const int K = s->task_size[h];
        for (int i0 = 0; i0 < ev->n; i0 += B) {
            const int nb = ev->n - i0 < B ? ev->n - i0 : B;
            memset(x, 0, sizeof(float) * (size_t)B * per); /* padding rows: eval-mode BatchNorm keeps rows apart */
            memcpy(x, ev->x + (size_t)i0 * per, sizeof(float) * (size_t)nb * per);
            resnet_forward(&r->net, &r->a_new, x, NULL, 0, 0, 0);
            resnet_head_forward(&r->net, h, r->a_new.feat, B, cos);
            for (int i = 0; i < nb; i++) {
                int best = 0;
                for (int k = 1; k < K; k++)
                    if (cos[(size_t)i * K + k] > cos[(size_t)i * K + best]) best = k;
                const int y = ev->y[i0 + i];
                cnt[y]++;
                hit[y] += best == y - s->task_first[h];
            }
        }
    }
    for (int c = 0; c < s->n_classes; c++) row[c] = cnt[c] ? (float)hit[c] / (float)cnt[c] : -1.0f;
    free(hit), free(cnt), free(x), free(cos);
}

/* The metrics of task t from its row of class accuracies (classes weigh equally: their eval sets
 * are of equal size in every data set here). */
static void task_metrics(const Run *r, const float *row, LsfTaskResult *m) {
    const LsfSplit *s = &r->d->split;
    double kept = 0, del = 0, cur = 0, seen = 0;
    int nk = 0, nd = 0, nc = 0, ns = 0;
    for (int c = 0; c < s->n_classes; c++) {
        if (row[c] < 0) continue;
        const int own = lsf_task_of(s, c);
        if (is_deleted(r, c, r->t)) {
            del += 1 - row[c], nd++;
            continue;
        }
        seen += row[c], ns++;
        if (own == r->t) cur += row[c], nc++;
        else kept += row[c], nk++;
    }
    m->task = r->t;
    m->kept_acc = nk ? kept / nk : -1, m->deleted_err = nd ? del / nd : -1, m->current_acc = nc ? cur / nc : -1;
    m->seen_acc = ns ? seen / ns : -1;
    m->n_kept = nk, m->n_deleted = nd, m->n_current = nc;
    m->H = nd && ns && seen + del > 0 ? 2 * m->seen_acc * m->deleted_err / (m->seen_acc + m->deleted_err) : -1;
}

/* ------------------------------------------------------------ state between tasks */

static void recipe(const LsfOpts *o, char *buf, size_t cap) {
    snprintf(buf, cap, "lsf %s tasks=%d code=%s layer=%d kappa=%g net=%s epochs=%d batch=%d per_class=%d seed=%llu lr=%g u=%g eval=%d",
             o->dataset, o->tasks, lsf_code_name(o->code), o->layer, (double)o->kappa, o->net, o->epochs, o->batch,
             o->train_per_class, (unsigned long long)o->seed, o->lr, (double)o->lwf_target, o->eval_per_class);
}

static void path_in(const LsfOpts *o, const char *name, char *buf, size_t cap) { snprintf(buf, cap, "%s/%s", o->out_dir, name); }

static int save_state(Run *r, const LsfResult *res, int done, Err *e) {
    char path[4096], rec[512], tdone[16];
    path_in(r->o, "state.safetensors", path, sizeof path);
    recipe(r->o, rec, sizeof rec);
    snprintf(tdone, sizeof tdone, "%d", done);
    const long n = r->net.n_params;
    StWriteTensor t[4] = {
        {.name = "net", .dtype = ST_F32, .ndim = 1, .shape = {n}, .f32 = r->net.arena},
        {.name = "fisher", .dtype = ST_F32, .ndim = 1, .shape = {n}, .f32 = r->fisher},
        {.name = "anchor", .dtype = ST_F32, .ndim = 1, .shape = {n}, .f32 = r->anchor},
        {.name = "class_acc", .dtype = ST_F32, .ndim = 2, .shape = {done + 1, r->d->split.n_classes}, .f32 = res->class_acc},
    };
    const char *meta[] = {"recipe", rec, "task_done", tdone};
    return st_write(path, t, 4, meta, 2, e);
}

/* The last finished task of a previous run with this recipe (-1: none), its state restored. */
static int load_state(Run *r, LsfResult *res, Err *e) {
    char path[4096], rec[512];
    path_in(r->o, "state.safetensors", path, sizeof path);
    if (access(path, F_OK) != 0) return -1;
    recipe(r->o, rec, sizeof rec);
    SafeTensors st;
    if (st_open(&st, path, e)) return -2;
    const char *rr = st_meta(&st, "recipe"), *td = st_meta(&st, "task_done");
    const StTensor *tn = st_find(&st, "net"), *tf = st_find(&st, "fisher"), *ta = st_find(&st, "anchor"),
                   *tc = st_find(&st, "class_acc");
    int done = td ? atoi(td) : -1, rc = 0;
    if (!rr || strcmp(rr, rec) != 0) {
        rc = -1; /* another recipe: start afresh, the state is overwritten after the first task */
    } else if (!tn || !tf || !ta || !tc || done < 0 || done >= r->o->tasks || st_numel(tn) != r->net.n_params ||
               st_numel(tc) != (int64_t)(done + 1) * r->d->split.n_classes) {
        rc = -2, err_set(e, "%s: not a state of this run (remove it to start afresh)", path);
    } else if (st_to_f32(tn, r->net.arena, e) || st_to_f32(tf, r->fisher, e) || st_to_f32(ta, r->anchor, e) ||
               st_to_f32(tc, res->class_acc, e)) {
        rc = -2, err_prefix(e, "%s: ", path);
    }
    st_close(&st);
    return rc ? rc : done;
}

/* ------------------------------------------------------------ driver */

static void run_free(Run *r) {
    resnet_free(&r->net), resnet_free(&r->old), resnet_grads_free(&r->g);
    ResNetActs *a[] = {&r->a_new, &r->a_key, &r->a_keep, &r->a_teach};
    for (size_t i = 0; i < sizeof a / sizeof *a; i++) resnet_acts_free(a[i]);
    float *f[] = {r->fisher, r->anchor, r->in_codes, r->feat_codes, r->xb, r->xk, r->ck, r->fk, r->f_old, r->df_new,
                  r->df_key, r->df_keep, r->cos, r->cos_old, r->dcos};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) free(f[i]);
    free(r->perm), free(r->deleted_at), free(r->yb), free(r->yk);
}

static int setup(Run *r, const LsfOpts *o, LsfData *d, Err *e) {
    ResNetConfig c = {.in_ch = d->in_ch, .res = d->res, .n_heads = d->split.tasks,
                      .code_layer = o->code == LSF_CODE_FEATURE ? o->layer : -1};
    if (resnet_config_named(&c, o->net, e)) return -1;
    for (int t = 0; t < d->split.tasks; t++) c.head_classes[t] = d->split.task_size[t];
    if (resnet_config_check(&c, e)) return -1;
    int maxn = 0;
    for (int t = 0; t < d->split.tasks; t++) maxn = d->train[t].n > maxn ? d->train[t].n : maxn;
    if (o->batch < 2 || o->batch > maxn)
        return err_set(e, "--batch %d: between 2 and the %d training images of a task", o->batch, maxn);
    r->B = o->batch;
    resnet_alloc(&r->net, &c), resnet_alloc(&r->old, &c);
    resnet_init(&r->net, train_mix(o->seed, 77));
    resnet_grads_alloc(&r->g, &c);
    resnet_acts_alloc(&r->a_new, &c, r->B), resnet_acts_alloc(&r->a_teach, &c, r->B);
    if (o->code != LSF_CODE_NONE) resnet_acts_alloc(&r->a_key, &c, r->B), resnet_acts_alloc(&r->a_keep, &c, o->keep_batch);
    const int F = resnet_feature_dim(&c), nc = d->split.n_classes, KB = o->keep_batch > r->B ? o->keep_batch : r->B;
    const long per = (long)d->in_ch * d->res * d->res;
    r->in_len = per;
    if (c.code_layer >= 0) {
        resnet_layer_shape(&c, c.code_layer, &r->C, &r->H, &r->W);
        r->feat_len = (long)r->C * r->H * r->W;
    }
    r->in_codes = xalloc_floats((size_t)nc * per);
    for (int k = 0; k < nc; k++) lsf_input_code(r->in_codes + (size_t)k * per, d->in_ch, d->res, o->seed, k);
    if (r->feat_len) {
        r->feat_codes = xalloc_floats((size_t)nc * r->feat_len);
        for (int k = 0; k < nc; k++) lsf_feature_code(r->feat_codes + (size_t)k * r->feat_len, r->C, r->H, r->W, o->seed, k);
        r->fk = xalloc_floats((size_t)r->B * r->feat_len);
    }
    const long cmax = per > r->feat_len ? per : r->feat_len;
    r->xb = xalloc_floats((size_t)r->B * per), r->xk = xalloc_floats((size_t)r->B * per);
    r->ck = xalloc_floats((size_t)KB * cmax);
    r->f_old = xalloc_floats((size_t)r->B * F);
    r->df_new = xalloc_floats((size_t)r->B * F), r->df_key = xalloc_floats((size_t)r->B * F);
    r->df_keep = xalloc_floats((size_t)KB * F);
    r->cos = xalloc_floats((size_t)KB * DATASET_MAX_CLASSES), r->cos_old = xalloc_floats((size_t)KB * DATASET_MAX_CLASSES);
    r->dcos = xalloc_floats((size_t)KB * DATASET_MAX_CLASSES);
    r->yb = xmalloc(sizeof(int32_t) * (size_t)KB), r->yk = xmalloc(sizeof(int32_t) * (size_t)KB);
    r->perm = xmalloc(sizeof(int) * (size_t)maxn);
    r->fisher = xcalloc((size_t)r->net.n_params, sizeof(float)), r->anchor = xcalloc((size_t)r->net.n_params, sizeof(float));
    return 0;
}

/* The request check: for each task where requests arrive, the kept classes of earlier tasks
 * before (end of the previous task) and after, and the requested classes' error after. */
static void request_check(const Run *r, LsfResult *res) {
    const LsfSplit *s = &r->d->split;
    double before = 0, after = 0, err = 0;
    int nb = 0, nd = 0;
    for (int t = 1; t < res->n_tasks; t++) {
        int arrives = 0;
        for (int c = 0; c < s->n_classes; c++) arrives |= r->deleted_at[c] == t;
        if (!arrives) continue;
        const float *prev = res->class_acc + (size_t)(t - 1) * s->n_classes, *row = res->class_acc + (size_t)t * s->n_classes;
        for (int c = 0; c < s->task_first[t]; c++) {
            if (r->deleted_at[c] == t) err += 1 - row[c], nd++;
            else if (r->deleted_at[c] > t) before += prev[c], after += row[c], nb++;
        }
    }
    res->before_kept_acc = nb ? before / nb : -1, res->after_kept_acc = nb ? after / nb : -1;
    res->after_deleted_err = nd ? err / nd : -1;
}

int lsf_run(const LsfOpts *o, LsfResult *res, Err *e) {
    memset(res, 0, sizeof *res);
    if (o->epochs < 1 || o->train_per_class < 1 || o->keep_batch < 1 || o->fisher_samples < 1 || !(o->lr > 0))
        return err_set(e, "lsf: epochs, train-per-class, keep-batch, fisher-samples and lr must be positive");
    if (o->code == LSF_CODE_FEATURE) { /* the layer is checked before minutes of data preparation */
        ResNetConfig c = {0};
        if (resnet_config_named(&c, o->net, e)) return -1;
        if (o->layer < 0 || o->layer > resnet_blocks(&c))
            return err_set(e, "--layer %d: %s has no such layer for the code (0 = after the stem, 1..%d after a block)",
                           o->layer, o->net, resnet_blocks(&c));
    }
    LsfData d;
    if (lsf_data_load(&d, o, e)) return -1;
    Run r;
    memset(&r, 0, sizeof r);
    r.o = o, r.d = &d;
    r.deleted_at = xmalloc(sizeof(int) * (size_t)d.split.n_classes);
    for (int c = 0; c < d.split.n_classes; c++) r.deleted_at[c] = 1 << 30;
    LsfDelete *dels = o->deletes;
    int nd = o->n_deletes, own = 0, rc = 0;
    if (o->delete_spec) {
        rc = lsf_parse_deletes(o->delete_spec, &d.split, &dels, &nd, e);
        own = 1;
    } else if (!dels) {
        nd = lsf_default_deletes(&d.split, &dels), own = 1;
    }
    for (int i = 0; i < nd && !rc; i++) { /* requests given as structs (the API) are checked like parsed ones */
        const int c = dels[i].cls, t = dels[i].at;
        if (check_request(&d.split, c, t, e)) rc = err_prefix(e, "deletion request %d: ", i);
        else if (t < r.deleted_at[c]) r.deleted_at[c] = t;
    }
    if (own) free(dels);
    if (!rc) rc = setup(&r, o, &d, e);
    if (rc) {
        run_free(&r);
        lsf_data_free(&d);
        return -1;
    }
    res->split = d.split;
    res->split.class_names = dataset_names_copy((const char *const *)d.split.class_names, d.split.n_classes);
    res->class_acc = xalloc_floats((size_t)d.split.tasks * d.split.n_classes);
    int start = 0;
    if (o->out_dir) {
        if (mkdir(o->out_dir, 0755) != 0 && access(o->out_dir, W_OK) != 0) rc = err_set(e, "%s: cannot create", o->out_dir);
        int done = rc ? -1 : load_state(&r, res, e);
        if (done == -2) rc = -1;
        if (done >= 0) {
            start = done + 1;
            if (!o->quiet) fprintf(stderr, "lsf: resuming after task %d from %s/state.safetensors\n", done, o->out_dir);
        }
    }
    const double t0 = now_seconds();
    double train_img = 0, train_s = 0;
    for (int t = 0; t < d.split.tasks && !rc; t++) {
        r.t = t;
        if (t < start) { /* restored: only the metrics are recomputed from the saved rows */
            task_metrics(&r, res->class_acc + (size_t)t * d.split.n_classes, &res->per_task[t]);
            res->n_tasks = t + 1;
            continue;
        }
        const double ts = now_seconds();
        resnet_copy(&r.old, &r.net); /* the frozen previous model for distillation */
        r.spe = d.train[t].n / r.B;
        r.perm_epoch = -1;
        static const double ms[] = {0.2, 0.3, 0.6, 0.8};
        char label[64], rec[600], ck[4096];
        snprintf(label, sizeof label, "lsf task %d/%d", t + 1, d.split.tasks);
        recipe(o, rec, sizeof rec - 32);
        snprintf(rec + strlen(rec), sizeof rec - strlen(rec), " task=%d", t);
        if (o->out_dir) snprintf(ck, sizeof ck, "%s/task.ckpt", o->out_dir);
        TrainSpec spec = {.label = label, .total_steps = (long)r.spe * o->epochs, .lr = o->lr,
                          .warmup_frac = 1.0 / o->epochs, .wd = 5e-4, .sgd = 1, .momentum = 0.9f, .milestones = ms,
                          .n_milestones = 4, .gamma = 0.2, .params = r.net.arena, .grads = r.g.arena,
                          .n_params = r.net.n_params, .table = &r.net.table, .step = lsf_step, .status = lsf_status,
                          .user = &r, .samples_per_step = r.B, .unit = "img", .quiet = o->quiet,
                          .ckpt = o->out_dir ? ck : NULL, .recipe = rec, .producer = "forget lsf", .ckpt_every = r.spe};
        TrainState st;
        rc = train_run(&spec, &st, e);
        if (rc) break;
        train_img += (double)st.steps_this_run * r.B;
        train_s += now_seconds() - ts;
        update_fisher(&r);
        float *row = res->class_acc + (size_t)t * d.split.n_classes;
        evaluate(&r, row);
        task_metrics(&r, row, &res->per_task[t]);
        res->per_task[t].seconds = now_seconds() - ts;
        res->n_tasks = t + 1;
        if (o->out_dir) {
            rc = save_state(&r, res, t, e);
            if (!rc) unlink(ck); /* the task is done: its mid-task checkpoint is not needed again */
        }
        if (!o->quiet) {
            const LsfTaskResult *m = &res->per_task[t];
            fprintf(stderr, "task %d: current %.1f%%  kept %.1f%%  deleted err %.1f%%  H %.1f  (%.0f s)\n", t,
                    100 * m->current_acc, m->kept_acc < 0 ? 0 : 100 * m->kept_acc,
                    m->deleted_err < 0 ? 0 : 100 * m->deleted_err, m->H < 0 ? 0 : 100 * m->H, m->seconds);
        }
    }
    res->seconds = now_seconds() - t0;
    res->train_images_per_s = train_s > 0 ? train_img / train_s : 0;
    if (!rc) request_check(&r, res);
    res->requests = xmalloc(sizeof(LsfDelete) * (size_t)d.split.n_classes);
    for (int c = 0; c < d.split.n_classes; c++)
        if (r.deleted_at[c] < d.split.tasks) res->requests[res->n_requests++] = (LsfDelete){c, r.deleted_at[c]};
    if (!rc && o->out_dir) {
        char path[4096];
        path_in(o, "model.safetensors", path, sizeof path);
        char rec[512];
        recipe(o, rec, sizeof rec);
        const char *meta[] = {"recipe", rec, "code", lsf_code_name(o->code)};
        rc = resnet_save(&r.net, path, meta, 2, e);
    }
    run_free(&r);
    lsf_data_free(&d);
    if (rc) lsf_result_free(res); /* a failed run returns nothing to free */
    return rc;
}

void lsf_result_free(LsfResult *r) {
    if (r->split.class_names) {
        for (int c = 0; c < r->split.n_classes; c++) free(r->split.class_names[c]);
        free(r->split.class_names);
    }
    free(r->class_acc), free(r->requests);
    memset(r, 0, sizeof *r);
}

static cJSON *num_or_null(double v) { return v < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(v); }

char *lsf_result_json(const LsfOpts *o, const LsfResult *r) {
    cJSON *root = cJSON_CreateObject(), *op = cJSON_AddObjectToObject(root, "options");
    cJSON_AddStringToObject(op, "dataset", o->dataset);
    cJSON_AddStringToObject(op, "split", o->split ? o->split : "test");
    cJSON_AddNumberToObject(op, "tasks", o->tasks);
    cJSON_AddStringToObject(op, "code", lsf_code_name(o->code));
    if (o->code == LSF_CODE_FEATURE) {
        cJSON_AddNumberToObject(op, "layer", o->layer);
        cJSON_AddNumberToObject(op, "kappa", o->kappa);
        cJSON_AddStringToObject(op, "note", "feature codes: our reconstruction (docs/lsf.md)");
    }
    cJSON_AddStringToObject(op, "net", o->net);
    cJSON_AddNumberToObject(op, "epochs", o->epochs);
    cJSON_AddNumberToObject(op, "batch", o->batch);
    cJSON_AddNumberToObject(op, "train_per_class", o->train_per_class);
    cJSON_AddNumberToObject(op, "seed", (double)o->seed);
    cJSON *dl = cJSON_AddArrayToObject(root, "deletion_requests");
    for (int i = 0; i < r->n_requests; i++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "class", r->requests[i].cls);
        cJSON_AddStringToObject(j, "name", r->split.class_names[r->requests[i].cls]);
        cJSON_AddNumberToObject(j, "at_task", r->requests[i].at);
        cJSON_AddItemToArray(dl, j);
    }
    cJSON *pt = cJSON_AddArrayToObject(root, "per_task");
    for (int t = 0; t < r->n_tasks; t++) {
        const LsfTaskResult *m = &r->per_task[t];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "task", t);
        cJSON_AddItemToObject(j, "kept_acc", num_or_null(m->kept_acc));
        cJSON_AddItemToObject(j, "deleted_err", num_or_null(m->deleted_err));
        cJSON_AddItemToObject(j, "current_acc", num_or_null(m->current_acc));
        cJSON_AddItemToObject(j, "seen_acc", num_or_null(m->seen_acc));
        cJSON_AddItemToObject(j, "H", num_or_null(m->H));
        cJSON_AddNumberToObject(j, "n_kept_classes", m->n_kept);
        cJSON_AddNumberToObject(j, "n_deleted_classes", m->n_deleted);
        cJSON_AddNumberToObject(j, "seconds", m->seconds);
        cJSON_AddItemToArray(pt, j);
    }
    const LsfTaskResult *last = r->n_tasks ? &r->per_task[r->n_tasks - 1] : NULL;
    cJSON *fin = cJSON_AddObjectToObject(root, "final");
    if (last) {
        cJSON_AddItemToObject(fin, "H", num_or_null(last->H));
        cJSON_AddItemToObject(fin, "kept_acc", num_or_null(last->kept_acc));
        cJSON_AddItemToObject(fin, "deleted_err", num_or_null(last->deleted_err));
        cJSON_AddItemToObject(fin, "current_acc", num_or_null(last->current_acc));
        cJSON_AddItemToObject(fin, "seen_acc", num_or_null(last->seen_acc));
    }
    cJSON *rq = cJSON_AddObjectToObject(root, "requests");
    cJSON_AddItemToObject(rq, "kept_acc_before", num_or_null(r->before_kept_acc));
    cJSON_AddItemToObject(rq, "kept_acc_after", num_or_null(r->after_kept_acc));
    cJSON_AddItemToObject(rq, "deleted_err_after", num_or_null(r->after_deleted_err));
    cJSON_AddNumberToObject(root, "seconds", r->seconds);
    cJSON_AddNumberToObject(root, "train_images_per_s", r->train_images_per_s);
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}
