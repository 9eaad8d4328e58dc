/* The forget binary end to end: each command's output, exit codes and errors. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "models/clip.h"
#include "cli/cli_run.h"
#include "test.h"

TEST(cli_help_for_every_command) {
    static const char *cmds[] = {"tokenize", "embed", "preprocess", "classify", "info", "convert", "init", "bench", "train", "eval", "zoo", "serve", "blackbox", "experiment", "debias", "verify", "datasets"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        char *o;
        CHECK_INT(run(&o, "help %s", cmds[i]), 0);
        CHECK_MSG(strstr(o, "usage: forget") != NULL, "help %s: %s", cmds[i], o);
        free(o);
        CHECK_INT(run(&o, "%s --help", cmds[i]), 0);
        CHECK(strstr(o, "usage: forget") != NULL);
        free(o);
    }
    char *o;
    CHECK_INT(run(&o, "frobnicate"), 2);
    CHECK(strstr(o, "no command \"frobnicate\""));
    free(o);
    CHECK_INT(run(NULL, "embed --bogus"), 2);
}

TEST(cli_tokenize_matches_reference_lines) {
    char *o;
    CHECK_INT(run(&o, "tokenize 'a photo of a cat.' 'A Dog'\"'\"'s life!!! 123 &amp; more'"), 0);
    CHECK_MSG(strcmp(o, "49406 320 1125 539 320 2368 269 49407\n49406 320 1929 568 970 995 272 273 274 261 750 49407\n") == 0,
              "got: %s", o);
    free(o);
    char path[512];
    snprintf(path, sizeof path, "%s/t.jsonl", scratch_dir());
    FILE *f = fopen(path, "w");
    fputs("\"a diagram\"\n\"\"\n", f);
    fclose(f);
    CHECK_INT(run(&o, "tokenize --json --jsonl %s", path), 0);
    CHECK_MSG(strcmp(o, "[49406,320,22697,49407]\n[49406,49407]\n") == 0, "got: %s", o);
    free(o);
    f = fopen(path, "w");
    fputs("\"ok\"\nnot json\n", f);
    fclose(f);
    CHECK_INT(run(&o, "tokenize --jsonl %s", path), 1);
    CHECK_MSG(strstr(o, ":2: expected one JSON string") != NULL, "got: %s", o);
    free(o);
    CHECK_INT(run(&o, "tokenize --context 1 x"), 2);
    free(o);
}

TEST(cli_embed_classify_info_convert_on_tiny_model) {
    char model[1024], *o;
    snprintf(model, sizeof model, "%s/tiny/model.safetensors", ref_dir());
    CHECK_INT(run(&o, "info --model %s --json", model), 0);
    CHECK_MSG(strstr(o, "\"layout\":\"openai\"") && strstr(o, "\"heads\":2"), "got: %s", o);
    free(o);

    /* embed --pixels with the reference images gives the reference features */
    char out[512], px[1024];
    snprintf(out, sizeof out, "%s/f.f32", scratch_dir());
    snprintf(px, sizeof px, "%s/tiny/images.f32", ref_dir());
    CHECK_INT(run(&o, "embed --model %s --pixels %s --shape 4,3,32,32 --out %s", model, px, out), 0);
    free(o);
    size_t n;
    float *got = read_whole(out, &n), *want = read_ref("tiny/image_features.f32", NULL);
    CHECK_INT(n, 4 * 32 * 4);
    if (got && want && n == 4 * 32 * 4) CHECK_CLOSE(got, want, 4 * 32, 1e-4, 1e-4);
    free(got);
    free(want);
    CHECK_INT(run(&o, "embed --model %s --pixels %s --shape 5,3,32,32", model, px), 1);
    CHECK(strstr(o, "holds 12288 floats"));
    free(o);

    /* text features of the first reference text */
    CHECK_INT(run(&o, "embed --model %s --text 'a photo of a cat.' --json", model), 0);
    CHECK(strstr(o, "\"kind\":\"text\"") && strstr(o, "\"dim\":32"));
    free(o);

    /* classify real PNGs */
    CHECK_INT(run(&o, "classify --model %s --image %s/preprocess/rgb_50x37.png %s/preprocess/gray_181x257.png "
                      "--labels 'cat, dog,bird' --top 2 --json",
                  model, ref_dir(), ref_dir()),
              0);
    CHECK_MSG(strstr(o, "\"top\":[{\"label\":") && strstr(o, "gray_181x257.png"), "got: %s", o);
    free(o);
    CHECK_INT(run(&o, "classify --model %s --image /nonexistent.png --labels a,b", model), 1);
    CHECK(strstr(o, "/nonexistent.png"));
    free(o);

    /* convert to HF + f16 and back: info reports the layout, features stay close */
    char hf[512];
    snprintf(hf, sizeof hf, "%s/hf.safetensors", scratch_dir());
    CHECK_INT(run(&o, "convert --model %s --out %s --layout hf --dtype f16", model, hf), 0);
    free(o);
    CHECK_INT(run(&o, "info --model %s", hf), 0);
    CHECK(strstr(o, "layout      hf") && strstr(o, "F16"));
    free(o);
    CHECK_INT(run(&o, "convert --model %s --out %s --layout weird", model, hf), 2);
    free(o);
    CHECK_INT(run(&o, "info --model %s/tokenizer.tsv", ref_dir()), 1);
    CHECK(strstr(o, "tokenizer.tsv"));
    free(o);
}

TEST(cli_preprocess_writes_reference_tensor) {
    char out[512], *o;
    snprintf(out, sizeof out, "%s/p.f32", scratch_dir());
    CHECK_INT(run(&o, "preprocess --size 224 --image %s/preprocess/rgba_97x160.png --out %s", ref_dir(), out), 0);
    free(o);
    size_t n;
    float *got = read_whole(out, &n), *want = read_ref("preprocess/rgba_97x160.f32", NULL);
    CHECK_INT(n, 3 * 224 * 224 * 4);
    if (got && want && n == 3 * 224 * 224 * 4) CHECK_CLOSE(got, want, 3 * 224 * 224, 1e-4, 0);
    free(got);
    free(want);
}

TEST(cli_bench_tiny_json) {
    char *o;
    CHECK_INT(run(&o, "bench clip --config tiny --batch 4 --iters 1 --json"), 0);
    CHECK_MSG(strstr(o, "\"images_per_s\":") && strstr(o, "\"sgemm_gflops\":"), "got: %s", o);
    free(o);
}

/* Both query streams of the black-box bench on a tiny tower: a JSON line with every rate, and
 * the search stream timed (its population is the strict methods' 30). */
TEST(cli_bench_blackbox_tiny_json) {
    char *o;
    CHECK_INT(run(&o, "bench blackbox --config tiny --pop 4 --iters 1 --search-iters 2 --json"), 0);
    CHECK_MSG(strstr(o, "\"queries_per_s_cache\":") && strstr(o, "\"search_queries\":60,") &&
                  strstr(o, "\"search_speedup\":") && !strstr(o, "\"search_speedup\":0.000"),
              "got: %s", o);
    free(o);
}

TEST(cli_train_eval_zoo_on_fashion_mnist) {
    char out[600], *o;
    snprintf(out, sizeof out, "%s/xs.safetensors", scratch_dir());
    CHECK_INT(run(&o, "train --dataset fmnist:train --limit 200 --config fmnist-xs --batch 20 --epochs 1 "
                      "--eval fmnist:test --eval-samples 100 --fresh --quiet --json --out %s",
                  out),
              0);
    CHECK_MSG(strstr(o, "\"finished\":true") && strstr(o, "\"top1\":"), "got: %s", o);
    free(o);
    CHECK_INT(run(&o, "eval zeroshot --model %s --dataset fmnist-domains:test --samples 80 --json", out), 0);
    CHECK_MSG(strstr(o, "\"per_domain\":{\"photo\":{") && strstr(o, "\"painting\":"), "got: %s", o);
    free(o);
    CHECK_INT(run(&o, "eval zeroshot --model %s --dataset nosuch:test", out), 1);
    CHECK(strstr(o, "unknown dataset"));
    free(o);
    CHECK_INT(run(&o, "train --dataset fmnist:train --out %s", out), 2);
    free(o);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "FORGET_HOME=%s %s zoo path fmnist-clip", scratch_dir(), getenv("FORGET_BIN") ? getenv("FORGET_BIN") : "bin/forget");
    FILE *p = popen(cmd, "r");
    char line[700] = "";
    if (p && fgets(line, sizeof line, p)) {
        char want[700];
        snprintf(want, sizeof want, "%s/zoo/fmnist-clip.safetensors\n", scratch_dir());
        CHECK_MSG(strcmp(line, want) == 0, "zoo path: %s", line);
    }
    if (p) pclose(p);
    CHECK_INT(run(&o, "zoo build no-such-model"), 2);
    free(o);
    CHECK_INT(run(&o, "zoo list"), 0);
    CHECK(strstr(o, "fmnist-domains-clip"));
    free(o);
}

/* The debiasing commands refuse bad input before any long work, naming the file and line. */
TEST(cli_debias_bad_input_is_named) {
    char model[1024], vocab[600], queries[600], vision[600];
    snprintf(model, sizeof model, "%s/tiny/model.safetensors", ref_dir());
    snprintf(vocab, sizeof vocab, "%s/vocab.txt", scratch_dir());
    snprintf(queries, sizeof queries, "%s/queries.tsv", scratch_dir());
    snprintf(vision, sizeof vision, "%s/vision-only.safetensors", scratch_dir());
    FILE *f = fopen(vocab, "w");
    fputs("# general words\napple\nriver stone\n\nbad\tcolumn\nhouse\n", f);
    fclose(f);
    char *o;
    CHECK_INT(run(&o, "experiment bias --model %s --setting emoji --vocab-file %s --out %s/b1", model, vocab, scratch_dir()), 1);
    CHECK_MSG(strstr(o, "vocab.txt:5:") && strstr(o, "tab"), "%s", o);
    free(o);
    f = fopen(vocab, "w");
    fputs("apple\nriver\nca\x01t\n", f);
    fclose(f);
    CHECK_INT(run(&o, "debias --model %s --setting emoji --method orth-proj --vocab-file %s --out %s/d.safetensors", model, vocab,
                  scratch_dir()), 1);
    CHECK_MSG(strstr(o, "vocab.txt:3:") && strstr(o, "control character"), "%s", o);
    free(o);
    f = fopen(queries, "w");
    fputs("a farmer\tgender\na cook\tgender,age\n", f);
    fclose(f);
    CHECK_INT(run(&o, "experiment bias --model %s --setting emoji --queries %s --out %s/b2", model, queries, scratch_dir()), 1);
    CHECK_MSG(strstr(o, "queries.tsv:2:") && strstr(o, "unknown attribute \"age\"") && strstr(o, "gender, tone"), "%s", o);
    free(o);
    f = fopen(queries, "w");
    fputs("a farmer gender\n", f);
    fclose(f);
    CHECK_INT(run(&o, "experiment bias --model %s --setting emoji --queries %s --out %s/b3", model, queries, scratch_dir()), 1);
    CHECK_MSG(strstr(o, "queries.tsv:1:") && strstr(o, "two columns"), "%s", o);
    free(o);
    /* a model without a text tower */
    {
        ClipConfig c = {.embed_dim = 8, .has_vision = 1, .image_res = 8, .patch = 4, .v_width = 8, .v_layers = 1, .v_heads = 2};
        ClipModel vm;
        Err e = {{0}};
        clip_init_random(&vm, &c, 1);
        CHECK_MSG(clip_save(&vm, vision, LAYOUT_OPENAI, ST_F32, &e) == 0, "%s", e.msg);
        clip_free(&vm);
    }
    CHECK_INT(run(&o, "experiment bias --model %s --setting emoji --out %s/b4", vision, scratch_dir()), 1);
    CHECK_MSG(strstr(o, "text tower"), "%s", o);
    free(o);
    CHECK_INT(run(&o, "debias --model %s --setting emoji --method orth-proj --out %s/d.safetensors", vision, scratch_dir()), 1);
    CHECK_MSG(strstr(o, "text tower"), "%s", o);
    free(o);
    CHECK_INT(run(&o, "debias --model %s --setting emoji --method frobnicate --out %s/d.safetensors", model, scratch_dir()), 1);
    CHECK(strstr(o, "frobnicate") != NULL);
    free(o);
}
