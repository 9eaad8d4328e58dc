#include "io/json_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic_file.h"

int json_write_atomic(const char *path, const cJSON *root, Err *e) {
    char *text = cJSON_Print(root);
    int rc = write_file_atomic(path, text, strlen(text), e);
    free(text);
    return rc;
}

cJSON *json_read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    cJSON *root = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            char *buf = xmalloc((size_t)n + 1);
            buf[fread(buf, 1, (size_t)n, f)] = 0;
            root = cJSON_Parse(buf);
            free(buf);
        }
    }
    fclose(f);
    return root;
}
