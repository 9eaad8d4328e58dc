#include "eval/mllm_eval.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "io/dataset.h"

const char *const MLLM_TASK_NAMES[3] = {"choice", "generate", "cloze"};

int mllm_world_features(const Mllm *m, const World *w, const WorldImage *ims, int n, float *out, Err *e) {
    const int S = WORLD_IMG, R = m->cfg.tower.image_res;
    if (R != S) return err_set(e, "the MLLM's tower reads %d px images, the world draws %d px", R, S);
    float *px = xalloc_floats((size_t)n * 3 * S * S);
    uint8_t *rgb = xmalloc((size_t)S * S * 3);
    for (int i = 0; i < n; i++) {
        world_render(w, &ims[i], rgb);
        float *dst = px + (size_t)i * 3 * S * S;
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < S * S; k++)
                dst[(size_t)c * S * S + k] = (rgb[k * 3 + c] / 255.0f - PIXELS_CLIP.mean[c]) / PIXELS_CLIP.std[c];
    }
    const int rc = mllm_encode_images(m, px, n, out, e);
    free(px), free(rgb);
    return rc;
}

/* Words: lower case, letters and digits only. */
static int words(const char *s, char w[][32], int cap) {
    int n = 0, len = 0;
    for (const char *p = s;; p++) {
        const int c = (unsigned char)*p;
        if (c && (isalnum(c) || c == '\'' || c == '-')) {
            if (len < 31 && n < cap) w[n][len++] = (char)tolower(c);
        } else if (len) {
            w[n][len] = 0;
            n++, len = 0;
        }
        if (!c) break;
    }
    return n < cap ? n : cap;
}

double rouge_l_f(const char *hyp, const char *ref) {
    char (*ha)[32] = xmalloc(96 * 32), (*rb)[32] = xmalloc(96 * 32);
    const int n = words(hyp, ha, 96), m = words(ref, rb, 96);
    int *dp = xcalloc((size_t)(n + 1) * (m + 1), sizeof(int));
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= m; j++)
            dp[i * (m + 1) + j] = strcmp(ha[i - 1], rb[j - 1]) == 0 ? dp[(i - 1) * (m + 1) + j - 1] + 1
                                  : dp[(i - 1) * (m + 1) + j] > dp[i * (m + 1) + j - 1] ? dp[(i - 1) * (m + 1) + j]
                                                                                         : dp[i * (m + 1) + j - 1];
    const double lcs = dp[n * (m + 1) + m];
    free(dp), free(ha), free(rb);
    if (lcs == 0) return 0;
    const double p = lcs / n, r = lcs / m;
    return 2 * p * r / (p + r);
}

static int selected(const WorldQA *q, const MllmEvalSel *s, MllmTask task) {
    if (!((s->sets >> q->set) & 1u) || q->test != s->test) return 0;
    if (s->people_mask && q->person >= 0 && !s->people_mask[q->person]) return 0;
    if (task == MTASK_CLOZE && !q->cloze) return 0;
    return 1;
}

/* Mean log-likelihood of each option's answer tokens. */
static int choice(const Mllm *m, const SpTokenizer *t, const WorldQA *q, const float *feats, int *pick, Err *e) {
    MllmExample x[4];
    int rc = 0, made = 0;
    for (int k = 0; k < 4 && rc == 0; k++, made++)
        rc = mllm_example_qa(&x[k], t, q->question, q->options[k], q->form == WFORM_IMAGE, e);
    if (rc) made--;
    if (rc == 0) {
        const int32_t *ids[4], *tg[4];
        int n[4];
        const float *fs[4];
        for (int k = 0; k < 4; k++) ids[k] = x[k].ids, tg[k] = x[k].tgt, n[k] = x[k].n, fs[k] = x[k].has_image ? feats : NULL;
        MllmActs a = {0};
        float loss;
        rc = mllm_forward(m, &a, ids, tg, n, fs, 4, &loss, e);
        if (rc == 0) {
            double lp[4], best = -INFINITY;
            mllm_sequence_logprobs(m, &a, lp);
            for (int k = 0; k < 4; k++) {
                int cnt = 0;
                for (int i = 0; i < x[k].n; i++) cnt += x[k].tgt[i] >= 0;
                const double v = lp[k] / (cnt ? cnt : 1);
                if (v > best) best = v, *pick = k;
            }
        }
        mllm_acts_free(&a);
    }
    for (int k = 0; k < made; k++) mllm_example_free(&x[k]);
    return rc;
}

char *mllm_answer(const Mllm *m, const SpTokenizer *t, const World *w, const char *question, const WorldImage *image,
                  const float *feats, const LmSampling *s, Err *e) {
    MllmExample x;
    if (mllm_example_qa(&x, t, question, NULL, image != NULL || feats != NULL, e)) return NULL;
    float *own = NULL;
    int rc = 0;
    if (image && !feats) {
        own = xalloc_floats((size_t)mllm_image_tokens(&m->cfg) * m->cfg.tower.v_width);
        rc = mllm_world_features(m, w, image, 1, own, e);
        feats = own;
    }
    char *text = NULL;
    /* the answer gets what the context leaves after the prompt */
    const int rows = x.n + (feats ? mllm_image_tokens(&m->cfg) - 1 : 0), room = m->cfg.lm.context - rows;
    if (rc == 0 && room < 1)
        rc = err_set(e, "a prompt of %d positions fills the model's context of %d", rows, m->cfg.lm.context);
    if (rc == 0) {
        LmSampling capped = *s;
        if (capped.max_tokens > room) capped.max_tokens = room;
        int32_t *out = xmalloc(sizeof(int32_t) * (size_t)(capped.max_tokens > 0 ? capped.max_tokens : 1));
        const int n = mllm_generate(m, x.ids, x.n, feats, &capped, out, e);
        if (n >= 0) {
            const int keep = n > 0 && out[n - 1] == capped.eos ? n - 1 : n;
            text = sp_decode(t, out, keep, e);
        }
        free(out);
    }
    free(own);
    mllm_example_free(&x);
    return text;
}

static void trim_value(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '.' || isspace((unsigned char)s[n - 1]))) s[--n] = 0;
    char *p = s;
    while (*p && isspace((unsigned char)*p)) p++;
    memmove(s, p, strlen(p) + 1);
}

int mllm_eval(const Mllm *m, const SpTokenizer *t, const World *w, const MllmEvalSel *sel, MllmTask task,
              MllmScore *s, Err *e) {
    memset(s, 0, sizeof *s);
    const int nq = world_n_qa(w);
    int *pick = xmalloc(sizeof(int) * (size_t)(nq + 1)), n = 0;
    for (int i = 0; i < nq; i++)
        if (selected(world_qa(w, i), sel, task)) pick[n++] = i;
    if (sel->limit > 0 && n > sel->limit) { /* an even, seeded choice */
        Rng r;
        rng_seed(&r, sel->seed);
        rng_shuffle(&r, pick, n, sizeof(int));
        n = sel->limit;
    }
    const int N = mllm_image_tokens(&m->cfg), Wv = m->cfg.tower.v_width;
    float *feats = xalloc_floats((size_t)N * Wv);
    const int want = sel->max_tokens > 0 ? sel->max_tokens : 40;
    Progress bar;
    progress_start(&bar, MLLM_TASK_NAMES[task], n, sel->quiet);
    double sum[2] = {0, 0};
    int cnt[2] = {0, 0}, rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        const WorldQA *q = world_qa(w, pick[k]);
        const int img = q->form == WFORM_IMAGE;
        if (img) rc = mllm_world_features(m, w, &q->image, 1, feats, e);
        double v = 0;
        if (rc == 0 && task == MTASK_CHOICE) {
            int p = -1;
            rc = choice(m, t, q, feats, &p, e);
            v = p == q->key;
        } else if (rc == 0) {
            char *cq = task == MTASK_CLOZE ? xasprintf(MLLM_CLOZE_Q, q->cloze) : NULL;
            const LmSampling gs = {.max_tokens = want, .eos = sp_eos(t)};
            char *ans = mllm_answer(m, t, w, cq ? cq : q->question, NULL, img ? feats : NULL, &gs, e);
            if (!ans) rc = -1;
            else if (task == MTASK_GENERATE) v = rouge_l_f(ans, q->answer);
            else {
                trim_value(ans);
                v = strcmp(ans, q->value) == 0;
            }
            free(ans), free(cq);
        }
        sum[!img] += v, cnt[!img]++;
        progress_update(&bar, k + 1, 1, "q", NULL);
    }
    progress_end(&bar);
    free(feats), free(pick);
    if (rc) return -1;
    s->n = cnt[0] + cnt[1], s->n_image = cnt[0], s->n_text = cnt[1];
    s->score = s->n ? (sum[0] + sum[1]) / s->n : 0;
    s->score_image = cnt[0] ? sum[0] / cnt[0] : 0;
    s->score_text = cnt[1] ? sum[1] / cnt[1] : 0;
    return 0;
}

void mllm_score_json(cJSON *parent, const char *key, const MllmScore *s) {
    cJSON *j = cJSON_AddObjectToObject(parent, key);
    cJSON_AddNumberToObject(j, "acc", s->score);
    cJSON_AddNumberToObject(j, "acc_image", s->score_image);
    cJSON_AddNumberToObject(j, "acc_text", s->score_text);
    cJSON_AddNumberToObject(j, "n", s->n);
}
