#include "train/vae_trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "core/threads.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "models/vae.h"
#include "train/trainer.h"

void vae_train_defaults(VaeTrainOpts *o) {
    *o = (VaeTrainOpts){.data = "fmnist:train", .net = "vae-f4", .out = "vae.safetensors", .side = 32, .batch = 32,
                        .steps = 1500, .ckpt_every = 200, .lr = 1e-3, .kl_weight = 1e-6, .seed = 1};
}

typedef struct {
    const VaeTrainOpts *o;
    Dataset d;
    Vae v;
    VaeGrads g;
    UNetActs *ae, *ad;
    int *perm, perm_epoch;
    float *x, *mom, *z, *noise, *rec, *drec, *dz, *dmom;
    long nx, nz;
    double l1_sum;
    long l1_n, tail_from;
} Run;

static int vae_step(void *user, long step, float *loss, Err *e) {
    (void)e;
    Run *r = user;
    const VaeTrainOpts *o = r->o;
    const int B = o->batch;
    const int epoch = (int)((step * B) / r->d.n);
    if (epoch != r->perm_epoch) train_epoch_order(r->perm, r->d.n, o->seed, r->perm_epoch = epoch);
    const long per = r->nx / B, zper = r->nz / B;
    for (int i = 0; i < B; i++) {
        const int smp = r->perm[(step * B + i) % r->d.n];
        Rng rng;
        rng_seed(&rng, train_mix(o->seed, (uint64_t)step * (uint64_t)B + (uint64_t)i));
        dataset_pixels(&r->d, &smp, 1, o->side, &PIXELS_HALF, r->x + (size_t)i * per, r->d.glyphs ? &rng : NULL, 0);
        rng_fill_normal(&rng, r->noise + (size_t)i * zper, zper, 0, 1);
    }
    vae_encode(&r->v, r->ae, r->x, r->mom);
    /* z = mean + exp(logvar / 2) n, logvar clamped to [-30, 20] as diffusers does */
    double kl = 0;
    for (int i = 0; i < B; i++)
        for (long j = 0; j < zper; j++) {
            const float m = r->mom[(size_t)i * 2 * zper + j], lv = fminf(20.0f, fmaxf(-30.0f, r->mom[(size_t)i * 2 * zper + zper + j]));
            r->z[(size_t)i * zper + j] = m + expf(0.5f * lv) * r->noise[(size_t)i * zper + j];
            kl += 0.5 * (m * m + exp(lv) - 1 - lv);
        }
    vae_decode(&r->v, r->ad, r->z, r->rec);
    double l1 = 0;
    for (long i = 0; i < r->nx; i++) {
        const float d = r->rec[i] - r->x[i];
        l1 += fabsf(d);
        r->drec[i] = (float)((d > 0) - (d < 0)) / B; /* d(sum over an image, mean over images) */
    }
    *loss = (float)((l1 + o->kl_weight * kl) / B);
    memset(r->dz, 0, sizeof(float) * (size_t)r->nz);
    unet_backward(&r->v.dec, r->ad, r->drec, &r->g.dec, r->dz, NULL);
    const float kw = (float)(o->kl_weight / B);
    for (int i = 0; i < B; i++)
        for (long j = 0; j < zper; j++) {
            const size_t im = (size_t)i * 2 * zper + j, il = im + zper, iz = (size_t)i * zper + j;
            const float m = r->mom[im], raw = r->mom[il], lv = fminf(20.0f, fmaxf(-30.0f, raw));
            const float sd = expf(0.5f * lv), inside = raw > -30.0f && raw < 20.0f;
            r->dmom[im] = r->dz[iz] + kw * m;
            r->dmom[il] = inside * (r->dz[iz] * r->noise[iz] * 0.5f * sd + kw * 0.5f * (expf(lv) - 1));
        }
    unet_backward(&r->v.enc, r->ae, r->dmom, &r->g.enc, NULL, NULL);
    if (step >= r->tail_from) r->l1_sum += l1 / (double)r->nx, r->l1_n++;
    return 0;
}

/* 1 / std of the posterior means over up to 2,000 images (eval-mode encoder). */
static float scaling_factor(Run *r) {
    const int B = r->o->batch, n = r->d.n < 2000 ? r->d.n : 2000;
    const long per = r->nx / B, zper = r->nz / B;
    double s = 0, s2 = 0;
    long cnt = 0;
    UNetActs *a = unet_acts_new(&r->v.enc, B, r->o->side, 1, 0);
    for (int b0 = 0; b0 + B <= n; b0 += B) {
        for (int i = 0; i < B; i++) {
            const int smp = b0 + i;
            dataset_pixels(&r->d, &smp, 1, r->o->side, &PIXELS_HALF, r->x + (size_t)i * per, NULL, 0);
        }
        vae_encode(&r->v, a, r->x, r->mom);
        for (int i = 0; i < B; i++)
            for (long j = 0; j < zper; j++) {
                const double m = r->mom[(size_t)i * 2 * zper + j];
                s += m, s2 += m * m, cnt++;
            }
    }
    unet_acts_free(a);
    const double var = cnt > 1 ? s2 / cnt - (s / cnt) * (s / cnt) : 1;
    return var > 0 ? (float)(1 / sqrt(var)) : 1.0f;
}

int vae_train(const VaeTrainOpts *o, VaeTrainResult *res, Err *e) {
    memset(res, 0, sizeof *res);
    Run r = {.o = o, .perm_epoch = -1};
    VaeConfig c;
    if (vae_config_named(&c, o->net, e) || vae_config_check(&c, o->side, e)) return -1;
    if (o->batch < 1 || o->steps < 1) return err_set(e, "train-vae: batch and steps must be positive");
    if (dataset_load_named(&r.d, o->data, o->data_dir, e)) return -1;
    if (o->limit > 0 && o->limit < r.d.n) r.d.n = o->limit;
    vae_alloc(&r.v, &c);
    vae_init(&r.v, o->seed);
    vae_grads_alloc(&r.g, &r.v);
    const int B = o->batch, f = vae_factor(&c), s = o->side / f;
    r.ae = unet_acts_new(&r.v.enc, B, o->side, 1, 1), r.ad = unet_acts_new(&r.v.dec, B, o->side, 1, 1);
    r.nx = (long)B * c.in_ch * o->side * o->side, r.nz = (long)B * c.latent_ch * s * s;
    r.perm = xmalloc(sizeof(int) * (size_t)r.d.n);
    r.x = xalloc_floats((size_t)r.nx), r.rec = xalloc_floats((size_t)r.nx), r.drec = xalloc_floats((size_t)r.nx);
    r.mom = xalloc_floats((size_t)r.nz * 2), r.dmom = xalloc_floats((size_t)r.nz * 2);
    r.z = xalloc_floats((size_t)r.nz), r.noise = xalloc_floats((size_t)r.nz), r.dz = xalloc_floats((size_t)r.nz);
    r.tail_from = o->steps - (o->steps + 9) / 10;
    char *recipe = xasprintf("train-vae data=%s net=%s side=%d batch=%d steps=%ld lr=%g kl=%g seed=%llu limit=%d",
                             o->data, o->net, o->side, B, o->steps, o->lr, o->kl_weight, (unsigned long long)o->seed,
                             o->limit);
    char *ckpt = xasprintf("%s.ckpt", o->out);
    int rc = atomic_check_target(o->out, e);
    if (!rc) atomic_clean_stale(o->out);
    TrainSpec spec = {.label = "train-vae", .total_steps = o->steps, .lr = o->lr, .warmup_frac = 0.02, .cosine = 1,
                      .grad_clip = 1.0f, .params = r.v.arena, .grads = r.g.arena, .n_params = r.v.n_params,
                      .table = &r.v.table, .step = vae_step, .user = &r, .samples_per_step = B, .unit = "img",
                      .quiet = o->quiet, .ckpt = ckpt, .recipe = recipe, .producer = "forget train-vae",
                      .ckpt_every = o->ckpt_every, .fresh = o->fresh, .stop_after = o->stop_after};
    TrainState st = {0};
    const double t0 = now_seconds();
    if (!rc) rc = train_run(&spec, &st, e);
    res->steps_done = st.step, res->images_per_s = st.samples_per_s, res->n_params = r.v.n_params;
    res->l1_last = r.l1_n ? (float)(r.l1_sum / r.l1_n) : 0;
    if (!rc && st.finished) {
        r.v.scale = res->scale = scaling_factor(&r);
        const char *meta[] = {"recipe", recipe};
        rc = vae_save(&r.v, o->out, meta, 1, e);
        if (!rc) unlink(ckpt);
    }
    res->seconds = now_seconds() - t0;
    free(recipe), free(ckpt);
    unet_acts_free(r.ae), unet_acts_free(r.ad);
    vae_grads_free(&r.g);
    vae_free(&r.v);
    dataset_free(&r.d);
    free(r.perm), free(r.x), free(r.rec), free(r.drec), free(r.mom), free(r.dmom), free(r.z), free(r.noise), free(r.dz);
    return rc;
}
