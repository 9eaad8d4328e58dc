/* The defence of forget erase --method escape --adversarial ROUNDS (issue 17, in the spirit of
 * AdvUnlearn but on the text side only): rounds of
 *   erase   train the escape tokens (escape.h) on the erase set;
 *   attack  neighbours and unlearndiffatk (attack.h) against the model with those tokens;
 *   grow    what succeeded joins the erase set: the words a successful neighbours attack leaned
 *           on (positive weight, at least half the largest; never a word of a preserved concept)
 *           as aliases erased like the concept, and a successful unlearndiffatk prefix as one
 *           more template ("<prefix> a photo of a {}.");
 * and a last erase on the grown set. The attacks use seeds and images of their own; the final
 * judgement is forget redteam's. */
#ifndef FORGET_DEFEND_H
#define FORGET_DEFEND_H

#include "forget/diffusion/attack.h"
#include "forget/diffusion/erase.h"

typedef struct {
    const char *judge, *external; /* files */
    int rounds;
    AttackOpts attack;            /* budget, eval, steps ... (method, concept set per attack) */
} DefendOpts;

typedef struct {
    int round;
    double asr[2];                /* neighbours, unlearndiffatk against that round's tokens */
    int added_aliases, added_templates;
} DefendRound;

/* o: an escape erasure (o->unet the model attacked); writes o->out after every erase. log
 * [rounds] (may be NULL). */
int escape_defend(const EraseOpts *o, const DefendOpts *d, EraseResult *r, DefendRound *log, Err *e);
/* The rounds as an array named key of parent (forget erase --json, forget redteam's results). */
typedef struct cJSON cJSON;
void defend_rounds_json(cJSON *parent, const char *key, const DefendRound *log, int n);

#endif
