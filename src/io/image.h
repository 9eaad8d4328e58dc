/* 8-bit images decoded from PNG (libpng) and JPEG (libjpeg), kept in the mode
 * the file has, as Pillow keeps it: 1 = L, 2 = LA, 3 = RGB, 4 = RGBA. */
#ifndef FORGET_IMAGE_H
#define FORGET_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum { IMAGE_MAX_SIDE = 1 << 15, IMAGE_MAX_PIXELS = 1 << 28 };

typedef struct {
    int w, h, channels;
    uint8_t *px; /* row-major, channels interleaved */
} Image8;

/* Decodes by content (PNG or JPEG signature), not by file name. */
int image_load(Image8 *im, const char *path, Err *e);
int image_decode(Image8 *im, const uint8_t *buf, size_t n, const char *name, Err *e);
/* Same, refusing images of more than max_pixels (the fuzzer keeps allocations small with it). */
int image_decode_max(Image8 *im, const uint8_t *buf, size_t n, const char *name, long max_pixels, Err *e);
int image_decode_png(Image8 *im, const uint8_t *buf, size_t n, const char *name, Err *e);
int image_decode_jpeg(Image8 *im, const uint8_t *buf, size_t n, const char *name, Err *e);
void image_free(Image8 *im);
/* An 8-bit PNG in memory (*out malloc'd); name is for messages. */
int image_encode_png(const Image8 *im, uint8_t **out, size_t *len, const char *name, Err *e);
/* Writes an 8-bit PNG (atomically). */
int image_save_png(const Image8 *im, const char *path, Err *e);

#endif
