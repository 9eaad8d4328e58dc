/* Training the latent autoencoder (models/vae.h) on a labelled image set's pixels through the
 * one trainer: the encoder's moments give z = mean + exp(logvar / 2) n, the decoder rebuilds
 * the image, loss = mean |x' - x| + kl_weight x KL(q(z|x) || N(0, I)) (both summed per image as
 * SD's autoencoder sums them; SD adds a perceptual and an adversarial term, left out here: see
 * docs/diffusion.md). After training the latent scaling factor is 1 / std of the posterior
 * means over up to 2,000 training images, as SD's 0.18215 was found, and goes in the file. */
#ifndef FORGET_VAE_TRAINER_H
#define FORGET_VAE_TRAINER_H

#include <stdint.h>

#include "core/err.h"

typedef struct {
    const char *data, *data_dir, *net, *out;
    int side, batch, limit;
    long steps, ckpt_every, stop_after;
    double lr, kl_weight;
    uint64_t seed;
    int fresh, quiet;
} VaeTrainOpts;

void vae_train_defaults(VaeTrainOpts *o);

typedef struct {
    long steps_done, n_params;
    float l1_last;       /* mean absolute error per pixel value over the run's last tenth ([-1, 1] scale) */
    float scale;         /* the latent scaling factor written */
    double seconds, images_per_s;
} VaeTrainResult;

int vae_train(const VaeTrainOpts *o, VaeTrainResult *r, Err *e);

#endif
