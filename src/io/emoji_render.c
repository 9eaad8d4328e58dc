/* Drawing emoji with FreeType (Noto's CBDT colour bitmaps, Symbola's outlines)
 * after shaping each sequence with HarfBuzz. */
#include <ft2build.h>
#include FT_FREETYPE_H
#include <hb-ft.h>
#include <hb.h>
#include <stdlib.h>
#include <string.h>

#include "io/emoji.h"
#include "io/preprocess.h"

const char *const EMOJI_STYLE_NAMES[2] = {"color", "line"};

enum { LINE_PX = 128 }; /* Symbola is rasterised large, then scaled down like the colour bitmaps */

struct EmojiRenderer {
    FT_Library lib;
    FT_Face face[2];
    hb_font_t *font[2];
};

void emoji_renderer_free(EmojiRenderer *r) {
    if (!r) return;
    for (int s = 0; s < 2; s++) {
        if (r->font[s]) hb_font_destroy(r->font[s]);
        if (r->face[s]) FT_Done_Face(r->face[s]);
    }
    if (r->lib) FT_Done_FreeType(r->lib);
    free(r);
}

EmojiRenderer *emoji_renderer_new(const char *color_font, const char *line_font, Err *e) {
    EmojiRenderer *r = xcalloc(1, sizeof *r);
    if (FT_Init_FreeType(&r->lib)) {
        free(r);
        err_set(e, "FreeType failed to initialise");
        return NULL;
    }
    const char *paths[2] = {color_font, line_font};
    const char *pkgs[2] = {"fonts-noto-color-emoji", "fonts-symbola"};
    for (int s = 0; s < 2; s++) {
        if (FT_New_Face(r->lib, paths[s], 0, &r->face[s])) {
            err_set(e, "%s: cannot load the font (Debian package %s)", paths[s], pkgs[s]);
            r->face[s] = NULL;
            emoji_renderer_free(r);
            return NULL;
        }
        if (s == STYLE_COLOR) {
            if (r->face[s]->num_fixed_sizes < 1 || FT_Select_Size(r->face[s], 0)) {
                err_set(e, "%s: no bitmap strike: not a colour bitmap font", paths[s]);
                emoji_renderer_free(r);
                return NULL;
            }
        } else {
            FT_Set_Pixel_Sizes(r->face[s], 0, LINE_PX);
        }
        r->font[s] = hb_ft_font_create_referenced(r->face[s]);
    }
    return r;
}

/* The one glyph a style draws for the sequence, or 0 when it needs several (or none). */
static unsigned single_glyph(EmojiRenderer *r, const Emoji *em, EmojiStyle style) {
    uint32_t cps[EMOJI_MAX_CP];
    int n = 0;
    for (int i = 0; i < em->n_cp; i++) /* line art is text presentation: drop the emoji selector */
        if (!(style == STYLE_LINE && em->cp[i] == 0xFE0F)) cps[n++] = em->cp[i];
    hb_buffer_t *buf = hb_buffer_create();
    hb_buffer_add_utf32(buf, cps, n, 0, n);
    hb_buffer_guess_segment_properties(buf);
    hb_shape(r->font[style], buf, NULL, 0);
    unsigned count;
    hb_glyph_info_t *info = hb_buffer_get_glyph_infos(buf, &count);
    unsigned gid = count == 1 ? info[0].codepoint : 0;
    hb_buffer_destroy(buf);
    return gid;
}

int emoji_render(EmojiRenderer *r, const Emoji *em, EmojiStyle style, int size, Image8 *out, Err *e) {
    memset(out, 0, sizeof *out);
    unsigned gid = single_glyph(r, em, style);
    if (gid == 0) return 0;
    FT_Face face = r->face[style];
    FT_Int32 flags = style == STYLE_COLOR ? (FT_LOAD_COLOR | FT_LOAD_RENDER) : FT_LOAD_RENDER;
    if (FT_Load_Glyph(face, gid, flags)) return err_set(e, "%s: FreeType could not load glyph %u", em->name, gid);
    FT_Bitmap *bm = &face->glyph->bitmap;
    const int bw = (int)bm->width, bh = (int)bm->rows;
    if (bw == 0 || bh == 0) return 0; /* an empty glyph draws nothing */
    Image8 glyph = {.w = bw, .h = bh, .channels = 4};
    glyph.px = xmalloc((size_t)bw * bh * 4);
    for (int y = 0; y < bh; y++) {
        const uint8_t *row = bm->buffer + (long)y * bm->pitch;
        for (int x = 0; x < bw; x++) {
            uint8_t *d = glyph.px + ((size_t)y * bw + x) * 4;
            if (bm->pixel_mode == FT_PIXEL_MODE_BGRA) { /* premultiplied BGRA -> straight RGBA */
                unsigned b = row[4 * x], g = row[4 * x + 1], rr = row[4 * x + 2], a = row[4 * x + 3];
                d[0] = (uint8_t)(a ? (rr * 255 + a / 2) / a : 0);
                d[1] = (uint8_t)(a ? (g * 255 + a / 2) / a : 0);
                d[2] = (uint8_t)(a ? (b * 255 + a / 2) / a : 0);
                d[3] = (uint8_t)a;
            } else if (bm->pixel_mode == FT_PIXEL_MODE_GRAY) { /* ink coverage -> black ink */
                d[0] = d[1] = d[2] = 0;
                d[3] = row[x];
            } else {
                free(glyph.px);
                return err_set(e, "%s: unexpected FreeType pixel mode %d", em->name, bm->pixel_mode);
            }
        }
    }
    /* fit the glyph's longer side to 90% of the canvas, centred */
    const int inner = size * 9 / 10 > 0 ? size * 9 / 10 : 1;
    int tw = bw >= bh ? inner : (int)((long)bw * inner / bh), th = bh >= bw ? inner : (int)((long)bh * inner / bw);
    tw = tw < 1 ? 1 : tw;
    th = th < 1 ? 1 : th;
    Image8 small;
    image_resize_bicubic(&glyph, tw, th, &small);
    free(glyph.px);
    out->w = out->h = size;
    out->channels = 4;
    out->px = xcalloc((size_t)size * size, 4);
    const int ox = (size - tw) / 2, oy = (size - th) / 2;
    for (int y = 0; y < th; y++) memcpy(out->px + ((size_t)(y + oy) * size + ox) * 4, small.px + (size_t)y * tw * 4, (size_t)tw * 4);
    free(small.px);
    return 1;
}
