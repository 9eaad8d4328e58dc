/* Domain unlearning (Approximate Domain Unlearning, ADU, Kawamura et al. NeurIPS 2025;
 * ../shared/methods/vlm-domain.md): a frozen CLIP classifier with the fixed prompt "a photo of a
 * {class}." stops recognising images of the forgotten domains, for every class, and keeps the
 * other domains. Every method trains on the same few-shot split (shots per class and domain,
 * seeded) with the same two class losses (forget_loss_grad_samples: CE on kept-domain images,
 * CE to uniform on forgotten-domain images), keeps the epoch with the best validation H, and is
 * measured on the whole test split of every domain:
 *   adu               VPT-deep + InstaPG (models/clip_prompts.h) + DDL (forget/domain_loss.h)
 *   baseline          VPT-deep alone
 *   clipfit           the image tower's bias terms and LayerNorm parameters (CLIPFit)
 *   lp++              a linear probe on the image features, initialised from the text classifier
 *   bbf               BBF's context search (CMA-ES over text context embeddings, forget/
 *                     context_search.h) scored only through the classifier's outputs
 *   adu-ddl-only, adu-instapg-only   ablations: VPT + DDL, VPT + InstaPG
 *   ce-only, mmd-only                inside DDL (with InstaPG): gamma only, lambda only
 * Metrics: Mem (accuracy on kept-domain test images), For (error on forgotten-domain test
 * images), H (their harmonic mean), the accuracy per domain, and the accuracy of a linear domain
 * probe on the image features (fit on the validation split, measured on the test split) before
 * and after. */
#ifndef FORGET_DOMAIN_H
#define FORGET_DOMAIN_H

#include <stdint.h>

#include "core/err.h"

enum { DOMAIN_MAX = 16 };

typedef struct {
    const char *name;
    int vpt, instapg, ce, mmd; /* prompt methods: which parts */
    int kind;                  /* 0 prompts, 1 clipfit, 2 lp++, 3 bbf */
    const char *summary;
} DomainMethod;

extern const DomainMethod DOMAIN_METHODS[];
extern const int N_DOMAIN_METHODS;
const DomainMethod *domain_method_find(const char *name);

/* What an experiment's runs share: the data set's splits and the zero-shot test features of one
 * model (filled by the first run that needs them; domain_cache_free releases them). */
typedef struct DomainCache DomainCache;
DomainCache *domain_cache_new(void);
void domain_cache_free(DomainCache *c);

typedef struct {
    const char *model, *dataset, *data_dir, *forget, *method, *out, *tpl;
    int precision; /* a Precision for the frozen towers' products (core/gemm_mixed.h) */
    DomainCache *cache;        /* NULL: load everything for this run */
    int shots, val_shots;      /* per class and domain; validation from train where no val split */
    int tokens, layers, pg_layer; /* VPT tokens; prompted layers (0: 3/4 of the tower); InstaPG's block (-1: layers / 2) */
    int epochs, batch, eval_every; /* eval_every: epochs between validation checks */
    double lr, gamma, lambda;  /* lr 0: the method's default */
    int bbf_budget;            /* bbf: classify queries of the search */
    int max_test;              /* 0: the whole test split */
    uint64_t seed;
    int quiet;
} DomainOpts;

void domain_defaults(DomainOpts *o);
/* The learning rate a method runs with when --lr is not given (chosen on validation H, see
 * docs/domain.md). */
double domain_default_lr(const DomainMethod *dm);

typedef struct {
    char method[32], dataset[64];
    int n_domains, n_classes;
    char domain_names[DOMAIN_MAX][32];
    uint8_t forget[DOMAIN_MAX];
    double mem, forget_err, h;        /* with the method, on the test split */
    double base_mem, base_for, base_h; /* zero-shot */
    double dom_acc[DOMAIN_MAX], base_dom_acc[DOMAIN_MAX];
    double probe_before, probe_after; /* domain linear probe accuracy on the test features */
    double val_h;
    int best_epoch;
    long trainable, train_images, test_images;
    double seconds;
} DomainResult;

/* Parses "sketch,negative" against the data set's domain names into forget[]; an unknown name,
 * an empty list or every domain is an error naming it. */
int domain_parse_forget(const char *list, char *const *names, int n, uint8_t *forget, Err *e);

int domain_run(const DomainOpts *o, DomainResult *r, Err *e);

/* The feature map of the seed's fig. 5: *n test images of o's data set (a seeded random subset;
 * *n becomes the split's size where it holds fewer), their
 * normalised features without and with the prompts file (made by domain_run for o->model), each
 * embedded in 2-D by t-SNE: xy_before / xy_after [n, 2], dom [n]. Also the linear-probe domain
 * accuracy is in the runs; this is the picture. */
int domain_feature_map(const DomainOpts *o, const char *prompts_file, int *n, float *xy_before, float *xy_after,
                       int *dom, Err *e);

/* The result as a cJSON object (the caller deletes it): method, H / mem / for, zero-shot, per
 * domain, probes, cost. And back (for the experiment's runs); -1 with e naming the missing key. */
struct cJSON;
struct cJSON *domain_result_json(const DomainResult *r);
int domain_result_from_json(const struct cJSON *j, DomainResult *r, Err *e);

#endif
