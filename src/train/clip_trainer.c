#include "train/clip_trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/progress.h"
#include "core/threads.h"
#include "io/atomic_file.h"
#include "io/captions.h"
#include "io/dataset.h"
#include "io/tokenizer.h"
#include "models/clip_params.h"
#include "models/clip_train.h"
#include "train/trainer.h"

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

/* Everything a checkpoint must agree on to be resumed. */
static char *recipe_string(const TrainOpts *o, long n_params) {
    const ClipConfig *c = &o->cfg;
    return xasprintf(
             "train=%s;templates=%s;bias=%g/%g/%g;limit=%d;epochs=%d;batch=%d;lr=%g;wd=%g;warmup=%g;clip=%g;seed=%llu;shift=%d;"
             "cfg=%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d;params=%ld%s",
             o->train_set, o->templates ? o->templates : "-", o->bias ? (double)o->bias->p_neutral : 0.0, o->bias ? (double)o->bias->p_pref_gender : 0.0,
             o->bias ? (double)o->bias->p_pref_tone : 0.0, o->limit, o->epochs, o->batch, o->lr, o->wd, o->warmup_frac, (double)o->grad_clip,
             (unsigned long long)o->seed, o->shift, c->embed_dim, c->image_res, c->patch, c->v_width, c->v_layers,
             c->v_heads, c->context, c->vocab, c->t_width, c->t_layers, c->t_heads, (int)c->act, n_params,
             o->precision == PREC_BF16 ? ";precision=bf16" : ""); /* fp32 recipes read as before */
}

/* One step's work: this rank's share of the global batch (every sample's augmentation and caption
 * from its own (seed, step, position) stream, so any split over ranks sees the same data), both
 * towers forward, the contrastive loss on the gathered features of the whole batch (as
 * open_clip's gather_with_grad), both backward. */
typedef struct {
    const TrainOpts *o;
    ClipModel m, g;
    Dataset train, evald;
    Tokenizer tok;
    EmojiBias *bias;
    const CaptionStyle *style;
    long spe;
    int Bl, rank, ranks, perm_epoch;
    int *perm, *idx;
    float *px;
    int32_t *ids;
    TowerActs ia, ta; /* the towers' activations, reused from step to step */
    TrainResult *res;
} ClipRun;

static int clip_batch(ClipRun *r, long step, Err *e) {
    const TrainOpts *o = r->o;
    const int B = o->batch, R = o->cfg.image_res, ctx = o->cfg.context;
    const int epoch = (int)(step / r->spe);
    if (epoch != r->perm_epoch) train_epoch_order(r->perm, r->train.n, o->seed, r->perm_epoch = epoch);
    const Dataset *d = &r->train;
    for (int i = 0; i < r->Bl; i++) {
        const int gi = r->rank * r->Bl + i;
        int smp = r->perm[(step % r->spe) * B + gi];
        Rng rng;
        rng_seed(&rng, train_mix(o->seed, (uint64_t)step * (uint64_t)B + (uint64_t)gi));
        const char *neutral = NULL;
        if (r->bias) smp = emoji_bias_pick(r->bias, smp, &rng, &neutral);
        r->idx[i] = smp;
        dataset_pixels(d, &r->idx[i], 1, R, &PIXELS_CLIP, r->px + (size_t)i * 3 * R * R, &rng, o->shift);
        char text[256];
        caption_make(text, sizeof text, r->style, neutral ? neutral : d->class_names[d->labels[smp]],
                     d->domains ? d->domain_names[d->domains[smp]] : NULL,
                     d->class_keywords && !neutral ? d->class_keywords[d->labels[smp]] : NULL, dataset_image(d, smp),
                     d->h, d->w, d->channels, &rng);
        if (tokenizer_tokenize(&r->tok, text, ctx, r->ids + (size_t)i * ctx, e) < 0) return -1;
    }
    return 0;
}

int clip_contrastive_step(ClipModel *m, ClipModel *g, const float *px, const int32_t *ids, int B, const Dist *dist,
                          TowerActs *ia, TowerActs *ta, float *loss_out, Err *e) {
    const int E = m->cfg.embed_dim, ranks = dist ? dist->size : 1, rank = dist ? dist->rank : 0, GB = B * ranks;
    image_acts_reuse(ia, m, B, 0, 0, 1);
    if (text_acts_reuse(ta, m, ids, B, 1, 0, e) != 0) return -1;
    float *img = xalloc_floats((size_t)B * E), *txt = xalloc_floats((size_t)B * E);
    float *all_img = xalloc_floats((size_t)GB * E), *all_txt = xalloc_floats((size_t)GB * E);
    float *dimg = xcalloc((size_t)GB * E, sizeof(float)), *dtxt = xcalloc((size_t)GB * E, sizeof(float));
    image_forward(m, ia, px, img, NULL);
    text_forward(m, ta, txt, NULL);
    dist_allgather(dist, img, (long)B * E, all_img);
    dist_allgather(dist, txt, (long)B * E, all_txt);
    float dscale = 0;
    *loss_out = clip_contrastive_loss(all_img, all_txt, GB, E, m->logit_scale[0], dimg, dtxt, &dscale, NULL);
    image_backward(m, g, ia, dimg + (size_t)rank * B * E, NULL);
    text_backward(m, g, ta, dtxt + (size_t)rank * B * E, NULL);
    /* every rank computed the whole loss: only rank 0 contributes the logit-scale gradient to the sum */
    if (rank == 0) g->logit_scale[0] += dscale;
    free(img), free(txt), free(all_img), free(all_txt), free(dimg), free(dtxt);
    return 0;
}

static int clip_step(void *user, long step, float *loss, Err *e) {
    ClipRun *r = user;
    if (clip_batch(r, step, e)) return -1;
    return clip_contrastive_step(&r->m, &r->g, r->px, r->ids, r->Bl, r->o->dist, &r->ia, &r->ta, loss, e);
}

static void clamp_scale(void *user, long step) {
    (void)step;
    ClipRun *r = user;
    if (r->m.logit_scale[0] > logf(100.0f)) r->m.logit_scale[0] = logf(100.0f); /* OpenAI's clamp at 100 */
}

static void clip_status(void *user, long step, float loss, char *buf, size_t cap) {
    ClipRun *r = user;
    snprintf(buf, cap, "epoch %ld/%d loss %.4f scale %.1f", (step - 1) / r->spe + 1, r->o->epochs, (double)loss,
             exp(r->m.logit_scale[0]));
}

static int clip_evaluate(void *user, long steps_done, Progress *bar, Err *e) {
    ClipRun *r = user;
    if (!r->evald.n) return 0;
    if (eval_zeroshot(&r->m, &r->tok, &r->evald, NULL, r->o->eval_samples, &r->res->eval, e)) return -1;
    r->res->evaluated = 1;
    if (!r->o->quiet) {
        progress_end(bar);
        fprintf(stderr, "epoch %ld: zero-shot top-1 %.2f%% top-5 %.2f%% on %d images of %s\n", (steps_done - 1) / r->spe + 1,
                100 * r->res->eval.top1, 100 * r->res->eval.top5, r->res->eval.n, r->o->eval_set);
    }
    return 0;
}

static void run_free(ClipRun *r) {
    tower_acts_free(&r->ia), tower_acts_free(&r->ta);
    free(r->perm), free(r->idx), free(r->px), free(r->ids);
    emoji_bias_free(r->bias);
    clip_free(&r->m), clip_free(&r->g);
    tokenizer_free(&r->tok);
    dataset_free(&r->train), dataset_free(&r->evald);
}

int clip_train(const TrainOpts *o, TrainResult *res, Err *e) {
    memset(res, 0, sizeof *res);
    ClipRun r = {.o = o, .res = res, .perm_epoch = -1};
    if (dataset_load_named(&r.train, o->train_set, o->data_dir, e)) return -1;
    if (o->eval_set && dataset_load_named(&r.evald, o->eval_set, o->data_dir, e)) {
        dataset_free(&r.train);
        return -1;
    }
    if (o->limit > 0 && o->limit < r.train.n) r.train.n = o->limit;
    if (tokenizer_init(&r.tok, e)) {
        dataset_free(&r.train), dataset_free(&r.evald);
        return -1;
    }
    if (o->precision == PREC_INT8) {
        dataset_free(&r.train), dataset_free(&r.evald), tokenizer_free(&r.tok);
        return err_set(e, "int8 is for inference: train in fp32 or bf16");
    }
    clip_init_random(&r.m, &o->cfg, o->seed);
    clip_init_zeros(&r.g, &o->cfg);
    if (o->precision == PREC_BF16 && clip_set_precision(&r.m, PREC_BF16, e)) {
        clip_free(&r.m), clip_free(&r.g), dataset_free(&r.train), dataset_free(&r.evald), tokenizer_free(&r.tok);
        return -1;
    }
    NnTable table = clip_param_table(&r.m);
    const int B = o->batch, R = o->cfg.image_res, ctx = o->cfg.context;
    r.ranks = o->dist ? o->dist->size : 1, r.rank = o->dist ? o->dist->rank : 0, r.Bl = B / r.ranks;
    const int lead = r.rank == 0;
    int rc = B % r.ranks ? err_set(e, "batch %d does not split evenly over %d ranks", B, r.ranks) : 0;
    r.spe = r.train.n / B;
    char *recipe = recipe_string(o, r.m.n_params), *ckpt = xasprintf("%s.ckpt", o->out ? o->out : "bench");
    const int bench = o->bench_steps > 0;
    if (rc == 0 && lead && !bench) rc = atomic_check_target(o->out, e);
    if (rc == 0 && lead && !bench) atomic_clean_stale(o->out);
    r.perm = xmalloc(sizeof(int) * (size_t)r.train.n), r.idx = xmalloc(sizeof(int) * (size_t)B);
    r.px = xalloc_floats((size_t)B * 3 * R * R);
    r.ids = xmalloc(sizeof(int32_t) * (size_t)B * ctx);
    r.bias = o->bias ? emoji_bias_new(&r.train, o->bias) : NULL;
    CaptionStyle custom = {0};
    if (rc == 0 && o->templates) rc = caption_style_load(&custom, o->templates, e);
    r.style = o->templates ? &custom : r.train.class_keywords ? &CAPTIONS_EMOJI : &CAPTIONS_DEFAULT;
    if (o->bias && !r.bias && rc == 0) rc = err_set(e, "%s has no people attributes to bias", o->train_set);
    TrainSpec spec = {.label = "train", .total_steps = r.spe * o->epochs, .lr = o->lr, .warmup_frac = o->warmup_frac,
                      .cosine = 1, .wd = o->wd, .grad_clip = o->grad_clip, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-6f,
                      .params = r.m.params, .grads = r.g.params, .n_params = r.m.n_params, .table = &table,
                      .step = clip_step, .after_update = clamp_scale, .evaluate = clip_evaluate,
                      .eval_every = r.spe * (o->eval_every > 0 ? o->eval_every : 1), .status = clip_status, .user = &r,
                      .samples_per_step = B, .unit = "img", .quiet = o->quiet, .dist = o->dist, .ckpt = ckpt,
                      .recipe = recipe, .producer = "forget train", .ckpt_every = o->ckpt_every, .fresh = o->fresh,
                      .stop_after = o->stop_after, .gemm = r.m.gemm};
    if (bench) {
        spec.total_steps = o->bench_steps, spec.ckpt = NULL, spec.evaluate = NULL, spec.stop_after = 0;
        spec.step_seconds = o->step_seconds;
    }
    res->total_steps = spec.total_steps;
    TrainState st = {0};
    if (rc == 0) rc = train_run(&spec, &st, e);
    res->steps_done = st.step;
    res->last_loss = st.last_loss;
    res->images_per_s = st.samples_per_s;
    if (rc == 0 && st.finished && !bench) {
        if (lead) rc = clip_save(&r.m, o->out, LAYOUT_OPENAI, ST_F32, e);
        if (rc == 0) {
            if (lead) unlink(ckpt);
            res->finished = 1;
        }
    }
    nn_table_free(&table);
    free(recipe), free(ckpt);
    if (o->templates) caption_style_free(&custom);
    run_free(&r);
    return rc;
}
