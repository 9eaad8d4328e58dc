#include "forget/bias_experiment.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/gemm.h"
#include "core/ops.h"
#include "core/progress.h"
#include "core/threads.h"
#include "eval/bias_metrics.h"
#include "eval/svg_plot.h"
#include "forget/bias_internal.h"
#include "forget/debias.h"
#include "forget/vocab.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/json_file.h"
#include "io/emoji.h"
#include "models/clip_encode.h"
#include "io/file_open.h"

void bias_experiment_defaults(BiasExperimentOpts *o) {
    memset(o, 0, sizeof *o);
    o->K = 8;
    o->vocab = 2000;
    o->seed = 1;
}

/* The setting's name, the model (both towers) and the user's files, all checked before minutes of
 * loading; what names the command in errors. */
static int open_setting(const BiasExperimentOpts *o, const char *what, const char **setting, ClipModel *m, Err *e) {
    *setting = o->setting;
    if (!*setting) *setting = strstr(o->model, "emoji") ? "emoji" : strstr(o->model, "fmnist") ? "spurious" : NULL;
    if (!*setting || (strcmp(*setting, "emoji") && strcmp(*setting, "spurious")))
        return err_set(e, "--setting must be emoji or spurious (it could not be told from the model's file name)");
    if (clip_load(m, o->model, NULL, e)) return -1;
    if (o->precision != PREC_FP32 && clip_set_precision(m, (Precision)o->precision, e)) {
        clip_free(m);
        return -1;
    }
    if (!m->cfg.has_text || !m->cfg.has_vision) {
        const char *lacks = m->cfg.has_text ? "the image tower" : "the text tower";
        clip_free(m);
        return err_set(e, "%s: %s needs both towers (this model lacks %s)", o->model, what, lacks);
    }
    int rc = o->queries ? bias_apply_query_file(NULL, o->queries, strcmp(*setting, "spurious") == 0, e) : 0;
    if (rc == 0 && o->vocab_file) {
        Vocab v;
        if ((rc = vocab_load_strict(&v, o->vocab_file, e)) == 0) vocab_free(&v);
    }
    if (rc) clip_free(m);
    return rc;
}

int bias_experiment_run(const BiasExperimentOpts *o, Err *e) {
    if (mkdir(o->out, 0755) != 0) {
        struct stat sb;
        if (stat(o->out, &sb) != 0 || !S_ISDIR(sb.st_mode)) return err_set(e, "cannot create the output directory %s", o->out);
    }
    const char *setting;
    ClipModel m;
    Tokenizer t;
    if (open_setting(o, "a bias experiment", &setting, &m, e)) return -1;
    if (tokenizer_init(&t, e)) return clip_free(&m), -1;
    Setting st;
    memset(&st, 0, sizeof st);
    double t0 = now_seconds();
    if (!o->quiet) fprintf(stderr, "encoding the %s setting's images (validation, test, references)...\n", setting);
    int rc = strcmp(setting, "emoji") == 0 ? bias_setup_emoji(&st, &m, &t, o, e) : bias_setup_spurious(&st, &m, o, e);
    if (rc == 0) rc = bias_setup_vocab(&st, o, e);
    if (rc == 0 && o->queries) rc = bias_apply_query_file(&st.test, o->queries, st.spurious, e);
    if (!o->quiet && rc == 0)
        fprintf(stderr, "%s setting: %d/%d validation/test queries, %d/%d tasks, %d reference images, %d vocabulary words (%.1f s)\n",
                setting, st.val.n_q, st.test.n_q, st.val.n_tasks, st.test.n_tasks, st.n_ref, st.n_vocab, now_seconds() - t0);
    const int E = m.cfg.embed_dim;
    float *oh_val = NULL, *oh_test = NULL;
    Metrics orig_val = {0}, orig_test = {0};
    if (rc == 0) { /* the held-out words' original features, and the model as it is */
        oh_val = xalloc_floats((size_t)st.val.n_heldout * E), oh_test = xalloc_floats((size_t)st.test.n_heldout * E);
        rc = bias_text_features(NULL, &m, &t, st.tpl, st.val.heldout, st.val.n_heldout, oh_val, e);
        if (rc == 0) rc = bias_text_features(NULL, &m, &t, st.tpl, st.test.heldout, st.test.n_heldout, oh_test, e);
        if (rc == 0) l2norm_forward(oh_val, NULL, oh_val, st.val.n_heldout, E), l2norm_forward(oh_test, NULL, oh_test, st.test.n_heldout, E);
        if (rc == 0) rc = bias_measure(&st, &st.val, NULL, &m, &t, o->K, oh_val, &orig_val, e);
        if (rc == 0) rc = bias_measure(&st, &st.test, NULL, &m, &t, o->K, oh_test, &orig_test, e);
        if (rc == 0 && !o->quiet)
            fprintf(stderr, "original: bias %.4f, general accuracy %.2f%% (test)\n", orig_test.bias, 100 * orig_test.general);
    }
    Entry *en = xcalloc(DB_N_METHODS + 3, sizeof(Entry));
    int ne = 0;
    DebiasParams p;
    debias_params_default(&p);
    p.dims = E / 8;
    p.seed = o->seed;
    cJSON *ckpt = NULL;
    if (rc == 0) rc = bias_checkpoint_load(o, setting, &ckpt, e);
    for (int k = 0; k < DB_N_METHODS && rc == 0; k++) {
        if (o->methods && !strstr(o->methods, DEBIAS_METHODS[k].name)) continue;
        if (bias_checkpoint_find(ckpt, DEBIAS_METHODS[k].name, &st, &en[ne])) {
            ne++;
            continue;
        }
        double ts = now_seconds();
        Debias d;
        Entry *x = &en[ne];
        snprintf(x->name, sizeof x->name, "%s", DEBIAS_METHODS[k].name);
        x->method = (DebiasMethod)k;
        if ((rc = debias_build(&d, (DebiasMethod)k, &m, &t, &st.data, &p, e)) != 0) break;
        rc = bias_measure(&st, &st.val, &d, &m, &t, o->K, oh_val, &x->val, e);
        if (rc == 0) rc = bias_measure(&st, &st.test, &d, &m, &t, o->K, oh_test, &x->test, e);
        x->seconds = now_seconds() - ts;
        ne++;
        if (!o->quiet && rc == 0)
            fprintf(stderr, "%-12s bias %.4f (reduction %.1f%%), general %.2f%% (%.1f s)\n", x->name, x->test.bias,
                    100 * (1 - x->test.bias / orig_test.bias), 100 * x->test.general, x->seconds);
        debias_free(&d);
        if (rc == 0) rc = bias_checkpoint_save(o, setting, &st, en, ne, e);
    }
    /* the calibration on top of each projection; lambda, mu chosen on validation */
    static const double LAMBDAS[3] = {0, 100, 1000}, MUS[8] = {1, 3, 10, 30, 100, 300, 1000, 3000};
    const int nbase = ne;
    for (int b = 0; b < nbase && rc == 0; b++) {
        if (DEBIAS_METHODS[en[b].method].family != DB_PROJECTION || en[b].calibrated) continue;
        char cname[48];
        snprintf(cname, sizeof cname, "%s+cal", DEBIAS_METHODS[en[b].method].name);
        if (bias_checkpoint_find(ckpt, cname, &st, &en[ne])) {
            ne++;
            continue;
        }
        const double base_red = 1 - en[b].val.bias / orig_val.bias;
        double best_score = -INFINITY, bl = 0, bm = 0;
        int found = 0;
        double ts = now_seconds();
        Debias d; /* built once: each calibration starts again from its uncalibrated projection */
        if ((rc = debias_build(&d, en[b].method, &m, &t, &st.data, &p, e)) != 0) break;
        char label[64];
        snprintf(label, sizeof label, "tuning %s+cal", DEBIAS_METHODS[en[b].method].name);
        Progress prog;
        progress_start(&prog, label, 3 * 8, o->quiet);
        for (int li = 0; li < 3 && rc == 0; li++)
            for (int mi = 0; mi < 8 && rc == 0; mi++) {
                progress_update(&prog, li * 8 + mi, 1, "pairs", "lambda, mu on validation");
                Metrics mv;
                rc = debias_calibrate(&d, &m, &t, &st.data, LAMBDAS[li], MUS[mi], e);
                if (rc == 0) rc = bias_measure(&st, &st.val, &d, &m, &t, o->K, NULL, &mv, e);
                if (rc) break;
                const double red = 1 - mv.bias / orig_val.bias;
                /* keep >= 97% of the base's validation reduction (a margin over the 95% asked on test), then
                 * the most general accuracy; failing that, the most reduction */
                const int ok = red >= 0.97 * base_red;
                const double score = ok ? 10 + mv.general : red;
                if ((ok && !found) || (ok == found && score > best_score)) best_score = score, bl = LAMBDAS[li], bm = MUS[mi], found |= ok;
                bias_metrics_free(&mv);
            }
        progress_end(&prog);
        if (rc) {
            debias_free(&d);
            break;
        }
        Entry *x = &en[ne];
        snprintf(x->name, sizeof x->name, "%s+cal", DEBIAS_METHODS[en[b].method].name);
        snprintf(x->base, sizeof x->base, "%s", DEBIAS_METHODS[en[b].method].name);
        x->method = en[b].method, x->calibrated = 1, x->lambda = bl, x->mu = bm;
        rc = debias_calibrate(&d, &m, &t, &st.data, bl, bm, e);
        if (rc == 0) rc = bias_measure(&st, &st.val, &d, &m, &t, o->K, oh_val, &x->val, e);
        if (rc == 0) rc = bias_measure(&st, &st.test, &d, &m, &t, o->K, oh_test, &x->test, e);
        if (rc == 0 && o->out) { /* the calibrated transform itself, for forget classify/embed --debias */
            char *path = xasprintf("%s/%s.debias.safetensors", o->out, x->name);
            rc = debias_save(&d, path, e);
            free(path);
        }
        debias_free(&d);
        x->seconds = now_seconds() - ts;
        ne++;
        if (!o->quiet && rc == 0)
            fprintf(stderr, "%-12s lambda %g mu %g: bias %.4f (reduction %.1f%%), general %.2f%% (%.1f s with tuning)\n", x->name, bl, bm,
                    x->test.bias, 100 * (1 - x->test.bias / orig_test.bias), 100 * x->test.general, x->seconds);
        if (rc == 0) rc = bias_checkpoint_save(o, setting, &st, en, ne, e);
    }
    cJSON_Delete(ckpt);
    if (rc == 0) rc = bias_write_outputs(o, &st, &orig_test, en, ne, e);
    if (rc == 0 && !o->quiet) fprintf(stderr, "wrote %s/results.json, results.md, report.html (%.0f s)\n", o->out, now_seconds() - t0);
    for (int i = 0; i < ne; i++) bias_metrics_free(&en[i].val), bias_metrics_free(&en[i].test);
    bias_metrics_free(&orig_val), bias_metrics_free(&orig_test);
    free(en), free(oh_val), free(oh_test);
    bias_setting_free(&st);
    tokenizer_free(&t);
    clip_free(&m);
    return rc;
}

int debias_build_for_setting(const BiasExperimentOpts *o, const char *method, int calibrate, double lambda, double mu, int dims,
                             const char *out, Err *e) {
    DebiasMethod dm;
    if (debias_method_from_name(method, &dm))
        return err_set(e, "--method: \"%s\" is not a debiasing method (orth-proj, orth-cali, bend-vlm, clip-clip, sfid, "
                          "prompt-array, dear)", method);
    if (calibrate && DEBIAS_METHODS[dm].family != DB_PROJECTION) return err_set(e, "--calibrate applies to projection methods (orth-proj, orth-cali, bend-vlm), not %s", method);
    const char *setting;
    ClipModel m;
    Tokenizer t;
    if (open_setting(o, "debiasing", &setting, &m, e)) return -1;
    if (tokenizer_init(&t, e)) return clip_free(&m), -1;
    Setting st;
    memset(&st, 0, sizeof st);
    int rc = strcmp(setting, "emoji") == 0 ? bias_setup_emoji(&st, &m, &t, o, e) : bias_setup_spurious(&st, &m, o, e);
    if (rc == 0) rc = bias_setup_vocab(&st, o, e);
    DebiasParams p;
    debias_params_default(&p);
    p.dims = dims > 0 ? dims : m.cfg.embed_dim / 8;
    p.seed = o->seed;
    Debias d;
    if (rc == 0) rc = debias_build(&d, dm, &m, &t, &st.data, &p, e);
    if (rc == 0) {
        if (calibrate) rc = debias_calibrate(&d, &m, &t, &st.data, lambda, mu, e);
        if (rc == 0) rc = debias_save(&d, out, e);
        debias_free(&d);
    }
    bias_setting_free(&st);
    tokenizer_free(&t);
    clip_free(&m);
    return rc;
}
