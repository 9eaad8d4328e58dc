/* A minimal test runner: TEST(name) { ... } registers a test; CHECK* macros
 * record a failure with file:line and carry on; the runner prints one line per
 * test and ends with "N passed, N failed". */
#ifndef FORGET_TEST_H
#define FORGET_TEST_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>

typedef void (*TestFn)(void);
void test_register(const char *name, TestFn fn);
void test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int test_failed_now(void);
/* Marks the running test skipped (with the reason printed) unless it also failed a check. */
void test_skip(const char *why);

#define TEST(name)                                                                   \
    static void name(void);                                                          \
    __attribute__((constructor)) static void register_##name(void) { test_register(#name, name); } \
    static void name(void)

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);              \
    } while (0)
#define CHECK_MSG(cond, ...)                                                         \
    do {                                                                             \
        if (!(cond)) test_fail(__FILE__, __LINE__, __VA_ARGS__);                     \
    } while (0)
#define CHECK_INT(a, b)                                                              \
    do {                                                                             \
        long long a_ = (long long)(a), b_ = (long long)(b);                          \
        if (a_ != b_) test_fail(__FILE__, __LINE__, "%s == %lld, expected %lld", #a, a_, b_); \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                        \
    do {                                                                             \
        double a_ = (double)(a), b_ = (double)(b);                                   \
        if (!(fabs(a_ - b_) <= (tol))) test_fail(__FILE__, __LINE__, "%s = %.9g, expected %.9g (tol %g)", #a, a_, b_, (double)(tol)); \
    } while (0)
/* Reports the worst element; passes when max |a-b| <= atol + rtol*|b|. */
#define CHECK_CLOSE(a, b, n, atol, rtol) check_close(__FILE__, __LINE__, #a, (a), (b), (n), (atol), (rtol))
int check_close(const char *file, int line, const char *what, const float *a, const float *b, long n,
                double atol, double rtol);

/* Test fixtures: the reference vectors directory (../shared/clip-ref or $FORGET_CLIP_REF),
 * a whole file read into memory (NULL + failure recorded when missing), and a scratch directory. */
const char *ref_dir(void);
void *read_whole(const char *path, size_t *len);
void *read_ref(const char *relpath, size_t *len);
const char *scratch_dir(void);
/* A directory under the scratch directory whose path is at least min_len characters, made of
 * components of 50 letters (malloc'd): for tests of long paths. */
char *deep_scratch_dir(size_t min_len);

#endif
