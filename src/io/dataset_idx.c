/* IDX files (MNIST-style, raw or gzip; zlib reads both) and Fashion-MNIST from Debian's
 * dataset-fashion-mnist package. */
#include "io/dataset_idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/file_open.h"

static const char *const FMNIST_CLASSES[10] = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                               "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};

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
    d->class_names = dataset_names_copy(FMNIST_CLASSES, 10);
    return 0;
}

