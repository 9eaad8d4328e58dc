/* forget redteam: every attack (attack.h) against one erased model, and, with --defend ROUNDS,
 * erase (escape) -> attack -> defend (defend.h) -> attack as one command. forget experiment
 * redteam runs it over every erasure method and class (redteam_experiment.c). Each writes
 * DIR/results.json, DIR/report.html (the ASR table and the seed's fig. 10 analogue: rows erasure
 * methods, columns no attack and each attack, cells one image and the ASR) and DIR/images/. */
#ifndef FORGET_REDTEAM_H
#define FORGET_REDTEAM_H

#include <cjson/cJSON.h>

#include "forget/diffusion/attack.h"

typedef struct {
    const char *unet, *clip, *vae, *erasure, *original, *judge, *external, *concept, *out;
    const char *label;        /* the erasure's row name (default: "escape", "sld", the UNet's erase.method, "none") */
    const char *attacks;      /* comma list (default: all) */
    AttackOpts attack;
    int defend;               /* rounds of the defence; the erasure is then an escape token trained here */
    const char *preserve;     /* the escape's preserve list (default: the judge's other classes) */
    int escape_steps;         /* 0: the method's default */
    int kept_per_class;       /* with --defend: images a class for the kept-class accuracy */
    uint64_t seed;
    int quiet;
} RedteamOpts;

void redteam_defaults(RedteamOpts *o);
/* Runs and writes DIR; *root (may be NULL) gets the results object (caller deletes). */
int redteam_run(const RedteamOpts *o, cJSON **root, Err *e);
/* DIR/report.html from a results object: {"runs": [...]} with "erasure", "concept", "attack",
 * "asr", "asr_before", "queries", "queries_to_success", "image" (relative to DIR) each; the
 * optional "summary" (mean over concepts) heads it. */
int redteam_write_report(const char *dir, const cJSON *root, const char *title, Err *e);

#endif
