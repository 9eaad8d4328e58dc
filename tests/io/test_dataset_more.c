/* CIFAR binary batches, image folders and caption lists, on files written here. */
#include <stdlib.h>
#include <string.h>

#include "io/dataset.h"
#include "io/dataset_cifar.h"
#include "io/dataset_fmnist_variants.h"
#include "io/dataset_folder.h"
#include "io/dataset_idx.h"
#include "io/image.h"
#include "test.h"

static void mkdirs(const char *p) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
    CHECK(system(cmd) == 0);
}

/* n records; CIFAR-100 records carry (coarse, fine); pixel planes encode the index. */
static void write_cifar(const char *path, int n, int c100, int bad_label) {
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < n; i++) {
        uint8_t rec[2 + 3072];
        int k = 0;
        if (c100) rec[k++] = (uint8_t)(i % 20), rec[k++] = (uint8_t)(bad_label && i == n - 1 ? 150 : i % 100);
        else rec[k++] = (uint8_t)(bad_label && i == n - 1 ? 11 : i % 10);
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 1024; p++) rec[k++] = (uint8_t)(c * 80 + i);
        fwrite(rec, 1, (size_t)k, f);
    }
    fclose(f);
}

TEST(dataset_cifar_binary_formats) {
    char dir[600], p[700], meta[700];
    snprintf(dir, sizeof dir, "%s/cifar", scratch_dir());
    mkdirs(dir);
    for (int b = 1; b <= 5; b++) {
        snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, b);
        write_cifar(p, 6, 0, 0);
    }
    snprintf(meta, sizeof meta, "%s/batches.meta.txt", dir);
    FILE *f = fopen(meta, "w");
    fputs("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n", f);
    fclose(f);
    Dataset d;
    Err e = {{0}};
    CHECK_MSG(dataset_load_named(&d, "cifar10:train", dir, &e) == 0, "%s", e.msg);
    CHECK(d.n == 30 && d.channels == 3 && d.h == 32 && d.n_classes == 10);
    CHECK(strcmp(d.class_names[3], "cat") == 0);
    CHECK_INT(d.labels[5], 5);
    CHECK_INT(d.labels[7], 1); /* second batch starts again at record 0 */
    const uint8_t *im = dataset_image(&d, 4); /* record 4 of batch 1: R=4, G=84, B=164, interleaved */
    CHECK(im[0] == 4 && im[1] == 84 && im[2] == 164 && im[3] == 4);
    dataset_free(&d);

    snprintf(p, sizeof p, "%s/train.bin", dir);
    write_cifar(p, 7, 1, 0);
    snprintf(meta, sizeof meta, "%s/fine_label_names.txt", dir);
    f = fopen(meta, "w");
    for (int i = 0; i < 100; i++) fprintf(f, "%s\n", i == 1 ? "aquarium_fish" : "thing");
    fclose(f);
    CHECK_MSG(dataset_load_named(&d, "cifar100:train", dir, &e) == 0, "%s", e.msg);
    CHECK(d.n == 7 && d.n_classes == 100 && d.labels[5] == 5);
    CHECK(strcmp(d.class_names[1], "aquarium fish") == 0);
    dataset_free(&d);

    /* truncated file and out-of-range label */
    snprintf(p, sizeof p, "%s/test.bin", dir);
    write_cifar(p, 3, 1, 1);
    CHECK(dataset_load_named(&d, "cifar100:test", dir, &e) != 0 && strstr(e.msg, "label 150"));
    FILE *t = fopen(p, "ab");
    fputc(1, t);
    fclose(t);
    CHECK(dataset_load_named(&d, "cifar100:test", dir, &e) != 0 && strstr(e.msg, "not a whole number"));
    CHECK(dataset_load_named(&d, "cifar10:train", NULL, &e) != 0 && strstr(e.msg, "--data-dir"));
}

TEST(dataset_image_folder_and_caption_list) {
    char root[600], sub[700], path[800];
    snprintf(root, sizeof root, "%s/folder", scratch_dir());
    const char *classes[2] = {"dog", "cat"};
    for (int c = 0; c < 2; c++) {
        snprintf(sub, sizeof sub, "%s/%s", root, classes[c]);
        mkdirs(sub);
        for (int i = 0; i < 2 + c; i++) {
            Image8 im = {.w = 40 + i, .h = 30, .channels = 3};
            im.px = malloc((size_t)im.w * im.h * 3);
            memset(im.px, c ? 200 : 50, (size_t)im.w * im.h * 3);
            snprintf(path, sizeof path, "%s/%d.png", sub, i);
            Err e;
            CHECK(image_save_png(&im, path, &e) == 0);
            free(im.px);
        }
    }
    Dataset d;
    Err e = {{0}};
    char spec[700];
    snprintf(spec, sizeof spec, "folder:%s", root);
    CHECK_MSG(dataset_load_folder(&d, root, 24, &e) == 0, "%s", e.msg);
    CHECK(d.n == 5 && d.n_classes == 2 && strcmp(d.class_names[0], "cat") == 0); /* sorted: cat, dog */
    CHECK(d.labels[0] == 0 && d.labels[4] == 1);
    CHECK(dataset_image(&d, 0)[0] == 200 && dataset_image(&d, 4)[0] == 50);
    dataset_free(&d);
    /* a broken image is an error naming it */
    snprintf(path, sizeof path, "%s/dog/broken.png", root);
    FILE *f = fopen(path, "wb");
    fputs("\x89PNG\r\n\x1a\n garbage", f);
    fclose(f);
    CHECK(dataset_load_folder(&d, root, 24, &e) != 0 && strstr(e.msg, "broken.png"));

    char tsv[700];
    snprintf(tsv, sizeof tsv, "%s/captions.tsv", root);
    f = fopen(tsv, "w");
    fputs("# path\tcaption\ncat/0.png\ta white cat\n/abs/x.png\tan absolute path\n", f);
    fclose(f);
    CaptionList cl;
    CHECK_MSG(caption_list_load(&cl, tsv, &e) == 0, "%s", e.msg);
    CHECK(cl.n == 2 && strcmp(cl.captions[0], "a white cat") == 0 && strstr(cl.paths[0], "/folder/cat/0.png"));
    CHECK(strcmp(cl.paths[1], "/abs/x.png") == 0);
    caption_list_free(&cl);
    f = fopen(tsv, "a");
    fputs("no tab on this line\n", f);
    fclose(f);
    CHECK(caption_list_load(&cl, tsv, &e) != 0 && strstr(e.msg, "captions.tsv:4:"));
}

/* fmnist-spurious: the tint follows the class half 90% of the time in training, half the time in
 * test; pixels are the grey value times the tint. */
TEST(dataset_spurious_tint_proportions) {
    enum { N = 4000 };
    Dataset base = {0};
    base.n = N, base.h = 2, base.w = 2, base.channels = 1, base.n_classes = 10;
    base.pixels = calloc((size_t)N * 4, 1);
    base.labels = malloc(sizeof(int32_t) * N);
    base.class_names = calloc(10, sizeof(char *));
    for (int c = 0; c < 10; c++) base.class_names[c] = strdup("c");
    for (int i = 0; i < N; i++) base.labels[i] = i % 10, base.pixels[i * 4] = 200;
    for (int train = 0; train < 2; train++) {
        Dataset d;
        dataset_tint_spurious(&d, &base, train);
        CHECK(d.channels == 3 && d.n == N && d.n_domains == 2 && strcmp(d.domain_names[0], "red photo") == 0);
        int usual = 0;
        for (int i = 0; i < N; i++) usual += d.domains[i] == (d.labels[i] < 5 ? 0 : 1);
        const double share = (double)usual / N;
        if (train) CHECK_MSG(share > 0.88 && share < 0.92, "train: usual tint %.3f", share);
        else CHECK_MSG(share > 0.46 && share < 0.54, "test: usual tint %.3f", share);
        /* red: (v, 0.3 v, 0.3 v); blue: (0.3 v, 0.45 v, v) */
        for (int i = 0; i < 20; i++) {
            const uint8_t *p = d.pixels + (size_t)i * 12;
            if (d.domains[i] == 0) CHECK(p[0] == 200 && p[1] == 60 && p[2] == 60);
            else CHECK(p[0] == 60 && p[1] == 90 && p[2] == 200);
        }
        dataset_free(&d);
    }
    dataset_free(&base);
}
