#include "forget/resume.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "io/file_open.h"
#include "io/json_file.h"

int resume_load(const char *path, const char *array_field, ResumeMatch same, const void *ctx, int restart, cJSON **root,
                Err *e) {
    *root = NULL;
    if (access(path, F_OK) != 0) return 0;
    char *buf;
    size_t n;
    if (read_file(path, (size_t)1 << 30, &buf, &n, e)) return -1;
    char msg[256] = "";
    cJSON *j = json_parse_strict(buf, n, msg, sizeof msg);
    free(buf);
    if (!j) return err_set(e, "%s: not the results of an experiment (%s): remove it or choose another --out", path, msg);
    if (!cJSON_IsObject(j) || !cJSON_IsArray(cJSON_GetObjectItem(j, array_field))) {
        cJSON_Delete(j);
        return err_set(e, "%s: not the results of an experiment (no \"%s\" array): remove it or choose another --out", path,
                       array_field);
    }
    if (same && !same(j, ctx)) {
        cJSON_Delete(j);
        if (restart) return 0;
        return err_set(e, "%s holds another experiment (model, data or settings differ): choose another --out", path);
    }
    *root = j;
    return 0;
}

double resume_num(const cJSON *o, const char *key) {
    const cJSON *v = o ? cJSON_GetObjectItem(o, key) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

const char *resume_str(const cJSON *o, const char *key) {
    const cJSON *v = o ? cJSON_GetObjectItem(o, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
