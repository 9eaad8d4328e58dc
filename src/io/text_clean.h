#ifndef FORGET_TEXT_CLEAN_H
#define FORGET_TEXT_CLEAN_H

/* html.unescape twice, strip, collapse whitespace, lower-case: what CLIP's
 * tokenizer does before pre-tokenising (ftfy excepted). Returns malloc'd UTF-8. */
char *text_clean_for_bpe(const char *text);

#endif
