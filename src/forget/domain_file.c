/* The domain-unlearning file: one table per method kind (domain_file.h lists the tensors). */
#include "forget/domain_file.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/rng.h"
#include "models/clip_encode.h"
#include "models/clip_params.h"

static const char *KIND_NAMES[] = {"prompts", "clipfit", "lp++", "bbf"};

uint64_t clip_fingerprint(ClipModel *m) {
    NnTable t = clip_param_table(m);
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < t.n; i++) {
        const float *v = *t.p[i].slot;
        if (!v || t.p[i].lazy) continue; /* the token table: in memory or not depending on how m was loaded */
        const unsigned char *b = (const unsigned char *)v;
        for (size_t k = 0; k < (size_t)t.p[i].count * sizeof(float); k++) h = (h ^ b[k]) * 1099511628211ull;
    }
    nn_table_free(&t);
    return h;
}

static NnParam *entry(NnTable *t, float **slot, int ndim, int64_t d0, int64_t d1, const char *key, NnInit init) {
    NnParam *p = nn_add(t, slot, ndim, d0, d1, 0, 0);
    nn_key(p, 0, "%s", key);
    nn_key(p, 1, "%s", key);
    p->init = init;
    return p;
}

void domain_adapter_alloc(DomainAdapter *a, ClipModel *m, const DomainAdapterShape *sh) {
    memset(a, 0, sizeof *a);
    a->sh = *sh;
    a->fingerprint = clip_fingerprint(m);
    const int E = m->cfg.embed_dim;
    const NnInit small = {INIT_NORMAL, 0.01f}, zero = {INIT_ZEROS, 0};
    if (sh->kind == DK_PROMPTS) clip_prompts_declare(&a->table, &a->prompts, &m->cfg, sh->tokens, sh->layers, sh->pg_layer);
    if (sh->kind == DK_PROMPTS && sh->n_domains > 0) {
        entry(&a->table, &a->head_w, 2, sh->n_domains, E, "ddl.head.weight", small);
        entry(&a->table, &a->head_b, 1, sh->n_domains, 0, "ddl.head.bias", zero);
    }
    if (sh->kind == DK_LINEAR) entry(&a->table, &a->lp_w, 2, sh->n_classes, E, "lp.head.weight", zero);
    if (sh->kind == DK_BBF) entry(&a->table, &a->ctx, 2, sh->n_ctx, m->cfg.t_width, "bbf.context", zero);
    if (a->table.n) {
        a->arena = nn_arena_layout(&a->table, 0, &a->n_params);
        memset(a->arena, 0, sizeof(float) * (size_t)a->n_params);
    }
}

void domain_adapter_init(DomainAdapter *a, const float *T, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed ^ 0xad0);
    if (a->table.n) nn_init(&a->table, &r);
    if (a->lp_w) memcpy(a->lp_w, T, sizeof(float) * (size_t)a->table.p[0].count);
}

void domain_adapter_free(DomainAdapter *a) {
    nn_table_free(&a->table);
    free(a->arena);
    memset(a, 0, sizeof *a);
}

int domain_clipfit_entry(const NnParam *p) {
    const char *k = p->key[0][0];
    if (strncmp(k, "visual.", 7) != 0) return 0;
    const size_t n = strlen(k);
    return (n > 5 && strcmp(k + n - 5, ".bias") == 0) || strstr(k, "ln_") != NULL;
}

/* clipfit's entries of m (domain_clipfit_entry). */
static NnTable clipfit_table(ClipModel *m) {
    NnTable all = clip_param_table(m), t = {0};
    for (int i = 0; i < all.n; i++) {
        if (!domain_clipfit_entry(&all.p[i])) continue;
        NnParam *p = nn_add(&t, all.p[i].slot, all.p[i].ndim, all.p[i].shape[0], all.p[i].shape[1], all.p[i].shape[2],
                            all.p[i].shape[3]);
        *p = all.p[i];
    }
    nn_table_free(&all);
    return t;
}

int domain_adapter_save(const DomainAdapter *a, ClipModel *m, const char *path, const char *method, const char *dataset,
                        const char *forget, Err *e) {
    char fp[32], ints[7][16];
    snprintf(fp, sizeof fp, "%016" PRIx64, a->fingerprint);
    const int vals[7] = {a->sh.kind, a->sh.tokens, a->sh.layers, a->sh.pg_layer, a->sh.n_domains, a->sh.n_classes,
                         a->sh.n_ctx};
    for (int i = 0; i < 7; i++) snprintf(ints[i], sizeof ints[i], "%d", vals[i]);
    const char *meta[] = {"format", "forget-domain", "method", method, "kind", KIND_NAMES[a->sh.kind],
                          "tokens", ints[1], "layers", ints[2], "instapg_layer", ints[3], "n_domains", ints[4],
                          "n_classes", ints[5], "n_ctx", ints[6], "model_fingerprint", fp, "dataset", dataset,
                          "forget_domains", forget};
    const int n_meta = (int)(sizeof meta / sizeof *meta) / 2;
    if (a->sh.kind == DK_CLIPFIT) {
        NnTable t = clipfit_table(m);
        const int rc = nn_save(&t, path, 0, ST_F32, NULL, meta, n_meta, e);
        nn_table_free(&t);
        return rc;
    }
    return nn_save(&a->table, path, 0, ST_F32, NULL, meta, n_meta, e);
}

static int meta_int(const SafeTensors *st, const char *path, const char *key, int lo, int hi, int *out, Err *e) {
    const char *v = st_meta(st, key);
    long x = 0;
    if (st_meta_long(st, key, &x) || x < lo || x > hi)
        return err_set(e, "%s: __metadata__ \"%s\" is %s%s%s; expected an integer in [%d, %d]", path, key, v ? "\"" : "",
                       v ? v : "missing", v ? "\"" : "", lo, hi);
    *out = (int)x;
    return 0;
}

int domain_adapter_load(DomainAdapter *a, const char *path, ClipModel *m, Err *e) {
    memset(a, 0, sizeof *a);
    SafeTensors st;
    if (st_open(&st, path, e)) return -1;
    int rc = 0;
    const char *fmt = st_meta(&st, "format"), *kind = st_meta(&st, "kind"), *fp = st_meta(&st, "model_fingerprint");
    DomainAdapterShape sh = {0};
    if (!fmt || strcmp(fmt, "forget-domain") != 0)
        rc = err_set(e, "%s: not a domain-unlearning file (__metadata__ format is %s%s%s, expected \"forget-domain\": "
                        "files made by forget domain --out)", path, fmt ? "\"" : "", fmt ? fmt : "missing", fmt ? "\"" : "");
    if (rc == 0) {
        sh.kind = -1;
        for (int k = 0; k < 4; k++)
            if (kind && strcmp(kind, KIND_NAMES[k]) == 0) sh.kind = k;
        if (sh.kind < 0) rc = err_set(e, "%s: __metadata__ kind \"%s\" is none of prompts, clipfit, lp++, bbf", path, kind ? kind : "");
    }
    if (rc == 0)
        rc = meta_int(&st, path, "tokens", 0, 4096, &sh.tokens, e) || meta_int(&st, path, "layers", 0, 4096, &sh.layers, e) ||
             meta_int(&st, path, "instapg_layer", -1, 4095, &sh.pg_layer, e) ||
             meta_int(&st, path, "n_domains", 0, 4096, &sh.n_domains, e) ||
             meta_int(&st, path, "n_classes", 0, 1 << 20, &sh.n_classes, e) || meta_int(&st, path, "n_ctx", 0, 64, &sh.n_ctx, e);
    if (rc == 0) {
        char mine[32];
        const uint64_t f = clip_fingerprint(m);
        snprintf(mine, sizeof mine, "%016" PRIx64, f);
        if (!fp || strcmp(fp, mine) != 0)
            rc = err_set(e, "%s was made for another model (its model_fingerprint is %s; this model's is %s): apply it "
                            "to the model forget domain trained it on", path, fp ? fp : "missing", mine);
    }
    if (rc == 0 && sh.kind == DK_PROMPTS &&
        (sh.layers > m->cfg.v_layers || sh.layers < 1 || sh.tokens < 1 || sh.pg_layer >= sh.layers))
        rc = err_set(e, "%s: %d prompt tokens in %d layers (InstaPG at %d) do not fit this %d-layer image tower", path,
                     sh.tokens, sh.layers, sh.pg_layer, m->cfg.v_layers);
    if (rc == 0) {
        const char *me = st_meta(&st, "method");
        domain_adapter_alloc(a, m, &sh);
        snprintf(a->method, sizeof a->method, "%s", me ? me : KIND_NAMES[sh.kind]);
        if (sh.kind == DK_CLIPFIT) {
            NnTable t = clipfit_table(m);
            rc = nn_load(&t, &st, 0, NULL, NULL, 0, e);
            nn_table_free(&t);
        } else {
            rc = nn_load(&a->table, &st, 0, NULL, NULL, 0, e);
        }
        if (rc) err_prefix(e, "%s: ", path);
    }
    st_close(&st);
    if (rc) {
        domain_adapter_free(a);
        return -1;
    }
    if (sh.kind == DK_PROMPTS) m->image_prompts = &a->prompts;
    return 0;
}

int domain_adapter_has_classifier(const DomainAdapter *a) { return a->sh.kind == DK_LINEAR || a->sh.kind == DK_BBF; }

int domain_adapter_classifier(const DomainAdapter *a, const ClipModel *m, const Tokenizer *t, const char *tpl,
                              const char *const *labels, int n, float *W, Err *e) {
    const int E = m->cfg.embed_dim;
    if (a && a->sh.kind == DK_LINEAR) {
        if (n != a->sh.n_classes)
            return err_set(e, "the lp++ file is a probe over %d classes; %d labels were given", a->sh.n_classes, n);
        memcpy(W, a->lp_w, sizeof(float) * (size_t)n * E);
        return 0;
    }
    float *tf = xalloc_floats((size_t)n * E);
    int rc;
    if (a && a->sh.kind == DK_BBF) {
        const int M = a->sh.n_ctx, Wt = m->cfg.t_width;
        int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)n * m->cfg.context);
        float *rep = xalloc_floats((size_t)n * M * Wt);
        for (int c = 0; c < n; c++) memcpy(rep + (size_t)c * M * Wt, a->ctx, sizeof(float) * (size_t)M * Wt);
        rc = clip_context_ids(m, t, tpl, labels, n, M, ids, e);
        if (rc == 0) rc = clip_encode_text_context(m, ids, n, rep, M, tf, e);
        free(ids), free(rep);
    } else {
        rc = clip_encode_filled(m, t, tpl, labels, n, tf, e);
    }
    if (rc == 0) l2norm_forward(W, NULL, tf, n, E);
    free(tf);
    return rc;
}
