/* The towers' new interfaces against the paths the reference tests already pin down: text hidden
 * states at EOT give the features, image tokens of the last layer give the image features, a
 * workspace gives the same numbers at any batch size; and finite differences through the hidden
 * states' backward, the patch tokens' backward and the VPT-deep prompts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "io/tokenizer.h"
#include "core/gradcheck.h"
#include "models/clip_train.h"
#include "test.h"

static void small_model(ClipModel *m) {
    ClipConfig c;
    clip_config_named(&c, "fmnist-xs"); /* 28px, patch 7: 16 patches, width 32, one layer each */
    c.v_layers = 2, c.t_layers = 2;
    clip_init_random(m, &c, 11);
}

static int32_t *some_ids(const ClipModel *m, int N) {
    const int ctx = m->cfg.context;
    int32_t *ids = xcalloc((size_t)N * ctx, sizeof(int32_t));
    for (int n = 0; n < N; n++) {
        int32_t *row = ids + (size_t)n * ctx;
        row[0] = CLIP_SOT;
        const int len = 3 + 2 * n;
        for (int k = 1; k < len; k++) row[k] = 300 + 17 * k + 5 * n;
        row[len] = CLIP_EOT;
    }
    return ids;
}

TEST(clip_text_hidden_states_agree_with_the_features) {
    ClipModel m;
    small_model(&m);
    const int N = 3, ctx = m.cfg.context, W = m.cfg.t_width, E = m.cfg.embed_dim;
    int32_t *ids = some_ids(&m, N);
    float *feat = xalloc_floats((size_t)N * E), *hid = xalloc_floats((size_t)N * ctx * W);
    float *all = xalloc_floats((size_t)N * ctx * W), *proj = xalloc_floats((size_t)E);
    Err e = {{0}};
    CHECK_INT(clip_encode_text(&m, ids, N, feat, NULL, &e), 0);
    CHECK_INT(clip_encode_text_hidden(&m, ids, N, 0, hid, &e), 0);
    CHECK_INT(clip_encode_text_hidden(&m, ids, N, 1, all, &e), 0);
    for (int n = 0; n < N; n++) {
        const int eot = 3 + 2 * n;
        linear_forward(proj, hid + ((size_t)n * ctx + eot) * W, m.t_proj, NULL, 1, W, E);
        CHECK_CLOSE(proj, feat + (size_t)n * E, E, 1e-5, 1e-5);
        /* causal: positions up to EOT do not see the padding; after it, zero vs computed */
        CHECK_CLOSE(all + (size_t)n * ctx * W, hid + (size_t)n * ctx * W, (eot + 1) * W, 1e-5, 1e-5);
        double after = 0, after_all = 0;
        for (int k = eot + 1; k < ctx; k++)
            for (int j = 0; j < W; j++)
                after += fabs(hid[((size_t)n * ctx + k) * W + j]), after_all += fabs(all[((size_t)n * ctx + k) * W + j]);
        CHECK_NEAR(after, 0, 0);
        CHECK(after_all > 1);
    }
    free(ids), free(feat), free(hid), free(all), free(proj);
    clip_free(&m);
}

TEST(clip_image_tokens_and_workspace_agree_with_the_features) {
    ClipModel m;
    small_model(&m);
    const int B = 5, R = m.cfg.image_res, W = m.cfg.v_width, E = m.cfg.embed_dim, S = 17;
    float *px = xalloc_floats((size_t)B * 3 * R * R), *feat = xalloc_floats((size_t)B * E);
    Rng r;
    rng_seed(&r, 3);
    rng_fill_normal(&r, px, (long)B * 3 * R * R, 0, 1);
    Err e = {{0}};
    CHECK_INT(clip_encode_image(&m, px, B, feat, NULL, &e), 0);
    float *tok = xalloc_floats((size_t)B * S * W), *ln = xalloc_floats((size_t)W), *f = xalloc_floats((size_t)E);
    CHECK_INT(clip_encode_image_tokens(&m, px, B, m.cfg.v_layers, tok, &e), 0);
    for (int b = 0; b < B; b++) { /* ln_post of the class token, projected */
        layernorm_forward(ln, NULL, NULL, tok + (size_t)b * S * W, m.ln_post_w, m.ln_post_b, 1, W, CLIP_LN_EPS);
        linear_forward(f, ln, m.v_proj, NULL, 1, W, E);
        CHECK_CLOSE(f, feat + (size_t)b * E, E, 1e-5, 1e-5);
    }
    CHECK(clip_encode_image_tokens(&m, px, B, 0, tok, &e) != 0);
    /* the workspace: the same numbers, growing then shrinking batches, images and texts */
    ClipWorkspace *ws = clip_workspace_new();
    float *wf = xalloc_floats((size_t)B * E);
    const int sizes[3] = {2, 5, 3};
    for (int i = 0; i < 3; i++) {
        CHECK_INT(clip_encode_image_ws(&m, ws, px, sizes[i], wf, NULL, &e), 0);
        CHECK_CLOSE(wf, feat, sizes[i] * E, 1e-5, 1e-6);
    }
    int32_t *ids = some_ids(&m, 3);
    float *tf = xalloc_floats((size_t)3 * E), *tw = xalloc_floats((size_t)3 * E);
    CHECK_INT(clip_encode_text(&m, ids, 3, tf, NULL, &e), 0);
    for (int n = 1; n <= 3; n++) {
        CHECK_INT(clip_encode_text_ws(&m, ws, ids + (size_t)(3 - n) * m.cfg.context, n, tw, NULL, &e), 0);
        CHECK_CLOSE(tw, tf + (size_t)(3 - n) * E, n * E, 1e-5, 1e-6);
    }
    clip_workspace_free(ws);
    free(px), free(feat), free(tok), free(ln), free(f), free(wf), free(ids), free(tf), free(tw);
    clip_free(&m);
}

/* ------------------------------------------------------ finite differences */

typedef struct {
    ClipModel *m;
    int kind; /* 0 text hidden, 1 image tokens, 2 image features with VPT prompts */
    const int32_t *ids;
    const float *px;
    float *vpt;
    int N, layer;
    const float *R;
    long nout;
} Probe;

static double probe_loss(Probe *p, ClipModel *g) {
    TowerActs a = {0};
    Err e = {{0}};
    float *out = xalloc_floats((size_t)p->nout);
    if (p->kind == 0) {
        text_acts_reuse(&a, p->m, p->ids, p->N, g != NULL, 1, &e);
        text_forward(p->m, &a, NULL, NULL);
        clip_text_hidden_forward(p->m, &a, out);
    } else {
        image_acts_reuse(&a, p->m, p->N, p->kind == 2 ? 2 : 0, p->kind == 2 ? 2 : 0, g != NULL);
        if (p->kind == 1) a.stop_layer = p->layer;
        if (p->kind == 2) a.vpt = p->vpt;
        image_forward(p->m, &a, p->px, p->kind == 2 ? out : NULL, NULL);
        if (p->kind == 1) memcpy(out, a.x, sizeof(float) * (size_t)p->nout);
    }
    double s = 0;
    for (long i = 0; i < p->nout; i++) s += (double)out[i] * p->R[i];
    if (g) {
        if (p->kind == 0) text_backward_hidden(p->m, g, &a, p->R);
        else if (p->kind == 1) image_backward_tokens(p->m, g, &a, p->R, NULL);
        else {
            a.dvpt = g->params; /* the caller's prompt gradient, lent through an unused field */
            image_backward(p->m, NULL, &a, p->R, NULL);
        }
    }
    free(out);
    tower_acts_free(&a);
    return s;
}

static double probe_loss_ctx(void *p) { return probe_loss(p, NULL); }

/* Central differences of the loss in up to 12 coordinates of x against the analytic gradient gx. */
static void fd(Probe *p, float *x, const float *gx, long n, const char *what) {
    const FdProbe f = {probe_loss_ctx, p, 12, 4e-3f, 2e-3, 2e-2, 5};
    fd_check_coords(&f, x, gx, n, what);
}

TEST(clip_tower_hooks_grad) {
    ClipModel m, g;
    small_model(&m);
    const int ctx = m.cfg.context, W = m.cfg.t_width, R = m.cfg.image_res;
    Rng r;
    rng_seed(&r, 9);
    /* text hidden states: the gradient of the position table and of a block weight */
    int32_t *ids = some_ids(&m, 2);
    float *Rt = xalloc_floats((size_t)2 * ctx * W);
    rng_fill_normal(&r, Rt, (long)2 * ctx * W, 0, 1);
    Probe p = {&m, 0, ids, NULL, NULL, 2, 0, Rt, (long)2 * ctx * W};
    clip_init_zeros(&g, &m.cfg);
    probe_loss(&p, &g);
    fd(&p, m.t_pos, g.t_pos, (long)ctx * W, "text hidden: t_pos");
    fd(&p, m.t_blocks[0].fc_w, g.t_blocks[0].fc_w, 4L * W * W, "text hidden: block 0 fc");
    clip_free(&g);
    /* patch tokens after layer 1 of 2 */
    const int B = 2, S = 17, VW = m.cfg.v_width;
    float *px = xalloc_floats((size_t)B * 3 * R * R), *Ri = xalloc_floats((size_t)B * (S + 2) * VW);
    rng_fill_normal(&r, px, (long)B * 3 * R * R, 0, 1);
    rng_fill_normal(&r, Ri, (long)B * (S + 2) * VW, 0, 1);
    Probe q = {&m, 1, NULL, px, NULL, B, 1, Ri, (long)B * S * VW};
    clip_init_zeros(&g, &m.cfg);
    probe_loss(&q, &g);
    fd(&q, m.v_blocks[0].qkv_w, g.v_blocks[0].qkv_w, 3L * VW * VW, "image tokens: block 0 qkv");
    fd(&q, m.conv1_w, g.conv1_w, (long)VW * 3 * 49, "image tokens: conv1");
    double later = 0;
    for (long k = 0; k < 4L * VW * VW; k++) later += fabs(g.v_blocks[1].fc_w[k]);
    CHECK_NEAR(later, 0, 0); /* block 1 did not run */
    clip_free(&g);
    /* VPT-deep: 2 prompts in both layers, gradient of the features to the prompts */
    float *vpt = xalloc_floats((size_t)2 * 2 * VW), *Rf = xalloc_floats((size_t)B * m.cfg.embed_dim);
    rng_fill_normal(&r, vpt, 4L * VW, 0, 1);
    rng_fill_normal(&r, Rf, (long)B * m.cfg.embed_dim, 0, 1);
    Probe v = {&m, 2, NULL, px, vpt, B, 0, Rf, (long)B * m.cfg.embed_dim};
    ClipModel gv = {0};
    gv.params = xcalloc((size_t)4 * VW, sizeof(float));
    probe_loss(&v, &gv);
    fd(&v, vpt, gv.params, 4L * VW, "vpt prompts");
    double gl1 = 0;
    for (long k = 2L * VW; k < 4L * VW; k++) gl1 += fabs(gv.params[k]);
    CHECK(gl1 > 0); /* the second layer's prompts matter too */
    free(gv.params);
    free(ids), free(Rt), free(px), free(Ri), free(vpt), free(Rf);
    clip_free(&m);
}
