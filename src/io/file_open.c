#include "io/file_open.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *file_kind(unsigned mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISREG(mode)) return "a regular file";
    return "not a regular file";
}

int open_regular(const char *path, Err *e) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int er = errno;
        close(fd);
        return err_set(e, "%s: cannot stat: %s", path, strerror(er));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return err_set(e, "%s: is %s, expected a regular file", path, file_kind(sb.st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int er = errno;
        close(fd);
        return err_set(e, "%s: cannot set blocking mode: %s", path, strerror(er));
    }
    return fd;
}

FILE *fopen_regular(const char *path, Err *e) {
    int fd = open_regular(path, e);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        err_set(e, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

int read_file(const char *path, size_t max_bytes, char **buf, size_t *len, Err *e) {
    int fd = open_regular(path, e);
    if (fd < 0) return -1;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || (size_t)sb.st_size > max_bytes) {
        close(fd);
        return err_set(e, "%s: %lld bytes, over the %zu-byte limit for this kind of file", path, (long long)sb.st_size,
                       max_bytes);
    }
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    char *b = xmalloc(cap);
    for (;;) { /* the file may change size while it is read: read to EOF within the limit */
        char probe;
        const int full = n + 1 == cap; /* the size fstat gave is read: one byte more tells EOF */
        ssize_t got = full ? read(fd, &probe, 1) : read(fd, b + n, cap - 1 - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int er = errno;
            free(b);
            close(fd);
            return err_set(e, "%s: read failed at byte %zu: %s", path, n, strerror(er));
        }
        if (got == 0) break;
        if (full) {
            if (n + 1 > max_bytes) {
                free(b);
                close(fd);
                return err_set(e, "%s: grew past the %zu-byte limit while being read", path, max_bytes);
            }
            b = xrealloc(b, cap *= 2);
            b[n] = probe;
        }
        n += (size_t)got;
    }
    close(fd);
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}

char *path_dirname(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    if (slash == path) return xstrdup("/");
    return xasprintf("%.*s", (int)(slash - path), path);
}
