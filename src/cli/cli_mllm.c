/* What the MLLM commands share: opening a model with its tokenizer (tokenizer.model beside it unless
 * named), and an image file turned into the tower's patch tokens. */
#include <cjson/cJSON.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_mllm.h"
#include "io/image.h"
#include "io/preprocess.h"

int cli_mllm_open(const char *model, const char *tokenizer, Mllm *m, SpTokenizer **t, Err *e) {
    char *dup = xstrdup(model), *tok = tokenizer ? xstrdup(tokenizer) : xasprintf("%s/tokenizer.model", dirname(dup));
    free(dup);
    int rc = mllm_load(m, model, e);
    if (rc == 0) {
        *t = sp_load(tok, e);
        if (!*t) rc = -1;
        else if (sp_vocab_size(*t) != m->cfg.lm.vocab)
            rc = err_set(e, "%s has %d pieces, the model's vocabulary %d: not its tokenizer", tok, sp_vocab_size(*t),
                         m->cfg.lm.vocab);
        if (rc == 0 && m->cfg.image_token >= 0 && sp_piece_id(*t, "<image>") != m->cfg.image_token)
            rc = err_set(e, "%s: <image> is id %d there, %d in the model", tok, sp_piece_id(*t, "<image>"),
                         m->cfg.image_token);
        if (rc) {
            sp_free(*t);
            *t = NULL;
            mllm_free(m);
        }
    }
    free(tok);
    return rc;
}

int cli_mllm_image(const Mllm *m, const char *path, float *feats, Err *e) {
    Image8 im = {0};
    if (image_load(&im, path, e)) return -1;
    const int R = m->cfg.tower.image_res;
    float *px = xalloc_floats((size_t)3 * R * R);
    clip_preprocess(&im, R, px);
    image_free(&im);
    const int rc = mllm_encode_images(m, px, 1, feats, e);
    free(px);
    return rc;
}

int cli_file_kind_lm(const char *path) {
    SafeTensors st;
    Err e = {{0}};
    if (st_open(&st, path, &e)) return 0;
    int kind = 0;
    if (st_find(&st, "model.mm_projector.0.weight") || st_find(&st, "multi_modal_projector.linear_1.weight")) kind = 2;
    else if (st_find(&st, "model.embed_tokens.weight")) kind = 1;
    st_close(&st);
    return kind;
}

int cli_lm_convert(const char *in, const char *out, int mllm_layout, StDtype dtype, Err *e) {
    const int kind = cli_file_kind_lm(in);
    if (kind == 2) {
        Mllm m;
        if (mllm_load(&m, in, e)) return -1;
        /* the world a model was trained on travels with it */
        SafeTensors st;
        const char *kv[32];
        const int opened = st_open(&st, in, e) == 0;
        int n = 0, rc = opened ? 0 : -1;
        for (int i = 0; rc == 0 && i < st.n_meta && n < 15; i++)
            if (strncmp(st.meta_keys[i], "world.", 6) == 0 || strcmp(st.meta_keys[i], "stage") == 0)
                kv[2 * n] = st.meta_keys[i], kv[2 * n + 1] = st.meta_vals[i], n++;
        if (rc == 0) rc = mllm_save(&m, out, mllm_layout, dtype, kv, n, e);
        if (opened) st_close(&st);
        mllm_free(&m);
        return rc;
    }
    LmModel m;
    if (lm_load(&m, in, e)) return -1;
    const int rc = lm_save(&m, out, dtype, NULL, 0, e);
    lm_free(&m);
    return rc;
}

int cli_lm_info(const char *path, int json) {
    Err e = {{0}};
    const int kind = cli_file_kind_lm(path);
    Mllm mm = {0};
    LmModel lm = {0};
    const LmConfig *c;
    long params;
    const char *dtypes;
    if (kind == 2) {
        if (mllm_load(&mm, path, &e)) return cli_error("info", EXIT_WORK, "%s", e.msg);
        c = &mm.cfg.lm, params = mm.n_params, dtypes = mm.src_dtypes;
    } else {
        if (lm_load(&lm, path, &e)) return cli_error("info", EXIT_WORK, "%s", e.msg);
        c = &lm.cfg, params = lm.n_params, dtypes = lm.src_dtypes;
    }
    int rc = 0;
    if (json) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "model", path);
        cJSON_AddStringToObject(r, "kind", kind == 2 ? "mllm" : "lm");
        if (kind == 2) cJSON_AddStringToObject(r, "layout", mm.layout == MLLM_LLAVA ? "llava" : "llava-hf");
        cJSON_AddNumberToObject(r, "params", (double)params);
        cJSON_AddStringToObject(r, "dtypes", dtypes);
        cJSON_AddNumberToObject(r, "vocab", c->vocab);
        cJSON_AddNumberToObject(r, "width", c->width);
        cJSON_AddNumberToObject(r, "layers", c->layers);
        cJSON_AddNumberToObject(r, "heads", c->heads);
        cJSON_AddNumberToObject(r, "kv_heads", c->kv_heads);
        cJSON_AddNumberToObject(r, "hidden", c->hidden);
        cJSON_AddNumberToObject(r, "context", c->context);
        cJSON_AddNumberToObject(r, "rope_theta", c->rope_base);
        cJSON_AddBoolToObject(r, "tied", c->tied);
        if (kind == 2) {
            cJSON_AddNumberToObject(r, "image_tokens", mllm_image_tokens(&mm.cfg));
            cJSON_AddNumberToObject(r, "vision_width", mm.cfg.tower.v_width);
            cJSON_AddNumberToObject(r, "vision_layers", mm.cfg.tower.v_layers);
            cJSON_AddNumberToObject(r, "image_res", mm.cfg.tower.image_res);
            cJSON_AddNumberToObject(r, "select_layer", mm.cfg.select_layer);
            cJSON_AddNumberToObject(r, "image_token", mm.cfg.image_token);
        }
        rc = cli_json_line("info", r);
        cJSON_Delete(r);
    } else {
        printf("%s: %s, %ld parameters (%s)\n", path,
               kind == 2 ? (mm.layout == MLLM_LLAVA ? "LLaVA-shaped MLLM (LLaVA keys)" : "LLaVA-shaped MLLM (llava-hf keys)")
                         : "Llama-style LM",
               params, dtypes);
        printf("  LM: vocab %d, width %d, %d layers, %d heads (%d K/V), SwiGLU %d, context %d, rope theta %g, %s head\n",
               c->vocab, c->width, c->layers, c->heads, c->kv_heads, c->hidden, c->context, c->rope_base,
               c->tied ? "tied" : "own");
        if (kind == 2)
            printf("  vision tower: %d px, patch %d, width %d, %d layers; %d image tokens from layer %d; <image> id %d\n",
                   mm.cfg.tower.image_res, mm.cfg.tower.patch, mm.cfg.tower.v_width, mm.cfg.tower.v_layers,
                   mllm_image_tokens(&mm.cfg), mm.cfg.select_layer, mm.cfg.image_token);
    }
    if (kind == 2) mllm_free(&mm);
    else lm_free(&lm);
    return rc;
}
