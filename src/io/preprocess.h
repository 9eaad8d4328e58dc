/* CLIP's image transform, bit-exact with the Python reference:
 *   Resize(size, BICUBIC) on the shorter side (Pillow's fixed-point separable
 *   resampler, 8-bit rounding between passes, premultiplied alpha) ->
 *   CenterCrop(size) (round half to even) -> RGB -> /255 -> (x - mean) / std. */
#ifndef FORGET_PREPROCESS_H
#define FORGET_PREPROCESS_H

#include "io/image.h"

extern const float CLIP_MEAN[3], CLIP_STD[3];

/* Pillow Image.resize(size, BICUBIC) for 8-bit images of any channel count
 * (alpha premultiplied for LA/RGBA, as Pillow does). out is allocated. */
void image_resize_bicubic(const Image8 *in, int out_w, int out_h, Image8 *out);
/* torchvision Resize(int): shorter side -> size, longer side int(size * long / short). */
void clip_resized_size(int w, int h, int size, int *out_w, int *out_h);
/* Resize of the shorter side + centre crop, as 8-bit RGB (out->px allocated). */
void clip_resize_crop_rgb(const Image8 *im, int size, Image8 *out);
/* The whole transform into out[3, size, size] (CHW float), with this normalisation. */
void image_preprocess(const Image8 *im, int size, const float mean[3], const float std[3], float *out);
/* The same with CLIP's mean and std. */
void clip_preprocess(const Image8 *im, int size, float *out);

#endif
