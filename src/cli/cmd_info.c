#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "cli/cli_mllm.h"
#include "io/safetensors.h"

static int run(int argc, char **argv);

const Command cmd_info = {
    "info", "architecture, parameter count, dtype and layout of a checkpoint",
    "usage: forget info --model FILE [--check] [--json]\n"
    "\n"
    "Loads a CLIP safetensors checkpoint (OpenAI/open_clip or Hugging Face key layout)\n"
    "and prints what was inferred from its tensor shapes and __metadata__. A Stable-Diffusion-shaped\n"
    "UNet (diffusers or CompVis keys) is recognised by its conv_in and described instead.\n",
    run};

/* An escape-token file (forget erase --method escape): its tokens and the settings it was made with. */
static int escape_info(SafeTensors *st, const char *path, int json) {
    const StTensor *t = st_find(st, "emb_params");
    if (!t || t->ndim != 2) {
        st_close(st);
        return cli_error("info", EXIT_WORK, "%s: format forget-escape without an emb_params [k, width] tensor", path);
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "model", path);
    cJSON_AddStringToObject(r, "kind", "escape tokens");
    cJSON_AddNumberToObject(r, "tokens", (double)t->shape[0]);
    cJSON_AddNumberToObject(r, "width", (double)t->shape[1]);
    for (int i = 0; i < st->n_meta; i++)
        if (strncmp(st->meta_keys[i], "escape.", 7) == 0) cJSON_AddStringToObject(r, st->meta_keys[i], st->meta_vals[i]);
    int rc = 0;
    if (json) rc = cli_json_line("info", r);
    else {
        printf("model       %s\nkind        escape tokens (forget erase --method escape)\ntokens      %lld x %lld\n", path,
               (long long)t->shape[0], (long long)t->shape[1]);
        for (int i = 0; i < st->n_meta; i++)
            if (strncmp(st->meta_keys[i], "escape.", 7) == 0) printf("%-11s %s\n", st->meta_keys[i] + 7, st->meta_vals[i]);
    }
    cJSON_Delete(r);
    st_close(st);
    return rc;
}

static int run(int argc, char **argv) {
    int json_failed = 0;
    const char *model = NULL;
    int json = 0, check = 0;
    const Opt opts[] = {
        O_STR("--model", "FILE", &model, OPT_REQUIRED, "the checkpoint"),
        opt_bind(OPT_CHECK, &check),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_info, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    if (cli_file_is_unet(model)) return cli_unet_info(model, json);
    if (cli_file_kind_lm(model)) return cli_lm_info(model, json);
    {
        SafeTensors st;
        Err e = {{0}};
        if (st_open(&st, model, &e) == 0) {
            const char *f = st_meta(&st, "format");
            if (f && strcmp(f, "forget-escape") == 0) return escape_info(&st, model, json);
            st_close(&st);
        }
    }
    ClipModel m;
    if (cli_load_model_checked("info", model, &m, -1, check, PREC_FP32)) return EXIT_WORK;
    const ClipConfig *c = &m.cfg;
    long pv = clip_param_count(c, 1, 0), pt = clip_param_count(c, 0, 1);
    const char *layout = m.layout == LAYOUT_OPENAI ? "openai" : "hf";
    const char *act = c->act == ACT_GELU ? "gelu" : "quickgelu";
    if (json) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "model", model);
        cJSON_AddStringToObject(r, "layout", layout);
        cJSON_AddStringToObject(r, "dtype", m.src_dtypes);
        cJSON_AddStringToObject(r, "activation", act);
        cJSON_AddNumberToObject(r, "embed_dim", c->embed_dim);
        cJSON_AddNumberToObject(r, "params", (double)(pv + pt));
        if (c->has_vision) {
            cJSON *v = cJSON_AddObjectToObject(r, "vision");
            cJSON_AddNumberToObject(v, "image_resolution", c->image_res);
            cJSON_AddNumberToObject(v, "patch_size", c->patch);
            cJSON_AddNumberToObject(v, "width", c->v_width);
            cJSON_AddNumberToObject(v, "layers", c->v_layers);
            cJSON_AddNumberToObject(v, "heads", c->v_heads);
            cJSON_AddNumberToObject(v, "params", (double)pv);
        }
        if (c->has_text) {
            cJSON *t = cJSON_AddObjectToObject(r, "text");
            cJSON_AddNumberToObject(t, "context_length", c->context);
            cJSON_AddNumberToObject(t, "vocab_size", c->vocab);
            cJSON_AddNumberToObject(t, "width", c->t_width);
            cJSON_AddNumberToObject(t, "layers", c->t_layers);
            cJSON_AddNumberToObject(t, "heads", c->t_heads);
            cJSON_AddNumberToObject(t, "params", (double)pt);
        }
        json_failed = cli_json_line("info", r);
        cJSON_Delete(r);
    } else {
        printf("model       %s\nlayout      %s\ndtype       %s\nactivation  %s\nembed_dim   %d\nparameters  %.2fM\n",
               model, layout, m.src_dtypes, act, c->embed_dim, (pv + pt) / 1e6);
        if (c->has_vision)
            printf("vision      %dx%d input, patch %d, width %d, %d layers, %d heads, %.2fM params\n", c->image_res,
                   c->image_res, c->patch, c->v_width, c->v_layers, c->v_heads, pv / 1e6);
        else
            printf("vision      none\n");
        if (c->has_text)
            printf("text        context %d, vocab %d, width %d, %d layers, %d heads, %.2fM params\n", c->context,
                   c->vocab, c->t_width, c->t_layers, c->t_heads, pt / 1e6);
        else
            printf("text        none\n");
    }
    clip_free(&m);
    return json_failed;
}
