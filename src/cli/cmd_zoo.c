#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "train/diffusion_trainer.h"
#include "train/judge_trainer.h"
#include "train/vae_trainer.h"
#include "train/mllm_trainer.h"
#include "train/zoo.h"

static int run(int argc, char **argv);

const Command cmd_zoo = {
    "zoo", "list and build the models forget trains for itself",
    "usage: forget zoo list\n"
    "       forget zoo build NAME [--out DIR] [--precision fp32|bf16] [--threads N]\n"
    "       forget zoo path NAME\n"
    "\n"
    "Each recipe trains a model on data Debian ships into $FORGET_HOME/zoo/NAME.safetensors\n"
    "(FORGET_HOME defaults to ~/.cache/forget): a CLIP with `forget train`, or the parts of a\n"
    "latent text-to-image model with `forget train-vae` and `forget train-diffusion`, and its judge\n"
    "with `forget train-judge`. A recipe builds the recipes it needs first (fmnist-diffusion: fmnist-clip\n"
    "and fmnist-vae). build skips a model that already exists and resumes an interrupted one.\n"
    "--precision bf16 trains a CLIP recipe in mixed precision (fp32 master weights, bf16 products;\n"
    "docs/precision.md); its dependencies are built in fp32. Use --out to keep it beside the fp32 one.\n",
    run};

static int build(const ZooRecipe *r, const char *dir, const char *path, int precision, Err *e);

/* The model of recipe NAME, built first when missing; malloc'd path, or NULL with e set. */
static char *dependency(const char *name, const char *dir, Err *e) {
    const ZooRecipe *d = zoo_find(name);
    if (!d) return err_set(e, "recipe %s is missing from the zoo", name), NULL;
    char *p = zoo_model_path(d, dir, e);
    if (p && access(p, F_OK) != 0 && build(d, dir, p, PREC_FP32, e)) {
        free(p);
        return NULL;
    }
    return p;
}

static int build(const ZooRecipe *r, const char *dir, const char *path, int precision, Err *e) {
    if (access(path, F_OK) == 0) return 0;
    if (precision != PREC_FP32 && r->kind != ZOO_CLIP)
        return err_set(e, "--precision %s: only the CLIP recipes train in mixed precision so far",
                       precision_name((Precision)precision));
    fprintf(stderr, "building %s -> %s\n", r->name, path);
    int rc = 0;
    if (r->kind == ZOO_CLIP) {
        TrainOpts o;
        zoo_train_opts(r, path, &o);
        o.precision = (Precision)precision;
        TrainResult res;
        if ((rc = clip_train(&o, &res, e)) == 0) {
            printf("%s: built %s in %ld steps (%.1f images/s)", r->name, path, res.steps_done, res.images_per_s);
            if (res.evaluated)
                printf(", zero-shot top-1 %.2f%% on %s (%d images)", 100 * res.eval.top1, r->eval_set, res.eval.n);
            printf("\n");
        }
    } else if (r->kind == ZOO_VAE) {
        VaeTrainOpts o;
        vae_train_defaults(&o);
        o.data = r->train_set, o.net = r->config, o.out = path, o.side = r->side, o.batch = r->batch;
        o.steps = r->steps, o.lr = r->lr, o.seed = r->seed;
        VaeTrainResult res;
        if ((rc = vae_train(&o, &res, e)) == 0)
            printf("%s: built %s in %ld steps (%.0f s, %.1f images/s): L1 %.4f, scaling factor %.4f\n", r->name, path,
                   res.steps_done, res.seconds, res.images_per_s, res.l1_last, res.scale);
    } else if (r->kind == ZOO_DIFFUSION) {
        char *clip = dependency(r->text_encoder, dir, e), *vae = clip ? dependency(r->vae, dir, e) : NULL;
        if (!clip || !vae) rc = -1;
        if (!rc) {
            DiffTrainOpts o;
            diffusion_train_defaults(&o);
            o.data = r->train_set, o.net = r->config, o.text_encoder = clip, o.vae = vae, o.side = r->side;
            o.batch = r->batch, o.steps = r->steps, o.lr = r->lr, o.seed = r->seed, o.out = path;
            DiffTrainResult res;
            if ((rc = diffusion_train(&o, &res, e)) == 0)
                printf("%s: built %s in %ld steps (%.0f s, %.1f images/s), loss %.4f\n", r->name, path, res.steps_done,
                       res.seconds, res.images_per_s, res.mean_loss_last);
        }
        free(clip), free(vae);
    } else if (r->kind == ZOO_MLLM) {
        char *tower = dependency(r->text_encoder, dir, e);
        if (!tower) rc = -1;
        if (!rc) {
            MllmTrainOpts o;
            mllm_train_defaults(&o);
            char *d = xstrdup(path);
            *strrchr(d, '/') = 0; /* zoo/NAME/ holds the stages and the tokenizer */
            o.dir = d, o.tower = tower, o.lm_config = r->config, o.seed = r->seed;
            if ((rc = mllm_train_stages(&o, e)) == 0) printf("%s: built %s\n", r->name, path);
            else if (rc > 0) rc = err_set(e, "%s: stopped early", r->name);
            free(d);
        }
        free(tower);
    } else {
        JudgeTrainOpts o;
        judge_train_defaults(&o);
        o.data = r->train_set, o.test = r->eval_set, o.net = r->config, o.side = r->side, o.batch = r->batch;
        o.epochs = r->epochs, o.lr = r->lr, o.seed = r->seed, o.out = path;
        JudgeTrainResult res;
        if ((rc = judge_train(&o, &res, e)) == 0)
            printf("%s: built %s (%.0f s): %.2f%% on %s\n", r->name, path, res.seconds, 100 * res.test_accuracy,
                   r->eval_set);
    }
    return rc;
}

static int run(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(cmd_zoo.help, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    Err e = {{0}};
    int n;
    const ZooRecipe *rs = zoo_recipes(&n);
    if (strcmp(argv[1], "list") == 0) {
        for (int i = 0; i < n; i++) {
            char *path = zoo_model_path(&rs[i], NULL, &e);
            int built = path && access(path, F_OK) == 0;
            free(path);
            printf("%-22s %-8s %s\n", rs[i].name, built ? "built" : "-", rs[i].summary);
        }
        return 0;
    }
    if ((strcmp(argv[1], "build") != 0 && strcmp(argv[1], "path") != 0) || argc < 3)
        return cli_error("zoo", EXIT_USAGE, "expected: zoo list | zoo build NAME | zoo path NAME");
    const ZooRecipe *r = zoo_find(argv[2]);
    if (!r) return cli_error("zoo", EXIT_USAGE, "no recipe \"%s\" (forget zoo list)", argv[2]);
    const char *dir = NULL;
    int precision = PREC_FP32;
    const Opt opts[] = {
        O_STR("--out", "DIR", &dir, 0, "build into DIR instead of the zoo"),
        opt_bind(OPT_PRECISION, &precision),
        O_END,
    };
    const int st = cli_parse(&cmd_zoo, argc, argv, 3, opts, NULL);
    if (st >= 0) return st;
    char *path = zoo_model_path(r, dir, &e);
    if (!path) return cli_error("zoo", EXIT_WORK, "%s", e.msg);
    if (strcmp(argv[1], "path") == 0 || access(path, F_OK) == 0) {
        if (strcmp(argv[1], "path") == 0) puts(path);
        else printf("%s: already built (%s)\n", r->name, path);
        free(path);
        return 0;
    }
    const int rc = build(r, dir, path, precision, &e);
    free(path);
    return rc ? cli_error("zoo", EXIT_WORK, "%s: %s", r->name, e.msg) : 0;
}
