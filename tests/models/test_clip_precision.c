/* CLIP through each precision of the GEMM seam on the reference inputs of ../shared/clip-ref/tiny:
 * the fp32 context (oneDNN matmul, fused epilogues) must still match the OpenAI vectors, and
 * bf16 / int8 keep every feature's direction (cosine to the reference) within what they promise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "models/clip.h"
#include "ref_trace.h"
#include "eval/gen_metrics.h"
#include "test.h"


typedef struct {
    int n_checked;
} TraceCheck;

static void check_trace(void *user, const char *name, const float *x, int rows, int cols, const Packing *pk) {
    ((TraceCheck *)user)->n_checked += check_ref_trace("tiny/intermediates", name, x, rows, cols, pk, 1e-4, 0, 1e-4);
}

TEST(clip_precisions_on_reference_inputs) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny/model.safetensors", ref_dir());
    ClipModel m;
    Err e = {{0}};
    if (clip_load(&m, path, NULL, &e) != 0) {
        test_fail(__FILE__, __LINE__, "%s", e.msg);
        return;
    }
    float *images = read_ref("tiny/images.f32", NULL);
    int32_t *tokens = read_ref("tiny/tokens.i32", NULL);
    float *ref_img = read_ref("tiny/image_features.f32", NULL);
    float *ref_txt = read_ref("tiny/text_features.f32", NULL);
    if (!images || !tokens || !ref_img || !ref_txt) return;
    static const struct {
        Precision p;
        double min_cos;
    } cases[] = {{PREC_FP32, 0.999999}, {PREC_BF16, 0.999}, {PREC_INT8, 0.995}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK(clip_set_precision(&m, cases[i].p, &e) == 0);
        if (gemm_precision(m.gemm) != cases[i].p) continue; /* no BF16/VNNI: the CLI test covers the fallback */
        float img[4 * 32], txt[6 * 32];
        TraceCheck tc = {0};
        ClipTrace tr = {check_trace, &tc};
        CHECK(clip_encode_image(&m, images, 4, img, cases[i].p == PREC_FP32 ? &tr : NULL, &e) == 0);
        CHECK(clip_encode_text(&m, tokens, 6, txt, cases[i].p == PREC_FP32 ? &tr : NULL, &e) == 0);
        if (cases[i].p == PREC_FP32) {
            CHECK_INT(tc.n_checked, 10);
            CHECK_CLOSE(img, ref_img, 4 * 32, 1e-4, 1e-4);
            CHECK_CLOSE(txt, ref_txt, 6 * 32, 1e-4, 1e-4);
        }
        const double ci = worst_row_cosine(img, ref_img, 4, 32), ct = worst_row_cosine(txt, ref_txt, 6, 32);
        printf("    %s: worst cosine to the reference: images %.6f, texts %.6f\n", precision_name(cases[i].p), ci, ct);
        CHECK_MSG(ci >= cases[i].min_cos && ct >= cases[i].min_cos, "%s: cosines %.6f / %.6f below %.6f",
                  precision_name(cases[i].p), ci, ct, cases[i].min_cos);
    }
    free(images), free(tokens), free(ref_img), free(ref_txt);
    clip_free(&m);
}
