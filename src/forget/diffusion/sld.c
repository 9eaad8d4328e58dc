/* SLD, Safe Latent Diffusion (Schramowski et al., CVPR 2023; diffusion-erasure.md 3.4): guidance
 * away from a safety concept at sampling time (models/diffusion.h SafeGuidance); nothing is
 * trained. The safety concept is the erased concept's name (the published default is a list of
 * unsafe words). A guidance file is JSON: {"format": "forget-sld", "concept", "config", and the
 * five parameters}; forget generate --sld FILE and forget serve --sld FILE apply it.
 * Note: the notes' 3.4 says mu is zeroed where e_p - e_S < threshold; the official pipeline
 * (sld_pipeline.py and diffusers' copy) zeroes it where e_p - e_S >= threshold, which is what
 * runs here. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "forget/diffusion/erase.h"
#include "io/json_file.h"

SafeGuidance sld_config(int strong) {
    /* sld_guidance_scale, threshold, momentum scale, momentum beta, warm-up steps [V] */
    if (strong) return (SafeGuidance){.scale = 2000, .threshold = 0.025f, .momentum = 0.5f, .beta = 0.7f, .warmup = 7};
    return (SafeGuidance){.scale = 1000, .threshold = 0.01f, .momentum = 0.3f, .beta = 0.4f, .warmup = 10};
}

int sld_save(const char *path, const char *concept, int strong, Err *e) {
    const SafeGuidance c = sld_config(strong);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "forget-sld");
    cJSON_AddStringToObject(j, "concept", concept);
    cJSON_AddStringToObject(j, "config", strong ? "strong" : "medium");
    cJSON_AddNumberToObject(j, "sld_guidance_scale", c.scale);
    cJSON_AddNumberToObject(j, "sld_threshold", c.threshold);
    cJSON_AddNumberToObject(j, "sld_momentum_scale", c.momentum);
    cJSON_AddNumberToObject(j, "sld_mom_beta", c.beta);
    cJSON_AddNumberToObject(j, "sld_warmup_steps", c.warmup);
    const int rc = json_write_atomic(path, j, e);
    cJSON_Delete(j);
    return rc;
}

static int num(const cJSON *j, const char *key, const char *path, double lo, double hi, double *out, Err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi)
        return err_set(e, "%s: \"%s\" must be a number in [%g, %g]", path, key, lo, hi);
    *out = v->valuedouble;
    return 0;
}

int sld_load_apply(Text2Image *g, const char *path, Err *e) {
    cJSON *j = json_read_file(path);
    if (!j) return err_set(e, "%s: not a readable JSON file", path);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "format"), *c = cJSON_GetObjectItemCaseSensitive(j, "concept");
    int rc = 0;
    double s = 0, t = 0, m = 0, b = 0, w = 0;
    if (!cJSON_IsString(f) || strcmp(f->valuestring, "forget-sld") != 0)
        rc = err_set(e, "%s: \"format\" is not \"forget-sld\" (forget erase --method sld writes these)", path);
    else if (!cJSON_IsString(c) || !*c->valuestring) rc = err_set(e, "%s: \"concept\" must be a non-empty string", path);
    if (!rc)
        rc = num(j, "sld_guidance_scale", path, 0, 1e6, &s, e) || num(j, "sld_threshold", path, -10, 10, &t, e) ||
             num(j, "sld_momentum_scale", path, 0, 10, &m, e) || num(j, "sld_mom_beta", path, 0, 1, &b, e) ||
             num(j, "sld_warmup_steps", path, 0, 100000, &w, e);
    if (!rc) {
        const SafeGuidance p = {.scale = (float)s, .threshold = (float)t, .momentum = (float)m, .beta = (float)b,
                                .warmup = (int)w};
        rc = t2i_set_safe(g, c->valuestring, &p, e);
    }
    cJSON_Delete(j);
    return rc ? -1 : 0;
}
