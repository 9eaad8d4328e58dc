/* The escape token (our reconstruction): its alignment loss's gradient against finite
 * differences through a random tiny text tower (dense and pooled, k = 1 and 2), the position
 * alignment of two prompts, a short training run lowering the erase loss, and the inputs it must
 * refuse. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/gradcheck.h"
#include "forget/diffusion/escape.h"
#include "models/clip_encode.h"
#include "test.h"

typedef struct {
    const ClipModel *m;
    const int32_t *ids;
    const float *tgt;
    const int *eot;
    int n, k;
    EscapeLoss kind;
    float *z;
} EscFd;

static double esc_loss(void *ctx) {
    EscFd *f = ctx;
    Err e = {0};
    return escape_objective(f->m, f->ids, f->tgt, f->eot, f->n, f->k, f->kind, 1.0, f->z, NULL, &e);
}

static void tiny_clip(ClipModel *m) {
    ClipConfig c;
    CHECK(clip_config_named(&c, "tiny") == 0);
    clip_init_random(m, &c, 11);
}

TEST(escape_objective_finite_differences) {
    ClipModel m;
    tiny_clip(&m);
    Tokenizer t = {0};
    Err e = {0};
    CHECK(tokenizer_init(&t, &e) == 0);
    const int L = m.cfg.context, W = m.cfg.t_width;
    const char *subj[] = {"bag", "ankle boot"};
    for (int k = 1; k <= 2; k++)
        for (int kind = 0; kind < 2; kind++) {
            int32_t ids[2 * 80];
            CHECK(L <= 80);
            CHECK(clip_context_ids(&m, &t, "a photo of a {}.", subj, 2, k, ids, &e) == 0);
            Rng r;
            rng_seed(&r, 3 + k);
            float *tgt = randn(&r, 2L * L * W, 1.0f), *z = randn(&r, (long)k * W, 0.5f);
            float *g = xcalloc((size_t)k * W, sizeof(float));
            const int eot[2] = {5, 6};
            EscFd f = {&m, ids, tgt, eot, 2, k, (EscapeLoss)kind, z};
            const double l = escape_objective(&m, ids, tgt, eot, 2, k, (EscapeLoss)kind, 1.0, z, g, &e);
            CHECK(isfinite(l) && l > 0);
            const FdProbe p = {esc_loss, &f, 24, 1e-2f, 1e-4, 2e-2, 5};
            fd_check_coords(&p, z, g, (long)k * W, kind ? "pooled loss" : "dense loss");
            free(tgt), free(z), free(g);
        }
    tokenizer_free(&t);
    clip_free(&m);
}

TEST(escape_align_positions) {
    /* a = [S 1 2 3 E 0 0], b = [S 1 9 9 3 E 0]: prefix 2, the word 2 <-> 9 9, then shifted by one */
    const int32_t a[7] = {100, 1, 2, 3, 101, 0, 0}, b[7] = {100, 1, 9, 9, 3, 101, 0};
    int s[7];
    escape_align(a, 5, b, 6, 7, s);
    const int want[7] = {0, 1, 3, 4, 5, 6, 6};
    for (int i = 0; i < 7; i++) CHECK_INT(s[i], want[i]);
    escape_align(b, 6, a, 5, 7, s); /* and back: both 9s onto the 2 */
    const int back[7] = {0, 1, 2, 2, 3, 4, 5};
    for (int i = 0; i < 7; i++) CHECK_INT(s[i], back[i]);
}

TEST(escape_train_lowers_the_loss_and_refuses_bad_input) {
    ClipModel m;
    tiny_clip(&m);
    Tokenizer t = {0};
    Err e = {0};
    CHECK(tokenizer_init(&t, &e) == 0);
    const char *keep[] = {"coat", "sandal"};
    const char *tpl[] = {"a photo of a {}.", "a {} on a table."};
    EscapeOpts o;
    escape_defaults(&o);
    o.k = 2, o.templates = tpl, o.n_templates = 2, o.keep_batch = 0, o.quiet = 1, o.seed = 1;
    float *z = xalloc_floats((size_t)2 * m.cfg.t_width);
    EscapeResult r0, r1;
    for (int tcs = 0; tcs < 2; tcs++) {
        o.tcs = (EscapeTcs)tcs;
        o.steps = 0; /* the starting point's losses */
        CHECK(escape_train(&m, &t, "bag", keep, 2, &o, z, &r0, &e) == 0);
        o.steps = 12;
        CHECK_MSG(escape_train(&m, &t, "bag", keep, 2, &o, z, &r1, &e) == 0, "%s", e.msg);
        CHECK_MSG(r1.loss < 0.9 * r0.loss, "tcs %d: loss %g -> %g", tcs, r0.loss, r1.loss);
        CHECK_INT(r1.trainable, 2L * m.cfg.t_width);
        if (tcs == TCS_PROJ) CHECK(r1.subspace_rank >= 1 && r1.subspace_rank <= 2);
    }
    o.steps = 1;
    CHECK(escape_train(&m, &t, "  ", keep, 2, &o, z, &r1, &e) != 0);
    CHECK_MSG(strstr(e.msg, "tokenises to nothing") != NULL, "%s", e.msg);
    const char *bad[] = {"coat", "Bag "};
    CHECK(escape_train(&m, &t, "bag", bad, 2, &o, z, &r1, &e) != 0);
    CHECK_MSG(strstr(e.msg, "preserve list contains the concept") != NULL, "%s", e.msg);
    const char *notpl[] = {"a photo of a thing."};
    o.templates = notpl, o.n_templates = 1;
    CHECK(escape_train(&m, &t, "bag", keep, 2, &o, z, &r1, &e) != 0);
    CHECK_MSG(strstr(e.msg, "has no {}") != NULL, "%s", e.msg);
    free(z);
    tokenizer_free(&t);
    clip_free(&m);
}
