#include "forget/diffusion/redteam.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "forget/diffusion/attack_victim.h"
#include "forget/diffusion/defend.h"
#include "forget/diffusion/erase.h"
#include "forget/diffusion/erasure_internal.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "io/safetensors.h"

void redteam_defaults(RedteamOpts *o) {
    memset(o, 0, sizeof *o);
    attack_defaults(&o->attack);
    o->kept_per_class = 8;
}

/* The entries of a comma list: one malloc'd block holding the pointers and the text. */
static char **split_commas(const char *s, int *n) {
    const size_t len = strlen(s);
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    char **v = xmalloc(sizeof(char *) * (size_t)(cap + 1) + len + 1), *t = (char *)(v + cap + 1);
    memcpy(t, s, len + 1);
    *n = 0;
    for (char *tok = strtok(t, ","); tok; tok = strtok(NULL, ",")) v[(*n)++] = tok;
    v[*n] = NULL;
    return v;
}

static int mkdir_p(const char *d, Err *e) {
    if (mkdir(d, 0755) != 0 && errno != EEXIST) return err_set(e, "%s: cannot create: %s", d, strerror(errno));
    return 0;
}

static char *default_label(const RedteamOpts *o) {
    if (o->label) return xstrdup(o->label);
    if (o->erasure) {
        const size_t n = strlen(o->erasure);
        return xstrdup(n >= 5 && strcmp(o->erasure + n - 5, ".json") == 0 ? "sld" : "escape");
    }
    SafeTensors st;
    Err e2 = {{0}};
    char *l = NULL;
    if (st_open(&st, o->unet, &e2) == 0) {
        const char *m = st_meta(&st, "erase.method");
        l = xstrdup(m && *m ? m : "none");
        st_close(&st);
    }
    return l ? l : xstrdup("none");
}

/* Mean judged accuracy of the classes other than the concept, and of the concept, on the bare prompt. */
static int kept_accuracy(const Text2Image *g, const Judge *j, const RedteamOpts *o, double *kept, double *erased, Err *e) {
    ErasureExpOpts eo;
    erasure_exp_defaults(&eo);
    eo.per_class = o->kept_per_class, eo.per_class_ctx = 1, eo.steps = o->attack.steps, eo.cfg = o->attack.cfg;
    eo.seed = o->seed + 4242, eo.batch = 32;
    ErasureEval ev;
    if (erasure_evaluate(g, j, NULL, &eo, &ev, e)) return -1;
    const int c = judge_class(j, o->concept);
    double s = 0;
    for (int k = 0; k < ev.K; k++)
        if (k != c) s += ev.acc[k];
    *kept = s / (ev.K - 1), *erased = ev.acc[c];
    erasure_eval_free(&ev);
    return 0;
}

/* Every attack against (unet, erasure): one run object each into runs. */
static int attack_pass(const RedteamOpts *o, const char *label, const char *erasure, const Judge *j, const ClipModel *ext,
                       const int *methods, int nm, cJSON *runs, cJSON *row, Err *e) {
    VictimHold h;
    if (victim_open_local(&h, o->unet, o->clip, o->vae, erasure, o->original, e)) return -1;
    int rc = 0;
    if (o->defend && row) {
        double kept = 0, erased = 0;
        rc = kept_accuracy(&h.g, j, o, &kept, &erased, e);
        cJSON_AddNumberToObject(row, "kept_acc", kept);
        cJSON_AddNumberToObject(row, "erased_acc", erased);
    }
    for (int i = 0; i < nm && !rc; i++) {
        AttackOpts ao = o->attack;
        ao.method = methods[i], ao.concept = o->concept, ao.external = ext, ao.seed = o->seed, ao.quiet = o->quiet;
        long before = 0, after = 0;
        AttackResult r;
        if (victim_server_images(&h, &before, e) || attack_run(&h.v, j, &ao, &r, e)) {
            rc = -1;
            break;
        }
        rc = victim_server_images(&h, &after, e);
        char *img = xasprintf("images/%s-%s.png", label, attack_method_name(methods[i]));
        for (char *p = img + 7; *p; p++)
            if (*p == ' ' || *p == '+') *p = '_';
        char *path = xasprintf("%s/%s", o->out, img);
        const Image8 im = {r.side, r.side, 3, r.images};
        if (!rc) rc = image_save_png(&im, path, e);
        free(path);
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "erasure", label);
        cJSON_AddStringToObject(x, "concept", o->concept);
        cJSON_AddStringToObject(x, "attack", attack_method_name(methods[i]));
        cJSON_AddNumberToObject(x, "asr", r.asr);
        cJSON_AddNumberToObject(x, "asr_before", r.asr_before);
        cJSON_AddNumberToObject(x, "queries", (double)r.queries);
        cJSON_AddNumberToObject(x, "queries_eval", (double)r.queries_eval);
        cJSON_AddNumberToObject(x, "queries_to_success", (double)r.queries_to_success);
        cJSON_AddNumberToObject(x, "server_images", (double)(after - before));
        cJSON_AddNumberToObject(x, "budget", (double)ao.budget);
        cJSON_AddStringToObject(x, "prompt", r.prompt ? r.prompt : "");
        cJSON_AddNumberToObject(x, "seconds", r.seconds);
        cJSON_AddStringToObject(x, "image", img);
        cJSON_AddItemToArray(runs, x);
        if (!o->quiet)
            fprintf(stderr, "redteam %s / %s: ASR %.2f (before %.2f), %ld queries\n", label, attack_method_name(methods[i]),
                    r.asr, r.asr_before, r.queries);
        free(img);
        attack_result_free(&r);
    }
    victim_close(&h);
    return rc;
}

int redteam_run(const RedteamOpts *o, cJSON **out_root, Err *e) {
    if (out_root) *out_root = NULL;
    int methods[ATTACK_COUNT], nm = 0;
    if (o->attacks) {
        char *s = xstrdup(o->attacks);
        for (char *t = strtok(s, ","); t; t = strtok(NULL, ",")) {
            const int m = attack_method_parse(t);
            if (m < 0 || nm == ATTACK_COUNT) {
                err_set(e, "--attacks: unknown attack \"%s\" (none, neighbours, ring-a-bell, unlearndiffatk, concept-inversion)", t);
                free(s);
                return -1;
            }
            methods[nm++] = m;
        }
        free(s);
    } else
        for (int m = 0; m < ATTACK_COUNT; m++) methods[nm++] = m;
    if (o->defend && o->erasure) return err_set(e, "--defend trains its own escape token: leave out --erasure");
    char *imgdir = xasprintf("%s/images", o->out);
    int rc = mkdir_p(o->out, e) || mkdir_p(imgdir, e) ? -1 : 0;
    free(imgdir);
    if (rc) return -1;
    Judge j;
    ClipModel ext;
    if (judge_load(&j, o->judge, e)) return -1;
    const ClipLoadOpts lo = {.act_override = -1};
    if (clip_load(&ext, o->external, &lo, e)) return judge_free(&j), -1;
    cJSON *root = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(root, "runs");
    cJSON *rows = cJSON_AddArrayToObject(root, "erasures");
    cJSON_AddStringToObject(root, "concept", o->concept);
    char *label = default_label(o);
    const char *erasure = o->erasure;
    char *esc = NULL, *def = NULL, *pres = NULL;
    EraseOpts eo;
    if (o->defend) { /* erase: the escape token, preserving the judge's other classes */
        erase_defaults(&eo);
        size_t cap = 1, at = 0;
        for (int k = 0; k < j.n_classes; k++) cap += strlen(j.class_names[k]) + 1;
        pres = xmalloc(cap);
        pres[0] = 0;
        if (!o->preserve)
            for (int k = 0; k < j.n_classes; k++)
                if (strcmp(j.class_names[k], o->concept) != 0)
                    at += (size_t)snprintf(pres + at, cap - at, "%s%s", at ? "," : "", j.class_names[k]);
        int np = 0;
        char **pl = split_commas(o->preserve ? o->preserve : pres, &np);
        eo.method = ERASE_ESCAPE, eo.concept = o->concept, eo.preserve = (const char *const *)pl, eo.n_preserve = np;
        eo.unet = o->unet, eo.clip = o->clip, eo.vae = o->vae, eo.seed = o->seed, eo.quiet = o->quiet;
        eo.steps = o->escape_steps;
        esc = xasprintf("%s/escape.safetensors", o->out), def = xasprintf("%s/escape-defended.safetensors", o->out);
        eo.out = esc;
        EraseResult er;
        rc = erase_run(&eo, &er, e);
        erasure = esc;
        free(label);
        label = xstrdup("escape");
        if (rc) free(pl), eo.preserve = NULL;
        else eo.preserve = (const char *const *)pl;
    }
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "erasure", label);
    cJSON_AddItemToArray(rows, row);
    if (!rc) rc = attack_pass(o, label, erasure, &j, &ext, methods, nm, runs, row, e);
    if (!rc && o->defend) { /* defend, then attack again */
        DefendOpts d = {.judge = o->judge, .external = o->external, .rounds = o->defend, .attack = o->attack};
        d.attack.seed = o->seed + 99991; /* the defence's attacks never see the judgement's seeds */
        DefendRound *log = xcalloc((size_t)o->defend, sizeof *log);
        EraseResult er;
        eo.out = def;
        rc = escape_defend(&eo, &d, &er, log, e);
        if (!rc) defend_rounds_json(root, "defence", log, o->defend);
        free(log);
        cJSON *r2 = cJSON_CreateObject();
        cJSON_AddStringToObject(r2, "erasure", "escape+defence");
        cJSON_AddItemToArray(rows, r2);
        if (!rc) rc = attack_pass(o, "escape+defence", def, &j, &ext, methods, nm, runs, r2, e);
    }
    if (o->defend) free((void *)eo.preserve);
    if (!rc) {
        char *txt = cJSON_Print(root), *p = xasprintf("%s/results.json", o->out);
        rc = write_file_atomic(p, txt, strlen(txt), e);
        free(txt), free(p);
    }
    if (!rc) rc = redteam_write_report(o->out, root, "red team", e);
    free(label), free(esc), free(def), free(pres);
    clip_free(&ext);
    judge_free(&j);
    if (!rc && out_root) *out_root = root;
    else cJSON_Delete(root);
    return rc;
}
