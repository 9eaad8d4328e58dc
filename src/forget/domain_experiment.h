/* forget experiment domain: every domain-unlearning method and ablation (forget/domain.h) on
 * every forget setting of a data set, for several seeds, into DIR/results.json ({"runs": [...],
 * "summary": [{"method", "forget_domains", "H", "mem", "for", "h_std", ...}]}, rewritten after each
 * run, so a rerun with the same DIR resumes), DIR/results.md (the main table, the ablations, the
 * domain probe, cost) and DIR/report.html (the tables and the feature map: t-SNE of test image
 * features coloured by domain, zero-shot beside ADU). Settings: fmnist-domains forgets sketch;
 * sketch and negative; sketch, negative and painting; emoji100 forgets line art, then colour. */
#ifndef FORGET_DOMAIN_EXPERIMENT_H
#define FORGET_DOMAIN_EXPERIMENT_H

#include "forget/domain.h"

typedef struct {
    DomainOpts run;        /* model, dataset, data_dir and the methods' settings */
    const char *out;       /* DIR */
    const char *methods;   /* comma-separated; NULL: all */
    const char *settings;  /* "sketch;sketch,negative"; NULL: the data set's */
    int seeds;
    int map_points;        /* test images in the feature map (default 1200) */
    int ablation_settings; /* run the ablations on the first N settings only (0: all) */
} DomainExperimentOpts;

void domain_experiment_defaults(DomainExperimentOpts *o);
int domain_experiment_run(const DomainExperimentOpts *o, Err *e);

#endif
