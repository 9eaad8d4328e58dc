#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
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
    long size = 0;
    int done = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_common(&cmd_preprocess, argc, argv, &i, &done, &bad)) {
            if (done) return 0;
            if (bad) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--size") == 0) {
            const char *v = cli_value("preprocess", argc, argv, &i);
            if (!v || cli_int("preprocess", "--size", v, 1, 8192, &size)) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--image") == 0) {
            if (!(image = cli_value("preprocess", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--out") == 0) {
            if (!(out = cli_value("preprocess", argc, argv, &i))) return EXIT_USAGE;
        } else {
            return cli_error("preprocess", EXIT_USAGE, "unknown argument %s (forget help preprocess)", argv[i]);
        }
    }
    if (!image || !out || !size) return cli_error("preprocess", EXIT_USAGE, "--size, --image and --out are required");
    Image8 im;
    Err e = {{0}};
    if (image_load(&im, image, &e) != 0) return cli_error("preprocess", EXIT_WORK, "%s", e.msg);
    size_t n = (size_t)3 * size * size;
    float *px = malloc(n * sizeof(float));
    clip_preprocess(&im, (int)size, px);
    image_free(&im);
    int rc = write_file_atomic(out, px, n * sizeof(float), &e) ? cli_error("preprocess", EXIT_WORK, "%s", e.msg) : 0;
    free(px);
    return rc;
}
