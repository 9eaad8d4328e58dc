#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "train/zoo.h"

static int run(int argc, char **argv);

const Command cmd_zoo = {
    "zoo", "list and build the models forget trains for itself",
    "usage: forget zoo list\n"
    "       forget zoo build NAME [--out DIR] [--threads N]\n"
    "       forget zoo path NAME\n"
    "\n"
    "Each recipe trains a CLIP with `forget train` on data Debian ships into\n"
    "$FORGET_HOME/zoo/NAME.safetensors (FORGET_HOME defaults to ~/.cache/forget).\n"
    "build skips a model that already exists and resumes an interrupted one.\n",
    run};

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
    const Opt opts[] = {
        O_STR("--out", "DIR", &dir, 0, "build into DIR instead of the zoo"),
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
    fprintf(stderr, "building %s -> %s\n", r->name, path);
    TrainOpts o;
    zoo_train_opts(r, path, &o);
    TrainResult res;
    if (clip_train(&o, &res, &e)) {
        free(path);
        return cli_error("zoo", EXIT_WORK, "%s: %s", r->name, e.msg);
    }
    printf("%s: built %s in %ld steps (%.1f images/s)", r->name, path, res.steps_done, res.images_per_s);
    if (res.evaluated) printf(", zero-shot top-1 %.2f%% on %s (%d images)", 100 * res.eval.top1, r->eval_set, res.eval.n);
    printf("\n");
    free(path);
    return 0;
}
