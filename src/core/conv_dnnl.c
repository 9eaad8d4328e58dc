#include "core/conv_dnnl.h"

#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

int conv_dnnl_fits(const ConvShape *s, int plain_src) {
    return s->Cout % 16 == 0 && (plain_src || s->Cin % 16 == 0);
}

/* A failed call inside an initialised convolution is a programming error (shapes were checked
 * at init), as in gemm.c. */
static void must(dnnl_status_t st, const char *what) {
    if (st == dnnl_success) return;
    fprintf(stderr, "forget: oneDNN %s failed (status %d)\n", what, (int)st);
    abort();
}

static dnnl_memory_t mem(const dnnl_memory_desc_t *md, dnnl_engine_t eng) {
    dnnl_memory_t m;
    must(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_NONE), "memory_create");
    return m;
}

static float *alloc_md(const dnnl_memory_desc_t *md) { return xalloc_floats(dnnl_memory_desc_get_size(md) / sizeof(float) + 16); }

static dnnl_primitive_t reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, dnnl_engine_t eng) {
    if (dnnl_memory_desc_equal(from, to)) return NULL;
    dnnl_primitive_desc_t pd;
    must(dnnl_reorder_primitive_desc_create(&pd, from, eng, to, eng, NULL), "reorder");
    dnnl_primitive_t p;
    must(dnnl_primitive_create(&p, pd), "reorder primitive");
    dnnl_primitive_desc_destroy(pd);
    return p;
}

int conv_dnnl_init(ConvDnnl *c, const ConvShape *s, int plain_src, Err *e) {
    memset(c, 0, sizeof *c);
    c->s = *s, c->plain_src = plain_src;
    if (!conv_dnnl_fits(s, plain_src)) return err_set(e, "conv %d->%d: channels not multiples of 16", s->Cin, s->Cout);
    const int OH = conv2d_out_h(s), OW = conv2d_out_w(s);
    dnnl_engine_t eng;
    dnnl_stream_t st;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) return err_set(e, "oneDNN: no CPU engine");
    must(dnnl_stream_create(&st, eng, dnnl_stream_default_flags), "stream");
    c->eng = eng, c->stream = st;
    dnnl_memory_desc_t src, dst, wany, wplain;
    dnnl_dims_t sd = {s->B, s->Cin, s->H, s->W}, dd = {s->B, s->Cout, OH, OW}, wd = {s->Cout, s->Cin, s->k, s->k};
    must(dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, plain_src ? dnnl_nchw : dnnl_nChw16c), "src md");
    must(dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dnnl_nChw16c), "dst md");
    must(dnnl_memory_desc_init_by_tag(&wany, 4, wd, dnnl_f32, dnnl_format_tag_any), "weights md");
    must(dnnl_memory_desc_init_by_tag(&wplain, 4, wd, dnnl_f32, dnnl_oihw), "plain weights md");
    dnnl_dims_t strides = {s->stride, s->stride}, pad = {s->pad, s->pad};
    dnnl_convolution_desc_t fd, bdd, bwd;
    dnnl_primitive_desc_t fpd, bdpd, bwpd;
    if (dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &src, &wany, NULL, &dst,
                                           strides, pad, pad) != dnnl_success ||
        dnnl_primitive_desc_create(&fpd, &fd, NULL, eng, NULL) != dnnl_success) {
        conv_dnnl_free(c);
        return err_set(e, "oneDNN refuses a %dx%d convolution %d->%d", s->k, s->k, s->Cin, s->Cout);
    }
    must(dnnl_convolution_backward_data_desc_init(&bdd, dnnl_convolution_direct, &src, &wany, &dst, strides, pad, pad),
         "bwd data desc");
    must(dnnl_primitive_desc_create(&bdpd, &bdd, NULL, eng, fpd), "bwd data pd");
    must(dnnl_convolution_backward_weights_desc_init(&bwd, dnnl_convolution_direct, &src, &wany, NULL, &dst, strides,
                                                     pad, pad),
         "bwd weights desc");
    must(dnnl_primitive_desc_create(&bwpd, &bwd, NULL, eng, fpd), "bwd weights pd");
    const dnnl_memory_desc_t *wf = dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *wb = dnnl_primitive_desc_query_md(bdpd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *dw = dnnl_primitive_desc_query_md(bwpd, dnnl_query_diff_weights_md, 0);
    dnnl_primitive_t p;
    must(dnnl_primitive_create(&p, fpd), "fwd"), c->fwd = p;
    must(dnnl_primitive_create(&p, bdpd), "bwd data"), c->bwd_d = p;
    must(dnnl_primitive_create(&p, bwpd), "bwd weights"), c->bwd_w = p;
    c->r_wfwd = reorder(&wplain, wf, eng), c->r_wbwd = reorder(&wplain, wb, eng), c->r_dw = reorder(dw, &wplain, eng);
    c->m_src = mem(&src, eng), c->m_dst = mem(&dst, eng), c->m_w = mem(&wplain, eng), c->m_dsrc = mem(&src, eng);
    c->m_wfwd = mem(wf, eng), c->m_wbwd = mem(wb, eng), c->m_dwblk = mem(dw, eng), c->m_dw = mem(&wplain, eng);
    c->wfwd = alloc_md(wf), c->wbwd = alloc_md(wb), c->dwblk = alloc_md(dw), c->dw = alloc_md(&wplain);
    c->n_src = (long)s->B * s->Cin * s->H * s->W;
    dnnl_primitive_desc_destroy(fpd), dnnl_primitive_desc_destroy(bdpd), dnnl_primitive_desc_destroy(bwpd);
    return 0;
}

void conv_dnnl_free(ConvDnnl *c) {
    void *prims[] = {c->fwd, c->bwd_d, c->bwd_w, c->r_wfwd, c->r_wbwd, c->r_dw};
    for (size_t i = 0; i < sizeof prims / sizeof *prims; i++)
        if (prims[i]) dnnl_primitive_destroy(prims[i]);
    void *mems[] = {c->m_src, c->m_dst, c->m_w, c->m_wfwd, c->m_wbwd, c->m_dwblk, c->m_dw, c->m_dsrc};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    if (c->stream) dnnl_stream_destroy(c->stream);
    if (c->eng) dnnl_engine_destroy(c->eng);
    free(c->wfwd), free(c->wbwd), free(c->dwblk), free(c->dw), free(c->dsrc);
    memset(c, 0, sizeof *c);
}

static void set(void *m, const void *p) { must(dnnl_memory_set_data_handle(m, (void *)p), "set handle"); }

static void run(ConvDnnl *c, void *prim, int n, const dnnl_exec_arg_t *args) {
    must(dnnl_primitive_execute(prim, c->stream, n, args), "execute");
    must(dnnl_stream_wait(c->stream), "stream wait");
}

/* The plain weights into a kernel's format: returns the handle the kernel reads. */
static void *weights_as(ConvDnnl *c, void *r, void *m_dst, float *buf, const float *W) {
    set(c->m_w, W);
    if (!r) return c->m_w;
    set(m_dst, buf);
    const dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, c->m_w}, {DNNL_ARG_TO, m_dst}};
    run(c, r, 2, a);
    return m_dst;
}

void conv_dnnl_forward(ConvDnnl *c, float *out, const float *in, const float *W) {
    void *w = weights_as(c, c->r_wfwd, c->m_wfwd, c->wfwd, W);
    set(c->m_src, in), set(c->m_dst, out);
    const dnnl_exec_arg_t a[3] = {{DNNL_ARG_SRC, c->m_src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, c->m_dst}};
    run(c, c->fwd, 3, a);
}

void conv_dnnl_backward(ConvDnnl *c, float *din, float *dW, const float *dout, const float *in, const float *W) {
    set(c->m_dst, dout);
    if (din) {
        void *w = weights_as(c, c->r_wbwd, c->m_wbwd, c->wbwd, W);
        if (!c->dsrc) c->dsrc = xalloc_floats((size_t)c->n_src);
        set(c->m_dsrc, c->dsrc);
        const dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, c->m_dst}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, c->m_dsrc}};
        run(c, c->bwd_d, 3, a);
        add_inplace(din, c->dsrc, c->n_src);
    }
    if (dW) {
        set(c->m_src, in);
        set(c->m_dwblk, c->dwblk);
        const dnnl_exec_arg_t a[3] = {{DNNL_ARG_SRC, c->m_src}, {DNNL_ARG_DIFF_DST, c->m_dst}, {DNNL_ARG_DIFF_WEIGHTS, c->m_dwblk}};
        run(c, c->bwd_w, 3, a);
        const float *plain = c->dwblk;
        if (c->r_dw) {
            set(c->m_dw, c->dw);
            const dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, c->m_dwblk}, {DNNL_ARG_TO, c->m_dw}};
            run(c, c->r_dw, 2, r);
            plain = c->dw;
        }
        add_inplace(dW, plain, (long)c->s.Cout * c->s.Cin * c->s.k * c->s.k);
    }
}
