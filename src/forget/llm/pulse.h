/* The PULSE protocol on the MLLM (Kawakami et al., arXiv 2507.01271; OUR RECONSTRUCTION of what is
 * not public, ../shared/methods/mllm-unlearning.md §5.1, docs/pulse.md):
 *   scenario 1  forget F_A (people of set A: knowledge from pre-training) versus F_B (set B: the last
 *               fine-tune's), each with the method's setting chosen on validation people V_A / V_B;
 *   scenario 2  F_A split into `chunks` requests applied one after another, each to the latest model
 *               with the same setting, against the one batch run on their union.
 * After every operation: forget-set (trained forms) and test-set (held-out forms) accuracy of the
 * people forgotten so far, retain-set and general-benchmark accuracy; 4-choice, ROUGE-L and cloze,
 * image+text and text-only apart. Selection rule (validation people only): the smallest learning
 * rate of the grid whose run brings the validation people's 4-choice accuracy to <= target within
 * max_epochs, stopped at the first epoch that does; the same grid and epoch budget for every method.
 * DIR/results.json is written after every operation and a rerun resumes (a sequential run from the
 * model of the step it reached); results.md and report.html at the end. */
#ifndef FORGET_FORGET_LLM_PULSE_H
#define FORGET_FORGET_LLM_PULSE_H

#include "core/err.h"

typedef struct {
    const char *model, *tokenizer, *out;
    const char *methods;     /* comma list (default: all six) */
    int seeds;
    int forget_count, val_count, chunks;
    const char *lrs;         /* the grid, ascending */
    int max_epochs, batch;
    double target;           /* validation 4-choice accuracy a setting must reach */
    int lora_rank;
    float lora_alpha;
    int parts;               /* UL_PART_* */
    int retain_limit, general_limit; /* questions measured (0: all) */
    int ref_epochs;          /* npo's reference: passes over the retain questions */
    int sequential_both;     /* scenario 2 on set B as well */
    int quiet;
    long stop_after_ops;     /* > 0: stop after this many operations, as if killed (tests) */
} PulseOpts;

void pulse_defaults(PulseOpts *o);
/* 0 done, 1 stopped by stop_after_ops, -1 error. */
int pulse_run(const PulseOpts *o, Err *e);
/* From DIR/results.json: the summary, results.md and report.html. */
int pulse_report(const char *dir, Err *e);

#endif
