/* Strict black-box forgetting through the API alone: find a word suffix that, appended to
 * every class prompt ("a photo of a {class} w1 .. wL."), makes the served classifier fail on
 * the classes to forget and keep the others. Fitness on k-shot training ids: BBF's loss when
 * probabilities are revealed, 1 - H when only labels are. The best suffix is chosen on k-shot
 * validation ids; the result is measured on a whole split (--eval-api). */
#ifndef FORGET_BLACKBOX_H
#define FORGET_BLACKBOX_H

#include <stdint.h>

#include "core/err.h"

typedef struct {
    const char *api, *eval_api, *api_key;
    const char *forget;   /* comma-separated class names or indices */
    const char *method;   /* "dirichlet" (reconstruction), "random", "greedy" or "ga" */
    const char *tpl;      /* "a photo of a {}" — the suffix and "." follow */
    const char *wordlist; /* NULL: wamerican */
    int suffix_len, shots, vocab_max;
    long budget; /* classify queries for the search (validation included) */
    uint64_t seed;
    int quiet;
} BlackboxOpts;

typedef struct {
    char suffix[512];
    double err_forget, acc_keep, h;          /* with the suffix, on the evaluation split */
    double base_err, base_acc, base_h;       /* zero-shot, no suffix */
    long queries, eval_queries;
    double seconds;
    int labels_only;
} BlackboxResult;

void blackbox_defaults(BlackboxOpts *o);
int blackbox_run(const BlackboxOpts *o, BlackboxResult *r, Err *e);

#endif
