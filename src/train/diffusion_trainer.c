#include "train/diffusion_trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ops.h"
#include "core/rng.h"
#include "core/strmap.h"
#include "core/progress.h"
#include "core/threads.h"
#include "io/atomic_file.h"
#include "io/captions.h"
#include "io/dataset.h"
#include "io/tokenizer.h"
#include "models/clip.h"
#include "models/unet.h"
#include "models/vae.h"
#include "train/trainer.h"

void diffusion_train_defaults(DiffTrainOpts *o) {
    *o = (DiffTrainOpts){.data = "fmnist:train", .net = "unet-pixel-32", .side = 32, .batch = 32, .steps = 2000,
                         .lr = 2e-4, .warmup_frac = 0.02, .wd = 0.0, .ema = 0.999f, .cond_drop = 0.1f, .T = 1000,
                         .beta = BETA_SD, .seed = 1, .out = "diffusion.safetensors", .ckpt_every = 200};
}

/* The text side: the frozen tower's hidden states of every distinct caption seen, kept. */
enum { CACHE_MAX = 8192 };
typedef struct {
    ClipModel clip;
    Tokenizer tok;
    int ctx, D;
    StrMap map;
    float *rows;   /* [n, ctx, D] */
    int n;
    long encoded, hits;
} TextSide;

/* Rows for n captions into out [n, ctx, D]; the misses are encoded in one call. */
static int text_rows(TextSide *ts, char (*caps)[256], int n, float *out, Err *e) {
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)n * ts->ctx);
    int *miss = xmalloc(sizeof(int) * (size_t)n), nm = 0, rc = 0;
    const size_t row = (size_t)ts->ctx * ts->D;
    for (int i = 0; i < n && !rc; i++) {
        int32_t k;
        if (strmap_get(&ts->map, caps[i], strlen(caps[i]), &k)) {
            memcpy(out + (size_t)i * row, ts->rows + (size_t)k * row, sizeof(float) * row);
            ts->hits++;
            continue;
        }
        if (tokenizer_tokenize(&ts->tok, caps[i], ts->ctx, ids + (size_t)nm * ts->ctx, e) < 0) rc = -1;
        miss[nm++] = i;
    }
    if (!rc && nm) {
        float *h = xalloc_floats((size_t)nm * row);
        rc = clip_encode_text_hidden(&ts->clip, ids, nm, 1, h, e);
        for (int j = 0; j < nm && !rc; j++) {
            const int i = miss[j];
            memcpy(out + (size_t)i * row, h + (size_t)j * row, sizeof(float) * row);
            int32_t k;
            if (ts->n < CACHE_MAX && !strmap_get(&ts->map, caps[i], strlen(caps[i]), &k)) {
                memcpy(ts->rows + (size_t)ts->n * row, h + (size_t)j * row, sizeof(float) * row);
                strmap_put(&ts->map, caps[i], strlen(caps[i]), ts->n++);
            }
        }
        ts->encoded += nm;
        free(h);
    }
    free(ids), free(miss);
    return rc;
}

typedef struct {
    const DiffTrainOpts *o;
    Dataset d;
    const CaptionStyle *style;
    TextSide ts;
    UNet m;
    UNetGrads g;
    UNetActs *a;
    DiffSchedule s;
    float *ema;
    int *perm, perm_epoch;
    long spe; /* steps an epoch */
    char (*caps)[256];
    DiffLossWork w;
    float *x0, *eps, *ctx;
    int32_t *t;
    long per;
    Vae vae;          /* latent space: the autoencoder, and every image's moments [n, 2 x latent, s, s] */
    int latent;
    float *moments;
    double loss_sum;
    long loss_n, tail_from;
    int rank, ranks, Bl; /* this rank's share of the batch: samples rank * Bl .. */
} Run;

static int diff_step(void *user, long step, float *loss, Err *e) {
    Run *r = user;
    const DiffTrainOpts *o = r->o;
    const int B = o->batch, Bl = r->Bl;
    const int epoch = (int)((step * B) / r->d.n);
    if (epoch != r->perm_epoch) train_epoch_order(r->perm, r->d.n, o->seed, r->perm_epoch = epoch);
    for (int i = 0; i < Bl; i++) { /* sample gi of the global batch: the same draws whatever the ranks */
        const int gi = r->rank * Bl + i;
        const int smp = r->perm[(step * B + gi) % r->d.n];
        Rng rng;
        rng_seed(&rng, train_mix(o->seed, (uint64_t)step * (uint64_t)B + (uint64_t)gi));
        if (r->latent) { /* z = mean + std n from the image's posterior, scaled */
            const float *m = r->moments + (size_t)smp * 2 * r->per, *lv = m + r->per;
            float *z = r->x0 + (size_t)i * r->per;
            for (long j = 0; j < r->per; j++)
                z[j] = r->vae.scale * (m[j] + expf(0.5f * fminf(20.0f, fmaxf(-30.0f, lv[j]))) * rng_normal(&rng));
        } else {
            dataset_pixels(&r->d, &smp, 1, o->side, &PIXELS_HALF, r->x0 + (size_t)i * r->per, r->d.glyphs ? &rng : NULL, 0);
        }
        const Dataset *d = &r->d;
        if (rng_uniform(&rng) < o->cond_drop) r->caps[i][0] = 0; /* the unconditional branch */
        else
            caption_make(r->caps[i], sizeof r->caps[i], r->style, d->class_names[d->labels[smp]],
                         d->domains ? d->domain_names[d->domains[smp]] : NULL,
                         d->class_keywords ? d->class_keywords[d->labels[smp]] : NULL, dataset_image(d, smp), d->h,
                         d->w, d->channels, &rng);
        r->t[i] = (int32_t)rng_below(&rng, (uint32_t)o->T);
        rng_fill_normal(&rng, r->eps + (size_t)i * r->per, r->per, 0, 1);
    }
    if (text_rows(&r->ts, r->caps, Bl, r->ctx, e)) return -1;
    /* the trainer sums the ranks' gradients: each contributes its share of the global mean */
    *loss = diffusion_eps_loss(&r->m, r->a, &r->s, &r->w, r->x0, r->eps, r->t, r->ctx, 1.0f / (float)r->ranks, &r->g);
    if (step >= r->tail_from) r->loss_sum += *loss, r->loss_n++;
    return 0;
}

static void diff_ema(void *user, long step) {
    Run *r = user;
    /* the average warms up as (1 + step) / (10 + step) so early weights do not linger */
    const float d = fminf(r->o->ema, (1.0f + (float)step) / (10.0f + (float)step));
    const long n = r->m.n_params;
    for (long i = 0; i < n; i++) r->ema[i] = d * r->ema[i] + (1 - d) * r->m.arena[i];
}

static void diff_status(void *user, long step, float loss, char *buf, size_t cap) {
    Run *r = user;
    (void)step;
    snprintf(buf, cap, "loss %.4f captions %d", loss, r->ts.n);
}

/* Every training image's posterior moments, once (eval-mode encoder, 64 at a time). */
static void encode_all(Run *r, int quiet) {
    const int B = 64, S = r->o->side;
    const long px = 3L * S * S, mper = 2 * r->per;
    r->moments = xalloc_floats((size_t)r->d.n * mper);
    UNetActs *a = unet_acts_new(&r->vae.enc, B, S, 1, 0);
    float *x = xalloc_floats((size_t)B * px), *mom = xalloc_floats((size_t)B * mper);
    Progress bar;
    progress_start(&bar, "encode", r->d.n, quiet);
    for (int b0 = 0; b0 < r->d.n; b0 += B) {
        const int nb = r->d.n - b0 < B ? r->d.n - b0 : B;
        for (int i = 0; i < B; i++) { /* a short last batch repeats its last image */
            const int smp = b0 + (i < nb ? i : nb - 1);
            Rng rng;
            rng_seed(&rng, train_mix(r->o->seed ^ 0x5EEDu, (uint64_t)smp));
            dataset_pixels(&r->d, &smp, 1, S, &PIXELS_HALF, x + (size_t)i * px, r->d.glyphs ? &rng : NULL, 0);
        }
        vae_encode(&r->vae, a, x, mom);
        memcpy(r->moments + (size_t)b0 * mper, mom, sizeof(float) * (size_t)nb * mper);
        progress_update(&bar, b0 + nb, 1, "img", NULL);
    }
    progress_end(&bar);
    unet_acts_free(a);
    free(x), free(mom);
}

static char *recipe_of(const DiffTrainOpts *o, long n_params) {
    return xasprintf("train-diffusion data=%s net=%s vae=%s side=%d batch=%d steps=%ld lr=%g ema=%g drop=%g T=%d "
                     "beta=%s seed=%llu limit=%d params=%ld",
                     o->data, o->net, o->vae ? o->vae : "none", o->side, o->batch, o->steps, o->lr, (double)o->ema, (double)o->cond_drop, o->T,
                     diffusion_beta_name(o->beta), (unsigned long long)o->seed, o->limit, n_params);
}

static void run_free(Run *r) {
    unet_acts_free(r->a);
    unet_grads_free(&r->g);
    unet_free(&r->m);
    diffusion_schedule_free(&r->s);
    clip_free(&r->ts.clip);
    tokenizer_free(&r->ts.tok);
    strmap_free(&r->ts.map);
    dataset_free(&r->d);
    if (r->latent) vae_free(&r->vae);
    free(r->moments);
    free(r->ts.rows), free(r->ema), free(r->perm), free(r->caps), free(r->x0), free(r->eps), free(r->ctx), free(r->t);
    diffusion_loss_work_free(&r->w);
}

int diffusion_train(const DiffTrainOpts *o, DiffTrainResult *res, Err *e) {
    memset(res, 0, sizeof *res);
    Run r = {.o = o, .perm_epoch = -1};
    UNetConfig c;
    if (!o->text_encoder) return err_set(e, "train-diffusion: --text-encoder CLIP is required");
    if (unet_config_named(&c, o->net, e)) return -1;
    if (o->batch < 1 || o->steps < 1) return err_set(e, "train-diffusion: batch and steps must be positive");
    const ClipLoadOpts lo = {.act_override = -1};
    if (clip_load(&r.ts.clip, o->text_encoder, &lo, e)) return -1;
    int rc = 0;
    if (!r.ts.clip.cfg.has_text) rc = err_set(e, "%s: no text tower to condition on", o->text_encoder);
    c.ctx_dim = r.ts.clip.cfg.t_width;
    int uside = o->side; /* the UNet's sample side */
    if (!rc && o->vae) {
        if (vae_load(&r.vae, o->vae, e)) rc = -1;
        else {
            r.latent = 1;
            if (o->side % vae_factor(&r.vae.cfg))
                rc = err_set(e, "train-diffusion: side %d is not a multiple of %s's factor %d", o->side, o->vae,
                             vae_factor(&r.vae.cfg));
            uside = o->side / vae_factor(&r.vae.cfg);
            if (!rc && c.in_ch != r.vae.cfg.latent_ch)
                rc = err_set(e, "train-diffusion: %s takes %d channels, %s's latents have %d", o->net, c.in_ch, o->vae,
                             r.vae.cfg.latent_ch);
        }
    }
    if (!rc) rc = unet_config_check(&c, uside, e);
    if (!rc) rc = dataset_load_named(&r.d, o->data, o->data_dir, e);
    if (!rc && o->limit > 0 && o->limit < r.d.n) r.d.n = o->limit;
    if (!rc && !r.latent && c.in_ch != 3)
        rc = err_set(e, "train-diffusion: %s has %d input channels; pixel space needs 3 (or give --vae)", o->net, c.in_ch);
    if (!rc) rc = tokenizer_init(&r.ts.tok, e);
    if (!rc) rc = diffusion_schedule_init(&r.s, o->T, o->beta, 0, 0, e);
    if (rc) {
        clip_free(&r.ts.clip), dataset_free(&r.d), tokenizer_free(&r.ts.tok);
        if (r.latent) vae_free(&r.vae);
        return -1;
    }
    r.ts.ctx = r.ts.clip.cfg.context, r.ts.D = c.ctx_dim;
    strmap_init(&r.ts.map, 1024);
    r.ts.rows = xalloc_floats((size_t)CACHE_MAX * r.ts.ctx * r.ts.D);
    r.style = r.d.class_keywords ? &CAPTIONS_EMOJI : &CAPTIONS_DEFAULT;
    unet_alloc(&r.m, &c);
    unet_init(&r.m, o->seed);
    unet_grads_alloc(&r.g, &r.m);
    r.ema = xalloc_floats((size_t)r.m.n_params);
    memcpy(r.ema, r.m.arena, sizeof(float) * (size_t)r.m.n_params);
    const int B = o->batch;
    r.rank = o->dist ? o->dist->rank : 0, r.ranks = o->dist ? o->dist->size : 1, r.Bl = B / r.ranks;
    const int lead = r.rank == 0;
    if (B % r.ranks) {
        run_free(&r);
        return err_set(e, "train-diffusion: batch %d does not split evenly over %d ranks", B, r.ranks);
    }
    r.a = unet_acts_new(&r.m, r.Bl, uside, r.ts.ctx, 1);
    r.per = (long)c.in_ch * uside * uside;
    if (r.latent) encode_all(&r, o->quiet || !lead);
    const long n = (long)r.Bl * r.per;
    r.perm = xmalloc(sizeof(int) * (size_t)r.d.n);
    r.caps = xcalloc((size_t)B, sizeof *r.caps);
    r.x0 = xalloc_floats((size_t)n), r.eps = xalloc_floats((size_t)n);
    diffusion_loss_work_alloc(&r.w, r.Bl, r.per);
    r.ctx = xalloc_floats((size_t)r.Bl * r.ts.ctx * r.ts.D);
    r.t = xmalloc(sizeof(int32_t) * (size_t)B);
    r.tail_from = o->steps - (o->steps + 9) / 10;
    char *recipe = recipe_of(o, r.m.n_params), *ckpt = o->ckpt ? xstrdup(o->ckpt) : xasprintf("%s.ckpt", o->out);
    rc = lead ? atomic_check_target(o->out, e) : 0;
    if (!rc && lead) atomic_clean_stale(o->out);
    TrainSpec spec = {.label = "train-diffusion", .total_steps = o->steps, .lr = o->lr, .warmup_frac = o->warmup_frac,
                      .cosine = 1, .wd = o->wd, .grad_clip = 1.0f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                      .params = r.m.arena, .grads = r.g.arena, .n_params = r.m.n_params, .table = &r.m.table,
                      .step = diff_step, .after_update = diff_ema, .status = diff_status, .user = &r,
                      .samples_per_step = B, .unit = "img", .quiet = o->quiet, .ckpt = ckpt, .recipe = recipe,
                      .producer = "forget train-diffusion", .ckpt_every = o->ckpt_every, .fresh = o->fresh,
                      .stop_after = o->stop_after, .extra = r.ema, .n_extra = r.m.n_params, .dist = o->dist};
    TrainState st = {0};
    const double t0 = now_seconds();
    if (!rc) rc = train_run(&spec, &st, e);
    res->steps_done = st.step, res->last_loss = st.last_loss, res->images_per_s = st.samples_per_s;
    res->seconds = now_seconds() - t0;
    res->mean_loss_last = r.loss_n ? (float)(r.loss_sum / r.loss_n) : st.last_loss;
    res->captions_encoded = r.ts.encoded, res->captions_cached = r.ts.hits, res->n_params = r.m.n_params;
    if (!rc && st.finished && lead) { /* the model file holds the average (the same on every rank) */
        memcpy(r.m.arena, r.ema, sizeof(float) * (size_t)r.m.n_params);
        char steps[32], T[16];
        snprintf(steps, sizeof steps, "%ld", st.step), snprintf(T, sizeof T, "%d", o->T);
        char side[16];
        snprintf(side, sizeof side, "%d", uside);
        const char *meta[] = {"diffusion.T",     T,     "diffusion.beta", diffusion_beta_name(o->beta),
                              "diffusion.side",  side,  "diffusion.steps", steps,
                              "text_encoder",    o->text_encoder, "recipe", recipe,
                              "diffusion.vae",   o->vae ? o->vae : ""};
        rc = unet_save(&r.m, o->out, UNET_DIFFUSERS, ST_F32, meta, 7, e);
        if (!rc) unlink(ckpt);
    }
    free(recipe), free(ckpt);
    run_free(&r);
    return rc;
}
