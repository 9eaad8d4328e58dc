/* Training path against ../shared/clip-ref/tiny-grad (PyTorch running OpenAI's
 * model): the contrastive loss, the gradient of every parameter, activation
 * gradients, and one AdamW step (both weight-decay rules). Tolerances are the
 * ones that README recommends. */
#include <stdlib.h>
#include <string.h>

#include "core/optim.h"
#include "io/safetensors.h"
#include "models/clip_params.h"
#include "models/clip_train.h"
#include "ref_trace.h"
#include "test.h"

static const int TEXT_ROWS[4] = {0, 1, 3, 4};

typedef struct {
    ClipModel m, g;
    float img[4 * 32], txt[4 * 32], dimg[4 * 32], dtxt[4 * 32];
    float loss, logits[16];
    TowerActs ia, ta;
} GradRun;

typedef struct {
    int checked;
} ActCheck;

/* |g - ref| <= 1e-5 * max|ref| + 1e-4 * |ref|, the README's rule, on one traced activation gradient. */
static void check_act_grad(void *user, const char *name, const float *x, int rows, int cols, const Packing *pk) {
    ((ActCheck *)user)->checked += check_ref_trace("tiny-grad/act_grads", name, x, rows, cols, pk, 0, 1e-5, 1e-4);
}

static int run_backward_traced(GradRun *r, const ClipTrace *tr);
static int run_backward(GradRun *r) { return run_backward_traced(r, NULL); }

static int run_backward_traced(GradRun *r, const ClipTrace *tr) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny/model.safetensors", ref_dir());
    Err e = {{0}};
    ClipLoadOpts o = {.act_override = -1, .load_token_table = 1};
    if (clip_load(&r->m, path, &o, &e) != 0) {
        test_fail(__FILE__, __LINE__, "%s", e.msg);
        return -1;
    }
    float *images = read_ref("tiny/images.f32", NULL);
    int32_t *tok6 = read_ref("tiny/tokens.i32", NULL);
    if (!images || !tok6) return -1;
    int32_t tokens[4 * 77];
    for (int i = 0; i < 4; i++) memcpy(tokens + i * 77, tok6 + TEXT_ROWS[i] * 77, sizeof(int32_t) * 77);
    clip_init_zeros(&r->g, &r->m.cfg);
    image_acts_init(&r->ia, &r->m, 4, 1);
    CHECK(text_acts_init(&r->ta, &r->m, tokens, 4, 1, &e) == 0);
    image_forward(&r->m, &r->ia, images, r->img, NULL);
    text_forward(&r->m, &r->ta, r->txt, NULL);
    memset(r->dimg, 0, sizeof r->dimg);
    memset(r->dtxt, 0, sizeof r->dtxt);
    r->loss = clip_contrastive_loss(r->img, r->txt, 4, 32, r->m.logit_scale[0], r->dimg, r->dtxt, r->g.logit_scale,
                                    r->logits);
    image_backward(&r->m, &r->g, &r->ia, r->dimg, tr);
    text_backward(&r->m, &r->g, &r->ta, r->dtxt, tr);
    free(images);
    free(tok6);
    return 0;
}

static void free_run(GradRun *r) {
    tower_acts_free(&r->ia);
    tower_acts_free(&r->ta);
    clip_free(&r->g);
    clip_free(&r->m);
}

/* |g - ref| <= 1e-5 * max|ref| + 1e-4 * |ref| element-wise */
static int check_grad(const char *name, const float *g, const float *ref, long n) {
    double mx = 0;
    for (long i = 0; i < n; i++) mx = fmax(mx, fabs(ref[i]));
    return check_close(__FILE__, __LINE__, name, g, ref, n, 1e-5 * mx, 1e-4);
}

/* A reference tensor widened to float and put in our orientation. */
static float *ref_param_tensor(const SafeTensors *st, const NnParam *s) {
    const StTensor *t = st_find(st, s->key[LAYOUT_OPENAI][0]);
    if (!t) {
        test_fail(__FILE__, __LINE__, "reference lacks %s", s->key[LAYOUT_OPENAI][0]);
        return NULL;
    }
    float *f = malloc(sizeof(float) * (size_t)s->count), *out = malloc(sizeof(float) * (size_t)s->count);
    Err e;
    st_to_f32(t, f, &e);
    if ((s->transposed & 1)) {
        long R = t->shape[0], C = t->shape[1];
        for (long i = 0; i < R; i++)
            for (long j = 0; j < C; j++) out[j * R + i] = f[i * C + j];
        free(f);
        return out;
    }
    free(out);
    return f;
}

TEST(clip_grad_loss_and_every_parameter_match_pytorch) {
    GradRun r;
    if (run_backward(&r) != 0) return;
    CHECK_NEAR(r.loss, 1.6674325466156006, 1e-5);
    float *ref_logits = read_ref("tiny-grad/logits_per_image.f32", NULL);
    if (ref_logits) CHECK_CLOSE(r.logits, ref_logits, 16, 1e-5, 1e-5);
    free(ref_logits);
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny-grad/grads.safetensors", ref_dir());
    SafeTensors st;
    Err e = {{0}};
    if (st_open(&st, path, &e) != 0) {
        test_fail(__FILE__, __LINE__, "%s", e.msg);
        free_run(&r);
        return;
    }
    int checked = 0;
    NnTable table = clip_param_table(&r.g);
    const int n = table.n;
    NnParam *specs = table.p;
    for (int i = 0; i < n; i++) {
        const NnParam *s = &specs[i];
        const float *g = *s->slot;
        if (s->lazy) { /* sparse: listed rows carry the gradient, every other row is exactly 0 */
            const StTensor *rows = st_find(&st, "token_embedding.weight.rows"),
                           *grows = st_find(&st, "token_embedding.weight.grad_rows");
            if (!rows || !grows) continue;
            int nr = (int)rows->shape[0], W = r.m.cfg.t_width;
            float *gr = malloc(sizeof(float) * (size_t)nr * W), *mine = malloc(sizeof(float) * (size_t)nr * W);
            st_to_f32(grows, gr, &e);
            char *listed = calloc((size_t)r.m.cfg.vocab, 1);
            for (int k = 0; k < nr; k++) {
                int32_t id;
                memcpy(&id, rows->data + 4 * k, 4);
                listed[id] = 1;
                memcpy(mine + (size_t)k * W, g + (size_t)id * W, sizeof(float) * (size_t)W);
            }
            check_grad("token_embedding rows", mine, gr, (long)nr * W);
            long nonzero = 0;
            for (int id = 0; id < r.m.cfg.vocab; id++)
                if (!listed[id])
                    for (int k = 0; k < W; k++) nonzero += g[(size_t)id * W + k] != 0.0f;
            CHECK_INT(nonzero, 0);
            free(gr), free(mine), free(listed);
            checked++;
            continue;
        }
        float *ref = ref_param_tensor(&st, s);
        if (!ref) continue;
        check_grad(s->key[LAYOUT_OPENAI][0], g, ref, s->count);
        free(ref);
        checked++;
    }
    CHECK_INT(checked, 62);
    nn_table_free(&table);
    st_close(&st);
    free_run(&r);
}

TEST(clip_grad_activation_gradients_match_pytorch) {
    GradRun r;
    ActCheck ac = {0};
    ClipTrace tr = {check_act_grad, &ac};
    if (run_backward_traced(&r, &tr) != 0) return;
    /* visual: ln_post_cls, block1, block0, ln_pre, ln_pre_input, patch_embed; text: ln_final, block1, block0, embed */
    CHECK_INT(ac.checked, 10);
    float *gi = read_ref("tiny-grad/act_grads/image_features.f32", NULL);
    float *gt = read_ref("tiny-grad/act_grads/text_features.f32", NULL);
    float *gs = read_ref("tiny-grad/act_grads/logit_scale.f32", NULL);
    if (gi) check_grad("d image_features", r.dimg, gi, 128);
    if (gt) check_grad("d text_features", r.dtxt, gt, 128);
    if (gs) CHECK_NEAR(r.g.logit_scale[0], gs[0], 1e-5 * fabs(gs[0]) + 1e-6);
    free(gi), free(gt), free(gs);
    free_run(&r);
}

/* One AdamW step from the reference gradients, against PyTorch's result. */
static void adamw_case(const char *file, int decay_all) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny/model.safetensors", ref_dir());
    Err e = {{0}};
    ClipModel m, g;
    ClipLoadOpts o = {.act_override = -1, .load_token_table = 1};
    if (clip_load(&m, path, &o, &e) != 0) {
        test_fail(__FILE__, __LINE__, "%s", e.msg);
        return;
    }
    clip_init_zeros(&g, &m.cfg);
    SafeTensors gs, ps;
    snprintf(path, sizeof path, "%s/tiny-grad/grads.safetensors", ref_dir());
    if (st_open(&gs, path, &e) != 0) return;
    snprintf(path, sizeof path, "%s/tiny-grad/%s", ref_dir(), file);
    if (st_open(&ps, path, &e) != 0) return;
    NnTable gtab = clip_param_table(&g), mtab = clip_param_table(&m);
    const int n = gtab.n;
    NnParam *gspec = gtab.p, *mspec = mtab.p;
    const int W = m.cfg.t_width;
    for (int i = 0; i < n; i++) {
        if (gspec[i].lazy) {
            const StTensor *rows = st_find(&gs, "token_embedding.weight.rows"),
                           *grows = st_find(&gs, "token_embedding.weight.grad_rows");
            float *gr = malloc(sizeof(float) * (size_t)st_numel(grows));
            st_to_f32(grows, gr, &e);
            for (int k = 0; k < (int)rows->shape[0]; k++) {
                int32_t id;
                memcpy(&id, rows->data + 4 * k, 4);
                memcpy(*gspec[i].slot + (size_t)id * W, gr + (size_t)k * W, sizeof(float) * (size_t)W);
            }
            free(gr);
            continue;
        }
        float *ref = ref_param_tensor(&gs, &gspec[i]);
        if (ref) memcpy(*gspec[i].slot, ref, sizeof(float) * (size_t)gspec[i].count);
        free(ref);
    }
    float *before_tok = malloc(sizeof(float) * (size_t)m.cfg.vocab * W);
    memcpy(before_tok, m.tok_emb, sizeof(float) * (size_t)m.cfg.vocab * W);
    AdamW opt;
    adamw_init(&opt, m.n_params, 0.9f, 0.98f, 1e-6f);
    adamw_begin_step(&opt);
    for (int i = 0; i < n; i++) {
        long off = *mspec[i].slot - m.params;
        double wd = decay_all || mspec[i].decay ? 0.2 : 0.0;
        adamw_update(&opt, m.params, g.params, off, mspec[i].count, 1e-3, wd);
    }
    int checked = 0;
    for (int i = 0; i < n; i++) {
        const NnParam *s = &mspec[i];
        if (s->lazy) {
            const StTensor *rows = st_find(&ps, "token_embedding.weight.rows"),
                           *urows = st_find(&ps, "token_embedding.weight.updated_rows");
            float *ur = malloc(sizeof(float) * (size_t)st_numel(urows));
            st_to_f32(urows, ur, &e);
            char *listed = calloc((size_t)m.cfg.vocab, 1);
            int bad = 0;
            for (int k = 0; k < (int)rows->shape[0]; k++) {
                int32_t id;
                memcpy(&id, rows->data + 4 * k, 4);
                listed[id] = 1;
                for (int j = 0; j < W; j++) {
                    float p = m.tok_emb[(size_t)id * W + j], want = ur[(size_t)k * W + j];
                    bad += !(fabsf(p - want) <= 4e-7f * fmaxf(1.0f, fabsf(want)));
                }
            }
            /* unlisted rows: decayed by fl32(1 - lr*wd) exactly, or untouched */
            const float f = decay_all ? (float)(1.0 - 1e-3 * 0.2) : 1.0f;
            for (int id = 0; id < m.cfg.vocab; id++)
                if (!listed[id])
                    for (int j = 0; j < W; j++) bad += m.tok_emb[(size_t)id * W + j] != before_tok[(size_t)id * W + j] * f;
            CHECK_MSG(bad == 0, "%s: %d token-table elements off", file, bad);
            free(ur), free(listed);
            checked++;
            continue;
        }
        float *ref = ref_param_tensor(&ps, s);
        if (!ref) continue;
        int bad = 0;
        long worst = -1;
        for (long k = 0; k < s->count; k++)
            if (!(fabsf((*s->slot)[k] - ref[k]) <= 4e-7f * fmaxf(1.0f, fabsf(ref[k])))) bad++, worst = k;
        CHECK_MSG(bad == 0, "%s %s: %d elements off (e.g. %ld: %.9g vs %.9g)", file, s->key[LAYOUT_OPENAI][0], bad, worst,
                  worst >= 0 ? (*s->slot)[worst] : 0, worst >= 0 ? ref[worst] : 0);
        free(ref);
        checked++;
    }
    CHECK_INT(checked, 62);
    nn_table_free(&gtab), nn_table_free(&mtab), free(before_tok);
    adamw_free(&opt);
    st_close(&gs), st_close(&ps);
    clip_free(&g), clip_free(&m);
}

TEST(adamw_step_matches_pytorch_decay_all) { adamw_case("adamw_step.safetensors", 1); }
TEST(adamw_step_matches_pytorch_decay_weights_only) { adamw_case("adamw_step_excl.safetensors", 0); }
