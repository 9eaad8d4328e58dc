/* oneDNN's direct convolution (forward, backward data, backward weights) on the blocked
 * activation layout nChw16c (see ops_blocked.c), for networks whose channel counts are
 * multiples of 16. The im2col + sgemm path of ops_conv.c serves every other shape; this one
 * runs oneDNN's JIT kernels, which read that layout without an im2col buffer.
 *
 * One ConvDnnl per convolution and batch shape, owned by the activations that use it (the
 * primitives are made once). Weights stay in the model's plain [Cout, Cin, k, k] arena: each
 * call reorders them into the kernel's own format (small next to the activations), and weight
 * gradients come back plain and are ADDED to the caller's, like every backward in ops.h. */
#ifndef FORGET_CONV_DNNL_H
#define FORGET_CONV_DNNL_H

#include "core/err.h"
#include "core/ops.h"

typedef struct {
    ConvShape s;
    int plain_src; /* the input (and its gradient) in NCHW: a stem reading images */
    void *eng, *stream;
    void *fwd, *bwd_d, *bwd_w;             /* primitives */
    void *r_wfwd, *r_wbwd, *r_dw;          /* weight reorders */
    void *m_src, *m_dst, *m_w, *m_wfwd, *m_wbwd, *m_dwblk, *m_dw, *m_dsrc; /* memory objects */
    float *wfwd, *wbwd, *dwblk, *dw, *dsrc;
    long n_src;
} ConvDnnl;

/* Whether this convolution can run blocked: output channels (and input channels unless
 * plain_src) multiples of 16. */
int conv_dnnl_fits(const ConvShape *s, int plain_src);
/* -1 with e set when oneDNN refuses the shape. */
int conv_dnnl_init(ConvDnnl *c, const ConvShape *s, int plain_src, Err *e);
void conv_dnnl_free(ConvDnnl *c);
/* out [B, Cout, OH, OW] blocked = conv(in) (blocked, or NCHW when plain_src). */
void conv_dnnl_forward(ConvDnnl *c, float *out, const float *in, const float *W);
/* din += d/d in, dW += d/d W; either may be NULL. */
void conv_dnnl_backward(ConvDnnl *c, float *din, float *dW, const float *dout, const float *in, const float *W);

#endif
