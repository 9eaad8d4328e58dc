/* Issue 10's holes seen from the command line: NaN weights, FIFOs as models and images,
 * over-long --out paths that lost the model, the API key off the command line, forget verify. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_run.h"
#include "models/clip.h"
#include "serve/fixture.h"
#include "test.h"

TEST(cli_hardening_nan_weights_are_named_not_printed) {
    ClipConfig cfg;
    CHECK(clip_config_named(&cfg, "tiny") == 0);
    ClipModel m;
    clip_init_random(&m, &cfg, 7);
    for (long i = 0; i < m.n_params; i++) m.params[i] = NAN; /* every weight: whatever the tower reads */
    char *path = xasprintf("%s/nan.safetensors", scratch_dir());
    Err e = {{0}};
    CHECK(clip_save(&m, path, LAYOUT_OPENAI, ST_F32, &e) == 0);
    clip_free(&m);
    char *o;
    /* before: exit 139 (lab[-1] printed) */
    CHECK_INT(run(&o, "classify --model %s --image %s/preprocess/rgb_50x37.png --labels a,b", path, ref_dir()), 1);
    CHECK_MSG(strstr(o, "is not finite: tensor '") && strstr(o, "holds NaN"), "got: %s", o);
    free(o);
    CHECK_INT(run(&o, "classify --check --model %s --image %s/preprocess/rgb_50x37.png --labels a,b --json", path, ref_dir()), 1);
    CHECK_MSG(strstr(o, "holds NaN at element 0") && !strstr(o, "\"prob\""), "got: %s", o);
    free(o);
    static const char *checked[] = {"info --check --model %s", "eval zeroshot --check --samples 10 --dataset fmnist:test --model %s",
                                     "embed --check --text x --model %s"};
    for (int i = 0; i < 3; i++) {
        CHECK_INT(run(&o, checked[i], path), 1);
        CHECK_MSG(strstr(o, "holds NaN at element 0"), "%s: %s", checked[i], o);
        free(o);
    }
    CHECK_INT(run(&o, "eval zeroshot --samples 10 --dataset fmnist:test --model %s", path), 1); /* before: 100 %% top-1 */
    CHECK_MSG(strstr(o, "a logit is not finite: tensor '"), "got: %s", o);
    free(o);
    CHECK_INT(run(&o, "verify %s", path), 1);
    CHECK_MSG(strstr(o, "holds a NaN or an infinity"), "got: %s", o);
    free(o);
    free(path);
}

TEST(cli_hardening_fifo_model_and_image_do_not_hang) {
    char *fifo = xasprintf("%s/model.fifo", scratch_dir()), *o;
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK_INT(run(&o, "info --model %s", fifo), 1); /* before: hung in open() */
    CHECK_MSG(strstr(o, "is a FIFO, expected a regular file"), "got: %s", o);
    free(o);
    CHECK_INT(run(&o, "classify --model %s/tiny/model.safetensors --image %s --labels a,b", ref_dir(), fifo), 1);
    CHECK_MSG(strstr(o, "is a FIFO"), "got: %s", o);
    free(o);
    CHECK_INT(run(&o, "classify --model %s/tiny/model.safetensors --image %s --labels a,b", ref_dir(), scratch_dir()), 1);
    CHECK_MSG(strstr(o, "is a directory"), "got: %s", o);
    free(o);
    unlink(fifo);
    free(fifo);
}

TEST(cli_hardening_train_out_with_a_1023_character_path_keeps_the_model) {
    char *dir = deep_scratch_dir(900);
    const size_t pad = 1023 - strlen(dir) - 1 - strlen(".safetensors");
    char *name = xmalloc(pad + 1);
    memset(name, 'm', pad), name[pad] = 0;
    char *out = xasprintf("%s/%s.safetensors", dir, name), *o;
    CHECK_INT(strlen(out), 1023);
    CHECK_INT(run(&o, "train --dataset fmnist:train --limit 40 --config fmnist-xs --batch 20 --epochs 1 --fresh --quiet --out %s",
                  out),
              0);
    free(o);
    struct stat st;
    CHECK_MSG(stat(out, &st) == 0 && st.st_size > 1000, "the model is gone"); /* before: "wrote" and nothing there */
    CHECK_INT(run(&o, "verify %s", out), 0);
    CHECK_MSG(strstr(o, "every digest matches"), "got: %s", o);
    free(o);
    free(out), free(name), free(dir);
}

TEST(cli_hardening_api_key_from_file_or_environment) {
    char *o;
    CHECK_INT(run(&o, "serve --help"), 0);
    CHECK(strstr(o, "--api-key-file") && strstr(o, "FORGET_API_KEY") && strstr(o, "ps"));
    free(o);
    CHECK_INT(run(&o, "blackbox --help"), 0);
    CHECK(strstr(o, "--api-key-file") && strstr(o, "FORGET_API_KEY"));
    free(o);
    char *empty = xasprintf("%s/empty.key", scratch_dir());
    FILE *f = fopen(empty, "w");
    fputs("\n", f);
    fclose(f);
    CHECK_INT(run(&o, "blackbox --api http://127.0.0.1:9 --forget a --api-key-file %s", empty), 1);
    CHECK_MSG(strstr(o, "the first line is empty"), "got: %s", o);
    free(o);
    /* end to end: a server that wants a key, the key given through the environment only */
    BbServer *s = tiny_server((ServerOpts){.api_key = "sesame"}, NULL, 0);
    if (s) {
        const int port = bb_server_port(s);
        const char *search = "blackbox --api http://127.0.0.1:%d --forget 0 --method random --budget 30 --shots 2 --vocab 50 --quiet";
        char *cmd = xasprintf(search, port);
        CHECK_INT(run(&o, "%s", cmd), 1);
        CHECK_MSG(strstr(o, "HTTP 401"), "got: %s", o);
        free(o);
        setenv("FORGET_API_KEY", "sesame", 1);
        CHECK_INT(run(&o, "%s", cmd), 0);
        unsetenv("FORGET_API_KEY");
        free(o), free(cmd);
        bb_server_stop(s);
    }
    CHECK_INT(run(&o, "serve --model x --dataset fmnist --api-key-file /nonexistent/key"), 1);
    CHECK_MSG(strstr(o, "--api-key-file: /nonexistent/key: cannot open"), "got: %s", o);
    free(o);
    free(empty);
}
