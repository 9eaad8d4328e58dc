/* Decoding + the CLIP transform against torchvision/Pillow's output for the five
 * reference PNGs (RGB up- and down-scaled, grey, RGBA with transparency, a wide strip). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "io/preprocess.h"
#include "test.h"

TEST(preprocess_matches_pillow_reference_images) {
    char *man = read_ref("preprocess/manifest.json", NULL);
    if (!man) return;
    cJSON *root = cJSON_Parse(man);
    const cJSON *imgs = cJSON_GetObjectItem(root, "images");
    int count = 0;
    for (const cJSON *it = imgs ? imgs->child : NULL; it; it = it->next) {
        const char *png = cJSON_GetObjectItem(it, "png")->valuestring;
        const char *expect = cJSON_GetObjectItem(it, "expected")->valuestring;
        const cJSON *rs = cJSON_GetObjectItem(it, "resized_to");
        char path[1024];
        snprintf(path, sizeof path, "%s/preprocess/%s", ref_dir(), png);
        Image8 im;
        Err e = {{0}};
        if (image_load(&im, path, &e) != 0) {
            test_fail(__FILE__, __LINE__, "%s", e.msg);
            continue;
        }
        int rw, rh;
        clip_resized_size(im.w, im.h, 224, &rw, &rh);
        CHECK_INT(rw, cJSON_GetArrayItem(rs, 0)->valueint);
        CHECK_INT(rh, cJSON_GetArrayItem(rs, 1)->valueint);
        float *got = malloc(sizeof(float) * 3 * 224 * 224);
        clip_preprocess(&im, 224, got);
        char rel[256];
        snprintf(rel, sizeof rel, "preprocess/%s", expect);
        float *want = read_ref(rel, NULL);
        if (want) CHECK_CLOSE(got, want, 3 * 224 * 224, 1e-4, 0);
        /* not merely close: every value is the same 8-bit level */
        int level_mismatch = 0;
        for (long i = 0; want && i < 3 * 224 * 224; i++) {
            int c = (int)(i / (224 * 224));
            long a = lroundf((got[i] * CLIP_STD[c] + CLIP_MEAN[c]) * 255), b = lroundf((want[i] * CLIP_STD[c] + CLIP_MEAN[c]) * 255);
            level_mismatch += a != b;
        }
        CHECK_MSG(level_mismatch == 0, "%s: %d pixels differ in 8-bit level", png, level_mismatch);
        free(want);
        free(got);
        image_free(&im);
        count++;
    }
    CHECK_INT(count, 5);
    cJSON_Delete(root);
    free(man);
}

TEST(image_png_roundtrip_and_errors) {
    Image8 im = {.w = 5, .h = 3, .channels = 4};
    im.px = malloc(60);
    for (int i = 0; i < 60; i++) im.px[i] = (uint8_t)(i * 17);
    char path[512];
    snprintf(path, sizeof path, "%s/rt.png", scratch_dir());
    Err e = {{0}};
    CHECK_MSG(image_save_png(&im, path, &e) == 0, "%s", e.msg);
    Image8 back;
    CHECK_MSG(image_load(&back, path, &e) == 0, "%s", e.msg);
    CHECK(back.w == 5 && back.h == 3 && back.channels == 4 && memcmp(back.px, im.px, 60) == 0);
    image_free(&back);

    /* truncated PNG: an error naming the file, no crash */
    size_t n;
    uint8_t *bytes = read_whole(path, &n);
    CHECK(image_decode(&back, bytes, n / 2, "half.png", &e) != 0 && strstr(e.msg, "half.png"));
    CHECK(image_decode(&back, (const uint8_t *)"GIF89a....", 10, "x.gif", &e) != 0 && strstr(e.msg, "neither"));
    uint8_t fake_jpeg[] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0};
    CHECK(image_decode(&back, fake_jpeg, sizeof fake_jpeg, "bad.jpg", &e) != 0 && strstr(e.msg, "bad.jpg"));
    CHECK(image_load(&back, "/nonexistent.png", &e) != 0 && strstr(e.msg, "/nonexistent.png"));
    free(bytes);
    image_free(&im);
}

TEST(resize_identity_and_constant_images) {
    /* same size: untouched; a constant image stays constant under any resize */
    Image8 im = {.w = 7, .h = 9, .channels = 3};
    im.px = malloc(7 * 9 * 3);
    memset(im.px, 77, 7 * 9 * 3);
    Image8 r;
    image_resize_bicubic(&im, 7, 9, &r);
    CHECK(memcmp(r.px, im.px, 7 * 9 * 3) == 0);
    free(r.px);
    image_resize_bicubic(&im, 31, 4, &r);
    int bad = 0;
    for (int i = 0; i < 31 * 4 * 3; i++) bad += r.px[i] != 77;
    CHECK_INT(bad, 0);
    free(r.px);
    image_free(&im);
}
