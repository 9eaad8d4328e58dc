#include "serve/fixture.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "models/unet.h"
#include "train/mllm_trainer.h"
#include "test.h"

const char *tiny_model_path(char *buf, size_t cap) {
    snprintf(buf, cap, "%s/tiny/model.safetensors", ref_dir());
    return buf;
}

int tiny_in_process(ClipModel *m, Tokenizer *t, Dataset *d, Err *e) {
    char model[1024];
    return clip_load(m, tiny_model_path(model, sizeof model), NULL, e) || tokenizer_init(t, e) ||
           dataset_load_named(d, "fmnist:test", NULL, e);
}

BbServer *tiny_server(ServerOpts o, char *url, size_t cap) {
    char model[1024]; /* the server copies what it needs while it starts */
    o.model = tiny_model_path(model, sizeof model);
    if (!o.dataset) o.dataset = "fmnist:test";
    Err e = {{0}};
    BbServer *s = bb_server_start(&o, &e);
    if (!s) test_fail(__FILE__, __LINE__, "%s", e.msg);
    else if (url) snprintf(url, cap, "http://127.0.0.1:%d", bb_server_port(s));
    return s;
}

size_t reply_collect(char *p, size_t a, size_t b, void *user) {
    ReplyBuf *g = user;
    g->buf = xrealloc(g->buf, g->len + a * b + 1);
    memcpy(g->buf + g->len, p, a * b);
    g->len += a * b;
    g->buf[g->len] = 0;
    return a * b;
}

/* A POST of len bytes when body is set, else a GET. */
static long http_request(const char *url, const char *body, size_t len, char **reply) {
    CURL *h = curl_easy_init();
    ReplyBuf g = {0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, reply_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &g);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (reply) *reply = g.buf;
    else free(g.buf);
    return status;
}

long http_post(const char *url, const char *body, size_t len, char **reply) { return http_request(url, body, len, reply); }
long http_get(const char *url, char **reply) { return http_request(url, NULL, 0, reply); }

void tiny_unet_file(char *path, size_t cap, const char *name, uint64_t seed) {
    snprintf(path, cap, "%s/%s", scratch_dir(), name);
    UNetConfig c;
    Err e = {{0}};
    CHECK(unet_config_named(&c, "unet-tiny", &e) == 0);
    c.ctx_dim = 32;
    UNet m;
    unet_alloc(&m, &c);
    Rng r;
    rng_seed(&r, seed);
    rng_fill_normal(&r, m.arena, m.n_params, 0, 0.2f);
    const char *meta[] = {"diffusion.T", "1000", "diffusion.beta", "sd", "diffusion.side", "8"};
    CHECK(unet_save(&m, path, UNET_DIFFUSERS, ST_F32, meta, 3, &e) == 0);
    unet_free(&m);
}

const char *tiny_mllm(char *path, size_t cap) {
    char *dir = xasprintf("%s/tiny-mllm", scratch_dir());
    snprintf(path, cap, "%s/mllm.safetensors", dir);
    FILE *f = fopen(path, "rb");
    if (f) { /* made once per test run */
        fclose(f);
        free(dir);
        return path;
    }
    ClipConfig cc;
    clip_config_named(&cc, "emoji-s");
    cc.v_layers = 2, cc.t_layers = 1; /* small and fast; the world's 32 px images */
    ClipModel clip;
    clip_init_random(&clip, &cc, 5);
    char *tower = xasprintf("%s/tiny-mllm-tower.safetensors", scratch_dir());
    Err e = {{0}};
    CHECK_MSG(clip_save(&clip, tower, LAYOUT_HF, ST_F32, &e) == 0, "%s", e.msg);
    clip_free(&clip);
    MllmTrainOpts o;
    mllm_train_defaults(&o);
    o.dir = dir, o.tower = tower, o.lm_config = "lm-tiny", o.vocab = 300, o.quiet = 1;
    for (int s = 0; s < MLLM_STAGES; s++) o.steps[s] = 6, o.batch[s] = 4;
    o.world = (WorldOpts){.people_a = 4, .people_b = 4, .general_emoji = 8, .fmnist_per_class = 2, .seed = 1};
    CHECK_MSG(mllm_train_stages(&o, &e) == 0, "%s", e.msg);
    free(tower), free(dir);
    return path;
}

MllmConfig tiny_mllm_config(void) {
    MllmConfig c = {0};
    c.tower = (ClipConfig){.embed_dim = 16, .has_vision = 1, .image_res = 8, .patch = 4, .v_width = 16, .v_layers = 2,
                           .v_heads = 2, .act = ACT_QUICKGELU};
    Err e = {0};
    lm_config_named(&c.lm, "lm-tiny", &e);
    c.lm.vocab = 32, c.lm.width = 16, c.lm.heads = 2, c.lm.kv_heads = 2, c.lm.hidden = 24, c.lm.context = 32;
    c.select_layer = 1, c.image_token = 5;
    return c;
}
