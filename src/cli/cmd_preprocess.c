#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "io/preprocess.h"

static int run(int argc, char **argv);

const Command cmd_preprocess = {
    "preprocess", "CLIP image transform to raw float32",
    "usage: forget preprocess --size N --image PATH --out FILE.f32\n"
    "\n"
    "Decodes a PNG or JPEG and applies CLIP's transform exactly as the Python code\n"
    "does (Pillow bicubic resize of the shorter side to N, centre crop N x N, RGB,\n"
    "normalise with CLIP's mean and std). Writes 3 x N x N float32 (CHW, little-endian).\n",
    run};

static int run(int argc, char **argv) {
    const char *image = NULL, *out = NULL;
    int size = 0;
    const Opt opts[] = {
        {.name = "--size", .metavar = "N", .type = OPT_INT, .lo = 1, .hi = 8192, .flags = OPT_REQUIRED,
         .help = "output side (CLIP's input resolution)", .dst = &size},
        O_STR("--image", "PATH", &image, OPT_REQUIRED, "a PNG or JPEG"),
        O_STR("--out", "FILE.f32", &out, OPT_REQUIRED, "3 x N x N float32"),
        O_END,
    };
    const int st = cli_parse(&cmd_preprocess, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    Image8 im;
    Err e = {{0}};
    if (image_load(&im, image, &e) != 0) return cli_error("preprocess", EXIT_WORK, "%s", e.msg);
    size_t n = (size_t)3 * size * size;
    float *px = xalloc_floats(n);
    clip_preprocess(&im, size, px);
    image_free(&im);
    int rc = write_file_atomic(out, px, n * sizeof(float), &e) ? cli_error("preprocess", EXIT_WORK, "%s", e.msg) : 0;
    free(px);
    return rc;
}
