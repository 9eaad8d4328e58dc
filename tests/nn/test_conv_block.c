/* The convolutional residual block against its ops by finite differences: the pre-activation
 * order with GroupNorm, SiLU and a time embedding (Stable Diffusion), the post-activation order
 * with BatchNorm (training and eval), a stride and a projected skip (ResNet); a frozen
 * backward gives the same input gradient. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "core/gradcheck.h"
#include "nn/conv_block.h"
#include "test.h"

typedef struct {
    ConvBlockConfig c;
    ConvBlockParams p, g;
    NnTable t, tg;
    float *arena, *garena;
    long n;
    int B, H, W, training;
    float *x, *temb, *R;
    long nx, nout;
} CB;

static void cb_init(CB *k, ConvBlockConfig c, int training) {
    memset(k, 0, sizeof *k);
    k->c = c, k->B = 2, k->H = 6, k->W = 5, k->training = training;
    conv_block_table(&k->t, &k->p, &c, "b");
    k->arena = nn_arena_layout(&k->t, 0, &k->n);
    conv_block_table(&k->tg, &k->g, &c, "b");
    k->garena = nn_arena_layout(&k->tg, 0, &k->n);
    Rng r;
    rng_seed(&r, 21);
    rng_fill_normal(&r, k->arena, k->n, 0, 0.4f);
    for (int i = 0; i < k->t.n; i++) /* running variances must stay positive */
        if (k->t.p[i].buffer && strstr(k->t.p[i].key[0][0], "running_var"))
            for (long j = 0; j < k->t.p[i].count; j++) (*k->t.p[i].slot)[j] = 0.5f + fabsf((*k->t.p[i].slot)[j]);
    k->nx = (long)k->B * c.cin * k->H * k->W;
    k->x = xalloc_floats((size_t)k->nx);
    rng_fill_normal(&r, k->x, k->nx, 0, 1);
    if (c.temb) {
        k->temb = xalloc_floats((size_t)k->B * c.temb);
        rng_fill_normal(&r, k->temb, (long)k->B * c.temb, 0, 1);
    }
    const int OH = (k->H + 2 - 3) / c.stride + 1, OW = (k->W + 2 - 3) / c.stride + 1;
    k->nout = (long)k->B * c.cout * OH * OW;
    k->R = xalloc_floats((size_t)k->nout);
    rng_fill_normal(&r, k->R, k->nout, 0, 1);
}

static void cb_free(CB *k) {
    free(k->arena), free(k->garena), free(k->x), free(k->temb), free(k->R);
    nn_table_free(&k->t), nn_table_free(&k->tg);
}

/* BatchNorm in training updates its running statistics: each forward here starts from a copy. */
static double cb_loss(CB *k, float *dx, float *dtemb, int frozen) {
    float *save = xalloc_floats((size_t)k->n);
    memcpy(save, k->arena, sizeof(float) * (size_t)k->n);
    ConvBlockActs a;
    conv_block_acts_alloc(&a, &k->c, k->B, k->H, k->W);
    float *out = xalloc_floats((size_t)k->nout);
    conv_block_forward(&k->c, &k->p, &a, k->x, k->temb, out, k->training);
    double s = 0;
    for (long i = 0; i < k->nout; i++) s += (double)out[i] * k->R[i];
    if (dx) conv_block_backward(&k->c, &k->p, frozen ? NULL : &k->g, &a, k->temb, k->R, dx, dtemb);
    memcpy(k->arena, save, sizeof(float) * (size_t)k->n);
    free(save), free(out);
    conv_block_acts_free(&a);
    return s;
}

static double cb_loss_ctx(void *k) { return cb_loss(k, NULL, NULL, 0); }

static void fd(CB *k, float *v, const float *gv, long n, const char *what) {
    const FdProbe p = {cb_loss_ctx, k, 10, 3e-3f, 3e-3, 2e-2, 8};
    fd_check_coords(&p, v, gv, n, what);
}

static void check_block(ConvBlockConfig c, int training, const char *name) {
    CB k;
    cb_init(&k, c, training);
    float *dx = xcalloc((size_t)k.nx, sizeof(float)), *dt = c.temb ? xcalloc((size_t)k.B * c.temb, sizeof(float)) : NULL;
    memset(k.garena, 0, sizeof(float) * (size_t)k.n);
    cb_loss(&k, dx, dt, 0);
    fd(&k, k.x, dx, k.nx, name);
    if (dt) fd(&k, k.temb, dt, (long)k.B * c.temb, name);
    for (int i = 0; i < k.t.n; i++) {
        if (k.t.p[i].buffer) continue;
        char what[160];
        snprintf(what, sizeof what, "%s %s", name, k.t.p[i].key[0][0]);
        fd(&k, *k.t.p[i].slot, *k.tg.p[i].slot, k.t.p[i].count, what);
    }
    float *dx2 = xcalloc((size_t)k.nx, sizeof(float));
    cb_loss(&k, dx2, NULL, 1);
    CHECK_CLOSE(dx2, dx, k.nx, 1e-6, 1e-6);
    free(dx), free(dx2), free(dt);
    cb_free(&k);
}

TEST(conv_block_pre_activation_groupnorm_temb_grad) {
    ConvBlockConfig c = {.cin = 4, .cout = 6, .stride = 1, .norm = CONV_NORM_GROUP, .groups = 2, .eps = 1e-5f,
                         .act = CONV_SILU, .temb = 5};
    check_block(c, 0, "pre-act");
}

/* SiLU here: finite differences across ReLU's kink (an output within eps of 0) would test the
 * difference quotient, not the backward; ReLU's own gradient is checked in test_ops_more.c. */
TEST(conv_block_post_activation_batchnorm_stride_grad) {
    ConvBlockConfig c = {.cin = 3, .cout = 4, .stride = 2, .norm = CONV_NORM_BATCH, .eps = 1e-5f, .momentum = 0.1f,
                         .act = CONV_SILU, .post_act = 1};
    check_block(c, 1, "post-act (train)");
    check_block(c, 0, "post-act (eval)");
    ConvBlockConfig same = {.cin = 4, .cout = 4, .stride = 1, .norm = CONV_NORM_BATCH, .eps = 1e-5f, .momentum = 0.1f,
                            .act = CONV_SILU, .post_act = 1};
    CHECK(!conv_block_has_skip(&same));
    check_block(same, 1, "post-act identity skip");
}
