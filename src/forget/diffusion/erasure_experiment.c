/* forget experiment erasure (erasure_experiment.h): the runs, their evaluation and resuming. */
#include "forget/diffusion/erasure_experiment.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/progress.h"
#include "core/threads.h"
#include "eval/forget_metrics.h"
#include "eval/gen_eval.h"
#include "eval/gen_metrics.h"
#include "eval/judge.h"
#include "forget/diffusion/erase.h"
#include "forget/diffusion/erasure_internal.h"
#include "forget/diffusion/escape.h"
#include "forget/resume.h"
#include "io/dataset.h"
#include "io/image.h"
#include "io/json_file.h"
#include "models/clip_encode.h"

extern char **environ;

static const char *const BARE = "a photo of a {}.";

/* name, forget erase's arguments, whether the other classes are passed as --preserve */
static const struct {
    const char *name, *args;
    int preserve;
} VARIANTS[] = {
    {"escape", "--method escape", 1},
    {"escape-pooled", "--method escape --loss pooled", 1},
    {"escape-proj", "--method escape --tcs proj", 1},
    {"esd-x", "--method esd-x", 0},
    {"esd-u", "--method esd-u", 0},
    {"fmn", "--method fmn", 0},
    {"uce", "--method uce", 1},
    {"sld", "--method sld", 0},
    {"sld-strong", "--method sld --sld-config strong", 0},
};
enum { N_VARIANTS = sizeof VARIANTS / sizeof *VARIANTS };
static const char *VARIANT_NAMES[N_VARIANTS + 1];

const char *const *erasure_exp_methods(void) {
    for (int i = 0; i < N_VARIANTS; i++) VARIANT_NAMES[i] = VARIANTS[i].name;
    VARIANT_NAMES[N_VARIANTS] = NULL;
    return VARIANT_NAMES;
}

void erasure_exp_defaults(ErasureExpOpts *o) {
    memset(o, 0, sizeof *o);
    o->concepts = "all", o->real = "fmnist:test";
    o->per_class = 12, o->per_class_ctx = 12, o->steps = 25, o->batch = 60, o->cfg = 7.5f;
}

/* ------------------------------------------------------------ the child erasure */

/* Runs argv (argv[0] the binary) with stdout captured. (The child reports its own peak memory:
 * wait4's ru_maxrss would include this process's, since it survives execve.) */
int erasure_spawn_capture(char *const *argv, char **out, Err *e) {
    int fd[2];
    if (pipe(fd) != 0) return err_set(e, "pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    pid_t pid;
    const int sr = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (sr != 0) {
        close(fd[0]);
        return err_set(e, "%s: cannot start: %s", argv[0], strerror(sr));
    }
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    ssize_t got;
    while ((got = read(fd[0], buf + n, cap - n - 1)) > 0)
        if ((n += (size_t)got) + 1 >= cap) buf = xrealloc(buf, cap *= 2);
    buf[n] = 0;
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    *out = buf;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return err_set(e, "%s %s failed (%s %d; its message is above)", argv[0], argv[1],
                       WIFEXITED(status) ? "exit" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return 0;
}

/* forget erase for one variant and concept into file; its JSON line's figures into run. */
int erasure_exp_erase(const ErasureExpOpts *o, int v, const char *concept, const char *preserve, const char *file,
                       cJSON *run, Err *e) {
    char *argv[64];
    int n = 0;
    char seed[32], steps[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    argv[n++] = (char *)o->exe, argv[n++] = "erase";
    char *args = xstrdup(VARIANTS[v].args); /* the variant's own arguments, split on spaces */
    for (char *t = strtok(args, " "); t && n < 16; t = strtok(NULL, " ")) argv[n++] = t;
    argv[n++] = "--concept", argv[n++] = (char *)concept;
    if (preserve && VARIANTS[v].preserve) argv[n++] = "--preserve", argv[n++] = (char *)preserve;
    argv[n++] = "--model", argv[n++] = (char *)o->unet, argv[n++] = "--text-encoder", argv[n++] = (char *)o->clip;
    if (o->vae) argv[n++] = "--vae", argv[n++] = (char *)o->vae;
    const int esd = strncmp(VARIANTS[v].name, "esd", 3) == 0, esc = strncmp(VARIANTS[v].name, "escape", 6) == 0;
    if ((esd && o->esd_steps) || (esc && o->escape_steps)) {
        snprintf(steps, sizeof steps, "%d", esd ? o->esd_steps : o->escape_steps);
        argv[n++] = "--steps", argv[n++] = steps;
    }
    argv[n++] = "--out", argv[n++] = (char *)file, argv[n++] = "--seed", argv[n++] = seed;
    argv[n++] = "--json", argv[n++] = "--quiet";
    argv[n] = NULL;
    char *out = NULL;
    const double t0 = now_seconds();
    int rc = erasure_spawn_capture(argv, &out, e);
    const double secs = now_seconds() - t0;
    free(args);
    const char *line = out ? strstr(out, "{\"method\"") : NULL;
    cJSON *j = !rc && line ? cJSON_Parse(line) : NULL;
    if (!rc && !j) rc = err_set(e, "forget erase printed no result line: %s", out ? out : "");
    if (!rc) {
        cJSON_AddNumberToObject(run, "trainable_params", resume_num(j, "trainable_params"));
        cJSON_AddNumberToObject(run, "peak_mb", resume_num(j, "peak_mb"));
        cJSON_AddNumberToObject(run, "seconds", secs);
        cJSON_AddNumberToObject(run, "erase_seconds", resume_num(j, "seconds"));
        cJSON_AddNumberToObject(run, "loss", resume_num(j, "loss"));
    }
    cJSON_Delete(j);
    free(out);
    return rc;
}

/* ------------------------------------------------------------ the evaluation */

void erasure_eval_free(ErasureEval *ev) {
    free(ev->acc), free(ev->acc_ctx), free(ev->feat), free(ev->shown);
    memset(ev, 0, sizeof *ev);
}

int erasure_evaluate(const Text2Image *g, const Judge *j, const ClipModel *sc, const ErasureExpOpts *o, ErasureEval *ev,
                     Err *e) {
    memset(ev, 0, sizeof *ev);
    const int K = j->n_classes, P = o->per_class, S = g->image_side, E = sc ? sc->cfg.embed_dim : 0;
    int nt;
    const char *const *tpl = escape_eval_templates(&nt);
    const int each = (o->per_class_ctx + nt - 1) / nt, PC = each * nt;
    const size_t img = (size_t)S * S * 3;
    ev->K = K, ev->P = P, ev->PC = PC, ev->side = S, ev->E = E, ev->shown_n = P < 4 ? P : 4;
    ev->acc = xcalloc((size_t)K, sizeof(double)), ev->acc_ctx = xcalloc((size_t)K, sizeof(double));
    ev->feat = E ? xalloc_floats((size_t)K * P * E) : NULL;
    ev->shown = xmalloc((size_t)K * ev->shown_n * img);
    uint8_t *rgb = xmalloc((size_t)(P > PC ? P : PC) * img);
    int32_t *pred = xmalloc(sizeof(int32_t) * (size_t)(P > PC ? P : PC));
    char **prompts = xcalloc((size_t)nt, sizeof(char *));
    int rc = 0;
    for (int k = 0; k < K && !rc; k++) {
        char *bare = clip_prompt_fill(BARE, j->class_names[k]);
        const char *bp = bare;
        SampleSpec sp = {.steps = o->steps, .cfg = o->cfg, .seed = o->seed, .first = (long)k * P, .batch = o->batch};
        rc = t2i_generate(g, &bp, 1, P, &sp, rgb, e);
        if (!rc) rc = judge_classify(j, rgb, P, S, pred, NULL, e);
        int ok = 0;
        for (int i = 0; i < P && !rc; i++) ok += pred[i] == k;
        ev->acc[k] = (double)ok / P;
        if (!rc) memcpy(ev->shown + (size_t)k * ev->shown_n * img, rgb, ev->shown_n * img);
        if (!rc && E) rc = gen_clip_images(sc, rgb, P, S, ev->feat + (size_t)k * P * E, e);
        free(bare);
        /* the same class inside context words: template i of the held-out set, `each` images a template */
        for (int t = 0; t < nt; t++) prompts[t] = clip_prompt_fill(tpl[t], j->class_names[k]);
        sp.first = 1000000L + (long)k * PC;
        if (!rc) rc = t2i_generate(g, (const char *const *)prompts, nt, each, &sp, rgb, e);
        if (!rc) rc = judge_classify(j, rgb, PC, S, pred, NULL, e);
        ok = 0;
        for (int i = 0; i < PC && !rc; i++) ok += pred[i] == k;
        ev->acc_ctx[k] = (double)ok / PC;
        for (int t = 0; t < nt; t++) free(prompts[t]), prompts[t] = NULL;
    }
    free(rgb), free(pred), free(prompts);
    if (rc) erasure_eval_free(ev);
    return rc;
}

/* Real images of each class in the scoring CLIP's space: P a class [K, P, E] (NULL without one). */
static float *real_feats(const ErasureExpOpts *o, const Judge *j, const ClipModel *sc, int S, Err *e) {
    const int K = j->n_classes, P = o->per_class, E = sc->cfg.embed_dim;
    Dataset d;
    if (dataset_load_named(&d, o->real, o->data_dir, e)) return NULL;
    float *f = xalloc_floats((size_t)K * P * E);
    uint8_t *rgb = xmalloc((size_t)P * S * S * 3);
    int rc = 0;
    for (int k = 0; k < K && !rc; k++) {
        int got = 0;
        for (int i = 0; i < d.n && got < P; i++) {
            if (strcasecmp(d.class_names[d.labels[i]], j->class_names[k]) != 0) continue;
            dataset_rgb8(&d, &i, 1, S, rgb + (size_t)got * S * S * 3);
            got++;
        }
        if (got < P) rc = err_set(e, "%s: only %d real images of \"%s\" (the distance needs %d)", o->real, got, j->class_names[k], P);
        if (!rc) rc = gen_clip_images(sc, rgb, P, S, f + (size_t)k * P * E, e);
    }
    free(rgb);
    dataset_free(&d);
    if (rc) {
        free(f);
        return NULL;
    }
    return f;
}

/* The figures of one run with class c erased. */
static int score_run(const ErasureEval *ev, int c, const float *real, const ClipModel *sc, const Judge *j, cJSON *run,
                     Err *e) {
    const int K = ev->K, P = ev->P, E = ev->E;
    double others = 0, others_ctx = 0;
    for (int k = 0; k < K; k++)
        if (k != c) others += ev->acc[k], others_ctx += ev->acc_ctx[k];
    others /= K - 1, others_ctx /= K - 1;
    cJSON_AddNumberToObject(run, "erased_acc", 100 * ev->acc[c]);
    cJSON_AddNumberToObject(run, "others_acc", 100 * others);
    cJSON_AddNumberToObject(run, "H", 100 * harmonic_h(1 - ev->acc[c], others));
    cJSON_AddNumberToObject(run, "erased_acc_ctx", 100 * ev->acc_ctx[c]);
    cJSON_AddNumberToObject(run, "others_acc_ctx", 100 * others_ctx);
    cJSON_AddNumberToObject(run, "H_ctx", 100 * harmonic_h(1 - ev->acc_ctx[c], others_ctx));
    cJSON *pc = cJSON_AddArrayToObject(run, "per_class_acc");
    for (int k = 0; k < K; k++) cJSON_AddItemToArray(pc, cJSON_CreateNumber(100 * ev->acc[k]));
    double fd = -1, cs = -1;
    if (E && real) { /* the kept classes only */
        const int n = (K - 1) * P;
        float *fg = xalloc_floats((size_t)n * E), *fr = xalloc_floats((size_t)n * E), *ft = xalloc_floats((size_t)n * E);
        float *pt = xalloc_floats((size_t)K * E);
        Tokenizer t = {0};
        int rc = tokenizer_init(&t, e);
        if (!rc) rc = clip_encode_filled(sc, &t, BARE, (const char *const *)j->class_names, K, pt, e);
        tokenizer_free(&t);
        for (int k = 0, r = 0; k < K && !rc; k++) {
            if (k == c) continue;
            memcpy(fg + (size_t)r * P * E, ev->feat + (size_t)k * P * E, sizeof(float) * (size_t)P * E);
            memcpy(fr + (size_t)r * P * E, real + (size_t)k * P * E, sizeof(float) * (size_t)P * E);
            for (int i = 0; i < P; i++) memcpy(ft + ((size_t)r * P + i) * E, pt + (size_t)k * E, sizeof(float) * (size_t)E);
            r++;
        }
        if (!rc) {
            cs = clip_score(fg, ft, n, E);
            double *m1 = xmalloc(sizeof(double) * E), *m2 = xmalloc(sizeof(double) * E);
            double *s1 = xmalloc(sizeof(double) * E * E), *s2 = xmalloc(sizeof(double) * E * E);
            feature_stats(fg, n, E, m1, s1);
            feature_stats(fr, n, E, m2, s2);
            rc = frechet_distance(m1, s1, m2, s2, E, &fd, e);
            free(m1), free(m2), free(s1), free(s2);
        }
        free(fg), free(fr), free(ft), free(pt);
        if (rc) return -1;
    }
    cJSON_AddNumberToObject(run, "fd", fd);
    cJSON_AddNumberToObject(run, "clip_score", cs);
    return 0;
}

/* The erased class's shown images as a PNG strip under DIR/images. */
static int save_strip(const ErasureExpOpts *o, const ErasureEval *ev, int c, const char *name, Err *e) {
    const int S = ev->side, n = ev->shown_n;
    Image8 im = {n * (S + 2) + 2, S + 4, 3, NULL};
    im.px = xmalloc((size_t)im.w * im.h * 3);
    memset(im.px, 255, (size_t)im.w * im.h * 3);
    image_tile(ev->shown + (size_t)c * n * S * S * 3, n, S, n, 2, 0, 1, &im);
    char *p = xasprintf("%s/images/%s-%d.png", o->out, name, c);
    const int rc = image_save_png(&im, p, e);
    free(p), free(im.px);
    return rc;
}

/* ------------------------------------------------------------ the run */

typedef struct {
    const ErasureExpOpts *o;
} Same;

static int same_experiment(const cJSON *root, const void *ctx) {
    const ErasureExpOpts *o = ((const Same *)ctx)->o;
    const char *u = resume_str(root, "unet"), *c = resume_str(root, "text_encoder"), *j = resume_str(root, "judge");
    return u && c && j && strcmp(u, o->unet) == 0 && strcmp(c, o->clip) == 0 && strcmp(j, o->judge) == 0 &&
           resume_num(root, "per_class") == o->per_class && resume_num(root, "per_class_ctx") == o->per_class_ctx &&
           resume_num(root, "steps") == o->steps && resume_num(root, "cfg") == (double)o->cfg &&
           resume_num(root, "seed") == (double)o->seed;
}

static const cJSON *find_run(const cJSON *runs, const char *method, const char *concept) {
    const cJSON *r;
    cJSON_ArrayForEach(r, runs) {
        const char *m = resume_str(r, "method"), *c = resume_str(r, "concept");
        if (m && c && strcmp(m, method) == 0 && strcmp(c, concept) == 0 && isfinite(resume_num(r, "erased_acc"))) return r;
    }
    return NULL;
}

static int parse_list(const char *list, const char *const *known, int n_known, const char *what, int *pick, Err *e) {
    for (int i = 0; i < n_known; i++) pick[i] = !list || strcmp(list, "all") == 0;
    if (!list || strcmp(list, "all") == 0) return 0;
    char *copy = xstrdup(list);
    int rc = 0;
    for (char *t = strtok(copy, ","); t && !rc; t = strtok(NULL, ",")) {
        while (*t == ' ') t++;
        int f = -1;
        for (int i = 0; i < n_known; i++)
            if (strcasecmp(t, known[i]) == 0) f = i;
        if (f < 0) rc = err_set(e, "experiment erasure: unknown %s \"%s\"", what, t);
        else pick[f] = 1;
    }
    free(copy);
    return rc;
}

int erasure_exp_run(const ErasureExpOpts *o, Err *e) {
    if (!o->exe || !o->unet || !o->clip || !o->judge || !o->out)
        return err_set(e, "experiment erasure: the binary, --model, --text-encoder, --judge and --out are required");
    if (o->per_class < 2 || o->per_class_ctx < 1) return err_set(e, "experiment erasure: --per-class must be at least 2");
    char *imgdir = xasprintf("%s/images", o->out), *mdir = xasprintf("%s/models", o->out);
    int rc = 0;
    if ((mkdir(o->out, 0755) && errno != EEXIST) || (mkdir(imgdir, 0755) && errno != EEXIST) ||
        (mkdir(mdir, 0755) && errno != EEXIST))
        rc = err_set(e, "%s: cannot create: %s", o->out, strerror(errno));
    Judge j = {0};
    if (!rc) rc = judge_load(&j, o->judge, e);
    const int K = rc ? 0 : j.n_classes;
    int *pick_c = xcalloc((size_t)(K + 1), sizeof(int)), pick_m[N_VARIANTS];
    if (!rc) rc = parse_list(o->concepts, (const char *const *)j.class_names, K, "class", pick_c, e);
    if (!rc) rc = parse_list(o->methods, erasure_exp_methods(), N_VARIANTS, "method", pick_m, e);
    ClipModel sc = {0};
    const ClipLoadOpts lo = {.act_override = -1};
    const int have_sc = !rc && o->score_clip;
    if (have_sc) rc = clip_load(&sc, o->score_clip, &lo, e);
    char *path = xasprintf("%s/results.json", o->out);
    cJSON *root = NULL;
    const Same same = {o};
    if (!rc) rc = resume_load(path, "runs", same_experiment, &same, 0, &root, e);
    if (!rc && !root) {
        root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "unet", o->unet);
        cJSON_AddStringToObject(root, "text_encoder", o->clip);
        cJSON_AddStringToObject(root, "judge", o->judge);
        cJSON_AddNumberToObject(root, "per_class", o->per_class);
        cJSON_AddNumberToObject(root, "per_class_ctx", o->per_class_ctx);
        cJSON_AddNumberToObject(root, "steps", o->steps);
        cJSON_AddNumberToObject(root, "cfg", o->cfg);
        cJSON_AddNumberToObject(root, "seed", (double)o->seed);
        cJSON_AddArrayToObject(root, "runs");
    }
    cJSON *runs = root ? cJSON_GetObjectItemCaseSensitive(root, "runs") : NULL;
    Text2Image base;
    int have_base = 0;
    float *real = NULL;
    if (!rc && !(rc = t2i_load(&base, o->unet, o->clip, o->vae, e))) have_base = 1;
    if (!rc && have_sc && !(real = real_feats(o, &j, &sc, base.image_side, e))) rc = -1;
    /* the unerased reference: one evaluation scores every class as "the erased one" */
    int todo = 0, done = 0;
    for (int c = 0; c < K; c++)
        for (int v = 0; v < N_VARIANTS; v++) todo += pick_c[c] && pick_m[v] && !find_run(runs, VARIANTS[v].name, j.class_names[c]);
    Progress bar;
    progress_start(&bar, "experiment erasure", todo + 1, o->quiet);
    {
        int need = 0;
        for (int c = 0; c < K; c++) need += pick_c[c] && !find_run(runs, "none", j.class_names[c]);
        ErasureEval ev = {0};
        if (!rc && need) rc = erasure_evaluate(&base, &j, have_sc ? &sc : NULL, o, &ev, e);
        for (int c = 0; c < K && !rc && need; c++) {
            if (!pick_c[c] || find_run(runs, "none", j.class_names[c])) continue;
            cJSON *run = cJSON_CreateObject();
            cJSON_AddStringToObject(run, "method", "none");
            cJSON_AddStringToObject(run, "concept", j.class_names[c]);
            cJSON_AddNumberToObject(run, "trainable_params", 0);
            cJSON_AddNumberToObject(run, "peak_mb", 0);
            cJSON_AddNumberToObject(run, "seconds", 0);
            rc = score_run(&ev, c, real, have_sc ? &sc : NULL, &j, run, e);
            if (!rc) rc = save_strip(o, &ev, c, "none", e);
            cJSON_AddItemToArray(runs, run);
        }
        erasure_eval_free(&ev);
        if (!rc) rc = json_write_atomic(path, root, e);
        progress_update(&bar, 1, 1, "runs", "reference");
    }
    char *preserve = NULL;
    for (int c = 0; c < K && !rc; c++) {
        if (!pick_c[c]) continue;
        free(preserve); /* the other classes */
        preserve = xstrdup("");
        for (int k = 0; k < K; k++)
            if (k != c) {
                char *p = xasprintf("%s%s%s", preserve, *preserve ? "," : "", j.class_names[k]);
                free(preserve);
                preserve = p;
            }
        for (int v = 0; v < N_VARIANTS && !rc; v++) {
            if (!pick_m[v] || find_run(runs, VARIANTS[v].name, j.class_names[c])) continue;
            const int esc = strncmp(VARIANTS[v].name, "escape", 6) == 0, sld = strncmp(VARIANTS[v].name, "sld", 3) == 0;
            char *file = xasprintf("%s/%s-%d.%s", mdir, VARIANTS[v].name, c, esc ? "safetensors" : sld ? "json" : "safetensors");
            cJSON *run = cJSON_CreateObject();
            cJSON_AddStringToObject(run, "method", VARIANTS[v].name);
            cJSON_AddStringToObject(run, "concept", j.class_names[c]);
            rc = erasure_exp_erase(o, v, j.class_names[c], preserve, file, run, e);
            Text2Image g;
            int loaded = 0;
            if (!rc && (esc || sld)) { /* the base model with the file applied */
                rc = erase_apply_files(&base, esc ? file : NULL, sld ? file : NULL, e);
            } else if (!rc) {
                rc = t2i_load(&g, file, o->clip, o->vae, e);
                loaded = !rc;
            }
            ErasureEval ev = {0};
            if (!rc) rc = erasure_evaluate(loaded ? &g : &base, &j, have_sc ? &sc : NULL, o, &ev, e);
            if (!rc) rc = score_run(&ev, c, real, have_sc ? &sc : NULL, &j, run, e);
            if (!rc) rc = save_strip(o, &ev, c, VARIANTS[v].name, e);
            erasure_eval_free(&ev);
            if (loaded) t2i_free(&g);
            Err ignore = {{0}};
            t2i_set_escape(&base, NULL, 0, &ignore), t2i_set_safe(&base, NULL, NULL, &ignore);
            if (!rc) {
                cJSON_AddItemToArray(runs, run);
                rc = json_write_atomic(path, root, e);
            } else {
                cJSON_Delete(run);
                err_prefix(e, "%s erasing \"%s\": ", VARIANTS[v].name, j.class_names[c]);
            }
            free(file);
            progress_update(&bar, 1 + ++done, 1, "runs", VARIANTS[v].name);
        }
    }
    progress_end(&bar);
    free(preserve);
    if (!rc) rc = erasure_write_reports(o, root, (const char *const *)j.class_names, pick_c, K, e);
    if (have_base) t2i_free(&base);
    if (have_sc) clip_free(&sc);
    free(real), free(path), free(imgdir), free(mdir), free(pick_c);
    cJSON_Delete(root);
    judge_free(&j);
    return rc;
}
