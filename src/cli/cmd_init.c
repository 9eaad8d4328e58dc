#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static int run(int argc, char **argv);

const Command cmd_init = {
    "init", "write a CLIP checkpoint with seeded random weights",
    "usage: forget init --config vit-b-32|vit-b-16|tiny --out FILE [--seed S] [--layout openai|hf] [--dtype f32|f16|bf16]\n"
    "\n"
    "Builds a CLIP of a named shape with CLIP's own initialisation scales from --seed\n"
    "(default 0) and saves it: a starting point for training, and a full-size model\n"
    "for benchmarks and memory checks when no released weights are at hand.\n",
    run};

static int run(int argc, char **argv) {
    const char *config = NULL, *out = NULL, *layout = "openai", *dtype = "f32";
    long seed = 0;
    int done = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_common(&cmd_init, argc, argv, &i, &done, &bad)) {
            if (done) return 0;
            if (bad) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--config") == 0) {
            if (!(config = cli_value("init", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--out") == 0) {
            if (!(out = cli_value("init", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--layout") == 0) {
            if (!(layout = cli_value("init", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--dtype") == 0) {
            if (!(dtype = cli_value("init", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--seed") == 0) {
            const char *v = cli_value("init", argc, argv, &i);
            if (!v || cli_int("init", "--seed", v, 0, 2147483647L, &seed)) return EXIT_USAGE;
        } else {
            return cli_error("init", EXIT_USAGE, "unknown argument %s (forget help init)", argv[i]);
        }
    }
    if (!config || !out) return cli_error("init", EXIT_USAGE, "--config and --out are required");
    ClipConfig cfg;
    if (clip_config_named(&cfg, config) != 0)
        return cli_error("init", EXIT_USAGE, "unknown --config \"%s\" (vit-b-32, vit-b-16, tiny)", config);
    ClipLayout lay;
    StDtype dt;
    if (cli_layout("init", layout, &lay) || cli_dtype("init", dtype, &dt)) return EXIT_USAGE;
    ClipModel m;
    clip_init_random(&m, &cfg, (uint64_t)seed);
    Err e = {{0}};
    int rc = clip_save(&m, out, lay, dt, &e) ? cli_error("init", EXIT_WORK, "%s", e.msg) : 0;
    clip_free(&m);
    return rc;
}
