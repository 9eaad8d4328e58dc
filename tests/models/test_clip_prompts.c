/* VPT-deep with InstaPG through a frozen image tower: an untrained generator (zero output
 * projections) gives exactly the plain VPT features; finite differences of the features in every
 * trainable tensor (the tokens of each layer, including layer 0's whose effect on the patch rows
 * InstaPG reads flows back through the generator's context), and a batch gives each image what
 * it gives alone. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/gradcheck.h"
#include "core/rng.h"
#include "models/clip_prompts.h"
#include "test.h"

typedef struct {
    const ClipModel *m;
    ClipImagePrompts *p;
    const float *px, *R;
    int B;
} PgProbe;

static double pg_loss(PgProbe *q, ClipImagePrompts *g) {
    const int E = q->m->cfg.embed_dim;
    TowerActs a = {0};
    ClipPromptRun r = {0};
    float *out = xalloc_floats((size_t)q->B * E);
    image_acts_reuse(&a, q->m, q->B, q->p->tokens, q->p->layers, g != NULL);
    clip_prompts_bind(&r, q->p, g, &a, g != NULL);
    image_forward(q->m, &a, q->px, out, NULL);
    double s = 0;
    for (long i = 0; i < (long)q->B * E; i++) s += (double)out[i] * q->R[i];
    if (g) image_backward(q->m, NULL, &a, q->R, NULL);
    clip_prompt_run_free(&r);
    tower_acts_free(&a);
    free(out);
    return s;
}

static double pg_loss_ctx(void *q) { return pg_loss(q, NULL); }

static void model3(ClipModel *m) {
    ClipConfig c;
    clip_config_named(&c, "fmnist-xs"); /* 28px, patch 7: 16 patches, width 32 */
    c.v_layers = 3;
    clip_init_random(m, &c, 21);
}

TEST(clip_prompts_untrained_instapg_is_plain_vpt) {
    ClipModel m;
    model3(&m);
    ClipImagePrompts with, without;
    clip_prompts_alloc(&with, &m.cfg, 2, 3, 1);
    clip_prompts_alloc(&without, &m.cfg, 2, 3, -1);
    clip_prompts_init_random(&with, 4);
    memcpy(without.vpt, with.vpt, sizeof(float) * (size_t)3 * 2 * m.cfg.v_width);
    Rng r;
    rng_seed(&r, 5);
    const int B = 3, R = m.cfg.image_res, E = m.cfg.embed_dim;
    float *px = randn(&r, (long)B * 3 * R * R, 1), *f1 = xalloc_floats((size_t)B * E), *f2 = xalloc_floats((size_t)B * E);
    float *f3 = xalloc_floats((size_t)B * E);
    Err e = {{0}};
    CHECK(clip_encode_image_prompted(&m, &with, px, B, f1, &e) == 0);
    CHECK(clip_encode_image_prompted(&m, &without, px, B, f2, &e) == 0);
    double d = 0, moved = 0;
    for (int i = 0; i < B * E; i++) d = fmax(d, fabs(f1[i] - f2[i]));
    CHECK_NEAR(d, 0, 1e-5);
    /* attached to the model, clip_encode_image runs with them; prompts move the features */
    CHECK(clip_encode_image(&m, px, B, f3, NULL, &e) == 0);
    for (int i = 0; i < B * E; i++) moved = fmax(moved, fabs(f3[i] - f2[i]));
    CHECK(moved > 1e-3);
    m.image_prompts = &without;
    CHECK(clip_encode_image(&m, px, B, f3, NULL, &e) == 0);
    d = 0;
    for (int i = 0; i < B * E; i++) d = fmax(d, fabs(f3[i] - f2[i]));
    CHECK_NEAR(d, 0, 0);
    m.image_prompts = NULL;
    /* a tower of another shape is refused by name */
    ClipModel other;
    ClipConfig c2 = m.cfg;
    c2.v_width = 64, c2.v_heads = 2;
    clip_init_random(&other, &c2, 3);
    CHECK(clip_encode_image_prompted(&other, &with, px, B, f3, &e) != 0);
    CHECK(strstr(e.msg, "another image tower") != NULL);
    clip_free(&other);
    free(px), free(f1), free(f2), free(f3);
    clip_prompts_free(&with), clip_prompts_free(&without);
    clip_free(&m);
}

TEST(clip_prompts_instapg_grad) {
    ClipModel m;
    model3(&m);
    ClipImagePrompts p, g;
    clip_prompts_alloc(&p, &m.cfg, 2, 3, 1);
    clip_prompts_alloc(&g, &m.cfg, 2, 3, 1);
    clip_prompts_init_random(&p, 8);
    Rng r;
    rng_seed(&r, 6);
    const int W = m.cfg.v_width;
    /* trained-looking output projections, so every path carries gradient */
    rng_fill_normal(&r, p.pg.out_w, (long)W * W, 0, 0.1f);
    rng_fill_normal(&r, p.pg.xout_w, (long)W * W, 0, 0.1f);
    rng_fill_normal(&r, p.pg.proj_w, (long)W * W, 0, 0.1f);
    rng_fill_normal(&r, p.vpt, 3L * 2 * W, 0, 1);
    const int B = 2, R = m.cfg.image_res, E = m.cfg.embed_dim;
    float *px = randn(&r, (long)B * 3 * R * R, 1), *Rf = randn(&r, (long)B * E, 1);
    PgProbe q = {&m, &p, px, Rf, B};
    pg_loss(&q, &g);
    const FdProbe f = {pg_loss_ctx, &q, 12, 4e-3f, 2e-3, 2e-2, 5};
    fd_check_coords(&f, p.vpt, g.vpt, 2L * W, "vpt layer 0 (through the generator's context too)");
    fd_check_coords(&f, p.vpt + 2L * W, g.vpt + 2L * W, 2L * W, "vpt layer 1 (the generator's queries)");
    fd_check_coords(&f, p.vpt + 4L * W, g.vpt + 4L * W, 2L * W, "vpt layer 2");
    fd_check_coords(&f, p.pg.xkv_w, g.pg.xkv_w, 2L * W * W, "instapg cross kv");
    fd_check_coords(&f, p.pg.xq_w, g.pg.xq_w, (long)W * W, "instapg cross q");
    fd_check_coords(&f, p.pg.qkv_w, g.pg.qkv_w, 3L * W * W, "instapg self qkv");
    fd_check_coords(&f, p.pg.fc_w, g.pg.fc_w, (long)W * W, "instapg mlp fc");
    fd_check_coords(&f, p.pg_ctx_w, g.pg_ctx_w, W, "instapg context LN");
    /* per image: a batch of two gives what each gives alone */
    float *both = xalloc_floats((size_t)B * E), *one = xalloc_floats((size_t)E);
    Err e = {{0}};
    CHECK(clip_encode_image_prompted(&m, &p, px, B, both, &e) == 0);
    CHECK(clip_encode_image_prompted(&m, &p, px + (size_t)3 * R * R, 1, one, &e) == 0);
    double d = 0;
    for (int i = 0; i < E; i++) d = fmax(d, fabs(one[i] - both[E + i]));
    CHECK_NEAR(d, 0, 1e-4);
    free(both), free(one), free(px), free(Rf);
    clip_prompts_free(&p), clip_prompts_free(&g);
    clip_free(&m);
}
