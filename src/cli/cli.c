#include "core/err.h"
#include "cli/cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/threads.h"
#include "io/file_open.h"
#include "models/clip_params.h"
#include "io/json_file.h"

int cli_error(const char *cmd, int code, const char *fmt, ...) {
    fprintf(stderr, "forget %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int cli_load_model(const char *cmd, const char *path, ClipModel *m, int act_override) {
    Err e = {{0}};
    ClipLoadOpts o = {.act_override = act_override, .load_token_table = 0};
    if (clip_load(m, path, &o, &e) != 0) return cli_error(cmd, EXIT_WORK, "%s", e.msg);
    return 0;
}

int cli_parse_precisions(const char *cmd, const char *list, Precision *out, int cap, int *n) {
    int k = 0;
    char **parts = cli_split(list, ',', &k);
    Err e;
    int rc = 0;
    if (k < 1 || k > cap) rc = cli_error(cmd, EXIT_USAGE, "--precision takes 1 to %d of fp32,bf16,int8", cap);
    for (int i = 0; !rc && i < k; i++)
        if (precision_parse(parts[i], &out[i], &e)) rc = cli_error(cmd, EXIT_USAGE, "--precision: %s", e.msg);
    free(parts);
    *n = rc ? 0 : k;
    return rc;
}

char **cli_split(const char *s, char sep, int *n) {
    size_t len = strlen(s);
    int parts = 1;
    for (const char *p = s; *p; p++) parts += *p == sep;
    char **out = xmalloc(sizeof(char *) * (size_t)(parts + 1) + len + 1);
    char *buf = (char *)(out + parts + 1);
    memcpy(buf, s, len + 1);
    int k = 0;
    for (char *tok = buf;;) {
        char *next = strchr(tok, sep);
        if (next) *next = 0;
        while (*tok == ' ') tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ') *--end = 0;
        out[k++] = tok;
        if (!next) break;
        tok = next + 1;
    }
    out[k] = NULL;
    *n = k;
    return out;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double cli_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int cli_json_line(const char *cmd, const void *j) {
    Err e = {{0}};
    if (json_print_line(stdout, j, &e)) return cli_error(cmd, EXIT_WORK, "%s", e.msg);
    return 0;
}

int cli_api_key(const char *cmd, const char *key_opt, const char *key_file, char **out) {
    *out = NULL;
    if (key_file) {
        char *buf;
        size_t n;
        Err e = {{0}};
        if (read_file(key_file, 4096, &buf, &n, &e)) return cli_error(cmd, EXIT_WORK, "--api-key-file: %s", e.msg);
        buf[strcspn(buf, "\r\n")] = 0; /* the first line, as `echo KEY > file` writes it */
        if (!buf[0]) {
            free(buf);
            return cli_error(cmd, EXIT_WORK, "--api-key-file %s: the first line is empty (expected the key)", key_file);
        }
        *out = buf;
        return 0;
    }
    const char *env = getenv("FORGET_API_KEY");
    if (env && *env) *out = xstrdup(env);
    else if (key_opt) *out = xstrdup(key_opt);
    return 0;
}

int cli_load_model_checked(const char *cmd, const char *path, ClipModel *m, int act_override, int check,
                           int precision) {
    if (cli_load_model(cmd, path, m, act_override)) return EXIT_WORK;
    Err e = {{0}};
    if ((check && clip_check_finite(m, &e)) || clip_set_precision(m, (Precision)precision, &e)) {
        clip_free(m);
        return cli_error(cmd, EXIT_WORK, "%s: %s", path, e.msg);
    }
    return 0;
}

int cli_self_exe(char *buf, size_t cap) {
    const ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1) return -1;
    buf[n] = 0;
    return 0;
}
