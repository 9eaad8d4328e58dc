#include "models/clip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "core/half.h"
#include "core/rng.h"
#include "models/clip_params.h"
#include "models/clip_train.h"
#include "models/transformer.h"


/* ------------------------------------------------------------ parameters */

/* Allocates blocks and the flat buffer, and points every named pointer into it.
 * With lazy_tokens the token table gets no room (it is read from the file). */
static void layout_params(ClipModel *m, int lazy_tokens, ParamList *pl) {
    const ClipConfig *c = &m->cfg;
    m->v_blocks = c->has_vision ? xcalloc((size_t)c->v_layers, sizeof(ClipBlock)) : NULL;
    m->t_blocks = c->has_text ? xcalloc((size_t)c->t_layers, sizeof(ClipBlock)) : NULL;
    pl->specs = xcalloc((size_t)clip_param_capacity(c), sizeof(ParamSpec));
    clip_param_list(pl, m);
    long total = 0;
    for (int i = 0; i < pl->n; i++)
        if (!(lazy_tokens && pl->specs[i].is_token_table)) total += pl->specs[i].count;
    m->n_params = total;
    m->params = xalloc_floats((size_t)total);
    float *p = m->params;
    for (int i = 0; i < pl->n; i++) {
        if (lazy_tokens && pl->specs[i].is_token_table) {
            *pl->specs[i].slot = NULL;
            continue;
        }
        *pl->specs[i].slot = p;
        p += pl->specs[i].count;
    }
}

long clip_param_count(const ClipConfig *cfg, int vision, int text) {
    ClipModel m = {.cfg = *cfg};
    m.cfg.has_vision = cfg->has_vision && vision;
    m.cfg.has_text = cfg->has_text && text;
    m.v_blocks = m.cfg.has_vision ? xcalloc((size_t)m.cfg.v_layers, sizeof(ClipBlock)) : NULL;
    m.t_blocks = m.cfg.has_text ? xcalloc((size_t)m.cfg.t_layers, sizeof(ClipBlock)) : NULL;
    ParamList pl = {xcalloc((size_t)clip_param_capacity(&m.cfg), sizeof(ParamSpec)), 0};
    clip_param_list(&pl, &m);
    long n = 0;
    for (int i = 0; i < pl.n; i++)
        if (strcmp(pl.specs[i].openai, "logit_scale") != 0) n += pl.specs[i].count;
    free(pl.specs);
    free(m.v_blocks);
    free(m.t_blocks);
    return n;
}

void clip_free(ClipModel *m) {
    if (!m) return;
    free(m->params);
    free(m->v_blocks);
    free(m->t_blocks);
    if (m->src) {
        st_close(m->src);
        free(m->src);
    }
    memset(m, 0, sizeof *m);
}

int clip_config_named(ClipConfig *c, const char *name) {
    memset(c, 0, sizeof *c);
    c->has_vision = c->has_text = 1;
    c->context = 77;
    c->vocab = 49408;
    c->act = ACT_QUICKGELU;
    if (strcmp(name, "vit-b-32") == 0 || strcmp(name, "vit-b-16") == 0) {
        c->embed_dim = 512;
        c->image_res = 224;
        c->patch = strcmp(name, "vit-b-32") == 0 ? 32 : 16;
        c->v_width = 768, c->v_layers = 12, c->v_heads = 12;
        c->t_width = 512, c->t_layers = 12, c->t_heads = 8;
        return 0;
    }
    if (strcmp(name, "fmnist-s") == 0) { /* the zoo's Fashion-MNIST shape: 28px grey images, short captions */
        c->embed_dim = 128;
        c->image_res = 28, c->patch = 4;
        c->v_width = 128, c->v_layers = 4, c->v_heads = 4;
        c->t_width = 128, c->t_layers = 4, c->t_heads = 4;
        return 0;
    }
    if (strcmp(name, "emoji-s") == 0) { /* the zoo's emoji shape: 32px RGB, names and keywords */
        c->embed_dim = 128;
        c->image_res = 32, c->patch = 4;
        c->v_width = 128, c->v_layers = 4, c->v_heads = 4;
        c->t_width = 128, c->t_layers = 4, c->t_heads = 4;
        return 0;
    }
    if (strcmp(name, "fmnist-xs") == 0) { /* a seconds-fast shape for tests and smoke runs */
        c->embed_dim = 32;
        c->image_res = 28, c->patch = 7;
        c->v_width = 32, c->v_layers = 1, c->v_heads = 2;
        c->t_width = 32, c->t_layers = 1, c->t_heads = 2;
        return 0;
    }
    if (strcmp(name, "tiny") == 0) {
        c->embed_dim = 32;
        c->image_res = 32, c->patch = 8;
        c->v_width = 128, c->v_layers = 2, c->v_heads = 2;
        c->t_width = 32, c->t_layers = 2, c->t_heads = 2;
        return 0;
    }
    return -1;
}

void clip_init_zeros(ClipModel *g, const ClipConfig *cfg) {
    memset(g, 0, sizeof *g);
    g->cfg = *cfg;
    ParamList pl;
    layout_params(g, 0, &pl);
    free(pl.specs);
    memset(g->params, 0, sizeof(float) * (size_t)g->n_params);
}

void clip_init_random(ClipModel *m, const ClipConfig *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    ParamList pl;
    layout_params(m, 0, &pl);
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < pl.n; i++) {
        const ParamSpec *s = &pl.specs[i];
        float *x = *s->slot;
        const char *nm = s->openai;
        int W = strncmp(nm, "visual", 6) == 0 ? cfg->v_width : cfg->t_width;
        int L = strncmp(nm, "visual", 6) == 0 ? cfg->v_layers : cfg->t_layers;
        float attn_std = 1.0f / sqrtf((float)W), proj_std = attn_std / sqrtf(2.0f * L), fc_std = 1.0f / sqrtf(2.0f * W);
        if (strstr(nm, "ln_") && strstr(nm, ".weight"))
            for (long k = 0; k < s->count; k++) x[k] = 1.0f;
        else if (strstr(nm, "bias") || strstr(nm, "ln_"))
            memset(x, 0, (size_t)s->count * sizeof(float));
        else if (strcmp(nm, "logit_scale") == 0)
            x[0] = logf(1.0f / 0.07f);
        else if (strcmp(nm, "token_embedding.weight") == 0)
            rng_fill_normal(&r, x, s->count, 0, 0.02f);
        else if (strcmp(nm, "positional_embedding") == 0)
            rng_fill_normal(&r, x, s->count, 0, 0.01f);
        else if (strstr(nm, "in_proj_weight"))
            rng_fill_normal(&r, x, s->count, 0, attn_std);
        else if (strstr(nm, "c_fc.weight"))
            rng_fill_normal(&r, x, s->count, 0, fc_std);
        else if (strstr(nm, "out_proj.weight") || strstr(nm, "c_proj.weight"))
            rng_fill_normal(&r, x, s->count, 0, proj_std);
        else if (strcmp(nm, "visual.conv1.weight") == 0)
            rng_fill_normal(&r, x, s->count, 0, 1.0f / sqrtf(3.0f * cfg->patch * cfg->patch));
        else /* class/positional embeddings and projections: width^-0.5 as in CLIP */
            rng_fill_normal(&r, x, s->count, 0, attn_std);
    }
    free(pl.specs);
    m->layout = LAYOUT_OPENAI;
    snprintf(m->src_dtypes, sizeof m->src_dtypes, "F32 (random init)");
}

/* ------------------------------------------------------------------ loading */

static int64_t dim_of(const SafeTensors *st, const char *name, int d) {
    const StTensor *t = st_find(st, name);
    if (!t) return -1;
    if (d < 0) d += t->ndim;
    return d >= 0 && d < t->ndim ? t->shape[d] : -1;
}

/* Highest N + 1 over keys "<prefix>N<suffix>". */
static int count_layers(const SafeTensors *st, const char *prefix, const char *suffix) {
    int best = 0;
    size_t pl = strlen(prefix), sl = strlen(suffix);
    for (int i = 0; i < st->n; i++) {
        const char *nm = st->tensors[i].name;
        if (strncmp(nm, prefix, pl) != 0) continue;
        char *end;
        long n = strtol(nm + pl, &end, 10);
        if (end == nm + pl || strlen(end) != sl || strcmp(end, suffix) != 0) continue;
        if (n + 1 > best) best = (int)n + 1;
    }
    return best;
}

static int heads_from(const SafeTensors *st, const char *key, int width, int *heads, Err *e) {
    const char *v = st_meta(st, key);
    if (v) {
        char *end;
        long h = strtol(v, &end, 10);
        if (*end || h <= 0 || width % h != 0)
            return err_set(e, "__metadata__ %s = \"%s\" is not a positive divisor of the width %d", key, v, width);
        *heads = (int)h;
        return 0;
    }
    if (width < 64 || width % 64 != 0)
        return err_set(e, "cannot infer %s: width %d is not a multiple of 64 and __metadata__ has no \"%s\"", key,
                       width, key);
    *heads = width / 64; /* the rule build_model() uses for the released checkpoints */
    return 0;
}

static int infer_config(const SafeTensors *st, ClipConfig *c, ClipLayout *layout, Err *e) {
    memset(c, 0, sizeof *c);
    int oa = st_find(st, "visual.conv1.weight") || st_find(st, "token_embedding.weight");
    int hf = st_find(st, "vision_model.embeddings.patch_embedding.weight") ||
             st_find(st, "text_model.embeddings.token_embedding.weight");
    if (!oa && !hf)
        return err_set(e, "not a CLIP checkpoint: found neither 'visual.conv1.weight'/'token_embedding.weight' "
                          "(OpenAI layout) nor 'vision_model.embeddings.patch_embedding.weight'/"
                          "'text_model.embeddings.token_embedding.weight' (Hugging Face layout)");
    *layout = oa ? LAYOUT_OPENAI : LAYOUT_HF;
    const char *conv = oa ? "visual.conv1.weight" : "vision_model.embeddings.patch_embedding.weight";
    const char *vpos = oa ? "visual.positional_embedding" : "vision_model.embeddings.position_embedding.weight";
    const char *tok = oa ? "token_embedding.weight" : "text_model.embeddings.token_embedding.weight";
    const char *tpos = oa ? "positional_embedding" : "text_model.embeddings.position_embedding.weight";
    const char *lnf = oa ? "ln_final.weight" : "text_model.final_layer_norm.weight";

    c->has_vision = st_find(st, conv) != NULL;
    c->has_text = st_find(st, tok) != NULL;
    if (c->has_vision) {
        c->v_width = (int)dim_of(st, conv, 0);
        c->patch = (int)dim_of(st, conv, -1);
        int64_t npos = dim_of(st, vpos, 0);
        if (npos < 2) return err_set(e, "missing or empty '%s'", vpos);
        int grid = (int)lround(sqrt((double)(npos - 1)));
        if ((int64_t)grid * grid + 1 != npos)
            return err_set(e, "'%s' has %lld rows, not grid^2 + 1", vpos, (long long)npos);
        c->image_res = grid * c->patch;
        c->v_layers = oa ? count_layers(st, "visual.transformer.resblocks.", ".attn.in_proj_weight")
                         : count_layers(st, "vision_model.encoder.layers.", ".self_attn.q_proj.weight");
        if (c->v_layers == 0) return err_set(e, "vision tower has no transformer layers");
        if (heads_from(st, "vision_heads", c->v_width, &c->v_heads, e)) return -1;
        c->embed_dim = (int)(oa ? dim_of(st, "visual.proj", 1) : dim_of(st, "visual_projection.weight", 0));
    }
    if (c->has_text) {
        c->vocab = (int)dim_of(st, tok, 0);
        c->t_width = (int)dim_of(st, tok, 1);
        c->context = (int)dim_of(st, tpos, 0);
        if (c->context <= 0) return err_set(e, "missing '%s'", tpos);
        if (dim_of(st, lnf, 0) != c->t_width) return err_set(e, "missing or mis-shaped '%s'", lnf);
        c->t_layers = oa ? count_layers(st, "transformer.resblocks.", ".attn.in_proj_weight")
                         : count_layers(st, "text_model.encoder.layers.", ".self_attn.q_proj.weight");
        if (c->t_layers == 0) return err_set(e, "text tower has no transformer layers");
        if (heads_from(st, "transformer_heads", c->t_width, &c->t_heads, e)) return -1;
        c->embed_dim = (int)(oa ? dim_of(st, "text_projection", 1) : dim_of(st, "text_projection.weight", 0));
    }
    if (c->embed_dim <= 0) return err_set(e, "missing the output projection (visual.proj / text_projection)");
    const char *act = st_meta(st, "act");
    c->act = act && (strcmp(act, "gelu") == 0) ? ACT_GELU : ACT_QUICKGELU;
    if (act && strcmp(act, "gelu") != 0 && strcmp(act, "quickgelu") != 0)
        return err_set(e, "__metadata__ act = \"%s\": expected \"quickgelu\" or \"gelu\"", act);
    return 0;
}

static int check_float_dtype(const StTensor *t, Err *e) {
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return err_set(e, "tensor '%s' has dtype %s; expected F32, F16 or BF16", t->name, st_dtype_name(t->dtype));
    return 0;
}

static void note_dtype(ClipModel *m, StDtype d) {
    const char *nm = st_dtype_name(d);
    if (strstr(m->src_dtypes, nm)) return;
    size_t l = strlen(m->src_dtypes);
    snprintf(m->src_dtypes + l, sizeof m->src_dtypes - l, "%s%s", l ? "+" : "", nm);
}

static int load_one(ClipModel *m, SafeTensors *st, const ParamSpec *s, ClipLayout layout, Err *e) {
    float *dst = *s->slot;
    if (layout == LAYOUT_HF && s->n_hf == 3) { /* q, k, v stacked along dim 0 */
        long part = s->count / 3;
        for (int i = 0; i < 3; i++) {
            const StTensor *t = st_find(st, s->hf[i]);
            if (!t) return err_set(e, "missing tensor '%s'", s->hf[i]);
            if (check_float_dtype(t, e)) return -1;
            int64_t want0 = s->shape[0] / 3, want1 = s->ndim > 1 ? s->shape[1] : -1;
            if (t->ndim != s->ndim || t->shape[0] != want0 || (s->ndim > 1 && t->shape[1] != want1))
                return err_set(e, "tensor '%s' has the wrong shape for this config", t->name);
            if (st_to_f32(t, dst + i * part, e)) return -1;
            note_dtype(m, t->dtype);
            st_drop_pages(st, t);
        }
        return 0;
    }
    const char *name = layout == LAYOUT_OPENAI ? s->openai : s->hf[0];
    const StTensor *t = st_find(st, name);
    if (!t) return err_set(e, "missing tensor '%s'", name);
    if (check_float_dtype(t, e)) return -1;
    note_dtype(m, t->dtype);
    int transposed = layout == LAYOUT_OPENAI && s->openai_transposed;
    int ok = st_numel(t) == s->count && (s->ndim == 0 || t->ndim == s->ndim);
    if (ok && s->ndim == 2) {
        int64_t a = transposed ? s->shape[1] : s->shape[0], b = transposed ? s->shape[0] : s->shape[1];
        ok = t->shape[0] == a && t->shape[1] == b;
    }
    for (int d = 0; ok && s->ndim != 2 && d < s->ndim; d++) ok = t->shape[d] == s->shape[d];
    if (!ok) {
        char want[64] = "";
        for (int d = 0; d < s->ndim; d++) {
            size_t l = strlen(want);
            int64_t v = transposed ? s->shape[s->ndim - 1 - d] : s->shape[d];
            snprintf(want + l, sizeof want - l, "%s%lld", d ? "," : "", (long long)v);
        }
        return err_set(e, "tensor '%s' has %lld elements in %d dims; this config expects [%s]", name,
                       (long long)st_numel(t), t->ndim, want);
    }
    if (!dst) { /* the token table stays in the file and is widened row by row */
        m->tok_src = t;
        return 0;
    }
    if (!transposed) {
        if (st_to_f32(t, dst, e)) return -1;
    } else {
        float *tmp = xalloc_floats((size_t)s->count);
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

int clip_load(ClipModel *m, const char *path, const ClipLoadOpts *opts, Err *e) {
    memset(m, 0, sizeof *m);
    ClipLoadOpts def = {.act_override = -1, .load_token_table = 0};
    if (!opts) opts = &def;
    SafeTensors *st = xcalloc(1, sizeof *st);
    if (st_open(st, path, e) != 0) {
        free(st);
        return -1;
    }
    ClipLayout layout = LAYOUT_OPENAI;
    if (infer_config(st, &m->cfg, &layout, e) != 0) {
        st_close(st);
        free(st);
        return err_prefix(e, "%s: ", path);
    }
    if (opts->act_override >= 0) m->cfg.act = (ClipAct)opts->act_override;
    m->layout = layout;
    ParamList pl;
    int lazy = m->cfg.has_text && !opts->load_token_table;
    layout_params(m, lazy, &pl);
    int rc = 0;
    for (int i = 0; i < pl.n && rc == 0; i++) rc = load_one(m, st, &pl.specs[i], layout, e);
    free(pl.specs);
    if (rc == 0 && m->tok_src && m->tok_src->dtype != ST_F32 && m->tok_src->dtype != ST_F16 &&
        m->tok_src->dtype != ST_BF16)
        rc = err_set(e, "token table dtype %s unsupported", st_dtype_name(m->tok_src->dtype));
    if (rc != 0) {
        st_close(st);
        free(st);
        m->tok_src = NULL;
        clip_free(m);
        return err_prefix(e, "%s (%s layout): ", path, layout == LAYOUT_OPENAI ? "OpenAI" : "Hugging Face");
    }
    if (lazy) {
        m->src = st;
    } else {
        st_close(st);
        free(st);
    }
    return 0;
}

/* ------------------------------------------------------------------ saving */

int clip_save(const ClipModel *m, const char *path, ClipLayout layout, StDtype dtype, Err *e) {
    ClipModel view = *m; /* a shallow copy whose pointers the table walk may rebind */
    view.v_blocks = m->cfg.has_vision ? xcalloc((size_t)m->cfg.v_layers, sizeof(ClipBlock)) : NULL;
    view.t_blocks = m->cfg.has_text ? xcalloc((size_t)m->cfg.t_layers, sizeof(ClipBlock)) : NULL;
    if (view.v_blocks) memcpy(view.v_blocks, m->v_blocks, sizeof(ClipBlock) * (size_t)m->cfg.v_layers);
    if (view.t_blocks) memcpy(view.t_blocks, m->t_blocks, sizeof(ClipBlock) * (size_t)m->cfg.t_layers);
    ParamList pl = {xcalloc((size_t)clip_param_capacity(&m->cfg), sizeof(ParamSpec)), 0};
    clip_param_list(&pl, &view);
    StWriteTensor *wt = xcalloc((size_t)pl.n * 3, sizeof *wt);
    float **owned = xcalloc((size_t)pl.n * 3 + 1, sizeof(float *));
    int nw = 0, no = 0, rc = 0;
    for (int i = 0; i < pl.n && rc == 0; i++) {
        const ParamSpec *s = &pl.specs[i];
        const float *src = *s->slot;
        if (!src && s->is_token_table) { /* widen the lazily mapped table for writing */
            float *tab = xalloc_floats((size_t)s->count);
            if ((rc = st_to_f32(m->tok_src, tab, e)) != 0) {
                free(tab);
                break;
            }
            owned[no++] = tab;
            src = tab;
        }
        StDtype dt = s->ndim == 0 ? ST_F32 : dtype; /* logit_scale stays exact */
        if (layout == LAYOUT_HF && s->n_hf == 3) {
            long part = s->count / 3;
            for (int k = 0; k < 3; k++) {
                StWriteTensor *w = &wt[nw++];
                *w = (StWriteTensor){.name = s->hf[k], .dtype = dt, .ndim = s->ndim, .f32 = src + k * part};
                w->shape[0] = s->shape[0] / 3;
                if (s->ndim > 1) w->shape[1] = s->shape[1];
            }
            continue;
        }
        StWriteTensor *w = &wt[nw++];
        *w = (StWriteTensor){.name = layout == LAYOUT_OPENAI ? s->openai : s->hf[0], .dtype = dt, .ndim = s->ndim, .f32 = src};
        for (int d = 0; d < s->ndim; d++) w->shape[d] = s->shape[d];
        if (layout == LAYOUT_OPENAI && s->openai_transposed) {
            const int64_t R = s->shape[0], C = s->shape[1];
            float *t = xalloc_floats((size_t)s->count);
            for (int64_t r = 0; r < R; r++)
                for (int64_t c = 0; c < C; c++) t[c * R + r] = src[r * C + c];
            owned[no++] = t;
            w->f32 = t;
            w->shape[0] = C;
            w->shape[1] = R;
        }
    }
    char vh[16], th[16];
    snprintf(vh, sizeof vh, "%d", m->cfg.v_heads);
    snprintf(th, sizeof th, "%d", m->cfg.t_heads);
    const char *meta[] = {"format", "pt", "vision_heads", vh, "transformer_heads", th,
                          "act", m->cfg.act == ACT_GELU ? "gelu" : "quickgelu", "producer", "forget"};
    if (rc == 0) rc = st_write(path, wt, nw, meta, 5, e);
    for (int i = 0; i < no; i++) free(owned[i]);
    free(owned);
    free(wt);
    free(pl.specs);
    free(view.v_blocks);
    free(view.t_blocks);
    return rc;
}

/* ------------------------------------------------------------------ costs */

static double block_flops(int T, int W, double att_pairs) {
    /* qkv, out_proj, c_fc, c_proj; then QK^T and PV over the attended pairs */
    return 2.0 * T * W * (3.0 * W + W + 4.0 * W + 4.0 * W) + 4.0 * att_pairs * W;
}

double clip_image_flops(const ClipConfig *c) {
    const int G = c->image_res / c->patch, S = G * G + 1;
    double f = 2.0 * G * G * (3.0 * c->patch * c->patch) * c->v_width;
    f += c->v_layers * block_flops(S, c->v_width, (double)S * S);
    return f + 2.0 * c->v_width * c->embed_dim;
}

double clip_text_flops(const ClipConfig *c, int tokens) {
    double pairs = (double)tokens * (tokens + 1) / 2; /* causal: position i attends to i+1 keys */
    return c->t_layers * block_flops(tokens, c->t_width, pairs) + 2.0 * c->t_width * c->embed_dim;
}
