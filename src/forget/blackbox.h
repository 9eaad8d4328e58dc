/* Black-box forgetting through the API: find what to add to every class prompt so that the
 * served classifier fails on the classes to forget and keeps the others.
 *   strict (words only, any server): dirichlet (OUR RECONSTRUCTION), random, greedy, ga, bdpl
 *     prompt "a photo of a {class} w1 .. wL."
 *   loose (context embeddings, servers started with --allow-embeddings): bbt, bbf
 *     prompt "[SOT] p1 .. pm {class}. [EOT]"
 *   white box (in process, the model file in hand): coop, same prompt as the loose ones
 * Fitness on k-shot training ids: BBF's loss when probabilities are revealed, 1 - H when only
 * labels are. A population is one request. The best candidate by k-shot validation H is kept and
 * measured on the whole split of the evaluation API. Under mpirun each rank scores a share of
 * every population through its own connection; the search is the same as serial for a seed. */
#ifndef FORGET_BLACKBOX_H
#define FORGET_BLACKBOX_H

#include <stdint.h>

#include "core/dist.h"
#include "core/err.h"
#include "forget/dirichlet_search.h"

typedef struct {
    const char *api, *eval_api, *api_key;
    const char *forget;   /* comma-separated class names or indices */
    const char *method;
    const char *tpl;      /* "a photo of a {}" — the suffix and "." follow */
    const char *wordlist; /* NULL: wamerican */
    int suffix_len, shots, vocab_max;
    int n_ctx, bbt_d, bbf_ds, bbf_du;     /* loose methods and coop */
    const char *model, *dataset, *data_dir; /* coop: the weights and the split the API serves */
    int precision;                          /* coop: a Precision for the weights' products */
    int coop_steps;
    DirichletParams dirichlet; /* the strict method's settings (lambda: every strict method's population) */
    long budget; /* classify queries of the search (validation included) */
    int curve_points; /* test-split H of the best-so-far candidate this many times during the search */
    uint64_t seed;
    int quiet;
    const Dist *dist; /* NULL: serial */
} BlackboxOpts;

enum { BLACKBOX_MAX_CURVE = 64 };

typedef struct {
    char suffix[512];                        /* the words (strict), "(context)" otherwise */
    char settings[256];                      /* dirichlet: the search's settings as --dirichlet reads them; "" otherwise */
    double err_forget, acc_keep, h;          /* with the suffix, on the evaluation split */
    double base_err, base_acc, base_h;       /* zero-shot, no suffix */
    double val_h;                            /* k-shot validation H of the chosen candidate */
    long queries, eval_queries;
    double seconds;
    int labels_only, family;                 /* family: 0 strict, 1 loose, 2 white box */
    int n_curve;
    long curve_queries[BLACKBOX_MAX_CURVE];
    double curve_h[BLACKBOX_MAX_CURVE];      /* test-split H of the best-so-far candidate */
} BlackboxResult;

void blackbox_defaults(BlackboxOpts *o);
/* 0 strict, 1 loose, 2 white box, -1 unknown. */
int blackbox_family(const char *method);
int blackbox_run(const BlackboxOpts *o, BlackboxResult *r, Err *e);

#endif
