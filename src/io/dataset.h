/* Labelled image sets held as 8-bit pixels, with class names and (optionally)
 * a domain per sample. Loaders for real formats fill one Dataset each:
 *   - IDX (MNIST-style, raw or gzip) and Fashion-MNIST from Debian's
 *     dataset-fashion-mnist package;
 *   - Fashion-MNIST domains: four deterministic renderings of every image.
 * Pixels are stored HWC (channels interleaved), one image after another. */
#ifndef FORGET_DATASET_H
#define FORGET_DATASET_H

#include <stdint.h>

#include "core/err.h"
#include "core/rng.h"

enum { DATASET_MAX_CLASSES = 1000 };

typedef struct {
    int n, h, w, channels;
    uint8_t *pixels;      /* n * h * w * channels */
    int32_t *labels;      /* n */
    int n_classes;
    char **class_names;   /* n_classes, owned */
    int32_t *domains;     /* n, or NULL */
    int n_domains;
    char **domain_names;  /* n_domains, owned */
    char **class_keywords; /* n_classes extra words per class ("dog | pet | animal"), or NULL */
    /* people emoji: gender and skin tone per class (EmojiGender / EmojiTone values), and the
     * gender-neutral phrase of professions and activities ("a health worker", "a person running";
     * NULL for other classes). All NULL for other data sets. */
    int32_t *class_gender, *class_tone;
    char **class_neutral;
    char **class_group, **class_subgroup; /* emoji: "People & Body", "person-role"; NULL otherwise */
    int glyphs;           /* 1: pixels are RGBA glyphs to be composed by emoji_augment at out_size */
    int out_size;
} Dataset;

void dataset_free(Dataset *d);
const uint8_t *dataset_image(const Dataset *d, int i);

/* IDX files: images (magic 0x00000803, n x rows x cols) and labels (0x00000801, n). */
int idx_load_images(const char *path, uint8_t **pixels, int *n, int *h, int *w, Err *e);
int idx_load_labels(const char *path, int32_t **labels, int *n, Err *e);

/* Fashion-MNIST: dir defaults to /usr/share/datasets/fashion-mnist; split "train" or "test". */
#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"
int dataset_load_fmnist(Dataset *d, const char *dir, const char *split, Err *e);
/* Any MNIST-style pair of IDX files, classes named "0".."K-1". */
int dataset_load_idx(Dataset *d, const char *images, const char *labels, Err *e);

/* CIFAR binary format: records of [label] (CIFAR-10) or [coarse, fine] (CIFAR-100) then
 * 3072 bytes of 32x32 RGB planes. files: one or more data_batch_N.bin / train.bin / test.bin.
 * fine: for CIFAR-100, label by the fine class (else the coarse one).
 * Class names come from batches.meta.txt / fine_label_names.txt / coarse_label_names.txt
 * beside the first file when present, else "0".."K-1". */
int dataset_load_cifar(Dataset *d, const char *const *files, int n_files, int cifar100, int fine, Err *e);
/* An image folder: one sub-folder per class (sorted by name), PNG/JPEG files inside,
 * every image resized (exact CLIP transform geometry) to size x size RGB. */
int dataset_load_folder(Dataset *d, const char *root, int size, Err *e);
/* Caption lists: "path TAB caption" per line; paths relative to the list's folder. */
typedef struct {
    int n;
    char **paths, **captions;
} CaptionList;
int caption_list_load(CaptionList *cl, const char *tsv, Err *e);
void caption_list_free(CaptionList *cl);

/* The four Fashion-MNIST domains, in this order. */
typedef enum { DOMAIN_PHOTO, DOMAIN_SKETCH, DOMAIN_NEGATIVE, DOMAIN_PAINTING, N_FMNIST_DOMAINS } FmnistDomain;
extern const char *const FMNIST_DOMAIN_NAMES[N_FMNIST_DOMAINS];
/* Renders one grey image in a domain (deterministic: the painting texture is seeded by idx). */
void fmnist_render_domain(const uint8_t *src, uint8_t *dst, int h, int w, FmnistDomain dom, uint32_t idx);
/* Fashion-MNIST with a planted spurious attribute (fmnist-spurious): every image tinted red or
 * blue (its domain: "red photo" / "blue photo"). In the training split the first half of the
 * classes are red and the others blue 90% of the time; in the test split each tint is drawn half
 * the time, so (class, tint) groups measure worst-group accuracy; fmnist-spurious:val holds the
 * training images tinted as the test split is (balanced). Deterministic per index. */
void dataset_tint_spurious(Dataset *out, const Dataset *src, int train);
/* A new dataset with every image of src in every domain (n * 4 samples, domains labelled). */
void dataset_expand_domains(Dataset *out, const Dataset *src);

/* Emoji-Domains (src/io/emoji_dataset.c): "emoji:train" holds every drawable (emoji, style)
 * glyph, composed afresh on each use (scale, shift, rotation, background, colour jitter);
 * "emoji:test" one held-out augmentation of each. "emoji100:..." the zoo's fixed 100-class
 * subset of single-code-point emoji drawn in both styles; splits train, val, test. */
int dataset_load_emoji(Dataset *d, const char *split, int emoji100, int size, Err *e);
/* Composes an RGBA glyph (g x g) into an RGB image (s x s) with a random augmentation. */
void emoji_augment(const uint8_t *glyph, int g, uint8_t *out, int s, Rng *r);

/* Loads a dataset by name: "fmnist:train", "fmnist:test", "fmnist-domains:test", ...;
 * dir overrides the data location where the dataset has one (NULL for the default). */
int dataset_load_named(Dataset *d, const char *spec, const char *dir, Err *e);

/* Model input for samples idx[0..n): CLIP-normalised CHW floats at res x res
 * (grey replicated to RGB; other sizes through the exact CLIP transform). With aug,
 * each image is shifted by up to `shift` pixels (edges replicated). */
void dataset_pixels(const Dataset *d, const int *idx, int n, int res, float *out, Rng *aug, int shift);

#endif
