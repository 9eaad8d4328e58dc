/* Unlearning the MLLM: the losses' gradients (ga, gd, ga+kl's KL, npo's weighting, idk) match finite
 * differences through the projector and the LM; on the tiny world's model each method moves the
 * forget people's answer likelihood the way its equation says; adapters touch only the parts asked
 * for; mmunlearner's mask keeps part of the weights; the errors a user meets. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gradcheck.h"
#include "forget/llm/unlearn.h"
#include "forget/llm/unlearn_data.h"
#include "serve/fixture.h"
#include "test.h"

typedef struct {
    Mllm *m, *g;
    const Mllm *ref;
    UlOpts o;
    const MllmExample *xf[2], *xr[2];
    const float *ff[2], *fr[2];
} Fd;

static double fd_loss(void *v) {
    Fd *f = v;
    float loss = 0;
    Err e = {0};
    memset(f->g->params, 0, sizeof(float) * (size_t)f->g->n_params);
    ul_batch_loss(f->m, f->g, f->ref, &f->o, f->xf, f->ff, 2, f->xr, f->fr, 2, &loss, &e);
    return loss;
}

static MllmExample ex(const int32_t *ids, const int32_t *tgt, int n, int img) {
    MllmExample x = {0};
    x.ids = (int32_t *)ids, x.tgt = (int32_t *)tgt, x.n = n, x.has_image = img;
    return x;
}

TEST(unlearn_losses_match_finite_differences) {
    Err e = {0};
    MllmConfig c = tiny_mllm_config();
    Mllm m, g, ref;
    mllm_init_random(&m, &c, 9);
    for (long i = 0; i < m.n_params; i++) m.params[i] *= 6.0f;
    for (int k = 0; k < 16; k++) m.lm.norm_w[k] = 1.0f;
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 16; k++) m.lm.blocks[l].ln1_w[k] = m.lm.blocks[l].ln2_w[k] = 1.0f;
    mllm_alloc_like(&ref, &m); /* a reference unlike m, so that npo's weights are not all 1/2 */
    Rng r;
    rng_seed(&r, 4);
    for (long i = 0; i < m.n_params; i++) ref.params[i] = m.params[i] * (1.0f + 0.3f * (float)rng_normal(&r));
    mllm_set_trainable(&m, 0, 1, 1);
    mllm_alloc_like(&g, &m);
    static const int32_t s0[5] = {1, 7, 5, 9, 11}, t0[5] = {7, -1, 9, 11, 2};
    static const int32_t s1[4] = {1, 12, 13, 14}, t1[4] = {-1, 13, 14, 2};
    static const int32_t s2[5] = {1, 20, 5, 21, 22}, t2[5] = {-1, -1, 21, 22, 2};
    static const int32_t s3[4] = {1, 25, 26, 27}, t3[4] = {25, 26, 27, 2};
    const MllmExample x0 = ex(s0, t0, 5, 1), x1 = ex(s1, t1, 4, 0), x2 = ex(s2, t2, 5, 1), x3 = ex(s3, t3, 4, 0);
    float feats[2][4 * 16];
    rng_fill_normal(&r, feats[0], 64, 0, 1), rng_fill_normal(&r, feats[1], 64, 0, 1);
    Fd f = {.m = &m, .g = &g, .ref = &ref, .xf = {&x0, &x1}, .xr = {&x2, &x3}, .ff = {feats[0], NULL}, .fr = {feats[1], NULL}};
    static const UlMethod methods[5] = {UL_GA, UL_GD, UL_GA_KL, UL_NPO, UL_IDK};
    for (int k = 0; k < 5; k++) {
        ul_defaults(&f.o);
        f.o.method = methods[k], f.o.npo_beta = 0.4f, f.o.kl_weight = 0.7f;
        float loss;
        memset(g.params, 0, sizeof(float) * (size_t)g.n_params);
        CHECK_MSG(ul_batch_loss(&m, &g, &ref, &f.o, f.xf, f.ff, 2, f.xr, f.fr, 2, &loss, &e) == 0, "%s", e.msg);
        CHECK(isfinite(loss));
        float *an = xalloc_floats((size_t)g.n_params);
        memcpy(an, g.params, sizeof(float) * (size_t)g.n_params);
        const FdProbe probe = {fd_loss, &f, 48, 1e-2f, 2e-3, 3e-2, 11 + (uint64_t)k};
        char what[64];
        snprintf(what, sizeof what, "%s: projector", UL_METHOD_NAMES[methods[k]]);
        fd_check_coords(&probe, m.proj1_w, an + (m.proj1_w - m.params), 16L * 16, what);
        snprintf(what, sizeof what, "%s: LM attention", UL_METHOD_NAMES[methods[k]]);
        fd_check_coords(&probe, m.lm.blocks[1].qkv_w, an + (m.lm.blocks[1].qkv_w - m.params), 48L * 16, what);
        snprintf(what, sizeof what, "%s: LM head", UL_METHOD_NAMES[methods[k]]);
        fd_check_coords(&probe, m.lm.head, an + (m.lm.head - m.params), 32L * 16, what);
        free(an);
    }
    /* npo and ga+kl refuse to run without their reference */
    f.o.method = UL_NPO;
    float loss;
    CHECK(ul_batch_loss(&m, &g, NULL, &f.o, f.xf, f.ff, 2, f.xr, f.fr, 2, &loss, &e) != 0);
    mllm_free(&g), mllm_free(&ref), mllm_free(&m);
}

/* Mean answer NLL of a pool under m (fixed image poses). */
static double pool_nll(const Mllm *m, const World *w, const UlPool *p) {
    const int N = mllm_image_tokens(&m->cfg), Wv = m->cfg.tower.v_width;
    float *feats = xalloc_floats((size_t)N * Wv);
    double sum = 0;
    Err e = {0};
    for (int i = 0; i < p->n; i++) {
        const MllmExample *x = &p->x[i];
        if (x->has_image) mllm_world_features(m, w, &x->image, 1, feats, &e);
        const int32_t *ids[1] = {x->ids}, *tg[1] = {x->tgt};
        const int n[1] = {x->n};
        const float *fs[1] = {x->has_image ? feats : NULL};
        MllmActs a = {0};
        float loss = 0;
        mllm_forward(m, &a, ids, tg, n, fs, 1, &loss, &e);
        sum += loss;
        mllm_acts_free(&a);
    }
    free(feats);
    return sum / p->n;
}

typedef struct {
    Mllm m;
    SpTokenizer *t;
    World *w;
} Tiny;

static void tiny_open(Tiny *t) {
    char path[512], tok[600];
    tiny_mllm(path, sizeof path);
    snprintf(tok, sizeof tok, "%s", path);
    strcpy(strrchr(tok, '/'), "/tokenizer.model");
    Err e = {0};
    WorldOpts wo;
    CHECK_MSG(world_opts_read(path, &wo, &e) == 0, "%s", e.msg);
    CHECK_MSG(mllm_load(&t->m, path, &e) == 0, "%s", e.msg);
    t->t = sp_load(tok, &e);
    t->w = world_build(&wo, &e);
    CHECK_MSG(t->t && t->w, "%s", e.msg);
}

static void tiny_close(Tiny *t) {
    world_free(t->w);
    sp_free(t->t);
    mllm_free(&t->m);
}

TEST(unlearn_methods_move_the_forget_answers) {
    Tiny T;
    tiny_open(&T);
    Err e = {0};
    const int np = world_n_people(T.w);
    uint8_t *fm = xcalloc((size_t)np, 1), *rm = xcalloc((size_t)np, 1);
    fm[0] = 1;
    for (int i = 1; i < np; i++) rm[i] = 1;
    UlPool fp, idk;
    CHECK(ul_pool_people(&fp, T.t, T.w, fm, UL_FORM_BOTH, 0, 0, &e) == 0);
    CHECK(ul_pool_people(&idk, T.t, T.w, fm, UL_FORM_BOTH, 1, 1, &e) == 0);
    CHECK_INT(fp.n, 8 + 7 + 14); /* 8 image and 7 text questions, 14 clozes */
    const double before = pool_nll(&T.m, T.w, &fp), before_idk = pool_nll(&T.m, T.w, &idk);
    Mllm ref;
    mllm_alloc_like(&ref, &T.m);
    memcpy(ref.params, T.m.params, sizeof(float) * (size_t)T.m.n_params);
    UlOpts o;
    ul_defaults(&o);
    o.forget = fm, o.retain = rm, o.lr = 3e-3, o.epochs = 2, o.batch = 4, o.quiet = 1, o.fisher_batches = 2;
    CHECK_MSG(ul_retain_tune(&ref, T.t, T.w, &o, 1, &e) == 0, "%s", e.msg);
    for (int k = 0; k < UL_N_METHODS; k++) {
        Mllm m;
        mllm_alloc_like(&m, &T.m);
        memcpy(m.params, T.m.params, sizeof(float) * (size_t)T.m.n_params);
        o.method = (UlMethod)k, o.reference = &ref, o.lora_rank = k == UL_MMUNLEARNER ? 0 : 4, o.lora_alpha = 8;
        UlStats st;
        CHECK_MSG(mllm_unlearn(&m, T.t, T.w, &o, &st, &e) == 0, "%s: %s", UL_METHOD_NAMES[k], e.msg);
        CHECK_INT(st.steps, 2L * (((k == UL_MMUNLEARNER ? 8 + 7 : fp.n) + 3) / 4));
        if (k == UL_IDK) {
            const double after = pool_nll(&m, T.w, &idk);
            CHECK_MSG(after < before_idk, "idk: refusal NLL %.3f -> %.3f", before_idk, after);
        } else {
            const double after = pool_nll(&m, T.w, &fp);
            CHECK_MSG(after > before, "%s: forget NLL %.3f -> %.3f", UL_METHOD_NAMES[k], before, after);
        }
        if (k == UL_MMUNLEARNER) CHECK_MSG(st.trainable > 0 && st.trainable < st.maskable, "%ld of %ld", st.trainable, st.maskable);
        else CHECK(st.trainable > 0);
        mllm_free(&m);
    }
    /* adapters on the projector alone leave the LM bit for bit, and the other way round */
    for (int parts = 1; parts <= 2; parts++) {
        Mllm m;
        mllm_alloc_like(&m, &T.m);
        memcpy(m.params, T.m.params, sizeof(float) * (size_t)T.m.n_params);
        o.method = UL_GA, o.parts = parts, o.lora_rank = 4, o.epochs = 1;
        UlStats st;
        CHECK_MSG(mllm_unlearn(&m, T.t, T.w, &o, &st, &e) == 0, "%s", e.msg);
        const long pw = (long)T.m.cfg.lm.width * T.m.cfg.tower.v_width;
        const int proj_same = memcmp(m.proj1_w, T.m.proj1_w, sizeof(float) * (size_t)pw) == 0;
        const int lm_same = memcmp(m.lm.blocks[0].qkv_w, T.m.lm.blocks[0].qkv_w, sizeof(float) * 16) == 0;
        CHECK_MSG(parts == UL_PART_PROJECTOR ? (!proj_same && lm_same) : (proj_same && !lm_same), "parts %d: projector %s, LM %s",
                  parts, proj_same ? "same" : "moved", lm_same ? "same" : "moved");
        mllm_free(&m);
    }
    ul_pool_free(&fp), ul_pool_free(&idk);
    mllm_free(&ref);
    free(fm), free(rm);
    tiny_close(&T);
}

TEST(unlearn_bad_input_is_named) {
    Tiny T;
    tiny_open(&T);
    Err e = {0};
    const int np = world_n_people(T.w);
    uint8_t *fm = xcalloc((size_t)np, 1), *rm = xcalloc((size_t)np, 1);
    CHECK(ul_people_parse(T.w, "Nobody Atall", fm, &e) != 0);
    CHECK_MSG(strstr(e.msg, "unknown person 'Nobody Atall'") != NULL, "%s", e.msg);
    CHECK(ul_people_parse(T.w, "99", fm, &e) != 0);
    CHECK_MSG(strstr(e.msg, "0..7") != NULL, "%s", e.msg);
    CHECK(ul_people_parse(T.w, world_person(T.w, 2)->name, fm, &e) == 0 && fm[2] == 1);
    CHECK(ul_people_parse(T.w, "1,2", rm, &e) == 0);
    CHECK(ul_check_people(T.w, fm, rm, &e) != 0);
    CHECK_MSG(strstr(e.msg, "both the forget and the retain set") != NULL, "%s", e.msg);
    int parts;
    CHECK(ul_parts_parse("tower+lm", &parts, &e) != 0);
    CHECK_MSG(strstr(e.msg, "frozen") != NULL, "%s", e.msg);
    CHECK(ul_parts_parse("lm+decoder", &parts, &e) != 0);
    CHECK_MSG(strstr(e.msg, "no part 'decoder'") != NULL, "%s", e.msg);
    CHECK(ul_parts_parse("projector+lm", &parts, &e) == 0 && parts == 3);
    UlOpts o;
    ul_defaults(&o);
    rm[2] = 0;
    o.forget = fm, o.retain = rm, o.lm_modules = "q,wq", o.quiet = 1;
    UlStats st;
    CHECK(mllm_unlearn(&T.m, T.t, T.w, &o, &st, &e) != 0);
    CHECK_MSG(strstr(e.msg, "'wq'") != NULL, "%s", e.msg);
    o.lm_modules = "all", o.method = UL_MMUNLEARNER;
    CHECK(mllm_unlearn(&T.m, T.t, T.w, &o, &st, &e) != 0);
    CHECK_MSG(strstr(e.msg, "no LoRA") != NULL, "%s", e.msg);
    free(fm), free(rm);
    tiny_close(&T);
}
