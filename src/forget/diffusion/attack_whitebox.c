/* The white-box attacks' one objective (attack_unlearndiff.c, attack_inversion.c): the erased
 * model's own denoising loss of target latents, conditioned on a prompt with learned rows, and its
 * gradient with respect to those rows, through the UNet and the text tower (both frozen). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forget/diffusion/attack_internal.h"
#include "models/clip_train.h"

double attack_denoise_loss(const Text2Image *g, const int32_t *ids, const float *rows, int k, const float *x0, int B,
                           const int32_t *t, const float *eps, float *drows, Err *e) {
    const ClipModel *m = &g->clip;
    const int L = g->ctx_len, W = g->unet.cfg.ctx_dim, ke = g->n_escape, kk = ke + k, train = drows != NULL;
    const size_t row = (size_t)L * W;
    const long per = (long)g->unet.cfg.in_ch * g->side * g->side, n = (long)B * per;
    float *rep = xalloc_floats((size_t)kk * W), *hid = xalloc_floats(row), *cond = xalloc_floats((size_t)B * row);
    if (ke) memcpy(rep, g->escape, sizeof(float) * (size_t)ke * W);
    memcpy(rep + (size_t)ke * W, rows, sizeof(float) * (size_t)k * W);
    TowerActs a = {0};
    double loss = NAN;
    if (text_acts_reuse(&a, m, ids, 1, train, 1, e) == 0) {
        a.ctx = rep, a.n_ctx = kk;
        text_forward(m, &a, NULL, NULL);
        clip_text_hidden_forward(m, &a, hid);
        for (int b = 0; b < B; b++) memcpy(cond + (size_t)b * row, hid, sizeof(float) * row);
        UNetActs *ua = unet_acts_new(&g->unet, B, g->side, L, train);
        float *xt = xalloc_floats((size_t)n), *pred = xalloc_floats((size_t)n), *tt = xalloc_floats((size_t)B);
        for (int b = 0; b < B; b++) tt[b] = (float)t[b];
        diffusion_add_noise(xt, x0, eps, t, B, per, &g->sched);
        unet_forward(&g->unet, ua, xt, tt, cond, pred);
        loss = 0;
        for (long i = 0; i < n; i++) loss += ((double)pred[i] - eps[i]) * ((double)pred[i] - eps[i]);
        loss /= (double)n;
        if (train) {
            float *deps = xalloc_floats((size_t)n), *dctx = xcalloc((size_t)B * row, sizeof(float));
            float *dhid = xcalloc(row, sizeof(float)), *drep = xcalloc((size_t)kk * W, sizeof(float));
            for (long i = 0; i < n; i++) deps[i] = (float)(2.0 * ((double)pred[i] - eps[i]) / (double)n);
            unet_backward(&g->unet, ua, deps, NULL, NULL, dctx);
            for (int b = 0; b < B; b++) /* the rows are shared by every target */
                for (size_t q = 0; q < row; q++) dhid[q] += dctx[(size_t)b * row + q];
            a.dctx = drep;
            text_backward_hidden(m, NULL, &a, dhid);
            memcpy(drows, drep + (size_t)ke * W, sizeof(float) * (size_t)k * W);
            free(deps), free(dctx), free(dhid), free(drep);
        }
        unet_acts_free(ua);
        free(xt), free(pred), free(tt);
    }
    tower_acts_free(&a);
    free(rep), free(hid), free(cond);
    return loss;
}
