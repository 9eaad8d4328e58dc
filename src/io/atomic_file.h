/* Nothing half-written: output goes to a temporary file beside the target and
 * is renamed over it only when complete (atomic_commit). A write error is
 * remembered and reported at commit, so callers write without checking each call.
 *
 * What is written over, and how:
 *  - only regular files: a directory, FIFO, socket or device at the target is refused with an
 *    error (renaming over /dev/null as root would replace the device node);
 *  - an existing file keeps its permission bits (and, as root, its owner); a new file gets
 *    0666 less the umask, as any program's creat() would;
 *  - a symbolic link is followed: the file it points to is replaced and the link stays a link
 *    (a dangling link is refused, since its target's directory may not be what the user meant).
 * Temporaries are named TARGET.tmp.PID.XXXXXX. A process killed while writing leaves one; the
 * next write of the same target (and its success) removes those whose writer is no longer
 * running, and legacy TARGET.tmp.XXXXXX files (no PID) not modified for a minute. */
#ifndef FORGET_ATOMIC_FILE_H
#define FORGET_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "core/err.h"

typedef struct {
    FILE *f;
    char *path;   /* the file that is replaced (a symlink's target) */
    char *tmp;
    int failed_errno;
    int keep_mode; /* the target existed: give the result its mode and owner */
    mode_t mode;
    uid_t uid;
    gid_t gid;
} AtomicFile;

int atomic_open(AtomicFile *af, const char *path, Err *e);
void atomic_write(AtomicFile *af, const void *data, size_t n);
/* Flushes, fsyncs and renames; on any earlier failure removes the temporary and reports it. */
int atomic_commit(AtomicFile *af, Err *e);
void atomic_abort(AtomicFile *af);
/* Whole buffer to a file, atomically. */
int write_file_atomic(const char *path, const void *data, size_t n, Err *e);
/* Removes temporaries of path left by writers that are gone (see above); returns how many. */
int atomic_clean_stale(const char *path);
/* 0 when path may be written (missing, a regular file, or a link to one); else -1 with e set. */
int atomic_check_target(const char *path, Err *e);

#endif
