/* A text file as its lines (prompt templates, concept lists): blank lines and lines starting
 * with '#' skipped, trailing spaces and CR removed. */
#ifndef FORGET_TEXT_LINES_H
#define FORGET_TEXT_LINES_H

#include "core/err.h"

/* A NULL-terminated malloc'd array of malloc'd lines (*n of them); NULL with e set when the file
 * cannot be read or holds a NUL byte or a line over 4096 bytes (named by number). */
char **text_lines_read(const char *path, int *n, Err *e);
void text_lines_free(char **lines);

#endif
