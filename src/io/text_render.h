/* Text drawn into 8-bit RGB images (FreeType for the glyphs, HarfBuzz for shaping), for the
 * captions of image grids: DejaVu Sans from Debian's fonts-dejavu-core. */
#ifndef FORGET_TEXT_RENDER_H
#define FORGET_TEXT_RENDER_H

#include "core/err.h"
#include "io/image.h"

#define TEXT_FONT_DEFAULT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

typedef struct TextRenderer TextRenderer;

/* font NULL: TEXT_FONT_DEFAULT. px: the font's pixel size. */
TextRenderer *text_renderer_new(const char *font, int px, Err *e);
void text_renderer_free(TextRenderer *r);
/* Width in pixels of the shaped UTF-8 text. */
int text_width(TextRenderer *r, const char *utf8);
/* Draws the text in black on an RGB image (3 channels), its baseline at y, starting at x; pixels
 * outside the image and past max_w pixels are not drawn. */
void text_draw(TextRenderer *r, Image8 *im, int x, int y, int max_w, const char *utf8);
/* The font's ascent and line height in pixels. */
int text_ascent(const TextRenderer *r);
int text_line_height(const TextRenderer *r);

#endif
