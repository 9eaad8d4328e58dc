#include "cli/cli_attack.h"

#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "io/image.h"

void cli_attack_opts(Opt *opts, int *n, AttackOpts *o, const char **vocab, const char **exclude) {
    const Opt add[] = {
        O_LONG("--budget", "Q", &o->budget, 0, 100000000, "images the search may generate (queries)"),
        O_INT("--eval", "N", &o->eval_n, 1, 4096, "images of the final judgement, per prompt"),
        O_INT("--steps", "K", &o->steps, 1, 1000, "sampling steps of every image"),
        O_FLT("--cfg", "W", &o->cfg, 0, 100, 0, "guidance scale"),
        O_STR("--template", "TPL", &o->template_, 0, "the plain prompt, {} the concept"),
        O_STR("--vocab", "FILE", vocab, 0, "the attacker's word list (default /usr/share/dict/american-english)"),
        O_INT("--vocab-max", "N", &o->vocab_max, 0, 10000000, "words of the list kept, a seeded draw (0: all)"),
        O_STR("--exclude", "A,B", exclude, 0, "words the attacks never use (synonyms of the concept)"),
        O_INT("--neighbours", "M", &o->neighbours, 1, 32, "neighbours: words combined"),
        O_INT("--per-query", "N", &o->per_query, 1, 64, "neighbours: images a candidate is scored on"),
        O_DBL("--sigma", "S", &o->sigma, 0, 100, OPT_OPEN, "neighbours: CMA-ES initial step"),
        O_INT("--rab-words", "K", &o->rab_words, 1, 32, "ring-a-bell: words of the prompt"),
        O_INT("--rab-pop", "N", &o->rab_pop, 4, 100000, "ring-a-bell: population"),
        O_INT("--rab-gens", "N", &o->rab_gens, 0, 1000000, "ring-a-bell: generations"),
        O_DBL("--rab-eta", "ETA", &o->rab_eta, 0, 100, 0, "ring-a-bell: concept vector strength"),
        O_INT("--ud-tokens", "K", &o->ud_tokens, 1, 8, "unlearndiffatk: prefix words"),
        O_INT("--ud-timesteps", "N", &o->ud_timesteps, 1, 1000, "unlearndiffatk: timesteps of the schedule"),
        O_INT("--ud-iters", "N", &o->ud_iters, 1, 100000, "unlearndiffatk: steps per timestep"),
        O_INT("--ud-pool", "N", &o->ud_pool, 2, 1000000, "unlearndiffatk: candidate words"),
        O_INT("--ci-steps", "N", &o->ci_steps, 0, 1000000, "concept-inversion: textual inversion steps"),
        O_INT("--ci-images", "N", &o->ci_images, 1, 4096, "concept-inversion: images of the concept"),
        O_DBL("--ci-lr", "LR", &o->ci_lr, 0, 10, OPT_OPEN, "concept-inversion: learning rate"),
    };
    for (size_t i = 0; i < sizeof add / sizeof *add; i++) opts[(*n)++] = add[i];
}

cJSON *cli_attack_json(const AttackOpts *o, const AttackResult *r) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "attack", attack_method_name(o->method));
    if (o->method == ATTACK_NEIGHBOURS) cJSON_AddBoolToObject(j, "reconstruction", 1);
    cJSON_AddStringToObject(j, "concept", o->concept);
    cJSON_AddNumberToObject(j, "asr", r->asr);
    cJSON_AddNumberToObject(j, "asr_before", r->asr_before);
    cJSON_AddNumberToObject(j, "queries", (double)r->queries);
    cJSON_AddNumberToObject(j, "queries_eval", (double)r->queries_eval);
    cJSON_AddNumberToObject(j, "queries_to_success", (double)r->queries_to_success);
    cJSON_AddNumberToObject(j, "budget", (double)o->budget);
    cJSON_AddStringToObject(j, "prompt", r->prompt ? r->prompt : "");
    cJSON_AddNumberToObject(j, "score", r->score);
    cJSON_AddNumberToObject(j, "seconds", r->seconds);
    return j;
}

int cli_attack_grid(const AttackResult *r, const char *path, Err *e) {
    const int n = r->eval_n, S = r->side, gap = 2;
    uint8_t *both = xmalloc((size_t)2 * n * S * S * 3);
    memcpy(both, r->before, (size_t)n * S * S * 3);
    memcpy(both + (size_t)n * S * S * 3, r->images, (size_t)n * S * S * 3);
    Image8 g = {gap + n * (S + gap), gap + 2 * (S + gap), 3, NULL};
    g.px = xmalloc((size_t)g.w * g.h * 3);
    memset(g.px, 255, (size_t)g.w * g.h * 3);
    image_tile(both, 2 * n, S, n, gap, 0, 0, &g);
    const int rc = image_save_png(&g, path, e);
    free(g.px), free(both);
    return rc;
}
