/* Opening files for reading without surprises: the type is checked on the open descriptor
 * (open with O_NONBLOCK, so a FIFO or a device never blocks, then fstat), so a FIFO, a
 * directory, a socket or a device given where a file is expected is a clear error naming
 * what it is, never a hang or a misleading "file too large". */
#ifndef FORGET_FILE_OPEN_H
#define FORGET_FILE_OPEN_H

#include <stdio.h>

#include "core/err.h"

/* "a directory", "a FIFO", "a character device", ... for an st_mode. */
const char *file_kind(unsigned mode);
/* A descriptor of the regular file at path, blocking mode restored; -1 with e set. */
int open_regular(const char *path, Err *e);
/* The same as a stdio stream ("rb" semantics); NULL with e set. */
FILE *fopen_regular(const char *path, Err *e);
/* The whole regular file into a malloc'd buffer (NUL-terminated, *len bytes); -1 with e set. */
int read_file(const char *path, size_t max_bytes, char **buf, size_t *len, Err *e);

/* The directory part of path ("." when it has none), malloc'd. */
char *path_dirname(const char *path);

#endif
