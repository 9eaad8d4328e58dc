/* bf16 and int8 weight products through oneDNN's matmul primitive (see gemm_mixed.h).
 * Written here: the weight-copy cache, the primitive cache, and the conversion passes that oneDNN
 * has no primitive for in the shape we need (bf16 rounding fused with the copy, per-row dynamic
 * int8 scales, the s32 -> fp32 dequantisation with both scales and the bias in one pass). */
#include "core/gemm_mixed.h"

#include <dnnl.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fastmath.h"
#include "core/gemm.h"
#include "core/ops.h"

/* ------------------------------------------------------------------ names */

const char *precision_name(Precision p) { return p == PREC_BF16 ? "bf16" : p == PREC_INT8 ? "int8" : "fp32"; }

int precision_parse(const char *s, Precision *p, Err *e) {
    static const Precision all[] = {PREC_FP32, PREC_BF16, PREC_INT8};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (s && strcmp(s, precision_name(all[i])) == 0) return *p = all[i], 0;
    return err_set(e, "precision '%s': expected fp32, bf16 or int8", s ? s : "");
}

/* --------------------------------------------------------------- rounding */

unsigned short gemm_f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                                 /* nearest even */
    return (unsigned short)(u >> 16);
}

float gemm_bf16_to_f32(unsigned short h) {
    const uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* The same rounding as a loop the compiler vectorises (the NaN test becomes a blend). */
HOT static void to_bf16(uint16_t *out, const float *in, long n) {
    for (long i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &in[i], 4);
        const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        out[i] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : r);
    }
}

/* rows x cols of in (row stride ld) into dense bf16 rows. */
static void rows_to_bf16(uint16_t *out, const float *in, int ld, int rows, int cols) {
#pragma omp parallel for if ((long)rows * cols > 32768)
    for (int r = 0; r < rows; r++) to_bf16(out + (size_t)r * cols, in + (size_t)r * ld, cols);
}

/* Symmetric int8 of one row: scale = max|x| / 127, q = round(x / scale). Returns the scale. */
HOT static float quant_row(int8_t *q, const float *x, int n) {
    uint32_t mbits = 0; /* max |x| on the bit patterns: non-negative floats order as integers */
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        u &= 0x7fffffffu;
        mbits = u > mbits ? u : mbits;
    }
    if (mbits >= 0x7f800000u) { /* an inf or NaN in the row: its outputs are NaN, as in fp32 */
        memset(q, 0, (size_t)n);
        return NAN;
    }
    float m;
    memcpy(&m, &mbits, 4);
    const float scale = m > 0.0f ? m / 127.0f : 1.0f, inv = 1.0f / scale;
    for (int i = 0; i < n; i++) {
        float v = __builtin_rintf(x[i] * inv);
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
        q[i] = (int8_t)v;
    }
    return scale;
}

static void rows_to_int8(int8_t *q, float *scale, const float *x, int rows, int cols) {
#pragma omp parallel for if ((long)rows * cols > 32768)
    for (int r = 0; r < rows; r++) scale[r] = quant_row(q + (size_t)r * cols, x + (size_t)r * cols, cols);
}

/* ------------------------------------------------------------- the context */

typedef struct {
    const float *src; /* the fp32 weights this copies; NULL: empty slot */
    int rows, cols;
    unsigned gen;
    void *q;          /* uint16_t bf16 or int8_t values, [rows, cols] like the source */
    float *scale;     /* int8: [rows] */
} WeightCopy;

enum { MM_F32 = 0, MM_BF16 = 1, MM_INT8 = 2 };
typedef struct {
    int kind, M, N, K, a_t, b_t, bias, sum, act; /* act: a GemmEpi activation or 0 */
    int dst16;                                  /* bf16 output (an input of the next bf16 product) */
} MmKey;

static dnnl_data_type_t src_type(int kind) { return kind == MM_F32 ? dnnl_f32 : kind == MM_BF16 ? dnnl_bf16 : dnnl_s8; }
static dnnl_data_type_t dst_type(const MmKey *k) {
    return k->kind == MM_INT8 ? dnnl_s32 : k->dst16 ? dnnl_bf16 : dnnl_f32;
}

/* The per-call buffers a context keeps: what each holds in the calls that use it. */
enum {
    S_IN,      /* the first product's converted input (bf16 or int8) */
    S_IN2,     /* its row / column scales, or a second bf16 operand */
    S_ACC,     /* int8: the s32 sums */
    S_ZERO,    /* int8: zeros standing in for a missing bias */
    S_MAXBITS, /* int8 columns: max |x| as bit patterns */
    S_HID,     /* int8 MLP: the requantised hidden layer */
    S_HID_SC,  /* its row scales */
    S_ROWS,    /* one fp32 hidden row per thread */
    S_SLOTS
};

#define GEMM_PRIMS 64
typedef struct {
    MmKey key;
    dnnl_primitive_t p; /* NULL: empty slot */
    unsigned long last_use;
} Prim;

struct Gemm {
    Precision prec;
    dnnl_engine_t eng;
    dnnl_stream_t st;
    pthread_mutex_t mu;
    WeightCopy *w; /* open addressing on the source pointer, capacity a power of two */
    int nw, capw;
    unsigned gen;
    Prim prims[GEMM_PRIMS];
    unsigned long tick;
    char impl[64];
    /* per-call buffers (converted activations, row scales, s32 sums), kept between calls: fresh
     * allocations of this size are fresh pages, and faulting them in cost as much as the product */
    void *scratch[S_SLOTS];
    size_t scratch_cap[S_SLOTS];
};

/* Scratch buffer i of at least n bytes (contents not kept). Called with g->mu held. */
static void *scratch(Gemm *g, int i, size_t n) {
    if (n > g->scratch_cap[i]) {
        free(g->scratch[i]);
        g->scratch[i] = xalloc_floats(n / sizeof(float) + 16);
        g->scratch_cap[i] = n;
    }
    return g->scratch[i];
}

/* n zeros (a missing bias in the int8 dequantisation). Called with g->mu held. */
static const float *zeros(Gemm *g, int n) {
    return memset(scratch(g, S_ZERO, sizeof(float) * (size_t)n), 0, sizeof(float) * (size_t)n);
}

static void must(dnnl_status_t st, const char *what) {
    if (st == dnnl_success) return;
    /* shapes are ours, not the user's: a failure here is a programming error, as in gemm.c */
    fprintf(stderr, "forget: oneDNN %s failed (status %d)\n", what, (int)st);
    abort();
}

static const char *isa_name(unsigned v) {
    static const struct { unsigned v; const char *name; } names[] = {
        {dnnl_cpu_isa_avx512_core_amx, "AVX512_CORE_AMX"}, {dnnl_cpu_isa_avx512_core_bf16, "AVX512_CORE_BF16"},
        {dnnl_cpu_isa_avx512_core_vnni, "AVX512_CORE_VNNI"}, {dnnl_cpu_isa_avx2_vnni, "AVX2_VNNI"},
        {dnnl_cpu_isa_avx512_core, "AVX512_CORE"}, {dnnl_cpu_isa_avx2, "AVX2"}, {dnnl_cpu_isa_avx, "AVX"},
        {dnnl_cpu_isa_sse41, "SSE41"}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if ((v & names[i].v) == names[i].v) return names[i].name;
    return "baseline";
}

/* oneDNN's ISA values are nested bit sets: a larger ISA contains every bit of those below it. */
static int isa_has(unsigned v, unsigned need) { return (v & need) == need; }

Gemm *gemm_new(Precision want, Err *e) {
    Gemm *g = xcalloc(1, sizeof *g);
    if (dnnl_engine_create(&g->eng, dnnl_cpu, 0) != dnnl_success) {
        free(g);
        err_set(e, "oneDNN: no CPU engine");
        return NULL;
    }
    must(dnnl_stream_create(&g->st, g->eng, dnnl_stream_default_flags), "stream");
    pthread_mutex_init(&g->mu, NULL);
    const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    const int ok = want == PREC_FP32 || (want == PREC_BF16 && isa_has(isa, dnnl_cpu_isa_avx512_core_bf16)) ||
                   (want == PREC_INT8 && (isa_has(isa, dnnl_cpu_isa_avx512_core_vnni) ||
                                          isa_has(isa, dnnl_cpu_isa_avx2_vnni)));
    if (!ok)
        fprintf(stderr, "forget: %s needs %s, this CPU (as oneDNN sees it) has %s: running fp32\n",
                precision_name(want), want == PREC_BF16 ? "AVX512_CORE_BF16" : "AVX512_CORE_VNNI or AVX2_VNNI",
                isa_name(isa));
    g->prec = ok ? want : PREC_FP32;
    snprintf(g->impl, sizeof g->impl, "%s", "sgemm");
    return g;
}

void gemm_free(Gemm *g) {
    if (!g) return;
    for (int i = 0; i < g->capw; i++) free(g->w[i].q), free(g->w[i].scale);
    free(g->w);
    for (int i = 0; i < S_SLOTS; i++) free(g->scratch[i]);
    for (int i = 0; i < GEMM_PRIMS; i++)
        if (g->prims[i].p) dnnl_primitive_destroy(g->prims[i].p);
    dnnl_stream_destroy(g->st);
    dnnl_engine_destroy(g->eng);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

const char *gemm_cpu_isa(void) { return isa_name((unsigned)dnnl_get_effective_cpu_isa()); }

Precision gemm_precision(const Gemm *g) { return g ? g->prec : PREC_FP32; }
const char *gemm_impl(const Gemm *g) { return g ? g->impl : "sgemm"; }

void gemm_weights_changed(Gemm *g) {
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    g->gen++;
    pthread_mutex_unlock(&g->mu);
}

/* ----------------------------------------------------------- weight copies */

static size_t ptr_hash(const float *p) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33, x *= 0xff51afd7ed558ccdULL, x ^= x >> 33;
    return (size_t)x;
}

static WeightCopy *slot_for(WeightCopy *tab, int cap, const float *src) {
    for (size_t i = ptr_hash(src) & (size_t)(cap - 1);; i = (i + 1) & (size_t)(cap - 1))
        if (tab[i].src == src || !tab[i].src) return &tab[i];
}

static void grow_weights(Gemm *g) {
    const int cap = g->capw ? g->capw * 2 : 256;
    WeightCopy *t = xcalloc((size_t)cap, sizeof *t);
    for (int i = 0; i < g->capw; i++)
        if (g->w[i].src) *slot_for(t, cap, g->w[i].src) = g->w[i];
    free(g->w);
    g->w = t, g->capw = cap;
}

static void fill_copy(const Gemm *g, WeightCopy *c, const float *W, int rows, int cols) {
    const size_t n = (size_t)rows * cols;
    free(c->q), free(c->scale);
    c->src = W, c->rows = rows, c->cols = cols, c->gen = g->gen, c->scale = NULL;
    if (g->prec == PREC_BF16) {
        c->q = xmalloc(n * sizeof(uint16_t));
        rows_to_bf16(c->q, W, cols, rows, cols);
    } else {
        c->q = xmalloc(n);
        c->scale = xmalloc(sizeof(float) * (size_t)rows);
        rows_to_int8(c->q, c->scale, W, rows, cols);
    }
}

/* The converted copy of W [rows, cols], made on first use and after gemm_weights_changed().
 * Called with g->mu held. */
static const WeightCopy *weight_copy(Gemm *g, const float *W, int rows, int cols) {
    if (2 * (g->nw + 1) > g->capw) grow_weights(g);
    WeightCopy *c = slot_for(g->w, g->capw, W);
    if (!c->src) g->nw++;
    if (!c->src || c->gen != g->gen || c->rows != rows || c->cols != cols) fill_copy(g, c, W, rows, cols);
    return c;
}

/* -------------------------------------------------------------- primitives */

static void md2(dnnl_memory_desc_t *md, int d0, int d1, dnnl_data_type_t dt, int transposed) {
    dnnl_dims_t dims = {d0, d1};
    must(dnnl_memory_desc_init_by_tag(md, 2, dims, dt, transposed ? dnnl_ba : dnnl_ab), "memory desc");
}

/* dst[M,N] (+)= src[M,K] @ wei[K,N] (+ bias[N]); a_t: src stored [K,M]; b_t: wei stored [N,K]. */
static dnnl_primitive_t make_prim(Gemm *g, const MmKey *k) {
    dnnl_memory_desc_t a, b, c, bias;
    md2(&a, k->M, k->K, src_type(k->kind), k->a_t);
    md2(&b, k->K, k->N, src_type(k->kind), k->b_t);
    md2(&c, k->M, k->N, dst_type(k), 0);
    md2(&bias, 1, k->N, dnnl_f32, 0);
    dnnl_primitive_attr_t attr;
    must(dnnl_primitive_attr_create(&attr), "attr");
    if (k->sum || k->act) {
        dnnl_post_ops_t po;
        must(dnnl_post_ops_create(&po), "post ops");
        if (k->sum) must(dnnl_post_ops_append_sum(po, 1.0f), "sum post op");
        /* QuickGELU is oneDNN's swish with alpha 1.702: x * sigmoid(1.702 x) */
        if (k->act == GEMM_EPI_QUICKGELU) must(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_swish, 1.702f, 0), "swish");
        if (k->act == GEMM_EPI_GELU) must(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0, 0), "gelu");
        must(dnnl_primitive_attr_set_post_ops(attr, po), "set post ops");
        dnnl_post_ops_destroy(po);
    }
    dnnl_matmul_desc_t d;
    must(dnnl_matmul_desc_init(&d, &a, &b, k->bias ? &bias : NULL, &c), "matmul desc");
    dnnl_primitive_desc_t pd;
    must(dnnl_primitive_desc_create(&pd, &d, attr, g->eng, NULL), "matmul primitive desc");
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
        snprintf(g->impl, sizeof g->impl, "%s", impl);
    dnnl_primitive_t p;
    must(dnnl_primitive_create(&p, pd), "matmul primitive");
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    return p;
}

/* The cached primitive for k (least recently used one replaced). Called with g->mu held. */
static dnnl_primitive_t prim_for(Gemm *g, const MmKey *k) {
    Prim *victim = &g->prims[0];
    g->tick++;
    for (int i = 0; i < GEMM_PRIMS; i++) {
        Prim *p = &g->prims[i];
        if (p->p && memcmp(&p->key, k, sizeof *k) == 0) {
            p->last_use = g->tick;
            return p->p;
        }
        if (!p->p || (victim->p && p->last_use < victim->last_use)) victim = p;
    }
    if (victim->p) dnnl_primitive_destroy(victim->p);
    victim->key = *k, victim->p = make_prim(g, k), victim->last_use = g->tick;
    return victim->p;
}

static dnnl_memory_t mem_of(Gemm *g, int d0, int d1, dnnl_data_type_t dt, int transposed, const void *ptr) {
    dnnl_memory_desc_t md;
    md2(&md, d0, d1, dt, transposed);
    dnnl_memory_t m;
    must(dnnl_memory_create(&m, &md, g->eng, (void *)ptr), "memory");
    return m;
}

/* Runs the product k on the given buffers. Called with g->mu held. */
static void matmul(Gemm *g, const MmKey *k, const void *A, const void *B, void *C, const float *bias) {
    dnnl_primitive_t p = prim_for(g, k);
    const dnnl_data_type_t in = src_type(k->kind);
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, mem_of(g, k->M, k->K, in, k->a_t, A)},
        {DNNL_ARG_WEIGHTS, mem_of(g, k->K, k->N, in, k->b_t, B)},
        {DNNL_ARG_DST, mem_of(g, k->M, k->N, dst_type(k), 0, C)},
        {DNNL_ARG_BIAS, k->bias ? mem_of(g, 1, k->N, dnnl_f32, 0, bias) : NULL}};
    const int n = k->bias ? 4 : 3;
    must(dnnl_primitive_execute(p, g->st, n, args), "matmul");
    must(dnnl_stream_wait(g->st), "stream wait");
    for (int i = 0; i < n; i++) dnnl_memory_destroy(args[i].memory);
}

/* ------------------------------------------------------------------ linear */

static void linear_f32(Gemm *g, float *out, const float *in, const float *W, const float *b, int N, int IC, int OC,
                       GemmEpi epi) {
    const MmKey k = {MM_F32, N, OC, IC, 0, 1, b != NULL, epi == GEMM_EPI_ADD, epi == GEMM_EPI_ADD ? 0 : (int)epi, 0};
    matmul(g, &k, in, W, out, b);
}

static void linear_bf16(Gemm *g, float *out, const float *in, const float *W, const float *b, int N, int IC, int OC,
                        GemmEpi epi) {
    uint16_t *x = scratch(g, S_IN, sizeof(uint16_t) * (size_t)N * IC);
    rows_to_bf16(x, in, IC, N, IC);
    const WeightCopy *w = weight_copy(g, W, OC, IC);
    const MmKey k = {MM_BF16, N, OC, IC, 0, 1, b != NULL, epi == GEMM_EPI_ADD, epi == GEMM_EPI_ADD ? 0 : (int)epi, 0};
    matmul(g, &k, x, w->q, out, b);
}

/* out[r, :] (+)= epi(acc[r, :] * (sa[r] * sw[:]) + b[:]): the dequantisation with the epilogue fused,
 * one loop per case, each simple enough to vectorise (a test inside the loop would stop that);
 * b is never NULL here (zeros() stands in for a missing bias). */
HOT static void dequant_row(float *out, const int32_t *acc, float sa, const float *sw, const float *b, int n,
                            GemmEpi epi) {
    switch (epi) {
    case GEMM_EPI_ADD:
        for (int i = 0; i < n; i++) out[i] += (float)acc[i] * (sa * sw[i]) + b[i];
        break;
    case GEMM_EPI_QUICKGELU:
        for (int i = 0; i < n; i++) {
            const float y = (float)acc[i] * (sa * sw[i]) + b[i];
            out[i] = y / (1.0f + fast_expf(-1.702f * y));
        }
        break;
    case GEMM_EPI_GELU: /* erff is a libm call: dequantise first, then one pass */
        for (int i = 0; i < n; i++) out[i] = (float)acc[i] * (sa * sw[i]) + b[i];
        for (int i = 0; i < n; i++) out[i] = 0.5f * out[i] * (1.0f + erff(out[i] * 0.70710678118654752f));
        break;
    default:
        for (int i = 0; i < n; i++) out[i] = (float)acc[i] * (sa * sw[i]) + b[i];
    }
}

static void linear_int8(Gemm *g, float *out, const float *in, const float *W, const float *b, int N, int IC, int OC,
                        GemmEpi epi) {
    int8_t *x = scratch(g, S_IN, (size_t)N * IC);
    float *sa = scratch(g, S_IN2, sizeof(float) * (size_t)N);
    int32_t *acc = scratch(g, S_ACC, sizeof(int32_t) * (size_t)N * OC);
    rows_to_int8(x, sa, in, N, IC);
    const WeightCopy *w = weight_copy(g, W, OC, IC);
    const MmKey k = {MM_INT8, N, OC, IC, 0, 1, 0, 0, 0, 0};
    matmul(g, &k, x, w->q, acc, NULL);
    if (!b) b = zeros(g, OC);
#pragma omp parallel for if ((long)N * OC > 32768)
    for (int r = 0; r < N; r++) dequant_row(out + (size_t)r * OC, acc + (size_t)r * OC, sa[r], w->scale, b, OC, epi);
}

void gemm_linear_epi(Gemm *g, float *out, const float *in, const float *W, const float *b, int N, int IC, int OC,
                     GemmEpi epi) {
    if (N <= 0) return;
    if (!g) { /* unfused: the product, then the elementwise op (in place) */
        const long n = (long)N * OC;
        if (epi == GEMM_EPI_ADD) {
            if (b)
                for (int i = 0; i < N; i++)
                    for (int o = 0; o < OC; o++) out[(size_t)i * OC + o] += b[o];
            sgemm(false, true, N, OC, IC, 1.0f, in, IC, W, IC, 1.0f, out, OC);
            return;
        }
        linear_forward(out, in, W, b, N, IC, OC);
        if (epi == GEMM_EPI_QUICKGELU) quickgelu_forward(out, out, n);
        if (epi == GEMM_EPI_GELU) gelu_forward(out, out, n);
        return;
    }
    pthread_mutex_lock(&g->mu);
    if (g->prec == PREC_BF16)
        linear_bf16(g, out, in, W, b, N, IC, OC, epi);
    else if (g->prec == PREC_INT8)
        linear_int8(g, out, in, W, b, N, IC, OC, epi);
    else
        linear_f32(g, out, in, W, b, N, IC, OC, epi);
    pthread_mutex_unlock(&g->mu);
}

/* Column-wise symmetric int8 of B [K, N] (row stride ldb): scale[n] = max_k |B[k,n]| / 127. Each
 * thread takes a range of columns and walks the rows, so every pass reads rows contiguously. */
HOT static void quant_cols_range(int8_t *q, float *scale, uint32_t *mbits, const float *B, int ldb, int K, int N,
                                 int n0, int n1) {
    for (int n = n0; n < n1; n++) mbits[n] = 0;
    for (int k = 0; k < K; k++) /* max |x| on the bit patterns, as quant_row: NaN and inf stay visible */
        for (int n = n0; n < n1; n++) {
            uint32_t u;
            memcpy(&u, &B[(size_t)k * ldb + n], 4);
            u &= 0x7fffffffu;
            mbits[n] = u > mbits[n] ? u : mbits[n];
        }
    for (int n = n0; n < n1; n++) {
        float m;
        memcpy(&m, &mbits[n], 4);
        scale[n] = mbits[n] < 0x7f800000u ? (m > 0.0f ? m / 127.0f : 1.0f) : NAN; /* an inf or NaN: NaN outputs */
    }
    for (int k = 0; k < K; k++)
        for (int n = n0; n < n1; n++) {
            float v = isfinite(scale[n]) ? __builtin_rintf(B[(size_t)k * ldb + n] / scale[n]) : 0.0f;
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            q[(size_t)k * N + n] = (int8_t)v;
        }
}

void gemm_weight_left(Gemm *g, float *C, const float *A, const float *B, int ldb, int M, int N, int K) {
    if (!g || g->prec == PREC_FP32 || M <= 0 || N <= 0) {
        sgemm(false, false, M, N, K, 1.0f, A, K, B, ldb, 0.0f, C, N);
        return;
    }
    pthread_mutex_lock(&g->mu);
    const WeightCopy *w = weight_copy(g, A, M, K);
    if (g->prec == PREC_BF16) {
        uint16_t *b = scratch(g, S_IN, sizeof(uint16_t) * (size_t)K * N);
        rows_to_bf16(b, B, ldb, K, N);
        const MmKey k = {MM_BF16, M, N, K, 0, 0, 0, 0, 0, 0};
        matmul(g, &k, w->q, b, C, NULL);
    } else {
        int8_t *b = scratch(g, S_IN, (size_t)K * N);
        float *sc = scratch(g, S_IN2, sizeof(float) * (size_t)N);
        int32_t *acc = scratch(g, S_ACC, sizeof(int32_t) * (size_t)M * N);
        const float *zero = zeros(g, N);
        uint32_t *mb = scratch(g, S_MAXBITS, sizeof(uint32_t) * (size_t)N);
        const int chunks = (long)K * N > 32768 ? 64 : 1;
#pragma omp parallel for if (chunks > 1)
        for (int c = 0; c < chunks; c++)
            quant_cols_range(b, sc, mb, B, ldb, K, N, (int)((long)N * c / chunks), (int)((long)N * (c + 1) / chunks));
        const MmKey k = {MM_INT8, M, N, K, 0, 0, 0, 0, 0, 0};
        matmul(g, &k, w->q, b, acc, NULL);
#pragma omp parallel for if ((long)M * N > 32768)
        for (int r = 0; r < M; r++) dequant_row(C + (size_t)r * N, acc + (size_t)r * N, w->scale[r], sc, zero, N, GEMM_EPI_NONE);
    }
    pthread_mutex_unlock(&g->mu);
}

void gemm_mlp(Gemm *g, float *x, const float *h, const float *fc_w, const float *fc_b, const float *proj_w,
              const float *proj_b, int T, int W, int Hd, GemmEpi act, float *hidden) {
    if (!g || g->prec == PREC_FP32 || T <= 0) {
        gemm_linear_epi(g, hidden, h, fc_w, fc_b, T, W, Hd, act);
        gemm_linear_epi(g, x, hidden, proj_w, proj_b, T, Hd, W, GEMM_EPI_ADD);
        return;
    }
    pthread_mutex_lock(&g->mu);
    if (g->prec == PREC_INT8) { /* the hidden row dequantised, activated and requantised in cache */
        int8_t *x8 = scratch(g, S_IN, (size_t)T * W), *a8 = scratch(g, S_HID, (size_t)T * Hd);
        float *sa = scratch(g, S_IN2, sizeof(float) * (size_t)T), *sa2 = scratch(g, S_HID_SC, sizeof(float) * (size_t)T);
        int32_t *acc = scratch(g, S_ACC, sizeof(int32_t) * (size_t)T * (Hd > W ? Hd : W));
        const int nt = omp_get_max_threads(), Cmax = Hd > W ? Hd : W;
        float *rows = scratch(g, S_ROWS, sizeof(float) * (size_t)nt * Hd);
        const float *zero = zeros(g, Cmax);
        rows_to_int8(x8, sa, h, T, W);
        const WeightCopy *w1 = weight_copy(g, fc_w, Hd, W), *w2 = weight_copy(g, proj_w, W, Hd);
        const MmKey k1 = {MM_INT8, T, Hd, W, 0, 1, 0, 0, 0, 0}, k2 = {MM_INT8, T, W, Hd, 0, 1, 0, 0, 0, 0};
        matmul(g, &k1, x8, w1->q, acc, NULL);
#pragma omp parallel for if ((long)T * Hd > 32768)
        for (int r = 0; r < T; r++) {
            float *row = rows + (size_t)omp_get_thread_num() * Hd;
            dequant_row(row, acc + (size_t)r * Hd, sa[r], w1->scale, fc_b ? fc_b : zero, Hd, act);
            sa2[r] = quant_row(a8 + (size_t)r * Hd, row, Hd);
        }
        matmul(g, &k2, a8, w2->q, acc, NULL);
#pragma omp parallel for if ((long)T * W > 32768)
        for (int r = 0; r < T; r++)
            dequant_row(x + (size_t)r * W, acc + (size_t)r * W, sa2[r], w2->scale, proj_b ? proj_b : zero, W, GEMM_EPI_ADD);
        pthread_mutex_unlock(&g->mu);
        return;
    }
    uint16_t *h16 = scratch(g, S_IN, sizeof(uint16_t) * (size_t)T * W), *a16 = scratch(g, S_IN2, sizeof(uint16_t) * (size_t)T * Hd);
    rows_to_bf16(h16, h, W, T, W);
    const WeightCopy *w1 = weight_copy(g, fc_w, Hd, W);
    const MmKey k1 = {MM_BF16, T, Hd, W, 0, 1, fc_b != NULL, 0, (int)act, 1};
    matmul(g, &k1, h16, w1->q, a16, fc_b);
    const WeightCopy *w2 = weight_copy(g, proj_w, W, Hd);
    const MmKey k2 = {MM_BF16, T, W, Hd, 0, 1, proj_b != NULL, 1, 0, 0};
    matmul(g, &k2, a16, w2->q, x, proj_b);
    pthread_mutex_unlock(&g->mu);
}

void gemm_linear(Gemm *g, float *out, const float *in, const float *W, const float *b, int N, int IC, int OC) {
    gemm_linear_epi(g, out, in, W, b, N, IC, OC, GEMM_EPI_NONE);
}

void gemm_linear_backward(Gemm *g, float *din, float *dW, float *db, const float *dout, const float *in,
                          const float *W, int N, int IC, int OC) {
    if (!g || g->prec != PREC_BF16 || N <= 0 || (!din && !dW)) {
        linear_backward(din, dW, db, dout, in, W, N, IC, OC);
        return;
    }
    linear_backward(NULL, NULL, db, dout, in, W, N, IC, OC); /* the bias sum stays fp32 */
    pthread_mutex_lock(&g->mu);
    uint16_t *d = scratch(g, S_IN, sizeof(uint16_t) * (size_t)N * OC);
    rows_to_bf16(d, dout, OC, N, OC);
    if (din) { /* din[N,IC] += dout[N,OC] @ W[OC,IC] */
        const WeightCopy *w = weight_copy(g, W, OC, IC);
        const MmKey k = {MM_BF16, N, IC, OC, 0, 0, 0, 1, 0, 0};
        matmul(g, &k, d, w->q, din, NULL);
    }
    if (dW) { /* dW[OC,IC] += dout^T[OC,N] @ in[N,IC] */
        uint16_t *x = scratch(g, S_IN2, sizeof(uint16_t) * (size_t)N * IC);
        rows_to_bf16(x, in, IC, N, IC);
        const MmKey k = {MM_BF16, OC, IC, N, 1, 0, 0, 1, 0, 0};
        matmul(g, &k, d, x, dW, NULL);
    }
    pthread_mutex_unlock(&g->mu);
}
