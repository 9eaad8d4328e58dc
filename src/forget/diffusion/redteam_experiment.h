/* forget experiment redteam: forget erase then forget redteam (each a child process, as forget
 * experiment erasure runs its erasures) for every erasure method and class asked for, into
 * DIR/<class>/<method>/; DIR/results.json holds every run and the summary over the classes
 *   {"summary": [{"erasure", "attack", "asr", "asr_before", "queries_to_success"}], "runs": [...]},
 * with results.md and report.html beside it. A rerun skips the (class, method) pairs whose
 * results.json is there. */
#ifndef FORGET_REDTEAM_EXPERIMENT_H
#define FORGET_REDTEAM_EXPERIMENT_H

#include "forget/diffusion/erasure_experiment.h"

typedef struct {
    ErasureExpOpts erase;       /* exe, unet, clip, vae, judge, out, concepts, methods, seed, step overrides */
    const char *external;
    char *const *redteam_args;  /* more arguments for every forget redteam (budget, eval, attacks, ...) */
    int n_redteam_args;
} RedteamExpOpts;

/* The erasure rows of the default run: the unerased model, then every method of the erasure issue. */
#define REDTEAM_EXP_METHODS "none,escape,esd-x,esd-u,fmn,uce,sld"

int redteam_exp_run(const RedteamExpOpts *o, Err *e);

#endif
