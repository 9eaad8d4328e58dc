/* Measuring a debiasing on an evaluation set: bias (MaxSkew, KL, NDKL or worst-group accuracy),
 * general zero-shot accuracy and the neighbourhoods of held-out words. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/gemm.h"
#include "core/ops.h"
#include "core/progress.h"
#include "core/threads.h"
#include "eval/bias_metrics.h"
#include "eval/svg_plot.h"
#include "forget/bias_internal.h"
#include "forget/resume.h"
#include "forget/vocab.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/emoji.h"
#include "io/file_open.h"
#include "io/json_file.h"
#include "models/clip_encode.h"

int bias_text_features(const Debias *d, const ClipModel *m, const Tokenizer *t, const char *tpl, char **subj, int n, float *out,
                         Err *e) {
    return d ? debias_encode_texts(d, m, t, tpl, (const char *const *)subj, n, out, e)
             : clip_encode_filled(m, t, tpl, (const char *const *)subj, n, out, e);
}

int bias_measure(const Setting *st, const EvalSet *s, const Debias *d, const ClipModel *m, const Tokenizer *t, int K,
                   const float *orig_heldout, Metrics *out, Err *e) {
    const int E = m->cfg.embed_dim;
    memset(out, 0, sizeof *out);
    float *img = xalloc_floats((size_t)s->n_img * E), *txt = xalloc_floats((size_t)s->n_subj * E);
    memcpy(img, s->img, sizeof(float) * (size_t)s->n_img * E);
    if (d) debias_images(d, img, s->n_img);
    l2norm_forward(img, NULL, img, s->n_img, E);
    int rc = bias_text_features(d, m, t, st->tpl, s->subj, s->n_subj, txt, e);
    if (rc == 0) l2norm_forward(txt, NULL, txt, s->n_subj, E);
    out->task_acc = xcalloc((size_t)s->n_tasks, sizeof(double));
    for (int k = 0; k < s->n_tasks && rc == 0; k++) {
        const ZsTask *tk = &s->tasks[k];
        float *tt = xalloc_floats((size_t)tk->C * E), *ii = xalloc_floats((size_t)(tk->n ? tk->n : 1) * E);
        float *lg = xalloc_floats((size_t)(tk->n ? tk->n : 1) * tk->C);
        for (int c = 0; c < tk->C; c++) memcpy(tt + (size_t)c * E, txt + (size_t)tk->cls[c] * E, sizeof(float) * (size_t)E);
        for (int i = 0; i < tk->n; i++) memcpy(ii + (size_t)i * E, img + (size_t)tk->rows[i] * E, sizeof(float) * (size_t)E);
        if (tk->n) sgemm(false, true, tk->n, tk->C, E, 1.0f, ii, E, tt, E, 0.0f, lg, tk->C);
        int32_t *pred = xmalloc(sizeof(int32_t) * (size_t)(tk->n ? tk->n : 1));
        long right = 0;
        for (int i = 0; i < tk->n; i++) {
            int best = 0;
            for (int c = 1; c < tk->C; c++)
                if (lg[(size_t)i * tk->C + c] > lg[(size_t)i * tk->C + best]) best = c;
            pred[i] = best;
            right += best == tk->label[i];
        }
        out->task_acc[k] = tk->n ? (double)right / tk->n : 0;
        out->general += out->task_acc[k] / s->n_tasks;
        if (k == s->group_task) {
            out->avg = group_accuracy(pred, tk->label, s->group, tk->n, s->G, &out->worst, NULL);
            out->unit = xmalloc(sizeof(double) * (size_t)(tk->n ? tk->n : 1)), out->n_unit = tk->n, out->unit_stride = 1;
            for (int i = 0; i < tk->n; i++) out->unit[i] = pred[i] == tk->label[i];
        }
        free(tt), free(ii), free(lg), free(pred);
    }
    /* retrieval bias */
    if (rc == 0 && s->n_q) {
        char **qs = xmalloc(sizeof(char *) * (size_t)s->n_q);
        for (int i = 0; i < s->n_q; i++) qs[i] = s->q[i].subject;
        float *qf = xalloc_floats((size_t)s->n_q * E);
        rc = bias_text_features(d, m, t, st->tpl, qs, s->n_q, qf, e);
        if (rc == 0) l2norm_forward(qf, NULL, qf, s->n_q, E);
        int nqa[2] = {0, 0};
        if (!st->spurious) {
            out->unit = xmalloc(sizeof(double) * (size_t)s->n_q * 2), out->n_unit = s->n_q, out->unit_stride = 2;
            for (int i = 0; i < 2 * s->n_q; i++) out->unit[i] = NAN;
        }
        for (int i = 0; i < s->n_q && rc == 0; i++) {
            const BiasQuery *q = &s->q[i];
            if (q->n < 2) continue;
            float *sc = xalloc_floats((size_t)q->n);
            for (int j = 0; j < q->n; j++) {
                double dot = 0;
                for (int k = 0; k < E; k++) dot += (double)qf[(size_t)i * E + k] * img[(size_t)q->rows[j] * E + k];
                sc[j] = (float)dot;
            }
            const int Kq = K < q->n ? K : q->n;
            int *top = xmalloc(sizeof(int) * (size_t)Kq), *at = xmalloc(sizeof(int) * (size_t)Kq);
            top_k_indices(sc, q->n, Kq, top);
            for (int a = 0; a < s->n_attr; a++) {
                if (!q->use[a]) continue;
                nqa[a]++;
                double prior[8] = {0};
                int cnt = 0;
                for (int j = 0; j < q->n; j++)
                    if (q->attr[a][j] >= 0 && q->attr[a][j] < s->A[a]) prior[q->attr[a][j]]++, cnt++;
                for (int v = 0; v < s->A[a]; v++) prior[v] /= cnt ? cnt : 1;
                for (int k = 0; k < Kq; k++) at[k] = q->attr[a][top[k]];
                const double sk = max_skew_at_k(at, Kq, prior, s->A[a]);
                out->skew[a] += sk;
                if (!st->spurious && a < 2) out->unit[(size_t)i * 2 + a] = sk;
                out->kl[a] += kl_at_k(at, Kq, prior, s->A[a]);
                out->ndkl[a] += ndkl(at, Kq, prior, s->A[a]);
            }
            free(sc), free(top), free(at);
        }
        for (int a = 0; a < s->n_attr; a++) {
            const int nq = nqa[a] ? nqa[a] : 1;
            out->skew[a] /= nq, out->kl[a] /= nq, out->ndkl[a] /= nq;
        }
        free(qs), free(qf);
    }
    /* neighbourhoods of held-out words: the share of each word's 10 nearest kept */
    if (rc == 0 && s->n_heldout > 11 && orig_heldout) {
        const int n = s->n_heldout, NK = 10;
        float *h = xalloc_floats((size_t)n * E), *g0 = xalloc_floats((size_t)n * n), *g1 = xalloc_floats((size_t)n * n);
        rc = bias_text_features(d, m, t, st->tpl, s->heldout, n, h, e);
        if (rc == 0) {
            l2norm_forward(h, NULL, h, n, E);
            sgemm(false, true, n, n, E, 1.0f, orig_heldout, E, orig_heldout, E, 0.0f, g0, n);
            sgemm(false, true, n, n, E, 1.0f, h, E, h, E, 0.0f, g1, n);
            int *t0 = xmalloc(sizeof(int) * (NK + 1)), *t1 = xmalloc(sizeof(int) * (NK + 1));
            double overlap = 0;
            for (int i = 0; i < n; i++) {
                top_k_indices(g0 + (size_t)i * n, n, NK + 1, t0); /* the word itself comes first */
                top_k_indices(g1 + (size_t)i * n, n, NK + 1, t1);
                int same = 0;
                for (int a = 0; a <= NK; a++)
                    for (int b = 0; b <= NK; b++) same += t0[a] == t1[b] && t0[a] != i;
                overlap += (double)same / NK / n;
            }
            out->neighbour = overlap;
            free(t0), free(t1);
        }
        free(h), free(g0), free(g1);
    }
    /* spurious: 1 - worst-group accuracy (the gap to the average would reward a collapse of both) */
    out->bias = st->spurious ? 1 - out->worst : 0.5 * (out->skew[0] + out->skew[1]);
    free(img), free(txt);
    return rc;
}

