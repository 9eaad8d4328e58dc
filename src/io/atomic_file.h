/* Nothing half-written: output goes to a temporary file beside the target and
 * is renamed over it only when complete (atomic_commit). A write error is
 * remembered and reported at commit, so callers write without checking each call. */
#ifndef FORGET_ATOMIC_FILE_H
#define FORGET_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "core/err.h"

typedef struct {
    FILE *f;
    char *path, *tmp;
    int failed_errno;
} AtomicFile;

int atomic_open(AtomicFile *af, const char *path, Err *e);
void atomic_write(AtomicFile *af, const void *data, size_t n);
/* Flushes, fsyncs and renames; on any earlier failure removes the temporary and reports it. */
int atomic_commit(AtomicFile *af, Err *e);
void atomic_abort(AtomicFile *af);
/* Whole buffer to a file, atomically. */
int write_file_atomic(const char *path, const void *data, size_t n, Err *e);

#endif
