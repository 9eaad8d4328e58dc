#include "forget/diffusion/redteam_experiment.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/judge.h"
#include "forget/diffusion/erasure_internal.h"
#include "forget/diffusion/redteam.h"
#include "forget/resume.h"
#include "io/atomic_file.h"
#include "io/json_file.h"

static char *safe_name(const char *s) {
    char *d = xstrdup(s);
    for (char *p = d; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-') *p = '_';
    return d;
}

static int variant_index(const char *name) {
    const char *const *v = erasure_exp_methods();
    for (int i = 0; v[i]; i++)
        if (strcmp(v[i], name) == 0) return i;
    return -1;
}

/* The summary: mean over the classes of each (erasure, attack). */
static void summarise(cJSON *root) {
    cJSON_DeleteItemFromObjectCaseSensitive(root, "summary");
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(root, "runs"), *r, *q;
    cJSON *sum = cJSON_AddArrayToObject(root, "summary");
    cJSON_ArrayForEach(r, runs) {
        const char *er = resume_str(r, "erasure"), *at = resume_str(r, "attack");
        int seen = 0;
        cJSON_ArrayForEach(q, sum) seen |= strcmp(resume_str(q, "erasure"), er) == 0 && strcmp(resume_str(q, "attack"), at) == 0;
        if (seen) continue;
        double a = 0, b = 0, qs = 0;
        int n = 0, ns = 0;
        cJSON_ArrayForEach(q, runs) if (strcmp(resume_str(q, "erasure"), er) == 0 && strcmp(resume_str(q, "attack"), at) == 0) {
            a += resume_num(q, "asr"), b += resume_num(q, "asr_before"), n++;
            if (resume_num(q, "queries_to_success") > 0) qs += resume_num(q, "queries_to_success"), ns++;
        }
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "erasure", er);
        cJSON_AddStringToObject(s, "attack", at);
        cJSON_AddNumberToObject(s, "asr", a / n);
        cJSON_AddNumberToObject(s, "asr_before", b / n);
        if (ns) cJSON_AddNumberToObject(s, "queries_to_success", qs / ns);
        else cJSON_AddNullToObject(s, "queries_to_success");
        cJSON_AddNumberToObject(s, "concepts", n);
        cJSON_AddItemToArray(sum, s);
    }
}

static int write_all(const RedteamExpOpts *o, cJSON *root, Err *e) {
    summarise(root);
    char *txt = cJSON_Print(root), *p = xasprintf("%s/results.json", o->erase.out);
    int rc = write_file_atomic(p, txt, strlen(txt), e);
    free(txt), free(p);
    if (!rc) rc = redteam_write_report(o->erase.out, root, "red team: every erasure method against every attack", e);
    return rc;
}

/* One (class, method): erase, red-team, and the runs appended to root (image paths made relative to DIR). */
static int one(const RedteamExpOpts *o, const char *concept, const char *method, const char *preserve, cJSON *root,
               Err *e) {
    char *cn = safe_name(concept), *cdir = xasprintf("%s/%s", o->erase.out, cn);
    char *dir = xasprintf("%s/%s", cdir, method), *res = xasprintf("%s/results.json", dir);
    int rc = 0;
    if (access(res, F_OK) != 0) {
        if ((mkdir(cdir, 0755) != 0 && errno != EEXIST) || (mkdir(dir, 0755) != 0 && errno != EEXIST))
            rc = err_set(e, "%s: cannot create: %s", dir, strerror(errno));
        const int v = strcmp(method, "none") == 0 ? -1 : variant_index(method);
        if (!rc && strcmp(method, "none") != 0 && v < 0) rc = err_set(e, "--methods: unknown erasure method \"%s\"", method);
        const int sld = strncmp(method, "sld", 3) == 0, esc = strncmp(method, "escape", 6) == 0;
        char *file = v < 0 ? NULL : xasprintf("%s/erasure.%s", dir, sld ? "json" : "safetensors");
        cJSON *er = cJSON_CreateObject();
        if (!rc && v >= 0) rc = erasure_exp_erase(&o->erase, v, concept, preserve, file, er, e);
        cJSON_Delete(er);
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->erase.seed);
        char *argv[96];
        int n = 0;
        argv[n++] = (char *)o->erase.exe, argv[n++] = "redteam";
        argv[n++] = "--model", argv[n++] = (char *)(v >= 0 && !sld && !esc ? file : o->erase.unet);
        if (v >= 0 && (sld || esc)) argv[n++] = "--erasure", argv[n++] = file;
        argv[n++] = "--original", argv[n++] = (char *)o->erase.unet;
        argv[n++] = "--text-encoder", argv[n++] = (char *)o->erase.clip;
        if (o->erase.vae) argv[n++] = "--vae", argv[n++] = (char *)o->erase.vae;
        argv[n++] = "--label", argv[n++] = (char *)method, argv[n++] = "--concept", argv[n++] = (char *)concept;
        argv[n++] = "--judge", argv[n++] = (char *)o->erase.judge, argv[n++] = "--external", argv[n++] = (char *)o->external;
        argv[n++] = "--out", argv[n++] = dir, argv[n++] = "--seed", argv[n++] = seed, argv[n++] = "--quiet";
        for (int i = 0; i < o->n_redteam_args && n < 94; i++) argv[n++] = o->redteam_args[i];
        argv[n] = NULL;
        char *out = NULL;
        if (!rc) {
            if (!o->erase.quiet) fprintf(stderr, "experiment redteam: %s / %s\n", concept, method);
            rc = erasure_spawn_capture(argv, &out, e);
            if (rc && out && *out) err_prefix(e, "%s\n", out);
        }
        free(out), free(file);
    }
    cJSON *j = NULL;
    if (!rc) {
        j = json_read_file(res);
        if (!j) rc = err_set(e, "%s: unreadable (delete it to run that pair again)", res);
    }
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(j, "runs"), *r;
    cJSON *all = cJSON_GetObjectItemCaseSensitive(root, "runs");
    cJSON_ArrayForEach(r, runs) {
        cJSON *c = cJSON_Duplicate(r, 1);
        char *img = xasprintf("%s/%s/%s", cn, method, resume_str(r, "image"));
        cJSON_ReplaceItemInObjectCaseSensitive(c, "image", cJSON_CreateString(img));
        free(img);
        cJSON_AddItemToArray(all, c);
    }
    cJSON_Delete(j);
    free(cn), free(cdir), free(dir), free(res);
    return rc;
}

int redteam_exp_run(const RedteamExpOpts *o, Err *e) {
    Judge j;
    if (judge_load(&j, o->erase.judge, e)) return -1;
    if (mkdir(o->erase.out, 0755) != 0 && errno != EEXIST) {
        judge_free(&j);
        return err_set(e, "%s: cannot create: %s", o->erase.out, strerror(errno));
    }
    const int K = j.n_classes;
    int *pick = xcalloc((size_t)K, sizeof(int)), rc = 0;
    if (!o->erase.concepts || strcmp(o->erase.concepts, "all") == 0)
        for (int k = 0; k < K; k++) pick[k] = 1;
    else {
        char *s = xstrdup(o->erase.concepts);
        for (char *t = strtok(s, ","); t && !rc; t = strtok(NULL, ",")) {
            const int k = judge_class(&j, t);
            if (k < 0) rc = err_set(e, "--concepts: the judge has no class \"%s\"", t);
            else pick[k] = 1;
        }
        free(s);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddArrayToObject(root, "runs");
    char *methods = xstrdup(o->erase.methods ? o->erase.methods : REDTEAM_EXP_METHODS);
    char *mlist[32];
    int nm = 0;
    for (char *t = strtok(methods, ","); t && nm < 32; t = strtok(NULL, ",")) mlist[nm++] = t;
    for (int k = 0; k < K && !rc; k++) {
        if (!pick[k]) continue;
        size_t cap = 1, at = 0;
        for (int q = 0; q < K; q++) cap += strlen(j.class_names[q]) + 1;
        char *pres = xmalloc(cap);
        pres[0] = 0;
        for (int q = 0; q < K; q++)
            if (q != k) at += (size_t)snprintf(pres + at, cap - at, "%s%s", at ? "," : "", j.class_names[q]);
        for (int m = 0; m < nm && !rc; m++) {
            rc = one(o, j.class_names[k], mlist[m], pres, root, e);
            if (!rc) rc = write_all(o, root, e); /* after each: a stop loses nothing done */
        }
        free(pres);
    }
    free(methods), free(pick);
    cJSON_Delete(root);
    judge_free(&j);
    return rc;
}
