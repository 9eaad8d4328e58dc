#ifndef FORGET_TEXT_CLEAN_H
#define FORGET_TEXT_CLEAN_H

/* ftfy's fixes (with ftfy set: those that apply to text that is not mojibake, see
 * text_clean.c), html.unescape twice, strip, collapse whitespace, lower-case: what CLIP's
 * tokenizer does before pre-tokenising. Returns malloc'd UTF-8. */
char *text_clean_for_bpe(const char *text, int ftfy);

#endif
