/* CIFAR binary format. */
#ifndef FORGET_DATASET_CIFAR_H
#define FORGET_DATASET_CIFAR_H

#include "io/dataset.h"

/* Records of [label] (CIFAR-10) or [coarse, fine] (CIFAR-100) then 3072 bytes of 32x32 RGB
 * planes. files: one or more data_batch_N.bin / train.bin / test.bin. fine: for CIFAR-100, label
 * by the fine class (else the coarse one). Class names come from batches.meta.txt /
 * fine_label_names.txt / coarse_label_names.txt beside the first file when present, else
 * "0".."K-1". */
int dataset_load_cifar(Dataset *d, const char *const *files, int n_files, int cifar100, int fine, Err *e);

#endif
