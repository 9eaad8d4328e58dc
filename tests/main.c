#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/threads.h"
#include "test.h"

enum { MAX_TESTS = 1024 };
typedef struct {
    const char *name;
    TestFn fn;
} TestCase;

/* Filled by constructors before main() runs; read-only afterwards. */
static TestCase tests[MAX_TESTS];
static int n_tests;
static int current_failures;
static const char *current_skip;

void test_register(const char *name, TestFn fn) {
    if (n_tests < MAX_TESTS) tests[n_tests++] = (TestCase){name, fn};
}

void test_fail(const char *file, int line, const char *fmt, ...) {
    current_failures++;
    if (current_failures > 8) return; /* one broken loop should not drown the log */
    fprintf(stdout, "    %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
}

int test_failed_now(void) { return current_failures; }

void test_skip(const char *why) { current_skip = why; }

int check_close(const char *file, int line, const char *what, const float *a, const float *b, long n,
                double atol, double rtol) {
    long worst = -1;
    double worst_excess = 0, worst_diff = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]), lim = atol + rtol * fabs((double)b[i]);
        if (!(d <= lim) && (worst < 0 || d - lim > worst_excess || d != d)) {
            worst = i;
            worst_excess = d - lim;
            worst_diff = d;
        }
    }
    if (worst >= 0) {
        test_fail(file, line, "%s: element %ld of %ld is %.8g, expected %.8g (|diff| %.3g > atol %g + rtol %g)", what,
                  worst, n, a[worst], b[worst], worst_diff, atol, rtol);
        return 0;
    }
    return 1;
}

/* $FORGET_CLIP_REF, else ../shared/clip-ref beside the checkout, else beside the repository this
 * one was cloned from (a scratch clone in /tmp of a checkout that has ../shared). */
const char *ref_dir(void) {
    static char found[1200];
    const char *env = getenv("FORGET_CLIP_REF");
    if (env && *env) return env;
    if (found[0]) return found;
    snprintf(found, sizeof found, "../shared/clip-ref");
    struct stat st;
    if (stat(found, &st) == 0) return found;
    FILE *p = popen("git config --get remote.origin.url 2>/dev/null", "r");
    char origin[1024] = "";
    if (p) {
        if (!fgets(origin, sizeof origin, p)) origin[0] = 0;
        pclose(p);
    }
    origin[strcspn(origin, "\n")] = 0;
    char cand[1200];
    snprintf(cand, sizeof cand, "%s/../shared/clip-ref", origin);
    if (origin[0] == '/' && stat(cand, &st) == 0) snprintf(found, sizeof found, "%s", cand);
    return found;
}

void *read_whole(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        test_fail(__FILE__, __LINE__, "cannot open %s (reference vectors: set FORGET_CLIP_REF)", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
    buf[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

void *read_ref(const char *relpath, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", ref_dir(), relpath);
    return read_whole(path, len);
}

static char scratch[256];
const char *scratch_dir(void) { return scratch; }

char *deep_scratch_dir(size_t min_len) {
    char *p = xstrdup(scratch);
    while (strlen(p) < min_len) {
        char *q = xasprintf("%s/%s", p, "dddddddddddddddddddddddddddddddddddddddddddddddddd");
        free(p);
        p = q;
        mkdir(p, 0700);
    }
    return p;
}

int main(int argc, char **argv) {
    threads_set(0);
    snprintf(scratch, sizeof scratch, "/tmp/forget-tests-%d", (int)getpid());
    mkdir(scratch, 0700);
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < n_tests; i++) {
        int selected = argc < 2;
        for (int a = 1; a < argc; a++)
            if (strstr(tests[i].name, argv[a])) selected = 1;
        if (!selected) continue;
        current_failures = 0;
        current_skip = NULL;
        double t0 = now_seconds();
        tests[i].fn();
        double dt = now_seconds() - t0;
        if (current_skip && !current_failures) {
            skipped++;
            printf("skip %s: %s\n", tests[i].name, current_skip);
        } else if (current_failures) {
            failed++;
            printf("FAIL %s (%d failed checks, %.2fs)\n", tests[i].name, current_failures, dt);
        } else {
            passed++;
            printf("ok   %s (%.2fs)\n", tests[i].name, dt);
        }
        fflush(stdout);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", scratch);
    if (skipped)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else
        printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
