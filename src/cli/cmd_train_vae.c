/* forget train-vae: the latent autoencoder a latent-space UNet works in (train/vae_trainer.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "train/vae_trainer.h"

static int run(int argc, char **argv);

const Command cmd_train_vae = {
    "train-vae", "train the latent autoencoder of a latent diffusion model",
    "usage: forget train-vae [--data fmnist:train] [--net vae-f4] [--side 32] [--batch 32] [--steps 1500]\n"
    "                        [--lr 1e-3] [--kl-weight 1e-6] [--limit N] [--seed S] [--out FILE] [--json]\n"
    "\n"
    "Stable Diffusion's autoencoder shape (diffusers' AutoencoderKL keys), trained on the images' pixels\n"
    "with an L1 reconstruction loss and a small KL term; the file holds the latent scaling factor (1 / std\n"
    "of the posterior means). A killed run resumes from FILE.ckpt. forget train-diffusion --vae FILE then\n"
    "trains the UNet on its latents.\n",
    run};

static int run(int argc, char **argv) {
    VaeTrainOpts o;
    vae_train_defaults(&o);
    int json = 0, quiet = 0, fresh = 0;
    const Opt opts[] = {
        O_STR("--data", "SET:SPLIT", &o.data, 0, "training images"),
        opt_bind(OPT_DATA_DIR, &o.data_dir),
        O_STR("--net", "NAME", &o.net, 0, "vae-f4 (default: 32 px -> 8x8x4), vae-tiny, sd-vae"),
        O_INT("--side", "PX", &o.side, 4, 1024, "image side"),
        O_INT("--batch", "B", &o.batch, 1, 4096, "images per step"),
        O_LONG("--steps", "N", &o.steps, 1, 100000000, "training steps"),
        O_DBL("--lr", "LR", &o.lr, 0, 1, OPT_OPEN, "AdamW learning rate"),
        O_DBL("--kl-weight", "W", &o.kl_weight, 0, 1, 0, "weight of the KL term"),
        O_INT("--limit", "N", &o.limit, 0, 1 << 30, "use the first N training images"),
        opt_bind(OPT_CKPT_EVERY, &o.ckpt_every),
        opt_bind(OPT_STOP_AFTER, &o.stop_after),
        opt_bind(OPT_FRESH, &fresh),
        O_STR("--out", "FILE", &o.out, 0, "the autoencoder file"),
        opt_bind(OPT_SEED, &o.seed),
        opt_bind(OPT_QUIET, &quiet),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_train_vae, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    o.fresh = fresh, o.quiet = quiet || json;
    Err e = {{0}};
    VaeTrainResult r;
    if (vae_train(&o, &r, &e)) return cli_error("train-vae", EXIT_WORK, "%s", e.msg);
    if (r.steps_done < o.steps) {
        printf("train-vae: stopped after step %ld of %ld (checkpoint kept; rerun to resume)\n", r.steps_done, o.steps);
        return 0;
    }
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", o.out);
        cJSON_AddNumberToObject(j, "params", (double)r.n_params);
        cJSON_AddNumberToObject(j, "steps", (double)r.steps_done);
        cJSON_AddNumberToObject(j, "l1_last_tenth", r.l1_last);
        cJSON_AddNumberToObject(j, "scaling_factor", r.scale);
        cJSON_AddNumberToObject(j, "seconds", r.seconds);
        cJSON_AddNumberToObject(j, "images_per_s", r.images_per_s);
        const int rc = cli_json_line("train-vae", j);
        cJSON_Delete(j);
        return rc;
    }
    printf("train-vae: %s (%ld parameters) after %ld steps: L1 %.4f a pixel value (last tenth, [-1, 1] scale), "
           "scaling factor %.4f, %.0f s, %.1f images/s\n",
           o.out, r.n_params, r.steps_done, r.l1_last, r.scale, r.seconds, r.images_per_s);
    return 0;
}
