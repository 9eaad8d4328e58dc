#include "forget/diffusion/defend.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"
#include "forget/diffusion/attack_victim.h"
#include "models/clip_encode.h"

/* w is a word of one of the preserved concepts (case-insensitive). */
static int preserved_word(const EraseOpts *o, const char *w) {
    for (int i = 0; i < o->n_preserve; i++) {
        const char *p = o->preserve[i];
        const size_t n = strlen(w);
        for (const char *s = p; *s; s++)
            if ((s == p || s[-1] == ' ' || s[-1] == '-') && strncasecmp(s, w, n) == 0 &&
                (s[n] == 0 || s[n] == ' ' || s[n] == '-'))
                return 1;
    }
    return 0;
}

static int has(char **list, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0) return 1;
    return 0;
}

int escape_defend(const EraseOpts *base, const DefendOpts *d, EraseResult *res, DefendRound *log, Err *e) {
    if (base->method != ERASE_ESCAPE) return err_set(e, "--adversarial is a defence of the escape token only");
    if (!base->unet || !d->judge || !d->external)
        return err_set(e, "--adversarial needs --model (the UNet attacked), --judge and --external");
    EraseOpts o = *base;
    Judge j;
    ClipModel ext;
    if (judge_load(&j, d->judge, e)) return -1;
    const ClipLoadOpts lo = {.act_override = -1};
    if (clip_load(&ext, d->external, &lo, e)) return judge_free(&j), -1;
    char **alias = NULL, **tpl = NULL;
    int na = 0, ntp = 0, rc = 0;
    int n0 = o.escape.n_templates;
    const char *const *tpl0 = o.escape.templates ? o.escape.templates : escape_templates(&n0);
    const double t0 = now_seconds();
    for (int round = 0; round <= d->rounds && !rc; round++) {
        o.escape.aliases = (const char *const *)alias, o.escape.n_aliases = na;
        o.escape.extra_templates = (const char *const *)tpl, o.escape.n_extra_templates = ntp;
        rc = erase_run(&o, res, e);
        if (rc || round == d->rounds) break;
        VictimHold h;
        if (victim_open_local(&h, o.unet, o.clip, o.vae, o.out, NULL, e)) {
            rc = -1;
            break;
        }
        DefendRound lg = {.round = round + 1};
        const int methods[2] = {ATTACK_NEIGHBOURS, ATTACK_UNLEARNDIFF};
        for (int a = 0; a < 2 && !rc; a++) {
            AttackOpts ao = d->attack;
            ao.method = methods[a], ao.concept = o.concept, ao.external = &ext, ao.quiet = 1;
            ao.seed = d->attack.seed + 7919u * (uint64_t)(round + 1); /* new seeds each round */
            AttackResult ar;
            if (attack_run(&h.v, &j, &ao, &ar, e)) {
                rc = -1;
                break;
            }
            lg.asr[a] = ar.asr;
            if (ar.asr > 0 && methods[a] == ATTACK_NEIGHBOURS) {
                float top = 0;
                for (int q = 0; q < ar.n_terms; q++) top = ar.term_weights[q] > top ? ar.term_weights[q] : top;
                for (int q = 0; q < ar.n_terms; q++)
                    if (top > 0 && ar.term_weights[q] >= 0.5f * top && !preserved_word(&o, ar.terms[q]) &&
                        !has(alias, na, ar.terms[q])) {
                        alias = xrealloc(alias, sizeof(char *) * (size_t)(na + 1));
                        alias[na++] = xstrdup(ar.terms[q]), lg.added_aliases++;
                    }
            }
            if (ar.asr > 0 && methods[a] == ATTACK_UNLEARNDIFF && ar.text) { /* "<prefix> a photo of a {}." */
                char *plain = clip_prompt_fill(ao.template_, o.concept);
                const size_t lt = strlen(ar.text), lp = strlen(plain);
                if (lt > lp && strcmp(ar.text + lt - lp, plain) == 0) {
                    char *t = xasprintf("%.*s%s", (int)(lt - lp), ar.text, ao.template_);
                    int dup = has(tpl, ntp, t);
                    for (int q = 0; q < n0; q++) dup |= strcmp(tpl0[q], t) == 0;
                    if (!dup) {
                        tpl = xrealloc(tpl, sizeof(char *) * (size_t)(ntp + 1));
                        tpl[ntp++] = t, lg.added_templates++;
                    } else
                        free(t);
                }
                free(plain);
            }
            attack_result_free(&ar);
        }
        victim_close(&h);
        if (!o.quiet)
            fprintf(stderr, "defence round %d: ASR neighbours %.2f, unlearndiffatk %.2f; +%d aliases, +%d templates\n",
                    lg.round, lg.asr[0], lg.asr[1], lg.added_aliases, lg.added_templates);
        if (log) log[round] = lg;
    }
    if (!rc) res->seconds = now_seconds() - t0;
    for (int i = 0; i < na; i++) free(alias[i]);
    for (int i = 0; i < ntp; i++) free(tpl[i]);
    free(alias), free(tpl);
    clip_free(&ext);
    judge_free(&j);
    return rc;
}

void defend_rounds_json(cJSON *parent, const char *key, const DefendRound *log, int n) {
    cJSON *a = cJSON_AddArrayToObject(parent, key);
    for (int i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "round", log[i].round);
        cJSON_AddNumberToObject(x, "asr_neighbours", log[i].asr[0]);
        cJSON_AddNumberToObject(x, "asr_unlearndiffatk", log[i].asr[1]);
        cJSON_AddNumberToObject(x, "added_aliases", log[i].added_aliases);
        cJSON_AddNumberToObject(x, "added_templates", log[i].added_templates);
        cJSON_AddItemToArray(a, x);
    }
}
