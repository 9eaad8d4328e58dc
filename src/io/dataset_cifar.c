/* CIFAR-10 / CIFAR-100 binary batches. */
#include "io/dataset_cifar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file_open.h"

static char **read_names(const char *path, int *n) {
    Err ignored = {{0}}; /* a missing names file means numbered classes */
    FILE *f = fopen_regular(path, &ignored);
    if (!f) return NULL;
    char **names = NULL, line[512];
    int k = 0;
    while (fgets(line, sizeof line, f)) {
        size_t l = strcspn(line, "\r\n");
        line[l] = 0;
        if (!l) continue;
        names = xrealloc(names, sizeof(char *) * (size_t)(k + 1));
        for (char *p = line; *p; p++)
            if (*p == '_') *p = ' '; /* "aquarium_fish" -> "aquarium fish", as CLIP's prompts write them */
        names[k++] = xstrdup(line);
    }
    fclose(f);
    *n = k;
    return names;
}

int dataset_load_cifar(Dataset *d, const char *const *files, int n_files, int cifar100, int fine, Err *e) {
    memset(d, 0, sizeof *d);
    const int rec = (cifar100 ? 2 : 1) + 3072;
    int max_label = -1;
    for (int fi = 0; fi < n_files; fi++) {
        FILE *f = fopen_regular(files[fi], e);
        if (!f) {
            dataset_free(d);
            return -1;
        }
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        rewind(f);
        if (size <= 0 || size % rec != 0) {
            fclose(f);
            dataset_free(d);
            return err_set(e, "%s: %ld bytes is not a whole number of %d-byte CIFAR-%d records (last record at byte %ld is cut)",
                           files[fi], size, rec, cifar100 ? 100 : 10, size - size % rec);
        }
        int count = (int)(size / rec);
        d->pixels = xrealloc(d->pixels, (size_t)(d->n + count) * 3072);
        d->labels = xrealloc(d->labels, sizeof(int32_t) * (size_t)(d->n + count));
        uint8_t buf[2 + 3072];
        for (int i = 0; i < count; i++) {
            if (fread(buf, 1, (size_t)rec, f) != (size_t)rec) {
                fclose(f);
                dataset_free(d);
                return err_set(e, "%s: read failed at record %d", files[fi], i);
            }
            int label = cifar100 ? buf[fine ? 1 : 0] : buf[0];
            int limit = cifar100 ? (fine ? 100 : 20) : 10;
            if (label >= limit) {
                fclose(f);
                dataset_free(d);
                return err_set(e, "%s: byte %ld: label %d is not below %d", files[fi], (long)i * rec + (fine ? 1 : 0), label, limit);
            }
            const uint8_t *planes = buf + (cifar100 ? 2 : 1);
            uint8_t *dst = d->pixels + (size_t)(d->n + i) * 3072;
            for (int p = 0; p < 1024; p++) /* planes (R..., G..., B...) -> interleaved RGB */
                for (int c = 0; c < 3; c++) dst[p * 3 + c] = planes[c * 1024 + p];
            d->labels[d->n + i] = label;
            if (label > max_label) max_label = label;
        }
        fclose(f);
        d->n += count;
    }
    d->h = d->w = 32;
    d->channels = 3;
    d->n_classes = cifar100 ? (fine ? 100 : 20) : 10;
    /* class names from the meta files the CIFAR archives ship beside the batches */
    char *dir = path_dirname(files[0]);
    char *meta = xasprintf("%s/%s", dir, cifar100 ? (fine ? "fine_label_names.txt" : "coarse_label_names.txt") : "batches.meta.txt");
    int nn = 0;
    char **names = read_names(meta, &nn);
    free(dir), free(meta);
    if (names && nn >= d->n_classes) {
        d->class_names = names;
        for (int i = d->n_classes; i < nn; i++) free(names[i]);
    } else {
        for (int i = 0; i < nn; i++) free(names[i]);
        free(names);
        d->class_names = xmalloc(sizeof(char *) * (size_t)d->n_classes);
        for (int i = 0; i < d->n_classes; i++) {
            char s[16];
            snprintf(s, sizeof s, "%d", i);
            d->class_names[i] = xstrdup(s);
        }
    }
    (void)max_label;
    return 0;
}
