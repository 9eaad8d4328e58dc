#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "forget/debias.h"
#include "io/atomic_file.h"
#include "models/clip_encode.h"
#include "io/file_open.h"

static int run(int argc, char **argv);

const Command cmd_embed = {
    "embed", "CLIP features of texts or images",
    "usage: forget embed --model FILE (--text TEXT... | --image PATH... | --pixels FILE.f32 --shape N,3,H,W)\n"
    "                    [--out FILE.f32] [--debias FILE] [--json] [--gelu] [--check] [--threads N]\n"
    "\n"
    "Prints the unnormalised encode_text / encode_image features, one row per input.\n"
    "With --out the rows are written as raw little-endian float32 (N x embed_dim);\n"
    "otherwise (or with --json as well) they go to standard output as JSON:\n"
    "  {\"model\": ..., \"kind\": \"text\"|\"image\", \"dim\": D, \"features\": [[...], ...]}\n"
    "\n"
    "  --text TEXT...        texts (every following argument up to the next option)\n"
    "  --image PATH...       PNG or JPEG files, preprocessed as CLIP does\n"
    "  --pixels FILE.f32     already-normalised pixels, float32 N x 3 x H x W, with --shape\n"
    "  --gelu                use erf GELU instead of the checkpoint's activation (open_clip non-quickgelu)\n"
    "  --debias FILE         apply a debiasing written by forget debias / forget experiment bias\n"
    "  --template T          with --debias: the texts are subjects put into T (\"an emoji of {}.\"), which\n"
    "                        bend-vlm needs to build its attribute-augmented versions (default \"{}\")\n",
    run};

/* Collects the non-option arguments after argv[*i]. */
static int collect(int argc, char **argv, int *i, const char ***out) {
    int start = *i + 1, n = 0;
    while (start + n < argc && strncmp(argv[start + n], "--", 2) != 0) n++;
    *out = (const char **)(argv + start);
    *i += n;
    return n;
}

static int read_pixels(const char *path, const char *shape, int R, float **px, int *count) {
    int n, c, h, w;
    if (sscanf(shape, "%d,%d,%d,%d", &n, &c, &h, &w) != 4 || n <= 0 || c != 3 || h != R || w != R)
        return cli_error("embed", EXIT_USAGE, "--shape must be N,3,%d,%d for this model, got \"%s\"", R, R, shape);
    Err fe = {{0}};
    FILE *f = fopen_regular(path, &fe);
    if (!f) return cli_error("embed", EXIT_WORK, "%s", fe.msg);
    size_t want = (size_t)n * 3 * R * R;
    *px = malloc(want * sizeof(float) + 1);
    size_t got = fread(*px, sizeof(float), want + 1, f);
    fclose(f);
    if (got != want) {
        free(*px);
        *px = NULL;
        return cli_error("embed", EXIT_WORK, "%s: holds %zu floats, --shape %s needs exactly %zu", path, got, shape, want);
    }
    *count = n;
    return 0;
}

static int run(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *pixels = NULL, *shape = NULL, *debias = NULL, *tpl = "{}";
    const char **texts = NULL, **images = NULL;
    int n_text = 0, n_image = 0, json = 0, gelu = 0, done = 0, bad = 0, check = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_common(&cmd_embed, argc, argv, &i, &done, &bad)) {
            if (done) return 0;
            if (bad) return EXIT_USAGE;
        } else if (strcmp(a, "--model") == 0) {
            if (!(model = cli_value("embed", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(a, "--out") == 0) {
            if (!(out = cli_value("embed", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(a, "--template") == 0) {
            if (!(tpl = cli_value("embed", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(a, "--debias") == 0) {
            if (!(debias = cli_value("embed", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(a, "--pixels") == 0) {
            if (!(pixels = cli_value("embed", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(a, "--shape") == 0) {
            if (!(shape = cli_value("embed", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(a, "--text") == 0) {
            n_text = collect(argc, argv, &i, &texts);
        } else if (strcmp(a, "--image") == 0) {
            n_image = collect(argc, argv, &i, &images);
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--check") == 0) {
            check = 1; /* every weight verified finite at load */
        } else if (strcmp(a, "--gelu") == 0) {
            gelu = 1;
        } else {
            return cli_error("embed", EXIT_USAGE, "unknown argument %s (forget help embed)", a);
        }
    }
    if (!model) return cli_error("embed", EXIT_USAGE, "--model FILE is required");
    if ((n_text > 0) + (n_image > 0) + (pixels != NULL) != 1)
        return cli_error("embed", EXIT_USAGE, "give exactly one of --text, --image, --pixels (with at least one input)");
    if (pixels && !shape) return cli_error("embed", EXIT_USAGE, "--pixels needs --shape N,3,H,W");
    ClipModel m;
    if (cli_load_model_checked("embed", model, &m, gelu ? ACT_GELU : -1, check)) return EXIT_WORK;
    const int E = m.cfg.embed_dim;
    int n = n_text ? n_text : n_image;
    float *feat = NULL, *px = NULL;
    Err e = {{0}};
    int rc = 0;
    if (pixels) {
        if ((rc = read_pixels(pixels, shape, m.cfg.image_res, &px, &n)) != 0) goto done;
    }
    feat = malloc(sizeof(float) * (size_t)n * E);
    Debias db = {0};
    if (debias && debias_load(&db, debias, &e) != 0) rc = EXIT_WORK;
    else if (debias && db.D != E && err_set(&e, "%s is for %d-dimensional features, the model has %d", debias, db.D, E)) rc = EXIT_WORK;
    else if (n_text) {
        Tokenizer t;
        if (tokenizer_init(&t, &e) != 0 ||
            (debias ? debias_encode_texts(&db, &m, &t, tpl, texts, n, feat, &e) : clip_encode_texts(&m, &t, texts, n, feat, &e)) != 0)
            rc = EXIT_WORK;
        tokenizer_free(&t);
    } else if (n_image) {
        if (clip_encode_image_files(&m, images, n, feat, &e) != 0) rc = EXIT_WORK;
    } else {
        if (clip_encode_image(&m, px, n, feat, NULL, &e) != 0) rc = EXIT_WORK;
    }
    if (rc == 0 && debias && !n_text) debias_images(&db, feat, n);
    debias_free(&db);
    if (rc) {
        cli_error("embed", rc, "%s", e.msg);
        goto done;
    }
    if (out && write_file_atomic(out, feat, sizeof(float) * (size_t)n * E, &e) != 0) {
        rc = cli_error("embed", EXIT_WORK, "%s", e.msg);
        goto done;
    }
    if (!out || json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "model", model);
        cJSON_AddStringToObject(root, "kind", n_text ? "text" : "image");
        cJSON_AddNumberToObject(root, "dim", E);
        cJSON *rows = cJSON_AddArrayToObject(root, "features");
        for (int i = 0; i < n; i++) cJSON_AddItemToArray(rows, cJSON_CreateFloatArray(feat + (size_t)i * E, E));
        if (cli_json_line("embed", root)) rc = EXIT_WORK;
        cJSON_Delete(root);
    }
done:
    free(feat);
    free(px);
    clip_free(&m);
    return rc;
}
