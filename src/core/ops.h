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

/* The general form: queries of sequence s are rows q_start[s].. of Q (q_len[s] of them), its keys
 * and values rows k_start[s].. of K and V (k_len[s]); Tq != Tk (cross-attention). Each matrix is
 * read through its own row stride, so Q, K, V may be slices of one fused matrix. Under the causal
 * mask the queries are the last q_len of k_len positions (decoding with cached keys): query i sees
 * keys j <= i + k_len - q_len. Attention weights of sequence s: att + att_off[s], [H, q_len, k_len]. */
typedef struct {
    int nseq;
    const int *q_start, *q_len, *k_start, *k_len;
    const long *att_off;
} AttnPacking;
typedef struct {
    const float *q, *k, *v;
    int ldq, ldk, ldv;
} AttnIn;
typedef struct { /* gradients; a NULL one is not computed (a frozen source costs nothing) */
    float *q, *k, *v;
    int ldq, ldk, ldv;
    const float *datt; /* optional: a gradient of the attention weights themselves (att's layout), added to what
                        * flows from the output (a loss on the maps: Forget-Me-Not) */
} AttnGrad;
long attn_packing_offsets(long *att_off, const int *q_len, const int *k_len, int nseq, int H);
/* out rows have stride ldo; C = H * head width is the width of Q, K and V. */
void attention_general_forward(float *out, int ldo, float *att, const AttnIn *x, const AttnPacking *pk, int C, int H,
                               int causal);
void attention_general_backward(const AttnGrad *g, const float *dout, int ldo, const float *att, const AttnIn *x,
                                const AttnPacking *pk, int C, int H, int causal);

/* QuickGELU x*sigmoid(1.702x) (OpenAI CLIP) and erf GELU (open_clip non-quickgelu). */
void quickgelu_forward(float *out, const float *in, long n);
void quickgelu_backward(float *din, const float *dout, const float *in, long n);
void gelu_forward(float *out, const float *in, long n);
void gelu_backward(float *din, const float *dout, const float *in, long n);

/* SiLU x*sigmoid(x) and ReLU. */
void silu_forward(float *out, const float *in, long n);
void silu_backward(float *din, const float *dout, const float *in, long n);
void relu_forward(float *out, const float *in, long n);
void relu_backward(float *din, const float *dout, const float *in, long n);
/* GEGLU (diffusers): in [N, 2Hd] = [a | g] side by side, out [N, Hd] = a * gelu(g). */
void geglu_forward(float *out, const float *in, int N, int Hd);
void geglu_backward(float *din, const float *dout, const float *in, int N, int Hd);
/* SwiGLU (Llama MLP): out = silu(gate) * up, elementwise over n. */
void swiglu_forward(float *out, const float *gate, const float *up, long n);
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n);
/* The same on N rows of fc [N, 2 Hd] (gate then up in each row, the fused fc product) -> out [N, Hd];
 * the backward accumulates into dfc. */
void swiglu_rows_forward(float *out, const float *fc, int N, int Hd);
void swiglu_rows_backward(float *dfc, const float *dout, const float *fc, int N, int Hd);

/* GroupNorm on NCHW [B, C, HW] in G groups of C/G channels; mean/rstd [B*G]. w, b [C] may be NULL. */
void groupnorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w, const float *b, int B,
                       int C, long HW, int G, float eps);
void groupnorm_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                        const float *mean, const float *rstd, int B, int C, long HW, int G);
/* BatchNorm2d on NCHW [B, C, HW]; mean/rstd [C] saved for backward. training: batch statistics
 * (biased variance) and run_mean/run_var (non-trainable, may be NULL) updated with momentum as
 * PyTorch does (unbiased variance); otherwise the running statistics normalise. */
void batchnorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w, const float *b,
                       float *run_mean, float *run_var, int B, int C, long HW, float eps, float momentum,
                       int training);
void batchnorm_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                        const float *mean, const float *rstd, int B, int C, long HW, int training);
/* RMSNorm over rows [N, C]: out = x / sqrt(mean(x^2) + eps) * w; rstd [N]. */
void rmsnorm_forward(float *out, float *rstd, const float *in, const float *w, int N, int C, float eps);
void rmsnorm_backward(float *din, float *dw, const float *dout, const float *in, const float *w, const float *rstd,
                      int N, int C);

/* Rotary position embedding of x [T, H, hd] at positions pos[T] (rotate-half pairs i, i + hd/2). */
void rope_forward(float *out, const float *in, const int32_t *pos, int T, int H, int hd, float base);
void rope_backward(float *din, const float *dout, const int32_t *pos, int T, int H, int hd, float base);
/* The same rotation in place on the Q and K parts of fused rows (row t's Q at x + t * ld, its K W
 * floats after; W = H * hd), each angle computed once for the heads and both parts; inverse: the
 * transpose (the backward of the rotation, applied to dQ and dK). Same arithmetic as rope_forward. */
void rope_qk_inplace(float *x, int ld, const int32_t *pos, int T, int H, int hd, float base, int inverse);
/* Sinusoidal timestep embedding [N, dim] of timesteps t[N] (Stable Diffusion's: cos half first). */
void timestep_embedding(float *out, const float *t, int N, int dim, float max_period);
/* Mean squared error over n values; backward adds dloss * 2 (pred - target) / n. */
float mse_forward(const float *pred, const float *target, long n);
void mse_backward(float *dpred, const float *pred, const float *target, long n, float dloss);

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

/* The same convolution with NCHW in and out: out [B, Cout, OH, OW] (the layout of a conv net's
 * feature maps, and of PyTorch). cols as above. */
void conv2d_nchw_forward(float *out, float *cols, const float *in, const float *W, const float *b, const ConvShape *s);
/* The same with the product in a Gemm context's precision (core/gemm_mixed.h; NULL: fp32). */
struct Gemm;
void conv2d_nchw_forward_gemm(struct Gemm *g, float *out, float *cols, const float *in, const float *W, const float *b,
                              const ConvShape *s);
void conv2d_nchw_backward(float *din, float *dW, float *db, const float *dout, const float *cols, const float *W,
                          const ConvShape *s);

/* Nearest-neighbour 2x up-sampling of `planes` maps [H, W] -> [2H, 2W] (NCHW: planes = B*C). */
void upsample2x_forward(float *out, const float *in, long planes, int H, int W);
void upsample2x_backward(float *din, const float *dout, long planes, int H, int W);

/* Pooling of `planes` maps [H, W] with a k x k window, no padding: [pool_out(H), pool_out(W)].
 * Global average pooling is k = H = W. maxpool keeps the winner's index within its plane. */
int pool_out(int n, int k, int stride);
void avgpool_forward(float *out, const float *in, long planes, int H, int W, int k, int stride);
void avgpool_backward(float *din, const float *dout, long planes, int H, int W, int k, int stride);
void maxpool_forward(float *out, int32_t *argmax, const float *in, long planes, int H, int W, int k, int stride);
void maxpool_backward(float *din, const float *dout, const int32_t *argmax, long planes, int H, int W, int k,
                      int stride);

/* The blocked layout nChw16c, [B][C/16][H*W][16] for C a multiple of 16 (ops_blocked.c): the
 * conversions, BatchNorm (same contract as batchnorm_forward/backward) and global average
 * pooling to [B, C] rows. */
void nchw_to_blocked16(float *out, const float *in, int B, int C, long HW);
void blocked16_to_nchw(float *out, const float *in, int B, int C, long HW);
void batchnorm16_forward(float *out, float *mean, float *rstd, const float *in, const float *w, const float *b,
                         float *run_mean, float *run_var, int B, int C, long HW, float eps, float momentum,
                         int training);
void batchnorm16_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                          const float *mean, const float *rstd, int B, int C, long HW, int training);
void avgpool16_global_forward(float *out, const float *in, int B, int C, long HW);
void avgpool16_global_backward(float *din, const float *dout, int B, int C, long HW);

/* Elementwise helpers. */
void add_forward(float *out, const float *a, const float *b, long n);   /* out = a + b */
void add_inplace(float *acc, const float *x, long n);                    /* acc += x */
void scale_inplace(float *x, float s, long n);                           /* x *= s */

#endif
