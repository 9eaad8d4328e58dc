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
/* n images in [-1, 1], CHW with ch channels (1: grey, replicated), as 8-bit HWC RGB, rounded and
 * clipped: what generative models' samples and their real counterparts become before judging. */
void image_rgb8_from_signed(const float *chw, int n, int ch, int side, uint8_t *rgb);
/* Places n RGB images [side, side, 3] into dst (RGB) on a grid of `cols` columns, `gap` pixels
 * between and around them, the grid's corner at (x0, y0). */
void image_tile(const uint8_t *rgb, int n, int side, int cols, int gap, int x0, int y0, Image8 *dst);
/* An 8-bit PNG of im as base64 text (malloc'd), for JSON replies and HTML data URIs; NULL with e set. */
char *image_png_base64(const Image8 *im, const char *name, Err *e);
/* An 8-bit PNG in memory (*out malloc'd); name is for messages. */
int image_encode_png(const Image8 *im, uint8_t **out, size_t *len, const char *name, Err *e);
/* Writes an 8-bit PNG (atomically). */
int image_save_png(const Image8 *im, const char *path, Err *e);

#endif
