/* JSON documents on disk (cJSON): written whole to a temporary file and renamed, read whole. */
#ifndef FORGET_JSON_FILE_H
#define FORGET_JSON_FILE_H

#include <cjson/cJSON.h>

#include "core/err.h"

/* Pretty-printed, atomically (temp + rename). */
int json_write_atomic(const char *path, const cJSON *root, Err *e);
/* The parsed file, or NULL when it is missing or not JSON. */
cJSON *json_read_file(const char *path);

#endif
