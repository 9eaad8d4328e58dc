/* The LLaVA-shaped MLLM on a shape-faithful tiny config: both key layouts (LLaVA's and llava-hf's)
 * written and read back, the tower's patch tokens equal to CLIP's own, finite differences of the
 * loss through the projector and the LM with an image sequence and a text-only one packed
 * together, decoding that agrees with the LM on the spliced rows, and the errors a user meets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gradcheck.h"
#include "io/safetensors.h"
#include "models/mllm.h"
#include "serve/fixture.h"
#include "test.h"

TEST(mllm_both_layouts_round_trip) {
    Err e = {0};
    MllmConfig c = tiny_mllm_config();
    CHECK_MSG(mllm_config_check(&c, &e) == 0, "%s", e.msg);
    Mllm m, back;
    mllm_init_random(&m, &c, 4);
    CHECK_INT(mllm_image_tokens(&c), 4);
    const char *want[2][4] = {
        {"model.vision_tower.vision_tower.vision_model.encoder.layers.1.self_attn.q_proj.weight",
         "model.mm_projector.2.bias", "model.layers.1.mlp.gate_proj.weight", "lm_head.weight"},
        {"vision_tower.vision_model.post_layernorm.weight", "multi_modal_projector.linear_1.weight",
         "language_model.model.layers.0.self_attn.v_proj.weight", "language_model.lm_head.weight"}};
    for (int L = 0; L < 2; L++) {
        char path[512];
        snprintf(path, sizeof path, "%s/mllm-%d.safetensors", scratch_dir(), L);
        CHECK_MSG(mllm_save(&m, path, L, ST_F16, NULL, 0, &e) == 0, "%s", e.msg);
        SafeTensors st;
        if (st_open(&st, path, &e) == 0) {
            for (int k = 0; k < 4; k++) CHECK_MSG(st_find(&st, want[L][k]) != NULL, "layout %d lacks %s", L, want[L][k]);
            int joint = 0;
            for (int i = 0; i < st.n; i++) joint += strstr(st.tensors[i].name, "visual_projection") != NULL;
            CHECK_INT(joint, 0);
            st_close(&st);
        }
        if (mllm_load(&back, path, &e) == 0) {
            CHECK_INT(back.layout, L);
            CHECK_INT(back.n_params, m.n_params);
            CHECK_INT(back.cfg.tower.v_layers, 2);
            CHECK_INT(back.cfg.tower.image_res, 8);
            CHECK_INT(back.cfg.lm.hidden, 24);
            CHECK_INT(back.cfg.select_layer, 1);
            CHECK_INT(back.cfg.image_token, 5);
            CHECK_CLOSE(back.proj2_w, m.proj2_w, 16L * 16, 1e-4, 1e-3);
            CHECK_CLOSE(back.lm.tok_emb, m.lm.tok_emb, 32L * 16, 1e-4, 1e-3);
            CHECK_CLOSE(back.tower.v_blocks[1].fc_w, m.tower.v_blocks[1].fc_w, 64L * 16, 1e-4, 1e-3);
            mllm_free(&back);
        } else {
            CHECK_MSG(0, "layout %d: %s", L, e.msg);
        }
    }
    mllm_free(&m);
}

TEST(mllm_tower_tokens_are_clips) {
    Err e = {0};
    MllmConfig c = tiny_mllm_config();
    ClipModel clip;
    clip_init_random(&clip, &(ClipConfig){.embed_dim = 8, .has_vision = 1, .image_res = 8, .patch = 4, .v_width = 16,
                                          .v_layers = 2, .v_heads = 2, .act = ACT_QUICKGELU},
                     21);
    Mllm m;
    mllm_init_random(&m, &c, 5);
    CHECK_MSG(mllm_set_tower(&m, &clip, &e) == 0, "%s", e.msg);
    Rng r;
    rng_seed(&r, 2);
    float px[2 * 3 * 64], mine[2 * 4 * 16], ref[2 * 5 * 16];
    rng_fill_normal(&r, px, 2 * 3 * 64, 0, 1);
    CHECK(mllm_encode_images(&m, px, 2, mine, &e) == 0);
    CHECK(clip_encode_image_tokens(&clip, px, 2, 1, ref, &e) == 0);
    for (int b = 0; b < 2; b++) CHECK_CLOSE(mine + b * 64, ref + b * 80 + 16, 64, 1e-6, 1e-6);
    ClipModel other;
    clip_init_random(&other, &(ClipConfig){.embed_dim = 8, .has_vision = 1, .image_res = 8, .patch = 2, .v_width = 16,
                                           .v_layers = 2, .v_heads = 2},
                     1);
    CHECK(mllm_set_tower(&m, &other, &e) != 0);
    CHECK_MSG(strstr(e.msg, "patch 2") != NULL, "%s", e.msg);
    clip_free(&other);
    clip_free(&clip);
    mllm_free(&m);
}

typedef struct {
    Mllm *m;
    MllmActs *a;
    const int32_t *const *ids, *const *tg;
    const int *n;
    const float *const *feats;
} Fd;

static double fd_loss(void *v) {
    Fd *f = v;
    float loss = 0;
    Err e = {0};
    mllm_forward(f->m, f->a, f->ids, f->tg, f->n, f->feats, 2, &loss, &e);
    return loss;
}

TEST(mllm_backward_finite_differences) {
    Err e = {0};
    MllmConfig c = tiny_mllm_config();
    Mllm m, g;
    mllm_init_random(&m, &c, 9);
    for (long i = 0; i < m.n_params; i++) m.params[i] *= 6.0f;
    for (int k = 0; k < 16; k++) m.lm.norm_w[k] = 1.0f;
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 16; k++) m.lm.blocks[l].ln1_w[k] = m.lm.blocks[l].ln2_w[k] = 1.0f;
    const int32_t s0[5] = {1, 7, 5, 9, 11}, t0[5] = {7, -1, 9, 11, 2}; /* image at position 2 */
    const int32_t s1[4] = {1, 12, 13, 14}, t1[4] = {12, 13, 14, 2};
    const int32_t *ids[2] = {s0, s1}, *tg[2] = {t0, t1};
    const int n[2] = {5, 4};
    Rng r;
    rng_seed(&r, 3);
    float feats[4 * 16];
    rng_fill_normal(&r, feats, 64, 0, 1);
    const float *fs[2] = {feats, NULL};
    MllmActs a = {0};
    Fd ctx = {&m, &a, ids, tg, n, fs};
    float loss = 0;
    CHECK_MSG(mllm_forward(&m, &a, ids, tg, n, fs, 2, &loss, &e) == 0, "%s", e.msg);
    CHECK_INT(a.lm.T, 5 + 3 + 4);
    CHECK_INT(a.rows, 4);
    CHECK_INT(a.lm.n_tgt, 4 + 4); /* the placeholder's target moved to the last image row */
    mllm_alloc_like(&g, &m);
    mllm_backward(&m, &g, &a, 1.0f);
    const FdProbe probe = {fd_loss, &ctx, 64, 1e-2f, 2e-3, 3e-2, 8};
    fd_check_coords(&probe, m.proj1_w, g.proj1_w, 16L * 16, "projector layer 1");
    fd_check_coords(&probe, m.proj2_b, g.proj2_b, 16, "projector layer 2 bias");
    fd_check_coords(&probe, m.lm.blocks[0].qkv_w, g.lm.blocks[0].qkv_w, 48L * 16, "LM attention");
    fd_check_coords(&probe, m.lm.tok_emb, g.lm.tok_emb, 32L * 16, "LM token table");
    /* a frozen LM (projector alignment) gets no gradient, the projector still does */
    mllm_free(&g);
    mllm_set_trainable(&m, 0, 1, 0);
    mllm_alloc_like(&g, &m);
    mllm_forward(&m, &a, ids, tg, n, fs, 2, &loss, &e);
    mllm_backward(&m, &g, &a, 1.0f);
    double lm_abs = 0, proj_abs = 0;
    for (long i = 0; i < 16L * 16; i++) proj_abs += fabs(g.proj1_w[i]);
    for (long i = 0; i < 48L * 16; i++) lm_abs += fabs(g.lm.blocks[0].qkv_w[i]);
    CHECK(proj_abs > 0 && lm_abs == 0);
    mllm_free(&g);
    mllm_acts_free(&a);
    mllm_free(&m);
}

TEST(mllm_decoding_and_errors) {
    Err e = {0};
    MllmConfig c = tiny_mllm_config();
    Mllm m;
    mllm_init_random(&m, &c, 13);
    for (long i = 0; i < m.n_params; i++) m.params[i] *= 10.0f;
    for (int k = 0; k < 16; k++) m.lm.norm_w[k] = 1.0f;
    float feats[64];
    Rng r;
    rng_seed(&r, 4);
    rng_fill_normal(&r, feats, 64, 0, 1);
    const int32_t prompt[3] = {1, 5, 8};
    int32_t a[8], b[8];
    const LmSampling s = {.max_tokens = 8, .eos = -1};
    CHECK_INT(mllm_generate(&m, prompt, 3, feats, &s, a, &e), 8);
    /* the same rows by hand: token rows, then the projector's 4 image rows, then a token row */
    MllmActs acts = {0};
    const int32_t *ids[1] = {prompt}, none[3] = {-1, -1, -1}, *tg[1] = {none};
    const float *fs[1] = {feats};
    float loss;
    CHECK(mllm_forward(&m, &acts, ids, tg, (int[]){3}, fs, 1, &loss, &e) == 0);
    float rows[6 * 16];
    lm_embed(&m.lm, prompt, 1, rows);
    lm_embed(&m.lm, prompt + 2, 1, rows + 5 * 16);
    /* the image rows of the batch before the LM ran are what the projector wrote: recompute */
    float h1[64], h1g[64];
    linear_forward(h1, feats, m.proj1_w, m.proj1_b, 4, 16, 16);
    gelu_forward(h1g, h1, 64);
    linear_forward(rows + 16, h1g, m.proj2_w, m.proj2_b, 4, 16, 16);
    CHECK_INT(lm_generate_rows(&m.lm, rows, 6, &s, b, &e), 8);
    int same = 1;
    for (int i = 0; i < 8; i++) same &= a[i] == b[i];
    CHECK_MSG(same, "MLLM decoding differs from the LM on the spliced rows");
    /* errors */
    CHECK(mllm_generate(&m, prompt, 3, NULL, &s, a, &e) < 0);
    CHECK_MSG(strstr(e.msg, "1 <image> placeholders for no image") != NULL, "%s", e.msg);
    const int32_t two[4] = {5, 1, 5, 2}, bad[2] = {1, 99};
    CHECK(mllm_generate(&m, two, 4, feats, &s, a, &e) < 0);
    CHECK_MSG(strstr(e.msg, "2 <image>") != NULL, "%s", e.msg);
    CHECK(mllm_generate(&m, bad, 2, NULL, &s, a, &e) < 0);
    CHECK_MSG(strstr(e.msg, "id 99") != NULL, "%s", e.msg);
    Mllm x;
    CHECK(mllm_load(&x, "tests/ref/lm-tiny.safetensors", &e) != 0);
    CHECK_MSG(strstr(e.msg, "not a LLaVA-shaped checkpoint") != NULL, "%s", e.msg);
    mllm_acts_free(&acts);
    mllm_free(&m);
}
