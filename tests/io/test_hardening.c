/* Issue 10's holes in the file layer, each as its repro: FIFOs and directories given as input
 * files, stale temporaries of killed writers, writes onto devices, read-only-mode files and
 * symlinks, flipped bytes in a safetensors file, and BPE on very long words. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/threads.h"
#include "io/atomic_file.h"
#include "io/file_open.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "test.h"

TEST(hardening_fifo_and_directory_inputs_are_clear_errors) {
    char *fifo = xasprintf("%s/in.fifo", scratch_dir());
    CHECK(mkfifo(fifo, 0600) == 0);
    Err e = {{0}};
    Image8 im;
    double t0 = now_seconds();
    CHECK(image_load(&im, fifo, &e) != 0); /* before: open() blocked forever */
    CHECK_MSG(strstr(e.msg, "is a FIFO, expected a regular file"), "%s", e.msg);
    SafeTensors st;
    CHECK(st_open(&st, fifo, &e) != 0 && strstr(e.msg, "is a FIFO"));
    CHECK(now_seconds() - t0 < 2);
    CHECK(image_load(&im, scratch_dir(), &e) != 0); /* before: "file too large" */
    CHECK_MSG(strstr(e.msg, "is a directory"), "%s", e.msg);
    CHECK(st_open(&st, "/dev/null", &e) != 0 && strstr(e.msg, "character device"));
    unlink(fifo);
    free(fifo);
}

/* A child that dies while it writes leaves TARGET.tmp.PID.XXXXXX behind. */
static void orphan_temporary(const char *target) {
    pid_t pid = fork();
    if (pid == 0) {
        AtomicFile af;
        Err e;
        if (atomic_open(&af, target, &e) == 0) atomic_write(&af, "partial", 7), fflush(af.f);
        _exit(0); /* no commit, no abort: as a kill would leave it */
    }
    waitpid(pid, NULL, 0);
}

static int count_temporaries(const char *dir, const char *base) {
    char *prefix = xasprintf("%s.tmp.", base);
    int c = 0;
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d)) != NULL;) c += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    free(prefix);
    return c;
}

TEST(hardening_stale_temporaries_are_removed) {
    char *dir = xasprintf("%s/stale", scratch_dir()), *target = xasprintf("%s/model.ckpt", dir);
    mkdir(dir, 0700);
    for (int i = 0; i < 3; i++) orphan_temporary(target);
    /* each new write removed the one its dead predecessor left: one left, not three as before */
    CHECK_INT(count_temporaries(dir, "model.ckpt"), 1);
    Err e = {{0}};
    CHECK_MSG(write_file_atomic(target, "whole", 5, &e) == 0, "%s", e.msg);
    CHECK_INT(count_temporaries(dir, "model.ckpt"), 0);
    /* a temporary of a writer that is still running is left alone */
    AtomicFile live;
    CHECK(atomic_open(&live, target, &e) == 0);
    CHECK_INT(atomic_clean_stale(target), 0);
    CHECK_INT(count_temporaries(dir, "model.ckpt"), 1);
    atomic_abort(&live);
    CHECK_INT(count_temporaries(dir, "model.ckpt"), 0);
    free(dir), free(target);
}

TEST(hardening_writes_refuse_devices_keep_modes_follow_symlinks) {
    Err e = {{0}};
    CHECK(write_file_atomic("/dev/null", "x", 1, &e) != 0); /* before: replaced by a regular file (as root) */
    CHECK_MSG(strstr(e.msg, "is a character device; forget writes only regular files"), "%s", e.msg);
    struct stat st;
    CHECK(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode));
    CHECK(write_file_atomic(scratch_dir(), "x", 1, &e) != 0 && strstr(e.msg, "is a directory"));
    char *priv = xasprintf("%s/private.json", scratch_dir());
    CHECK(write_file_atomic(priv, "{}", 2, &e) == 0);
    chmod(priv, 0600);
    CHECK(write_file_atomic(priv, "{\"a\":1}", 7, &e) == 0);
    CHECK(stat(priv, &st) == 0 && (st.st_mode & 07777) == 0600); /* before: 0644 */
    /* a symlink stays a link; the file it points to is replaced */
    char *link = xasprintf("%s/link.json", scratch_dir());
    CHECK(symlink(priv, link) == 0);
    CHECK(write_file_atomic(link, "[1]", 3, &e) == 0);
    CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
    size_t n;
    char *got = read_whole(priv, &n);
    CHECK(got && n == 3 && memcmp(got, "[1]", 3) == 0);
    free(got);
    char *dangling = xasprintf("%s/dangling.json", scratch_dir());
    CHECK(symlink("/nonexistent/dir/x.json", dangling) == 0);
    CHECK(write_file_atomic(dangling, "x", 1, &e) != 0 && strstr(e.msg, "symbolic link to a missing file"));
    /* a FIFO target is refused too (renaming over it would replace it) */
    char *fifo = xasprintf("%s/out.fifo", scratch_dir());
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(write_file_atomic(fifo, "x", 1, &e) != 0 && strstr(e.msg, "is a FIFO"));
    unlink(fifo), unlink(dangling), unlink(link), unlink(priv);
    free(fifo), free(dangling), free(link), free(priv);
}

TEST(hardening_long_paths_are_written_where_asked) {
    /* 1,023 characters, components under NAME_MAX: before, a 1,024-byte buffer cut the
     * checkpoint's path to --out itself and the cleanup deleted the model */
    char *p = deep_scratch_dir(900);
    const size_t pad = 1023 - strlen(p) - 1;
    char *name = xmalloc(pad + 1);
    memset(name, 'f', pad), name[pad] = 0;
    char *target = xasprintf("%s/%s", p, name);
    CHECK_INT(strlen(target), 1023);
    Err e = {{0}};
    CHECK_MSG(write_file_atomic(target, "ok", 2, &e) == 0, "%s", e.msg);
    size_t n;
    char *got = read_whole(target, &n);
    CHECK(got && n == 2);
    free(got), free(target), free(name), free(p);
}

TEST(hardening_flipped_byte_in_safetensors_names_the_tensor) {
    char *path = xasprintf("%s/digest.safetensors", scratch_dir());
    float a[64], b[32];
    for (int i = 0; i < 64; i++) a[i] = (float)i;
    for (int i = 0; i < 32; i++) b[i] = -(float)i;
    StWriteTensor t[2] = {{.name = "first", .dtype = ST_F32, .ndim = 1, .shape = {64}, .f32 = a},
                          {.name = "second", .dtype = ST_F16, .ndim = 1, .shape = {32}, .f32 = b}};
    Err e = {{0}};
    CHECK(st_write(path, t, 2, NULL, 0, &e) == 0);
    SafeTensors st;
    CHECK_MSG(st_open(&st, path, &e) == 0, "%s", e.msg);
    CHECK(st_has_digests(&st));
    const size_t second_at = st.data_start + st_find(&st, "second")->begin;
    st_close(&st);
    int fd = open(path, O_RDWR);
    unsigned char c;
    CHECK(pread(fd, &c, 1, (off_t)second_at + 3) == 1);
    c ^= 0x10;
    CHECK(pwrite(fd, &c, 1, (off_t)second_at + 3) == 1);
    close(fd);
    CHECK(st_open(&st, path, &e) != 0); /* before: loaded without complaint */
    CHECK_MSG(strstr(e.msg, "tensor 'second' is damaged"), "%s", e.msg);
    /* a file without digests (another tool's) still loads */
    char *plain = xasprintf("%s/plain.safetensors", scratch_dir());
    const char hdr[] = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    unsigned char buf[8 + sizeof hdr - 1 + 4] = {0};
    buf[0] = (unsigned char)(sizeof hdr - 1);
    memcpy(buf + 8, hdr, sizeof hdr - 1);
    CHECK(write_file_atomic(plain, buf, sizeof buf, &e) == 0);
    CHECK_MSG(st_open(&st, plain, &e) == 0, "%s", e.msg);
    CHECK(!st_has_digests(&st));
    st_close(&st);
    free(path), free(plain);
}

/* Ids of the whole text (no context cut). */
static int bpe_count(const Tokenizer *t, const char *text) {
    int32_t *ids;
    int n;
    Err e;
    if (tokenizer_encode(t, text, &ids, &n, &e)) return -1;
    free(ids);
    return n;
}

TEST(hardening_bpe_is_n_log_n_on_long_words) {
    Tokenizer t;
    Err e = {{0}};
    CHECK(tokenizer_init(&t, &e) == 0);
    const int N = 100000; /* before: 6.6 s for one word of 100k letters */
    char *word = xmalloc((size_t)N + 1);
    for (int i = 0; i < N; i++) word[i] = "abcdefghij"[(i * 7 + i / 3) % 10];
    word[N] = 0;
    double t0 = now_seconds();
    int n = bpe_count(&t, word);
    double dt = now_seconds() - t0;
    CHECK(n > 0);
    CHECK_MSG(dt < 1.5, "100k letters took %.2f s", dt);
    int32_t row[77];
    t0 = now_seconds();
    CHECK_INT(tokenizer_tokenize(&t, word, 77, row, &e), 77);
    CHECK_MSG(now_seconds() - t0 < 0.5, "a 100k-letter prompt took %.2f s to cut to 77 tokens", now_seconds() - t0);
    CHECK_INT(row[76], 49407);
    free(word);
    tokenizer_free(&t);
}
