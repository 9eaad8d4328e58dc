/* Varied captions for training CLIP on labelled images, so the text tower must
 * learn more than a lookup of the class name: several templates, attribute words
 * read off the image (dark/light, small/large), the domain named some of the
 * time, and optional distractor phrases. */
#ifndef FORGET_CAPTIONS_H
#define FORGET_CAPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

typedef struct {
    const char *const *templates; /* "{}" class name, "{a}" attribute word, "{d}" domain, "{k}" a keyword */
    int n_templates;
    const char *const *domain_templates;
    int n_domain_templates;
    float domain_prob;     /* chance of naming the domain (when the sample has one) */
    float distractor_prob; /* chance of a trailing distractor phrase */
} CaptionStyle;

extern const CaptionStyle CAPTIONS_DEFAULT; /* photos of objects (Fashion-MNIST) */
extern const CaptionStyle CAPTIONS_EMOJI;   /* emoji: names, CLDR keywords, the drawing style */

/* Templates from a file, one per line ('#' comments and blank lines skipped), for the plain
 * and domain cases alike; every template must contain "{}". The style owns its strings:
 * free with caption_style_free. Errors name the file and line. */
#include "core/err.h"
int caption_style_load(CaptionStyle *st, const char *path, Err *e);
void caption_style_free(CaptionStyle *st);

/* Writes a caption for one image of class `cls` (domain and keywords "a | b | c" may be NULL). */
void caption_make(char *out, size_t cap, const CaptionStyle *st, const char *cls, const char *domain,
                  const char *keywords, const uint8_t *img, int h, int w, int channels, Rng *r);

#endif
