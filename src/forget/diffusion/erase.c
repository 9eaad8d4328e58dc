/* forget erase's dispatch: load what a method needs, run it, write its result. */
#include "forget/diffusion/erase.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/threads.h"
#include "forget/diffusion/escape_file.h"
#include "io/safetensors.h"

static const char *const NAMES[] = {"escape", "esd-x", "esd-u", "fmn", "uce", "sld"};

const char *erase_method_name(int method) {
    return method >= 0 && method <= ERASE_SLD ? NAMES[method] : "?";
}

void erase_defaults(EraseOpts *o) {
    memset(o, 0, sizeof *o);
    escape_defaults(&o->escape);
    o->esd_eta = 2.0, o->uce_guide = "", o->uce_lambda = 0.5, o->uce_erase_scale = 1, o->uce_preserve_scale = 1;
    o->dataset = "fmnist";
}

int erase_apply_files(Text2Image *g, const char *escape, const char *sld, Err *e) {
    if (escape) {
        float *z = NULL;
        int k = 0;
        if (escape_load(escape, &g->clip, &g->tok, &z, &k, e)) return -1;
        const int rc = t2i_set_escape(g, z, k, e);
        free(z);
        if (rc) return -1;
    }
    return sld ? sld_load_apply(g, sld, e) : 0;
}

double erase_peak_mb(void) {
    /* VmHWM, the peak of this program's own memory map: getrusage's ru_maxrss survives execve, so a
     * process started by a large parent would report the parent's size */
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double mb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) mb = atof(line + 6) / 1024.0;
    if (f) fclose(f);
    if (mb < 0) { /* no procfs */
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        mb = ru.ru_maxrss / 1024.0;
    }
    return mb;
}

int erase_save_unet(const Text2Image *g, const char *src, const char *path, const EraseOpts *o, Err *e) {
    SafeTensors st;
    if (st_open(&st, src, e)) return -1;
    enum { MAX_KV = 64 };
    const char *kv[2 * MAX_KV];
    char *owned[4] = {0};
    int n = 0;
    for (int i = 0; i < st.n_meta && n < MAX_KV - 4; i++) {
        const char *k = st.meta_keys[i];
        if (strncmp(k, "diffusion.", 10) != 0) continue;
        const char *v = st.meta_vals[i];
        if (strcmp(k, "diffusion.vae") == 0 && *v && v[0] != '/') { /* relative to the source's directory */
            const char *slash = strrchr(src, '/');
            char *rel = slash ? xasprintf("%.*s/%s", (int)(slash - src), src, v) : xstrdup(v);
            char abs[PATH_MAX];
            owned[0] = realpath(rel, abs) ? xstrdup(abs) : rel;
            if (owned[0] != rel) free(rel);
            v = owned[0];
        }
        kv[2 * n] = k, kv[2 * n + 1] = v, n++;
    }
    char steps[32];
    snprintf(steps, sizeof steps, "%d", o->steps);
    const char *mine[] = {"erase.method", erase_method_name(o->method), "erase.concept", o->concept, "erase.source", src,
                          "erase.steps", steps};
    for (int i = 0; i < 4; i++) kv[2 * n] = mine[2 * i], kv[2 * n + 1] = mine[2 * i + 1], n++;
    const int rc = unet_save(&g->unet, path, UNET_DIFFUSERS, ST_F32, kv, n, e);
    st_close(&st);
    free(owned[0]);
    return rc;
}

int erase_check_concept(const char *concept, const char *const *preserve, int n_preserve, Err *e) {
    Tokenizer t = {0};
    const int rc = tokenizer_init(&t, e) || escape_check_concept(&t, concept, preserve, n_preserve, e) ? -1 : 0;
    tokenizer_free(&t);
    return rc;
}

static int run_escape(const EraseOpts *o, EraseResult *r, Err *e) {
    ClipModel m;
    const ClipLoadOpts lo = {.act_override = -1};
    if (clip_load(&m, o->clip, &lo, e)) return -1;
    Tokenizer t = {0};
    int rc = tokenizer_init(&t, e);
    EscapeOpts eo = o->escape;
    eo.seed = o->seed, eo.quiet = o->quiet;
    if (o->lr > 0) eo.lr = o->lr;
    if (o->steps > 0) eo.steps = o->steps;
    float *z = xalloc_floats((size_t)eo.k * m.cfg.t_width);
    EscapeResult er;
    if (!rc) rc = escape_train(&m, &t, o->concept, o->preserve, o->n_preserve, &eo, z, &er, e);
    if (!rc) {
        char k[16], lam[32], al[32], lr[32], st[16];
        snprintf(k, sizeof k, "%d", eo.k), snprintf(lam, sizeof lam, "%g", eo.lambda), snprintf(al, sizeof al, "%g", eo.alpha);
        snprintf(lr, sizeof lr, "%g", eo.lr), snprintf(st, sizeof st, "%d", eo.steps);
        const char *meta[] = {"escape.method", "escape token (our reconstruction, diffusion-erasure.md 2.1)",
                              "escape.tcs", eo.tcs == TCS_DIFF ? "diff" : "proj", "escape.loss",
                              eo.loss == ESCAPE_DENSE ? "dense" : "pooled", "escape.lambda", lam, "escape.alpha", al,
                              "escape.lr", lr, "escape.steps", st, "escape.neutral", eo.neutral};
        rc = escape_save(o->out, z, eo.k, &m, &t, o->concept, meta, 8, e);
        r->trainable = er.trainable, r->loss = er.loss;
    }
    free(z);
    tokenizer_free(&t);
    clip_free(&m);
    return rc;
}

static int run_unet_method(const EraseOpts *o, EraseResult *r, Err *e) {
    Text2Image g;
    if (t2i_load(&g, o->unet, o->clip, o->vae, e)) return -1;
    int rc = 0;
    const int steps = o->steps;
    switch (o->method) {
    case ERASE_UCE: {
        const long n = uce_apply(&g, o->concept, o->preserve, o->n_preserve, o->uce_guide, o->uce_lambda,
                                 o->uce_erase_scale, o->uce_preserve_scale, e);
        if (n < 0) rc = -1;
        r->trainable = n;
        break;
    }
    case ERASE_ESD_X:
    case ERASE_ESD_U:
        rc = esd_train(&g, o->concept, o->method == ERASE_ESD_X, o->lr, steps, o->esd_eta, o->seed, o->quiet, &r->trainable,
                       &r->loss, e);
        break;
    case ERASE_FMN:
        rc = fmn_train(&g, o->concept, o->dataset, o->data_dir, o->lr, steps, o->seed, o->quiet, &r->trainable, &r->loss,
                       e);
        break;
    default: rc = err_set(e, "erase: method %d has no UNet", o->method);
    }
    if (!rc) rc = erase_save_unet(&g, o->unet, o->out, o, e);
    t2i_free(&g);
    return rc;
}

int erase_run(const EraseOpts *o, EraseResult *r, Err *e) {
    memset(r, 0, sizeof *r);
    const double t0 = now_seconds();
    int rc;
    if (!o->concept) return err_set(e, "erase: no concept");
    if (erase_check_concept(o->concept, o->preserve, o->n_preserve, e)) return -1;
    if (o->method == ERASE_ESCAPE) rc = run_escape(o, r, e);
    else if (o->method == ERASE_SLD) {
        ClipModel m; /* the guidance file is only written for a text encoder that loads */
        const ClipLoadOpts lo = {.act_override = -1};
        if (!(rc = clip_load(&m, o->clip, &lo, e))) clip_free(&m);
        if (!rc) rc = sld_save(o->out, o->concept, o->sld_strong, e);
    } else
        rc = run_unet_method(o, r, e);
    r->seconds = now_seconds() - t0;
    r->peak_mb = erase_peak_mb();
    return rc;
}
