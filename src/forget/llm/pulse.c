#include "forget/llm/pulse.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/threads.h"
#include "forget/llm/unlearn.h"
#include "forget/resume.h"
#include "io/json_file.h"

void pulse_defaults(PulseOpts *o) {
    memset(o, 0, sizeof *o);
    o->seeds = 1;
    o->forget_count = 5, o->val_count = 5, o->chunks = 5;
    o->lrs = "1e-4,3e-4,1e-3,3e-3";
    o->max_epochs = 5, o->batch = 8;
    o->target = 0.30;
    o->lora_rank = 16, o->lora_alpha = 16;
    o->parts = UL_PART_PROJECTOR | UL_PART_LM;
    o->retain_limit = 150, o->general_limit = 150;
    o->ref_epochs = 1;
}

typedef struct {
    const PulseOpts *o;
    Mllm m0;
    SpTokenizer *t;
    World *w;
    cJSON *root, *runs, *select;
    char *path;
    long ops;
    int np;
} P;

static const char *const KNOW[2] = {"pretrained", "finetuned"};

static int save(P *p, Err *e) { return json_write_atomic(p->path, p->root, e); }

static cJSON *find(cJSON *arr, const char *key) {
    cJSON *r;
    cJSON_ArrayForEach(r, arr) {
        const char *k = resume_str(r, "key");
        if (k && strcmp(k, key) == 0) return r;
    }
    return NULL;
}

/* Every measurement of one model: forget / test (the people in `forget`), retain, general. */
static int measure(P *p, const Mllm *m, const uint8_t *forget, const uint8_t *retain, cJSON *out, Err *e) {
    const unsigned ab = (1u << WSET_A) | (1u << WSET_B);
    const struct { const char *name; unsigned sets; int test; const uint8_t *mask; int limit, tasks; } parts[4] = {
        {"forget", ab, 0, forget, 0, 3}, {"test", ab, 1, forget, 0, 3},
        {"retain", ab, 0, retain, p->o->retain_limit, 3}, {"general", 1u << WSET_GENERAL, 1, NULL, p->o->general_limit, 1}};
    for (int k = 0; k < 4; k++) {
        cJSON *j = cJSON_AddObjectToObject(out, parts[k].name);
        for (int task = 0; task < parts[k].tasks; task++) {
            MllmEvalSel sel = {.sets = parts[k].sets, .test = parts[k].test, .people_mask = parts[k].mask,
                               .limit = parts[k].limit, .seed = 11, .quiet = 1};
            MllmScore s;
            if (mllm_eval(m, p->t, p->w, &sel, (MllmTask)task, &s, e)) return -1;
            mllm_score_json(j, MLLM_TASK_NAMES[task], &s);
        }
    }
    return 0;
}

/* The seed's people: F_A, V_A from set A and F_B, V_B from set B (a seeded choice), R the rest. */
static int choose_people(P *p, int seed, uint8_t *F[2], uint8_t *V[2], uint8_t *R, Err *e) {
    int *idx[2], n[2] = {0, 0};
    for (int k = 0; k < 2; k++) idx[k] = xmalloc(sizeof(int) * (size_t)p->np);
    for (int i = 0; i < p->np; i++) {
        const WorldSet s = world_person(p->w, i)->set;
        if (s == WSET_A || s == WSET_B) idx[s][n[s]++] = i;
    }
    int rc = 0;
    memset(R, 0, (size_t)p->np);
    for (int k = 0; k < 2 && rc == 0; k++) {
        if (n[k] < p->o->forget_count + p->o->val_count + 1)
            rc = err_set(e, "set %c has %d people: too few for %d forget + %d validation people and a retain set",
                         'A' + k, n[k], p->o->forget_count, p->o->val_count);
        Rng r;
        rng_seed(&r, (uint64_t)seed * 1000003u + (uint64_t)k);
        rng_shuffle(&r, idx[k], n[k], sizeof(int));
        memset(F[k], 0, (size_t)p->np), memset(V[k], 0, (size_t)p->np);
        for (int i = 0; i < n[k] && rc == 0; i++) {
            if (i < p->o->forget_count) F[k][idx[k][i]] = 1;
            else if (i < p->o->forget_count + p->o->val_count) V[k][idx[k][i]] = 1;
            else R[idx[k][i]] = 1;
        }
    }
    free(idx[0]), free(idx[1]);
    return rc;
}

static void copy_model(Mllm *dst, const Mllm *src) {
    mllm_alloc_like(dst, src);
    memcpy(dst->params, src->params, sizeof(float) * (size_t)src->n_params);
}

static void base_opts(const P *p, UlMethod k, int seed, UlOpts *u) {
    ul_defaults(u);
    u->method = k, u->seed = (uint64_t)seed, u->batch = p->o->batch, u->quiet = 1;
    u->lora_rank = k == UL_MMUNLEARNER ? 0 : p->o->lora_rank, u->lora_alpha = p->o->lora_alpha, u->parts = p->o->parts;
}

/* ---- the selection on validation people ---- */

typedef struct {
    P *p;
    const uint8_t *val;
    int image_only;
    cJSON *curve;
    double lr, best_acc;
    int best_epoch, reached_epoch;
} Sel;

static int val_check(void *user, int epoch, const Mllm *m, Err *e) {
    Sel *s = user;
    MllmEvalSel sel = {.sets = (1u << WSET_A) | (1u << WSET_B), .people_mask = s->val, .quiet = 1};
    MllmScore sc;
    if (mllm_eval(m, s->p->t, s->p->w, &sel, MTASK_CHOICE, &sc, e)) return -1;
    const double acc = s->image_only ? sc.score_image : sc.score;
    cJSON *pt = cJSON_CreateObject();
    cJSON_AddNumberToObject(pt, "lr", s->lr);
    cJSON_AddNumberToObject(pt, "epoch", epoch);
    cJSON_AddNumberToObject(pt, "val_forget_acc", acc);
    cJSON_AddItemToArray(s->curve, pt);
    if (acc < s->best_acc) s->best_acc = acc, s->best_epoch = epoch;
    if (acc <= s->p->o->target) return s->reached_epoch = epoch, 1;
    return 0;
}

static int select_setting(P *p, UlMethod k, int know, int seed, const uint8_t *val, const uint8_t *R, const Mllm *ref,
                          double *lr, int *epochs, Err *e) {
    char key[96];
    snprintf(key, sizeof key, "s%d/%s/%s", seed, UL_METHOD_NAMES[k], KNOW[know]);
    cJSON *have = find(p->select, key);
    if (have) {
        *lr = resume_num(have, "lr"), *epochs = (int)resume_num(have, "epochs");
        if (*lr > 0 && *epochs > 0) return 0;
    }
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddStringToObject(entry, "key", key);
    cJSON_AddStringToObject(entry, "method", UL_METHOD_NAMES[k]);
    cJSON_AddStringToObject(entry, "knowledge", KNOW[know]);
    cJSON_AddNumberToObject(entry, "seed", seed);
    Sel s = {.p = p, .val = val, .image_only = k == UL_MMUNLEARNER, .curve = cJSON_AddArrayToObject(entry, "curve")};
    double best_lr = 0, best_acc = 2, secs = 0, peak = 0;
    int best_ep = 0, reached = 0, rc = 0;
    char *grid = xstrdup(p->o->lrs), *save_p = NULL;
    for (char *tok = strtok_r(grid, ",", &save_p); tok && rc == 0 && !reached; tok = strtok_r(NULL, ",", &save_p)) {
        Mllm m;
        copy_model(&m, &p->m0);
        UlOpts u;
        base_opts(p, k, seed, &u);
        u.forget = val, u.retain = R, u.lr = atof(tok), u.epochs = p->o->max_epochs, u.reference = ref;
        u.after_epoch = val_check, u.user = &s;
        s.lr = u.lr, s.best_acc = 2, s.reached_epoch = 0;
        UlStats st;
        rc = mllm_unlearn(&m, p->t, p->w, &u, &st, e);
        secs += st.seconds, peak = st.peak_mib > peak ? st.peak_mib : peak;
        if (s.reached_epoch) reached = 1, best_lr = u.lr, best_ep = s.reached_epoch, best_acc = s.best_acc;
        else if (s.best_acc < best_acc) best_acc = s.best_acc, best_lr = u.lr, best_ep = s.best_epoch;
        mllm_free(&m);
    }
    free(grid);
    if (rc) return cJSON_Delete(entry), -1;
    if (!(best_lr > 0)) return cJSON_Delete(entry), err_set(e, "--lrs '%s' holds no learning rate", p->o->lrs);
    cJSON_AddNumberToObject(entry, "lr", best_lr);
    cJSON_AddNumberToObject(entry, "epochs", best_ep);
    cJSON_AddNumberToObject(entry, "val_forget_acc", best_acc);
    cJSON_AddBoolToObject(entry, "reached_target", reached);
    cJSON_AddNumberToObject(entry, "seconds", secs);
    cJSON_AddNumberToObject(entry, "peak_mib", peak);
    if (have) cJSON_Delete(cJSON_DetachItemViaPointer(p->select, have)); /* an unreadable entry: replaced */
    cJSON_AddItemToArray(p->select, entry);
    *lr = best_lr, *epochs = best_ep;
    return save(p, e);
}

/* ---- operations ---- */

static int record(P *p, const char *key, UlMethod k, const char *scenario, int know, int seed, int step, double lr,
                  int epochs, const UlStats *st, const Mllm *m, const uint8_t *forget, const uint8_t *R, Err *e) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "key", key);
    cJSON_AddStringToObject(r, "method", k < UL_N_METHODS ? UL_METHOD_NAMES[k] : "none");
    cJSON_AddStringToObject(r, "scenario", scenario);
    cJSON_AddStringToObject(r, "knowledge", KNOW[know]);
    cJSON_AddNumberToObject(r, "seed", seed);
    cJSON_AddNumberToObject(r, "step", step);
    cJSON_AddNumberToObject(r, "lr", lr);
    cJSON_AddNumberToObject(r, "epochs", epochs);
    cJSON_AddNumberToObject(r, "seconds", st ? st->seconds : 0);
    cJSON_AddNumberToObject(r, "peak_mib", st ? st->peak_mib : 0);
    cJSON_AddNumberToObject(r, "trainable", st ? (double)st->trainable : 0);
    cJSON_AddNumberToObject(r, "steps", st ? (double)st->steps : 0);
    int nf = 0;
    for (int i = 0; i < p->np; i++) nf += forget[i];
    cJSON_AddNumberToObject(r, "forget_people", nf);
    const double t0 = now_seconds();
    if (measure(p, m, forget, R, r, e)) return cJSON_Delete(r), -1;
    cJSON_AddNumberToObject(r, "eval_seconds", now_seconds() - t0);
    cJSON_AddItemToArray(p->runs, r);
    p->ops++;
    return save(p, e);
}

static int stop_now(const P *p) { return p->o->stop_after_ops > 0 && p->ops >= p->o->stop_after_ops; }

static int batch_run(P *p, UlMethod k, int know, int seed, const uint8_t *F, const uint8_t *R, const Mllm *ref, double lr,
                     int epochs, Err *e) {
    char key[96];
    snprintf(key, sizeof key, "s%d/%s/batch/%s", seed, UL_METHOD_NAMES[k], KNOW[know]);
    if (find(p->runs, key)) return 0;
    Mllm m;
    copy_model(&m, &p->m0);
    UlOpts u;
    base_opts(p, k, seed, &u);
    u.forget = F, u.retain = R, u.lr = lr, u.epochs = epochs, u.reference = ref;
    UlStats st;
    int rc = mllm_unlearn(&m, p->t, p->w, &u, &st, e);
    if (rc == 0) rc = record(p, key, k, "batch", know, seed, 1, lr, epochs, &st, &m, F, R, e);
    mllm_free(&m);
    return rc;
}

static char *seq_model_path(const P *p, int seed, UlMethod k, int know, int step) {
    return xasprintf("%s/models/s%d-%s-%s-seq%d.safetensors", p->o->out, seed, UL_METHOD_NAMES[k], KNOW[know], step);
}

static int sequential_run(P *p, UlMethod k, int know, int seed, const uint8_t *F, const uint8_t *R, const Mllm *ref,
                          double lr, int epochs, Err *e) {
    const int S = p->o->chunks;
    int *members = xmalloc(sizeof(int) * (size_t)p->np), nm = 0;
    for (int i = 0; i < p->np; i++)
        if (F[i]) members[nm++] = i;
    uint8_t *chunk = xcalloc((size_t)p->np, 1), *so_far = xcalloc((size_t)p->np, 1);
    Mllm m = {0};
    int have = 0, rc = 0, start = 1;
    for (int s = S; s >= 1 && !have; s--) { /* the furthest step done whose model is kept (or the last) */
        char key[96];
        snprintf(key, sizeof key, "s%d/%s/sequential/%s/%d", seed, UL_METHOD_NAMES[k], KNOW[know], s);
        if (!find(p->runs, key)) continue;
        if (s == S) {
            start = S + 1, have = 1;
            break;
        }
        char *mp = seq_model_path(p, seed, k, know, s);
        if (access(mp, F_OK) == 0 && mllm_load(&m, mp, e) == 0) start = s + 1, have = 2;
        free(mp);
    }
    if (have == 0) copy_model(&m, &p->m0);
    for (int i = 0; i < nm && start > 1; i++)
        if ((long)i * S / nm < start - 1) so_far[members[i]] = 1;
    for (int s = start; s <= S && rc == 0 && !stop_now(p); s++) {
        memset(chunk, 0, (size_t)p->np);
        for (int i = 0; i < nm; i++)
            if ((long)i * S / nm == s - 1) chunk[members[i]] = so_far[members[i]] = 1;
        UlOpts u;
        base_opts(p, k, seed, &u);
        u.forget = chunk, u.retain = R, u.lr = lr, u.epochs = epochs, u.reference = ref, u.seed = (uint64_t)seed * 100u + (uint64_t)s;
        UlStats st;
        rc = mllm_unlearn(&m, p->t, p->w, &u, &st, e);
        char *mp = seq_model_path(p, seed, k, know, s), *prev = seq_model_path(p, seed, k, know, s - 1);
        if (rc == 0 && s < S) rc = mllm_save(&m, mp, MLLM_LLAVA, ST_F32, NULL, 0, e);
        char key[96];
        snprintf(key, sizeof key, "s%d/%s/sequential/%s/%d", seed, UL_METHOD_NAMES[k], KNOW[know], s);
        if (rc == 0) rc = record(p, key, k, "sequential", know, seed, s, lr, epochs, &st, &m, so_far, R, e);
        if (rc == 0) remove(prev);
        free(mp), free(prev);
    }
    if (have != 1) mllm_free(&m);
    free(members), free(chunk), free(so_far);
    return rc;
}

/* NPO's reference for a seed: the original tuned on the retain people's questions, kept in DIR. */
static int npo_reference(P *p, int seed, const uint8_t *R, Mllm *ref, Err *e) {
    char *path = xasprintf("%s/models/npo-reference-s%d.safetensors", p->o->out, seed);
    int rc = 0;
    if (access(path, F_OK) == 0) {
        rc = mllm_load(ref, path, e);
    } else {
        copy_model(ref, &p->m0);
        UlOpts u;
        base_opts(p, UL_NPO, seed, &u);
        u.retain = R, u.lr = 3e-4;
        rc = ul_retain_tune(ref, p->t, p->w, &u, p->o->ref_epochs, e);
        if (rc == 0) rc = mllm_save(ref, path, MLLM_LLAVA, ST_F32, NULL, 0, e);
    }
    free(path);
    return rc;
}

typedef struct {
    const char *settings;
} Same;

static int same_experiment(const cJSON *root, const void *ctx) {
    const char *s = resume_str(root, "settings");
    return s && strcmp(s, ((const Same *)ctx)->settings) == 0;
}

int pulse_run(const PulseOpts *o, Err *e) {
    if (o->chunks > o->forget_count)
        return err_set(e, "--chunks %d: more requests than the %d forget people to split among them", o->chunks, o->forget_count);
    if (mkdir(o->out, 0755) && access(o->out, F_OK)) return err_set(e, "%s: cannot create the directory", o->out);
    char *mdir = xasprintf("%s/models", o->out);
    if (mkdir(mdir, 0755) && access(mdir, F_OK)) {
        free(mdir);
        return err_set(e, "%s/models: cannot create the directory", o->out);
    }
    free(mdir);
    UlMethod methods[UL_N_METHODS];
    int n_methods = 0, rc = 0;
    {
        char *dup = xstrdup(o->methods ? o->methods : "ga,ga+kl,gd,npo,idk,mmunlearner"), *sv = NULL;
        for (char *tok = strtok_r(dup, ",", &sv); tok && rc == 0; tok = strtok_r(NULL, ",", &sv))
            if (n_methods == UL_N_METHODS) rc = err_set(e, "--methods: at most %d methods", UL_N_METHODS);
            else rc = ul_method_parse(tok, &methods[n_methods++], e);
        free(dup);
        if (rc) return -1;
    }
    P p = {.o = o};
    WorldOpts wo;
    if (world_opts_read(o->model, &wo, e)) return -1;
    if (mllm_load(&p.m0, o->model, e)) return -1;
    char *tok = o->tokenizer ? xstrdup(o->tokenizer) : NULL;
    if (!tok) {
        const char *slash = strrchr(o->model, '/');
        tok = slash ? xasprintf("%.*s/tokenizer.model", (int)(slash - o->model), o->model) : xstrdup("tokenizer.model");
    }
    p.t = sp_load(tok, e);
    free(tok);
    p.w = p.t ? world_build(&wo, e) : NULL;
    if (!p.w) {
        sp_free(p.t);
        mllm_free(&p.m0);
        return -1;
    }
    p.np = world_n_people(p.w);
    char settings[512];
    snprintf(settings, sizeof settings,
             "model=%s forget=%d val=%d chunks=%d lrs=%s epochs=%d batch=%d target=%g lora=%d/%g parts=%d "
             "retain_limit=%d general_limit=%d ref_epochs=%d",
             o->model, o->forget_count, o->val_count, o->chunks, o->lrs, o->max_epochs, o->batch, o->target, o->lora_rank,
             (double)o->lora_alpha, o->parts, o->retain_limit, o->general_limit, o->ref_epochs);
    p.path = xasprintf("%s/results.json", o->out);
    Same same = {settings};
    rc = resume_load(p.path, "runs", same_experiment, &same, 0, &p.root, e);
    if (rc == 0 && !p.root) {
        p.root = cJSON_CreateObject();
        cJSON_AddStringToObject(p.root, "experiment", "pulse (our reconstruction of the protocol)");
        cJSON_AddStringToObject(p.root, "settings", settings);
        cJSON_AddStringToObject(p.root, "model", o->model);
        cJSON_AddArrayToObject(p.root, "summary");
        cJSON_AddArrayToObject(p.root, "runs");
        cJSON_AddArrayToObject(p.root, "select");
    }
    if (rc == 0) {
        p.runs = cJSON_GetObjectItem(p.root, "runs");
        p.select = cJSON_GetObjectItem(p.root, "select");
        if (!cJSON_IsArray(p.select)) cJSON_DeleteItemFromObject(p.root, "select"), p.select = cJSON_AddArrayToObject(p.root, "select");
    }
    uint8_t *F[2], *V[2], *R = xcalloc((size_t)p.np, 1);
    for (int k = 0; k < 2; k++) F[k] = xcalloc((size_t)p.np, 1), V[k] = xcalloc((size_t)p.np, 1);
    const double t_start = now_seconds();
    for (int seed = 1; seed <= o->seeds && rc == 0 && !stop_now(&p); seed++) {
        rc = choose_people(&p, seed, F, V, R, e);
        for (int know = 0; know < 2 && rc == 0 && !stop_now(&p); know++) {
            char key[96];
            snprintf(key, sizeof key, "s%d/none/original/%s", seed, KNOW[know]);
            if (!find(p.runs, key)) rc = record(&p, key, UL_N_METHODS, "original", know, seed, 0, 0, 0, NULL, &p.m0, F[know], R, e);
        }
        Mllm ref = {0};
        int have_ref = 0;
        for (int mi = 0; mi < n_methods && rc == 0 && !stop_now(&p); mi++) {
            const UlMethod k = methods[mi];
            if (!o->quiet) fprintf(stderr, "pulse: seed %d, %s (%.0f s in)\n", seed, UL_METHOD_NAMES[k], now_seconds() - t_start);
            if (k == UL_NPO && !have_ref) rc = npo_reference(&p, seed, R, &ref, e), have_ref = rc == 0;
            for (int know = 0; know < 2 && rc == 0 && !stop_now(&p); know++) {
                double lr = 0;
                int epochs = 0;
                rc = select_setting(&p, k, know, seed, V[know], R, have_ref ? &ref : NULL, &lr, &epochs, e);
                if (rc == 0) rc = batch_run(&p, k, know, seed, F[know], R, have_ref ? &ref : NULL, lr, epochs, e);
                if (rc == 0 && !stop_now(&p) && (know == 0 || o->sequential_both))
                    rc = sequential_run(&p, k, know, seed, F[know], R, have_ref ? &ref : NULL, lr, epochs, e);
            }
        }
        if (have_ref) mllm_free(&ref);
    }
    const int stopped = rc == 0 && stop_now(&p);
    if (rc == 0) rc = save(&p, e);
    if (rc == 0 && !stopped) rc = pulse_report(o->out, e);
    for (int k = 0; k < 2; k++) free(F[k]), free(V[k]);
    free(R);
    cJSON_Delete(p.root);
    free(p.path);
    world_free(p.w);
    sp_free(p.t);
    mllm_free(&p.m0);
    return rc ? -1 : stopped;
}
