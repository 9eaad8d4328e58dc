#include "io/atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/file_open.h"

/* The file a write to path replaces: path itself, or the end of its chain of symlinks. Fills
 * *st when it exists (*exists = 1). malloc'd, or NULL with e set. */
static char *resolve_target(const char *path, struct stat *st, int *exists, Err *e) {
    *exists = 0;
    struct stat ls;
    if (lstat(path, &ls) != 0) {
        if (errno == ENOENT) return xstrdup(path);
        err_set(e, "%s: cannot write: %s", path, strerror(errno));
        return NULL;
    }
    char *target = xstrdup(path);
    if (S_ISLNK(ls.st_mode)) {
        char *real = realpath(path, NULL);
        if (!real) {
            err_set(e, "%s: is a symbolic link to a missing file (%s); write to the target's path instead", path,
                    strerror(errno));
            free(target);
            return NULL;
        }
        free(target);
        target = real;
        if (stat(target, &ls) != 0) {
            err_set(e, "%s: cannot stat the link's target %s: %s", path, target, strerror(errno));
            free(target);
            return NULL;
        }
    }
    if (!S_ISREG(ls.st_mode)) {
        err_set(e, "%s: is %s; forget writes only regular files (remove it or choose another --out)", path,
                file_kind(ls.st_mode));
        free(target);
        return NULL;
    }
    *st = ls;
    *exists = 1;
    return target;
}

int atomic_check_target(const char *path, Err *e) {
    struct stat st;
    int exists;
    char *t = resolve_target(path, &st, &exists, e);
    free(t);
    return t ? 0 : -1;
}

/* Is name (the part after "BASE.tmp.") a temporary whose writer is gone? */
static int stale_suffix(const char *dir, const char *full_name, const char *suffix) {
    const char *dot = strchr(suffix, '.');
    if (dot) { /* PID.XXXXXX */
        char *end;
        long pid = strtol(suffix, &end, 10);
        if (end != dot || pid <= 0 || pid > INT_MAX || strlen(dot + 1) != 6) return 0;
        if (pid == (long)getpid()) return 0; /* this process: a write in progress in another thread */
        return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
    }
    if (strlen(suffix) != 6) return 0; /* legacy XXXXXX (no PID): stale once untouched for a minute */
    char *p = xasprintf("%s/%s", dir, full_name);
    struct stat st;
    int old = lstat(p, &st) == 0 && S_ISREG(st.st_mode) && time(NULL) - st.st_mtime > 60;
    free(p);
    return old;
}

int atomic_clean_stale(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = path_dirname(path), *prefix = xasprintf("%s.tmp.", slash ? slash + 1 : path);
    const size_t pl = strlen(prefix);
    int removed = 0;
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
        if (strncmp(de->d_name, prefix, pl) != 0 || !stale_suffix(dir, de->d_name, de->d_name + pl)) continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        if (unlink(p) == 0) removed++;
        free(p);
    }
    if (d) closedir(d);
    free(prefix), free(dir);
    return removed;
}

int atomic_open(AtomicFile *af, const char *path, Err *e) {
    memset(af, 0, sizeof *af);
    struct stat st;
    int exists;
    char *target = resolve_target(path, &st, &exists, e);
    if (!target) return -1;
    atomic_clean_stale(target);
    static const char ALNUM[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned long x = (unsigned long)getpid() * 2654435761u ^ (unsigned long)time(NULL) ^ (unsigned long)(size_t)af;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        char rnd[7];
        for (int i = 0; i < 6; i++) {
            x = x * 6364136223846793005ul + 1442695040888963407ul;
            rnd[i] = ALNUM[(x >> 33) % (sizeof ALNUM - 1)];
        }
        rnd[6] = 0;
        free(af->tmp);
        af->tmp = xasprintf("%s.tmp.%d.%s", target, (int)getpid(), rnd);
        /* a new file: 0666 less the umask (the kernel applies it); an existing one gets its mode at commit */
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, exists ? 0600 : 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        int err = errno;
        free(af->tmp), free(target);
        af->tmp = NULL;
        return err_set(e, "%s: cannot create a temporary file beside it: %s", path, strerror(err));
    }
    af->f = fdopen(fd, "wb");
    af->path = target;
    if (exists) af->keep_mode = 1, af->mode = st.st_mode & 07777, af->uid = st.st_uid, af->gid = st.st_gid;
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

/* The rename is durable once the directory holding it is synced. */
static void sync_dir_of(const char *path) {
    char *dir = path_dirname(path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int atomic_commit(AtomicFile *af, Err *e) {
    if (!af->failed_errno && fflush(af->f) != 0) af->failed_errno = errno;
    if (!af->failed_errno && af->keep_mode) {
        if (geteuid() == 0 && fchown(fileno(af->f), af->uid, af->gid) != 0) af->failed_errno = errno;
        if (!af->failed_errno && fchmod(fileno(af->f), af->mode) != 0) af->failed_errno = errno;
    }
    if (!af->failed_errno && fsync(fileno(af->f)) != 0 && errno != EINVAL) af->failed_errno = errno;
    if (fclose(af->f) != 0 && !af->failed_errno) af->failed_errno = errno;
    af->f = NULL;
    if (!af->failed_errno && rename(af->tmp, af->path) != 0) af->failed_errno = errno;
    if (af->failed_errno) {
        int err = af->failed_errno;
        unlink(af->tmp);
        err_set(e, "%s: write failed: %s", af->path, strerror(err));
        release(af);
        return -1;
    }
    sync_dir_of(af->path);
    atomic_clean_stale(af->path);
    release(af);
    return 0;
}

int write_file_atomic(const char *path, const void *data, size_t n, Err *e) {
    AtomicFile af;
    if (atomic_open(&af, path, e) != 0) return -1;
    atomic_write(&af, data, n);
    return atomic_commit(&af, e);
}
