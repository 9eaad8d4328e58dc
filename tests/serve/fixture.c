#include "serve/fixture.h"

#include <stdio.h>

#include "test.h"

BbServer *tiny_server(ServerOpts o, char *url, size_t cap) {
    static char model[1024];
    snprintf(model, sizeof model, "%s/tiny/model.safetensors", ref_dir());
    o.model = model;
    if (!o.dataset) o.dataset = "fmnist:test";
    Err e = {{0}};
    BbServer *s = bb_server_start(&o, &e);
    if (!s) test_fail(__FILE__, __LINE__, "%s", e.msg);
    else if (url) snprintf(url, cap, "http://127.0.0.1:%d", bb_server_port(s));
    return s;
}
