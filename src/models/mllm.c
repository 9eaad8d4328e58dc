/* The LLaVA-shaped MLLM: its one table (tower, projector, LM) in the two LLaVA key layouts, loading
 * with the config read from the keys and metadata, the projector's forward/backward, the image rows
 * spliced at the placeholder, and decoding. */
#include "models/mllm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/clip_params.h"

static const char *const TOWER_PREFIX[2] = {"model.vision_tower.vision_tower.", "vision_tower."};
static const char *const LM_PREFIX[2] = {"", "language_model."};

int mllm_image_tokens(const MllmConfig *c) {
    const int g = c->tower.patch > 0 ? c->tower.image_res / c->tower.patch : 0;
    return g * g;
}

int mllm_config_check(const MllmConfig *c, Err *e) {
    if (lm_config_check(&c->lm, e)) return -1;
    if (c->tower.v_width < 1 || c->tower.v_layers < 1 || c->tower.patch < 1 || mllm_image_tokens(c) < 1)
        return err_set(e, "MLLM config: a vision tower of width %d, %d layers, patch %d", c->tower.v_width,
                       c->tower.v_layers, c->tower.patch);
    if (c->select_layer < 1 || c->select_layer > c->tower.v_layers)
        return err_set(e, "MLLM config: select layer %d outside the tower's 1..%d", c->select_layer, c->tower.v_layers);
    if (c->image_token >= c->lm.vocab)
        return err_set(e, "MLLM config: the <image> id %d is outside the vocabulary of %d", c->image_token, c->lm.vocab);
    if (mllm_image_tokens(c) + 2 > c->lm.context)
        return err_set(e, "MLLM config: %d image tokens do not fit the LM's context of %d", mllm_image_tokens(c),
                       c->lm.context);
    return 0;
}

/* ------------------------------------------------------------ the table */

/* The tower's CLIP entries, renamed: each layout's key is its prefix + CLIP's Hugging Face key;
 * the joint-space projection and the logit scale keep arena room but no key. */
static void add_tower(Mllm *m) {
    NnTable clip = {0};
    clip_param_table_build(&clip, &m->tower);
    for (int i = 0; i < clip.n; i++) {
        const NnParam *src = &clip.p[i];
        NnParam *p = nn_add(&m->table, src->slot, src->ndim, src->shape[0], src->shape[1], src->shape[2], src->shape[3]);
        p->init = src->init, p->decay = src->decay, p->frozen = 1;
        const char *hf = src->key[LAYOUT_HF][0];
        if (strncmp(hf, "vision_model.", 13) != 0) continue; /* visual_projection, logit_scale */
        for (int L = 0; L < 2; L++)
            for (int k = 0; k < src->parts[LAYOUT_HF]; k++)
                nn_key_part(p, L, k, "%s%s", TOWER_PREFIX[L], src->key[LAYOUT_HF][k]);
    }
    nn_table_free(&clip);
}

static void add_projector(Mllm *m) {
    const int Wv = m->cfg.tower.v_width, Wl = m->cfg.lm.width;
    struct {
        float **slot;
        int64_t d0, d1;
        const char *llava, *hf;
        float std;
    } e[] = {{&m->proj1_w, Wl, Wv, "model.mm_projector.0.weight", "multi_modal_projector.linear_1.weight",
              1.0f / sqrtf(3.0f * Wv)},
             {&m->proj1_b, Wl, 0, "model.mm_projector.0.bias", "multi_modal_projector.linear_1.bias", 0},
             {&m->proj2_w, Wl, Wl, "model.mm_projector.2.weight", "multi_modal_projector.linear_2.weight",
              1.0f / sqrtf(3.0f * Wl)},
             {&m->proj2_b, Wl, 0, "model.mm_projector.2.bias", "multi_modal_projector.linear_2.bias", 0}};
    for (size_t i = 0; i < sizeof e / sizeof *e; i++) {
        NnParam *p = nn_add(&m->table, e[i].slot, e[i].d1 ? 2 : 1, e[i].d0, e[i].d1, 0, 0);
        nn_key(p, MLLM_LLAVA, "%s", e[i].llava);
        nn_key(p, MLLM_LLAVA_HF, "%s", e[i].hf);
        p->init = e[i].d1 ? (NnInit){INIT_NORMAL, e[i].std} : (NnInit){INIT_ZEROS, 0};
        p->decay = e[i].d1 != 0;
    }
}

void mllm_alloc(Mllm *m, const MllmConfig *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->cfg.tower.has_vision = 1, m->cfg.tower.has_text = 0;
    if (m->cfg.tower.embed_dim <= 0) m->cfg.tower.embed_dim = m->cfg.tower.v_width;
    m->tower.cfg = m->cfg.tower;
    m->tower.layout = LAYOUT_HF;
    m->tower.v_blocks = xcalloc((size_t)m->cfg.tower.v_layers, sizeof(BlockParams));
    lm_prepare(&m->lm, &m->cfg.lm);
    add_tower(m);
    add_projector(m);
    lm_table_add(&m->table, &m->lm, LM_PREFIX);
    m->params = nn_arena_layout(&m->table, 0, &m->n_params);
    memset(m->params, 0, sizeof(float) * (size_t)m->n_params);
    lm_bind(&m->lm);
    mllm_set_trainable(m, 0, 1, 1);
}

void mllm_init_random(Mllm *m, const MllmConfig *cfg, uint64_t seed) {
    mllm_alloc(m, cfg);
    Rng r;
    rng_seed(&r, seed);
    nn_init(&m->table, &r);
    lm_tie_heads(&m->lm, 0);
}

void mllm_alloc_like(Mllm *g, const Mllm *m) {
    mllm_alloc(g, &m->cfg);
    for (int i = 0; i < m->table.n; i++) g->table.p[i].frozen = m->table.p[i].frozen;
}

void mllm_free(Mllm *m) {
    free(m->params);
    free(m->tower.v_blocks);
    free(m->lm.blocks);
    nn_table_free(&m->table);
    memset(m, 0, sizeof *m);
}

void mllm_set_trainable(Mllm *m, int tower, int projector, int lm) {
    (void)tower;
    for (int i = 0; i < m->table.n; i++) {
        NnParam *p = &m->table.p[i];
        const float *at = *p->slot;
        const int is_proj = at >= m->proj1_w && at <= m->proj2_b;
        const int is_tower = *p->slot < m->proj1_w;
        p->frozen = is_tower ? 1 : is_proj ? !projector : !lm; /* no backward through the tower yet */
        if (!p->parts[0] && !p->parts[1]) p->frozen = 1; /* keyless arena room */
    }
}

int mllm_set_tower(Mllm *m, const ClipModel *clip, Err *e) {
    const ClipConfig *a = &clip->cfg, *b = &m->cfg.tower;
    if (!a->has_vision || a->v_width != b->v_width || a->v_layers != b->v_layers || a->patch != b->patch ||
        a->image_res != b->image_res)
        return err_set(e, "the CLIP model's vision tower (width %d, %d layers, patch %d, %d px) is not the MLLM's "
                          "(width %d, %d layers, patch %d, %d px)", a->v_width, a->v_layers, a->patch, a->image_res,
                       b->v_width, b->v_layers, b->patch, b->image_res);
    ClipModel src = *clip; /* a view whose table walks the source's pointers */
    NnTable ts = {0};
    clip_param_table_build(&ts, &src);
    for (int i = 0; i < ts.n; i++) { /* the vision tower's entries only, matched by their Hugging Face names */
        const char *k = ts.p[i].key[LAYOUT_HF][0];
        if (strncmp(k, "vision_model.", 13) != 0 || !*ts.p[i].slot) continue;
        for (int j = 0; j < m->table.n; j++) {
            const NnParam *p = &m->table.p[j];
            const size_t pre = strlen(TOWER_PREFIX[1]);
            if (p->parts[1] && strncmp(p->key[1][0], TOWER_PREFIX[1], pre) == 0 && strcmp(p->key[1][0] + pre, k) == 0 &&
                p->count == ts.p[i].count) {
                memcpy(*p->slot, *ts.p[i].slot, sizeof(float) * (size_t)p->count);
                break;
            }
        }
    }
    nn_table_free(&ts);
    m->cfg.tower.act = m->tower.cfg.act = a->act;
    return 0;
}

/* ------------------------------------------------------------ loading */

static int meta_int(SafeTensors *st, const char *key, int def, int *out, Err *e) {
    const char *s = st_meta(st, key);
    *out = def;
    if (!s) return 0;
    if (st_meta_int(st, key, out)) return err_set(e, "%s: metadata %s = '%s' is not an integer", st->path, key, s);
    return 0;
}

static int64_t dim(SafeTensors *st, const char *key, int d) {
    const StTensor *t = st_find(st, key);
    return t && t->ndim > d ? t->shape[d] : -1;
}

/* The tower's shape from its keys (prefix pre) and metadata. */
static int tower_config(SafeTensors *st, const char *pre, ClipConfig *c, Err *e) {
    memset(c, 0, sizeof *c);
    char k[NN_NAME];
    snprintf(k, sizeof k, "%svision_model.embeddings.patch_embedding.weight", pre);
    const StTensor *pe = st_find(st, k);
    if (!pe || pe->ndim != 4)
        return err_set(e, "%s: no 4-D %s: the file holds no vision tower (LLaVA releases may keep it in a separate "
                          "CLIP checkpoint)", st->path, k);
    c->has_vision = 1, c->v_width = (int)pe->shape[0], c->patch = (int)pe->shape[3];
    snprintf(k, sizeof k, "%svision_model.embeddings.position_embedding.weight", pre);
    const int64_t npos = dim(st, k, 0);
    const int grid = npos > 1 ? (int)lround(sqrt((double)(npos - 1))) : 0;
    if (grid < 1 || (int64_t)grid * grid + 1 != npos)
        return err_set(e, "%s: %s has %lld rows, not grid^2 + 1", st->path, k, (long long)npos);
    c->image_res = grid * c->patch;
    for (;;) {
        snprintf(k, sizeof k, "%svision_model.encoder.layers.%d.self_attn.q_proj.weight", pre, c->v_layers);
        if (!st_find(st, k)) break;
        c->v_layers++;
    }
    if (!c->v_layers) return err_set(e, "%s: the vision tower has no layers (%s)", st->path, k);
    if (meta_int(st, "mllm.v_heads", c->v_width >= 64 ? c->v_width / 64 : 1, &c->v_heads, e)) return -1;
    if (c->v_heads < 1 || c->v_width % c->v_heads)
        return err_set(e, "%s: %d vision heads do not divide the width %d", st->path, c->v_heads, c->v_width);
    const char *act = st_meta(st, "mllm.v_act");
    c->act = act && strcmp(act, "gelu") == 0 ? ACT_GELU : ACT_QUICKGELU; /* OpenAI's ViTs: QuickGELU */
    c->embed_dim = c->v_width;
    return 0;
}

int mllm_load(Mllm *m, const char *path, Err *e) {
    memset(m, 0, sizeof *m);
    SafeTensors st;
    if (st_open(&st, path, e)) return -1;
    int layout = -1, rc = 0;
    if (st_find(&st, "model.mm_projector.0.weight")) layout = MLLM_LLAVA;
    else if (st_find(&st, "multi_modal_projector.linear_1.weight")) layout = MLLM_LLAVA_HF;
    MllmConfig c = {0};
    if (layout < 0)
        rc = err_set(e, "%s: neither model.mm_projector.0.weight (LLaVA) nor multi_modal_projector.linear_1.weight "
                        "(llava-hf): not a LLaVA-shaped checkpoint", path);
    if (!rc) rc = tower_config(&st, TOWER_PREFIX[layout], &c.tower, e);
    if (!rc) rc = lm_config_read(&c.lm, &st, LM_PREFIX[layout], e);
    if (!rc) rc = meta_int(&st, "mllm.select_layer", c.tower.v_layers - 1 > 0 ? c.tower.v_layers - 1 : 1,
                           &c.select_layer, e);
    if (!rc) rc = meta_int(&st, "mllm.image_token", -1, &c.image_token, e);
    if (!rc) {
        Err ce = {0};
        if (mllm_config_check(&c, &ce)) rc = err_set(e, "%s: %s", path, ce.msg);
    }
    if (!rc) {
        const int64_t pw = dim(&st, layout == MLLM_LLAVA ? "model.mm_projector.0.weight"
                                                         : "multi_modal_projector.linear_1.weight", 1);
        if (pw != c.tower.v_width)
            rc = err_set(e, "%s: the projector reads %lld features, the tower gives %d", path, (long long)pw,
                         c.tower.v_width);
    }
    if (!rc) {
        mllm_alloc(m, &c);
        m->layout = layout;
        rc = nn_load(&m->table, &st, layout, NULL, m->src_dtypes, sizeof m->src_dtypes, e);
        if (!rc) rc = nn_check_finite(&m->table, layout, e);
        if (rc) mllm_free(m);
    }
    st_close(&st);
    return rc;
}

int mllm_save(const Mllm *m, const char *path, int layout, StDtype dtype, const char *const *meta_kv, int n_meta,
              Err *e) {
    const LmConfig *c = &m->cfg.lm;
    char v[9][32];
    snprintf(v[0], 32, "%d", c->heads), snprintf(v[1], 32, "%d", c->kv_heads), snprintf(v[2], 32, "%d", c->context);
    snprintf(v[3], 32, "%.9g", c->rope_base), snprintf(v[4], 32, "%.9g", c->eps);
    snprintf(v[5], 32, "%d", m->cfg.tower.v_heads), snprintf(v[6], 32, "%d", m->cfg.select_layer);
    snprintf(v[7], 32, "%d", m->cfg.image_token);
    const char *own[] = {"format", "forget-mllm", "lm.heads", v[0], "lm.kv_heads", v[1], "lm.context", v[2],
                         "lm.rope_theta", v[3], "lm.eps", v[4], "mllm.v_heads", v[5], "mllm.select_layer", v[6],
                         "mllm.image_token", v[7], "mllm.v_act", m->cfg.tower.act == ACT_GELU ? "gelu" : "quickgelu"};
    return nn_save_meta(&m->table, path, layout, dtype, own, (int)(sizeof own / sizeof *own / 2), meta_kv, n_meta, e);
}

int mllm_encode_images(const Mllm *m, const float *pixels, int B, float *out, Err *e) {
    const int N = mllm_image_tokens(&m->cfg), Wv = m->cfg.tower.v_width;
    float *all = xalloc_floats((size_t)B * (N + 1) * Wv);
    const int rc = clip_encode_image_tokens(&m->tower, pixels, B, m->cfg.select_layer, all, e);
    for (int b = 0; rc == 0 && b < B; b++) /* drop the class token, as LLaVA's "patch" features do */
        memcpy(out + (size_t)b * N * Wv, all + ((size_t)b * (N + 1) + 1) * Wv, sizeof(float) * (size_t)N * Wv);
    free(all);
    return rc;
}

/* ------------------------------------------------------------ training */

void mllm_acts_free(MllmActs *a) {
    lm_acts_free(&a->lm);
    free(a->img_row), free(a->vis), free(a->h1), free(a->h1g), free(a->ids), free(a->targets);
    memset(a, 0, sizeof *a);
}

/* The projector on a->rows feature rows, written into the LM's input rows. */
static void projector_forward(const Mllm *m, MllmActs *a) {
    const int Wv = m->cfg.tower.v_width, Wl = m->cfg.lm.width, R = a->rows;
    if (!R) return;
    float *out = xalloc_floats((size_t)R * Wl);
    linear_forward(a->h1, a->vis, m->proj1_w, m->proj1_b, R, Wv, Wl);
    gelu_forward(a->h1g, a->h1, (long)R * Wl);
    linear_forward(out, a->h1g, m->proj2_w, m->proj2_b, R, Wl, Wl);
    for (int r = 0; r < R; r++)
        memcpy(a->lm.x + (size_t)a->img_row[r] * Wl, out + (size_t)r * Wl, sizeof(float) * (size_t)Wl);
    free(out);
}

static void reserve(MllmActs *a, int T, int rows, int Wv, int Wl) {
    if (T > a->cap_T) {
        a->ids = xrealloc(a->ids, sizeof(int32_t) * (size_t)T);
        a->targets = xrealloc(a->targets, sizeof(int32_t) * (size_t)T);
        a->cap_T = T;
    }
    if (rows > a->cap_rows) {
        free(a->vis), free(a->h1), free(a->h1g);
        a->img_row = xrealloc(a->img_row, sizeof(int32_t) * (size_t)rows);
        a->vis = xalloc_floats((size_t)rows * Wv);
        a->h1 = xalloc_floats((size_t)rows * Wl);
        a->h1g = xalloc_floats((size_t)rows * Wl);
        a->cap_rows = rows;
    }
}

int mllm_forward(const Mllm *m, MllmActs *a, const int32_t *const *ids, const int32_t *const *tgt, const int *n,
                 const float *const *feats, int nseq, float *loss, Err *e) {
    const int N = mllm_image_tokens(&m->cfg), Wv = m->cfg.tower.v_width, Wl = m->cfg.lm.width;
    int *len = xmalloc(sizeof(int) * (size_t)(nseq > 0 ? nseq : 1));
    int T = 0, rows = 0, rc = 0;
    for (int s = 0; s < nseq && rc == 0; s++) {
        int marks = 0;
        for (int i = 0; i < n[s]; i++) {
            marks += ids[s][i] == m->cfg.image_token;
            if (ids[s][i] < 0 || ids[s][i] >= m->cfg.lm.vocab)
                rc = err_set(e, "sequence %d, token %d: id %d outside the vocabulary of %d", s, i, ids[s][i],
                             m->cfg.lm.vocab);
        }
        if (rc == 0 && marks != (feats[s] ? 1 : 0))
            rc = err_set(e, "sequence %d holds %d <image> placeholders for %s image", s, marks, feats[s] ? "one" : "no");
        len[s] = n[s] + (feats[s] ? N - 1 : 0);
        if (rc == 0 && len[s] > m->cfg.lm.context)
            rc = err_set(e, "sequence %d is %d rows long, past the LM's context of %d", s, len[s], m->cfg.lm.context);
        T += len[s], rows += feats[s] ? N : 0;
    }
    if (rc == 0) {
        reserve(a, T, rows, Wv, Wl);
        a->rows = 0;
        int t = 0;
        for (int s = 0; s < nseq; s++)
            for (int i = 0; i < n[s]; i++) {
                if (feats[s] && ids[s][i] == m->cfg.image_token) {
                    for (int r = 0; r < N; r++, t++) {
                        a->ids[t] = -1, a->targets[t] = r == N - 1 ? tgt[s][i] : -1;
                        a->img_row[a->rows] = t;
                        memcpy(a->vis + (size_t)a->rows++ * Wv, feats[s] + (size_t)r * Wv, sizeof(float) * (size_t)Wv);
                    }
                    continue;
                }
                a->ids[t] = ids[s][i], a->targets[t] = tgt[s][i];
                t++;
            }
        lm_batch_begin(&m->lm, &a->lm, a->ids, T, len, nseq);
        projector_forward(m, a);
        lm_forward(&m->lm, &a->lm);
        *loss = lm_loss(&m->lm, &a->lm, a->targets);
    }
    free(len);
    return rc;
}

void mllm_sequence_logprobs(const Mllm *m, MllmActs *a, double *lp) {
    float *row = xalloc_floats((size_t)a->lm.T);
    lm_target_logprobs(&m->lm, &a->lm, a->targets, row, NULL);
    for (int s = 0; s < a->lm.nseq; s++) {
        double sum = 0;
        for (int i = 0; i < a->lm.len[s]; i++) sum += row[a->lm.start[s] + i];
        lp[s] = sum;
    }
    free(row);
}

static int trains(const Mllm *m, const float *slot) {
    for (int i = 0; i < m->table.n; i++)
        if (*m->table.p[i].slot == slot) return !m->table.p[i].frozen;
    return 0;
}

void mllm_backward(const Mllm *m, Mllm *g, MllmActs *a, float dloss) {
    const int Wv = m->cfg.tower.v_width, Wl = m->cfg.lm.width, T = a->lm.T, R = a->rows;
    const int lm_trains = trains(m, m->lm.tok_emb), proj_trains = trains(m, m->proj1_w);
    float *drows = proj_trains && R ? xalloc_floats((size_t)T * Wl) : NULL;
    lm_backward(&m->lm, lm_trains ? &g->lm : NULL, &a->lm, a->ids, dloss, drows);
    if (drows) {
        float *dout = xcalloc((size_t)R * Wl, sizeof(float)), *dh1g = xcalloc((size_t)R * Wl, sizeof(float));
        float *dh1 = xcalloc((size_t)R * Wl, sizeof(float));
        for (int r = 0; r < R; r++)
            memcpy(dout + (size_t)r * Wl, drows + (size_t)a->img_row[r] * Wl, sizeof(float) * (size_t)Wl);
        linear_backward(dh1g, g->proj2_w, g->proj2_b, dout, a->h1g, m->proj2_w, R, Wl, Wl);
        gelu_backward(dh1, dh1g, a->h1, (long)R * Wl);
        linear_backward(NULL, g->proj1_w, g->proj1_b, dh1, a->vis, m->proj1_w, R, Wv, Wl);
        free(dout), free(dh1g), free(dh1);
    }
    free(drows);
}

/* ------------------------------------------------------------ decoding */

int mllm_generate(const Mllm *m, const int32_t *ids, int n, const float *feats, const LmSampling *s, int32_t *out,
                  Err *e) {
    MllmActs a = {0};
    /* the input rows only: embeddings and projected image rows (no forward of the LM) */
    const int N = mllm_image_tokens(&m->cfg), Wv = m->cfg.tower.v_width, Wl = m->cfg.lm.width;
    int rc = 0, marks = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        if (ids[i] < 0 || ids[i] >= m->cfg.lm.vocab)
            rc = err_set(e, "token %d of the prompt is id %d, outside the vocabulary of %d", i, ids[i], m->cfg.lm.vocab);
        marks += ids[i] == m->cfg.image_token;
    }
    if (rc == 0 && marks != (feats ? 1 : 0))
        rc = err_set(e, "the prompt holds %d <image> placeholders for %s image", marks, feats ? "one" : "no");
    const int T = n + (feats ? N - 1 : 0);
    if (rc == 0) {
        reserve(&a, T, feats ? N : 0, Wv, Wl);
        int len = T;
        a.rows = 0;
        for (int i = 0, t = 0; i < n; i++) {
            if (feats && ids[i] == m->cfg.image_token) {
                for (int r = 0; r < N; r++, t++) {
                    a.ids[t] = -1, a.img_row[a.rows] = t;
                    memcpy(a.vis + (size_t)a.rows++ * Wv, feats + (size_t)r * Wv, sizeof(float) * (size_t)Wv);
                }
            } else {
                a.ids[t++] = ids[i];
            }
        }
        lm_batch_begin(&m->lm, &a.lm, a.ids, T, &len, 1);
        projector_forward(m, &a);
        rc = lm_generate_rows(&m->lm, a.lm.x, T, s, out, e);
    }
    mllm_acts_free(&a);
    return rc;
}
