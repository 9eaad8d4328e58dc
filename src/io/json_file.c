#include "io/json_file.h"

#include <glib.h>
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

cJSON *json_parse_strict(const char *buf, size_t len, char *msg, size_t msz) {
    if (!buf || len == 0) {
        snprintf(msg, msz, "the body is empty: expected a JSON object");
        return NULL;
    }
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        const unsigned char c = (unsigned char)buf[i];
        if (in_string) {
            if (c < 0x20) {
                snprintf(msg, msz, "byte %zu: raw control character 0x%02x inside a string (JSON needs an escape such as \\u%04x)", i, c, c);
                return NULL;
            }
            if (c == '\\' && i + 1 < len) {
                if (buf[i + 1] == 'u' && i + 5 < len && memcmp(buf + i + 2, "0000", 4) == 0) {
                    snprintf(msg, msz, "byte %zu: \\u0000 (a NUL character) is not accepted in strings", i);
                    return NULL;
                }
                i++; /* the escaped character, whatever it is, is not the string's end */
            } else if (c == '"') {
                in_string = 0;
            }
        } else if (c == '"') {
            in_string = 1;
        } else if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            snprintf(msg, msz, "byte %zu: control character 0x%02x outside a string", i, c);
            return NULL;
        }
    }
    const gchar *bad_utf8 = NULL; /* after the scan: GLib also stops at a NUL, with a vaguer message */
    if (!g_utf8_validate_len(buf, len, &bad_utf8)) {
        snprintf(msg, msz, "byte %zu: not valid UTF-8 (JSON text is UTF-8)", (size_t)(bad_utf8 - buf));
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        size_t at = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
        snprintf(msg, msz, "byte %zu: not valid JSON", at);
        return NULL;
    }
    size_t at = (size_t)(end - buf);
    while (at < len && (buf[at] == ' ' || buf[at] == '\t' || buf[at] == '\n' || buf[at] == '\r')) at++;
    if (at < len) {
        cJSON_Delete(root);
        snprintf(msg, msz, "byte %zu: unexpected data after the JSON value", at);
        return NULL;
    }
    return root;
}
