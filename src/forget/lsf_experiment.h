/* forget experiment lsf: the three code variants (none, input, feature) of LSF for several seeds
 * on one data set, into DIR/results.json ({"summary": [{"code", "H", "h_std", "kept_acc",
 * "deleted_err", ...}], "runs": [...]}, rewritten after every run so a rerun resumes; each run
 * also resumes mid-way from DIR/runs/CODE-SEED/), DIR/results.md and DIR/report.html (per-task
 * curves of the variants: the mean over seeds and a band of one standard deviation). */
#ifndef FORGET_LSF_EXPERIMENT_H
#define FORGET_LSF_EXPERIMENT_H

#include "forget/lsf.h"

typedef struct {
    LsfOpts run;       /* data set, tasks, schedule, layer, kappa: shared by every run */
    const char *out;   /* DIR */
    const char *codes; /* comma-separated; NULL: none,input,feature */
    int seeds;
} LsfExperimentOpts;

void lsf_experiment_defaults(LsfExperimentOpts *o);
int lsf_experiment_run(const LsfExperimentOpts *o, Err *e);

#endif
