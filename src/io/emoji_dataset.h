/* Emoji-Domains (src/io/emoji_dataset.c). */
#ifndef FORGET_EMOJI_DATASET_H
#define FORGET_EMOJI_DATASET_H

#include "core/rng.h"
#include "io/dataset.h"

/* "emoji:train" holds every drawable (emoji, style) glyph, composed afresh on each use (scale,
 * shift, rotation, background, colour jitter); "emoji:test" one held-out augmentation of each.
 * "emoji100:..." the zoo's fixed 100-class subset of single-code-point emoji drawn in both
 * styles; splits train, val, test. */
int dataset_load_emoji(Dataset *d, const char *split, int emoji100, int size, Err *e);
/* Composes an RGBA glyph (g x g) into an RGB image (s x s) with a random augmentation. */
void emoji_augment(const uint8_t *glyph, int g, uint8_t *out, int s, Rng *r);

#endif
