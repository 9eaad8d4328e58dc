/* The CLIP forward pass against ../shared/clip-ref/tiny (vectors from the original
 * OpenAI code), every intermediate included, plus layout and dtype round trips. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "models/clip.h"
#include "ref_trace.h"
#include "test.h"

static const double TOL = 1e-4;

static int load_tiny(ClipModel *m) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny/model.safetensors", ref_dir());
    Err e = {{0}};
    if (clip_load(m, path, NULL, &e) != 0) {
        test_fail(__FILE__, __LINE__, "%s", e.msg);
        return -1;
    }
    return 0;
}

typedef struct {
    int n_checked;
} TraceCheck;

/* Compares each traced intermediate with the reference file of the same name. */
static void check_trace(void *user, const char *name, const float *x, int rows, int cols, const Packing *pk) {
    ((TraceCheck *)user)->n_checked += check_ref_trace("tiny/intermediates", name, x, rows, cols, pk, TOL, 0, TOL);
}

TEST(clip_tiny_config_from_shapes_and_metadata) {
    ClipModel m;
    if (load_tiny(&m)) return;
    CHECK_INT(m.cfg.embed_dim, 32);
    CHECK_INT(m.cfg.image_res, 32);
    CHECK_INT(m.cfg.patch, 8);
    CHECK_INT(m.cfg.v_width, 128);
    CHECK_INT(m.cfg.v_layers, 2);
    CHECK_INT(m.cfg.v_heads, 2);
    CHECK_INT(m.cfg.t_width, 32);
    CHECK_INT(m.cfg.t_heads, 2);
    CHECK_INT(m.cfg.t_layers, 2);
    CHECK_INT(m.cfg.context, 77);
    CHECK(m.layout == LAYOUT_OPENAI);
    CHECK(m.tok_emb == NULL && m.tok_src != NULL); /* F16 table read lazily */
    clip_free(&m);
}

TEST(clip_tiny_matches_openai_reference) {
    ClipModel m;
    if (load_tiny(&m)) return;
    size_t n;
    float *images = read_ref("tiny/images.f32", &n);
    int32_t *tokens = read_ref("tiny/tokens.i32", NULL);
    float *ref_img = read_ref("tiny/image_features.f32", NULL);
    float *ref_txt = read_ref("tiny/text_features.f32", NULL);
    float *ref_logits = read_ref("tiny/logits_per_image.f32", NULL);
    if (!images || !tokens || !ref_img || !ref_txt || !ref_logits) return;
    CHECK_INT(n, 4 * 3 * 32 * 32 * 4);
    float img[4 * 32], txt[6 * 32], logits[24];
    TraceCheck tc = {0};
    ClipTrace tr = {check_trace, &tc};
    Err e = {{0}};
    CHECK(clip_encode_image(&m, images, 4, img, &tr, &e) == 0);
    CHECK(clip_encode_text(&m, tokens, 6, txt, &tr, &e) == 0);
    CHECK_INT(tc.n_checked, 10);
    CHECK_CLOSE(img, ref_img, 4 * 32, TOL, TOL);
    CHECK_CLOSE(txt, ref_txt, 6 * 32, TOL, TOL);
    clip_logits(&m, img, 4, txt, 6, logits);
    CHECK_CLOSE(logits, ref_logits, 24, TOL, TOL);
    free(images), free(tokens), free(ref_img), free(ref_txt), free(ref_logits);
    clip_free(&m);
}

/* Encodes the reference inputs with a model, for round-trip comparisons. */
static void encode_ref_inputs(const ClipModel *m, float *img, float *txt) {
    float *images = read_ref("tiny/images.f32", NULL);
    int32_t *tokens = read_ref("tiny/tokens.i32", NULL);
    Err e = {{0}};
    if (images && tokens) {
        CHECK(clip_encode_image(m, images, 4, img, NULL, &e) == 0);
        CHECK(clip_encode_text(m, tokens, 6, txt, NULL, &e) == 0);
    }
    free(images);
    free(tokens);
}

TEST(clip_hf_layout_roundtrip_same_outputs) {
    ClipModel m, h;
    if (load_tiny(&m)) return;
    char path[512];
    snprintf(path, sizeof path, "%s/tiny_hf.safetensors", scratch_dir());
    Err e = {{0}};
    CHECK_MSG(clip_save(&m, path, LAYOUT_HF, ST_F32, &e) == 0, "%s", e.msg);
    CHECK_MSG(clip_load(&h, path, NULL, &e) == 0, "%s", e.msg);
    CHECK(h.layout == LAYOUT_HF);
    CHECK_INT(h.cfg.v_heads, 2);
    float a_img[128], a_txt[192], b_img[128], b_txt[192];
    encode_ref_inputs(&m, a_img, a_txt);
    encode_ref_inputs(&h, b_img, b_txt);
    CHECK_CLOSE(b_img, a_img, 128, 0, 0);
    CHECK_CLOSE(b_txt, a_txt, 192, 0, 0);
    /* and back to OpenAI layout, bit for bit */
    ClipModel o;
    char path2[512];
    snprintf(path2, sizeof path2, "%s/tiny_oa.safetensors", scratch_dir());
    CHECK(clip_save(&h, path2, LAYOUT_OPENAI, ST_F32, &e) == 0);
    CHECK(clip_load(&o, path2, NULL, &e) == 0);
    encode_ref_inputs(&o, b_img, b_txt);
    CHECK_CLOSE(b_txt, a_txt, 192, 0, 0);
    clip_free(&o);
    clip_free(&h);
    clip_free(&m);
}

TEST(clip_f16_bf16_checkpoints_load_close) {
    ClipModel m;
    if (load_tiny(&m)) return;
    float a_img[128], a_txt[192], b_img[128], b_txt[192];
    encode_ref_inputs(&m, a_img, a_txt);
    StDtype dts[2] = {ST_F16, ST_BF16};
    double tol[2] = {2e-2, 1.5e-1};
    for (int k = 0; k < 2; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/tiny_%s.safetensors", scratch_dir(), st_dtype_name(dts[k]));
        Err e = {{0}};
        ClipModel h;
        CHECK(clip_save(&m, path, LAYOUT_OPENAI, dts[k], &e) == 0);
        CHECK_MSG(clip_load(&h, path, NULL, &e) == 0, "%s", e.msg);
        CHECK(strstr(h.src_dtypes, st_dtype_name(dts[k])) != NULL);
        encode_ref_inputs(&h, b_img, b_txt);
        CHECK_CLOSE(b_img, a_img, 128, tol[k], tol[k]);
        CHECK_CLOSE(b_txt, a_txt, 192, tol[k], tol[k]);
        clip_free(&h);
    }
    clip_free(&m);
}

TEST(clip_other_shapes_nothing_hardcoded) {
    /* A differently shaped model (patch 4, resolution 24, 3 layers, odd head counts):
     * save in both layouts, reload, and check both give the same features. */
    ClipConfig c = {.embed_dim = 24, .has_vision = 1, .image_res = 24, .patch = 4, .v_width = 48, .v_layers = 3,
                    .v_heads = 3, .has_text = 1, .context = 77, .vocab = 49408, .t_width = 40, .t_layers = 3,
                    .t_heads = 5, .act = ACT_GELU};
    ClipModel m, a, b;
    clip_init_random(&m, &c, 7);
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s/alt_oa.safetensors", scratch_dir());
    snprintf(pb, sizeof pb, "%s/alt_hf.safetensors", scratch_dir());
    Err e = {{0}};
    CHECK(clip_save(&m, pa, LAYOUT_OPENAI, ST_F32, &e) == 0);
    CHECK(clip_save(&m, pb, LAYOUT_HF, ST_F32, &e) == 0);
    CHECK_MSG(clip_load(&a, pa, NULL, &e) == 0, "%s", e.msg);
    CHECK_MSG(clip_load(&b, pb, NULL, &e) == 0, "%s", e.msg);
    CHECK(a.cfg.v_heads == 3 && a.cfg.t_heads == 5 && a.cfg.v_layers == 3 && a.cfg.image_res == 24);
    CHECK(a.cfg.act == ACT_GELU && b.cfg.act == ACT_GELU);
    float px[2 * 3 * 24 * 24];
    for (int i = 0; i < 2 * 3 * 24 * 24; i++) px[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    int32_t ids[2 * 77] = {0};
    int32_t t0[] = {49406, 320, 1125, 539, 320, 2368, 269, 49407}, t1[] = {49406, 49407};
    memcpy(ids, t0, sizeof t0);
    memcpy(ids + 77, t1, sizeof t1);
    float fa[2 * 24], fb[2 * 24], ta[2 * 24], tb[2 * 24], fm[2 * 24];
    CHECK(clip_encode_image(&m, px, 2, fm, NULL, &e) == 0);
    CHECK(clip_encode_image(&a, px, 2, fa, NULL, &e) == 0);
    CHECK(clip_encode_image(&b, px, 2, fb, NULL, &e) == 0);
    CHECK(clip_encode_text(&a, ids, 2, ta, NULL, &e) == 0);
    CHECK(clip_encode_text(&b, ids, 2, tb, NULL, &e) == 0);
    CHECK_CLOSE(fa, fm, 48, 0, 0);
    CHECK_CLOSE(fb, fa, 48, 0, 0);
    CHECK_CLOSE(tb, ta, 48, 0, 0);
    /* batching does not change a text's features: encode text 1 alone */
    float t_alone[24];
    CHECK(clip_encode_text(&a, ids + 77, 1, t_alone, NULL, &e) == 0);
    CHECK_CLOSE(t_alone, ta + 24, 24, 1e-6, 1e-6);
    /* a bad token id is an error, not a crash */
    ids[3] = 60000;
    CHECK(clip_encode_text(&a, ids, 1, ta, NULL, &e) != 0 && strstr(e.msg, "60000"));
    clip_free(&a), clip_free(&b), clip_free(&m);
}

TEST(clip_load_errors_are_clear) {
    char path[512];
    snprintf(path, sizeof path, "%s/notclip.safetensors", scratch_dir());
    float x[2] = {1, 2};
    StWriteTensor t = {.name = "foo", .dtype = ST_F32, .ndim = 1, .shape = {2}, .f32 = x};
    Err e = {{0}};
    CHECK(st_write(path, &t, 1, NULL, 0, &e) == 0);
    ClipModel m;
    CHECK(clip_load(&m, path, NULL, &e) != 0 && strstr(e.msg, "not a CLIP checkpoint"));
    /* a vision tower with a width that breaks the //64 rule and no metadata */
    ClipConfig c;
    clip_config_named(&c, "tiny");
    c.has_text = 0;
    clip_init_random(&m, &c, 1);
    m.cfg.v_heads = 2;
    char p2[512];
    snprintf(p2, sizeof p2, "%s/vis.safetensors", scratch_dir());
    CHECK(clip_save(&m, p2, LAYOUT_OPENAI, ST_F32, &e) == 0);
    clip_free(&m);
    ClipModel v;
    CHECK_MSG(clip_load(&v, p2, NULL, &e) == 0, "%s", e.msg);
    CHECK(v.cfg.has_vision && !v.cfg.has_text);
    float out[32];
    CHECK(clip_encode_text(&v, (int32_t[77]){49406, 49407}, 1, out, NULL, &e) != 0 && strstr(e.msg, "no text tower"));
    clip_free(&v);
}
