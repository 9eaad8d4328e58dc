/* JSON documents on disk (cJSON): written whole to a temporary file and renamed, read whole. */
#ifndef FORGET_JSON_FILE_H
#define FORGET_JSON_FILE_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "core/err.h"

/* JSON has no NaN or infinity (cJSON would print null, hiding the failure): every writer below
 * refuses a document holding a non-finite number, naming where it is ("runs[3].H"). */
/* The first non-finite number's place in root, written into where; 0 when there is none. */
int json_find_nonfinite(const cJSON *root, char *where, size_t cap);
/* One line of compact JSON on f (the --json output of a command); -1 with e set, nothing printed. */
int json_print_line(FILE *f, const cJSON *root, Err *e);
/* Compact JSON text (malloc'd), or NULL with e set. */
char *json_print_checked(const cJSON *root, Err *e);
/* Strict parsing of untrusted JSON (RFC 8259, which cJSON is lenient about): the whole buffer
 * must be one value with only white space after it, valid UTF-8, no raw control characters
 * (a raw NUL inside a string would silently cut it) and no \u0000 escapes. NULL on failure
 * with msg saying which byte and why. */
cJSON *json_parse_strict(const char *buf, size_t len, char *msg, size_t msz);
/* Pretty-printed, atomically (temp + rename). */
int json_write_atomic(const char *path, const cJSON *root, Err *e);
/* The parsed file, or NULL when it is missing or not JSON. */
cJSON *json_read_file(const char *path);

#endif
