/* forget generate: images from a prompt through a trained UNet (models/text2image.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "core/progress.h"
#include "io/image.h"
#include "io/text_render.h"
#include "forget/diffusion/erase.h"
#include "models/text2image.h"

static int run(int argc, char **argv);

const Command cmd_generate = {
    "generate", "images from a text prompt through a trained diffusion UNet",
    "usage: forget generate --model UNET --text-encoder CLIP [--vae FILE] --prompt TEXT [--n 16] [--steps 50] [--cfg 7.5]\n"
    "                       [--sampler ddim|ddpm] [--batch 16] [--seed S] --out grid.png [--out-dir DIR]\n"
    "                       [--escape FILE] [--sld FILE] [--weighted W:TEXT ...]\n"
    "\n"
    "Samples --n images of the prompt with classifier-free guidance of scale --cfg (1: no guidance) over\n"
    "--steps of the UNet's schedule: DDIM (eta 0, deterministic) or ancestral DDPM. Image i depends only\n"
    "on --seed and i, not on --batch. --out writes them as one grid PNG (several --prompt: one row each,\n"
    "in order), captioned with the prompts; --out-dir also as one PNG each. --weighted parts make one more\n"
    "prompt whose conditioning is sum_i W_i E(TEXT_i), as /v1/generate's weighted prompts.\n",
    run};

/* Tiles n images [side, side, 3] into a grid of `cols` columns with a 2-pixel border, captioned:
 * one prompt above the grid, several (one a row) to the left of their rows. */
static int grid_of(const uint8_t *rgb, int n, int side, int cols, const char *const *prompts, int K, Image8 *out,
                   Err *e) {
    const int rows = (n + cols - 1) / cols, gap = 2, px = side >= 32 ? 12 : 9;
    TextRenderer *tr = text_renderer_new(NULL, px, e);
    if (!tr) return -1;
    int left = 0, top = 0;
    if (K > 1)
        for (int k = 0; k < K; k++) {
            const int w = text_width(tr, prompts[k]) + 2 * gap;
            left = w > left ? w : left;
        }
    else top = text_line_height(tr) + gap;
    out->w = left + cols * (side + gap) + gap, out->h = top + rows * (side + gap) + gap, out->channels = 3;
    const int caption = K == 1 ? text_width(tr, prompts[0]) + 2 * gap : 0;
    if (caption > out->w) out->w = caption;
    out->px = xmalloc((size_t)out->w * out->h * 3);
    memset(out->px, 255, (size_t)out->w * out->h * 3);
    if (K > 1)
        for (int k = 0; k < K; k++)
            text_draw(tr, out, gap, gap + k * (side + gap) + side / 2 + text_ascent(tr) / 2, left - gap, prompts[k]);
    else
        text_draw(tr, out, gap, gap + text_ascent(tr), out->w - 2 * gap, prompts[0]);
    text_renderer_free(tr);
    image_tile(rgb, n, side, cols, gap, left, top, out);
    return 0;
}

static int run(int argc, char **argv) {
    const char *model = NULL, *clip = NULL, *vae = NULL, *out = NULL, *out_dir = NULL, *sampler = "ddim";
    const char *escape = NULL, *sld = NULL;
    OptValues prompts = {0}, weighted = {0};
    int n = 16, steps = 50, batch = 16, quiet = 0, precision = PREC_FP32;
    float cfg = 7.5f;
    uint64_t seed = 0;
    const Opt opts[] = {
        O_STR("--model", "UNET", &model, 0, "the trained UNet (forget train-diffusion)"),
        O_STR("--text-encoder", "CLIP", &clip, 0, "the CLIP it was trained on"),
        O_STR("--vae", "FILE", &vae, 0, "the autoencoder of a latent model (default: the one its file names)"),
        O_VALS("--prompt", "TEXT", &prompts, "what to draw; several: one grid row each"),
        O_VALS("--weighted", "W:TEXT", &weighted, "parts of one weighted prompt (weight, colon, text), one more row"),
        O_INT("--n", "N", &n, 1, 4096, "images"),
        O_INT("--steps", "K", &steps, 1, 100000, "sampling steps"),
        O_FLT("--cfg", "W", &cfg, 0, 100, 0, "guidance scale (1: none)"),
        O_STR("--sampler", "NAME", &sampler, 0, "ddim (default) or ddpm"),
        O_INT("--batch", "B", &batch, 1, 4096, "images a UNet call"),
        O_STR("--out", "FILE", &out, 0, "the grid PNG (required)"),
        O_STR("--out-dir", "DIR", &out_dir, 0, "also one PNG an image, DIR/NNNN.png"),
        O_STR("--escape", "FILE", &escape, 0, "escape tokens placed after SOT of every prompt (forget erase --method escape)"),
        O_STR("--sld", "FILE", &sld, 0, "safe latent diffusion guidance (forget erase --method sld)"),
        opt_bind(OPT_SEED, &seed),
        opt_bind(OPT_PRECISION, &precision),
        opt_bind(OPT_QUIET, &quiet),
        O_END,
    };
    const int st = cli_parse(&cmd_generate, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    if (!model || !clip || !(prompts.n || weighted.n) || !out)
        return cli_error("generate", EXIT_USAGE, "--model, --text-encoder, --prompt and --out are required");
    WeightedPrompt *parts = weighted.n ? xcalloc((size_t)weighted.n, sizeof *parts) : NULL;
    for (int i = 0; i < weighted.n; i++) { /* "W:TEXT" */
        char *end = NULL;
        const double w = strtod(weighted.v[i], &end);
        if (end == weighted.v[i] || *end != ':' || !isfinite(w) || fabs(w) > 100) {
            free(parts);
            return cli_error("generate", EXIT_USAGE, "--weighted \"%s\": expected WEIGHT:TEXT, a weight in -100..100",
                             weighted.v[i]);
        }
        parts[i] = (WeightedPrompt){end + 1, (float)w};
    }
    SamplerKind sk;
    if (diffusion_sampler_parse(sampler, &sk)) return cli_error("generate", EXIT_USAGE, "--sampler %s: expected ddim or ddpm", sampler);
    Err e = {{0}};
    Text2Image g;
    if (t2i_load(&g, model, clip, vae, &e)) return free(parts), cli_error("generate", EXIT_WORK, "%s", e.msg);
    if (t2i_set_precision(&g, (Precision)precision, &e) || erase_apply_files(&g, escape, sld, &e)) {
        t2i_free(&g), free(parts);
        return cli_error("generate", EXIT_WORK, "%s", e.msg);
    }
    const int side = g.image_side;
    const int K = prompts.n + (weighted.n ? 1 : 0), total = K * n;
    const char **captions = xcalloc((size_t)K, sizeof(char *));
    char *wcap = NULL;
    for (int k = 0; k < prompts.n; k++) captions[k] = prompts.v[k];
    if (weighted.n) { /* "0.5 x a + 0.5 x b" */
        size_t cap = 1;
        for (int i = 0; i < weighted.n; i++) cap += strlen(parts[i].text) + 32;
        wcap = xmalloc(cap);
        size_t at = 0;
        for (int i = 0; i < weighted.n; i++)
            at += (size_t)snprintf(wcap + at, cap - at, "%s%g x %s", i ? " + " : "", (double)parts[i].weight, parts[i].text);
        captions[K - 1] = wcap;
    }
    uint8_t *rgb = xmalloc((size_t)total * side * side * 3);
    Progress bar;
    progress_start(&bar, "generate", (long)total * steps, quiet);
    int rc = 0;
    for (int k = 0; k < K && !rc; k++) { /* prompt k's image i from (seed, i): the same as alone */
        const SampleSpec sp = {.steps = steps, .cfg = cfg, .sampler = sk, .seed = seed, .batch = batch, .bar = NULL};
        uint8_t *dst = rgb + (size_t)k * n * side * side * 3;
        if (k < prompts.n) {
            const char *p = prompts.v[k];
            rc = t2i_generate(&g, &p, 1, n, &sp, dst, &e);
        } else {
            float *cond = xalloc_floats((size_t)g.ctx_len * g.unet.cfg.ctx_dim);
            rc = t2i_encode_weighted(&g, parts, weighted.n, cond, &e);
            if (!rc) rc = t2i_generate_cond(&g, cond, 1, n, &sp, dst, &e);
            free(cond);
        }
        progress_update(&bar, (long)(k + 1) * n * steps, 1.0 / steps, "img", NULL);
    }
    progress_end(&bar);
    if (!rc) {
        int cols = 1;
        while (cols * cols < n) cols++;
        if (K > 1) cols = n; /* one row a prompt */
        Image8 grid = {0};
        rc = grid_of(rgb, total, side, cols, captions, K, &grid, &e);
        if (!rc) rc = image_save_png(&grid, out, &e);
        free(grid.px);
    }
    if (!rc && out_dir) {
        if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) rc = err_set(&e, "%s: cannot create: %s", out_dir, strerror(errno));
        for (int i = 0; i < total && !rc; i++) {
            char *p = xasprintf("%s/%04d.png", out_dir, i);
            Image8 im = {side, side, 3, rgb + (size_t)i * side * side * 3};
            rc = image_save_png(&im, p, &e);
            free(p);
        }
    }
    free(rgb), free(parts);
    t2i_free(&g);
    if (rc) return free(captions), free(wcap), cli_error("generate", EXIT_WORK, "%s", e.msg);
    if (!quiet)
        printf("generate: %d images of %d prompt%s (\"%s\"%s) -> %s%s%s\n", total, K, K > 1 ? "s" : "", captions[0],
               K > 1 ? ", ..." : "", out, out_dir ? " and " : "", out_dir ? out_dir : "");
    free(captions), free(wcap);
    return 0;
}
