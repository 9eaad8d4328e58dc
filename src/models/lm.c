/* The Llama-style decoder: its config, its parameter table under Hugging Face's key names, loading
 * (shapes + metadata or config.json), the training forward/backward over packed sequences, and
 * decoding with and without the key/value cache. */
#include "models/lm.h"

#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm_mixed.h"
#include "core/sort.h"
#include "io/json_file.h"
#include "nn/kv_cache.h"

/* ------------------------------------------------------------ the config */

int lm_config_named(LmConfig *c, const char *name, Err *e) {
    memset(c, 0, sizeof *c);
    c->rope_base = 10000.0f, c->eps = 1e-5f, c->tied = 0;
    if (strcmp(name, "lm-tiny") == 0) {
        c->vocab = 64, c->width = 32, c->layers = 2, c->heads = 4, c->hidden = 64, c->context = 128;
    } else if (strcmp(name, "lm-s") == 0) {
        c->vocab = 2048, c->width = 256, c->layers = 4, c->heads = 4, c->hidden = 688, c->context = 320;
        c->tied = 1;
    } else {
        return err_set(e, "unknown LM config '%s' (known: lm-tiny, lm-s)", name);
    }
    c->kv_heads = c->heads;
    return 0;
}

int lm_config_check(const LmConfig *c, Err *e) {
    if (c->vocab < 2 || c->width < 2 || c->layers < 1 || c->heads < 1 || c->hidden < 1 || c->context < 2)
        return err_set(e, "LM config: vocab %d, width %d, layers %d, heads %d, hidden %d, context %d must all be positive",
                       c->vocab, c->width, c->layers, c->heads, c->hidden, c->context);
    if (c->width % c->heads || (c->width / c->heads) % 2)
        return err_set(e, "LM config: width %d must split into %d heads of an even size (rotary pairs)", c->width,
                       c->heads);
    if (c->kv_heads < 1 || c->heads % c->kv_heads)
        return err_set(e, "LM config: %d key/value heads do not divide %d query heads into groups", c->kv_heads,
                       c->heads);
    if (!(c->rope_base > 1.0f) || !(c->eps > 0.0f) || !(c->eps < 1.0f))
        return err_set(e, "LM config: rope_theta %g must be > 1 and rms_norm_eps %g in (0, 1)", c->rope_base, c->eps);
    return 0;
}

/* ------------------------------------------------------------ the table */

/* One entry under its name in each layout: layout L's key is prefix[L] + the Llama name (a NULL
 * prefix: absent in that layout). */
static NnParam *entry(NnTable *t, float **slot, int ndim, int64_t d0, int64_t d1, NnInit init,
                      const char *const *prefix, const char *fmt, int l) {
    NnParam *p = nn_add(t, slot, ndim, d0, d1, 0, 0);
    char name[NN_NAME];
    snprintf(name, sizeof name, fmt, l);
    for (int L = 0; L < NN_LAYOUTS; L++)
        if (prefix[L]) nn_key(p, L, "%s%s", prefix[L], name);
    p->init = init;
    p->decay = ndim >= 2;
    return p;
}

static NnParam *split(NnTable *t, float **slot, int64_t d0, int64_t d1, NnInit init, const char *const *prefix,
                      int parts, const char *const *fmt, int l) {
    NnParam *p = nn_add(t, slot, 2, d0, d1, 0, 0);
    for (int L = 0; L < NN_LAYOUTS; L++)
        for (int k = 0; prefix[L] && k < parts; k++) {
            char name[NN_NAME];
            snprintf(name, sizeof name, fmt[k], l);
            nn_key_part(p, L, k, "%s%s", prefix[L], name);
        }
    p->init = init, p->decay = 1;
    return p;
}

void lm_table_add(NnTable *t, LmModel *m, const char *const *prefix) {
    const LmConfig *c = &m->cfg;
    const int W = c->width, V = c->vocab, Hd = c->hidden;
    const NnInit w02 = {INIT_NORMAL, 0.02f}, out02 = {INIT_NORMAL, 0.02f / sqrtf(2.0f * c->layers)};
    const NnInit ones = {INIT_ONES, 0};
    static const char *const qkv[] = {"model.layers.%d.self_attn.q_proj.weight", "model.layers.%d.self_attn.k_proj.weight",
                                      "model.layers.%d.self_attn.v_proj.weight"};
    static const char *const gate_up[] = {"model.layers.%d.mlp.gate_proj.weight", "model.layers.%d.mlp.up_proj.weight"};
    NnParam *p = entry(t, &m->tok_emb, 2, V, W, w02, prefix, "model.embed_tokens.weight", 0);
    p->decay = 0;
    for (int l = 0; l < c->layers; l++) {
        BlockParams *b = &m->blocks[l];
        entry(t, &b->ln1_w, 1, W, 0, ones, prefix, "model.layers.%d.input_layernorm.weight", l);
        NnParam *q = split(t, &b->qkv_w, 3 * W, W, w02, prefix, 3, qkv, l);
        if (c->kv_heads < c->heads) /* grouped K/V: stored once a group, repeated in memory */
            q->rep[1] = q->rep[2] = (uint8_t)(c->heads / c->kv_heads), q->rep_rows = W / c->heads;
        entry(t, &b->out_w, 2, W, W, out02, prefix, "model.layers.%d.self_attn.o_proj.weight", l);
        entry(t, &b->ln2_w, 1, W, 0, ones, prefix, "model.layers.%d.post_attention_layernorm.weight", l);
        split(t, &b->fc_w, 2 * Hd, W, w02, prefix, 2, gate_up, l);
        entry(t, &b->proj_w, 2, W, Hd, out02, prefix, "model.layers.%d.mlp.down_proj.weight", l);
    }
    entry(t, &m->norm_w, 1, W, 0, ones, prefix, "model.norm.weight", 0);
    if (!c->tied) entry(t, &m->head, 2, V, W, w02, prefix, "lm_head.weight", 0);
}

static void block_config(LmModel *m) {
    const LmConfig *c = &m->cfg;
    m->bc = (BlockConfig){.width = c->width, .heads = c->heads, .hidden = c->hidden, .act = ACT_SWIGLU,
                          .norm = NORM_RMS, .eps = c->eps, .causal = 1, .rope = 1, .rope_base = c->rope_base};
}

void lm_prepare(LmModel *m, const LmConfig *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->blocks = xcalloc((size_t)cfg->layers, sizeof(BlockParams));
    block_config(m);
}

void lm_bind(LmModel *m) {
    if (m->cfg.tied) m->head = m->tok_emb;
}

void lm_alloc(LmModel *m, const LmConfig *cfg) {
    lm_prepare(m, cfg);
    static const char *const own[NN_LAYOUTS] = {"", NULL};
    lm_table_add(&m->table, m, own);
    m->params = nn_arena_layout(&m->table, 0, &m->n_params);
    memset(m->params, 0, sizeof(float) * (size_t)m->n_params);
    lm_bind(m);
}

void lm_tie_heads(LmModel *m, int sum) {
    const LmConfig *c = &m->cfg;
    if (c->kv_heads >= c->heads) return;
    const int W = c->width, hd = W / c->heads, rep = c->heads / c->kv_heads;
    const long block = (long)hd * W;
    for (int l = 0; l < c->layers; l++)
        for (int part = 1; part < 3; part++)
            for (int g = 0; g < c->kv_heads; g++) {
                float *first = m->blocks[l].qkv_w + (size_t)part * W * W + (size_t)g * rep * block;
                for (int r = 1; sum && r < rep; r++) add_inplace(first, first + r * block, block);
                for (int r = 1; r < rep; r++) memcpy(first + r * block, first, sizeof(float) * (size_t)block);
            }
}

void lm_init_random(LmModel *m, const LmConfig *cfg, uint64_t seed) {
    lm_alloc(m, cfg);
    Rng r;
    rng_seed(&r, seed);
    nn_init(&m->table, &r);
    lm_tie_heads(m, 0);
}

void lm_alloc_like(LmModel *g, const LmModel *m) { lm_alloc(g, &m->cfg); }

void lm_free(LmModel *m) {
    free(m->params);
    free(m->blocks);
    nn_table_free(&m->table);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------ reading the config */

static int dim_of(SafeTensors *st, const char *key, int d, int64_t *v) {
    const StTensor *t = st_find(st, key);
    if (!t || t->ndim <= d) return -1;
    *v = t->shape[d];
    return 0;
}

/* A number named by any of the keys: our metadata, HF-style metadata, then config.json. */
static int number(SafeTensors *st, const cJSON *cfg, const char *ours, const char *hf, double *out) {
    const char *keys[] = {ours, hf};
    for (int i = 0; i < 2; i++) {
        const char *s = st_meta(st, keys[i]);
        if (s) {
            char *end;
            *out = strtod(s, &end);
            return end != s && *end == 0 ? 1 : -1;
        }
    }
    const cJSON *j = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, hf) : NULL;
    if (j && cJSON_IsNumber(j)) {
        *out = j->valuedouble;
        return 1;
    }
    if (j && cJSON_IsBool(j)) {
        *out = cJSON_IsTrue(j);
        return 1;
    }
    return j ? -1 : 0;
}

int lm_config_read(LmConfig *c, SafeTensors *st, const char *prefix, Err *e) {
    memset(c, 0, sizeof *c);
    int64_t v, w, h, k;
    char key[NN_NAME];
#define KEY(fmt, ...) (snprintf(key, sizeof key, "%s" fmt, prefix, __VA_ARGS__), key)
    if (dim_of(st, KEY("%s", "model.embed_tokens.weight"), 1, &w) || dim_of(st, key, 0, &v))
        return err_set(e, "%s: no 2-D %s: not a Llama-style checkpoint", st->path, key);
    c->vocab = (int)v, c->width = (int)w;
    while (c->layers < 4096 && st_find(st, KEY("model.layers.%d.input_layernorm.weight", c->layers))) c->layers++;
    if (c->layers == 0) return err_set(e, "%s: no %s", st->path, KEY("%s", "model.layers.0.input_layernorm.weight"));
    if (dim_of(st, KEY("%s", "model.layers.0.mlp.gate_proj.weight"), 0, &h))
        return err_set(e, "%s: no %s", st->path, key);
    if (dim_of(st, KEY("%s", "model.layers.0.self_attn.k_proj.weight"), 0, &k))
        return err_set(e, "%s: no %s", st->path, key);
    c->hidden = (int)h;
    c->tied = st_find(st, KEY("%s", "lm_head.weight")) == NULL;
#undef KEY
    /* config.json beside the file, as a Hugging Face checkpoint directory holds it */
    char *dup = strdup(st->path), path[4096];
    snprintf(path, sizeof path, "%s/config.json", dirname(dup));
    free(dup);
    cJSON *cfg = json_read_file(path);
    double heads = 0, ctx = 2048, theta = 10000, eps = 1e-6, kvh = 0;
    int rc = 0;
    struct {
        const char *ours, *hf;
        double *v;
    } f[] = {{"lm.heads", "num_attention_heads", &heads},     {"lm.kv_heads", "num_key_value_heads", &kvh},
             {"lm.context", "max_position_embeddings", &ctx}, {"lm.rope_theta", "rope_theta", &theta},
             {"lm.eps", "rms_norm_eps", &eps}};
    for (size_t i = 0; i < sizeof f / sizeof *f && rc == 0; i++)
        if (number(st, cfg, f[i].ours, f[i].hf, f[i].v) < 0)
            rc = err_set(e, "%s: %s / %s is not a number", st->path, f[i].ours, f[i].hf);
    cJSON_Delete(cfg);
    if (rc) return rc;
    if (heads < 1 || heads > 4096 || heads != floor(heads))
        return err_set(e, "%s: the number of heads is not written down (metadata lm.heads or num_attention_heads, "
                          "or config.json beside the file)", st->path);
    c->heads = (int)heads;
    const int hd = c->width / c->heads;
    c->kv_heads = kvh > 0 ? (int)kvh : (hd > 0 ? (int)(k / hd) : 0);
    if (hd > 0 && (int64_t)c->kv_heads * hd != k)
        return err_set(e, "%s: k_proj has %lld rows, not %d key/value heads of %d", st->path, (long long)k,
                       c->kv_heads, hd);
    c->context = ctx >= 2 && ctx <= 1 << 20 ? (int)ctx : 0;
    c->rope_base = (float)theta, c->eps = (float)eps;
    Err ce = {0};
    if (lm_config_check(c, &ce)) return err_set(e, "%s: %s", st->path, ce.msg);
    return 0;
}

int lm_load(LmModel *m, const char *path, Err *e) {
    memset(m, 0, sizeof *m);
    SafeTensors st;
    if (st_open(&st, path, e)) return -1;
    LmConfig c;
    int rc = lm_config_read(&c, &st, "", e);
    if (rc == 0) {
        lm_alloc(m, &c);
        rc = nn_load(&m->table, &st, 0, NULL, m->src_dtypes, sizeof m->src_dtypes, e);
        if (rc == 0) rc = nn_check_finite(&m->table, 0, e);
        if (rc) lm_free(m);
    }
    st_close(&st);
    return rc;
}

int lm_save(const LmModel *m, const char *path, StDtype dtype, const char *const *meta_kv, int n_meta, Err *e) {
    const LmConfig *c = &m->cfg;
    char v[5][32];
    snprintf(v[0], 32, "%d", c->heads), snprintf(v[1], 32, "%d", c->kv_heads), snprintf(v[2], 32, "%d", c->context);
    snprintf(v[3], 32, "%.9g", c->rope_base), snprintf(v[4], 32, "%.9g", c->eps);
    const char *own[] = {"format", "forget-lm", "lm.heads", v[0], "lm.kv_heads", v[1], "lm.context", v[2],
                         "lm.rope_theta", v[3], "lm.eps", v[4]};
    return nn_save_meta(&m->table, path, 0, dtype, own, (int)(sizeof own / sizeof *own / 2), meta_kv, n_meta, e);
}

/* ------------------------------------------------------------ training */

void lm_acts_free(LmActs *a) {
    for (int l = 0; a->layers && l < a->n_layers; l++) block_acts_free(&a->layers[l]);
    free(a->layers);
    free(a->start), free(a->len), free(a->att_off);
    free(a->x), free(a->xf), free(a->rstd), free(a->dx);
    free(a->tgt_row), free(a->tgt_id), free(a->xg), free(a->logits), free(a->probs);
    memset(a, 0, sizeof *a);
}

/* Grows the buffers to T rows, nseq sequences and the attention size of len[] (never shrinks). */
static void acts_reserve(const LmModel *m, LmActs *a, int T, const int *len, int nseq) {
    const int W = m->cfg.width, L = m->cfg.layers;
    if (nseq > a->cap_seq) {
        a->start = xrealloc(a->start, sizeof(int) * (size_t)nseq);
        a->len = xrealloc(a->len, sizeof(int) * (size_t)nseq);
        a->att_off = xrealloc(a->att_off, sizeof(long) * (size_t)nseq);
        a->cap_seq = nseq;
    }
    const long att = packing_att_offsets(a->att_off, len, nseq, m->cfg.heads);
    if (T > a->cap_T || att > a->cap_att || a->n_layers != L) {
        for (int l = 0; a->layers && l < a->n_layers; l++) block_acts_free(&a->layers[l]);
        const int cT = T > a->cap_T ? T : a->cap_T;
        const long cA = att > a->cap_att ? att : a->cap_att;
        a->layers = xrealloc(a->layers, sizeof(BlockActs) * (size_t)L);
        for (int l = 0; l < L; l++) block_acts_alloc(&a->layers[l], &m->bc, cT, cA, NULL, 1);
        if (cT > a->cap_T) {
            free(a->x), free(a->xf), free(a->rstd), free(a->dx);
            a->x = xalloc_floats((size_t)cT * W);
            a->xf = xalloc_floats((size_t)cT * W);
            a->dx = xalloc_floats((size_t)cT * W);
            a->rstd = xalloc_floats((size_t)cT);
            a->tgt_row = xrealloc(a->tgt_row, sizeof(int32_t) * (size_t)cT);
            a->tgt_id = xrealloc(a->tgt_id, sizeof(int32_t) * (size_t)cT);
        }
        a->cap_T = cT, a->cap_att = cA, a->n_layers = L;
    }
    a->T = T, a->nseq = nseq;
    for (int s = 0, at = 0; s < nseq; s++) {
        a->start[s] = at, a->len[s] = len[s];
        at += len[s];
    }
    a->n_tgt = 0;
}

void lm_embed(const LmModel *m, const int32_t *ids, int n, float *out) {
    const int W = m->cfg.width;
    for (int t = 0; t < n; t++)
        memcpy(out + (size_t)t * W, m->tok_emb + (size_t)ids[t] * W, sizeof(float) * (size_t)W);
}

void lm_batch_begin(const LmModel *m, LmActs *a, const int32_t *ids, int T, const int *len, int nseq) {
    acts_reserve(m, a, T, len, nseq);
    const int W = m->cfg.width;
    for (int t = 0; t < T; t++)
        if (ids && ids[t] >= 0) memcpy(a->x + (size_t)t * W, m->tok_emb + (size_t)ids[t] * W, sizeof(float) * W);
}

static Packing packing(const LmActs *a) { return (Packing){a->nseq, a->start, a->len, a->att_off}; }

void lm_forward(const LmModel *m, LmActs *a) {
    const Packing pk = packing(a);
    for (int l = 0; l < m->cfg.layers; l++) block_forward(&m->bc, &m->blocks[l], &a->layers[l], a->x, a->T, &pk, NULL);
    rmsnorm_forward(a->xf, a->rstd, a->x, m->norm_w, a->T, m->cfg.width, m->cfg.eps);
}

/* The head's logits on the rows with a target (they are gathered into xg first). */
static void head_logits(const LmModel *m, LmActs *a, const int32_t *targets) {
    const int W = m->cfg.width, V = m->cfg.vocab;
    a->n_tgt = 0;
    for (int t = 0; t < a->T; t++)
        if (targets[t] >= 0) a->tgt_row[a->n_tgt] = t, a->tgt_id[a->n_tgt++] = targets[t];
    if (a->n_tgt > a->cap_tgt) {
        free(a->xg), free(a->logits), free(a->probs);
        a->cap_tgt = a->n_tgt > a->cap_tgt * 2 ? a->n_tgt : a->cap_tgt * 2;
        a->xg = xalloc_floats((size_t)a->cap_tgt * W);
        a->logits = xalloc_floats((size_t)a->cap_tgt * V);
        a->probs = xalloc_floats((size_t)a->cap_tgt * V);
    }
    for (int i = 0; i < a->n_tgt; i++)
        memcpy(a->xg + (size_t)i * W, a->xf + (size_t)a->tgt_row[i] * W, sizeof(float) * (size_t)W);
    if (a->n_tgt) gemm_linear(m->bc.gemm, a->logits, a->xg, m->head, NULL, a->n_tgt, W, V);
}

float lm_loss(const LmModel *m, LmActs *a, const int32_t *targets) {
    head_logits(m, a, targets);
    if (!a->n_tgt) return 0.0f;
    return cross_entropy_forward(a->probs, a->logits, a->tgt_id, a->n_tgt, m->cfg.vocab);
}

void lm_target_logprobs(const LmModel *m, LmActs *a, const int32_t *targets, float *lp, double *sum) {
    const int V = m->cfg.vocab;
    head_logits(m, a, targets);
    memset(lp, 0, sizeof(float) * (size_t)a->T);
    double total = 0;
    for (int i = 0; i < a->n_tgt; i++) {
        const float *x = a->logits + (size_t)i * V;
        float mx = -INFINITY;
        for (int k = 0; k < V; k++) mx = fmaxf(mx, x[k]);
        double z = 0;
        for (int k = 0; k < V; k++) z += exp((double)(x[k] - mx));
        const double v = x[a->tgt_id[i]] - mx - log(z);
        lp[a->tgt_row[i]] = (float)v;
        total += v;
    }
    if (sum) *sum = total;
}

void lm_backward(const LmModel *m, LmModel *g, LmActs *a, const int32_t *ids, float dloss, float *d_rows) {
    const int W = m->cfg.width, V = m->cfg.vocab, T = a->T;
    memset(a->dx, 0, sizeof(float) * (size_t)T * W);
    if (a->n_tgt) {
        float *dlog = xcalloc((size_t)a->n_tgt * V, sizeof(float)), *dxg = xcalloc((size_t)a->n_tgt * W, sizeof(float));
        if (a->dlogits)
            for (long i = 0; i < (long)a->n_tgt * V; i++) dlog[i] = dloss * a->dlogits[i];
        else
            cross_entropy_backward(dlog, a->probs, a->tgt_id, a->n_tgt, V, dloss);
        gemm_linear_backward(m->bc.gemm, dxg, g ? g->head : NULL, NULL, dlog, a->xg, m->head, a->n_tgt, W, V);
        float *dxf = xcalloc((size_t)T * W, sizeof(float));
        for (int i = 0; i < a->n_tgt; i++)
            memcpy(dxf + (size_t)a->tgt_row[i] * W, dxg + (size_t)i * W, sizeof(float) * (size_t)W);
        rmsnorm_backward(a->dx, g ? g->norm_w : NULL, dxf, a->x, m->norm_w, a->rstd, T, W);
        free(dlog), free(dxg), free(dxf);
    }
    const Packing pk = packing(a);
    for (int l = m->cfg.layers - 1; l >= 0; l--)
        block_backward(&m->bc, &m->blocks[l], g ? &g->blocks[l] : NULL, &a->layers[l], a->dx, T, &pk, NULL, NULL);
    if (d_rows) memcpy(d_rows, a->dx, sizeof(float) * (size_t)T * W);
    if (g && ids)
        for (int t = 0; t < T; t++)
            if (ids[t] >= 0) add_inplace(g->tok_emb + (size_t)ids[t] * W, a->dx + (size_t)t * W, W);
    if (g) lm_tie_heads(g, 1); /* a group's K/V heads are one parameter: the sum of their gradients */
}

/* ------------------------------------------------------------ decoding */

int lm_sample(const float *logits, int vocab, const LmSampling *s, Rng *rng) {
    int best = 0;
    for (int k = 1; k < vocab; k++)
        if (logits[k] > logits[best]) best = k;
    if (!(s->temperature > 0.0f)) return best;
    float *p = xalloc_floats((size_t)vocab);
    int *order = xmalloc(sizeof(int) * (size_t)vocab);
    double z = 0;
    for (int k = 0; k < vocab; k++) z += p[k] = expf((logits[k] - logits[best]) / s->temperature);
    for (int k = 0; k < vocab; k++) p[k] = (float)(p[k] / z);
    argsort_f32(p, vocab, order); /* ascending: the nucleus is read from the end */
    const float top = s->top_p > 0.0f && s->top_p < 1.0f ? s->top_p : 1.0f;
    double mass = 0;
    int n = 0;
    while (n < vocab && (n == 0 || mass < top)) mass += p[order[vocab - 1 - n++]];
    double u = rng_uniform(rng) * mass, acc = 0;
    int pick = order[vocab - 1];
    for (int i = 0; i < n; i++) {
        acc += p[order[vocab - 1 - i]];
        pick = order[vocab - 1 - i];
        if (u < acc) break;
    }
    free(p), free(order);
    return pick;
}

/* The last row's logits: final norm and the head on row `row` of x. */
static void last_logits(const LmModel *m, const float *row, float *logits) {
    const int W = m->cfg.width;
    float *xf = xalloc_floats((size_t)W), rs;
    rmsnorm_forward(xf, &rs, row, m->norm_w, 1, W, m->cfg.eps);
    gemm_linear(m->bc.gemm, logits, xf, m->head, NULL, 1, W, m->cfg.vocab);
    free(xf);
}

/* Inference over a whole prefix of n rows (x updated in place): the no-cache baseline. */
static void forward_prefix(const LmModel *m, float *x, int n) {
    int start = 0;
    long off = 0;
    const long att = packing_att_offsets(&off, &n, 1, m->cfg.heads);
    const Packing pk = {1, &start, &n, &off};
    BlockActs a;
    block_acts_alloc(&a, &m->bc, n, att, NULL, 0);
    for (int l = 0; l < m->cfg.layers; l++) block_forward(&m->bc, &m->blocks[l], &a, x, n, &pk, NULL);
    block_acts_free(&a);
}

int lm_generate_rows(const LmModel *m, const float *prompt, int n, const LmSampling *s, int32_t *out, Err *e) {
    const int W = m->cfg.width, V = m->cfg.vocab, max = s->max_tokens > 0 ? s->max_tokens : 0;
    if (n < 1) return err_set(e, "an empty prompt");
    if (n + max > m->cfg.context)
        return err_set(e, "the prompt's %d tokens and %d new ones pass the model's context of %d", n, max,
                       m->cfg.context);
    Rng rng;
    rng_seed(&rng, s->seed);
    float *logits = xalloc_floats((size_t)V);
    float *rows = xalloc_floats((size_t)(n + max) * W), *work = NULL;
    memcpy(rows, prompt, sizeof(float) * (size_t)n * W);
    KvCache kc = {0};
    int produced = 0, rc = 0, fed = n;
    if (!s->no_cache) {
        kv_cache_init(&kc, m->cfg.layers, W, 1, n + max);
        rc = kv_cache_forward(&kc, &m->bc, m->blocks, rows, &fed, e);
    } else {
        work = xalloc_floats((size_t)(n + max) * W);
    }
    int len = n;
    while (rc == 0 && produced < max) {
        const float *last;
        if (s->no_cache) {
            memcpy(work, rows, sizeof(float) * (size_t)len * W);
            forward_prefix(m, work, len);
            last = work + (size_t)(len - 1) * W;
        } else {
            last = rows + (size_t)(len - 1) * W;
        }
        last_logits(m, last, logits);
        const int id = lm_sample(logits, V, s, &rng);
        out[produced++] = id;
        if (id == s->eos || produced == max) break;
        float *next = rows + (size_t)len * W;
        memcpy(next, m->tok_emb + (size_t)id * W, sizeof(float) * (size_t)W);
        len++;
        if (!s->no_cache) {
            fed = 1;
            rc = kv_cache_forward(&kc, &m->bc, m->blocks, next, &fed, e);
        }
    }
    if (!s->no_cache) kv_cache_free(&kc);
    free(logits), free(rows), free(work);
    return rc ? -1 : produced;
}

int lm_generate(const LmModel *m, const int32_t *ids, int n, const LmSampling *s, int32_t *out, Err *e) {
    for (int t = 0; t < n; t++)
        if (ids[t] < 0 || ids[t] >= m->cfg.vocab)
            return err_set(e, "token %d of the prompt is id %d, outside the vocabulary of %d", t, ids[t], m->cfg.vocab);
    float *rows = xalloc_floats((size_t)(n > 0 ? n : 1) * m->cfg.width);
    lm_embed(m, ids, n, rows);
    const int rc = lm_generate_rows(m, rows, n, s, out, e);
    free(rows);
    return rc;
}

double lm_flops(const LmConfig *c, int n, int head_rows) {
    LmModel tmp = {.cfg = *c};
    block_config(&tmp);
    return c->layers * block_flops(&tmp.bc, n, (double)n * (n + 1) / 2.0, 0) + 2.0 * head_rows * c->width * c->vocab;
}
