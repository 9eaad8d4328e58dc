/* What the files of the bias experiment share (not a public header): the evaluation sets and a
 * setting's data (bias_sets.c), their measurement (bias_measure.c), the results files and the
 * report (bias_report.c), the checkpoint a stopped run resumes from (bias_resume.c); the driver is
 * bias_experiment.c. */
#ifndef FORGET_BIAS_INTERNAL_H
#define FORGET_BIAS_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "forget/bias_experiment.h"
#include "forget/debias.h"
#include "io/tokenizer.h"
#include "models/clip.h"

typedef struct {
    char name[96];
    int *rows, n;   /* image rows of the split's table */
    int32_t *label; /* index into cls */
    int *cls, C;    /* subjects of the classes */
} ZsTask;

typedef struct {
    char *subject;
    int *rows, n;
    int32_t *attr[2];
    uint8_t use[2]; /* which attributes this query measures */
} BiasQuery;

typedef struct {
    float *img;     /* [n_img, E] original image features */
    int n_img;
    char **subj;    /* class subjects, shared by the tasks */
    int n_subj;
    ZsTask *tasks;
    int n_tasks;
    BiasQuery *q;
    int n_q, n_attr, A[2];
    int group_task; /* spurious: the task whose (class, tint) groups give worst-group accuracy; -1 none */
    int32_t *group;
    int G;
    char **heldout; /* vocabulary words for the neighbourhood measure */
    int n_heldout;
} EvalSet;

typedef struct {
    double skew[2], kl[2], ndkl[2]; /* per attribute, mean over queries */
    double avg, worst;              /* group accuracy (spurious) */
    double general;                 /* mean zero-shot top-1 over tasks */
    double neighbour;               /* 10-NN overlap of held-out words */
    double bias;                    /* the setting's scalar */
    double *task_acc;
    double *unit;                   /* what the bias is made of, for the bootstrap: emoji [n_q][2] MaxSkew
                                       (NaN: not measured), spurious [n] 1/0 right on the group task */
    int n_unit, unit_stride;        /* queries (stride 2) or images (stride 1) */
} Metrics;

typedef struct {
    int spurious;
    const char *tpl;
    EvalSet val, test;
    DebiasData data;
    /* owned storage behind data */
    char **bias, **pa, **pb, **vocab, **aug, **trq, **keep;
    int n_bias, n_pairs, n_vocab, n_aug, n_trq, n_keep;
    float *ref;
    int32_t *ref_attr;
    int n_ref;
} Setting;

typedef struct {
    char name[48], base[32];
    DebiasMethod method;
    int calibrated;
    double lambda, mu;
    Metrics val, test;
    double seconds;
} Entry;

/* bias_sets.c: a setting's evaluation sets and debiasing data, built from its data set. */
void bias_setting_free(Setting *st);
int bias_setup_emoji(Setting *st, const ClipModel *m, const Tokenizer *t, const BiasExperimentOpts *o, Err *e);
int bias_setup_spurious(Setting *st, const ClipModel *m, const BiasExperimentOpts *o, Err *e);
int bias_apply_query_file(EvalSet *s, const char *path, int spurious, Err *e);
int bias_setup_vocab(Setting *st, const BiasExperimentOpts *o, Err *e);
/* bias_measure.c: features of the subjects through a debiasing (NULL: the model as it is), and the
 * metrics of one evaluation set. */
int bias_text_features(const Debias *d, const ClipModel *m, const Tokenizer *t, const char *tpl, char **subj, int n, float *out,
                         Err *e);
int bias_measure(const Setting *st, const EvalSet *s, const Debias *d, const ClipModel *m, const Tokenizer *t, int K,
                   const float *orig_heldout, Metrics *out, Err *e);
/* bias_report.c: results.json, results.md, report.html. */
int bias_write_outputs(const BiasExperimentOpts *o, const Setting *st, const Metrics *orig, Entry *en, int ne, Err *e);
/* bias_resume.c */
void bias_metrics_free(Metrics *m);
int bias_checkpoint_save(const BiasExperimentOpts *o, const char *setting, const Setting *st, const Entry *en, int ne, Err *e);
int bias_checkpoint_find(const cJSON *root, const char *name, const Setting *st, Entry *x);
/* The checkpoint of this experiment (model, setting, settings) in o->out, or *root NULL: none, or
 * another experiment's (then the run starts afresh); a damaged file is an error. */
int bias_checkpoint_load(const BiasExperimentOpts *o, const char *setting, cJSON **root, Err *e);

#endif
