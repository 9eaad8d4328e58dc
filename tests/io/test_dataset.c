/* IDX / Fashion-MNIST loading on fixtures written here (well-formed and broken),
 * the four domains, captions, and the trainer on a tiny config: loss goes down,
 * and a run killed and resumed ends with the same weights as an uninterrupted one. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/captions.h"
#include "io/dataset.h"
#include "io/dataset_cifar.h"
#include "io/dataset_fmnist_variants.h"
#include "io/dataset_folder.h"
#include "io/dataset_idx.h"
#include "io/safetensors.h"
#include "train/clip_trainer.h"
#include "test.h"

/* Writes gzip'd IDX files in `dir` named like Fashion-MNIST's: n images of class i%10,
 * each a class-specific pattern (a bar whose position and width depend on the class). */
static void write_fixture(const char *dir, const char *prefix, int n, int corrupt) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    gzFile f = gzopen(path, "wb");
    uint8_t hdr[16] = {0, 0, 8, 3, 0, 0, (uint8_t)(n >> 8), (uint8_t)n, 0, 0, 0, 28, 0, 0, 0, 28};
    gzwrite(f, hdr, 16);
    int write_n = corrupt ? n - 1 : n; /* corrupt: one image short */
    for (int i = 0; i < write_n; i++) {
        uint8_t img[28 * 28] = {0};
        int c = i % 10;
        for (int y = 2; y < 26; y++)
            for (int x = 2 + c * 2; x < 6 + c * 2; x++) img[y * 28 + x] = (uint8_t)(120 + 12 * c + (i * 7) % 9);
        gzwrite(f, img, sizeof img);
    }
    gzclose(f);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    f = gzopen(path, "wb");
    uint8_t lh[8] = {0, 0, 8, 1, 0, 0, (uint8_t)(n >> 8), (uint8_t)n};
    gzwrite(f, lh, 8);
    for (int i = 0; i < n; i++) {
        uint8_t l = (uint8_t)(i % 10);
        gzwrite(f, &l, 1);
    }
    gzclose(f);
}

TEST(dataset_fmnist_fixture_loads_and_malformed_fails) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/fm", scratch_dir());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    CHECK(system(cmd) == 0);
    write_fixture(dir, "train", 200, 0);
    write_fixture(dir, "t10k", 50, 1);
    Dataset d;
    Err e = {{0}};
    CHECK_MSG(dataset_load_fmnist(&d, dir, "train", &e) == 0, "%s", e.msg);
    CHECK(d.n == 200 && d.h == 28 && d.w == 28 && d.n_classes == 10);
    CHECK(strcmp(d.class_names[9], "ankle boot") == 0);
    CHECK_INT(d.labels[13], 3);
    dataset_free(&d);
    CHECK(dataset_load_fmnist(&d, dir, "test", &e) != 0 && strstr(e.msg, "file ends early") && strstr(e.msg, "t10k-images"));
    CHECK(dataset_load_fmnist(&d, dir, "validation", &e) != 0 && strstr(e.msg, "unknown split"));
    CHECK(dataset_load_fmnist(&d, "/nonexistent", "train", &e) != 0 && strstr(e.msg, "dataset-fashion-mnist"));
    /* a bad magic number names the byte */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/bad-images.idx", dir);
    FILE *f = fopen(bad, "wb");
    fwrite("\x00\x00\x09\x03", 1, 4, f);
    fclose(f);
    uint8_t *px;
    int n, h, w;
    CHECK(idx_load_images(bad, &px, &n, &h, &w, &e) != 0 && strstr(e.msg, "byte 0: IDX magic"));
    /* labels and images of different counts */
    char lab[700];
    snprintf(lab, sizeof lab, "%s/t10k-labels-idx1-ubyte.gz", dir);
    char img[700];
    snprintf(img, sizeof img, "%s/train-images-idx3-ubyte.gz", dir);
    CHECK(dataset_load_idx(&d, img, lab, &e) != 0 && strstr(e.msg, "200 images") && strstr(e.msg, "50 labels"));
}

TEST(dataset_domains_are_deterministic_and_distinct) {
    uint8_t src[28 * 28], a[28 * 28], b[28 * 28];
    for (int i = 0; i < 28 * 28; i++) src[i] = (uint8_t)((i % 28 > 8 && i % 28 < 20 && i / 28 > 4) ? 200 : 0);
    for (int d = 0; d < N_FMNIST_DOMAINS; d++) {
        fmnist_render_domain(src, a, 28, 28, (FmnistDomain)d, 5);
        fmnist_render_domain(src, b, 28, 28, (FmnistDomain)d, 5);
        CHECK(memcmp(a, b, sizeof a) == 0);
        if (d == DOMAIN_PHOTO) CHECK(memcmp(a, src, sizeof a) == 0);
        if (d == DOMAIN_NEGATIVE) CHECK_INT(a[0], 255);
        if (d == DOMAIN_SKETCH) CHECK_INT(a[0], 255); /* flat regions are white paper */
        if (d == DOMAIN_PAINTING) CHECK(memcmp(a, src, sizeof a) != 0);
    }
}

TEST(captions_vary_and_name_class) {
    uint8_t img[28 * 28] = {0};
    Rng r;
    rng_seed(&r, 1);
    int distinct = 0, with_domain = 0;
    char prev[256] = "";
    for (int i = 0; i < 50; i++) {
        char c[256];
        caption_make(c, sizeof c, &CAPTIONS_DEFAULT, "ankle boot", "sketch", NULL, img, 28, 28, 1, &r);
        CHECK_MSG(strstr(c, "ankle boot") != NULL, "caption without the class: %s", c);
        distinct += strcmp(c, prev) != 0;
        with_domain += strstr(c, "sketch") != NULL;
        snprintf(prev, sizeof prev, "%s", c);
    }
    CHECK(distinct > 25);
    CHECK(with_domain > 10 && with_domain < 50);
}

static void tiny_train_opts(TrainOpts *o, const char *dir, const char *out) {
    train_opts_default(o);
    o->train_set = "fmnist:train";
    o->data_dir = dir;
    o->cfg = (ClipConfig){.embed_dim = 32, .has_vision = 1, .image_res = 28, .patch = 7, .v_width = 32, .v_layers = 1,
                          .v_heads = 2, .has_text = 1, .context = 77, .vocab = 49408, .t_width = 32, .t_layers = 1,
                          .t_heads = 2, .act = ACT_QUICKGELU};
    o->epochs = 15;
    o->batch = 20;
    o->lr = 5e-3;
    o->ckpt_every = 4;
    o->out = out;
    o->quiet = 1;
    o->fresh = 1;
}

TEST(trainer_lowers_loss_and_resume_equals_uninterrupted) {
    char dir[512], out_a[600], out_b[600], cmd[700];
    snprintf(dir, sizeof dir, "%s/fmt", scratch_dir());
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    CHECK(system(cmd) == 0);
    write_fixture(dir, "train", 200, 0);
    snprintf(out_a, sizeof out_a, "%s/a.safetensors", dir);
    snprintf(out_b, sizeof out_b, "%s/b.safetensors", dir);
    TrainOpts o;
    TrainResult r;
    Err e = {{0}};

    tiny_train_opts(&o, dir, out_a);
    o.stop_after = 1;
    CHECK_MSG(clip_train(&o, &r, &e) == 0, "%s", e.msg);
    double first = r.last_loss;
    CHECK(!r.finished);

    tiny_train_opts(&o, dir, out_a);
    CHECK_MSG(clip_train(&o, &r, &e) == 0, "%s", e.msg);
    CHECK(r.finished && r.steps_done == 150);
    CHECK_MSG(r.last_loss < 0.8 * first, "loss %.4f -> %.4f", first, r.last_loss);

    /* killed after 7 steps (checkpoint written there), then resumed to the end */
    tiny_train_opts(&o, dir, out_b);
    o.stop_after = 7;
    CHECK(clip_train(&o, &r, &e) == 0 && !r.finished && r.steps_done == 7);
    tiny_train_opts(&o, dir, out_b);
    o.fresh = 0;
    CHECK_MSG(clip_train(&o, &r, &e) == 0, "%s", e.msg);
    CHECK(r.finished && r.steps_done == 150);

    size_t na, nb;
    uint8_t *a = read_whole(out_a, &na), *b = read_whole(out_b, &nb);
    CHECK_MSG(a && b && na == nb && memcmp(a, b, na) == 0, "resumed model differs from the uninterrupted one");
    free(a);
    free(b);

    /* a checkpoint from another recipe is refused, not silently mixed */
    tiny_train_opts(&o, dir, out_b);
    o.stop_after = 2;
    CHECK(clip_train(&o, &r, &e) == 0);
    tiny_train_opts(&o, dir, out_b);
    o.fresh = 0;
    o.lr = 1e-4;
    CHECK(clip_train(&o, &r, &e) != 0 && strstr(e.msg, "different recipe"));
}

TEST(captions_from_a_template_file) {
    char path[600];
    snprintf(path, sizeof path, "%s/templates.txt", scratch_dir());
    FILE *f = fopen(path, "w");
    fputs("# mine\n\nitem: {}\n", f);
    fclose(f);
    CaptionStyle st;
    Err e = {{0}};
    CHECK_MSG(caption_style_load(&st, path, &e) == 0, "%s", e.msg);
    CHECK_INT(st.n_templates, 1);
    uint8_t img[28 * 28] = {0};
    Rng r;
    rng_seed(&r, 2);
    char c[256];
    caption_make(c, sizeof c, &st, "coat", "sketch", NULL, img, 28, 28, 1, &r);
    CHECK_MSG(strncmp(c, "item: coat", 10) == 0, "caption: %s", c);
    caption_style_free(&st);
    f = fopen(path, "a");
    fputs("no placeholder\n", f);
    fclose(f);
    CHECK(caption_style_load(&st, path, &e) != 0 && strstr(e.msg, "templates.txt:4:"));
}
