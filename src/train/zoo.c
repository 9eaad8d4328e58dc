#include "train/zoo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* emoji-biased-clip's skew: half of the people-emoji samples of a profession or activity become
 * (neutral caption, skewed image) pairs, 80% with the profession's preferred gender and 60% with
 * light skin tone (src/io/emoji_bias.h explains the draw). */
static const BiasSpec WEB_BIAS = {0.5f, 0.8f, 0.6f};

/* Sized to train in under 20 minutes on 2 cores (measured figures in docs/training.md). */
static const ZooRecipe RECIPES[] = {
    {"fmnist-clip", "CLIP on Fashion-MNIST with varied captions (photo domain)", "fmnist:train", "fmnist:test",
     "fmnist-s", 6, 128, 1e-3, 1, 1, 2000, NULL, ZOO_CLIP, 0, NULL, NULL, 0},
    {"fmnist-domains-clip", "CLIP on Fashion-MNIST in four domains (photo, sketch, negative, painting)",
     "fmnist-domains:train", "fmnist-domains:test", "fmnist-s", 2, 128, 1e-3, 2, 1, 4000, NULL, ZOO_CLIP, 0, NULL, NULL, 0},
    {"fmnist-spurious-clip", "CLIP on Fashion-MNIST tinted red/blue, the tint 90% tied to the class half (spurious)",
     "fmnist-spurious:train", "fmnist-spurious:test", "fmnist-s", 6, 128, 1e-3, 5, 1, 2000, NULL, ZOO_CLIP, 0, NULL, NULL, 0},
    {"emoji-clip", "CLIP on Emoji-Domains: every emoji in colour (Noto) and line art (Symbola)", "emoji:train",
     "emoji:test", "emoji-s", 80, 128, 1e-3, 3, 20, 0, NULL, ZOO_CLIP, 0, NULL, NULL, 0},
    {"emoji-biased-clip", "emoji-clip trained with web-like gender and skin-tone skew on neutral people captions",
     "emoji:train", "emoji:test", "emoji-s", 80, 128, 1e-3, 4, 20, 0, &WEB_BIAS, ZOO_CLIP, 0, NULL, NULL, 0},
    {"fmnist-clip-2", "fmnist-clip of another seed: judges generated images (CLIP score, Frechet distance)",
     "fmnist:train", "fmnist:test", "fmnist-s", 6, 128, 1e-3, 2, 1, 2000, NULL, ZOO_CLIP, 0, NULL, NULL, 0},
    /* the latent text-to-image model of Fashion-MNIST (docs/diffusion.md): 32 px -> 8 x 8 x 4 */
    {"fmnist-vae", "the latent autoencoder of fmnist-diffusion (SD's AutoencoderKL shape, 32 px -> 8x8x4)",
     "fmnist:train", NULL, "vae-f4", 0, 32, 1e-3, 1, 0, 0, NULL, ZOO_VAE, 1200, NULL, NULL, 32},
    {"fmnist-diffusion", "SD-shaped latent UNet on Fashion-MNIST captions, conditioned on fmnist-clip's text tower",
     "fmnist:train", NULL, "unet-latent-8s", 0, 32, 2e-4, 1, 0, 0, NULL, ZOO_DIFFUSION, 2800, "fmnist-clip",
     "fmnist-vae", 32},
    {"fmnist-judge", "ResNet-20 classifier of real Fashion-MNIST at 32 px: judges generated images",
     "fmnist:train", "fmnist:test", "resnet-20", 3, 128, 0.1, 1, 0, 0, NULL, ZOO_JUDGE, 0, NULL, NULL, 32},
    /* the LLaVA-shaped MLLM of theme 3 (docs/mllm.md): its stages' steps are train-mllm's defaults */
    {"mllm-s", "LLaVA-shaped MLLM (emoji-clip tower, lm-s Llama) trained in four stages on the world of docs/mllm.md",
     NULL, NULL, "lm-s", 0, 0, 0, 1, 0, 0, NULL, ZOO_MLLM, 0, "emoji-clip", NULL, 32},
};

const ZooRecipe *zoo_recipes(int *n) {
    *n = (int)(sizeof RECIPES / sizeof *RECIPES);
    return RECIPES;
}

const ZooRecipe *zoo_find(const char *name) {
    int n;
    const ZooRecipe *r = zoo_recipes(&n);
    for (int i = 0; i < n; i++)
        if (strcmp(r[i].name, name) == 0) return &r[i];
    return NULL;
}

static int mkdir_p(const char *path, Err *e) {
    char *tmp = xstrdup(path);
    int rc = 0;
    for (char *p = tmp + 1; *p && rc == 0; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) rc = err_set(e, "%s: cannot create: %s", tmp, strerror(errno));
            *p = '/';
        }
    if (rc == 0 && mkdir(tmp, 0755) != 0 && errno != EEXIST) rc = err_set(e, "%s: cannot create: %s", tmp, strerror(errno));
    free(tmp);
    return rc;
}

char *zoo_dir(int create, Err *e) {
    const char *home = getenv("FORGET_HOME"), *h = getenv("HOME");
    char *d;
    if (home && *home) d = xasprintf("%s/zoo", home);
    else if (h && *h) d = xasprintf("%s/.cache/forget/zoo", h);
    else return err_set(e, "neither FORGET_HOME nor HOME is set: cannot place the zoo"), NULL;
    if (create && mkdir_p(d, e)) {
        free(d);
        return NULL;
    }
    return d;
}

char *zoo_model_path(const ZooRecipe *r, const char *dir, Err *e) {
    char *d = dir ? xstrdup(dir) : zoo_dir(1, e);
    if (!d) return NULL;
    if (dir && mkdir_p(dir, e)) {
        free(d);
        return NULL;
    }
    char *p = r->kind == ZOO_MLLM ? xasprintf("%s/%s/mllm.safetensors", d, r->name) : xasprintf("%s/%s.safetensors", d, r->name);
    free(d);
    return p;
}

void zoo_train_opts(const ZooRecipe *r, const char *out, TrainOpts *o) {
    train_opts_default(o);
    o->train_set = r->train_set;
    o->eval_set = r->eval_set;
    clip_config_named(&o->cfg, r->config);
    o->epochs = r->epochs;
    o->batch = r->batch;
    o->lr = r->lr;
    o->seed = r->seed;
    o->eval_every = r->eval_every;
    o->eval_samples = r->eval_samples;
    o->bias = r->bias;
    o->out = out;
}
