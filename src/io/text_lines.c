#include "io/text_lines.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void text_lines_free(char **lines) {
    if (!lines) return;
    for (char **p = lines; *p; p++) free(*p);
    free(lines);
}

char **text_lines_read(const char *path, int *n, Err *e) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(e, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    int cap = 16, line = 0, bad = 0;
    char **out = xmalloc(sizeof(char *) * (size_t)cap);
    char *buf = NULL;
    size_t bcap = 0;
    ssize_t len;
    while (!bad && (len = getline(&buf, &bcap, f)) >= 0) {
        line++;
        if ((size_t)len != strlen(buf)) bad = err_set(e, "%s: line %d holds a NUL byte", path, line);
        else if (len > 4096) bad = err_set(e, "%s: line %d is %zd bytes long (at most 4096)", path, line, len);
        if (bad) break;
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
            buf[--len] = 0;
        const char *s = buf;
        while (*s == ' ' || *s == '\t') s++;
        if (!*s || *s == '#') continue;
        if (*n + 1 >= cap) out = xrealloc(out, sizeof(char *) * (size_t)(cap *= 2));
        out[(*n)++] = xstrdup(s);
    }
    free(buf);
    fclose(f);
    out[*n] = NULL;
    if (bad) {
        text_lines_free(out);
        *n = 0;
        return NULL;
    }
    return out;
}
