#include <string.h>

#include "cli/cli.h"

static int run(int argc, char **argv);

const Command cmd_convert = {
    "convert", "rewrite a checkpoint in another key layout or dtype",
    "usage: forget convert --model IN --out OUT [--layout openai|hf] [--dtype f32|f16|bf16]\n"
    "\n"
    "Reads a CLIP checkpoint in either key layout and writes it in the chosen one\n"
    "(default: openai, f32). Head counts and the activation go into __metadata__ so\n"
    "the output reloads with the same architecture. logit_scale is always F32.\n"
    "The output is written to a temporary file and renamed when complete.\n",
    run};

static int run(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *layout = "openai", *dtype = "f32";
    int done = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_common(&cmd_convert, argc, argv, &i, &done, &bad)) {
            if (done) return 0;
            if (bad) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--model") == 0) {
            if (!(in = cli_value("convert", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--out") == 0) {
            if (!(out = cli_value("convert", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--layout") == 0) {
            if (!(layout = cli_value("convert", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(argv[i], "--dtype") == 0) {
            if (!(dtype = cli_value("convert", argc, argv, &i))) return EXIT_USAGE;
        } else {
            return cli_error("convert", EXIT_USAGE, "unknown argument %s (forget help convert)", argv[i]);
        }
    }
    if (!in || !out) return cli_error("convert", EXIT_USAGE, "--model and --out are required");
    ClipLayout lay;
    StDtype dt;
    if (cli_layout("convert", layout, &lay) || cli_dtype("convert", dtype, &dt)) return EXIT_USAGE;
    ClipModel m;
    if (cli_load_model("convert", in, &m, -1)) return EXIT_WORK;
    Err e = {{0}};
    int rc = clip_save(&m, out, lay, dt, &e) ? cli_error("convert", EXIT_WORK, "%s", e.msg) : 0;
    clip_free(&m);
    return rc;
}
