#ifndef FORGET_TEXT_CLEAN_H
#define FORGET_TEXT_CLEAN_H

/* ftfy's fixes (with ftfy set: those that apply to text that is not mojibake, see
 * text_clean.c), html.unescape twice, strip, collapse whitespace, lower-case: what CLIP's
 * tokenizer does before pre-tokenising. Returns malloc'd UTF-8. */
char *text_clean_for_bpe(const char *text, int ftfy);

#include <stddef.h>
#include <stdint.h>
/* One code point as UTF-8 into dst (room for 4 bytes); returns the byte count. */
size_t utf8_put(char *dst, uint32_t c);

#endif
