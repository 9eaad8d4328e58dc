#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "io/safetensors.h"
#include "test.h"

/* A file image: 8-byte length, the header as given (padded to 8 with spaces), data_len bytes of data. */
static uint8_t *image_of(const char *json, size_t data_len, size_t *len) {
    size_t jl = strlen(json), padded = (jl + 7) & ~(size_t)7;
    *len = 8 + padded + data_len;
    uint8_t *b = calloc(1, *len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(b + 8, json, jl);
    memset(b + 8 + jl, ' ', padded - jl);
    return b;
}

/* Parses the image and expects failure with `want` in the message. */
static void expect_error(const char *json, size_t data_len, const char *want) {
    size_t len;
    uint8_t *b = image_of(json, data_len, &len);
    SafeTensors st;
    Err e = {{0}};
    int rc = st_parse(&st, b, len, "bad.safetensors", &e);
    CHECK_MSG(rc != 0, "accepted malformed header %s", json);
    CHECK_MSG(rc != 0 && strstr(e.msg, want), "error for %s was \"%s\", expected it to mention \"%s\"", json, e.msg, want);
    CHECK_MSG(rc != 0 && strstr(e.msg, "bad.safetensors"), "error does not name the file: %s", e.msg);
    if (rc == 0) st_close(&st);
    free(b);
}

TEST(safetensors_rejects_each_malformed_class) {
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "not valid JSON");
    expect_error("[1,2]", 0, "must start with");
    expect_error("{\"a\": 5}", 0, "tensor 'a': entry is not a JSON object");
    expect_error("{\"a\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype \"F17\"");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "tensor 'a': shape x F32 size = 12");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "past the data buffer");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlaps");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "hole");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "unused bytes");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "'a' appears twice");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0]");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "begin 8 > end 4");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets");
    expect_error("{\"__metadata__\":{\"k\":3}}", 0, "not a string");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4, "only space padding");

    /* length field problems */
    SafeTensors st;
    Err e = {{0}};
    uint8_t short_file[5] = {0};
    CHECK(st_parse(&st, short_file, 5, "bad.safetensors", &e) != 0 && strstr(e.msg, "shorter than"));
    uint8_t huge[16] = {0x00, 0xe2, 0xf5, 0x05, 0x01, 0, 0, 0, '{', '}'}; /* 4395000320 bytes */
    CHECK(st_parse(&st, huge, 16, "bad.safetensors", &e) != 0 && strstr(e.msg, "exceeds"));
    uint8_t past[16] = {0x40, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    CHECK(st_parse(&st, past, 16, "bad.safetensors", &e) != 0 && strstr(e.msg, "past the end"));
    uint8_t notbrace[16] = {8, 0, 0, 0, 0, 0, 0, 0, ' ', '{', '}', ' ', ' ', ' ', ' ', ' '};
    CHECK(st_parse(&st, notbrace, 16, "bad.safetensors", &e) != 0 && strstr(e.msg, "byte 8"));
    /* a JSON syntax error is reported with its byte offset */
    size_t len;
    uint8_t *b = image_of("{\"a\": {\"dtype\" \"F32\"}}", 0, &len);
    CHECK(st_parse(&st, b, len, "bad.safetensors", &e) != 0 && strstr(e.msg, "byte 2"));
    free(b);
}

TEST(safetensors_write_read_roundtrip_all_dtypes) {
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", scratch_dir());
    float a[6] = {1.5f, -2.25f, 3e-5f, 65504.0f, -0.0f, 1.0f / 3.0f};
    float s[1] = {2.6592600345611572f};
    int64_t iv[3] = {0, 1, -7};
    StWriteTensor t[4] = {
        {.name = "a.f32", .dtype = ST_F32, .ndim = 2, .shape = {2, 3}, .f32 = a},
        {.name = "a.f16", .dtype = ST_F16, .ndim = 2, .shape = {3, 2}, .f32 = a},
        {.name = "a.bf16", .dtype = ST_BF16, .ndim = 1, .shape = {6}, .f32 = a},
        {.name = "scalar", .dtype = ST_F32, .ndim = 0, .f32 = s},
    };
    const char *meta[] = {"vision_heads", "2", "format", "pt"};
    Err e = {{0}};
    CHECK_MSG(st_write(path, t, 4, meta, 2, &e) == 0, "%s", e.msg);
    /* an I64 buffer written raw, as HF position_ids are */
    char path2[512];
    snprintf(path2, sizeof path2, "%s/i64.safetensors", scratch_dir());
    StWriteTensor ti = {.name = "position_ids", .dtype = ST_I64, .ndim = 1, .shape = {3}, .raw = iv};
    CHECK(st_write(path2, &ti, 1, NULL, 0, &e) == 0);

    SafeTensors st;
    CHECK_MSG(st_open(&st, path, &e) == 0, "%s", e.msg);
    CHECK_INT(st.n, 4);
    CHECK_INT(st.data_start % 8, 0);
    CHECK(st_meta(&st, "vision_heads") && strcmp(st_meta(&st, "vision_heads"), "2") == 0);
    float out[6];
    CHECK(st_to_f32(st_find(&st, "a.f32"), out, &e) == 0);
    CHECK_CLOSE(out, a, 6, 0, 0);
    CHECK(st_to_f32(st_find(&st, "a.f16"), out, &e) == 0);
    for (int i = 0; i < 6; i++) CHECK_NEAR(out[i], a[i], fabs(a[i]) * 1e-3 + 1e-7);
    CHECK_NEAR(out[3], 65504.0, 0); /* largest half is exact */
    CHECK(st_to_f32(st_find(&st, "a.bf16"), out, &e) == 0);
    for (int i = 0; i < 6; i++) CHECK_NEAR(out[i], a[i], fabs(a[i]) * 8e-3 + 1e-7);
    const StTensor *sc = st_find(&st, "scalar");
    CHECK(sc && sc->ndim == 0 && st_numel(sc) == 1);
    st_close(&st);

    CHECK(st_open(&st, path2, &e) == 0);
    CHECK(st_to_f32(st_find(&st, "position_ids"), out, &e) == 0);
    CHECK_NEAR(out[2], -7, 0);
    st_close(&st);
}

TEST(half_conversions_exact_and_rounded) {
    /* every half value widens and narrows back to itself (NaNs stay NaN) */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = half_to_float((uint16_t)h);
        uint16_t back = float_to_half(f);
        if (f == f && back != h) bad++;
        if (f != f && (back & 0x7c00) != 0x7c00) bad++;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(float_to_half(1.0f + 1.0f / 2048), 0x3c00);          /* tie rounds to even */
    CHECK_INT(float_to_half(1.0f + 3.0f / 2048), 0x3c02);          /* tie rounds to even, up */
    CHECK_INT(float_to_half(5.96046448e-08f), 0x0001);             /* smallest subnormal */
    CHECK_INT(float_to_bf16(1.0f), 0x3f80);
    CHECK_NEAR(bf16_to_float(float_to_bf16(3.14159f)), 3.140625, 0);
}

TEST(safetensors_opens_reference_tiny_model) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny/model.safetensors", ref_dir());
    SafeTensors st;
    Err e = {{0}};
    CHECK_MSG(st_open(&st, path, &e) == 0, "%s", e.msg);
    if (st.n == 0) return;
    const StTensor *te = st_find(&st, "token_embedding.weight");
    CHECK(te && te->dtype == ST_F16 && te->shape[0] == 49408);
    CHECK(st_meta(&st, "transformer_heads") != NULL);
    st_close(&st);
    CHECK(st_open(&st, "/nonexistent/x.safetensors", &e) != 0 && strstr(e.msg, "/nonexistent/x.safetensors"));
}
