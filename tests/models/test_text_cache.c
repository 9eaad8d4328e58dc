/* The text tower's prefix cache gives the features of the uncached tower; context embeddings
 * replace token rows and their gradient passes a finite-difference check. */
#include <stdlib.h>
#include <string.h>

#include "io/tokenizer.h"
#include "models/clip_train.h"
#include "models/text_cache.h"
#include "test.h"

static ClipConfig small_cfg(void) {
    return (ClipConfig){.embed_dim = 24, .has_vision = 0, .has_text = 1, .context = 77, .vocab = 49408,
                        .t_width = 32, .t_layers = 3, .t_heads = 4, .act = ACT_QUICKGELU};
}

static void tokenize_all(const Tokenizer *t, const char *const *texts, int n, int32_t *ids) {
    Err e = {{0}};
    for (int i = 0; i < n; i++) CHECK(tokenizer_tokenize(t, texts[i], 77, ids + (size_t)i * 77, &e) >= 0);
}

TEST(text_cache_equals_uncached_tower) {
    ClipConfig c = small_cfg();
    ClipModel m;
    clip_init_random(&m, &c, 11);
    Tokenizer tok;
    Err e = {{0}};
    CHECK(tokenizer_init(&tok, &e) == 0);
    const char *calls[4][4] = {
        {"a photo of a t-shirt.", "a photo of a trouser.", "a photo of a bag.", "a photo of a coat."},
        {"a photo of a t-shirt apple river.", "a photo of a trouser apple river.", "a photo of a bag apple river.",
         "a photo of a coat apple river."},
        {"a photo of a t-shirt apple stone.", "a photo of a trouser.", "an emoji of a bag", "a photo of a t-shirt apple river."},
        /* repeats within one call are encoded once */
        {"a photo of a bag stone river.", "a photo of a coat.", "a photo of a bag stone river.", "a photo of a bag stone river."},
    };
    for (int cap_small = 0; cap_small < 2; cap_small++) {
        TextPrefixCache cache;
        /* the minimum of 8 entries (the third call evicts what it may reuse) or room for all */
        text_cache_init(&cache, &m, cap_small ? 0 : 1L << 26);
        for (int k = 0; k < 4; k++) {
            int32_t ids[4 * 77];
            float ref[4 * 24], got[4 * 24];
            tokenize_all(&tok, calls[k], 4, ids);
            CHECK(clip_encode_text(&m, ids, 4, ref, NULL, &e) == 0);
            CHECK_MSG(clip_encode_text_cached(&m, &cache, ids, 4, got, &e) == 0, "%s", e.msg);
            CHECK_CLOSE(got, ref, 4 * 24, 2e-5, 2e-5);
        }
        /* the second and third calls reused the class prefixes */
        CHECK(cache.rows_reused > 0 && cache.rows_computed > 0);
        CHECK(cache.rows_deduplicated == 2);
        text_cache_free(&cache);
    }
    /* a bad id is an error, not a crash, and the cache stays usable */
    TextPrefixCache cache;
    text_cache_init(&cache, &m, 1 << 20);
    int32_t ids[77] = {49406, 320, 60000, 49407};
    float out[24];
    CHECK(clip_encode_text_cached(&m, &cache, ids, 1, out, &e) != 0 && strstr(e.msg, "60000"));
    text_cache_free(&cache);
    tokenizer_free(&tok);
    clip_free(&m);
}

/* L = sum(out * r) as a function of the context embeddings. */
static double ctx_loss(const ClipModel *m, const int32_t *ids, int N, const float *ctx, int n_ctx, const float *r) {
    TowerActs a;
    Err e = {{0}};
    CHECK(text_acts_init(&a, m, ids, N, 0, &e) == 0);
    a.ctx = ctx, a.n_ctx = n_ctx;
    float out[2 * 24];
    text_forward(m, &a, out, NULL);
    tower_acts_free(&a);
    double s = 0;
    for (int i = 0; i < N * 24; i++) s += (double)out[i] * r[i];
    return s;
}

TEST(text_context_embeddings_replace_tokens_and_gradient_checks) {
    ClipConfig c = small_cfg();
    ClipModel m, g;
    clip_init_random(&m, &c, 5);
    clip_init_zeros(&g, &c);
    const int N = 2, M = 3, W = 32;
    /* [SOT] X X X words [EOT] with placeholder id 0 */
    int32_t ids[2 * 77] = {0};
    int32_t t0[] = {49406, 0, 0, 0, 320, 1125, 269, 49407}, t1[] = {49406, 0, 0, 0, 2368, 49407};
    memcpy(ids, t0, sizeof t0);
    memcpy(ids + 77, t1, sizeof t1);
    float ctx[2 * 3 * 32], r[2 * 24];
    for (int i = 0; i < N * M * W; i++) ctx[i] = 0.02f * (float)((i * 29) % 41 - 20);
    for (int i = 0; i < N * 24; i++) r[i] = (float)((i * 13) % 7 - 3) / 3.0f;
    /* with the context rows equal to the placeholder's embedding, the output is the plain tower's */
    float plain[2 * 24], same[2 * 3 * 32];
    Err e = {{0}};
    CHECK(clip_encode_text(&m, ids, N, plain, NULL, &e) == 0);
    for (int i = 0; i < N * M; i++) clip_token_row(&m, 0, same + (size_t)i * W);
    TowerActs a;
    CHECK(text_acts_init(&a, &m, ids, N, 1, &e) == 0);
    float out[2 * 24];
    a.ctx = same, a.n_ctx = M;
    text_forward(&m, &a, out, NULL);
    CHECK_CLOSE(out, plain, 48, 1e-6, 1e-6);
    tower_acts_free(&a);
    /* analytic gradient against central differences */
    CHECK(text_acts_init(&a, &m, ids, N, 1, &e) == 0);
    float dctx[2 * 3 * 32] = {0};
    a.ctx = ctx, a.dctx = dctx, a.n_ctx = M;
    text_forward(&m, &a, out, NULL);
    text_backward(&m, &g, &a, r, NULL);
    tower_acts_free(&a);
    double worst = 0;
    for (int i = 0; i < N * M * W; i += 7) {
        float keep = ctx[i];
        const float h = 1e-2f;
        ctx[i] = keep + h;
        double lp = ctx_loss(&m, ids, N, ctx, M, r);
        ctx[i] = keep - h;
        double lm = ctx_loss(&m, ids, N, ctx, M, r);
        ctx[i] = keep;
        double num = (lp - lm) / (2 * h), err = fabs(num - dctx[i]) / (1e-3 + fabs(num));
        if (err > worst) worst = err;
    }
    CHECK_MSG(worst < 2e-2, "worst relative gradient error %g", worst);
    clip_free(&m), clip_free(&g);
}
