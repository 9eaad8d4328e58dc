#include "forget/diffusion/attack_victim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forget/diffusion/erase.h"
#include "io/safetensors.h"

static int is_json(const char *path) {
    const size_t n = strlen(path);
    return n >= 5 && strcmp(path + n - 5, ".json") == 0;
}

int victim_open_local(VictimHold *h, const char *unet, const char *clip, const char *vae, const char *erasure,
                      const char *original, Err *e) {
    memset(h, 0, sizeof *h);
    const char *esc = erasure && !is_json(erasure) ? erasure : NULL, *sld = erasure && is_json(erasure) ? erasure : NULL;
    char *src = NULL;
    if (!original) { /* a UNet forget erase wrote names its source */
        SafeTensors st;
        if (st_open(&st, unet, e)) return -1;
        const char *s = st_meta(&st, "erase.source");
        if (s && *s) src = xstrdup(s);
        st_close(&st);
    }
    const char *orig = original ? original : src ? src : unet;
    int rc = t2i_load(&h->g, unet, clip, vae, e);
    if (!rc) h->has_g = 1, rc = erase_apply_files(&h->g, esc, sld, e);
    if (!rc) {
        rc = t2i_load(&h->orig, orig, clip, vae, e);
        if (rc) err_prefix(e, "the original model (--original): ");
        else h->has_orig = 1;
    }
    if (!rc) {
        ServerOpts so = {.diffusion = unet, .text_encoder = clip, .vae = vae, .escape = esc, .sld = sld, .port = 0,
                         .max_gen_images = 256, .max_gen_prompts = 16};
        if (!(h->server = bb_server_start(&so, e))) rc = -1;
    }
    if (!rc) {
        snprintf(h->url, sizeof h->url, "http://127.0.0.1:%d", bb_server_port(h->server));
        rc = bb_client_init(&h->client, h->url, NULL, e);
        if (!rc) h->has_client = 1;
    }
    free(src);
    if (rc) return victim_close(h), -1;
    h->v = (Victim){.api = &h->client, .g = &h->g, .orig = &h->orig, .side = h->g.image_side};
    return 0;
}

int victim_open_api(VictimHold *h, const char *url, Err *e) {
    memset(h, 0, sizeof *h);
    if (bb_client_init(&h->client, url, NULL, e)) return -1;
    h->has_client = 1;
    long images = 0;
    int side = 0;
    if (bb_gen_stats(&h->client, &images, &side, e)) return victim_close(h), -1;
    h->v = (Victim){.api = &h->client, .side = side};
    return 0;
}

void victim_close(VictimHold *h) {
    if (h->has_client) bb_client_free(&h->client);
    if (h->server) bb_server_stop(h->server);
    if (h->has_g) t2i_free(&h->g);
    if (h->has_orig) t2i_free(&h->orig);
    memset(h, 0, sizeof *h);
}

int victim_server_images(VictimHold *h, long *images, Err *e) {
    int side = 0;
    return bb_gen_stats(&h->client, images, &side, e);
}
