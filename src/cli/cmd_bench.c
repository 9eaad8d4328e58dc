#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "core/gemm.h"
#include "core/gemm_mixed.h"
#include "core/rng.h"
#include "core/threads.h"
#include "eval/gen_metrics.h"
#include "io/tokenizer.h"
#include "models/clip_train.h"
#include "models/clip_params.h"
#include "train/clip_trainer.h"
#include "train/trainer.h"
#include "train/zoo.h"

static int run(int argc, char **argv);

const Command cmd_bench = {
    "bench", "throughput against the machine's own sgemm peak",
    "usage: forget bench clip [--config vit-b-32|vit-b-16|tiny] [--batch 16] [--iters 5] [--precision fp32,bf16,int8]\n"
    "                         [--json] [--threads N]\n"
    "       forget bench train [--synthetic] [--config fmnist-s] [--batch 128] [--steps 10] [--precision fp32|bf16]\n"
    "                          [--json] [--threads N]\n"
    "       forget bench blackbox [--config vit-b-32 | --model FILE] [--suffix-len 4] [--pop 30] [--iters 10]\n"
    "                             [--search-iters 60] [--json]\n"
    "       forget bench debias [--dim 512] [--vocab 20000] [--iters 5] [--json]\n"
    "       forget bench resnet [--net resnet-20] [--batch 128] [--res 28] [--in-ch 1] [--steps 10] [--json]\n"
    "       forget bench lm [--net lm-s] [--batch 8] [--seq 256] [--steps 6] [--prompt 32] [--new 64] [--json]\n"
    "       forget bench unet [--net unet-latent-8] [--batch 32] [--side PX] [--steps 8] [--sample-batch 16]\n"
    "                         [--sample-steps 4] [--ddim-steps 25] [--ctx-len 77] [--json]\n"
    "\n"
    "unet: images/s of full training steps of the Stable-Diffusion-shaped UNet (eps-prediction MSE, AdamW) and of\n"
    "guided DDIM sampling (median step time x --ddim-steps), the work tools/torch_unet.py bench measures PyTorch doing.\n"
    "\n"
    "lm: tokens/s of training steps of the Llama-style decoder (AdamW, next-token loss) and of greedy decoding with\n"
    "and without the key/value cache, with the peak RSS: the work tools/torch_lm.py bench measures PyTorch doing.\n"
    "resnet: images/s of full training steps of the CIFAR ResNet through the trainer (one cosine head, AM-softmax,\n"
    "SGD with momentum; median after a warm-up step) on a fixed synthetic batch, the work tools/torch_resnet.py bench\n"
    "measures PyTorch doing; GFLOP/s counts 3x the forward convolutions' multiply-adds.\n"
    "\n"
    "debias: seconds of the closed-form calibration (the vocabulary's second moment by sgemm and the\n"
    "D x D Cholesky solve), median over --iters after a warm-up.\n"
    "\n"
    "blackbox: queries/s of forget serve over loopback with and without the prefix cache of the\n"
    "text tower (each prompt encoded whole up to its EOT), on requests of suffix candidates x 10 class\n"
    "prompts x 160 images: --pop uniformly random suffixes (median over --iters requests after a\n"
    "warm-up), and the stream of a dirichlet search (--search-iters populations of 30; total time, as\n"
    "its distribution concentrates candidates share words and repeat). Both servers get every request.\n"
    "train: images/s of full training steps through the trainer (median after a warm-up step): by\n"
    "default what `forget zoo build fmnist-clip` does per step (its data set, augmentation, generated\n"
    "captions, tokenising, forward, contrastive loss, backward, AdamW); --synthetic one fixed batch\n"
    "(10-token captions), the work bench/torch_train.py measures PyTorch doing.\n"
    "clip:\n"
    "Builds a CLIP of the named shape with seeded random weights in memory and\n"
    "measures, in one run: the machine's sgemm GFLOP/s (2048^3 through the same GEMM\n"
    "backend), image encoding (images/s), text encoding of 77-token prompts and of\n"
    "short prompts (\"a photo of a {class}.\"), the GFLOP/s each achieves and its\n"
    "ratio to the sgemm peak, for each --precision (one model; bf16 and int8 weight copies are made\n"
    "in the warm-up run), with the oneDNN kernel that ran and that precision's own 2048^3 GEMM rate.\n"
    "Times are medians over --iters runs after one warm-up.\n",
    run};


static double bench_gemm_peak(Precision p, int iters, char *impl, size_t cap);

double bench_sgemm_peak(int iters) {
    char impl[64];
    return bench_gemm_peak(PREC_FP32, iters, impl, sizeof impl);
}

typedef struct {
    double per_s, gflops, seconds;
} Rate;

/* One encoder call on fixed inputs: images (pixels) or texts (ids). */
typedef struct {
    const ClipModel *m;
    const float *px;
    const int32_t *ids;
    int n;
    float *out;
} EncodeCall;

static void encode_once(const EncodeCall *c) {
    Err e;
    if (c->px) clip_encode_image(c->m, c->px, c->n, c->out, NULL, &e);
    else clip_encode_text(c->m, c->ids, c->n, c->out, NULL, &e);
}

typedef struct {
    const char *config;
    int batch, reps; /* reps: --iters or --steps */
    int json;
    const char *precisions; /* bench clip: a comma list */
} BenchOpts;

/* The options bench clip and bench train take (--synthetic only where synthetic is given: bench
 * train); returns -1 to go on, else the exit code. */
static int parse_opts(int argc, char **argv, const char *reps_flag, BenchOpts *o, int *synthetic) {
    const Opt synth = O_FLAG("--synthetic", synthetic, "a fixed synthetic batch (the PyTorch reference's work)");
    const Opt opts[] = {
        O_STR("--config", "NAME", &o->config, 0, "model shape"),
        O_INT("--batch", "B", &o->batch, 1, 4096, "batch size"),
        O_INT(reps_flag, "N", &o->reps, 1, 1000, "timed repetitions (after a warm-up)"),
        opt_bind(OPT_JSON, &o->json),
        O_STR("--precision", synthetic ? "P" : "LIST", &o->precisions, 0,
              synthetic ? "fp32 or bf16 (mixed precision)" : "precisions to time, of fp32,bf16,int8"),
        synthetic ? synth : (Opt)O_END,
        O_END,
    };
    return cli_parse(&cmd_bench, argc, argv, 2, opts, NULL);
}

/* A fixed synthetic batch shaped like bench/torch_train.py's, through the same trainer loop. */
typedef struct {
    ClipModel m, g;
    float *px;
    int32_t *ids;
    int B;
    TowerActs ia, ta;
} SynthRun;

static int synth_step(void *user, long step, float *loss, Err *e) {
    (void)step;
    SynthRun *r = user;
    return clip_contrastive_step(&r->m, &r->g, r->px, r->ids, r->B, NULL, &r->ia, &r->ta, loss, e);
}

static int bench_train_synthetic(const ClipConfig *cfg, int B, long steps, Precision prec, double *t, Err *e) {
    SynthRun r = {.B = B};
    clip_init_random(&r.m, cfg, 1);
    clip_init_zeros(&r.g, cfg);
    if (prec != PREC_FP32 && clip_set_precision(&r.m, prec, e)) {
        clip_free(&r.m), clip_free(&r.g);
        return -1;
    }
    NnTable table = clip_param_table(&r.m);
    const int R = cfg->image_res, ctx = cfg->context;
    r.px = xalloc_floats((size_t)B * 3 * R * R);
    r.ids = xcalloc((size_t)B * ctx, sizeof(int32_t));
    Rng rng;
    rng_seed(&rng, 5);
    rng_fill_normal(&rng, r.px, (long)B * 3 * R * R, 0, 1);
    for (int n = 0; n < B; n++) {
        int32_t *row = r.ids + (size_t)n * ctx;
        row[0] = CLIP_SOT;
        for (int k = 1; k < 10; k++) row[k] = 1000 + (int32_t)rng_below(&rng, 39000);
        row[10] = CLIP_EOT;
    }
    TrainSpec spec = {.label = "bench", .total_steps = steps, .lr = 1e-4, .wd = 0.2, .grad_clip = 1.0f,
                      .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-6f, .params = r.m.params, .grads = r.g.params,
                      .n_params = r.m.n_params, .table = &table, .step = synth_step, .user = &r,
                      .samples_per_step = B, .unit = "img", .quiet = 1, .step_seconds = t, .gemm = r.m.gemm};
    TrainState st;
    int rc = train_run(&spec, &st, e);
    nn_table_free(&table);
    free(r.px), free(r.ids);
    tower_acts_free(&r.ia), tower_acts_free(&r.ta);
    clip_free(&r.m), clip_free(&r.g);
    return rc;
}

/* Training throughput: by default the zoo build's own work (fmnist-clip's recipe: Fashion-MNIST
 * images with augmentation, generated captions, tokenising, the step); --synthetic a fixed batch
 * as bench/torch_train.py trains it, so the PyTorch ratio compares the same work. */
/* One precision's training run of steps + 1 steps (the first warms up), step times into t. */
static int train_once(const ClipConfig *cfg, int B, long steps, int synthetic, Precision prec, double *t, Err *e) {
    if (synthetic) return bench_train_synthetic(cfg, B, steps + 1, prec, t, e);
    const ZooRecipe *zr = zoo_find("fmnist-clip");
    TrainOpts o;
    zoo_train_opts(zr, NULL, &o);
    o.cfg = *cfg, o.batch = B, o.quiet = 1, o.eval_set = NULL;
    o.bench_steps = steps + 1, o.step_seconds = t, o.precision = prec;
    TrainResult res;
    return clip_train(&o, &res, e);
}

static int bench_train(int argc, char **argv) {
    BenchOpts bo = {"fmnist-s", 128, 10, 0, "fp32"};
    int synthetic = 0;
    int st = parse_opts(argc, argv, "--steps", &bo, &synthetic);
    if (st >= 0) return st;
    Precision precs[2];
    int np = 0;
    if (cli_parse_precisions("bench", bo.precisions, precs, 2, &np)) return EXIT_USAGE;
    for (int i = 0; i < np; i++)
        if (precs[i] == PREC_INT8) return cli_error("bench", EXIT_USAGE, "--precision: int8 is for inference");
    const int B = bo.batch, rounds = np > 1 ? 3 : 1;
    const long steps = bo.reps;
    if (B < 2) return cli_error("bench", EXIT_USAGE, "--batch must be at least 2 for the contrastive loss");
    ClipConfig cfg;
    if (clip_config_named(&cfg, bo.config) != 0) return cli_error("bench", EXIT_USAGE, "unknown --config \"%s\"", bo.config);
    /* several precisions: rounds of every precision in turn, so drift cannot favour one of them */
    double *t = xmalloc(sizeof(double) * (size_t)(steps + 1)), *all = xmalloc(sizeof(double) * (size_t)(np * rounds * steps));
    Err e = {{0}};
    int rc = 0;
    const char *what = synthetic ? "synthetic batch" : "zoo pipeline (fmnist-clip data, captions, augmentation)";
    for (int r = 0; rc == 0 && r < rounds; r++)
        for (int i = 0; rc == 0 && i < np; i++)
            if ((rc = train_once(&cfg, B, steps, synthetic, precs[i], t, &e)) == 0)
                memcpy(all + ((size_t)i * rounds + r) * steps, t + 1, sizeof(double) * (size_t)steps);
    free(t);
    if (rc) {
        free(all);
        return cli_error("bench", EXIT_WORK, "%s", e.msg);
    }
    double med[2];
    for (int i = 0; i < np; i++) med[i] = cli_median(all + (size_t)i * rounds * steps, (int)(rounds * steps));
    free(all);
    if (bo.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "config", bo.config);
        cJSON_AddStringToObject(j, "work", synthetic ? "synthetic" : "zoo");
        cJSON_AddNumberToObject(j, "batch", B);
        cJSON_AddNumberToObject(j, "threads", threads_get());
        /* the first precision at the top level, as before precisions existed */
        cJSON_AddStringToObject(j, "precision", precision_name(precs[0]));
        cJSON_AddNumberToObject(j, "train_images_per_s", B / med[0]);
        cJSON_AddNumberToObject(j, "step_s", med[0]);
        cJSON *pr = cJSON_AddObjectToObject(j, "precisions");
        for (int i = 0; i < np; i++) {
            cJSON *q = cJSON_AddObjectToObject(pr, precision_name(precs[i]));
            cJSON_AddNumberToObject(q, "train_images_per_s", B / med[i]);
            cJSON_AddNumberToObject(q, "step_s", med[i]);
        }
        rc = cli_json_line("bench", j);
        cJSON_Delete(j);
    } else
        for (int i = 0; i < np; i++)
            printf("forget bench train: %s, %s, %s, batch %d, %d threads: %.1f images/s (median step %.3f s over %ld "
                   "steps%s)%s\n",
                   bo.config, what, precision_name(precs[i]), B, threads_get(), B / med[i], med[i], rounds * steps,
                   rounds > 1 ? ", 3 rounds in turn" : "", i > 0 ? "" : "");
    if (!bo.json && np > 1) printf("  %s / %s: %.2fx\n", precision_name(precs[1]), precision_name(precs[0]), med[0] / med[1]);
    return rc;
}

/* The operands of the 2048^3 peak products: seeded uniform A and B, and C. */
typedef struct {
    int n;
    float *a, *b, *c;
} PeakMats;

static PeakMats peak_mats(void) {
    const int n = 2048;
    PeakMats m = {n, xalloc_floats((size_t)n * n), xalloc_floats((size_t)n * n), xalloc_floats((size_t)n * n)};
    Rng r;
    rng_seed(&r, 1);
    rng_fill_uniform(&r, m.a, (long)n * n, -1, 1);
    rng_fill_uniform(&r, m.b, (long)n * n, -1, 1);
    return m;
}

static void peak_mats_free(PeakMats *m) { free(m->a), free(m->b), free(m->c); }

/* GFLOP/s of one 2048^3 weight product through a context of precision p (conversions included);
 * fp32: plain sgemm, the machine's peak. */
static double bench_gemm_peak(Precision p, int iters, char *impl, size_t cap) {
    PeakMats pm = peak_mats();
    const int n = pm.n;
    float *a = pm.a, *w = pm.b, *c = pm.c;
    Err e;
    Gemm *g = p == PREC_FP32 ? NULL : gemm_new(p, &e);
    gemm_linear(g, c, a, w, NULL, n, n, n); /* converts the weights, builds the primitive */
    double *t = xmalloc(sizeof(double) * (size_t)iters);
    for (int i = 0; i < iters; i++) {
        double t0 = now_seconds();
        gemm_linear(g, c, a, w, NULL, n, n, n);
        t[i] = now_seconds() - t0;
    }
    const double med = cli_median(t, iters);
    snprintf(impl, cap, "%s", gemm_impl(g));
    gemm_free(g);
    peak_mats_free(&pm);
    free(t);
    return 2.0 * n * n * n / med / 1e9;
}

/* One precision's row of bench clip. */
typedef struct {
    Precision want, got;
    double peak;
    char peak_impl[64], impl[64];
    Rate img, long_t, short_t;
    float *feat[3];       /* the warm-up run's image, 77-token and short-text features */
    double cos_img, cos_txt; /* worst cosine of a feature row to the fp32 row */
} PrecRow;



static void add_rate(cJSON *o, const char *prefix, Rate r, double peak) {
    char k[64];
    snprintf(k, sizeof k, "%s_per_s", prefix), cJSON_AddNumberToObject(o, k, r.per_s);
    snprintf(k, sizeof k, "%s_gflops", prefix), cJSON_AddNumberToObject(o, k, r.gflops);
    snprintf(k, sizeof k, "%s_peak_ratio", prefix), cJSON_AddNumberToObject(o, k, r.gflops / peak);
}

static int run(int argc, char **argv) {
    int json_failed = 0;
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(cmd_bench.help, stdout);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "train") == 0) return bench_train(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "blackbox") == 0) return bench_blackbox(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "debias") == 0) return bench_debias(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "resnet") == 0) return bench_resnet(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "unet") == 0) return bench_unet(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "lm") == 0) return bench_lm(argc, argv);
    if (argc < 2 || strcmp(argv[1], "clip") != 0)
        return cli_error("bench", EXIT_USAGE, "what to benchmark? (forget bench clip|train|blackbox|debias|resnet|unet|lm; forget help bench)");
    BenchOpts bo = {"vit-b-32", 16, 5, 0, "fp32,bf16,int8"};
    int st = parse_opts(argc, argv, "--iters", &bo, NULL);
    if (st >= 0) return st;
    Precision precs[3];
    int np = 0;
    if (cli_parse_precisions("bench", bo.precisions, precs, 3, &np)) return EXIT_USAGE;
    const char *config = bo.config;
    const long batch = bo.batch, iters = bo.reps;
    const int json = bo.json;
    ClipConfig cfg;
    if (clip_config_named(&cfg, config) != 0)
        return cli_error("bench", EXIT_USAGE, "unknown --config \"%s\" (vit-b-32, vit-b-16, tiny)", config);
    if (!json) fprintf(stderr, "building %s with random weights...\n", config);
    ClipModel m;
    clip_init_random(&m, &cfg, 42);
    /* the sgemm peak is timed inside the round-robin below too (one 2048^3 product per repetition),
     * so the ratio to it compares like with like on a machine whose speed drifts */
    PeakMats pm = peak_mats();
    const int pn = pm.n;
    double *tpeak = xmalloc(sizeof(double) * (size_t)iters);

    /* 77-token prompts: 75 random BPE ids between SOT and EOT; short ones: "a photo of a {class}." */
    const int N = (int)batch, ctx = cfg.context;
    int32_t *ids = xcalloc((size_t)N * ctx, sizeof(int32_t)), *sids = xcalloc((size_t)N * ctx, sizeof(int32_t));
    Rng r;
    rng_seed(&r, 3);
    for (int n = 0; n < N; n++) {
        ids[(size_t)n * ctx] = CLIP_SOT;
        for (int k = 1; k < ctx - 1; k++) ids[(size_t)n * ctx + k] = 1000 + (int32_t)rng_below(&r, 40000);
        ids[(size_t)n * ctx + ctx - 1] = CLIP_EOT;
    }
    static const char *classes[] = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                    "sandal", "shirt", "sneaker", "bag", "ankle boot"};
    Tokenizer t;
    Err e = {{0}};
    if (tokenizer_init(&t, &e) != 0) return cli_error("bench", EXIT_WORK, "%s", e.msg);
    double short_flops = 0;
    int short_tokens = 0;
    for (int n = 0; n < N; n++) {
        char text[64];
        snprintf(text, sizeof text, "a photo of a %s.", classes[n % 10]);
        int len = tokenizer_tokenize(&t, text, ctx, sids + (size_t)n * ctx, &e);
        short_flops += clip_text_flops(&cfg, len);
        short_tokens += len;
    }
    tokenizer_free(&t);

    /* One context per precision, timed round-robin (every repetition runs each precision once), so
     * the machine's drift between phases cannot favour one of them; medians per precision. */
    PrecRow rows[3];
    Gemm *ctxs[3];
    double *ti = xmalloc(sizeof(double) * (size_t)iters * 3), *tl = xmalloc(sizeof(double) * (size_t)iters * 3),
           *ts = xmalloc(sizeof(double) * (size_t)iters * 3);
    for (int i = 0; i < np; i++) {
        PrecRow *row = &rows[i];
        memset(row, 0, sizeof *row);
        row->want = precs[i];
        if (!(ctxs[i] = gemm_new(precs[i], &e))) return cli_error("bench", EXIT_WORK, "%s", e.msg);
        row->got = gemm_precision(ctxs[i]);
        row->peak = row->got == PREC_FP32 ? 0 : bench_gemm_peak(row->got, (int)iters, row->peak_impl, sizeof row->peak_impl);
        if (row->got == PREC_FP32) snprintf(row->peak_impl, sizeof row->peak_impl, "sgemm");
    }
    const int R = cfg.image_res;
    float *px = xalloc_floats((size_t)N * 3 * R * R), *feat = xalloc_floats((size_t)N * cfg.embed_dim);
    rng_fill_normal(&r, px, (long)N * 3 * R * R, 0, 1);
    EncodeCall calls[3] = {{&m, px, NULL, N, feat}, {&m, NULL, ids, N, feat}, {&m, NULL, sids, N, feat}};
    double *times[3] = {ti, tl, ts};
    if (!json) fprintf(stderr, "timing %s round-robin...\n", bo.precisions);
    for (int i = 0; i < np; i++)
        for (int c = 0; c < 3; c++) rows[i].feat[c] = xalloc_floats((size_t)N * cfg.embed_dim);
    for (int it = -1; it < iters; it++) { /* it -1: the warm-up (weight copies, primitives; its features kept) */
        const double tp0 = now_seconds();
        sgemm(false, false, pn, pn, pn, 1, pm.a, pn, pm.b, pn, 0, pm.c, pn);
        if (it >= 0) tpeak[it] = now_seconds() - tp0;
        for (int i = 0; i < np; i++) {
            m.gemm = ctxs[i];
            for (int c = 0; c < 3; c++) {
                EncodeCall call = calls[c];
                if (it == -1) call.out = rows[i].feat[c];
                const double t0 = now_seconds();
                encode_once(&call);
                if (it >= 0) times[c][(size_t)i * iters + it] = now_seconds() - t0;
            }
            if (it == -1) snprintf(rows[i].impl, sizeof rows[i].impl, "%s", gemm_impl(ctxs[i]));
        }
    }
    m.gemm = NULL;
    const double peak = 2.0 * pn * pn * pn / cli_median(tpeak, (int)iters) / 1e9;
    peak_mats_free(&pm);
    free(tpeak);
    for (int i = 0; i < np; i++)
        if (rows[i].got == PREC_FP32) rows[i].peak = peak;
    const double flops[3] = {N * clip_image_flops(&cfg), N * clip_text_flops(&cfg, ctx), short_flops};
    for (int i = 0; i < np; i++) {
        Rate *rt[3] = {&rows[i].img, &rows[i].long_t, &rows[i].short_t};
        for (int c = 0; c < 3; c++) {
            const double med = cli_median(times[c] + (size_t)i * iters, (int)iters);
            *rt[c] = (Rate){N / med, flops[c] / med / 1e9, med};
        }
        gemm_free(ctxs[i]);
    }
    free(ti), free(tl), free(ts), free(px), free(feat);
    const PrecRow *base = &rows[0];
    for (int i = 0; i < np; i++)
        if (rows[i].got == PREC_FP32) base = &rows[i];
    for (int i = 0; i < np; i++) {
        rows[i].cos_img = worst_row_cosine(rows[i].feat[0], base->feat[0], N, cfg.embed_dim);
        rows[i].cos_txt = fmin(worst_row_cosine(rows[i].feat[1], base->feat[1], N, cfg.embed_dim),
                               worst_row_cosine(rows[i].feat[2], base->feat[2], N, cfg.embed_dim));
    }
    free(ids), free(sids);

    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "config", config);
        cJSON_AddNumberToObject(o, "threads", threads_get());
        cJSON_AddNumberToObject(o, "batch", (double)batch);
        cJSON_AddStringToObject(o, "isa", gemm_cpu_isa());
        cJSON_AddNumberToObject(o, "sgemm_gflops", peak);
        /* the fp32 row (or the first) at the top level, as before precisions existed */
        add_rate(o, "images", base->img, peak);
        cJSON_AddNumberToObject(o, "image_peak_ratio", base->img.gflops / peak);
        cJSON_AddNumberToObject(o, "texts77_per_s", base->long_t.per_s);
        cJSON_AddNumberToObject(o, "text77_gflops", base->long_t.gflops);
        cJSON_AddNumberToObject(o, "short_texts_per_s", base->short_t.per_s);
        cJSON_AddNumberToObject(o, "short_text_mean_tokens", (double)short_tokens / N);
        cJSON_AddNumberToObject(o, "short_text_gflops", base->short_t.gflops);
        cJSON *pr = cJSON_AddObjectToObject(o, "precisions");
        for (int i = 0; i < np; i++) {
            cJSON *q = cJSON_AddObjectToObject(pr, precision_name(rows[i].want));
            cJSON_AddStringToObject(q, "ran", precision_name(rows[i].got));
            cJSON_AddStringToObject(q, "impl", rows[i].impl);
            cJSON_AddNumberToObject(q, "gemm_gflops", rows[i].peak);
            cJSON_AddStringToObject(q, "gemm_impl", rows[i].peak_impl);
            add_rate(q, "images", rows[i].img, peak);
            add_rate(q, "texts77", rows[i].long_t, peak);
            add_rate(q, "short_texts", rows[i].short_t, peak);
            cJSON_AddNumberToObject(q, "image_cosine_to_fp32", rows[i].cos_img);
            cJSON_AddNumberToObject(q, "text_cosine_to_fp32", rows[i].cos_txt);
        }
        json_failed = cli_json_line("bench", o);
        cJSON_Delete(o);
    } else {
        printf("forget bench clip: %s, batch %ld, %d threads, medians of %ld runs, oneDNN ISA %s\n", config, batch,
               threads_get(), iters, gemm_cpu_isa());
        printf("  sgemm (2048^3)          %8.1f GFLOP/s   (machine peak, this run; %.2f GFLOP/image)\n", peak,
               clip_image_flops(&cfg) / 1e9);
        printf("  %-5s %-26s %9s %7s %8s %7s %8s %7s %10s\n", "prec", "kernel", "GEMM GF/s", "img/s", "% sgemm",
               "x fp32", "txt77/s", "x fp32", "cos img/txt");
        for (int i = 0; i < np; i++) {
            const PrecRow *q = &rows[i];
            printf("  %-5s %-26s %9.1f %7.1f %7.1f%% %6.2fx %8.1f %6.2fx  %.5f/%.5f\n", precision_name(q->got), q->impl,
                   q->peak, q->img.per_s, 100 * q->img.gflops / peak, q->img.per_s / base->img.per_s, q->long_t.per_s,
                   q->long_t.per_s / base->long_t.per_s, q->cos_img, q->cos_txt);
        }
        printf("  short texts (%.1f tokens): ", (double)short_tokens / N);
        for (int i = 0; i < np; i++) printf("%s %.1f/s%s", precision_name(rows[i].got), rows[i].short_t.per_s, i + 1 < np ? ", " : "\n");
    }
    for (int i = 0; i < np; i++)
        for (int c = 0; c < 3; c++) free(rows[i].feat[c]);
    clip_free(&m);
    return json_failed;
}
