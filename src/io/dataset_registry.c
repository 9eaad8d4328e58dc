/* The data-set registry: one row per name, each with its loader (in a file of its own) and its
 * splits, so adding a data set is a loader and a row here, and `forget datasets` lists them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dataset.h"
#include "io/dataset_cifar.h"
#include "io/dataset_fmnist_variants.h"
#include "io/dataset_folder.h"
#include "io/dataset_idx.h"
#include "io/emoji_dataset.h"

static int load_fmnist(Dataset *d, const char *split, const char *dir, Err *e) { return dataset_load_fmnist(d, dir, split, e); }

static int load_fmnist_domains(Dataset *d, const char *split, const char *dir, Err *e) {
    Dataset base;
    if (dataset_load_fmnist(&base, dir, split, e)) return -1;
    dataset_expand_domains(d, &base);
    dataset_free(&base);
    return 0;
}

static int load_fmnist_spurious(Dataset *d, const char *split, const char *dir, Err *e) {
    Dataset base;
    const int val = strcmp(split, "val") == 0; /* training images with the test's balanced tints */
    if (dataset_load_fmnist(&base, dir, val ? "train" : split, e)) return -1;
    dataset_tint_spurious(d, &base, strcmp(split, "train") == 0);
    dataset_free(&base);
    return 0;
}

static int load_cifar(Dataset *d, const char *split, const char *dir, int c100, Err *e) {
    const char *name = c100 ? "cifar100" : "cifar10";
    if (!dir) return err_set(e, "%s needs --data-dir: the folder holding the CIFAR binary batches", name);
    const int train = strcmp(split, "train") == 0;
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
static int load_cifar10(Dataset *d, const char *split, const char *dir, Err *e) { return load_cifar(d, split, dir, 0, e); }
static int load_cifar100(Dataset *d, const char *split, const char *dir, Err *e) { return load_cifar(d, split, dir, 1, e); }

static int load_folder(Dataset *d, const char *split, const char *dir, Err *e) {
    (void)dir;
    return dataset_load_folder(d, split, 224, e);
}
static int load_emoji(Dataset *d, const char *split, const char *dir, Err *e) {
    (void)dir;
    return dataset_load_emoji(d, split, 0, 32, e);
}
static int load_emoji100(Dataset *d, const char *split, const char *dir, Err *e) {
    (void)dir;
    return dataset_load_emoji(d, split, 1, 32, e);
}

static const DatasetEntry REGISTRY[] = {
    {"fmnist", "train|test", "Fashion-MNIST (Debian dataset-fashion-mnist)", load_fmnist},
    {"fmnist-domains", "train|test", "Fashion-MNIST in four domains: photo, sketch, negative, painting", load_fmnist_domains},
    {"fmnist-spurious", "train|val|test", "Fashion-MNIST tinted red/blue, the tint tied to the class half in train", load_fmnist_spurious},
    {"cifar10", "train|test", "CIFAR-10 binary batches (--data-dir)", load_cifar10},
    {"cifar100", "train|test", "CIFAR-100 binary files, fine labels (--data-dir)", load_cifar100},
    {"folder", "PATH", "an image folder, one sub-folder per class (folder:/path)", load_folder},
    {"emoji", "train|test", "Emoji-Domains: every emoji in colour (Noto) and line art (Symbola)", load_emoji},
    {"emoji100", "train|val|test", "a fixed 100-class subset of Emoji-Domains", load_emoji100},
};

const DatasetEntry *dataset_registry(int *n) {
    *n = (int)(sizeof REGISTRY / sizeof *REGISTRY);
    return REGISTRY;
}

int dataset_load_named(Dataset *d, const char *spec, const char *dir, Err *e) {
    const char *colon = strchr(spec, ':'); /* the split may be a path (folder:/data/x): never cut it */
    const size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *split = colon ? colon + 1 : "test";
    int n;
    const DatasetEntry *r = dataset_registry(&n);
    for (int i = 0; i < n; i++)
        if (strlen(r[i].name) == len && strncmp(r[i].name, spec, len) == 0) return r[i].load(d, split, dir, e);
    char list[512] = "";
    for (int i = 0; i < n; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s:%s", i ? ", " : "", r[i].name, r[i].splits);
    }
    return err_set(e, "unknown dataset \"%.*s\" (%s)", (int)len, spec, list);
}
