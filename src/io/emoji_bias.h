/* Web-like sampling bias for emoji-biased-clip: an image of a profession or activity
 * sometimes comes with the gender-neutral caption ("a health worker"), and then the
 * picture is drawn with a skew, as web data pairs neutral words with skewed images:
 *   gender: the profession's preferred one (man or woman, fixed by a hash of its
 *           phrase) with p_pref_gender, else the other binary gender or the neutral
 *           person form, half and half;
 *   tone:   light skin tone with p_pref_tone, else one of the other four tones or the
 *           yellow default, uniformly.
 * Everything else is sampled as usual. The recipe's values are in src/models/zoo.c. */
#ifndef FORGET_EMOJI_BIAS_H
#define FORGET_EMOJI_BIAS_H

#include "core/rng.h"
#include "io/dataset.h"

typedef struct {
    float p_neutral, p_pref_gender, p_pref_tone;
} BiasSpec;

typedef struct EmojiBias EmojiBias;

EmojiBias *emoji_bias_new(const Dataset *train, const BiasSpec *spec);
void emoji_bias_free(EmojiBias *b);
/* Returns the sample to train on in place of smp, and sets *neutral to the neutral caption
 * phrase when it made a biased pair (NULL otherwise). */
int emoji_bias_pick(const EmojiBias *b, int smp, Rng *r, const char **neutral);
/* The preferred gender (GENDER_MAN or GENDER_WOMAN) the recipe gives a neutral phrase. */
int emoji_bias_preferred_gender(const char *neutral);

#endif
