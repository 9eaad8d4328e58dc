/* libFuzzer target: arbitrary bodies of POST /v1/classify through the server's own request code
 * (JSON parsing, prompt sets, contexts, ids, base64 images), on a small random model written
 * once to a temporary file and Fashion-MNIST's test split, in loose mode so every field is
 * reachable. Every input must give a reply (200 or 4xx), never a crash or a leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/clip.h"
#include "serve/server.h"

static BbServer *server;

static BbServer *start(void) {
    static char path[256];
    snprintf(path, sizeof path, "/tmp/forget-fuzz-request-%d.safetensors", (int)getpid());
    ClipConfig c = {.embed_dim = 16, .has_vision = 1, .image_res = 16, .patch = 8, .v_width = 16, .v_layers = 1, .v_heads = 2,
                    .has_text = 1, .context = 77, .vocab = 49408, .t_width = 16, .t_layers = 1, .t_heads = 2};
    ClipModel m;
    Err e = {{0}};
    clip_init_random(&m, &c, 1);
    if (clip_save(&m, path, LAYOUT_OPENAI, ST_F32, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        abort();
    }
    clip_free(&m);
    ServerOpts o = {.model = path, .dataset = "fmnist:test", .allow_embeddings = 1, .max_prompts = 64, .max_images = 64};
    BbServer *s = bb_server_start(&o, &e);
    unlink(path);
    if (!s) {
        fprintf(stderr, "%s\n", e.msg);
        abort();
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!server) server = start();
    if (size > 1 << 16) return 0;
    unsigned status = 0;
    char *reply = bb_server_classify_json(server, (const char *)data, size, &status);
    if (!reply || (status != 200 && (status < 400 || status >= 500))) abort();
    free(reply);
    return 0;
}
