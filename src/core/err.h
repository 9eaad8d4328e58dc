/* One error path for the whole project: a function that can fail returns int
 * (0 = ok, -1 = failed) and writes one human-readable message into an Err the
 * caller owns. The message says which file, which byte or line, what was
 * expected. Callers add context with err_prefix() as the error travels up. */
#ifndef FORGET_ERR_H
#define FORGET_ERR_H

#include <stddef.h>

typedef struct {
    char msg[1024];
} Err;

/* Sets the message (printf-style) and returns -1, so `return err_set(e, ...)` reads naturally. */
int err_set(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends context ("loading model.safetensors: ") to the message already set; returns -1. */
int err_prefix(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Allocation that cannot fail: on out-of-memory the process stops with a message,
 * as Redis' zmalloc does. Every pointer returned has exactly one owner who frees it. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* printf into a malloc'd string of exactly the length needed: paths and messages built with it
 * are never truncated (a fixed buffer that cuts a path silently writes somewhere else). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 64-byte aligned (AVX-512 rows); free with free(). */
float *xalloc_floats(size_t n);

#endif
