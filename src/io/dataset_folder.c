/* Image folders (one sub-folder per class) and caption lists. */
#include "io/dataset_folder.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/file_open.h"
#include "io/image.h"
#include "io/preprocess.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted entries of dir that are directories (want_dirs) or regular files. */
static char **list_dir(const char *dir, int want_dirs, int *n, Err *e) {
    DIR *dp = opendir(dir);
    if (!dp) {
        err_set(e, "%s: cannot open folder: %s", dir, strerror(errno));
        return NULL;
    }
    char **out = NULL;
    int k = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (de->d_name[0] == '.') continue;
        char *path = xasprintf("%s/%s", dir, de->d_name);
        struct stat sb;
        int ok = stat(path, &sb) == 0 && (want_dirs ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode));
        free(path);
        if (!ok) continue;
        out = xrealloc(out, sizeof(char *) * (size_t)(k + 1));
        out[k++] = xstrdup(de->d_name);
    }
    closedir(dp);
    if (k) qsort(out, (size_t)k, sizeof *out, cmp_str);
    *n = k;
    return out ? out : xcalloc(1, sizeof(char *));
}

int dataset_load_folder(Dataset *d, const char *root, int size, Err *e) {
    memset(d, 0, sizeof *d);
    int nc;
    char **classes = list_dir(root, 1, &nc, e);
    if (!classes) return -1;
    if (nc == 0) {
        free(classes);
        return err_set(e, "%s: no class sub-folders", root);
    }
    d->h = d->w = size;
    d->channels = 3;
    d->n_classes = nc;
    d->class_names = classes;
    const size_t per = (size_t)size * size * 3;
    int rc = 0;
    for (int c = 0; c < nc && rc == 0; c++) {
        char *dir = xasprintf("%s/%s", root, classes[c]);
        int nf;
        char **files = list_dir(dir, 0, &nf, e);
        if (!files) {
            free(dir);
            rc = -1;
            break;
        }
        for (int i = 0; i < nf && rc == 0; i++) {
            char *path = xasprintf("%s/%s", dir, files[i]);
            Image8 im;
            int lrc = image_load(&im, path, e);
            free(path);
            if (lrc) {
                rc = -1;
                break;
            }
            Image8 r; /* the CLIP transform's geometry, kept as 8-bit RGB */
            clip_resize_crop_rgb(&im, size, &r);
            d->pixels = xrealloc(d->pixels, per * (size_t)(d->n + 1));
            d->labels = xrealloc(d->labels, sizeof(int32_t) * (size_t)(d->n + 1));
            memcpy(d->pixels + per * (size_t)d->n, r.px, per);
            d->labels[d->n++] = c;
            image_free(&r);
            image_free(&im);
        }
        for (int i = 0; i < nf; i++) free(files[i]);
        free(files), free(dir);
    }
    if (rc == 0 && d->n == 0) rc = err_set(e, "%s: no images in the class folders", root);
    if (rc) dataset_free(d);
    return rc;
}

void caption_list_free(CaptionList *cl) {
    for (int i = 0; i < cl->n; i++) free(cl->paths[i]), free(cl->captions[i]);
    free(cl->paths);
    free(cl->captions);
    memset(cl, 0, sizeof *cl);
}

int caption_list_load(CaptionList *cl, const char *tsv, Err *e) {
    memset(cl, 0, sizeof *cl);
    FILE *f = fopen_regular(tsv, e);
    if (!f) return -1;
    char *dir = path_dirname(tsv);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long lineno = 0;
    int rc = 0;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (got == 0 || line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab || tab == line || !tab[1]) {
            rc = err_set(e, "%s:%ld: expected \"path<TAB>caption\"", tsv, lineno);
            break;
        }
        *tab = 0;
        cl->paths = xrealloc(cl->paths, sizeof(char *) * (size_t)(cl->n + 1));
        cl->captions = xrealloc(cl->captions, sizeof(char *) * (size_t)(cl->n + 1));
        cl->paths[cl->n] = line[0] == '/' ? xstrdup(line) : xasprintf("%s/%s", dir, line);
        cl->captions[cl->n++] = xstrdup(tab + 1);
    }
    free(line), free(dir);
    fclose(f);
    if (rc) caption_list_free(cl);
    return rc;
}
