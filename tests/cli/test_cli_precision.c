/* --precision end to end: the features of each precision against fp32, and a CPU without the
 * instructions (oneDNN's DNNL_MAX_CPU_ISA limit, inherited by the child) falling back to fp32 with
 * a one-line notice and fp32's numbers, never an emulated or wrong path. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_run.h"
#include "eval/gen_metrics.h"
#include "test.h"

/* The features of `forget embed ... --json` (its last line), n rows of d; NULL with a failure. */
static float *features(const char *out, int *rows, int *dim) {
    const char *last = out, *p;
    while ((p = strchr(last, '\n')) && p[1]) last = p + 1;
    cJSON *j = cJSON_Parse(last);
    cJSON *f = j ? cJSON_GetObjectItem(j, "features") : NULL;
    if (!f) {
        test_fail(__FILE__, __LINE__, "no features in: %s", out);
        cJSON_Delete(j);
        return NULL;
    }
    *rows = cJSON_GetArraySize(f), *dim = cJSON_GetArraySize(cJSON_GetArrayItem(f, 0));
    float *v = malloc(sizeof(float) * (size_t)*rows * *dim);
    for (int r = 0; r < *rows; r++)
        for (int c = 0; c < *dim; c++)
            v[(size_t)r * *dim + c] = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(f, r), c)->valuedouble;
    cJSON_Delete(j);
    return v;
}


static float *embed(const char *model, const char *prec, int *rows, int *dim, char **log) {
    char *o;
    const int rc = run(&o, "embed --model %s --precision %s --json --text 'a photo of a cat.' 'a diagram' 'two dogs'",
                       model, prec);
    CHECK_MSG(rc == 0, "embed --precision %s: exit %d: %s", prec, rc, o);
    float *f = rc == 0 ? features(o, rows, dim) : NULL;
    if (log) *log = o;
    else free(o);
    return f;
}

TEST(cli_precision_features_and_isa_fallback) {
    char model[1024];
    snprintf(model, sizeof model, "%s/tiny/model.safetensors", ref_dir());
    int n, d, n2, d2;
    float *fp32 = embed(model, "fp32", &n, &d, NULL);
    if (!fp32) return;
    static const struct {
        const char *prec, *limit;
        double min_cos;
    } cases[] = {{"bf16", "AVX512_CORE", 0.999}, {"int8", "AVX512_CORE", 0.995}, {"int8", "AVX2", 0.995}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *log;
        float *f = embed(model, cases[i].prec, &n2, &d2, &log);
        if (f) {
            CHECK(n2 == n && d2 == d);
            const double c = worst_row_cosine(f, fp32, n, d);
            CHECK_MSG(c >= cases[i].min_cos, "%s: worst cosine %.6f", cases[i].prec, c);
            CHECK_MSG(strstr(log, "running fp32") == NULL, "%s fell back on this machine: %s", cases[i].prec, log);
        }
        free(f), free(log);
        /* the same command where oneDNN may not use the instructions */
        setenv("DNNL_MAX_CPU_ISA", cases[i].limit, 1);
        f = embed(model, cases[i].prec, &n2, &d2, &log);
        unsetenv("DNNL_MAX_CPU_ISA");
        if (f) {
            CHECK_MSG(strstr(log, "running fp32") != NULL, "%s under %s: no notice: %s", cases[i].prec, cases[i].limit,
                      log);
            CHECK_CLOSE(f, fp32, (long)n * d, 1e-5, 1e-5);
        }
        free(f), free(log);
    }
    free(fp32);
    char *o;
    CHECK_INT(run(&o, "embed --model %s --precision fp16 --text x", model), 2);
    CHECK_MSG(strstr(o, "fp32") && strstr(o, "bf16") && strstr(o, "int8"), "%s", o);
    free(o);
}
