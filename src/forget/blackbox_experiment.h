/* forget experiment blackbox: every black-box method at an equal query budget on one model and
 * data set, several seeds, suffix lengths, both reveal modes; servers started in process on
 * loopback. Writes DIR/results.json (after every run, atomically; an interrupted experiment
 * resumes from it), DIR/results.md and DIR/report.html (SVG plots: H against L, H against
 * queries). */
#ifndef FORGET_BLACKBOX_EXPERIMENT_H
#define FORGET_BLACKBOX_EXPERIMENT_H

#include "core/err.h"

typedef struct {
    const char *model, *dataset, *data_dir, *out;
    int precision; /* the served model's (and coop's) Precision */
    const char *methods;  /* comma-separated; NULL: all */
    const char *lengths;  /* "1,2,4,8,16" */
    double forget_ratio;  /* the first round(ratio * C) classes are forgotten, as BBF does */
    int seeds, length_seeds, L, shots, labels;
    long budget;
    int quiet;
} BbExperimentOpts;

#include "forget/blackbox.h"

void bb_experiment_defaults(BbExperimentOpts *o);
/* One run's report (forget blackbox --report FILE): before/after table and H against queries. */
/* A result's fields (suffix, err_forget, acc_keep, H, validation_H, queries, eval_queries, seconds,
 * revealed, zero_shot, curve: [[queries, H], ...]) added to the JSON object j. */
struct cJSON;
void blackbox_result_json(struct cJSON *j, const BlackboxResult *r);
int blackbox_write_report(const BlackboxOpts *o, const BlackboxResult *r, const char *path, Err *e);
int bb_experiment_run(const BbExperimentOpts *o, Err *e);

#endif
