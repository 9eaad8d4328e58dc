#include "models/lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "models/mllm.h"

static const char *const KINDS[7] = {"q", "k", "v", "o", "gate", "up", "down"};

/* Where a target's rows live in a layer: the fused matrix, its first row, its shape. */
static float *target_rows(BlockParams *b, const LmConfig *c, int kind, int *row0, int *out, int *in) {
    const int W = c->width, Hd = c->hidden;
    switch (kind) {
    case 0: case 1: case 2: *row0 = kind * W, *out = W, *in = W; return b->qkv_w;
    case 3: *row0 = 0, *out = W, *in = W; return b->out_w;
    case 4: case 5: *row0 = (kind - 4) * Hd, *out = Hd, *in = W; return b->fc_w;
    default: *row0 = 0, *out = W, *in = Hd; return b->proj_w;
    }
}

static const char *const PEFT_PATH[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                         "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};

/* The wanted kinds of a target list ("all" or a comma list of KINDS). */
static int parse_targets(const char *targets, int want[7], Err *e) {
    memset(want, 0, sizeof(int) * 7);
    if (strcmp(targets, "all") == 0) {
        for (int k = 0; k < 7; k++) want[k] = 1;
        return 0;
    }
    char *dup = xstrdup(targets), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(dup, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        int found = 0;
        for (int k = 0; k < 7; k++)
            if (strcmp(tok, KINDS[k]) == 0) want[k] = found = 1;
        if (!found) rc = err_set(e, "LoRA target '%s': expected q, k, v, o, gate, up, down (comma-separated) or all", tok);
    }
    free(dup);
    return rc;
}

/* One adapted matrix: rows [out, in] at W, keyed under PEFT's name `key`. */
static void add_target(Lora *l, float *W, int out, int in, int layer, int kind, const char *key) {
    LoraTarget *t = &l->t[l->n++];
    t->W = W, t->out = out, t->in = in, t->layer = layer, t->kind = kind;
    t->W0 = xalloc_floats((size_t)out * in);
    memcpy(t->W0, W, sizeof(float) * (size_t)out * in);
    NnParam *p = nn_add(&l->table, &t->A, 2, l->rank, in, 0, 0);
    nn_key(p, 0, "base_model.model.%s.lora_A.weight", key);
    p->init = (NnInit){INIT_NORMAL, 1.0f / (float)l->rank}, p->decay = 1;
    p = nn_add(&l->table, &t->B, 2, out, l->rank, 0, 0);
    nn_key(p, 0, "base_model.model.%s.lora_B.weight", key);
    p->init = (NnInit){INIT_ZEROS, 0}, p->decay = 1;
}

static void add_lm_targets(Lora *l, LmModel *m, const int want[7]) {
    for (int layer = 0; layer < m->cfg.layers; layer++)
        for (int k = 0; k < 7; k++) {
            if (!want[k]) continue;
            int row0, out, in;
            float *base = target_rows(&m->blocks[layer], &m->cfg, k, &row0, &out, &in);
            char key[96];
            snprintf(key, sizeof key, "model.layers.%d.%s", layer, PEFT_PATH[k]);
            add_target(l, base + (size_t)row0 * in, out, in, layer, k, key);
            l->t[l->n - 1].row0 = row0;
        }
}

static int finish(Lora *l, uint64_t seed, Err *e) {
    if (!l->n) {
        lora_free(l);
        return err_set(e, "no LoRA targets");
    }
    l->params = nn_arena_layout(&l->table, 0, &l->n_params);
    Rng r;
    rng_seed(&r, seed);
    nn_init(&l->table, &r);
    return 0;
}

int lora_attach(Lora *l, LmModel *m, const char *targets, int rank, float alpha, uint64_t seed, Err *e) {
    memset(l, 0, sizeof *l);
    int want[7];
    if (parse_targets(targets, want, e)) return -1;
    if (rank < 1 || !(alpha > 0)) return err_set(e, "LoRA rank %d and alpha %g must be positive", rank, alpha);
    l->rank = rank, l->alpha = alpha;
    l->t = xcalloc((size_t)m->cfg.layers * 7, sizeof(LoraTarget));
    add_lm_targets(l, m, want);
    return finish(l, seed, e);
}

int lora_attach_mllm(Lora *l, Mllm *m, int projector, const char *lm_targets, int rank, float alpha, uint64_t seed,
                     Err *e) {
    memset(l, 0, sizeof *l);
    int want[7] = {0};
    if (lm_targets && parse_targets(lm_targets, want, e)) return -1;
    if (rank < 1 || !(alpha > 0)) return err_set(e, "LoRA rank %d and alpha %g must be positive", rank, alpha);
    l->rank = rank, l->alpha = alpha;
    l->t = xcalloc((size_t)m->cfg.lm.layers * 7 + 2, sizeof(LoraTarget));
    if (projector) {
        const int Wv = m->cfg.tower.v_width, Wl = m->cfg.lm.width;
        add_target(l, m->proj1_w, Wl, Wv, -1, LORA_PROJ1, "model.mm_projector.0");
        add_target(l, m->proj2_w, Wl, Wl, -1, LORA_PROJ2, "model.mm_projector.2");
    }
    if (lm_targets) add_lm_targets(l, &m->lm, want);
    return finish(l, seed, e);
}

void lora_alloc_like(Lora *g, const Lora *l) {
    memset(g, 0, sizeof *g);
    g->rank = l->rank, g->alpha = l->alpha, g->n = l->n;
    g->t = xcalloc((size_t)l->n, sizeof(LoraTarget));
    for (int i = 0; i < l->n; i++) {
        g->t[i] = l->t[i];
        g->t[i].W = g->t[i].W0 = NULL;
        NnParam *p = nn_add(&g->table, &g->t[i].A, 2, l->rank, l->t[i].in, 0, 0);
        p->init = (NnInit){INIT_ZEROS, 0};
        p = nn_add(&g->table, &g->t[i].B, 2, l->t[i].out, l->rank, 0, 0);
        p->init = (NnInit){INIT_ZEROS, 0};
    }
    g->params = nn_arena_layout(&g->table, 0, &g->n_params);
    memset(g->params, 0, sizeof(float) * (size_t)g->n_params);
}

void lora_free(Lora *l) {
    for (int i = 0; i < l->n; i++) free(l->t[i].W0);
    free(l->t);
    free(l->params);
    nn_table_free(&l->table);
    memset(l, 0, sizeof *l);
}

void lora_merge(const Lora *l) {
    const float s = l->alpha / (float)l->rank;
    for (int i = 0; i < l->n; i++) {
        const LoraTarget *t = &l->t[i];
        memcpy(t->W, t->W0, sizeof(float) * (size_t)t->out * t->in);
        sgemm(false, false, t->out, t->in, l->rank, s, t->B, l->rank, t->A, t->in, 1.0f, t->W, t->in);
    }
}

void lora_backward(const Lora *l, const float *params, const float *grads, Lora *g) {
    const float s = l->alpha / (float)l->rank;
    for (int i = 0; i < l->n; i++) {
        const LoraTarget *t = &l->t[i];
        const int in = t->in, out = t->out;
        const float *dW = grads + (t->W - params); /* the gradient arena has the model's layout */
        /* dA [r, in] += s B^T dW ; dB [out, r] += s dW A^T */
        sgemm(true, false, l->rank, in, out, s, t->B, l->rank, dW, in, 1.0f, g->t[i].A, in);
        sgemm(false, true, out, l->rank, in, s, dW, in, t->A, in, 1.0f, g->t[i].B, l->rank);
    }
}

int lora_save(const Lora *l, const char *path, Err *e) {
    char r[16], a[32], tg[80] = "";
    snprintf(r, sizeof r, "%d", l->rank), snprintf(a, sizeof a, "%g", l->alpha);
    for (int i = 0; i < l->n; i++)
        if (l->t[i].kind == LORA_PROJ1) snprintf(tg, sizeof tg, "projector");
    for (int k = 0; k < 7; k++)
        for (int i = 0; i < l->n; i++)
            if (l->t[i].layer == 0 && l->t[i].kind == k)
                snprintf(tg + strlen(tg), sizeof tg - strlen(tg), "%s%s", tg[0] ? "," : "", KINDS[k]);
    const char *meta[] = {"format", "forget-lora", "lora.rank", r, "lora.alpha", a, "lora.targets", tg};
    return nn_save(&l->table, path, 0, ST_F32, NULL, meta, 4, e);
}
