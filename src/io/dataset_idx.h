/* IDX files and Fashion-MNIST. */
#ifndef FORGET_DATASET_IDX_H
#define FORGET_DATASET_IDX_H

#include "io/dataset.h"

/* IDX files: images (magic 0x00000803, n x rows x cols) and labels (0x00000801, n). */
int idx_load_images(const char *path, uint8_t **pixels, int *n, int *h, int *w, Err *e);
int idx_load_labels(const char *path, int32_t **labels, int *n, Err *e);

/* Fashion-MNIST: dir defaults to /usr/share/datasets/fashion-mnist; split "train" or "test". */
#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"
int dataset_load_fmnist(Dataset *d, const char *dir, const char *split, Err *e);
/* Any MNIST-style pair of IDX files, classes named "0".."K-1". */
int dataset_load_idx(Dataset *d, const char *images, const char *labels, Err *e);

#endif
