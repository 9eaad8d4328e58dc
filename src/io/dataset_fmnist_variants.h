/* Fashion-MNIST in four domains and with a spurious tint. */
#ifndef FORGET_DATASET_FMNIST_VARIANTS_H
#define FORGET_DATASET_FMNIST_VARIANTS_H

#include "io/dataset.h"

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

#endif
