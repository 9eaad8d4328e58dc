/* forget train-diffusion: a text-to-image UNet on a labelled image set (train/diffusion_trainer.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "train/diffusion_trainer.h"

static int run(int argc, char **argv);

const Command cmd_train_diffusion = {
    "train-diffusion", "train a Stable-Diffusion-shaped UNet conditioned on a CLIP text tower",
    "usage: forget train-diffusion --text-encoder CLIP [--data fmnist:train] [--net unet-pixel-32] [--vae FILE] [--side 32]\n"
    "                              [--batch 32] [--steps 2000] [--lr 2e-4] [--ema 0.999] [--cond-drop 0.1]\n"
    "                              [--timesteps 1000] [--beta sd|linear] [--limit N] [--seed S] [--out FILE] [--json]\n"
    "\n"
    "Each image gets a caption from the generator the CLIP zoo trains on; the frozen text tower of CLIP\n"
    "gives the final hidden states of all its context positions (once per distinct caption), 10% of the\n"
    "captions become the empty prompt (for classifier-free guidance), and the UNet learns to predict the\n"
    "noise of the forward process (MSE, AdamW, warm-up and cosine decay). The file written holds the\n"
    "exponential moving average of the weights in the diffusers layout, with the schedule in its metadata.\n"
    "mpirun -np N splits each batch over N processes (the same model up to rounding).\n"
    "A killed run resumes from FILE.ckpt with the same result. Pixel space: RGB at --side px in [-1, 1];\n"
    "with --vae, the UNet learns on the autoencoder's scaled latents of the --side px images.\n",
    run};

static int run(int argc, char **argv) {
    DiffTrainOpts o;
    diffusion_train_defaults(&o);
    const char *beta = "sd";
    int json = 0, quiet = 0, fresh = 0;
    const Opt opts[] = {
        O_STR("--text-encoder", "CLIP", &o.text_encoder, 0, "the CLIP file whose text tower conditions the UNet (required)"),
        O_STR("--data", "SET:SPLIT", &o.data, 0, "training images"),
        opt_bind(OPT_DATA_DIR, &o.data_dir),
        O_STR("--net", "NAME", &o.net, 0, "unet-pixel-32 (default), unet-tiny, unet-latent-8, sd-1"),
        O_STR("--vae", "FILE", &o.vae, 0, "latent space: the autoencoder (forget train-vae); default pixel space"),
        O_INT("--side", "PX", &o.side, 4, 512, "sample side in pixels"),
        O_INT("--batch", "B", &o.batch, 1, 4096, "images per step"),
        O_LONG("--steps", "N", &o.steps, 1, 100000000, "training steps"),
        O_DBL("--lr", "LR", &o.lr, 0, 1, OPT_OPEN, "AdamW learning rate"),
        O_FLT("--ema", "D", &o.ema, 0, 1, 0, "decay of the weights' moving average a step"),
        O_FLT("--cond-drop", "P", &o.cond_drop, 0, 1, 0, "captions dropped to the empty prompt"),
        O_INT("--timesteps", "T", &o.T, 2, 100000, "diffusion steps"),
        O_STR("--beta", "KIND", &beta, 0, "beta schedule: sd (Stable Diffusion's, default) or linear (DDPM's)"),
        O_INT("--limit", "N", &o.limit, 0, 1 << 30, "use the first N training images"),
        opt_bind(OPT_CKPT_EVERY, &o.ckpt_every),
        opt_bind(OPT_STOP_AFTER, &o.stop_after),
        opt_bind(OPT_FRESH, &fresh),
        O_STR("--out", "FILE", &o.out, 0, "the model file"),
        opt_bind(OPT_SEED, &o.seed),
        opt_bind(OPT_QUIET, &quiet),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_train_diffusion, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    if (diffusion_beta_parse(beta, &o.beta))
        return cli_error("train-diffusion", EXIT_USAGE, "--beta %s: expected sd or linear", beta);
    if (!o.text_encoder) return cli_error("train-diffusion", EXIT_USAGE, "--text-encoder CLIP is required");
    o.fresh = fresh, o.quiet = quiet || json;
    Err e = {{0}};
    DiffTrainResult r;
    Dist dist;
    dist_init(&dist); /* joins the MPI world under mpirun: the batch is split over the ranks */
    o.dist = &dist;
    const int rc = diffusion_train(&o, &r, &e);
    dist_finalize(&dist);
    if (rc) return cli_error("train-diffusion", EXIT_WORK, "%s", e.msg);
    if (dist.rank != 0) return 0;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", o.out);
        cJSON_AddNumberToObject(j, "params", (double)r.n_params);
        cJSON_AddNumberToObject(j, "steps", (double)r.steps_done);
        cJSON_AddNumberToObject(j, "loss_last_tenth", r.mean_loss_last);
        cJSON_AddNumberToObject(j, "seconds", r.seconds);
        cJSON_AddNumberToObject(j, "images_per_s", r.images_per_s);
        cJSON_AddNumberToObject(j, "captions_encoded", (double)r.captions_encoded);
        cJSON_AddNumberToObject(j, "captions_cached", (double)r.captions_cached);
        const int rc = cli_json_line("train-diffusion", j);
        cJSON_Delete(j);
        return rc;
    }
    if (r.steps_done < o.steps) {
        printf("train-diffusion: stopped after step %ld of %ld (checkpoint kept; rerun to resume)\n", r.steps_done, o.steps);
        return 0;
    }
    printf("train-diffusion: %s (%ld parameters) after %ld steps, loss %.4f (mean of the last tenth), %.0f s, "
           "%.1f images/s; %ld captions encoded, %ld from the cache\n",
           o.out, r.n_params, r.steps_done, r.mean_loss_last, r.seconds, r.images_per_s, r.captions_encoded,
           r.captions_cached);
    return 0;
}
