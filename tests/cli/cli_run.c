#include "cli/cli_run.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

const char *bin(void) {
    const char *b = getenv("FORGET_BIN");
    return b && *b ? b : "bin/forget";
}

int run(char **out, const char *fmt, ...) {
    char *args = NULL, *cmd = NULL; /* never cut: a test of long paths passes long arguments */
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&args, fmt, ap) < 0) abort();
    va_end(ap);
    if (asprintf(&cmd, "%s %s 2>&1", bin(), args) < 0) abort();
    FILE *p = popen(cmd, "r");
    free(args), free(cmd);
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    int st = pclose(p);
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

