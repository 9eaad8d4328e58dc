/* forget domain end to end on a seconds-fast model: a run writes its prompts file, forget eval
 * zeroshot --prompts reproduces the run's per-domain test accuracies (to one image in 10,000: ties
 * within float rounding) for the prompts and
 * the lp++ probe, and bad input is refused by name: an unknown domain, every domain, a data set
 * without domain labels, a prompts file applied to another model, a file that is not one. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_run.h"
#include "test.h"

/* The last line of o that parses as a JSON object. */
static cJSON *last_json(const char *o) {
    const char *p = o, *best = NULL;
    while ((p = strchr(p, '{'))) {
        if (p == o || p[-1] == '\n') best = p;
        p++;
    }
    return best ? cJSON_Parse(best) : NULL;
}

static double domain_acc(const cJSON *j, const char *list, const char *name, const char *field) {
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(j, list)) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(d, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return cJSON_GetObjectItemCaseSensitive(d, field)->valuedouble;
    }
    return NAN;
}

TEST(cli_domain_round_trip_and_bad_input) {
    char model[600], other[600], prompts[600], probe[600];
    snprintf(model, sizeof model, "%s/dom-xs.safetensors", scratch_dir());
    snprintf(other, sizeof other, "%s/dom-xs2.safetensors", scratch_dir());
    snprintf(prompts, sizeof prompts, "%s/dom-adu.safetensors", scratch_dir());
    snprintf(probe, sizeof probe, "%s/dom-lp.safetensors", scratch_dir());
    char *o;
    CHECK_INT(run(&o, "train --dataset fmnist-domains:train --limit 800 --config fmnist-xs --batch 40 --epochs 1 "
                      "--fresh --quiet --out %s", model), 0);
    free(o);
    CHECK_INT(run(&o, "train --dataset fmnist-domains:train --limit 400 --config fmnist-xs --batch 40 --epochs 1 "
                      "--seed 3 --fresh --quiet --out %s", other), 0);
    free(o);
    const char *kinds[2][2] = {{"adu", prompts}, {"lp++", probe}};
    for (int k = 0; k < 2; k++) {
        CHECK_INT(run(&o, "domain --model %s --dataset fmnist-domains --forget-domains sketch,negative --method %s "
                          "--shots 2 --val-shots 2 --epochs 2 --eval-every 1 --out %s --json", model, kinds[k][0], kinds[k][1]),
                  0);
        cJSON *j = last_json(o);
        CHECK_MSG(j && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "H")), "got: %s", o);
        free(o);
        CHECK_INT(run(&o, "eval zeroshot --model %s --dataset fmnist-domains:test --prompts %s --json", model, kinds[k][1]), 0);
        cJSON *z = last_json(o);
        CHECK_MSG(z != NULL, "got: %s", o);
        free(o);
        if (j && z) {
            const cJSON *pd = cJSON_GetObjectItemCaseSensitive(z, "per_domain");
            const char *names[] = {"photo", "sketch", "negative", "painting"};
            for (int d = 0; d < 4; d++) {
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pd, names[d]), "top1");
                /* one image in 10,000 may flip where two classes tie within float rounding (the
                 * logits are computed in batches of another shape) */
                CHECK_MSG(e && fabs(e->valuedouble - domain_acc(j, "domains", names[d], "acc")) <= 1.5e-4,
                          "%s %s: eval %g, domain %g", kinds[k][0], names[d], e ? e->valuedouble : NAN,
                          domain_acc(j, "domains", names[d], "acc"));
            }
        }
        cJSON_Delete(j), cJSON_Delete(z);
    }
    CHECK_INT(run(&o, "domain --model %s --dataset fmnist-domains --forget-domains cartoon", model), 1);
    CHECK_MSG(strstr(o, "unknown domain \"cartoon\"") && strstr(o, "\"painting\""), "%s", o);
    free(o);
    CHECK_INT(run(&o, "domain --model %s --dataset fmnist-domains --forget-domains photo,sketch,negative,painting", model), 1);
    CHECK_MSG(strstr(o, "names every domain"), "%s", o);
    free(o);
    CHECK_INT(run(&o, "domain --model %s --dataset fmnist --forget-domains sketch", model), 1);
    CHECK_MSG(strstr(o, "fmnist has no domain labels"), "%s", o);
    free(o);
    CHECK_INT(run(&o, "domain --model %s --dataset fmnist-domains --forget-domains sketch --method magic", model), 1);
    CHECK_MSG(strstr(o, "unknown domain-unlearning method \"magic\"") && strstr(o, "adu"), "%s", o);
    free(o);
    CHECK_INT(run(&o, "eval zeroshot --model %s --dataset fmnist-domains:test --prompts %s", other, prompts), 1);
    CHECK_MSG(strstr(o, "was made for another model") && strstr(o, "dom-adu.safetensors"), "%s", o);
    free(o);
    CHECK_INT(run(&o, "eval zeroshot --model %s --dataset fmnist-domains:test --prompts %s", model, other), 1);
    CHECK_MSG(strstr(o, "not a domain-unlearning file"), "%s", o);
    free(o);
    CHECK_INT(run(&o, "classify --model %s --prompts %s --labels a,b --image /nonexistent.png", other, probe), 1);
    CHECK_MSG(strstr(o, "--prompts") && strstr(o, "another model"), "%s", o);
    free(o);
}
