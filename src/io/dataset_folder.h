/* Image folders and caption lists. */
#ifndef FORGET_DATASET_FOLDER_H
#define FORGET_DATASET_FOLDER_H

#include "io/dataset.h"

/* An image folder: one sub-folder per class (sorted by name), PNG/JPEG files inside, every image
 * resized (exact CLIP transform geometry) to size x size RGB. */
int dataset_load_folder(Dataset *d, const char *root, int size, Err *e);
/* Caption lists: "path TAB caption" per line; paths relative to the list's folder. */
typedef struct {
    int n;
    char **paths, **captions;
} CaptionList;
int caption_list_load(CaptionList *cl, const char *tsv, Err *e);
void caption_list_free(CaptionList *cl);

#endif
