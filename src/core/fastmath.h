/* exp for float32 written so that the compiler can vectorise loops that call it
 * (libm's expf is a scalar call): range reduction x = n ln2 + r, |r| <= ln2/2,
 * then a degree-7 Taylor polynomial and 2^n through the exponent bits. Relative
 * error <= 2e-7 (about 2 ulp) on the whole float range; checked against libm in
 * tests/core/test_ops.c. */
#ifndef FORGET_FASTMATH_H
#define FORGET_FASTMATH_H

#include <stdint.h>
#include <string.h>

/* Hot elementwise loops get AVX-512 / AVX2 / baseline clones picked at load time:
 * the default build has no -march, so one binary runs anywhere at full speed. */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__clang__)
#define HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HOT
#endif

static inline float fast_expf(float x) {
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    const float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    /* ln2 split in two so n * ln2_hi is exact */
    float r = x - n * 0.693145751953125f;
    r = r - n * 1.42860682030941723212e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* a NaN input stays NaN through p; n must not be converted to an integer then (undefined) */
    const float nn = n == n ? n : 0.0f;
    const uint32_t bits = (uint32_t)((int32_t)nn + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

#endif
