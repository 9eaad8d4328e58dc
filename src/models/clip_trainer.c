#include "models/clip_trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/optim.h"
#include "core/progress.h"
#include "core/threads.h"
#include "io/atomic_file.h"
#include "io/captions.h"
#include "io/dataset.h"
#include "io/tokenizer.h"
#include "models/clip_params.h"
#include "models/clip_train.h"

void train_opts_default(TrainOpts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 5;
    o->batch = 128;
    o->lr = 1e-3;
    o->wd = 0.2;
    o->warmup_frac = 0.05;
    o->grad_clip = 1.0f;
    o->shift = 2;
    o->eval_samples = 2000;
    o->eval_every = 1;
    o->ckpt_every = 200;
}

static uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t x = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6) + (a >> 2));
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    return x ^ (x >> 29);
}

/* The epoch's sample order: Fisher-Yates from (seed, epoch). */
static void epoch_order(int *perm, int n, uint64_t seed, int epoch) {
    Rng r;
    rng_seed(&r, mix(seed, 1000003ull + (uint64_t)epoch));
    rng_permutation(&r, perm, n);
}

static double lr_at(const TrainOpts *o, long step, long total) {
    long warm = (long)(o->warmup_frac * total);
    if (step < warm) return o->lr * (double)(step + 1) / warm;
    double p = total > warm ? (double)(step - warm) / (double)(total - warm) : 1.0;
    return o->lr * 0.5 * (1.0 + cos(M_PI * p));
}

/* Everything a checkpoint must agree on to be resumed. */
static char *recipe_string(const TrainOpts *o, long n_params) {
    const ClipConfig *c = &o->cfg;
    return xasprintf(
             "train=%s;templates=%s;bias=%g/%g/%g;limit=%d;epochs=%d;batch=%d;lr=%g;wd=%g;warmup=%g;clip=%g;seed=%llu;shift=%d;"
             "cfg=%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d;params=%ld",
             o->train_set, o->templates ? o->templates : "-", o->bias ? (double)o->bias->p_neutral : 0.0, o->bias ? (double)o->bias->p_pref_gender : 0.0,
             o->bias ? (double)o->bias->p_pref_tone : 0.0, o->limit, o->epochs, o->batch, o->lr, o->wd, o->warmup_frac, (double)o->grad_clip,
             (unsigned long long)o->seed, o->shift, c->embed_dim, c->image_res, c->patch, c->v_width, c->v_layers,
             c->v_heads, c->context, c->vocab, c->t_width, c->t_layers, c->t_heads, (int)c->act, n_params);
}

static int save_checkpoint(const char *path, const ClipModel *m, const AdamW *opt, long step, const char *recipe,
                           Err *e) {
    char steps[32], ts[32];
    snprintf(steps, sizeof steps, "%ld", step);
    snprintf(ts, sizeof ts, "%ld", opt->t);
    StWriteTensor t[3] = {
        {.name = "params", .dtype = ST_F32, .ndim = 1, .shape = {m->n_params}, .f32 = m->params},
        {.name = "adam_m", .dtype = ST_F32, .ndim = 1, .shape = {m->n_params}, .f32 = opt->m},
        {.name = "adam_v", .dtype = ST_F32, .ndim = 1, .shape = {m->n_params}, .f32 = opt->v},
    };
    const char *meta[] = {"step", steps, "adam_t", ts, "recipe", recipe, "producer", "forget train"};
    return st_write(path, t, 3, meta, 4, e);
}

/* Returns the step to continue from (0 when there is no checkpoint), or -1. */
static long load_checkpoint(const char *path, ClipModel *m, AdamW *opt, const char *recipe, Err *e) {
    if (access(path, F_OK) != 0) return 0;
    SafeTensors st;
    if (st_open(&st, path, e) != 0) return -1;
    const char *r = st_meta(&st, "recipe"), *s = st_meta(&st, "step"), *t = st_meta(&st, "adam_t");
    const StTensor *p = st_find(&st, "params"), *mm = st_find(&st, "adam_m"), *vv = st_find(&st, "adam_v");
    long rc;
    if (!r || !s || !t || !p || !mm || !vv) {
        rc = err_set(e, "%s: not a forget training checkpoint", path);
    } else if (strcmp(r, recipe) != 0) {
        rc = err_set(e, "%s: checkpoint of a different recipe (%s); remove it or pass --fresh", path, r);
    } else if (st_numel(p) != m->n_params || st_numel(mm) != m->n_params || st_numel(vv) != m->n_params) {
        rc = err_set(e, "%s: parameter count differs from this model", path);
    } else {
        st_to_f32(p, m->params, e);
        st_to_f32(mm, opt->m, e);
        st_to_f32(vv, opt->v, e);
        opt->t = atol(t);
        rc = atol(s);
    }
    st_close(&st);
    return rc;
}

static double global_norm(const float *g, long n) {
    double s = 0;
#pragma omp parallel for reduction(+ : s)
    for (long i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

int clip_train_step(ClipModel *m, ClipModel *g, AdamW *opt, const NnTable *params, const float *px,
                    const int32_t *ids, int B, const Dist *dist, double lr, double wd, float grad_clip,
                    float *loss_out, Err *e) {
    /* B samples here; with MPI every rank holds B, the global batch is B * size, and the loss is
     * computed on the gathered features of the whole batch (as open_clip's gather_with_grad). */
    const int E = m->cfg.embed_dim, ranks = dist ? dist->size : 1, rank = dist ? dist->rank : 0, GB = B * ranks;
    TowerActs ia, ta;
    image_acts_init(&ia, m, B, 1);
    if (text_acts_init(&ta, m, ids, B, 1, e) != 0) {
        tower_acts_free(&ia);
        return -1;
    }
    float *img = xalloc_floats((size_t)B * E), *txt = xalloc_floats((size_t)B * E);
    float *all_img = xalloc_floats((size_t)GB * E), *all_txt = xalloc_floats((size_t)GB * E);
    float *dimg = xcalloc((size_t)GB * E, sizeof(float)), *dtxt = xcalloc((size_t)GB * E, sizeof(float));
    image_forward(m, &ia, px, img, NULL);
    text_forward(m, &ta, txt, NULL);
    dist_allgather(dist, img, (long)B * E, all_img);
    dist_allgather(dist, txt, (long)B * E, all_txt);
    memset(g->params, 0, sizeof(float) * (size_t)g->n_params);
    float dscale = 0;
    float loss = clip_contrastive_loss(all_img, all_txt, GB, E, m->logit_scale[0], dimg, dtxt, &dscale, NULL);
    image_backward(m, g, &ia, dimg + (size_t)rank * B * E, NULL);
    text_backward(m, g, &ta, dtxt + (size_t)rank * B * E, NULL);
    /* every rank computed the whole loss: only rank 0 contributes the logit-scale gradient to the sum */
    if (rank == 0) g->logit_scale[0] += dscale;
    dist_allreduce_sum(dist, g->params, g->n_params);
    tower_acts_free(&ia);
    tower_acts_free(&ta);
    free(img), free(txt), free(all_img), free(all_txt), free(dimg), free(dtxt);
    *loss_out = loss;
    if (!isfinite(loss)) return err_set(e, "loss is %f: lower the learning rate", (double)loss);
    double norm = global_norm(g->params, g->n_params);
    if (grad_clip > 0 && norm > grad_clip) scale_inplace(g->params, (float)(grad_clip / norm), g->n_params);
    adamw_begin_step(opt);
    for (int i = 0; i < params->n; i++)
        adamw_update(opt, m->params, g->params, *params->p[i].slot - m->params, params->p[i].count, lr,
                     params->p[i].decay ? wd : 0.0);
    if (m->logit_scale[0] > logf(100.0f)) m->logit_scale[0] = logf(100.0f); /* OpenAI's clamp at 100 */
    return 0;
}

int clip_train(const TrainOpts *o, TrainResult *res, Err *e) {
    memset(res, 0, sizeof *res);
    Dataset train = {0}, evald = {0};
    if (dataset_load_named(&train, o->train_set, o->data_dir, e)) return -1;
    if (o->eval_set && dataset_load_named(&evald, o->eval_set, o->data_dir, e)) {
        dataset_free(&train);
        return -1;
    }
    if (o->limit > 0 && o->limit < train.n) train.n = o->limit;
    Tokenizer tok;
    if (tokenizer_init(&tok, e)) {
        dataset_free(&train), dataset_free(&evald);
        return -1;
    }
    ClipModel m, g;
    clip_init_random(&m, &o->cfg, o->seed);
    clip_init_zeros(&g, &o->cfg);
    AdamW opt;
    adamw_init(&opt, m.n_params, 0.9f, 0.98f, 1e-6f);
    NnTable specs = clip_param_table(&m);

    const int B = o->batch, R = o->cfg.image_res, ctx = o->cfg.context;
    const int ranks = o->dist ? o->dist->size : 1, rank = o->dist ? o->dist->rank : 0, Bl = B / ranks;
    const int lead = rank == 0, quiet = o->quiet || !lead;
    int rc = B % ranks ? err_set(e, "batch %d does not split evenly over %d ranks", B, ranks) : 0;
    const long spe = train.n / B, total = spe * o->epochs;
    char *recipe = recipe_string(o, m.n_params), *ckpt = xasprintf("%s.ckpt", o->out);
    /* refuse an unwritable target before hours of training, and clear what killed runs left */
    if (rc == 0 && lead) rc = atomic_check_target(o->out, e) || atomic_check_target(ckpt, e) ? -1 : 0;
    if (rc == 0 && lead) atomic_clean_stale(ckpt), atomic_clean_stale(o->out);
    long step = rc ? 0 : o->fresh ? 0 : load_checkpoint(ckpt, &m, &opt, recipe, e);
    if (step < 0) rc = -1;
    if (rc == 0 && step > 0 && !quiet) fprintf(stderr, "resuming %s from step %ld of %ld\n", ckpt, step, total);
    res->total_steps = total;

    int *perm = xmalloc(sizeof(int) * (size_t)train.n), *idx = xmalloc(sizeof(int) * (size_t)B);
    float *px = xalloc_floats((size_t)B * 3 * R * R);
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)B * ctx);
    int perm_epoch = -1;
    EmojiBias *bias = o->bias ? emoji_bias_new(&train, o->bias) : NULL;
    CaptionStyle custom = {0};
    if (rc == 0 && o->templates) rc = caption_style_load(&custom, o->templates, e);
    const CaptionStyle *style = o->templates ? &custom : train.class_keywords ? &CAPTIONS_EMOJI : &CAPTIONS_DEFAULT;
    if (o->bias && !bias && rc == 0) rc = err_set(e, "%s has no people attributes to bias", o->train_set);
    Progress prog;
    progress_start(&prog, "train", total, quiet);
    double t_start = now_seconds();
    long steps_this_run = 0;
    char status[160] = "";
    while (rc == 0 && step < total) {
        const int epoch = (int)(step / spe);
        if (epoch != perm_epoch) epoch_order(perm, train.n, o->seed, perm_epoch = epoch);
        /* this rank's share of the global batch; every sample's augmentation and caption come from
         * its own (seed, step, position) stream, so any split over ranks sees the same data */
        for (int i = 0; i < Bl; i++) {
            const int gi = rank * Bl + i;
            int smp = perm[(step % spe) * B + gi];
            Rng r;
            rng_seed(&r, mix(o->seed, (uint64_t)step * (uint64_t)B + (uint64_t)gi));
            const char *neutral = NULL;
            if (bias) smp = emoji_bias_pick(bias, smp, &r, &neutral);
            idx[i] = smp;
            dataset_pixels(&train, &idx[i], 1, R, px + (size_t)i * 3 * R * R, &r, o->shift);
            char text[256];
            caption_make(text, sizeof text, style,
                         neutral ? neutral : train.class_names[train.labels[smp]],
                         train.domains ? train.domain_names[train.domains[smp]] : NULL,
                         train.class_keywords && !neutral ? train.class_keywords[train.labels[smp]] : NULL,
                         dataset_image(&train, smp), train.h, train.w, train.channels, &r);
            if (tokenizer_tokenize(&tok, text, ctx, ids + (size_t)i * ctx, e) < 0) {
                rc = -1;
                break;
            }
        }
        if (rc) break;
        float loss;
        if ((rc = clip_train_step(&m, &g, &opt, &specs, px, ids, Bl, o->dist, lr_at(o, step, total), o->wd, o->grad_clip,
                                  &loss, e)) != 0) {
            err_prefix(e, "step %ld: ", step);
            break;
        }
        step++;
        steps_this_run++;
        res->last_loss = loss;
        res->images_per_s = (double)steps_this_run * B / (now_seconds() - t_start);
        snprintf(status, sizeof status, "epoch %d/%d loss %.4f scale %.1f", epoch + 1, o->epochs, (double)loss,
                 exp(m.logit_scale[0]));
        progress_update(&prog, step, B, "img", status);
        if (lead && (step % o->ckpt_every == 0 || step == total || (o->stop_after > 0 && steps_this_run == o->stop_after)))
            if ((rc = save_checkpoint(ckpt, &m, &opt, step, recipe, e)) != 0) break;
        if (lead && evald.n && ((step % (spe * (o->eval_every > 0 ? o->eval_every : 1))) == 0 || step == total)) {
            if ((rc = eval_zeroshot(&m, &tok, &evald, NULL, o->eval_samples, &res->eval, e)) != 0) break;
            res->evaluated = 1;
            if (!quiet) {
                progress_end(&prog);
                fprintf(stderr, "epoch %d: zero-shot top-1 %.2f%% top-5 %.2f%% on %d images of %s\n", epoch + 1,
                        100 * res->eval.top1, 100 * res->eval.top5, res->eval.n, o->eval_set);
            }
        }
        if (o->stop_after > 0 && steps_this_run == o->stop_after) break;
    }
    progress_end(&prog);
    res->steps_done = step;
    if (rc == 0 && step == total) {
        if (lead) rc = clip_save(&m, o->out, LAYOUT_OPENAI, ST_F32, e);
        if (rc == 0) {
            if (lead) unlink(ckpt);
            res->finished = 1;
        }
    }
    free(perm), free(idx), free(px), free(ids), nn_table_free(&specs), free(recipe), free(ckpt);
    emoji_bias_free(bias);
    if (o->templates) caption_style_free(&custom);
    adamw_free(&opt);
    clip_free(&m), clip_free(&g);
    tokenizer_free(&tok);
    dataset_free(&train), dataset_free(&evald);
    return rc;
}
