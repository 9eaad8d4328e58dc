/* Captions drawn with FreeType + HarfBuzz: a longer text is wider, drawing darkens pixels only
 * inside the image and the width limit, and a missing font is a clear error. */
#include <stdlib.h>
#include <string.h>

#include "io/text_render.h"
#include "test.h"

TEST(text_render_draws_within_bounds) {
    Err e = {{0}};
    TextRenderer *r = text_renderer_new(NULL, 12, &e);
    CHECK_MSG(r != NULL, "%s", e.msg);
    if (!r) return;
    const int w1 = text_width(r, "a bag"), w2 = text_width(r, "a photo of a bag");
    CHECK(w1 > 10 && w2 > w1);
    Image8 im = {60, 20, 3, xmalloc(60 * 20 * 3)};
    memset(im.px, 255, 60 * 20 * 3);
    text_draw(r, &im, 2, 2 + text_ascent(r), 30, "a photo of a bag");
    long dark = 0, past = 0;
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++) {
            const int d = im.px[((size_t)y * im.w + x) * 3] < 128;
            dark += d, past += d && x >= 32;
        }
    CHECK(dark > 20);
    CHECK_INT(past, 0);
    free(im.px);
    text_renderer_free(r);
    CHECK(text_renderer_new("/nonexistent.ttf", 12, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "/nonexistent.ttf") != NULL, "%s", e.msg);
}
