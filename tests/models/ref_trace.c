#include "ref_trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

int check_ref_trace(const char *ref_subdir, const char *name, const float *x, int rows, int cols, const Packing *pk,
                    double atol, double max_scale, double rtol) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/%s.f32", ref_subdir, name);
    size_t len;
    float *ref = read_ref(rel, &len);
    if (!ref) return 0;
    double mx = 0;
    for (size_t i = 0; i < len / 4; i++) mx = fmax(mx, fabs(ref[i]));
    const double tol = atol + max_scale * mx;
    if (strncmp(name, "text.", 5) == 0) {
        for (int s = 0; s < pk->nseq; s++)
            for (int k = 0; k < pk->len[s]; k++) {
                char what[128];
                snprintf(what, sizeof what, "%s: %s text %d pos %d", ref_subdir, name, s, k);
                check_close(__FILE__, __LINE__, what, x + (size_t)(pk->start[s] + k) * cols,
                            ref + ((size_t)s * 77 + k) * cols, cols, tol, rtol);
            }
    } else {
        CHECK_MSG(len == (size_t)rows * cols * 4, "%s: %zu bytes, computed %d x %d", name, len, rows, cols);
        char what[128];
        snprintf(what, sizeof what, "%s: %s", ref_subdir, name);
        if (len == (size_t)rows * cols * 4) check_close(__FILE__, __LINE__, what, x, ref, (long)rows * cols, tol, rtol);
    }
    free(ref);
    return 1;
}

float *ref_tensor(SafeTensors *st, const char *name, long expect) {
    const StTensor *t = st_find(st, name);
    CHECK_MSG(t != NULL, "reference tensor %s missing", name);
    if (!t) return NULL;
    CHECK_MSG(expect < 0 || st_numel(t) == expect, "%s: %lld values, expected %ld", name, (long long)st_numel(t),
              expect);
    if (expect >= 0 && st_numel(t) != expect) return NULL;
    float *v = xalloc_floats((size_t)st_numel(t));
    Err e = {0};
    CHECK(st_to_f32(t, v, &e) == 0);
    return v;
}
