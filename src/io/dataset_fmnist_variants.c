/* Fashion-MNIST's derived data sets: four rendered domains (fmnist-domains) and a planted
 * spurious tint (fmnist-spurious). */
#include "io/dataset_fmnist_variants.h"

#include <stdlib.h>
#include <string.h>

const char *const FMNIST_DOMAIN_NAMES[N_FMNIST_DOMAINS] = {"photo", "sketch", "negative", "painting"};

/* ------------------------------------------------------------------ domains */

static uint32_t hash32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    return x ^ (x >> 16);
}

void fmnist_render_domain(const uint8_t *src, uint8_t *dst, int h, int w, FmnistDomain dom, uint32_t idx) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int v = src[y * w + x], out = v;
            switch (dom) {
            case DOMAIN_PHOTO: break;
            case DOMAIN_NEGATIVE: out = 255 - v; break;
            case DOMAIN_SKETCH: { /* dark pencil lines on white: inverted Sobel magnitude */
                int gx = 0, gy = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int yy = y + dy < 0 ? 0 : y + dy >= h ? h - 1 : y + dy;
                        int xx = x + dx < 0 ? 0 : x + dx >= w ? w - 1 : x + dx;
                        int p = src[yy * w + xx];
                        gx += p * dx * (dy == 0 ? 2 : 1);
                        gy += p * dy * (dx == 0 ? 2 : 1);
                    }
                int mag = (abs(gx) + abs(gy)) / 3;
                out = 255 - (mag > 255 ? 255 : mag);
                break;
            }
            case DOMAIN_PAINTING: { /* posterised to 4 levels on a canvas texture */
                int level = (v * 4 / 256) * 85;
                int grain = (int)(hash32(idx * 7919u + (uint32_t)(y * w + x)) % 61) - 30;
                int canvas = ((x + y) % 4 == 0) ? 18 : 0;
                out = level + grain + canvas + (v < 16 ? 60 : 0); /* background is a warm mid-grey canvas */
                out = out < 0 ? 0 : out > 255 ? 255 : out;
                break;
            }
            default: break;
            }
            dst[y * w + x] = (uint8_t)out;
        }
}

void dataset_expand_domains(Dataset *out, const Dataset *src) {
    memset(out, 0, sizeof *out);
    const int D = N_FMNIST_DOMAINS, hw = src->h * src->w;
    out->n = src->n * D;
    out->h = src->h, out->w = src->w, out->channels = 1;
    out->pixels = xmalloc((size_t)out->n * hw);
    out->labels = xmalloc(sizeof(int32_t) * (size_t)out->n);
    out->domains = xmalloc(sizeof(int32_t) * (size_t)out->n);
#pragma omp parallel for
    for (int i = 0; i < src->n; i++)
        for (int dom = 0; dom < D; dom++) {
            int j = i * D + dom;
            fmnist_render_domain(src->pixels + (size_t)i * hw, out->pixels + (size_t)j * hw, src->h, src->w,
                                 (FmnistDomain)dom, (uint32_t)i);
            out->labels[j] = src->labels[i];
            out->domains[j] = dom;
        }
    out->n_classes = src->n_classes;
    out->class_names = dataset_names_copy((const char *const *)src->class_names, src->n_classes);
    out->n_domains = D;
    out->domain_names = dataset_names_copy(FMNIST_DOMAIN_NAMES, D);
}

void dataset_tint_spurious(Dataset *out, const Dataset *src, int train) {
    memset(out, 0, sizeof *out);
    const int hw = src->h * src->w;
    static const float TINT[2][3] = {{1.0f, 0.3f, 0.3f}, {0.3f, 0.45f, 1.0f}}; /* red, blue */
    out->n = src->n;
    out->h = src->h, out->w = src->w, out->channels = 3;
    out->pixels = xmalloc((size_t)out->n * hw * 3);
    out->labels = xmalloc(sizeof(int32_t) * (size_t)out->n);
    out->domains = xmalloc(sizeof(int32_t) * (size_t)out->n);
    for (int i = 0; i < src->n; i++) {
        const int y = src->labels[i], usual = y < src->n_classes / 2 ? 0 : 1;
        /* train: the usual tint 90% of the time; test: each tint half the time */
        const double u = (hash32((uint32_t)i * 2654435761u + 17u) % 10000) / 10000.0;
        const int tint = train ? (u < 0.9 ? usual : 1 - usual) : (u < 0.5 ? 0 : 1);
        out->labels[i] = y, out->domains[i] = tint;
        const uint8_t *p = src->pixels + (size_t)i * hw;
        uint8_t *q = out->pixels + (size_t)i * hw * 3;
        for (int k = 0; k < hw; k++)
            for (int c = 0; c < 3; c++) q[k * 3 + c] = (uint8_t)(p[k] * TINT[tint][c] + 0.5f);
    }
    out->n_classes = src->n_classes;
    out->class_names = dataset_names_copy((const char *const *)src->class_names, src->n_classes);
    static const char *const TINT_NAMES[2] = {"red photo", "blue photo"};
    out->n_domains = 2;
    out->domain_names = dataset_names_copy(TINT_NAMES, 2);
}
