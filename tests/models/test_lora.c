/* LoRA on the Llama-style LM: with B = 0 the merged weights are the base; the adapters' gradients
 * (dA = s B^T dW, dB = s dW A^T from the merged weights' gradient) match finite differences of the
 * loss through the merge; only A and B move the model; the file carries PEFT's key names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gradcheck.h"
#include "io/safetensors.h"
#include "models/lora.h"
#include "test.h"

typedef struct {
    LmModel *m;
    Lora *l;
    LmActs *a;
} Ctx;

static const int LENS[2] = {4, 3};
static const int32_t IDS[7] = {1, 5, 2, 9, 3, 3, 10}, TG[7] = {5, 2, -1, 4, 7, 0, 6};

static double loss_of(void *v) {
    Ctx *c = v;
    lora_merge(c->l);
    lm_batch_begin(c->m, c->a, IDS, 7, LENS, 2);
    lm_forward(c->m, c->a);
    return lm_loss(c->m, c->a, TG);
}

TEST(lora_gradients_match_finite_differences) {
    Err e = {0};
    LmConfig c;
    lm_config_named(&c, "lm-tiny", &e);
    c.vocab = 11, c.width = 8, c.heads = 2, c.hidden = 6;
    LmModel m, gm;
    lm_init_random(&m, &c, 7);
    for (long i = 0; i < m.n_params; i++) m.params[i] *= 10.0f;
    for (int l = 0; l < c.layers; l++)
        for (int k = 0; k < 8; k++) m.blocks[l].ln1_w[k] = m.blocks[l].ln2_w[k] = 1.0f;
    for (int k = 0; k < 8; k++) m.norm_w[k] = 1.0f;
    float *before = xalloc_floats((size_t)m.n_params);
    memcpy(before, m.params, sizeof(float) * (size_t)m.n_params);
    Lora l, g;
    CHECK(lora_attach(&l, &m, "q,v,up,down", 2, 4.0f, 3, &e) == 0);
    CHECK_INT(l.n, 4 * c.layers);
    lora_merge(&l);
    CHECK_CLOSE(m.params, before, m.n_params, 0, 0); /* B = 0: the base */
    Rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < l.n; i++) rng_fill_normal(&r, l.t[i].B, (long)l.t[i].out * l.rank, 0, 0.5f);
    LmActs a = {0};
    Ctx ctx = {&m, &l, &a};
    loss_of(&ctx);
    lm_alloc_like(&gm, &m);
    lm_backward(&m, &gm, &a, IDS, 1.0f, NULL);
    lora_alloc_like(&g, &l);
    lora_backward(&l, m.params, gm.params, &g);
    const FdProbe probe = {loss_of, &ctx, 96, 1e-2f, 2e-3, 2e-2, 4};
    fd_check_coords(&probe, l.params, g.params, l.n_params, "LoRA A and B");
    /* the model's non-target weights never move */
    lora_merge(&l);
    CHECK_CLOSE(m.tok_emb, before, (long)c.vocab * c.width, 0, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/lora.safetensors", scratch_dir());
    CHECK_MSG(lora_save(&l, path, &e) == 0, "%s", e.msg);
    SafeTensors st;
    if (st_open(&st, path, &e) == 0) {
        CHECK(st_find(&st, "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight") != NULL);
        CHECK(st_find(&st, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight") != NULL);
        CHECK(st_meta(&st, "lora.targets") && strcmp(st_meta(&st, "lora.targets"), "q,v,up,down") == 0);
        st_close(&st);
    }
    Lora bad;
    CHECK(lora_attach(&bad, &m, "q,x", 2, 4, 1, &e) != 0);
    CHECK_MSG(strstr(e.msg, "'x'") != NULL, "%s", e.msg);
    free(before);
    lm_acts_free(&a);
    lora_free(&l), lora_free(&g);
    lm_free(&gm), lm_free(&m);
}
