/* POST /v1/generate: the black-box generation API the attack issue works through.
 *   {"prompts": ["a photo of a sneaker.", ...], "n": N, "seed": S, "steps": K, "cfg": W,
 *    "sampler": "ddim"|"ddpm"}   (n, seed, steps, cfg, sampler optional: 1, 0, 50, 7.5, ddim)
 *   -> {"images": [base64 PNG, ...]}  n per prompt, prompt-major; image i of a prompt is the same
 *      for the same (prompt, seed, steps, cfg, sampler, i) whatever else the request holds.
 * A prompt may instead be weighted, as public text-to-image APIs take them: an array of
 *   {"text": "...", "weight": w} (weight optional, 1) whose conditioning is sum_i w_i E(text_i)
 *   (models/text2image.h), the strict black-box attacker's only lever beyond words.
 * Limits per request: prompts, images (prompts x n), steps, and prompt length (the text tower's
 * context); over a limit is 413, malformed JSON or a wrong type 400, each with {"error": ...}.
 * The model runs under the server's one fair lock, a prompt's images at a time. */
#ifndef FORGET_SERVE_GENERATE_H
#define FORGET_SERVE_GENERATE_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stddef.h>

#include "core/err.h"
#include "core/threads.h"
#include "models/text2image.h"

enum { GEN_MAX_PARTS = 32, GEN_MAX_WEIGHT = 100 };

typedef struct {
    int max_prompts, max_images, max_steps;
    int precision; /* a Precision (core/gemm_mixed.h) for the UNet, text encoder and autoencoder */
    const char *escape, *sld; /* forget erase's sampling-time files (NULL: none) */
} GenLimits;

typedef struct {
    Text2Image g;
    GenLimits lim;
    FairLock *lock;           /* the server's model lock (not owned) */
    pthread_mutex_t stats;
    long requests, images, unet_steps;
} GenService;

int gen_service_init(GenService *s, const char *unet, const char *clip, const char *vae, const GenLimits *lim,
                     FairLock *lock, Err *e);
void gen_service_free(GenService *s);
/* The reply's JSON text (malloc'd) and its status for one request body. */
char *gen_service_handle(GenService *s, const char *body, size_t len, unsigned *status);
/* Adds the counters and limits to a /v1/stats object. */
void gen_service_stats(GenService *s, cJSON *j);

#endif
