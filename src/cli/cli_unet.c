/* The UNet side of forget info, convert and init (a file is a UNet when it holds either layout's
 * conv_in): one place that prints a UNet's shape and writes one in a layout. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "models/unet.h"

const char *const UNET_LAYOUTS[] = {"diffusers", "compvis", NULL};
const Opt OPT_UNET_LAYOUT = O_CHOICE("--unet-layout", NULL, UNET_LAYOUTS, "key layout of a UNet output: diffusers or compvis");

int cli_file_is_unet(const char *path) {
    SafeTensors st;
    Err e = {{0}};
    if (st_open(&st, path, &e)) return 0;
    const int u = unet_file_is_unet(&st);
    st_close(&st);
    return u;
}

int cli_unet_info(const char *path, int json) {
    Err e = {{0}};
    SafeTensors st;
    if (st_open(&st, path, &e)) return cli_error("info", EXIT_WORK, "%s", e.msg);
    const int layout = unet_detect_layout(&st);
    st_close(&st);
    UNet m;
    if (unet_load(&m, path, 0, &e)) return cli_error("info", EXIT_WORK, "%s", e.msg);
    const UNetConfig *c = &m.cfg;
    char ch[64] = "", at[64] = "";
    for (int l = 0; l < c->levels; l++) {
        snprintf(ch + strlen(ch), sizeof ch - strlen(ch), "%s%d", l ? "/" : "", c->ch[l]);
        snprintf(at + strlen(at), sizeof at - strlen(at), "%s%d", l ? "/" : "", c->attn[l]);
    }
    int rc = 0;
    if (json) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "model", path);
        cJSON_AddStringToObject(r, "kind", "unet");
        cJSON_AddStringToObject(r, "layout", UNET_LAYOUTS[layout]);
        cJSON_AddNumberToObject(r, "params", (double)m.n_params);
        cJSON_AddNumberToObject(r, "in_channels", c->in_ch);
        cJSON_AddNumberToObject(r, "out_channels", c->out_ch);
        cJSON_AddStringToObject(r, "channels", ch);
        cJSON_AddStringToObject(r, "attention", at);
        cJSON_AddNumberToObject(r, "layers_per_block", c->layers);
        cJSON_AddNumberToObject(r, "heads", c->heads);
        cJSON_AddNumberToObject(r, "transformer_depth", c->depth);
        cJSON_AddNumberToObject(r, "context_dim", c->ctx_dim);
        cJSON_AddNumberToObject(r, "groups", c->groups);
        rc = cli_json_line("info", r);
        cJSON_Delete(r);
    } else {
        printf("model       %s\nkind        Stable-Diffusion-shaped UNet\nlayout      %s\nparameters  %.2fM\n", path,
               UNET_LAYOUTS[layout], m.n_params / 1e6);
        printf("levels      %d (channels %s, attention %s), %d resnets a level, %d heads, depth %d\n", c->levels, ch, at,
               c->layers, c->heads, c->depth);
        printf("io          %d -> %d channels, context width %d, %d groups\n", c->in_ch, c->out_ch, c->ctx_dim, c->groups);
    }
    unet_free(&m);
    return rc;
}

int cli_unet_convert(const char *in, const char *out, int layout, StDtype dtype) {
    Err e = {{0}};
    UNet m;
    if (unet_load(&m, in, 0, &e)) return cli_error("convert", EXIT_WORK, "%s", e.msg);
    SafeTensors st; /* the source's own metadata (schedule, text encoder) travels along */
    const char **kv = NULL;
    int n = 0;
    if (st_open(&st, in, &e) == 0) {
        kv = xmalloc(sizeof(char *) * (size_t)(2 * st.n_meta + 2));
        for (int i = 0; i < st.n_meta; i++)
            if (strncmp(st.meta_keys[i], "unet.", 5) != 0 && strcmp(st.meta_keys[i], "format") != 0)
                kv[2 * n] = st.meta_keys[i], kv[2 * n + 1] = st.meta_vals[i], n++;
    }
    const int rc = unet_save(&m, out, layout, dtype, kv, n, &e) ? cli_error("convert", EXIT_WORK, "%s", e.msg) : 0;
    if (kv) st_close(&st);
    free(kv);
    unet_free(&m);
    return rc;
}
