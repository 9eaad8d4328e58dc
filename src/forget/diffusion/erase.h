/* forget erase: one entry point for every concept-erasure method of issue 16
 * (../shared/methods/diffusion-erasure.md): the escape token (our reconstruction, escape.h), and
 * the published baselines ESD-x / ESD-u (esd.c), FMN (fmn.c), UCE (uce.c) and SLD (sld.c).
 * Escape writes token embeddings, SLD a guidance file, the others a new UNet. */
#ifndef FORGET_ERASE_H
#define FORGET_ERASE_H

#include <stdint.h>

#include "core/err.h"
#include "forget/diffusion/escape.h"
#include "models/diffusion.h"
#include "models/text2image.h"

typedef enum { ERASE_ESCAPE = 0, ERASE_ESD_X, ERASE_ESD_U, ERASE_FMN, ERASE_UCE, ERASE_SLD } EraseMethod;

typedef struct {
    int method;             /* EraseMethod */
    const char *concept;
    const char *const *preserve;
    int n_preserve;
    const char *unet, *clip, *vae, *out;
    EscapeOpts escape;
    double lr;              /* 0: the method's default */
    int steps;              /* 0: the method's default */
    double esd_eta;         /* ESD's negative guidance */
    const char *uce_guide;  /* UCE's target concept ("" : the empty prompt) */
    double uce_lambda, uce_erase_scale, uce_preserve_scale;
    int sld_strong;         /* 0 medium, 1 strong */
    const char *dataset, *data_dir; /* FMN's real images of the concept */
    uint64_t seed;
    int quiet;
} EraseOpts;

typedef struct {
    long trainable;         /* parameters the method changes (0: none, SLD) */
    double seconds, peak_mb, loss;
} EraseResult;

void erase_defaults(EraseOpts *o);
const char *erase_method_name(int method);
int erase_run(const EraseOpts *o, EraseResult *r, Err *e);

/* A concept that tokenises to something, and a preserve list without it (nor empty entries). */
int erase_check_concept(const char *concept, const char *const *preserve, int n_preserve, Err *e);
/* Applies what forget erase wrote for sampling time: an escape-token file (escape_file.h) and/or
 * an SLD guidance file, either NULL. */
int erase_apply_files(Text2Image *g, const char *escape, const char *sld, Err *e);
/* The process's peak resident memory so far, MB. */
double erase_peak_mb(void);

/* UCE on every cross-attention W_k, W_v of g's UNet, in place; returns the entries changed. */
long uce_apply(Text2Image *g, const char *concept, const char *const *preserve, int n_preserve, const char *guide,
               double lambda, double erase_scale, double preserve_scale, Err *e);

/* SLD's published configurations: 0 medium (the pipeline default), 1 strong. */
SafeGuidance sld_config(int strong);
int sld_save(const char *path, const char *concept, int strong, Err *e);
/* Reads a guidance file and sets it on g. */
int sld_load_apply(Text2Image *g, const char *path, Err *e);

/* ESD (x: cross-attention only, u: everything but) and FMN on g's UNet, in place. */
int esd_train(Text2Image *g, const char *concept, int cross_only, double lr, int steps, double eta, uint64_t seed,
              int quiet, long *trainable, double *loss, Err *e);
int fmn_train(Text2Image *g, const char *concept, const char *dataset, const char *data_dir, double lr, int steps,
              uint64_t seed, int quiet, long *trainable, double *loss, Err *e);

/* Saves g's UNet to path with its source's diffusion metadata (the autoencoder's path made
 * absolute, so the file works from any directory) and `erase.*` keys. */
int erase_save_unet(const Text2Image *g, const char *src, const char *path, const EraseOpts *o, Err *e);

#endif
