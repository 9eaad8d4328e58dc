#include "serve/fixture.h"

#include <stdio.h>

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
