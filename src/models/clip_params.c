/* The CLIP parameter table: every parameter's place in the flat buffer, its
 * OpenAI/open_clip name and its Hugging Face name(s). Loading, saving, init and
 * `forget info` all walk this one table, so the two key layouts cannot drift. */
#include "models/clip_params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "models/clip_train.h"

static ParamSpec *add(ParamList *pl, float **slot, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    ParamSpec *p = &pl->specs[pl->n++];
    memset(p, 0, sizeof *p);
    p->slot = slot;
    p->ndim = ndim;
    int64_t d[4] = {d0, d1, d2, d3};
    p->count = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = d[i];
        p->count *= d[i];
    }
    return p;
}

static void names(ParamSpec *p, const char *openai, const char *hf) {
    snprintf(p->openai, sizeof p->openai, "%s", openai);
    snprintf(p->hf[0], sizeof p->hf[0], "%s", hf);
    p->n_hf = 1;
}

/* One residual block: OpenAI prefix like "visual.transformer.resblocks.3",
 * HF prefix like "vision_model.encoder.layers.3". */
static void block(ParamList *pl, ClipBlock *b, int W, const char *oa, const char *hf) {
#define NAMED(field, nd, a, bb, oname, hname)                       \
    do {                                                            \
        ParamSpec *p_ = add(pl, &b->field, nd, a, bb, 0, 0);        \
        snprintf(p_->openai, sizeof p_->openai, "%s.%s", oa, oname); \
        snprintf(p_->hf[0], sizeof p_->hf[0], "%s.%s", hf, hname);  \
        p_->n_hf = 1;                                               \
        p_->is_block_param = 1;                                     \
    } while (0)
    NAMED(ln1_w, 1, W, 0, "ln_1.weight", "layer_norm1.weight");
    NAMED(ln1_b, 1, W, 0, "ln_1.bias", "layer_norm1.bias");
    {
        ParamSpec *p = add(pl, &b->qkv_w, 2, 3 * W, W, 0, 0);
        snprintf(p->openai, sizeof p->openai, "%s.attn.in_proj_weight", oa);
        for (int i = 0; i < 3; i++) snprintf(p->hf[i], sizeof p->hf[i], "%s.self_attn.%c_proj.weight", hf, "qkv"[i]);
        p->n_hf = 3;
        p->is_block_param = 1;
        p = add(pl, &b->qkv_b, 1, 3 * W, 0, 0, 0);
        snprintf(p->openai, sizeof p->openai, "%s.attn.in_proj_bias", oa);
        for (int i = 0; i < 3; i++) snprintf(p->hf[i], sizeof p->hf[i], "%s.self_attn.%c_proj.bias", hf, "qkv"[i]);
        p->n_hf = 3;
        p->is_block_param = 1;
    }
    NAMED(out_w, 2, W, W, "attn.out_proj.weight", "self_attn.out_proj.weight");
    NAMED(out_b, 1, W, 0, "attn.out_proj.bias", "self_attn.out_proj.bias");
    NAMED(ln2_w, 1, W, 0, "ln_2.weight", "layer_norm2.weight");
    NAMED(ln2_b, 1, W, 0, "ln_2.bias", "layer_norm2.bias");
    NAMED(fc_w, 2, 4 * W, W, "mlp.c_fc.weight", "mlp.fc1.weight");
    NAMED(fc_b, 1, 4 * W, 0, "mlp.c_fc.bias", "mlp.fc1.bias");
    NAMED(proj_w, 2, W, 4 * W, "mlp.c_proj.weight", "mlp.fc2.weight");
    NAMED(proj_b, 1, W, 0, "mlp.c_proj.bias", "mlp.fc2.bias");
#undef NAMED
}

int clip_param_list(ParamList *pl, ClipModel *m) {
    const ClipConfig *c = &m->cfg;
    pl->n = 0;
    ParamSpec *p;
    if (c->has_vision) {
        const int W = c->v_width, P = c->patch, G = c->image_res / c->patch;
        p = add(pl, &m->class_emb, 1, W, 0, 0, 0);
        names(p, "visual.class_embedding", "vision_model.embeddings.class_embedding");
        p = add(pl, &m->v_pos, 2, G * G + 1, W, 0, 0);
        names(p, "visual.positional_embedding", "vision_model.embeddings.position_embedding.weight");
        p = add(pl, &m->conv1_w, 4, W, 3, P, P);
        names(p, "visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight");
        p = add(pl, &m->ln_pre_w, 1, W, 0, 0, 0);
        names(p, "visual.ln_pre.weight", "vision_model.pre_layrnorm.weight");
        p = add(pl, &m->ln_pre_b, 1, W, 0, 0, 0);
        names(p, "visual.ln_pre.bias", "vision_model.pre_layrnorm.bias");
        for (int l = 0; l < c->v_layers; l++) {
            char oa[64], hf[64];
            snprintf(oa, sizeof oa, "visual.transformer.resblocks.%d", l);
            snprintf(hf, sizeof hf, "vision_model.encoder.layers.%d", l);
            block(pl, &m->v_blocks[l], W, oa, hf);
        }
        p = add(pl, &m->ln_post_w, 1, W, 0, 0, 0);
        names(p, "visual.ln_post.weight", "vision_model.post_layernorm.weight");
        p = add(pl, &m->ln_post_b, 1, W, 0, 0, 0);
        names(p, "visual.ln_post.bias", "vision_model.post_layernorm.bias");
        p = add(pl, &m->v_proj, 2, c->embed_dim, W, 0, 0);
        names(p, "visual.proj", "visual_projection.weight");
        p->openai_transposed = 1;
    }
    if (c->has_text) {
        const int W = c->t_width;
        p = add(pl, &m->tok_emb, 2, c->vocab, W, 0, 0);
        names(p, "token_embedding.weight", "text_model.embeddings.token_embedding.weight");
        p->is_token_table = 1;
        p = add(pl, &m->t_pos, 2, c->context, W, 0, 0);
        names(p, "positional_embedding", "text_model.embeddings.position_embedding.weight");
        for (int l = 0; l < c->t_layers; l++) {
            char oa[64], hf[64];
            snprintf(oa, sizeof oa, "transformer.resblocks.%d", l);
            snprintf(hf, sizeof hf, "text_model.encoder.layers.%d", l);
            block(pl, &m->t_blocks[l], W, oa, hf);
        }
        p = add(pl, &m->ln_final_w, 1, W, 0, 0, 0);
        names(p, "ln_final.weight", "text_model.final_layer_norm.weight");
        p = add(pl, &m->ln_final_b, 1, W, 0, 0, 0);
        names(p, "ln_final.bias", "text_model.final_layer_norm.bias");
        p = add(pl, &m->t_proj, 2, c->embed_dim, W, 0, 0);
        names(p, "text_projection", "text_projection.weight");
        p->openai_transposed = 1;
    }
    p = add(pl, &m->logit_scale, 0, 0, 0, 0, 0);
    names(p, "logit_scale", "logit_scale");
    return pl->n;
}

int clip_param_capacity(const ClipConfig *c) {
    return 16 + 12 * ((c->has_vision ? c->v_layers : 0) + (c->has_text ? c->t_layers : 0));
}

ParamSpec *clip_param_table(ClipModel *m, int *n) {
    ParamList pl = {xcalloc((size_t)clip_param_capacity(&m->cfg), sizeof(ParamSpec)), 0};
    clip_param_list(&pl, m);
    *n = pl.n;
    return pl.specs;
}

int clip_param_decays(const ParamSpec *s) {
    return s->ndim >= 2 && !s->is_token_table && strcmp(s->openai, "positional_embedding") != 0 &&
           strcmp(s->openai, "visual.positional_embedding") != 0;
}

int clip_check_finite(const ClipModel *m, Err *e) {
    int n;
    ParamSpec *t = clip_param_table((ClipModel *)m, &n);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const float *p = *t[i].slot;
        if (!p) { /* the token table, read row by row from the file */
            if (!t[i].is_token_table) continue;
            const int W = m->cfg.t_width;
            float *row = xalloc_floats((size_t)W);
            for (int v = 0; v < m->cfg.vocab && rc == 0; v++) {
                clip_token_row(m, v, row);
                for (int k = 0; k < W && rc == 0; k++)
                    if (!isfinite(row[k]))
                        rc = err_set(e, "tensor '%s' holds %s at element %ld", t[i].openai, isnan(row[k]) ? "NaN" : "an infinity",
                                     (long)v * W + k);
            }
            free(row);
            continue;
        }
        for (long k = 0; k < t[i].count && rc == 0; k++)
            if (!isfinite(p[k]))
                rc = err_set(e, "tensor '%s' holds %s at element %ld", m->layout == LAYOUT_HF && t[i].n_hf ? t[i].hf[0] : t[i].openai,
                             isnan(p[k]) ? "NaN" : "an infinity", k);
    }
    free(t);
    return rc;
}

int clip_nonfinite_error(const ClipModel *m, const char *what, Err *e) {
    Err w = {{0}};
    if (clip_check_finite(m, &w))
        return err_set(e, "%s is not finite: %s (the model file is damaged; forget verify FILE checks it)", what, w.msg);
    return err_set(e, "%s is not finite, though every weight is: the input is out of range", what);
}
