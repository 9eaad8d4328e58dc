/* Precision as a property of the GEMM seam. A Gemm context says how a model's weight products
 * run: fp32 (dnnl_sgemm, the reference), bf16 (oneDNN matmul on bf16 operands with fp32
 * accumulation; weights converted once, activations on the fly) or int8 (oneDNN's s8 x s8 -> s32
 * matmul; weights quantised once with one symmetric scale per output channel, activations
 * quantised per call with one dynamic symmetric scale per row, so no calibration set is needed).
 * Everything outside the products stays fp32: norms, activations, softmax, attention's own
 * products (Q K^T and P V, whose operands are activations), the residual stream.
 *
 * A model holds a Gemm pointer (NULL: fp32) and routes its linear layers through gemm_linear().
 * The context caches each weight's converted copy keyed by its address and the primitives keyed
 * by shape; a trainer that updates the fp32 master weights calls gemm_weights_changed() after
 * each step so the next products read fresh copies (mixed-precision training).
 *
 * A CPU (or a DNNL_MAX_CPU_ISA limit) without the instructions falls back to fp32 with one line
 * on stderr: never an emulated, slow or wrong path. One thread at a time uses a context (the
 * server holds its model lock around every forward pass); the caches are locked anyway. */
#ifndef FORGET_GEMM_MIXED_H
#define FORGET_GEMM_MIXED_H

#include "core/err.h"

typedef enum { PREC_FP32 = 0, PREC_BF16 = 1, PREC_INT8 = 2 } Precision;

const char *precision_name(Precision p);
/* "fp32" | "bf16" | "int8"; -1 with a message naming the choices otherwise. */
int precision_parse(const char *s, Precision *p, Err *e);

typedef struct Gemm Gemm;

/* The context for `want`; falls back to fp32 (with the notice) where the ISA is missing.
 * NULL only when oneDNN cannot create a CPU engine. */
Gemm *gemm_new(Precision want, Err *e);
void gemm_free(Gemm *g);
/* What runs: the precision after any fallback. NULL counts as fp32. */
Precision gemm_precision(const Gemm *g);
/* oneDNN's name of the implementation that ran last ("brg:avx512_core_amx_bf16"), or "sgemm". */
const char *gemm_impl(const Gemm *g);
/* The widest instruction set oneDNN dispatches to here ("AVX512_CORE_AMX"), after any
 * DNNL_MAX_CPU_ISA limit. */
const char *gemm_cpu_isa(void);
/* The fp32 weights were updated in place: converted copies are rebuilt on next use. */
void gemm_weights_changed(Gemm *g);

/* out[N,OC] = in[N,IC] @ W[OC,IC]^T + b[OC] (b may be NULL); g NULL: linear_forward. */
void gemm_linear(Gemm *g, float *out, const float *in, const float *W, const float *b, int N, int IC, int OC);

/* What the product's epilogue does with y = in @ W^T + b before it is stored: out = act(y)
 * (GEMM_EPI_QUICKGELU: y * sigmoid(1.702 y), GEMM_EPI_GELU: erf GELU), or out += y (the residual
 * add). fp32 and bf16 contexts fuse it into oneDNN's matmul as post-ops; int8 into its
 * dequantisation pass; g NULL runs the product and then the elementwise op. */
typedef enum { GEMM_EPI_NONE = 0, GEMM_EPI_QUICKGELU, GEMM_EPI_GELU, GEMM_EPI_ADD } GemmEpi;
void gemm_linear_epi(Gemm *g, float *out, const float *in, const float *W, const float *b, int N, int IC, int OC,
                     GemmEpi epi);
/* C[M,N] = A[M,K] @ B[K,N]: the convolutions' product, A the weights [Cout, Cin k k] (a cached
 * copy, as gemm_linear's), B the im2col columns read with row stride ldb; C dense. int8: A with
 * one scale per row (output channel), B with one dynamic scale per column (output pixel).
 * g NULL: sgemm. */
void gemm_weight_left(Gemm *g, float *C, const float *A, const float *B, int ldb, int M, int N, int K);

/* The inference MLP x += proj(act(fc(h))) (act: GEMM_EPI_QUICKGELU or GEMM_EPI_GELU), x and h
 * [T, W], the hidden layer [T, Hd]: bf16 keeps the hidden layer in bf16 (the first product's
 * output is the second's input, never widened to fp32 and converted back); int8 dequantises,
 * activates and requantises each hidden row while it is in cache; fp32 runs the two fused products
 * through hidden [T, Hd], which then holds the activation (bf16 and int8 leave it untouched). */
void gemm_mlp(Gemm *g, float *x, const float *h, const float *fc_w, const float *fc_b, const float *proj_w,
              const float *proj_b, int T, int W, int Hd, GemmEpi act, float *hidden);

/* linear_backward's contract (accumulates into din, dW, db; NULL ones skipped). bf16: both
 * products in bf16 with fp32 accumulation into the fp32 gradients. int8 contexts are for
 * inference: their backward runs in fp32. */
void gemm_linear_backward(Gemm *g, float *din, float *dW, float *db, const float *dout, const float *in,
                          const float *W, int N, int IC, int OC);

/* The rounding the bf16 path uses (round to nearest even, NaN kept), exposed for tests. */
unsigned short gemm_f32_to_bf16(float x);
float gemm_bf16_to_f32(unsigned short h);

#endif
