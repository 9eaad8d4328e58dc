/* Multi-head scaled dot-product attention on packed sequences: self-attention on a fused QKV
 * matrix (the CLIP towers) and the general form it is a case of, queries from one sequence and
 * keys/values from another of another length (cross-attention, cached decoding). */
#include <math.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/fastmath.h"
#include "core/gemm.h"
#include "core/ops.h"

long packing_att_offsets(long *att_off, const int *len, int nseq, int H) {
    long off = 0;
    for (int s = 0; s < nseq; s++) {
        att_off[s] = off;
        off += (long)H * len[s] * len[s];
    }
    return off;
}

long attn_packing_offsets(long *att_off, const int *q_len, const int *k_len, int nseq, int H) {
    long off = 0;
    for (int s = 0; s < nseq; s++) {
        att_off[s] = off;
        off += (long)H * q_len[s] * k_len[s];
    }
    return off;
}

/* Keys query row i of a sequence sees: all of them, or under the causal mask those at or before
 * its own position, queries being the last Lq of Lk positions. */
static int keys_seen(int i, int Lq, int Lk, int causal) {
    if (!causal) return Lk;
    int n = i + 1 + (Lk - Lq);
    return n < 0 ? 0 : n > Lk ? Lk : n;
}

/* Per (sequence, head): S = Q K^T / sqrt(hd) and O = P V as two small GEMMs reading Q, K, V in
 * place through their row strides. Inside the parallel loop each GEMM runs on its own thread. */
HOT void attention_general_forward(float *out, int ldo, float *att, const AttnIn *x, const AttnPacking *pk, int C, int H,
                               int causal) {
    const int hd = C / H;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int s = 0; s < pk->nseq; s++)
        for (int h = 0; h < H; h++) {
            const int Lq = pk->q_len[s], Lk = pk->k_len[s];
            const float *q = x->q + (size_t)pk->q_start[s] * x->ldq + h * hd;
            const float *k = x->k + (size_t)pk->k_start[s] * x->ldk + h * hd;
            const float *v = x->v + (size_t)pk->k_start[s] * x->ldv + h * hd;
            float *P = att + pk->att_off[s] + (long)h * Lq * Lk;
            sgemm(false, true, Lq, Lk, hd, scale, q, x->ldq, k, x->ldk, 0.0f, P, Lk);
            for (int i = 0; i < Lq; i++) {
                float *p = P + (size_t)i * Lk;
                const int jn = keys_seen(i, Lq, Lk, causal);
                float mx = -INFINITY;
                for (int j = 0; j < jn; j++) mx = p[j] > mx ? p[j] : mx;
                float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                for (int j = 0; j < jn; j++) sum += (p[j] = fast_expf(p[j] - mx));
                const float inv = jn > 0 ? 1.0f / sum : 0.0f;
                for (int j = 0; j < jn; j++) p[j] *= inv;
                for (int j = jn; j < Lk; j++) p[j] = 0.0f;
            }
            sgemm(false, false, Lq, hd, Lk, 1.0f, P, Lk, v, x->ldv, 0.0f, out + (size_t)pk->q_start[s] * ldo + h * hd,
                  ldo);
        }
}

HOT void attention_general_backward(const AttnGrad *g, const float *dout, int ldo, const float *att, const AttnIn *x,
                                const AttnPacking *pk, int C, int H, int causal) {
    const int hd = C / H;
    const float scale = 1.0f / sqrtf((float)hd);
    const int need_dp = g->q || g->k;
    long maxP = 0;
    for (int s = 0; s < pk->nseq; s++)
        if ((long)pk->q_len[s] * pk->k_len[s] > maxP) maxP = (long)pk->q_len[s] * pk->k_len[s];
#pragma omp parallel
    {
        float *dP = need_dp ? xalloc_floats((size_t)(maxP > 0 ? maxP : 1)) : NULL;
#pragma omp for collapse(2) schedule(dynamic)
        for (int s = 0; s < pk->nseq; s++)
            for (int h = 0; h < H; h++) {
                const int Lq = pk->q_len[s], Lk = pk->k_len[s];
                const size_t qs = (size_t)pk->q_start[s], ks = (size_t)pk->k_start[s];
                const float *dO = dout + qs * ldo + h * hd;
                const float *P = att + pk->att_off[s] + (long)h * Lq * Lk;
                if (g->v) sgemm(true, false, Lk, hd, Lq, 1.0f, P, Lk, dO, ldo, 1.0f, g->v + ks * g->ldv + h * hd, g->ldv);
                if (!need_dp) continue;
                sgemm(false, true, Lq, Lk, hd, 1.0f, dO, ldo, x->v + ks * x->ldv + h * hd, x->ldv, 0.0f, dP, Lk);
                if (g->datt) {
                    const float *da = g->datt + pk->att_off[s] + (long)h * Lq * Lk;
                    for (long i = 0; i < (long)Lq * Lk; i++) dP[i] += da[i];
                }
                for (int i = 0; i < Lq; i++) {
                    const float *p = P + (size_t)i * Lk;
                    float *d = dP + (size_t)i * Lk;
                    const int jn = keys_seen(i, Lq, Lk, causal);
                    float pdp = 0.0f;
                    for (int j = 0; j < jn; j++) pdp += p[j] * d[j];
                    for (int j = 0; j < jn; j++) d[j] = p[j] * (d[j] - pdp);
                    for (int j = jn; j < Lk; j++) d[j] = 0.0f;
                }
                if (g->q)
                    sgemm(false, false, Lq, hd, Lk, scale, dP, Lk, x->k + ks * x->ldk + h * hd, x->ldk, 1.0f,
                          g->q + qs * g->ldq + h * hd, g->ldq);
                if (g->k)
                    sgemm(true, false, Lk, hd, Lq, scale, dP, Lk, x->q + qs * x->ldq + h * hd, x->ldq, 1.0f,
                          g->k + ks * g->ldk + h * hd, g->ldk);
            }
        free(dP);
    }
}

/* Self-attention on a fused [T, 3C] matrix: the general form with Q, K and V side by side. */
static AttnPacking self_packing(const Packing *pk) {
    return (AttnPacking){pk->nseq, pk->start, pk->len, pk->start, pk->len, pk->att_off};
}

void attention_forward(float *out, float *att, const float *qkv, const Packing *pk, int C, int H, int causal) {
    const AttnIn x = {qkv, qkv + C, qkv + 2 * C, 3 * C, 3 * C, 3 * C};
    const AttnPacking ap = self_packing(pk);
    attention_general_forward(out, C, att, &x, &ap, C, H, causal);
}

void attention_backward(float *dqkv, const float *dout, const float *att, const float *qkv, const Packing *pk,
                        int C, int H, int causal) {
    const AttnIn x = {qkv, qkv + C, qkv + 2 * C, 3 * C, 3 * C, 3 * C};
    const AttnGrad g = {dqkv, dqkv + C, dqkv + 2 * C, 3 * C, 3 * C, 3 * C, NULL};
    const AttnPacking ap = self_packing(pk);
    attention_general_backward(&g, dout, C, att, &x, &ap, C, H, causal);
}
