/* Training the text-to-image UNet (models/unet.h, models/diffusion.h) on a labelled image set
 * through the one trainer (train/trainer.h): each image gets a caption from the caption
 * generator the CLIP zoo trains on, the frozen CLIP text tower turns it into the final hidden
 * states of all its context positions (computed once per distinct caption and kept), 10 % of the
 * captions are dropped to the empty prompt (classifier-free guidance), a timestep and a noise are
 * drawn per sample from (seed, step, sample), and the UNet learns to predict the noise (MSE).
 * AdamW with warm-up and cosine decay; an exponential moving average of the weights is what the
 * saved model holds (it rides in the checkpoint, so a killed run resumes to the same bytes).
 * Pixel space: images at `side` px, RGB in [-1, 1]. Latent space (vae set): every training image
 * is encoded once by the autoencoder (models/vae.h) into its posterior moments; each step draws
 * z = mean + std n and the UNet learns on z x scaling factor, at side / factor. */
#ifndef FORGET_DIFFUSION_TRAINER_H
#define FORGET_DIFFUSION_TRAINER_H

#include <stdint.h>

#include "core/dist.h"
#include "core/err.h"
#include "models/diffusion.h"

typedef struct {
    const char *data;         /* "fmnist:train" */
    const char *data_dir;     /* NULL: the data set's default */
    const char *text_encoder; /* a CLIP file (its text tower conditions the UNet) */
    const char *net;          /* a named UNet config (unet-pixel-32) */
    const char *vae;          /* NULL: pixel space; else the autoencoder file (forget train-vae) */
    int side;                 /* sample side (32) */
    int batch;
    long steps;
    double lr, warmup_frac, wd;
    float ema;                /* the average's decay a step (0.999) */
    float cond_drop;          /* captions replaced by the empty prompt (0.1) */
    int T;                    /* diffusion timesteps (1000) */
    BetaKind beta;
    int limit;                /* > 0: use the first N images */
    uint64_t seed;
    const char *out;          /* the model file (EMA weights, diffusers layout) */
    const char *ckpt;         /* NULL: out + ".ckpt" */
    long ckpt_every, stop_after;
    int fresh, quiet;
    const Dist *dist;         /* NULL: serial; else the batch is split over the ranks (same model up to rounding) */
} DiffTrainOpts;

void diffusion_train_defaults(DiffTrainOpts *o);

typedef struct {
    long steps_done;
    float last_loss, mean_loss_last; /* the last step's and the mean over the run's last tenth */
    double seconds, images_per_s;
    long captions_encoded, captions_cached; /* text-tower calls avoided by the cache */
    long n_params;
} DiffTrainResult;

int diffusion_train(const DiffTrainOpts *o, DiffTrainResult *r, Err *e);

#endif
