/* The options forget attack and forget redteam share (cli_attack.c): the attack settings table and
 * its JSON result. */
#ifndef FORGET_CLI_ATTACK_H
#define FORGET_CLI_ATTACK_H

#include <cjson/cJSON.h>

#include "cli/opts.h"
#include "forget/diffusion/attack.h"

/* Appends the attack settings' options (budget, eval, steps, cfg, neighbours, ...) to opts from
 * index *n on; strings land in the pointers given. */
void cli_attack_opts(Opt *opts, int *n, AttackOpts *o, const char **vocab, const char **exclude);
cJSON *cli_attack_json(const AttackOpts *o, const AttackResult *r);
/* A 2-row PNG: the plain prompt's images, then the attack's. */
int cli_attack_grid(const AttackResult *r, const char *path, Err *e);

#endif
