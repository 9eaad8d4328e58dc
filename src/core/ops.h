/* Neural-network operations on plain float arrays, llm.c style: each forward has
 * its backward right below it. Conventions:
 *  - activations are row-major [rows, channels];
 *  - backward functions ACCUMULATE (+=) into the gradients they are given, so a
 *    tensor used twice (a residual stream) sums its gradients for free; a NULL
 *    gradient pointer means "not needed";
 *  - whatever a backward needs from its forward (means, attention weights, ...)
 *    is returned by the forward into a buffer the caller owns.
 * Each op has a finite-difference gradient check in tests/core/test_ops.c. */
#ifndef FORGET_OPS_H
#define FORGET_OPS_H

#include <stdint.h>

/* out[N,OC] = in[N,IC] @ W[OC,IC]^T + b[OC] (b may be NULL) */
void linear_forward(float *out, const float *in, const float *W, const float *b, int N, int IC, int OC);
void linear_backward(float *din, float *dW, float *db, const float *dout, const float *in, const float *W,
                     int N, int IC, int OC);

/* out[T,C] = table[ids[t], :] */
void embedding_forward(float *out, const int32_t *ids, const float *table, int T, int C);
void embedding_backward(float *dtable, const float *dout, const int32_t *ids, int T, int C);

/* LayerNorm over the last dimension, biased variance; mean/rstd [N] are saved for backward. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w, const float *b,
                       int N, int C, float eps);
void layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                        const float *mean, const float *rstd, int N, int C);

/* Sequences of different lengths packed row after row into one [T, C] matrix.
 * The attention weights of sequence s live at att + att_off[s], shape [H, len, len]. */
typedef struct {
    int nseq;
    const int *start;    /* first row of each sequence */
    const int *len;      /* rows in each sequence */
    const long *att_off; /* offset of each sequence's attention block */
} Packing;

/* Fills att_off from len for H heads and returns the total attention-buffer size. */
long packing_att_offsets(long *att_off, const int *len, int nseq, int H);

/* Multi-head scaled dot-product attention on packed sequences.
 * qkv[T, 3C] holds Q, K, V side by side (nn.MultiheadAttention's in_proj order);
 * heads split C into contiguous chunks of C/H. causal: position i sees j <= i. */
void attention_forward(float *out, float *att, const float *qkv, const Packing *pk, int C, int H, int causal);
void attention_backward(float *dqkv, const float *dout, const float *att, const float *qkv, const Packing *pk,
                        int C, int H, int causal);

/* QuickGELU x*sigmoid(1.702x) (OpenAI CLIP) and erf GELU (open_clip non-quickgelu). */
void quickgelu_forward(float *out, const float *in, long n);
void quickgelu_backward(float *din, const float *dout, const float *in, long n);
void gelu_forward(float *out, const float *in, long n);
void gelu_backward(float *din, const float *dout, const float *in, long n);

/* Row-wise softmax over K columns. */
void softmax_forward(float *out, const float *in, int N, int K);
void softmax_backward(float *din, const float *dout, const float *out, int N, int K);

/* Mean cross-entropy of logits[N,K] against targets[N]; probs[N,K] saved for backward.
 * Returns the mean loss. Backward scales by dloss / N. */
float cross_entropy_forward(float *probs, const float *logits, const int32_t *targets, int N, int K);
void cross_entropy_backward(float *dlogits, const float *probs, const int32_t *targets, int N, int K, float dloss);

/* Row-wise L2 normalisation y = x / ||x||; norms[N] saved for backward. */
void l2norm_forward(float *out, float *norms, const float *in, int N, int C);
void l2norm_backward(float *din, const float *dout, const float *out, const float *norms, int N, int C);

/* 2-D convolution, input NCHW [B, Cin, H, W], weight [Cout, Cin, k, k], optional bias,
 * output channels-last [B, OH*OW, Cout] (the token layout a ViT patch embedding wants).
 * cols is a workspace of conv2d_cols_size() floats, kept between forward and backward. */
typedef struct {
    int B, Cin, H, W, Cout, k, stride, pad;
} ConvShape;
int conv2d_out_h(const ConvShape *s);
int conv2d_out_w(const ConvShape *s);
long conv2d_cols_size(const ConvShape *s);
void conv2d_forward(float *out, float *cols, const float *in, const float *W, const float *b, const ConvShape *s);
void conv2d_backward(float *din, float *dW, float *db, const float *dout, const float *cols, const float *W,
                     const ConvShape *s);

/* Elementwise helpers. */
void add_forward(float *out, const float *a, const float *b, long n);   /* out = a + b */
void add_inplace(float *acc, const float *x, long n);                    /* acc += x */
void scale_inplace(float *x, float s, long n);                           /* x *= s */

#endif
