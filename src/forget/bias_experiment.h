/* forget experiment bias: every debiasing method of debias.h on one model, with the bias and the
 * general knowledge measured on the same model, the calibration's lambda and mu chosen on a
 * validation split, and results.json, results.md and report.html (bias reduction against retained
 * general accuracy, one point per method, an arrow from each projection to its calibrated
 * version) written to the output directory.
 * Settings:
 *   emoji     (emoji-biased-clip) neutral profession/activity queries retrieve people emoji; the
 *             bias is MaxSkew@K of gender and skin tone (KL@K, NDKL beside); general knowledge is
 *             zero-shot top-1 on emoji100 and on every emoji group and subgroup as its own task
 *   spurious  (fmnist-spurious-clip) zero-shot classification of tinted Fashion-MNIST; the bias is
 *             1 - the worst-group accuracy over (class, tint) groups (MaxSkew of
 *             the tint in each class query's retrievals beside); general knowledge is zero-shot
 *             top-1 on Fashion-MNIST, its four domains and the tinted test set
 * Validation: the emoji val split and the other half of the neutral phrases; training images of
 * the Fashion-MNIST sets (tints balanced as in the test split). The test figures never choose anything. */
#ifndef FORGET_BIAS_EXPERIMENT_H
#define FORGET_BIAS_EXPERIMENT_H

#include <stdint.h>

#include "core/err.h"

typedef struct {
    const char *model, *out, *setting, *data_dir;
    int precision; /* a Precision for the towers' products (core/gemm_mixed.h) */
    const char *methods; /* NULL: all */
    const char *vocab_file; /* the general vocabulary, one word or phrase per line (NULL: wamerican) */
    const char *queries;    /* test queries: "phrase<TAB>attribute[,attribute]" per line (NULL: the defaults) */
    int K, vocab, quiet;
    uint64_t seed;
} BiasExperimentOpts;

void bias_experiment_defaults(BiasExperimentOpts *o);
int bias_experiment_run(const BiasExperimentOpts *o, Err *e);
/* forget debias: one method (calibrated when asked, with lambda and mu) built from the setting's
 * data (o->model, o->setting, o->data_dir, o->vocab, o->seed) and written to out. */
int debias_build_for_setting(const BiasExperimentOpts *o, const char *method, int calibrate, double lambda, double mu, int dims,
                             const char *out, Err *e);

#endif
