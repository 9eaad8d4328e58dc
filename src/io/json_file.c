#include "io/json_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic_file.h"
#include "io/file_open.h"

static int find_nonfinite(const cJSON *j, char *where, size_t cap, size_t at) {
    if (cJSON_IsNumber(j)) return !isfinite(j->valuedouble);
    int i = 0;
    for (const cJSON *c = j->child; c; c = c->next, i++) {
        int n = c->string ? snprintf(where + at, cap - at, "%s%s", at ? "." : "", c->string)
                          : snprintf(where + at, cap - at, "[%d]", i);
        size_t next = at + (n > 0 ? (size_t)n : 0);
        if (next >= cap) next = cap - 1; /* the place is only for the message: cut, never overrun */
        if (find_nonfinite(c, where, cap, next)) return 1;
        where[at] = 0;
    }
    return 0;
}

int json_find_nonfinite(const cJSON *root, char *where, size_t cap) {
    where[0] = 0;
    return root ? find_nonfinite(root, where, cap, 0) : 0;
}

static int refuse_nonfinite(const cJSON *root, Err *e) {
    char where[256];
    if (!json_find_nonfinite(root, where, sizeof where)) return 0;
    return err_set(e, "the result's %s is not a finite number (NaN or infinity); JSON cannot hold it, so nothing was "
                      "written", where[0] ? where : "value");
}

char *json_print_checked(const cJSON *root, Err *e) {
    if (refuse_nonfinite(root, e)) return NULL;
    return cJSON_PrintUnformatted(root);
}

int json_print_line(FILE *f, const cJSON *root, Err *e) {
    char *s = json_print_checked(root, e);
    if (!s) return -1;
    fputs(s, f);
    fputc('\n', f);
    free(s);
    return 0;
}

int json_write_atomic(const char *path, const cJSON *root, Err *e) {
    if (refuse_nonfinite(root, e)) return err_prefix(e, "%s: ", path);
    char *text = cJSON_Print(root);
    int rc = write_file_atomic(path, text, strlen(text), e);
    free(text);
    return rc;
}

cJSON *json_read_file(const char *path) {
    char *buf;
    size_t n;
    Err ignored = {{0}};
    if (read_file(path, (size_t)1 << 30, &buf, &n, &ignored) != 0) return NULL;
    cJSON *root = cJSON_ParseWithLength(buf, n);
    free(buf);
    return root;
}
