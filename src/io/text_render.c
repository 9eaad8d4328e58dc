#include "io/text_render.h"

#include <ft2build.h>
#include FT_FREETYPE_H
#include <hb-ft.h>
#include <hb.h>
#include <stdlib.h>
#include <string.h>

struct TextRenderer {
    FT_Library lib;
    FT_Face face;
    hb_font_t *font;
};

TextRenderer *text_renderer_new(const char *font, int px, Err *e) {
    TextRenderer *r = xcalloc(1, sizeof *r);
    if (!font) font = TEXT_FONT_DEFAULT;
    if (FT_Init_FreeType(&r->lib)) {
        free(r);
        err_set(e, "FreeType failed to initialise");
        return NULL;
    }
    if (FT_New_Face(r->lib, font, 0, &r->face)) {
        err_set(e, "%s: cannot load the font (Debian package fonts-dejavu-core)", font);
        FT_Done_FreeType(r->lib);
        free(r);
        return NULL;
    }
    FT_Set_Pixel_Sizes(r->face, 0, (FT_UInt)px);
    r->font = hb_ft_font_create_referenced(r->face);
    return r;
}

void text_renderer_free(TextRenderer *r) {
    if (!r) return;
    if (r->font) hb_font_destroy(r->font);
    if (r->face) FT_Done_Face(r->face);
    if (r->lib) FT_Done_FreeType(r->lib);
    free(r);
}

int text_ascent(const TextRenderer *r) { return (int)(r->face->size->metrics.ascender >> 6); }
int text_line_height(const TextRenderer *r) { return (int)(r->face->size->metrics.height >> 6); }

static hb_buffer_t *shape(TextRenderer *r, const char *utf8) {
    hb_buffer_t *buf = hb_buffer_create();
    hb_buffer_add_utf8(buf, utf8, -1, 0, -1);
    hb_buffer_guess_segment_properties(buf);
    hb_shape(r->font, buf, NULL, 0);
    return buf;
}

int text_width(TextRenderer *r, const char *utf8) {
    hb_buffer_t *buf = shape(r, utf8);
    unsigned n;
    hb_glyph_position_t *pos = hb_buffer_get_glyph_positions(buf, &n);
    long w = 0;
    for (unsigned i = 0; i < n; i++) w += pos[i].x_advance;
    hb_buffer_destroy(buf);
    return (int)(w >> 6);
}

void text_draw(TextRenderer *r, Image8 *im, int x, int y, int max_w, const char *utf8) {
    hb_buffer_t *buf = shape(r, utf8);
    unsigned n;
    hb_glyph_info_t *info = hb_buffer_get_glyph_infos(buf, &n);
    hb_glyph_position_t *pos = hb_buffer_get_glyph_positions(buf, &n);
    long pen = (long)x << 6;
    for (unsigned i = 0; i < n; i++) {
        if (FT_Load_Glyph(r->face, info[i].codepoint, FT_LOAD_RENDER)) continue;
        const FT_GlyphSlot g = r->face->glyph;
        const int gx = (int)((pen + pos[i].x_offset) >> 6) + g->bitmap_left, gy = y - g->bitmap_top;
        for (unsigned row = 0; row < g->bitmap.rows; row++)
            for (unsigned col = 0; col < g->bitmap.width; col++) {
                const int px = gx + (int)col, py = gy + (int)row;
                if (px < 0 || py < 0 || px >= im->w || py >= im->h || px >= x + max_w) continue;
                const int a = g->bitmap.buffer[row * (unsigned)g->bitmap.pitch + col];
                uint8_t *d = im->px + ((size_t)py * im->w + px) * 3;
                for (int c = 0; c < 3; c++) d[c] = (uint8_t)(d[c] * (255 - a) / 255); /* black over what is there */
            }
        pen += pos[i].x_advance;
    }
    hb_buffer_destroy(buf);
}
