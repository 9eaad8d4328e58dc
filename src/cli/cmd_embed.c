#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
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

static int read_pixels(const char *path, const char *shape, int R, float **px, int *count) {
    int n, c, h, w;
    if (sscanf(shape, "%d,%d,%d,%d", &n, &c, &h, &w) != 4 || n <= 0 || c != 3 || h != R || w != R)
        return cli_error("embed", EXIT_USAGE, "--shape must be N,3,%d,%d for this model, got \"%s\"", R, R, shape);
    Err fe = {{0}};
    FILE *f = fopen_regular(path, &fe);
    if (!f) return cli_error("embed", EXIT_WORK, "%s", fe.msg);
    size_t want = (size_t)n * 3 * R * R;
    *px = xalloc_floats(want + 1);
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
    OptValues texts = {0}, images = {0};
    int json = 0, gelu = 0, check = 0, precision = PREC_FP32;
    const Opt opts[] = {
        O_STR("--model", "FILE", &model, OPT_REQUIRED, "the CLIP model"),
        O_VALS("--text", "TEXT...", &texts, "texts to embed"),
        O_VALS("--image", "PATH...", &images, "PNG or JPEG files to embed"),
        O_STR("--pixels", "FILE", &pixels, 0, "preprocessed float32 images (with --shape)"),
        O_STR("--shape", "N,3,H,W", &shape, 0, "the shape of --pixels"),
        O_STR("--out", "FILE", &out, 0, "write the features as float32 (else JSON on stdout)"),
        O_STR("--debias", "FILE", &debias, 0, "a debiasing transform (forget debias)"),
        O_STR("--template", "T", &tpl, 0, "the prompt template bend-vlm builds its versions from"),
        O_FLAG("--gelu", &gelu, "the checkpoint uses erf GELU (open_clip non-quickgelu)"),
        opt_bind(OPT_CHECK, &check),
        opt_bind(OPT_PRECISION, &precision),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_embed, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    const int n_text = texts.n, n_image = images.n;
    if ((n_text > 0) + (n_image > 0) + (pixels != NULL) != 1)
        return cli_error("embed", EXIT_USAGE, "give exactly one of --text, --image, --pixels (with at least one input)");
    if (pixels && !shape) return cli_error("embed", EXIT_USAGE, "--pixels needs --shape N,3,H,W");
    ClipModel m;
    if (cli_load_model_checked("embed", model, &m, gelu ? ACT_GELU : -1, check, precision)) return EXIT_WORK;
    const int E = m.cfg.embed_dim;
    int n = n_text ? n_text : n_image;
    float *feat = NULL, *px = NULL;
    Err e = {{0}};
    int rc = 0;
    if (pixels) {
        if ((rc = read_pixels(pixels, shape, m.cfg.image_res, &px, &n)) != 0) goto done;
    }
    feat = xalloc_floats((size_t)n * E);
    Debias db = {0};
    if (debias && debias_load(&db, debias, &e) != 0) rc = EXIT_WORK;
    else if (debias && db.D != E && err_set(&e, "%s is for %d-dimensional features, the model has %d", debias, db.D, E)) rc = EXIT_WORK;
    else if (n_text) {
        Tokenizer t;
        if (tokenizer_init(&t, &e) != 0 ||
            (debias ? debias_encode_texts(&db, &m, &t, tpl, texts.v, n, feat, &e) : clip_encode_texts(&m, &t, texts.v, n, feat, &e)) != 0)
            rc = EXIT_WORK;
        tokenizer_free(&t);
    } else if (n_image) {
        if (clip_encode_image_files(&m, images.v, n, feat, &e) != 0) rc = EXIT_WORK;
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
