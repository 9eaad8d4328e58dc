/* The towers' inference API: features, every position's text hidden states, patch tokens from any
 * layer, prompts with context embeddings, and a workspace that makes repeated calls allocate
 * nothing once it has grown to the largest batch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "models/clip_prompts.h"
#include "models/clip_train.h"

struct ClipWorkspace {
    TowerActs img, txt;
};

ClipWorkspace *clip_workspace_new(void) { return xcalloc(1, sizeof(ClipWorkspace)); }

void clip_workspace_free(ClipWorkspace *ws) {
    if (!ws) return;
    tower_acts_free(&ws->img);
    tower_acts_free(&ws->txt);
    free(ws);
}

int clip_encode_image_ws(const ClipModel *m, ClipWorkspace *ws, const float *pixels, int B, float *out,
                         const ClipTrace *tr, Err *e) {
    if (!m->cfg.has_vision) return err_set(e, "this model has no image tower");
    if (B <= 0) return 0;
    if (m->image_prompts) return clip_encode_image_prompted(m, m->image_prompts, pixels, B, out, e);
    image_acts_reuse(&ws->img, m, B, 0, 0, 0);
    image_forward(m, &ws->img, pixels, out, tr);
    return 0;
}

int clip_encode_text_ws(const ClipModel *m, ClipWorkspace *ws, const int32_t *ids, int N, float *out,
                        const ClipTrace *tr, Err *e) {
    if (!m->cfg.has_text) return err_set(e, "this model has no text tower");
    if (N <= 0) return 0;
    if (text_acts_reuse(&ws->txt, m, ids, N, 0, 0, e)) return -1;
    text_forward(m, &ws->txt, out, tr);
    return 0;
}

int clip_encode_image(const ClipModel *m, const float *pixels, int B, float *out, const ClipTrace *tr, Err *e) {
    ClipWorkspace ws = {0};
    int rc = clip_encode_image_ws(m, &ws, pixels, B, out, tr, e);
    tower_acts_free(&ws.img);
    return rc;
}

int clip_encode_text(const ClipModel *m, const int32_t *ids, int N, float *out, const ClipTrace *tr, Err *e) {
    ClipWorkspace ws = {0};
    int rc = clip_encode_text_ws(m, &ws, ids, N, out, tr, e);
    tower_acts_free(&ws.txt);
    return rc;
}

int clip_encode_text_hidden(const ClipModel *m, const int32_t *ids, int N, int all_positions, float *out, Err *e) {
    return clip_encode_text_hidden_context(m, ids, N, all_positions, NULL, 0, out, e);
}

int clip_encode_text_hidden_context(const ClipModel *m, const int32_t *ids, int N, int all_positions, const float *ctx,
                                    int n_ctx, float *out, Err *e) {
    if (!m->cfg.has_text) return err_set(e, "this model has no text tower");
    if (N <= 0) return 0;
    TowerActs a = {0};
    int rc = text_acts_reuse(&a, m, ids, N, 0, all_positions, e);
    if (rc == 0) {
        a.ctx = ctx, a.n_ctx = ctx ? n_ctx : 0;
        text_forward(m, &a, NULL, NULL);
        clip_text_hidden_forward(m, &a, out);
    }
    tower_acts_free(&a);
    return rc;
}

int clip_encode_image_tokens(const ClipModel *m, const float *pixels, int B, int layer, float *out, Err *e) {
    if (!m->cfg.has_vision) return err_set(e, "this model has no image tower");
    if (layer < 1 || layer > m->cfg.v_layers)
        return err_set(e, "image tokens of layer %d: the vision tower has layers 1..%d", layer, m->cfg.v_layers);
    if (B <= 0) return 0;
    TowerActs a = {0};
    image_acts_reuse(&a, m, B, 0, 0, 0);
    a.stop_layer = layer;
    image_forward(m, &a, pixels, NULL, NULL);
    memcpy(out, a.x, sizeof(float) * (size_t)a.T * a.W);
    tower_acts_free(&a);
    return 0;
}

int clip_encode_text_context(const ClipModel *m, const int32_t *ids, int N, const float *ctx, int n_ctx, float *out, Err *e) {
    if (!m->cfg.has_text) return err_set(e, "this model has no text tower");
    if (N <= 0) return 0;
    TowerActs a = {0};
    int rc = text_acts_reuse(&a, m, ids, N, 0, 0, e);
    if (rc == 0) {
        a.ctx = ctx, a.n_ctx = n_ctx;
        text_forward(m, &a, out, NULL);
    }
    tower_acts_free(&a);
    return rc;
}

void clip_logits(const ClipModel *m, const float *img, int B, const float *txt, int N, float *logits) {
    const int E = m->cfg.embed_dim;
    float *a = xalloc_floats((size_t)B * E), *b = xalloc_floats((size_t)N * E);
    l2norm_forward(a, NULL, img, B, E);
    l2norm_forward(b, NULL, txt, N, E);
    sgemm(false, true, B, N, E, expf(m->logit_scale[0]), a, E, b, E, 0.0f, logits, N);
    free(a);
    free(b);
}
