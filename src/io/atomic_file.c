#include "io/atomic_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int atomic_open(AtomicFile *af, const char *path, Err *e) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 16;
    af->tmp = xmalloc(n);
    snprintf(af->tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->tmp);
    if (fd < 0) {
        int err = errno;
        free(af->tmp);
        af->tmp = NULL;
        return err_set(e, "%s: cannot create a temporary file beside it: %s", path, strerror(err));
    }
    af->f = fdopen(fd, "wb");
    af->path = xstrdup(path);
    return 0;
}

void atomic_write(AtomicFile *af, const void *data, size_t n) {
    if (af->failed_errno || n == 0) return;
    if (fwrite(data, 1, n, af->f) != n) af->failed_errno = errno ? errno : EIO;
}

static void release(AtomicFile *af) {
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

void atomic_abort(AtomicFile *af) {
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    release(af);
}

int atomic_commit(AtomicFile *af, Err *e) {
    if (!af->failed_errno && fflush(af->f) != 0) af->failed_errno = errno;
    if (!af->failed_errno && fsync(fileno(af->f)) != 0 && errno != EINVAL) af->failed_errno = errno;
    if (fclose(af->f) != 0 && !af->failed_errno) af->failed_errno = errno;
    af->f = NULL;
    if (!af->failed_errno) {
        /* mkstemp makes 0600; results are ordinary files */
        if (chmod(af->tmp, 0644) != 0) af->failed_errno = errno;
    }
    if (!af->failed_errno && rename(af->tmp, af->path) != 0) af->failed_errno = errno;
    if (af->failed_errno) {
        int err = af->failed_errno;
        unlink(af->tmp);
        err_set(e, "%s: write failed: %s", af->path, strerror(err));
        release(af);
        return -1;
    }
    release(af);
    return 0;
}

int write_file_atomic(const char *path, const void *data, size_t n, Err *e) {
    AtomicFile af;
    if (atomic_open(&af, path, e) != 0) return -1;
    atomic_write(&af, data, n);
    return atomic_commit(&af, e);
}
