#include "train/mllm_trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/mllm_eval.h"
#include "io/mllm_examples.h"
#include "models/lora.h"
#include "models/mllm.h"
#include "train/trainer.h"

const char *const MLLM_STAGE_NAMES[MLLM_STAGES] = {"lm-pretrain", "align", "instruct", "finetune-b"};

void mllm_train_defaults(MllmTrainOpts *o) {
    memset(o, 0, sizeof *o);
    o->lm_config = "lm-s";
    o->vocab = 2048;
    const long steps[MLLM_STAGES] = {1500, 600, 3000, 1500};
    const int batch[MLLM_STAGES] = {32, 16, 16, 16};
    const double lr[MLLM_STAGES] = {1e-3, 1e-3, 5e-4, 2e-4};
    for (int s = 0; s < MLLM_STAGES; s++) o->steps[s] = steps[s], o->batch[s] = batch[s], o->lr[s] = lr[s];
    o->world = (WorldOpts){.people_a = 20, .people_b = 20, .general_emoji = 120, .fmnist_per_class = 50, .seed = 1};
    o->seed = 1;
}

typedef struct {
    const Mllm *m;
    Mllm *g;
    const World *w;
    MllmExample *pool;
    int n_pool, batch, stage;
    uint64_t seed;
    MllmActs a;
    float *feats;
    Lora *lora, *lora_g; /* stage 4 with adapters: the trainer moves these, g is scratch */
} Stage;

static int stage_step(void *user, long step, float *loss, Err *e) {
    Stage *c = user;
    const int B = c->batch, N = mllm_image_tokens(&c->m->cfg), Wv = c->m->cfg.tower.v_width;
    Rng r;
    rng_seed(&r, train_mix(c->seed * 31u + (uint64_t)c->stage, (uint64_t)step));
    const int32_t **ids = xmalloc(sizeof(int32_t *) * (size_t)B), **tg = xmalloc(sizeof(int32_t *) * (size_t)B);
    const float **fs = xmalloc(sizeof(float *) * (size_t)B);
    int *n = xmalloc(sizeof(int) * (size_t)B), n_img = 0;
    WorldImage *ims = xmalloc(sizeof(WorldImage) * (size_t)B);
    int *pick = xmalloc(sizeof(int) * (size_t)B);
    for (int b = 0; b < B; b++) {
        pick[b] = (int)rng_below(&r, (uint32_t)c->n_pool);
        const MllmExample *x = &c->pool[pick[b]];
        if (x->has_image)
            ims[n_img++] = world_train_variant(c->w, &x->image, train_mix((uint64_t)step, (uint64_t)b) | 1u, x->any_style);
    }
    if (c->lora) { /* the adapters changed in the last update: merge, and collect the full gradient afresh */
        lora_merge(c->lora);
        memset(c->g->params, 0, sizeof(float) * (size_t)c->g->n_params);
    }
    int rc = n_img ? mllm_world_features(c->m, c->w, ims, n_img, c->feats, e) : 0;
    for (int b = 0, k = 0; b < B; b++) {
        const MllmExample *x = &c->pool[pick[b]];
        ids[b] = x->ids, tg[b] = x->tgt, n[b] = x->n;
        fs[b] = x->has_image ? c->feats + (size_t)k++ * N * Wv : NULL;
    }
    if (rc == 0) rc = mllm_forward(c->m, &c->a, ids, tg, n, fs, B, loss, e);
    if (rc == 0) mllm_backward(c->m, c->g, &c->a, 1.0f);
    if (rc == 0 && c->lora) lora_backward(c->lora, c->m->params, c->g->params, c->lora_g);
    free(ids), free(tg), free(fs), free(n), free(ims), free(pick);
    return rc;
}

/* The examples of a stage. Stage 4 also replays the pre-training data (stage 1's text and stage 2's
 * captions, not set A's questions), as fine-tunes mix in pre-training data against forgetting: set A
 * stays knowledge from pre-training, set B's questions are the fine-tune's. */
static int stage_pool(int stage, const World *w, const SpTokenizer *t, MllmExample **out, int *n_out, Err *e) {
    const int cap = world_n_text(w) + world_n_captions(w) + 2 * world_n_qa(w) + 1;
    MllmExample *p = xcalloc((size_t)cap, sizeof *p);
    int n = 0, rc = 0;
    if (stage == 0 || stage == 3)
        for (int i = 0; i < world_n_text(w) && rc == 0; i++) rc = mllm_example_text(&p[n++], t, world_text(w, i), e);
    if (stage == 1 || stage == 3)
        for (int i = 0; i < world_n_captions(w) && rc == 0; i++) {
            const WorldCaption *c = world_caption(w, i);
            rc = mllm_example_qa(&p[n], t, MLLM_CAPTION_Q, c->text, 1, e);
            p[n++].image = c->image;
        }
    if (stage >= 2) {
        const WorldSet mine = stage == 2 ? WSET_A : WSET_B;
        for (int i = 0; i < world_n_qa(w) && rc == 0; i++) {
            const WorldQA *q = world_qa(w, i);
            if (q->test || (q->set != mine && q->set != WSET_GENERAL)) continue;
            const int img = q->form == WFORM_IMAGE;
            rc = mllm_example_qa(&p[n], t, q->question, q->answer, img, e);
            p[n].image = q->image, p[n++].any_style = q->set == WSET_GENERAL;
            if (rc == 0 && q->cloze) {
                char *cq = xasprintf(MLLM_CLOZE_Q, q->cloze);
                rc = mllm_example_qa(&p[n], t, cq, q->value, img, e);
                p[n++].image = q->image;
                free(cq);
            }
        }
    }
    if (rc) {
        for (int i = 0; i < n; i++) mllm_example_free(&p[i]);
        free(p);
        return -1;
    }
    *out = p, *n_out = n;
    return 0;
}

static int file_exists(const char *p) { return access(p, F_OK) == 0; }

static int first_model(Mllm *m, const MllmTrainOpts *o, const SpTokenizer *t, Err *e) {
    ClipModel clip;
    if (clip_load(&clip, o->tower, NULL, e)) return err_prefix(e, "the vision tower: ");
    MllmConfig c = {0};
    c.tower = clip.cfg;
    c.tower.has_text = 0;
    int rc = lm_config_named(&c.lm, o->lm_config, e);
    c.lm.vocab = sp_vocab_size(t);
    c.select_layer = c.tower.v_layers > 1 ? c.tower.v_layers - 1 : 1;
    c.image_token = sp_piece_id(t, "<image>");
    if (rc == 0 && c.image_token < 0) rc = err_set(e, "the tokenizer has no <image> piece");
    if (rc == 0) rc = mllm_config_check(&c, e);
    if (rc == 0) {
        mllm_init_random(m, &c, o->seed);
        rc = mllm_set_tower(m, &clip, e);
        if (rc) mllm_free(m);
    }
    clip_free(&clip);
    return rc;
}

int mllm_train_stages(const MllmTrainOpts *o, Err *e) {
    if (mkdir(o->dir, 0755) && !file_exists(o->dir)) return err_set(e, "%s: cannot create the directory", o->dir);
    char *corpus = xasprintf("%s/corpus.txt", o->dir), *tok = xasprintf("%s/tokenizer.model", o->dir);
    World *w = world_build(&o->world, e);
    int rc = w ? 0 : -1;
    if (rc == 0 && (o->fresh || !file_exists(tok))) {
        rc = world_write_corpus(w, corpus, e);
        const SpTrainOpts so = {.vocab_size = o->vocab, .model_type = "unigram", .user_symbols = "<image>",
                                .character_coverage = 1.0, .seed = o->seed, .threads = 2};
        if (rc == 0) rc = sp_train(corpus, tok, &so, e);
    }
    SpTokenizer *t = rc == 0 ? sp_load(tok, e) : NULL;
    if (rc == 0 && !t) rc = -1;
    for (int s = 0; s < MLLM_STAGES && rc == 0; s++) {
        char *out = xasprintf("%s/stage%d.safetensors", o->dir, s + 1);
        char *ckpt = xasprintf("%s/stage%d.ckpt", o->dir, s + 1);
        char *prev = s ? xasprintf("%s/stage%d.safetensors", o->dir, s) : NULL;
        if (!o->fresh && file_exists(out)) {
            if (!o->quiet) fprintf(stderr, "stage %d (%s): done, %s\n", s + 1, MLLM_STAGE_NAMES[s], out);
            free(out), free(ckpt), free(prev);
            continue;
        }
        Mllm m, g;
        rc = s == 0 ? first_model(&m, o, t, e) : mllm_load(&m, prev, e);
        if (rc == 0) {
            const int lora = s == MLLM_STAGES - 1 && o->lora_rank > 0;
            mllm_set_trainable(&m, 0, s != 0 && !lora, s != 1); /* 1: LM; 2: projector; 3, 4: both; LoRA: the LM's adapters */
            mllm_alloc_like(&g, &m);
            Stage c = {.m = &m, .g = &g, .w = w, .batch = o->batch[s], .stage = s, .seed = o->seed};
            Lora ad = {0}, ad_g = {0};
            if (lora) {
                rc = lora_attach(&ad, &m.lm, o->lora_targets ? o->lora_targets : "all", o->lora_rank,
                                 o->lora_alpha > 0 ? o->lora_alpha : (float)o->lora_rank, o->seed, e);
                if (rc == 0) lora_alloc_like(&ad_g, &ad), c.lora = &ad, c.lora_g = &ad_g;
            }
            if (rc == 0) rc = stage_pool(s, w, t, &c.pool, &c.n_pool, e);
            if (rc == 0) {
                c.feats = xalloc_floats((size_t)c.batch * mllm_image_tokens(&m.cfg) * m.cfg.tower.v_width);
                char label[64], recipe[96];
                snprintf(label, sizeof label, "stage %d %s", s + 1, MLLM_STAGE_NAMES[s]);
                snprintf(recipe, sizeof recipe, "mllm %s %ld x %d%s", MLLM_STAGE_NAMES[s], o->steps[s], o->batch[s],
                         lora ? " lora" : "");
                TrainSpec spec = {.label = label, .total_steps = o->steps[s], .lr = o->lr[s], .warmup_frac = 0.05,
                                  .cosine = 1, .wd = 0.0, .grad_clip = 1.0f, .params = lora ? ad.params : m.params,
                                  .grads = lora ? ad_g.params : g.params, .n_params = lora ? ad.n_params : m.n_params,
                                  .table = lora ? &ad.table : &m.table, .step = stage_step, .user = &c,
                                  .samples_per_step = o->batch[s], .unit = "seq", .quiet = o->quiet, .ckpt = ckpt,
                                  .recipe = recipe, .producer = "forget train-mllm", .ckpt_every = 200,
                                  .fresh = o->fresh, .stop_after = o->stop_after};
                TrainState ts;
                rc = train_run(&spec, &ts, e);
                if (rc == 0 && ts.finished && lora) {
                    lora_merge(&ad);
                    char *lp = xasprintf("%s/stage%d-lora.safetensors", o->dir, s + 1);
                    rc = lora_save(&ad, lp, e);
                    free(lp);
                }
                if (rc == 0 && ts.finished) {
                    char wb[5][32];
                    const char *meta[14] = {"producer", "forget train-mllm", "stage", MLLM_STAGE_NAMES[s]};
                    world_opts_meta(&o->world, wb, meta + 4);
                    rc = mllm_save(&m, out, MLLM_LLAVA, ST_F32, meta, 7, e);
                    if (rc == 0) remove(ckpt);
                    if (rc == 0 && s == MLLM_STAGES - 1) {
                        char *fin = xasprintf("%s/mllm.safetensors", o->dir);
                        rc = mllm_save(&m, fin, MLLM_LLAVA, ST_F32, meta, 7, e);
                        free(fin);
                    }
                } else if (rc == 0) {
                    rc = 1; /* stopped early (stop_after): the checkpoint holds the run */
                }
                free(c.feats);
                for (int i = 0; i < c.n_pool; i++) mllm_example_free(&c.pool[i]);
                free(c.pool);
            }
            mllm_acts_free(&c.a);
            if (lora) lora_free(&ad), lora_free(&ad_g);
            mllm_free(&g);
            mllm_free(&m);
        }
        free(out), free(ckpt), free(prev);
    }
    sp_free(t);
    world_free(w);
    free(corpus), free(tok);
    return rc < 0 ? -1 : rc;
}
