#include "io/dataset.h"
#include "io/file_open.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static const char *const FMNIST_CLASSES[10] = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                               "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};
const char *const FMNIST_DOMAIN_NAMES[N_FMNIST_DOMAINS] = {"photo", "sketch", "negative", "painting"};

void dataset_free(Dataset *d) {
    if (!d) return;
    free(d->pixels);
    free(d->labels);
    free(d->domains);
    for (int i = 0; i < d->n_classes; i++) free(d->class_names[i]);
    free(d->class_names);
    for (int i = 0; i < d->n_domains; i++) free(d->domain_names[i]);
    free(d->domain_names);
    if (d->class_keywords)
        for (int i = 0; i < d->n_classes; i++) free(d->class_keywords[i]);
    free(d->class_keywords);
    if (d->class_neutral)
        for (int i = 0; i < d->n_classes; i++) free(d->class_neutral[i]);
    free(d->class_neutral);
    for (int i = 0; d->class_group && i < d->n_classes; i++) free(d->class_group[i]);
    for (int i = 0; d->class_subgroup && i < d->n_classes; i++) free(d->class_subgroup[i]);
    free(d->class_group), free(d->class_subgroup);
    free(d->class_gender);
    free(d->class_tone);
    memset(d, 0, sizeof *d);
}

const uint8_t *dataset_image(const Dataset *d, int i) {
    return d->pixels + (size_t)i * d->h * d->w * d->channels;
}

/* ---------------------------------------------------------------------- IDX */

/* Reads exactly n bytes from a gzip or plain file (zlib reads both). */
static int read_exact(gzFile f, void *buf, size_t n, const char *path, size_t at, Err *e) {
    size_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
        int r = gzread(f, (char *)buf + got, chunk);
        if (r <= 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            return err_set(e, "%s: byte %zu: file ends early (wanted %zu more bytes)%s%s", path, at + got, n - got,
                           zerr ? ": " : "", zerr ? msg : "");
        }
        got += (size_t)r;
    }
    return 0;
}

static int idx_header(gzFile f, const char *path, int want_type, int want_dims, uint32_t *dims, Err *e) {
    uint8_t magic[4];
    if (read_exact(f, magic, 4, path, 0, e)) return -1;
    if (magic[0] || magic[1] || magic[2] != 0x08 || magic[3] != want_dims)
        return err_set(e, "%s: byte 0: IDX magic %02x %02x %02x %02x, expected 00 00 08 %02x (unsigned bytes, %d dims)",
                       path, magic[0], magic[1], magic[2], magic[3], want_dims, want_dims);
    (void)want_type;
    for (int i = 0; i < want_dims; i++) {
        uint8_t b[4];
        if (read_exact(f, b, 4, path, 4 + 4 * (size_t)i, e)) return -1;
        dims[i] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    }
    return 0;
}

static gzFile open_gz(const char *path, Err *e) {
    int fd = open_regular(path, e);
    if (fd < 0) return NULL;
    gzFile f = gzdopen(fd, "rb");
    if (!f) {
        err_set(e, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

static int check_trailing(gzFile f, const char *path, size_t at, Err *e) {
    char extra;
    if (gzread(f, &extra, 1) == 1) return err_set(e, "%s: byte %zu: unexpected data after the last item", path, at);
    return 0;
}

int idx_load_images(const char *path, uint8_t **pixels, int *n, int *h, int *w, Err *e) {
    gzFile f = open_gz(path, e);
    if (!f) return -1;
    uint32_t d[3];
    int rc = idx_header(f, path, 0x08, 3, d, e);
    if (rc == 0 && (d[0] == 0 || d[1] == 0 || d[2] == 0 || d[1] > 4096 || d[2] > 4096 || d[0] > 100000000u / (d[1] * d[2] / 64 + 1)))
        rc = err_set(e, "%s: byte 4: implausible image count/size %u x %u x %u", path, d[0], d[1], d[2]);
    if (rc == 0) {
        size_t bytes = (size_t)d[0] * d[1] * d[2];
        *pixels = xmalloc(bytes);
        rc = read_exact(f, *pixels, bytes, path, 16, e);
        if (rc == 0) rc = check_trailing(f, path, 16 + bytes, e);
        if (rc) free(*pixels), *pixels = NULL;
        *n = (int)d[0], *h = (int)d[1], *w = (int)d[2];
    }
    gzclose(f);
    return rc;
}

int idx_load_labels(const char *path, int32_t **labels, int *n, Err *e) {
    gzFile f = open_gz(path, e);
    if (!f) return -1;
    uint32_t d[1];
    int rc = idx_header(f, path, 0x08, 1, d, e);
    if (rc == 0 && (d[0] == 0 || d[0] > 100000000u)) rc = err_set(e, "%s: byte 4: implausible label count %u", path, d[0]);
    if (rc == 0) {
        uint8_t *raw = xmalloc(d[0]);
        rc = read_exact(f, raw, d[0], path, 8, e);
        if (rc == 0) rc = check_trailing(f, path, 8 + (size_t)d[0], e);
        if (rc == 0) {
            *labels = xmalloc(sizeof(int32_t) * d[0]);
            for (uint32_t i = 0; i < d[0]; i++) (*labels)[i] = raw[i];
            *n = (int)d[0];
        }
        free(raw);
    }
    gzclose(f);
    return rc;
}

static char **names_copy(const char *const *src, int n) {
    char **out = xmalloc(sizeof(char *) * (size_t)n);
    for (int i = 0; i < n; i++) out[i] = xstrdup(src[i]);
    return out;
}

static int load_pair(Dataset *d, const char *images, const char *labels, int min_classes, Err *e) {
    memset(d, 0, sizeof *d);
    int ni, nl, h, w;
    if (idx_load_images(images, &d->pixels, &ni, &h, &w, e)) return -1;
    if (idx_load_labels(labels, &d->labels, &nl, e)) {
        dataset_free(d);
        return -1;
    }
    if (ni != nl) {
        dataset_free(d);
        return err_set(e, "%s has %d images but %s has %d labels", images, ni, labels, nl);
    }
    int k = min_classes;
    for (int i = 0; i < nl; i++)
        if (d->labels[i] + 1 > k) k = d->labels[i] + 1;
    d->n = ni, d->h = h, d->w = w, d->channels = 1, d->n_classes = k;
    return 0;
}

int dataset_load_idx(Dataset *d, const char *images, const char *labels, Err *e) {
    if (load_pair(d, images, labels, 1, e)) return -1;
    d->class_names = xmalloc(sizeof(char *) * (size_t)d->n_classes);
    for (int i = 0; i < d->n_classes; i++) {
        char s[16];
        snprintf(s, sizeof s, "%d", i);
        d->class_names[i] = xstrdup(s);
    }
    return 0;
}

int dataset_load_fmnist(Dataset *d, const char *dir, const char *split, Err *e) {
    if (!dir) dir = FMNIST_DIR;
    const char *prefix = strcmp(split, "train") == 0 ? "train" : strcmp(split, "test") == 0 ? "t10k" : NULL;
    if (!prefix) return err_set(e, "fmnist: unknown split \"%s\" (train or test)", split);
    char *images = xasprintf("%s/%s-images-idx3-ubyte.gz", dir, prefix);
    char *labels = xasprintf("%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    int rc = load_pair(d, images, labels, 10, e);
    if (rc && strstr(e->msg, "cannot open")) err_prefix(e, "Fashion-MNIST not found (Debian package dataset-fashion-mnist): ");
    if (rc == 0 && (d->n_classes != 10 || d->h != 28 || d->w != 28)) {
        rc = err_set(e, "%s: not Fashion-MNIST (%d classes of %dx%d images)", images, d->n_classes, d->h, d->w);
        dataset_free(d);
    }
    free(images), free(labels);
    if (rc) return -1;
    d->class_names = names_copy(FMNIST_CLASSES, 10);
    return 0;
}

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
    out->class_names = names_copy((const char *const *)src->class_names, src->n_classes);
    out->n_domains = D;
    out->domain_names = names_copy(FMNIST_DOMAIN_NAMES, D);
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
    out->class_names = names_copy((const char *const *)src->class_names, src->n_classes);
    static const char *const TINT_NAMES[2] = {"red photo", "blue photo"};
    out->n_domains = 2;
    out->domain_names = names_copy(TINT_NAMES, 2);
}

static int load_named(Dataset *d, const char *name, const char *split, const char *dir, Err *e);

int dataset_load_named(Dataset *d, const char *spec, const char *dir, Err *e) {
    const char *colon = strchr(spec, ':'); /* the split may be a path (folder:/data/x): never cut it */
    char *name = colon ? xasprintf("%.*s", (int)(colon - spec), spec) : xstrdup(spec);
    int rc = load_named(d, name, colon ? colon + 1 : "test", dir, e);
    free(name);
    return rc;
}

static int load_named(Dataset *d, const char *name, const char *split, const char *dir, Err *e) {
    if (strcmp(name, "fmnist") == 0) return dataset_load_fmnist(d, dir, split, e);
    if (strcmp(name, "fmnist-domains") == 0) {
        Dataset base;
        if (dataset_load_fmnist(&base, dir, split, e)) return -1;
        dataset_expand_domains(d, &base);
        dataset_free(&base);
        return 0;
    }
    if (strcmp(name, "fmnist-spurious") == 0) {
        Dataset base;
        const int val = strcmp(split, "val") == 0; /* training images with the test's balanced tints */
        if (dataset_load_fmnist(&base, dir, val ? "train" : split, e)) return -1;
        dataset_tint_spurious(d, &base, strcmp(split, "train") == 0);
        dataset_free(&base);
        return 0;
    }
    if (strcmp(name, "cifar10") == 0 || strcmp(name, "cifar100") == 0) {
        if (!dir) return err_set(e, "%s needs --data-dir: the folder holding the CIFAR binary batches", name);
        int c100 = strcmp(name, "cifar100") == 0, train = strcmp(split, "train") == 0;
        if (!train && strcmp(split, "test") != 0) return err_set(e, "%s: unknown split \"%s\" (train or test)", name, split);
        char *paths[5];
        int nf = 0;
        if (c100) paths[nf++] = xasprintf("%s/%s.bin", dir, train ? "train" : "test");
        else if (train)
            for (int i = 1; i <= 5; i++) paths[nf++] = xasprintf("%s/data_batch_%d.bin", dir, i);
        else paths[nf++] = xasprintf("%s/test_batch.bin", dir);
        int rc = dataset_load_cifar(d, (const char *const *)paths, nf, c100, 1, e);
        for (int i = 0; i < nf; i++) free(paths[i]);
        return rc;
    }
    if (strcmp(name, "folder") == 0) return dataset_load_folder(d, split, 224, e);
    if (strcmp(name, "emoji") == 0) return dataset_load_emoji(d, split, 0, 32, e);
    if (strcmp(name, "emoji100") == 0) return dataset_load_emoji(d, split, 1, 32, e);
    return err_set(e, "unknown dataset \"%s\" (fmnist:train|test, fmnist-domains:train|test, fmnist-spurious:train|val|test, cifar10:train|test, "
                      "cifar100:train|test with --data-dir, folder:PATH, emoji:train|test, emoji100:train|val|test)", name);
}

/* ------------------------------------------------------------- model input */

#include "io/image.h"
#include "io/preprocess.h"

void dataset_pixels(const Dataset *d, const int *idx, int n, int res, float *out, Rng *aug, int shift) {
    const int h = d->h, w = d->w, ch = d->channels;
    const size_t per = (size_t)3 * res * res;
    if (d->glyphs) { /* compose each glyph afresh: its augmentation stream is drawn here, serially */
        uint8_t *rgb = xmalloc((size_t)d->out_size * d->out_size * 3);
        Rng fixed;
        for (int i = 0; i < n; i++) {
            rng_seed(&fixed, 0x5eed0000u + (uint64_t)idx[i]); /* no aug stream: a fixed composition per glyph */
            emoji_augment(dataset_image(d, idx[i]), d->h, rgb, d->out_size, aug ? aug : &fixed);
            Dataset one = {.n = 1, .h = d->out_size, .w = d->out_size, .channels = 3, .pixels = rgb};
            int zero = 0;
            dataset_pixels(&one, &zero, 1, res, out + per * i, NULL, 0);
        }
        free(rgb);
        return;
    }
    int *dx = xmalloc(sizeof(int) * (size_t)n), *dy = xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) { /* draw serially so the stream does not depend on threads */
        dx[i] = aug && shift ? (int)rng_below(aug, (uint32_t)(2 * shift + 1)) - shift : 0;
        dy[i] = aug && shift ? (int)rng_below(aug, (uint32_t)(2 * shift + 1)) - shift : 0;
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const uint8_t *src = dataset_image(d, idx[i]);
        float *dst = out + per * i;
        if (h == res && w == res) {
            for (int y = 0; y < res; y++)
                for (int x = 0; x < res; x++) {
                    int sy = y - dy[i], sx = x - dx[i];
                    sy = sy < 0 ? 0 : sy >= h ? h - 1 : sy;
                    sx = sx < 0 ? 0 : sx >= w ? w - 1 : sx;
                    const uint8_t *p = src + ((size_t)sy * w + sx) * ch;
                    for (int c = 0; c < 3; c++) {
                        float v = (float)(ch >= 3 ? p[c] : p[0]) / 255.0f;
                        dst[((size_t)c * res + y) * res + x] = (v - CLIP_MEAN[c]) / CLIP_STD[c];
                    }
                }
        } else {
            Image8 im = {.w = w, .h = h, .channels = ch, .px = (uint8_t *)src};
            clip_preprocess(&im, res, dst);
        }
    }
    free(dx);
    free(dy);
}
