/* Learning with Selective Forgetting (Shibata et al., IJCAI 2021) on a ResNet trained here:
 * class-incremental tasks arrive one at a time (multi-head, one cosine head per task), old data
 * is gone after its task, and deletion requests name classes of earlier tasks. Each class has a
 * random mnemonic code; kept classes are restored from their codes alone, deleted ones drift.
 *   code input:   LSF's code, an image mixed into the training images (mixup, Beta(1, 1));
 *   code feature: OUR RECONSTRUCTION of the programme's follow-up: the code is added at layer L
 *                 through a standardising layer, h' = Norm(h) + kappa Norm(c_y);
 *   code none:    the same training without codes (no L_key, no L_keep).
 * Losses (lsf_loss.h): L_new + L_key (AM-softmax) + EWC+ + selective LwF on the current and the
 * code-mixed images + L_keep on the kept classes' codes. SGD, lr 0.1, momentum 0.9, wd 5e-4,
 * one warm-up epoch, the rate times 0.2 at 20/30/60/80 % of each task (LSF's 40/60/120/160 of
 * 200 epochs, scaled to --epochs). Metrics after every task: accuracy on the kept classes of
 * earlier tasks, error on the deleted classes, accuracy on the current task, and H, the
 * harmonic mean of the accuracy on all non-deleted classes seen and the deleted-class error. */
#ifndef FORGET_LSF_H
#define FORGET_LSF_H

#include <stdint.h>

#include "core/err.h"
#include "io/dataset.h"

typedef enum { LSF_CODE_NONE = 0, LSF_CODE_INPUT, LSF_CODE_FEATURE } LsfCode;
const char *lsf_code_name(LsfCode c);
int lsf_code_parse(const char *s, LsfCode *c, Err *e);

enum { LSF_MAX_TASKS = 100 };

/* A deletion request: class (global id) and the task at whose start it arrives (the class's own
 * task + 1 unless given as CLASS@TASK). */
typedef struct {
    int cls, at;
} LsfDelete;

typedef struct {
    const char *dataset;  /* fmnist | emoji100 | cifar100:/path */
    const char *split;    /* "test" (default) or "val": where metrics are measured (tune on val) */
    int tasks;
    const char *delete_spec; /* "3,dress,7@4" (lsf_parse_deletes), parsed once the classes are known */
    LsfDelete *deletes;   /* or requests as structs; both NULL: the default requests (lsf_default_deletes) */
    int n_deletes;
    LsfCode code;
    int layer;            /* feature code: after the stem (0) or block L */
    float kappa;          /* the code's scale after standardising */
    const char *net;      /* resnet-20 ... */
    int epochs, batch, train_per_class, keep_batch, fisher_samples;
    int eval_per_class;   /* > 0: measure on the first N evaluation images of each class (default: all) */
    double lr;
    float s, m, T, lambda_ewc, lambda_lwf, lambda_keep;
    float lwf_target;     /* the deleted classes' distillation target u (default 0; < 0: LSF's 1/K, docs/lsf.md) */
    uint64_t seed;
    const char *out_dir;  /* the model, per-task checkpoints and results (NULL: none) */
    int quiet;
} LsfOpts;

void lsf_opts_default(LsfOpts *o);

/* The class order and task split of a run: task t holds classes task_first[t] .. + task_size[t]. */
typedef struct {
    int n_classes, tasks;
    int task_first[LSF_MAX_TASKS], task_size[LSF_MAX_TASKS];
    char **class_names; /* owned copies */
} LsfSplit;
int lsf_task_of(const LsfSplit *s, int cls);

/* Parses "3,dress,7@4" against the split (ids or class names, optional @TASK); -1 naming a bad
 * entry: an unknown class, a class of the current or a future task, a task out of range. */
int lsf_parse_deletes(const char *spec, const LsfSplit *s, LsfDelete **out, int *n, Err *e);
/* LSF's 5-task CIFAR-100 rule generalised: the first round(0.3 K) classes (at least 1) of each
 * task but the last, each requested at the next task. */
int lsf_default_deletes(const LsfSplit *s, LsfDelete **out);

typedef struct {
    int task;
    double kept_acc, deleted_err, current_acc, seen_acc, H; /* fractions; -1 where nothing to measure */
    int n_kept, n_deleted, n_current;
    double seconds;
} LsfTaskResult;

typedef struct {
    LsfSplit split;
    LsfTaskResult per_task[LSF_MAX_TASKS];
    int n_tasks;
    double seconds, train_images_per_s;
    /* the request check: after the task where each deletion arrived vs just before it */
    double before_kept_acc, after_kept_acc, after_deleted_err;
    LsfDelete *requests; /* the requests the run honoured, one per deleted class */
    int n_requests;
    float *class_acc; /* [n_tasks, n_classes]: accuracy of each seen class after each task (-1: unseen) */
} LsfResult;

/* Validates the options against the data (classes, tasks, layer) before any training. */
int lsf_run(const LsfOpts *o, LsfResult *r, Err *e);
void lsf_result_free(LsfResult *r);
/* {"options": ..., "per_task": [...], "final": {...}} */
char *lsf_result_json(const LsfOpts *o, const LsfResult *r);

#endif
