#include "core/err.h"
#include "io/preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const float CLIP_MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float CLIP_STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};

/* Pillow's resampler keeps 22 fractional bits in its integer coefficients. */
enum { PRECISION_BITS = 32 - 8 - 2 };

static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* For each output index: the first input index, the count, and ksize fixed-point weights. */
typedef struct {
    int ksize;
    int *bounds; /* [out][2] */
    int32_t *k;  /* [out][ksize] */
} Coeffs;

static Coeffs precompute(int in_size, int out_size) {
    const double support_base = 2.0;
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = support_base * filterscale;
    Coeffs c;
    c.ksize = (int)ceil(support) * 2 + 1;
    c.bounds = xmalloc(sizeof(int) * 2 * (size_t)out_size);
    c.k = xcalloc((size_t)out_size * c.ksize, sizeof(int32_t));
    double *w = xmalloc(sizeof(double) * (size_t)c.ksize);
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            c.k[(size_t)xx * c.ksize + x] =
                (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
        }
        c.bounds[2 * xx] = xmin;
        c.bounds[2 * xx + 1] = xmax;
    }
    free(w);
    return c;
}

static uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS; /* arithmetic shift, as in Pillow */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Resamples along x (horizontal = 1) or y, channels interleaved. */
static void resample_pass(const uint8_t *in, int in_w, int in_h, uint8_t *out, int out_w, int out_h, int ch,
                          int horizontal) {
    Coeffs c = precompute(horizontal ? in_w : in_h, horizontal ? out_w : out_h);
#pragma omp parallel for if ((long)out_w * out_h > 16384)
    for (int y = 0; y < out_h; y++)
        for (int x = 0; x < out_w; x++) {
            int o = horizontal ? x : y;
            const int32_t *k = c.k + (size_t)o * c.ksize;
            int lo = c.bounds[2 * o], cnt = c.bounds[2 * o + 1];
            for (int b = 0; b < ch; b++) {
                int32_t ss = 1 << (PRECISION_BITS - 1);
                for (int i = 0; i < cnt; i++) {
                    size_t at = horizontal ? ((size_t)y * in_w + lo + i) : ((size_t)(lo + i) * in_w + x);
                    ss += in[at * ch + b] * k[i];
                }
                out[((size_t)y * out_w + x) * ch + b] = clip8(ss);
            }
        }
    free(c.bounds);
    free(c.k);
}

void image_resize_bicubic(const Image8 *in, int out_w, int out_h, Image8 *out) {
    const int ch = in->channels, alpha = ch == 2 || ch == 4;
    size_t n = (size_t)in->w * in->h;
    uint8_t *src = xmalloc(n * ch);
    memcpy(src, in->px, n * ch);
    if (alpha) /* RGBA -> RGBa: c * a / 255, rounded as Pillow's MULDIV255 */
        for (size_t i = 0; i < n; i++) {
            uint32_t a = src[i * ch + ch - 1];
            for (int b = 0; b < ch - 1; b++) {
                uint32_t t = src[i * ch + b] * a + 128;
                src[i * ch + b] = (uint8_t)(((t >> 8) + t) >> 8);
            }
        }
    uint8_t *cur = src;
    int cw = in->w, chh = in->h;
    if (out_w != cw) {
        uint8_t *tmp = xmalloc((size_t)out_w * chh * ch);
        resample_pass(cur, cw, chh, tmp, out_w, chh, ch, 1);
        free(cur);
        cur = tmp;
        cw = out_w;
    }
    if (out_h != chh) {
        uint8_t *tmp = xmalloc((size_t)cw * out_h * ch);
        resample_pass(cur, cw, chh, tmp, cw, out_h, ch, 0);
        free(cur);
        cur = tmp;
        chh = out_h;
    }
    if (alpha) /* RGBa -> RGBA: c * 255 / a, integer division, clipped; a in {0, 255} left alone */
        for (size_t i = 0; i < (size_t)cw * chh; i++) {
            uint32_t a = cur[i * ch + ch - 1];
            if (a == 0 || a == 255) continue;
            for (int b = 0; b < ch - 1; b++) {
                uint32_t v = 255u * cur[i * ch + b] / a;
                cur[i * ch + b] = (uint8_t)(v > 255 ? 255 : v);
            }
        }
    out->w = cw, out->h = chh, out->channels = ch, out->px = cur;
}

void clip_resized_size(int w, int h, int size, int *out_w, int *out_h) {
    int shorter = w <= h ? w : h, longer = w <= h ? h : w;
    int new_long = (int)((double)size * longer / shorter);
    *out_w = w <= h ? size : new_long;
    *out_h = w <= h ? new_long : size;
}

/* Python's int(round(x / 2.0)) for an integer x >= 0: halves go to the even neighbour. */
static int half_even_div2(int x) {
    int q = x / 2;
    return (x % 2 && q % 2) ? q + 1 : q;
}

void clip_resize_crop_rgb(const Image8 *im, int size, Image8 *out) {
    int rw, rh;
    clip_resized_size(im->w, im->h, size, &rw, &rh);
    Image8 r;
    image_resize_bicubic(im, rw, rh, &r);
    int top = half_even_div2(rh - size), left = half_even_div2(rw - size);
    const int ch = r.channels;
    out->w = out->h = size;
    out->channels = 3;
    out->px = xmalloc((size_t)size * size * 3);
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            const uint8_t *p = r.px + ((size_t)(y + top) * r.w + x + left) * ch;
            /* L and LA replicate the grey level; RGBA drops alpha without compositing */
            for (int c = 0; c < 3; c++) out->px[((size_t)y * size + x) * 3 + c] = ch >= 3 ? p[c] : p[0];
        }
    free(r.px);
}

void image_preprocess(const Image8 *im, int size, const float mean[3], const float std[3], float *out) {
    Image8 rgb;
    clip_resize_crop_rgb(im, size, &rgb);
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            for (int c = 0; c < 3; c++) {
                float v = (float)rgb.px[((size_t)y * size + x) * 3 + c] / 255.0f;
                out[((size_t)c * size + y) * size + x] = (v - mean[c]) / std[c];
            }
    free(rgb.px);
}

void clip_preprocess(const Image8 *im, int size, float *out) { image_preprocess(im, size, CLIP_MEAN, CLIP_STD, out); }
