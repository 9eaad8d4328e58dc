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
#include "nn/block.h"


/* ------------------------------------------------------------ parameters */

/* Allocates blocks and the flat buffer, and points every named pointer into it (the table's
 * order). With lazy_tokens the token table gets no room (it is read from the file). */
static void layout_params(ClipModel *m, int lazy_tokens, NnTable *t) {
    const ClipConfig *c = &m->cfg;
    m->v_blocks = c->has_vision ? xcalloc((size_t)c->v_layers, sizeof(BlockParams)) : NULL;
    m->t_blocks = c->has_text ? xcalloc((size_t)c->t_layers, sizeof(BlockParams)) : NULL;
    *t = clip_param_table(m);
    m->params = nn_arena_layout(t, lazy_tokens, &m->n_params);
}

long clip_param_count(const ClipConfig *cfg, int vision, int text) {
    ClipModel m = {.cfg = *cfg};
    m.cfg.has_vision = cfg->has_vision && vision;
    m.cfg.has_text = cfg->has_text && text;
    m.v_blocks = m.cfg.has_vision ? xcalloc((size_t)m.cfg.v_layers, sizeof(BlockParams)) : NULL;
    m.t_blocks = m.cfg.has_text ? xcalloc((size_t)m.cfg.t_layers, sizeof(BlockParams)) : NULL;
    NnTable t = clip_param_table(&m);
    long n = 0;
    for (int i = 0; i < t.n; i++)
        if (t.p[i].ndim > 0) n += t.p[i].count; /* all but the logit scale */
    nn_table_free(&t);
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
    gemm_free(m->gemm);
    memset(m, 0, sizeof *m);
}

int clip_set_precision(ClipModel *m, Precision p, Err *e) {
    gemm_free(m->gemm);
    m->gemm = gemm_new(p, e); /* fp32 too: oneDNN's matmul with the epilogues fused */
    return m->gemm ? 0 : -1;
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
    NnTable t;
    layout_params(g, 0, &t);
    nn_table_free(&t);
    memset(g->params, 0, sizeof(float) * (size_t)g->n_params);
}

void clip_init_random(ClipModel *m, const ClipConfig *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    NnTable t;
    layout_params(m, 0, &t);
    Rng r;
    rng_seed(&r, seed);
    nn_init(&t, &r);
    nn_table_free(&t);
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
    NnTable t;
    int lazy = m->cfg.has_text && !opts->load_token_table;
    layout_params(m, lazy, &t);
    int rc = nn_load(&t, st, layout, &m->tok_src, m->src_dtypes, sizeof m->src_dtypes, e);
    nn_table_free(&t);
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
    view.v_blocks = m->cfg.has_vision ? xcalloc((size_t)m->cfg.v_layers, sizeof(BlockParams)) : NULL;
    view.t_blocks = m->cfg.has_text ? xcalloc((size_t)m->cfg.t_layers, sizeof(BlockParams)) : NULL;
    if (view.v_blocks) memcpy(view.v_blocks, m->v_blocks, sizeof(BlockParams) * (size_t)m->cfg.v_layers);
    if (view.t_blocks) memcpy(view.t_blocks, m->t_blocks, sizeof(BlockParams) * (size_t)m->cfg.t_layers);
    NnTable t = clip_param_table(&view);
    char vh[16], th[16];
    snprintf(vh, sizeof vh, "%d", m->cfg.v_heads);
    snprintf(th, sizeof th, "%d", m->cfg.t_heads);
    const char *meta[] = {"format", "pt", "vision_heads", vh, "transformer_heads", th,
                          "act", m->cfg.act == ACT_GELU ? "gelu" : "quickgelu", "producer", "forget"};
    int rc = nn_save(&t, path, layout, dtype, m->tok_src, meta, 5, e);
    nn_table_free(&t);
    free(view.v_blocks);
    free(view.t_blocks);
    return rc;
}

/* ------------------------------------------------------------------ costs */

double clip_image_flops(const ClipConfig *c) {
    const int G = c->image_res / c->patch, S = G * G + 1;
    double f = 2.0 * G * G * (3.0 * c->patch * c->patch) * c->v_width;
    const BlockConfig bc = clip_block_config(c, 0);
    f += c->v_layers * block_flops(&bc, S, (double)S * S, 0);
    return f + 2.0 * c->v_width * c->embed_dim;
}

double clip_text_flops(const ClipConfig *c, int tokens) {
    double pairs = (double)tokens * (tokens + 1) / 2; /* causal: position i attends to i+1 keys */
    const BlockConfig bc = clip_block_config(c, 1);
    return c->t_layers * block_flops(&bc, tokens, pairs, 0) + 2.0 * c->t_width * c->embed_dim;
}
