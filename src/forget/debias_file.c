/* A debiasing transform as a safetensors file (forget debias --out, classify/embed --debias). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "forget/debias.h"
#include "io/safetensors.h"

static StWriteTensor f32_tensor(const char *name, const float *x, int64_t r, int64_t c) {
    StWriteTensor t = {name, ST_F32, c ? 2 : 1, {r, c}, x, NULL};
    return t;
}

int debias_save(const Debias *d, const char *path, Err *e) {
    const int D = d->D;
    StWriteTensor ts[16];
    int nt = 0;
    float *tmp[4] = {NULL, NULL, NULL, NULL};
    if (d->P) {
        tmp[0] = xalloc_floats((size_t)D * D);
        for (long i = 0; i < (long)D * D; i++) tmp[0][i] = (float)d->P[i];
        ts[nt++] = f32_tensor("P", tmp[0], D, D);
    }
    if (d->M) {
        tmp[1] = xalloc_floats((size_t)D * D), tmp[2] = xalloc_floats((size_t)D * D);
        for (long i = 0; i < (long)D * D; i++) tmp[1][i] = (float)d->M[i], tmp[2][i] = d->WWn ? (float)d->WWn[i] : 0;
        ts[nt++] = f32_tensor("M", tmp[1], D, D);
        ts[nt++] = f32_tensor("WWn", tmp[2], D, D);
    }
    if (d->mask) {
        tmp[3] = xalloc_floats((size_t)D);
        for (int j = 0; j < D; j++) tmp[3][j] = d->mask[j];
        ts[nt++] = f32_tensor("mask", tmp[3], D, 0);
        ts[nt++] = f32_tensor("impute", d->impute, D, 0);
        ts[nt++] = f32_tensor("impute_txt", d->impute_txt, D, 0);
    }
    if (d->mu_a) ts[nt++] = f32_tensor("mu_a", d->mu_a, D, 0), ts[nt++] = f32_tensor("mu_b", d->mu_b, D, 0);
    if (d->ctx) ts[nt++] = f32_tensor("ctx", d->ctx, d->n_ctx, d->W);
    if (d->w1) {
        ts[nt++] = f32_tensor("dear.w1", d->w1, d->hidden, D);
        ts[nt++] = f32_tensor("dear.b1", d->b1, d->hidden, 0);
        ts[nt++] = f32_tensor("dear.w2", d->w2, D, d->hidden);
        ts[nt++] = f32_tensor("dear.b2", d->b2, D, 0);
    }
    char lam[32], mu[32], dim[16], naug[16];
    snprintf(lam, sizeof lam, "%.17g", d->lambda);
    snprintf(mu, sizeof mu, "%.17g", d->mu);
    snprintf(dim, sizeof dim, "%d", D);
    snprintf(naug, sizeof naug, "%d", d->n_aug);
    const char *meta[32] = {"forget.debias", DEBIAS_METHODS[d->method].name, "calibrated", d->calibrated ? "1" : "0",
                            "lambda", lam, "mu", mu, "embed_dim", dim, "n_aug", naug};
    int nm = 6;
    char keys[8][16];
    for (int i = 0; i < d->n_aug && i < 8; i++) {
        snprintf(keys[i], sizeof keys[i], "aug.%d", i);
        meta[2 * nm] = keys[i], meta[2 * nm + 1] = d->aug_tpl[i], nm++;
    }
    int rc = st_write(path, ts, nt, meta, nm, e);
    for (int i = 0; i < 4; i++) free(tmp[i]);
    return rc;
}

static float *load_vec(const SafeTensors *st, const char *name, long want, Err *e, int *rc) {
    const StTensor *t = st_find(st, name);
    if (!t) return NULL;
    if (st_numel(t) != want) {
        *rc = err_set(e, "%s: tensor %s has %lld values, expected %ld", st->path, name, (long long)st_numel(t), want);
        return NULL;
    }
    float *x = xalloc_floats((size_t)want);
    if (st_to_f32(t, x, e)) *rc = -1;
    return x;
}

int debias_load(Debias *d, const char *path, Err *e) {
    memset(d, 0, sizeof *d);
    SafeTensors st;
    if (st_open(&st, path, e)) return -1;
    const char *meth = st_meta(&st, "forget.debias"), *dim = st_meta(&st, "embed_dim");
    int rc = 0;
    if (!meth || debias_method_from_name(meth, &d->method) || !dim) {
        st_close(&st);
        return err_set(e, "%s: not a forget debias file (metadata forget.debias / embed_dim missing or unknown)", path);
    }
    const int D = d->D = atoi(dim);
    d->calibrated = st_meta(&st, "calibrated") && strcmp(st_meta(&st, "calibrated"), "1") == 0;
    d->lambda = st_meta(&st, "lambda") ? atof(st_meta(&st, "lambda")) : 0;
    d->mu = st_meta(&st, "mu") ? atof(st_meta(&st, "mu")) : 0;
    float *P = load_vec(&st, "P", (long)D * D, e, &rc), *M = load_vec(&st, "M", (long)D * D, e, &rc);
    float *WWn = load_vec(&st, "WWn", (long)D * D, e, &rc), *mask = load_vec(&st, "mask", D, e, &rc);
    if (P) {
        d->P = xmalloc(sizeof(double) * (size_t)D * D);
        for (long i = 0; i < (long)D * D; i++) d->P[i] = P[i];
    }
    if (M && WWn) {
        d->M = xmalloc(sizeof(double) * (size_t)D * D), d->WWn = xmalloc(sizeof(double) * (size_t)D * D);
        for (long i = 0; i < (long)D * D; i++) d->M[i] = M[i], d->WWn[i] = WWn[i];
    }
    if (mask) {
        d->mask = xmalloc((size_t)D);
        for (int j = 0; j < D; j++) d->mask[j] = mask[j] != 0;
        d->impute = load_vec(&st, "impute", D, e, &rc);
        d->impute_txt = load_vec(&st, "impute_txt", D, e, &rc);
        if (rc == 0 && (!d->impute || !d->impute_txt)) rc = err_set(e, "%s: mask without impute values", path);
    }
    d->mu_a = load_vec(&st, "mu_a", D, e, &rc);
    d->mu_b = load_vec(&st, "mu_b", D, e, &rc);
    const StTensor *c = st_find(&st, "ctx");
    if (c && c->ndim == 2) {
        d->n_ctx = (int)c->shape[0], d->W = (int)c->shape[1];
        d->ctx = load_vec(&st, "ctx", (long)d->n_ctx * d->W, e, &rc);
    }
    const StTensor *w1 = st_find(&st, "dear.w1");
    if (w1 && w1->ndim == 2) {
        d->hidden = (int)w1->shape[0];
        d->w1 = load_vec(&st, "dear.w1", (long)D * d->hidden, e, &rc);
        d->b1 = load_vec(&st, "dear.b1", d->hidden, e, &rc);
        d->w2 = load_vec(&st, "dear.w2", (long)d->hidden * D, e, &rc);
        d->b2 = load_vec(&st, "dear.b2", D, e, &rc);
        if (rc == 0 && (!d->b1 || !d->w2 || !d->b2)) rc = err_set(e, "%s: incomplete dear adapter", path);
    }
    const char *na = st_meta(&st, "n_aug");
    d->n_aug = na ? atoi(na) : 0;
    if (d->n_aug > 0) {
        d->aug_tpl = xcalloc((size_t)d->n_aug, sizeof(char *));
        for (int i = 0; i < d->n_aug; i++) {
            char k[16];
            snprintf(k, sizeof k, "aug.%d", i);
            const char *v = st_meta(&st, k);
            d->aug_tpl[i] = xstrdup(v ? v : "{}");
        }
    }
    if (rc == 0 && DEBIAS_METHODS[d->method].has_P && !d->P) rc = err_set(e, "%s: %s without its projection P", path, meth);
    if (rc == 0 && d->method == DB_PROMPT_ARRAY && !d->ctx) rc = err_set(e, "%s: prompt-array without ctx", path);
    if (rc == 0 && d->method == DB_DEAR && !d->w1) rc = err_set(e, "%s: dear without its adapter", path);
    free(P), free(M), free(WWn), free(mask);
    st_close(&st);
    if (rc) debias_free(d);
    return rc;
}
