/* forget bench lm: the Llama-style decoder (models/lm.h) on the zoo's lm-s shape: training tokens/s
 * through the one trainer (AdamW, next-token cross-entropy on packed sequences of a fixed synthetic
 * batch), and decoding tokens/s with the key/value cache and without it (the whole prefix again for
 * each token), with the peak resident memory. tools/torch_lm.py bench measures PyTorch doing the
 * same work, so bench/run.sh can print the ratios. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "core/rng.h"
#include "core/threads.h"
#include "models/lm.h"
#include "train/trainer.h"

extern const Command cmd_bench;

typedef struct {
    LmModel m, g;
    LmActs a;
    int32_t *ids, *tg;
    int *len;
    int B, S;
} Bench;

static int bench_step(void *user, long step, float *loss, Err *e) {
    (void)step, (void)e;
    Bench *b = user;
    lm_batch_begin(&b->m, &b->a, b->ids, b->B * b->S, b->len, b->B);
    lm_forward(&b->m, &b->a);
    *loss = lm_loss(&b->m, &b->a, b->tg);
    lm_backward(&b->m, &b->g, &b->a, b->ids, 1.0f, NULL);
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Median tokens/s of `reps` greedy decodes of `new_tokens` after a prompt. */
static double decode_rate(const LmModel *m, const int32_t *prompt, int n, int new_tokens, int no_cache, int reps,
                          Err *e) {
    double *r = xmalloc(sizeof(double) * (size_t)reps);
    int32_t *out = xmalloc(sizeof(int32_t) * (size_t)new_tokens);
    const LmSampling s = {.max_tokens = new_tokens, .eos = -1, .no_cache = no_cache};
    int ok = 1;
    for (int i = 0; i < reps && ok; i++) {
        const double t0 = now();
        ok = lm_generate(m, prompt, n, &s, out, e) == new_tokens;
        r[i] = new_tokens / (now() - t0);
    }
    const double med = ok ? cli_median(r, reps) : 0;
    free(r), free(out);
    return med;
}

int bench_lm(int argc, char **argv) {
    const char *net = "lm-s";
    int B = 8, S = 256, steps = 6, prompt = 32, new_tokens = 64, json = 0;
    const Opt opts[] = {
        O_STR("--net", "NAME", &net, 0, "lm-s (default: the zoo's MLLM language model), lm-tiny"),
        O_INT("--batch", "B", &B, 1, 1024, "sequences per training step"),
        O_INT("--seq", "N", &S, 2, 4096, "tokens per sequence (at most the context)"),
        O_INT("--steps", "N", &steps, 1, 1000, "timed training steps after a warm-up"),
        O_INT("--prompt", "N", &prompt, 1, 4096, "prompt tokens before decoding"),
        O_INT("--new", "N", &new_tokens, 1, 4096, "tokens decoded"),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_bench, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    Err e = {{0}};
    LmConfig c;
    if (lm_config_named(&c, net, &e)) return cli_error("bench", EXIT_USAGE, "%s", e.msg);
    if (S > c.context || prompt + new_tokens > c.context)
        return cli_error("bench", EXIT_USAGE, "--seq %d or --prompt %d + --new %d pass %s's context of %d", S, prompt,
                         new_tokens, net, c.context);
    Bench b = {.B = B, .S = S};
    lm_init_random(&b.m, &c, 1);
    lm_alloc_like(&b.g, &b.m);
    const int T = B * S;
    b.ids = xmalloc(sizeof(int32_t) * (size_t)T), b.tg = xmalloc(sizeof(int32_t) * (size_t)T);
    b.len = xmalloc(sizeof(int) * (size_t)B);
    Rng r;
    rng_seed(&r, 2);
    for (int t = 0; t < T; t++) b.ids[t] = (int32_t)rng_below(&r, (uint32_t)c.vocab);
    for (int t = 0; t < T; t++) b.tg[t] = (int32_t)rng_below(&r, (uint32_t)c.vocab);
    for (int s = 0; s < B; s++) b.len[s] = S;
    double *t = xmalloc(sizeof(double) * (size_t)(steps + 1));
    TrainSpec spec = {.label = "bench lm", .total_steps = steps + 1, .lr = 1e-3, .wd = 0.0, .params = b.m.params,
                      .grads = b.g.params, .n_params = b.m.n_params, .table = &b.m.table, .step = bench_step,
                      .user = &b, .samples_per_step = T, .unit = "tok", .quiet = 1, .step_seconds = t};
    TrainState ts;
    int rc = train_run(&spec, &ts, &e);
    const double train_tps = rc ? 0 : T / cli_median(t + 1, steps);
    const double gf = train_tps * 3 * lm_flops(&c, S, S) / S / 1e9;
    lm_acts_free(&b.a);
    double dec = 0, dec_full = 0;
    if (rc == 0) {
        dec = decode_rate(&b.m, b.ids, prompt, new_tokens, 0, 3, &e);
        dec_full = dec > 0 ? decode_rate(&b.m, b.ids, prompt, new_tokens, 1, 2, &e) : 0;
        if (dec <= 0 || dec_full <= 0) rc = -1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double peak_mb = ru.ru_maxrss / 1024.0;
    if (rc) {
        rc = cli_error("bench", EXIT_WORK, "%s", e.msg);
    } else if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "net", net);
        cJSON_AddNumberToObject(j, "params", (double)b.m.n_params);
        cJSON_AddNumberToObject(j, "batch", B);
        cJSON_AddNumberToObject(j, "seq", S);
        cJSON_AddNumberToObject(j, "threads", threads_get());
        cJSON_AddNumberToObject(j, "train_tokens_per_s", train_tps);
        cJSON_AddNumberToObject(j, "train_gflops", gf);
        cJSON_AddNumberToObject(j, "decode_tokens_per_s", dec);
        cJSON_AddNumberToObject(j, "decode_nocache_tokens_per_s", dec_full);
        cJSON_AddNumberToObject(j, "prompt", prompt);
        cJSON_AddNumberToObject(j, "new", new_tokens);
        cJSON_AddNumberToObject(j, "peak_rss_mb", peak_mb);
        rc = cli_json_line("bench", j);
        cJSON_Delete(j);
    } else {
        printf("forget bench lm: %s (%.2fM parameters), %d threads: training %.0f tokens/s (batch %d x %d, %.1f GFLOP/s); "
               "decoding %.1f tokens/s with the key/value cache, %.1f without (prompt %d, %d new); peak RSS %.0f MB\n",
               net, b.m.n_params / 1e6, threads_get(), train_tps, B, S, gf, dec, dec_full, prompt, new_tokens, peak_mb);
    }
    free(t), free(b.ids), free(b.tg), free(b.len);
    lm_free(&b.g);
    lm_free(&b.m);
    return rc;
}
