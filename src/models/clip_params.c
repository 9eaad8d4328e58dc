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

enum { OA = LAYOUT_OPENAI, HF = LAYOUT_HF };

/* CLIP's own init scales (OpenAI clip/model.py initialize_parameters), per tower. */
typedef struct {
    float attn, proj, fc;
} Scales;

static Scales scales(int W, int L) {
    const float attn = 1.0f / sqrtf((float)W);
    return (Scales){attn, attn / sqrtf(2.0f * L), 1.0f / sqrtf(2.0f * W)};
}

static NnParam *named(NnTable *t, float **slot, int ndim, int64_t d0, int64_t d1, const char *oa, const char *hf,
                      NnInit init) {
    NnParam *p = nn_add(t, slot, ndim, d0, d1, 0, 0);
    nn_key(p, OA, "%s", oa);
    nn_key(p, HF, "%s", hf);
    p->init = init;
    p->decay = ndim >= 2;
    return p;
}

static const NnInit ONES = {INIT_ONES, 0}, ZEROS = {INIT_ZEROS, 0};
static NnInit normal(float std) { return (NnInit){INIT_NORMAL, std}; }

/* One residual block: OpenAI prefix like "visual.transformer.resblocks.3",
 * HF prefix like "vision_model.encoder.layers.3". */
static void block(NnTable *t, BlockParams *b, int W, Scales sc, const char *oa, const char *hf) {
    char o[NN_NAME], h[NN_NAME];
#define NAMED(field, nd, a, bb, oname, hname, init)                     \
    do {                                                                \
        snprintf(o, sizeof o, "%s.%s", oa, oname);                     \
        snprintf(h, sizeof h, "%s.%s", hf, hname);                     \
        named(t, &b->field, nd, a, bb, o, h, init);                    \
    } while (0)
    NAMED(ln1_w, 1, W, 0, "ln_1.weight", "layer_norm1.weight", ONES);
    NAMED(ln1_b, 1, W, 0, "ln_1.bias", "layer_norm1.bias", ZEROS);
    NnParam *p = nn_add(t, &b->qkv_w, 2, 3 * W, W, 0, 0);
    nn_key(p, OA, "%s.attn.in_proj_weight", oa);
    for (int i = 0; i < 3; i++) nn_key_part(p, HF, i, "%s.self_attn.%c_proj.weight", hf, "qkv"[i]);
    p->init = normal(sc.attn), p->decay = 1;
    p = nn_add(t, &b->qkv_b, 1, 3 * W, 0, 0, 0);
    nn_key(p, OA, "%s.attn.in_proj_bias", oa);
    for (int i = 0; i < 3; i++) nn_key_part(p, HF, i, "%s.self_attn.%c_proj.bias", hf, "qkv"[i]);
    NAMED(out_w, 2, W, W, "attn.out_proj.weight", "self_attn.out_proj.weight", normal(sc.proj));
    NAMED(out_b, 1, W, 0, "attn.out_proj.bias", "self_attn.out_proj.bias", ZEROS);
    NAMED(ln2_w, 1, W, 0, "ln_2.weight", "layer_norm2.weight", ONES);
    NAMED(ln2_b, 1, W, 0, "ln_2.bias", "layer_norm2.bias", ZEROS);
    NAMED(fc_w, 2, 4 * W, W, "mlp.c_fc.weight", "mlp.fc1.weight", normal(sc.fc));
    NAMED(fc_b, 1, 4 * W, 0, "mlp.c_fc.bias", "mlp.fc1.bias", ZEROS);
    NAMED(proj_w, 2, W, 4 * W, "mlp.c_proj.weight", "mlp.fc2.weight", normal(sc.proj));
    NAMED(proj_b, 1, W, 0, "mlp.c_proj.bias", "mlp.fc2.bias", ZEROS);
#undef NAMED
}

void clip_param_table_build(NnTable *t, ClipModel *m) {
    const ClipConfig *c = &m->cfg;
    t->n = 0;
    NnParam *p;
    if (c->has_vision) {
        const int W = c->v_width, P = c->patch, G = c->image_res / c->patch;
        const Scales sc = scales(W, c->v_layers);
        named(t, &m->class_emb, 1, W, 0, "visual.class_embedding", "vision_model.embeddings.class_embedding",
              normal(sc.attn));
        p = named(t, &m->v_pos, 2, G * G + 1, W, "visual.positional_embedding",
                  "vision_model.embeddings.position_embedding.weight", normal(sc.attn));
        p->decay = 0;
        p = nn_add(t, &m->conv1_w, 4, W, 3, P, P);
        nn_key(p, OA, "visual.conv1.weight");
        nn_key(p, HF, "vision_model.embeddings.patch_embedding.weight");
        p->init = normal(1.0f / sqrtf(3.0f * P * P)), p->decay = 1;
        named(t, &m->ln_pre_w, 1, W, 0, "visual.ln_pre.weight", "vision_model.pre_layrnorm.weight", ONES);
        named(t, &m->ln_pre_b, 1, W, 0, "visual.ln_pre.bias", "vision_model.pre_layrnorm.bias", ZEROS);
        for (int l = 0; l < c->v_layers; l++) {
            char oa[64], hf[64];
            snprintf(oa, sizeof oa, "visual.transformer.resblocks.%d", l);
            snprintf(hf, sizeof hf, "vision_model.encoder.layers.%d", l);
            block(t, &m->v_blocks[l], W, sc, oa, hf);
        }
        named(t, &m->ln_post_w, 1, W, 0, "visual.ln_post.weight", "vision_model.post_layernorm.weight", ONES);
        named(t, &m->ln_post_b, 1, W, 0, "visual.ln_post.bias", "vision_model.post_layernorm.bias", ZEROS);
        p = named(t, &m->v_proj, 2, c->embed_dim, W, "visual.proj", "visual_projection.weight", normal(sc.attn));
        p->transposed = 1u << OA;
    }
    if (c->has_text) {
        const int W = c->t_width;
        const Scales sc = scales(W, c->t_layers);
        p = named(t, &m->tok_emb, 2, c->vocab, W, "token_embedding.weight",
                  "text_model.embeddings.token_embedding.weight", normal(0.02f));
        p->lazy = 1, p->decay = 0;
        p = named(t, &m->t_pos, 2, c->context, W, "positional_embedding",
                  "text_model.embeddings.position_embedding.weight", normal(0.01f));
        p->decay = 0;
        for (int l = 0; l < c->t_layers; l++) {
            char oa[64], hf[64];
            snprintf(oa, sizeof oa, "transformer.resblocks.%d", l);
            snprintf(hf, sizeof hf, "text_model.encoder.layers.%d", l);
            block(t, &m->t_blocks[l], W, sc, oa, hf);
        }
        named(t, &m->ln_final_w, 1, W, 0, "ln_final.weight", "text_model.final_layer_norm.weight", ONES);
        named(t, &m->ln_final_b, 1, W, 0, "ln_final.bias", "text_model.final_layer_norm.bias", ZEROS);
        p = named(t, &m->t_proj, 2, c->embed_dim, W, "text_projection", "text_projection.weight", normal(sc.attn));
        p->transposed = 1u << OA;
    }
    p = named(t, &m->logit_scale, 0, 0, 0, "logit_scale", "logit_scale", (NnInit){INIT_CONST, logf(1.0f / 0.07f)});
    p->exact = 1;
}

NnTable clip_param_table(ClipModel *m) {
    NnTable t = {0};
    clip_param_table_build(&t, m);
    return t;
}

int clip_check_finite(const ClipModel *m, Err *e) {
    NnTable t = clip_param_table((ClipModel *)m);
    const int L = m->layout == LAYOUT_HF ? HF : OA;
    int rc = nn_check_finite(&t, L, e);
    for (int i = 0; i < t.n && rc == 0; i++) {
        if (*t.p[i].slot || !t.p[i].lazy) continue;
        /* the token table, read row by row from the file */
        const int W = m->cfg.t_width;
        float *row = xalloc_floats((size_t)W);
        for (int v = 0; v < m->cfg.vocab && rc == 0; v++) {
            clip_token_row(m, v, row);
            for (int k = 0; k < W && rc == 0; k++)
                if (!isfinite(row[k]))
                    rc = err_set(e, "tensor '%s' holds %s at element %ld", nn_param_name(&t.p[i], L),
                                 isnan(row[k]) ? "NaN" : "an infinity", (long)v * W + k);
        }
        free(row);
    }
    nn_table_free(&t);
    return rc;
}

int clip_nonfinite_error(const ClipModel *m, const char *what, Err *e) {
    Err w = {{0}};
    if (clip_check_finite(m, &w))
        return err_set(e, "%s is not finite: %s (the model file is damaged; forget verify FILE checks it)", what, w.msg);
    return err_set(e, "%s is not finite, though every weight is: the input is out of range", what);
}
