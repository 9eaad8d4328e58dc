/* The Llama-style decoder against tests/ref/lm-tiny.safetensors, written by tools/torch_lm.py
 * (float64 autograd on the same structure, HF key names; the file is itself a checkpoint lm_load
 * reads): the head's logits on the target rows, the loss, the input rows' gradient and every
 * parameter's. Then finite differences through a tied model, decoding with the key/value cache
 * against decoding without it, save/load in F32 and F16, a config.json beside a Hugging Face-style
 * file, and the errors a user meets. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/gradcheck.h"
#include "io/safetensors.h"
#include "models/lm.h"
#include "models/ref_trace.h"
#include "test.h"

#define REF "tests/ref/lm-tiny.safetensors"

static int32_t *ref_ints(SafeTensors *st, const char *name, long n) {
    float *v = ref_tensor(st, name, n);
    int32_t *out = xcalloc((size_t)n, sizeof(int32_t));
    for (long i = 0; v && i < n; i++) out[i] = (int32_t)v[i];
    free(v);
    return out;
}

/* One reference file: the loss, the target rows' logits, the input rows' gradient and every
 * parameter's (a grouped K/V part compared in its stored form: each group's first copy, which holds
 * the group's summed gradient). */
static void ref_case(const char *path, int tied, int kv_heads, int expect_tensors) {
    Err e = {0};
    LmModel m, g;
    if (lm_load(&m, path, &e)) {
        CHECK_MSG(0, "%s", e.msg);
        return;
    }
    CHECK_INT(m.cfg.layers, 2);
    CHECK_INT(m.cfg.hidden, 12);
    CHECK_INT(m.cfg.tied, tied);
    CHECK_INT(m.cfg.kv_heads, kv_heads);
    SafeTensors st;
    if (st_open(&st, path, &e)) {
        CHECK_MSG(0, "%s", e.msg);
        lm_free(&m);
        return;
    }
    const int T = 9, W = m.cfg.width, V = m.cfg.vocab;
    int32_t *ids = ref_ints(&st, "ids", T), *tg = ref_ints(&st, "targets", T), *lens32 = ref_ints(&st, "lens", 2);
    const int lens[2] = {lens32[0], lens32[1]};
    LmActs a = {0};
    lm_batch_begin(&m, &a, ids, T, lens, 2);
    lm_forward(&m, &a);
    float *logits_copy = xalloc_floats(7 * (size_t)V);
    const float loss = lm_loss(&m, &a, tg);
    CHECK_INT(a.n_tgt, 7);
    memcpy(logits_copy, a.logits, sizeof(float) * 7 * (size_t)V);
    float *rl = ref_tensor(&st, "logits", 7L * V), *rloss = ref_tensor(&st, "loss", 1);
    if (rl) CHECK_CLOSE(logits_copy, rl, 7L * V, 1e-5, 1e-4);
    if (rloss) CHECK_NEAR(loss, rloss[0], 1e-5);
    lm_alloc_like(&g, &m);
    float *drows = xalloc_floats((size_t)T * W);
    lm_backward(&m, &g, &a, ids, 1.0f, drows);
    float *rd = ref_tensor(&st, "d_rows", (long)T * W);
    if (rd) CHECK_CLOSE(drows, rd, (long)T * W, 1e-5, 1e-4);
    int compared = 0;
    for (int i = 0; i < g.table.n; i++) {
        const NnParam *p = &g.table.p[i];
        const long part = p->count / p->parts[0];
        for (int k = 0; k < p->parts[0]; k++) {
            char name[NN_NAME + 4];
            snprintf(name, sizeof name, "g.%s", p->key[0][k]);
            const int rep = p->rep[k] > 1 ? p->rep[k] : 1;
            const long block = (long)p->rep_rows * (p->ndim > 1 ? (long)p->shape[1] : 1);
            float *mine = xalloc_floats((size_t)(part / rep));
            for (long h = 0; h < part / rep / (rep > 1 ? block : part); h++)
                memcpy(mine + h * (rep > 1 ? block : part), *p->slot + k * part + h * rep * (rep > 1 ? block : part),
                       sizeof(float) * (size_t)(rep > 1 ? block : part));
            float *r = ref_tensor(&st, name, part / rep);
            if (r) CHECK_CLOSE(mine, r, part / rep, 1e-5, 1e-4), compared++;
            free(r), free(mine);
        }
    }
    CHECK_INT(compared, expect_tensors);
    free(rl), free(rloss), free(rd), free(drows), free(ids), free(tg), free(lens32), free(logits_copy);
    lm_acts_free(&a);
    lm_free(&g);
    lm_free(&m);
    st_close(&st);
}

TEST(lm_matches_pytorch_reference) {
    ref_case(REF, 0, 2, 1 + 2 * 9 + 2); /* embed; 9 tensors a layer (q, k, v, o, gate, up, down, 2 norms); norm, head */
}

/* Grouped K/V heads (4 query heads, 2 stored key/value heads, Hugging Face's repeat_kv) and a tied
 * head: loaded from the stored shapes, the same numbers as PyTorch, and saved back as stored. */
TEST(lm_grouped_kv_heads_match_pytorch) {
    ref_case("tests/ref/lm-gqa.safetensors", 1, 2, 1 + 2 * 9 + 1);
    Err e = {0};
    LmModel m, back;
    if (lm_load(&m, "tests/ref/lm-gqa.safetensors", &e)) return;
    char path[512];
    snprintf(path, sizeof path, "%s/lm-gqa-rt.safetensors", scratch_dir());
    CHECK_MSG(lm_save(&m, path, ST_F32, NULL, 0, &e) == 0, "%s", e.msg);
    SafeTensors st;
    if (st_open(&st, path, &e) == 0) {
        const StTensor *k = st_find(&st, "model.layers.1.self_attn.k_proj.weight");
        CHECK(k && k->shape[0] == 8 && k->shape[1] == 16);
        st_close(&st);
    }
    if (lm_load(&back, path, &e) == 0) {
        CHECK_CLOSE(back.params, m.params, m.n_params, 0, 0);
        lm_free(&back);
    } else {
        CHECK_MSG(0, "%s", e.msg);
    }
    lm_free(&m);
}

/* Finite differences of the loss through a tied model (the head is the table) with two packed
 * sequences: every parameter's gradient and the input rows'. */
typedef struct {
    LmModel *m;
    LmActs *a;
    const int32_t *ids, *tg;
    const int *lens;
    float *rows; /* the input rows (probe of d_rows) */
    int use_rows;
} FdCtx;

static double fd_loss(void *v) {
    FdCtx *c = v;
    const int T = c->lens[0] + c->lens[1];
    lm_batch_begin(c->m, c->a, c->use_rows ? NULL : c->ids, T, c->lens, 2);
    if (c->use_rows) memcpy(c->a->x, c->rows, sizeof(float) * (size_t)T * c->m->cfg.width);
    lm_forward(c->m, c->a);
    return lm_loss(c->m, c->a, c->tg);
}

TEST(lm_backward_finite_differences) {
    Err e = {0};
    LmConfig c;
    CHECK(lm_config_named(&c, "lm-tiny", &e) == 0);
    c.vocab = 11, c.width = 8, c.heads = 2, c.hidden = 6, c.tied = 1;
    LmModel m, g;
    lm_init_random(&m, &c, 7);
    for (long i = 0; i < m.n_params; i++) m.params[i] *= 10.0f; /* larger weights: gradients well above noise */
    for (int l = 0; l < c.layers; l++)
        for (int k = 0; k < c.width; k++) m.blocks[l].ln1_w[k] = m.blocks[l].ln2_w[k] = 1.0f + 0.1f * (k % 3);
    for (int k = 0; k < c.width; k++) m.norm_w[k] = 1.0f - 0.05f * (k % 4);
    const int lens[2] = {4, 3}, T = 7;
    const int32_t ids[7] = {1, 5, 2, 9, 3, 3, 10}, tg[7] = {5, 2, -1, 4, 7, 0, 6};
    LmActs a = {0};
    FdCtx ctx = {&m, &a, ids, tg, lens, NULL, 0};
    fd_loss(&ctx);
    lm_alloc_like(&g, &m);
    float *drows = xalloc_floats((size_t)T * c.width);
    lm_backward(&m, &g, &a, ids, 1.0f, drows);
    const FdProbe probe = {fd_loss, &ctx, 96, 1e-2f, 2e-3, 2e-2, 3};
    fd_check_coords(&probe, m.params, g.params, m.n_params, "lm parameters (tied head)");
    ctx.rows = xalloc_floats((size_t)T * c.width);
    lm_embed(&m, ids, T, ctx.rows);
    ctx.use_rows = 1;
    fd_check_coords(&probe, ctx.rows, drows, (long)T * c.width, "lm input rows");
    free(ctx.rows), free(drows);
    lm_acts_free(&a);
    lm_free(&g);
    lm_free(&m);
}

TEST(lm_kv_cache_decoding_matches_full_recompute) {
    Err e = {0};
    LmConfig c;
    lm_config_named(&c, "lm-tiny", &e);
    LmModel m;
    lm_init_random(&m, &c, 11);
    for (long i = 0; i < m.n_params; i++) m.params[i] *= 20.0f; /* peaked logits: greedy choices are clear */
    for (int k = 0; k < c.width; k++) m.norm_w[k] = 1.0f;
    const int32_t prompt[5] = {3, 17, 42, 8, 8};
    int32_t a[24], b[24];
    LmSampling s = {.max_tokens = 24, .temperature = 0, .top_p = 1, .seed = 1, .eos = -1};
    const int na = lm_generate(&m, prompt, 5, &s, a, &e);
    s.no_cache = 1;
    const int nb = lm_generate(&m, prompt, 5, &s, b, &e);
    CHECK_INT(na, 24);
    CHECK_INT(nb, 24);
    int same = 1;
    for (int i = 0; i < 24; i++) same &= a[i] == b[i];
    CHECK_MSG(same, "cached and recomputed greedy decoding differ");
    /* sampling: the same seed gives the same tokens with and without the cache, another seed others */
    s.temperature = 1.0f, s.top_p = 0.9f, s.seed = 5, s.no_cache = 0;
    lm_generate(&m, prompt, 5, &s, a, &e);
    s.no_cache = 1;
    lm_generate(&m, prompt, 5, &s, b, &e);
    same = 1;
    for (int i = 0; i < 24; i++) same &= a[i] == b[i];
    CHECK_MSG(same, "cached and recomputed sampling with one seed differ");
    s.seed = 6, s.no_cache = 0;
    lm_generate(&m, prompt, 5, &s, b, &e);
    same = 1;
    for (int i = 0; i < 24; i++) same &= a[i] == b[i];
    CHECK_MSG(!same, "two seeds sampled the same 24 tokens");
    /* eos stops, errors name what is wrong */
    s.eos = a[3], s.seed = 5;
    CHECK_INT(lm_generate(&m, prompt, 5, &s, b, &e) <= 4, 1);
    s.max_tokens = 130;
    CHECK(lm_generate(&m, prompt, 5, &s, b, &e) < 0);
    CHECK_MSG(strstr(e.msg, "context of 128") != NULL, "%s", e.msg);
    const int32_t bad[2] = {3, 64};
    s.max_tokens = 2;
    CHECK(lm_generate(&m, bad, 2, &s, b, &e) < 0);
    CHECK_MSG(strstr(e.msg, "id 64") != NULL, "%s", e.msg);
    lm_free(&m);
}

TEST(lm_sample_top_p_keeps_the_nucleus) {
    float logits[4] = {0.0f, 3.0f, 2.9f, -5.0f};
    LmSampling s = {.temperature = 1.0f, .top_p = 0.5f};
    Rng r;
    rng_seed(&r, 9);
    int seen[4] = {0};
    for (int i = 0; i < 400; i++) seen[lm_sample(logits, 4, &s, &r)]++;
    CHECK_INT(seen[0] + seen[2] + seen[3], 0); /* 3.0 alone holds more than half the mass */
    s.top_p = 0.8f;
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 400; i++) seen[lm_sample(logits, 4, &s, &r)]++;
    CHECK(seen[1] > 100 && seen[2] > 100 && seen[0] == 0 && seen[3] == 0);
    s.temperature = 0;
    CHECK_INT(lm_sample(logits, 4, &s, &r), 1);
}

TEST(lm_save_load_round_trip) {
    Err e = {0};
    LmConfig c;
    lm_config_named(&c, "lm-tiny", &e);
    c.rope_base = 500000.0f, c.eps = 1e-6f;
    LmModel m, back;
    lm_init_random(&m, &c, 3);
    char path[512];
    snprintf(path, sizeof path, "%s/lm-rt.safetensors", scratch_dir());
    const char *meta[] = {"producer", "test"};
    CHECK_MSG(lm_save(&m, path, ST_F32, meta, 1, &e) == 0, "%s", e.msg);
    if (lm_load(&back, path, &e) == 0) {
        CHECK_INT(back.n_params, m.n_params);
        CHECK_CLOSE(back.params, m.params, m.n_params, 0, 0);
        CHECK_NEAR(back.cfg.rope_base, 500000.0, 0);
        CHECK_NEAR(back.cfg.eps, 1e-6, 1e-12);
        CHECK_INT(back.cfg.context, 128);
        lm_free(&back);
    } else {
        CHECK_MSG(0, "%s", e.msg);
    }
    CHECK_MSG(lm_save(&m, path, ST_F16, NULL, 0, &e) == 0, "%s", e.msg);
    if (lm_load(&back, path, &e) == 0) {
        CHECK(strstr(back.src_dtypes, "F16") != NULL);
        CHECK_CLOSE(back.params, m.params, m.n_params, 1e-4, 1e-3);
        lm_free(&back);
    } else {
        CHECK_MSG(0, "%s", e.msg);
    }
    lm_free(&m);
}

/* The reference weights rewritten to path in dtype with the metadata pairs given (none: a Hugging
 * Face-style file), one tensor a row short (bad_shape) or holding a NaN (nan_in) when named. */
static void write_ref_copy(const char *path, StDtype dtype, const char *const *meta, int n_meta, const char *bad_shape,
                           const char *nan_in) {
    Err e = {0};
    SafeTensors st;
    if (st_open(&st, REF, &e)) {
        CHECK_MSG(0, "%s", e.msg);
        return;
    }
    StWriteTensor w[64];
    float *bufs[64];
    int n = 0;
    for (int i = 0; i < st.n && n < 64; i++) {
        const StTensor *t = &st.tensors[i];
        if (strncmp(t->name, "model.", 6) && strcmp(t->name, "lm_head.weight")) continue;
        bufs[n] = xalloc_floats((size_t)st_numel(t));
        st_to_f32(t, bufs[n], &e);
        w[n] = (StWriteTensor){.name = t->name, .dtype = dtype, .ndim = t->ndim, .f32 = bufs[n]};
        for (int d = 0; d < t->ndim; d++) w[n].shape[d] = t->shape[d];
        if (bad_shape && strcmp(t->name, bad_shape) == 0) w[n].shape[0] -= 1;
        if (nan_in && strcmp(t->name, nan_in) == 0) bufs[n][3] = NAN;
        n++;
    }
    CHECK_MSG(st_write(path, w, n, meta, n_meta, &e) == 0, "%s", e.msg);
    for (int i = 0; i < n; i++) free(bufs[i]);
    st_close(&st);
}

/* A Hugging Face-style file (no metadata) takes its heads from config.json beside it. */
TEST(lm_config_json_beside_the_file) {
    Err e = {0};
    char dir[512], path[600], cfgp[600];
    snprintf(dir, sizeof dir, "%s/lm-hf", scratch_dir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    remove(cfgp);
    write_ref_copy(path, ST_F16, NULL, 0, NULL, NULL); /* the reference weights without metadata */
    LmModel m;
    CHECK(lm_load(&m, path, &e) != 0);
    CHECK_MSG(strstr(e.msg, "number of heads is not written down") != NULL, "%s", e.msg);
    FILE *f = fopen(cfgp, "w");
    fputs("{\"num_attention_heads\": 2, \"num_key_value_heads\": 2, \"rope_theta\": 10000.0, "
          "\"rms_norm_eps\": 1e-05, \"max_position_embeddings\": 128}\n", f);
    fclose(f);
    if (lm_load(&m, path, &e) == 0) {
        CHECK_INT(m.cfg.heads, 2);
        CHECK_INT(m.cfg.context, 128);
        CHECK(strcmp(m.src_dtypes, "F16") == 0);
        lm_free(&m);
    } else {
        CHECK_MSG(0, "%s", e.msg);
    }
    f = fopen(cfgp, "w");
    fputs("{\"num_attention_heads\": 2, \"num_key_value_heads\": 1}\n", f);
    fclose(f);
    CHECK(lm_load(&m, path, &e) != 0);
    CHECK_MSG(strstr(e.msg, "k_proj has 8 rows, not 1 key/value heads of 4") != NULL, "%s", e.msg);
    f = fopen(cfgp, "w");
    fputs("{\"num_attention_heads\": \"two\"}\n", f);
    fclose(f);
    CHECK(lm_load(&m, path, &e) != 0);
    CHECK_MSG(strstr(e.msg, "not a number") != NULL, "%s", e.msg);
    remove(cfgp);
}

TEST(lm_config_errors) {
    Err e = {0};
    LmConfig c;
    CHECK(lm_config_named(&c, "lm-xl", &e) != 0);
    CHECK_MSG(strstr(e.msg, "lm-tiny") != NULL, "%s", e.msg);
    lm_config_named(&c, "lm-tiny", &e);
    CHECK(lm_config_check(&c, &e) == 0);
    c.heads = 3;
    CHECK(lm_config_check(&c, &e) != 0);
    CHECK_MSG(strstr(e.msg, "even size") != NULL, "%s", e.msg);
    c.heads = 4, c.kv_heads = 3;
    CHECK(lm_config_check(&c, &e) != 0);
    CHECK_MSG(strstr(e.msg, "do not divide") != NULL, "%s", e.msg);
    c.kv_heads = 2;
    CHECK(lm_config_check(&c, &e) == 0);
    LmModel m;
    CHECK(lm_load(&m, "tests/ref/unet-tiny.safetensors", &e) != 0);
    CHECK_MSG(strstr(e.msg, "not a Llama-style checkpoint") != NULL, "%s", e.msg);
}

/* Malformed checkpoints: a tensor of the wrong shape and a NaN weight are refused, naming the tensor. */
TEST(lm_malformed_checkpoints_name_the_tensor) {
    char path[512];
    snprintf(path, sizeof path, "%s/lm-bad.safetensors", scratch_dir());
    Err e = {0};
    LmModel m;
    const char *meta[] = {"lm.heads", "2"};
    write_ref_copy(path, ST_F32, meta, 1, "model.layers.1.mlp.up_proj.weight", NULL);
    CHECK(lm_load(&m, path, &e) != 0);
    CHECK_MSG(strstr(e.msg, "model.layers.1.mlp.up_proj.weight") != NULL, "%s", e.msg);
    write_ref_copy(path, ST_F32, meta, 1, NULL, "model.layers.0.self_attn.o_proj.weight");
    CHECK(lm_load(&m, path, &e) != 0);
    CHECK_MSG(strstr(e.msg, "o_proj") && strstr(e.msg, "NaN"), "%s", e.msg);
    FILE *f = fopen(path, "wb");
    fputs("\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":", f); /* a header cut short */
    fclose(f);
    CHECK(lm_load(&m, path, &e) != 0);
    CHECK_MSG(strstr(e.msg, "lm-bad.safetensors") != NULL, "%s", e.msg);
}
