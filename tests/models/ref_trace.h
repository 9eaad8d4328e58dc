/* Comparing a traced activation (or activation gradient) with the reference file of
 * the same name. Text activations are packed up to each EOT here but stored as 77 rows
 * per text in the reference; everything else is compared whole. */
#ifndef FORGET_TEST_REF_TRACE_H
#define FORGET_TEST_REF_TRACE_H

#include "core/ops.h"
#include "io/safetensors.h"

/* Passes when |x - ref| <= atol + max_scale * max|ref| + rtol * |ref| element-wise. Returns 1
 * when the reference file existed (a missing file is itself a failure). */
int check_ref_trace(const char *ref_subdir, const char *name, const float *x, int rows, int cols, const Packing *pk,
                    double atol, double max_scale, double rtol);

/* A tensor of a reference file widened to floats (malloc'd); a missing tensor, or one of another
 * size than expect (< 0: any), is a failure and gives NULL. */
float *ref_tensor(SafeTensors *st, const char *name, long expect);

#endif
