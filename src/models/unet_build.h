/* The program builder the UNet (unet.c) and the autoencoder (vae.c) share: each appends tensors
 * to a parameter table (keys in the diffusers layout, and in CompVis's where cv is not NULL) and
 * steps to a program that unet_forward.c runs. Internal to src/models. */
#ifndef FORGET_UNET_BUILD_H
#define FORGET_UNET_BUILD_H

#include "models/unet.h"

/* A key into a NN_NAME buffer; one that does not fit is a bug of the builder (abort). */
void unet_keyf(char *dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
NnParam *unet_named(NnTable *t, float **slot, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                    const char *df, const char *cv, NnInit init);
/* "<df>.weight" [o, i, k, k] (ndim 4) or [o, i] and "<df>.bias" [o]; zero: the weight starts at 0. */
void unet_weight_bias(NnTable *t, float **w, float **b, int ndim, int64_t o, int64_t i, int k, const char *df,
                      const char *cv, int zero);
UNetStep *unet_add_step(UNet *m, UNetStepKind kind, int cin, int cout, int f_in, int f_out);
/* A k x k convolution at down-sampling factor f (stride 2 doubles it). */
UNetStep *unet_add_conv(UNet *m, NnTable *t, float **w, float **b, int cin, int cout, int k, int f, int stride,
                        const char *df, const char *cv, int zero);
/* A resnet (the pre-activation conv block; fed the time embedding when m->has_time). */
void unet_add_resnet(UNet *m, NnTable *t, UNetParams *p, int cin, int cout, int f, const char *df, const char *cv);

#endif
