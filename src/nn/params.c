#include "nn/params.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

NnParam *nn_add(NnTable *t, float **slot, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->p = xrealloc(t->p, sizeof *t->p * (size_t)t->cap);
    }
    NnParam *p = &t->p[t->n++];
    memset(p, 0, sizeof *p);
    p->slot = slot;
    p->ndim = ndim;
    const int64_t d[4] = {d0, d1, d2, d3};
    p->count = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = d[i];
        p->count *= d[i];
    }
    return p;
}

void nn_key(NnParam *p, int layout, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->key[layout][0], NN_NAME, fmt, ap);
    va_end(ap);
    p->parts[layout] = 1;
}

void nn_key_part(NnParam *p, int layout, int part, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->key[layout][part], NN_NAME, fmt, ap);
    va_end(ap);
    if (p->parts[layout] < part + 1) p->parts[layout] = part + 1;
}

void nn_table_free(NnTable *t) {
    free(t->p);
    memset(t, 0, sizeof *t);
}

const char *nn_param_name(const NnParam *p, int layout) {
    return p->parts[layout] ? p->key[layout][0] : p->key[0][0];
}

float *nn_arena_layout(const NnTable *t, int skip_lazy, long *n_floats) {
    long total = 0;
    for (int i = 0; i < t->n; i++)
        if (!(skip_lazy && t->p[i].lazy)) total += t->p[i].count;
    float *arena = xalloc_floats((size_t)total), *at = arena;
    for (int i = 0; i < t->n; i++) {
        if (skip_lazy && t->p[i].lazy) {
            *t->p[i].slot = NULL;
            continue;
        }
        *t->p[i].slot = at;
        at += t->p[i].count;
    }
    *n_floats = total;
    return arena;
}

void nn_init(const NnTable *t, Rng *r) {
    for (int i = 0; i < t->n; i++) {
        const NnParam *p = &t->p[i];
        float *x = *p->slot;
        if (!x) continue;
        switch (p->init.kind) {
        case INIT_ZEROS: memset(x, 0, sizeof(float) * (size_t)p->count); break;
        case INIT_ONES:
            for (long k = 0; k < p->count; k++) x[k] = 1.0f;
            break;
        case INIT_CONST:
            for (long k = 0; k < p->count; k++) x[k] = p->init.value;
            break;
        case INIT_NORMAL: rng_fill_normal(r, x, p->count, 0, p->init.value); break;
        }
    }
}

/* ------------------------------------------------------------------ loading */

static int check_float_dtype(const StTensor *t, Err *e) {
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return err_set(e, "tensor '%s' has dtype %s; expected F32, F16 or BF16", t->name, st_dtype_name(t->dtype));
    return 0;
}

static void note_dtype(char *dtypes, size_t cap, StDtype d) {
    if (!dtypes) return;
    const char *nm = st_dtype_name(d);
    if (strstr(dtypes, nm)) return;
    size_t l = strlen(dtypes);
    snprintf(dtypes + l, cap - l, "%s%s", l ? "+" : "", nm);
}

static int load_parts(const NnParam *p, SafeTensors *st, int L, char *dtypes, size_t cap, Err *e) {
    const int parts = p->parts[L];
    const long part = p->count / parts;
    for (int i = 0; i < parts; i++) {
        const StTensor *t = st_find(st, p->key[L][i]);
        if (!t) return err_set(e, "missing tensor '%s'", p->key[L][i]);
        if (check_float_dtype(t, e)) return -1;
        const int rep = p->rep[i] > 1 ? p->rep[i] : 1;
        const int64_t want0 = p->shape[0] / parts / rep, want1 = p->ndim > 1 ? p->shape[1] : -1;
        if (t->ndim != p->ndim || t->shape[0] != want0 || (p->ndim > 1 && t->shape[1] != want1))
            return err_set(e, "tensor '%s' has shape [%lld, %lld]; this config expects [%lld, %lld]", t->name,
                           (long long)t->shape[0], (long long)(t->ndim > 1 ? t->shape[1] : 0), (long long)want0,
                           (long long)(want1 > 0 ? want1 : 0));
        float *dst = *p->slot + i * part;
        if (rep == 1) {
            if (st_to_f32(t, dst, e)) return -1;
        } else { /* read the stored heads, then repeat each rep times in place order */
            const long row = p->ndim > 1 ? (long)p->shape[1] : 1, block = (long)p->rep_rows * row;
            float *tmp = xalloc_floats((size_t)(part / rep));
            if (st_to_f32(t, tmp, e)) {
                free(tmp);
                return -1;
            }
            for (long h = 0; h < part / rep / block; h++)
                for (int r = 0; r < rep; r++)
                    memcpy(dst + (h * rep + r) * block, tmp + h * block, sizeof(float) * (size_t)block);
            free(tmp);
        }
        note_dtype(dtypes, cap, t->dtype);
        st_drop_pages(st, t);
    }
    return 0;
}

static int load_one(const NnParam *p, SafeTensors *st, int L, const StTensor **lazy_src, char *dtypes, size_t cap,
                    Err *e) {
    if (p->parts[L] > 1) return load_parts(p, st, L, dtypes, cap, e);
    float *dst = *p->slot;
    const char *name = p->key[L][0];
    const StTensor *t = st_find(st, name);
    if (!t) return err_set(e, "missing tensor '%s'", name);
    if (check_float_dtype(t, e)) return -1;
    note_dtype(dtypes, cap, t->dtype);
    const int transposed = (p->transposed >> L) & 1;
    int ok = st_numel(t) == p->count && (p->ndim == 0 || t->ndim == p->ndim);
    if (ok && p->ndim == 2) {
        const int64_t a = transposed ? p->shape[1] : p->shape[0], b = transposed ? p->shape[0] : p->shape[1];
        ok = t->shape[0] == a && t->shape[1] == b;
    }
    for (int d = 0; ok && p->ndim != 2 && d < p->ndim; d++) ok = t->shape[d] == p->shape[d];
    if (!ok) {
        char want[64] = "";
        for (int d = 0; d < p->ndim; d++) {
            size_t l = strlen(want);
            int64_t v = transposed ? p->shape[p->ndim - 1 - d] : p->shape[d];
            snprintf(want + l, sizeof want - l, "%s%lld", d ? "," : "", (long long)v);
        }
        return err_set(e, "tensor '%s' has %lld elements in %d dims; this config expects [%s]", name,
                       (long long)st_numel(t), t->ndim, want);
    }
    if (!dst) { /* a lazy table stays in the file and is widened row by row */
        if (lazy_src) *lazy_src = t;
        return 0;
    }
    if (!transposed) {
        if (st_to_f32(t, dst, e)) return -1;
    } else {
        float *tmp = xalloc_floats((size_t)p->count);
        if (st_to_f32(t, tmp, e)) {
            free(tmp);
            return -1;
        }
        const int64_t R = t->shape[0], C = t->shape[1]; /* file [R, C] -> internal [C, R] */
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) dst[j * R + i] = tmp[i * C + j];
        free(tmp);
    }
    st_drop_pages(st, t);
    return 0;
}

int nn_load(const NnTable *t, SafeTensors *st, int layout, const StTensor **lazy_src, char *dtypes, size_t cap,
            Err *e) {
    for (int i = 0; i < t->n; i++) {
        if (!t->p[i].parts[layout]) continue; /* not stored in this layout */
        if (load_one(&t->p[i], st, layout, lazy_src, dtypes, cap, e)) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ saving */

int nn_save(const NnTable *t, const char *path, int L, StDtype dtype, const StTensor *lazy_src,
            const char *const *meta_kv, int n_meta, Err *e) {
    StWriteTensor *wt = xcalloc((size_t)t->n * NN_PARTS + 1, sizeof *wt);
    float **owned = xcalloc((size_t)t->n * NN_PARTS + 1, sizeof(float *));
    int nw = 0, no = 0, rc = 0;
    for (int i = 0; i < t->n && rc == 0; i++) {
        const NnParam *p = &t->p[i];
        if (!p->parts[L]) continue;
        const float *src = *p->slot;
        if (!src) { /* widen the lazily mapped table for writing */
            if (!lazy_src) {
                rc = err_set(e, "tensor '%s' has no data to save", nn_param_name(p, L));
                break;
            }
            float *tab = xalloc_floats((size_t)p->count);
            if ((rc = st_to_f32(lazy_src, tab, e)) != 0) {
                free(tab);
                break;
            }
            owned[no++] = tab;
            src = tab;
        }
        const StDtype dt = p->exact ? ST_F32 : dtype;
        if (p->parts[L] > 1) {
            const long part = p->count / p->parts[L];
            for (int k = 0; k < p->parts[L]; k++) {
                StWriteTensor *w = &wt[nw++];
                *w = (StWriteTensor){.name = p->key[L][k], .dtype = dt, .ndim = p->ndim, .f32 = src + k * part};
                w->shape[0] = p->shape[0] / p->parts[L];
                if (p->ndim > 1) w->shape[1] = p->shape[1];
                if (p->rep[k] > 1) { /* the first head of each group */
                    const int rep = p->rep[k];
                    const long row = p->ndim > 1 ? (long)p->shape[1] : 1, block = (long)p->rep_rows * row;
                    float *kept = xalloc_floats((size_t)(part / rep));
                    for (long h = 0; h < part / rep / block; h++)
                        memcpy(kept + h * block, src + k * part + h * rep * block, sizeof(float) * (size_t)block);
                    owned[no++] = kept;
                    w->f32 = kept;
                    w->shape[0] /= rep;
                }
            }
            continue;
        }
        StWriteTensor *w = &wt[nw++];
        *w = (StWriteTensor){.name = p->key[L][0], .dtype = dt, .ndim = p->ndim, .f32 = src};
        for (int d = 0; d < p->ndim; d++) w->shape[d] = p->shape[d];
        if ((p->transposed >> L) & 1) {
            const int64_t R = p->shape[0], C = p->shape[1];
            float *tr = xalloc_floats((size_t)p->count);
            for (int64_t r = 0; r < R; r++)
                for (int64_t c = 0; c < C; c++) tr[c * R + r] = src[r * C + c];
            owned[no++] = tr;
            w->f32 = tr;
            w->shape[0] = C;
            w->shape[1] = R;
        }
    }
    if (rc == 0) rc = st_write(path, wt, nw, meta_kv, n_meta, e);
    for (int i = 0; i < no; i++) free(owned[i]);
    free(owned);
    free(wt);
    return rc;
}

int nn_check_finite(const NnTable *t, int L, Err *e) {
    for (int i = 0; i < t->n; i++) {
        const float *x = *t->p[i].slot;
        if (!x) continue;
        for (long k = 0; k < t->p[i].count; k++)
            if (!isfinite(x[k]))
                return err_set(e, "tensor '%s' holds %s at element %ld", nn_param_name(&t->p[i], L),
                               isnan(x[k]) ? "NaN" : "an infinity", k);
    }
    return 0;
}

int nn_save_meta(const NnTable *t, const char *path, int layout, StDtype dtype, const char *const *own, int n_own,
                 const char *const *extra, int n_extra, Err *e) {
    const char **kv = xmalloc(sizeof(char *) * (size_t)(2 * (n_own + n_extra) + 1));
    for (int i = 0; i < 2 * n_own; i++) kv[i] = own[i];
    for (int i = 0; i < 2 * n_extra; i++) kv[2 * n_own + i] = extra[i];
    const int rc = nn_save(t, path, layout, dtype, NULL, kv, n_own + n_extra, e);
    free(kv);
    return rc;
}
