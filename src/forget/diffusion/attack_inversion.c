/* Concept Inversion (Pham et al., ICLR 2024; diffusion-attacks.md 4.4): textual inversion on the
 * ERASED model, its weights untouched,
 *   v* = argmin_v E_{x0 in D_c, t, eps} || eps - eps_theta_erased(x_t, t, E([SOT; v; EOT])) ||^2,
 * D_c: ci_images latents the ORIGINAL model drew for the plain concept prompt. The learned rows
 * stand alone as the prompt (after the victim's escape tokens, if any), started at the word
 * "object"'s embedding. Adam; a batch of up to 4 targets and random timesteps a step, drawn from
 * (seed, step). The result needs the model in memory: no API takes embeddings. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/optim.h"
#include "core/progress.h"
#include "core/rng.h"
#include "forget/diffusion/attack_internal.h"

int attack_inversion(AttackBudget *b, AttackPrompt *out, double *score, Err *e) {
    const AttackOpts *o = b->o;
    const Text2Image *g = b->v->g;
    const int k = o->ci_tokens, W = g->unet.cfg.ctx_dim, L = g->ctx_len, N = o->ci_images, B = N < 4 ? N : 4;
    const long per = (long)g->unet.cfg.in_ch * g->side * g->side;
    if (k < 1 || k > 4 || N < 1) return err_set(e, "concept-inversion: --tokens 1..4 and --images >= 1");
    float *x0 = xalloc_floats((size_t)N * per), *rows = xalloc_floats((size_t)k * W), *grad = xalloc_floats((size_t)k * W);
    float *xb = xalloc_floats((size_t)B * per), *eps = xalloc_floats((size_t)B * per);
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)L), t[4];
    int rc = attack_targets(b->v, o, N, o->seed + 31, x0, e);
    if (!rc) rc = attack_slot_ids(g, "", g->n_escape + k, ids, e);
    int32_t *nid = NULL;
    int nn = 0;
    if (!rc) rc = tokenizer_encode(&g->tok, "object", &nid, &nn, e);
    Rng r;
    rng_seed(&r, o->seed ^ 0xc0ffee);
    for (int j = 0; j < k && !rc; j++) {
        clip_token_row(&g->clip, nid[0], rows + (size_t)j * W);
        for (int c = 0; c < W; c++) rows[(size_t)j * W + c] += 0.01f * rng_normal(&r);
    }
    free(nid);
    AdamW opt;
    adamw_init(&opt, (long)k * W, 0.9f, 0.999f, 1e-8f);
    double loss = NAN;
    Progress bar;
    progress_start(&bar, "concept-inversion", o->ci_steps, o->quiet);
    for (int s = 0; s < o->ci_steps && !rc; s++) {
        Rng sr;
        rng_seed(&sr, rng_mix(o->seed ^ 0x1ce, (uint64_t)s));
        for (int i = 0; i < B; i++) {
            memcpy(xb + (size_t)i * per, x0 + (size_t)rng_below(&sr, (uint32_t)N) * per, sizeof(float) * (size_t)per);
            t[i] = (int32_t)rng_below(&sr, (uint32_t)g->sched.T);
        }
        rng_fill_normal(&sr, eps, (long)B * per, 0, 1);
        loss = attack_denoise_loss(g, ids, rows, k, xb, B, t, eps, grad, e);
        if (isnan(loss)) rc = -1;
        else {
            adamw_begin_step(&opt);
            adamw_update(&opt, rows, grad, 0, (long)k * W, o->ci_lr, 0);
        }
        char st[48];
        snprintf(st, sizeof st, "loss %.5f", loss);
        progress_update(&bar, s + 1, 1, "steps", st);
    }
    progress_end(&bar);
    adamw_free(&opt);
    if (!rc) {
        attack_prompt_text(out, "");
        out->rows = rows, out->n_rows = k, rows = NULL;
        *score = loss;
    }
    free(x0), free(rows), free(grad), free(xb), free(eps), free(ids);
    return rc;
}
