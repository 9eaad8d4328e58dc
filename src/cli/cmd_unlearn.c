/* forget unlearn: one unlearning request to the MLLM (forget/llm/unlearn.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "cli/cli_mllm.h"
#include "forget/llm/unlearn.h"

static int run(int argc, char **argv);

const Command cmd_unlearn = {
    "unlearn", "make the multimodal LLM forget people of its world (ga, ga+kl, gd, npo, idk, mmunlearner)",
    "usage: forget unlearn --model MLLM --method M --forget LIST [--retain LIST] [--lora r=16,alpha=16|none]\n"
    "                      [--targets projector+lm|lm|projector] [--lm-modules all] [--lr 3e-4] [--epochs 3]\n"
    "                      [--batch 8] [--beta 0.4] [--reference FILE] [--out FILE] [--seed S] [--json]\n"
    "\n"
    "LIST: people of the model's world by index or name (\"0,3,Talvi Moren\"; forget eval mllm --set a lists\n"
    "what they know). --retain defaults to every other person of sets A and B. Methods (docs/mllm-unlearning.md):\n"
    "  ga           gradient ascent on the forget people's questions\n"
    "  ga+kl        ga plus KL(original || model) on the retain people's answers\n"
    "  gd           ga plus descent on the retain people's questions\n"
    "  npo          negative preference optimisation, beta 0.4, against a retain-tuned reference (--reference,\n"
    "               or the model tuned on the retain questions first for --reference-epochs)\n"
    "  idk          descent on the forget questions answered with refusals, plus descent on the retain ones\n"
    "  mmunlearner  gd on the image questions with MMUnlearner's Fisher-ratio mask on the weights (no LoRA)\n"
    "LoRA adapters (default r=16, alpha=16) go on --targets and are merged into the written model. After the run\n"
    "the forget and retain people's 4-choice accuracy is measured (before and after). --json prints\n"
    "  {\"method\", \"steps\", \"seconds\", \"peak_mib\", \"trainable\", \"before\": {...}, \"after\": {...}}\n",
    run};

typedef struct {
    int rank;
    float alpha;
} LoraArg;

static int parse_lora(const char *v, void *dst, char *msg, size_t cap) {
    LoraArg *l = dst;
    if (strcmp(v, "none") == 0 || strcmp(v, "0") == 0) return l->rank = 0, 0;
    char *dup = xstrdup(v), *save = NULL;
    int rc = 0, alpha_set = 0;
    for (char *tok = strtok_r(dup, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        double x;
        if (strncmp(tok, "r=", 2) == 0 && cli_parse_double(tok + 2, 1, 1024, 0, &x) == 0 && x == (int)x) l->rank = (int)x;
        else if (strncmp(tok, "alpha=", 6) == 0 && cli_parse_double(tok + 6, 0, 1e6, 1, &x) == 0) l->alpha = (float)x, alpha_set = 1;
        else rc = -1, snprintf(msg, cap, "expected r=R[,alpha=A] (R in 1..1024) or none, got \"%s\"", v);
    }
    if (rc == 0 && !alpha_set) l->alpha = (float)l->rank;
    free(dup);
    return rc;
}

/* 4-choice accuracy on the forget and retain people's trained questions. */
static int measure(const Mllm *m, const SpTokenizer *t, const World *w, const uint8_t *forget, const uint8_t *retain,
                   MllmScore s[2], Err *e) {
    MllmEvalSel sel = {.sets = (1u << WSET_A) | (1u << WSET_B), .people_mask = forget, .quiet = 1};
    if (mllm_eval(m, t, w, &sel, MTASK_CHOICE, &s[0], e)) return -1;
    sel.people_mask = retain, sel.limit = 200, sel.seed = 1;
    return mllm_eval(m, t, w, &sel, MTASK_CHOICE, &s[1], e);
}

static int run(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *forget = NULL, *retain = NULL, *targets = "projector+lm", *out = NULL;
    const char *reference = NULL, *method_name = NULL;
    UlOpts o;
    ul_defaults(&o);
    LoraArg lora = {o.lora_rank, o.lora_alpha};
    int json = 0, quiet = 0, ref_epochs = 1;
    const Opt opts[] = {
        O_STR("--model", "FILE", &model, OPT_REQUIRED, "an MLLM made by forget train-mllm"),
        O_STR("--method", "M", &method_name, OPT_REQUIRED, "ga, ga+kl, gd, npo, idk or mmunlearner"),
        O_STR("--forget", "LIST", &forget, OPT_REQUIRED, "people to forget: indices or names, comma-separated"),
        O_STR("--retain", "LIST", &retain, 0, "people to keep (default: everyone else)"),
        O_CUSTOM("--lora", "r=R,alpha=A", &lora, parse_lora, "LoRA adapters (none: the weights themselves)"),
        O_STR("--targets", "PARTS", &targets, 0, "where the adapters go: projector+lm, lm or projector"),
        O_STR("--lm-modules", "LIST", &o.lm_modules, 0, "the LM's adapted projections: all or q,k,v,o,gate,up,down"),
        O_DBL("--lr", "LR", &o.lr, 0, 1, OPT_OPEN, "AdamW learning rate (constant)"),
        O_INT("--epochs", "N", &o.epochs, 1, 1000, "passes over the forget questions"),
        O_INT("--batch", "B", &o.batch, 1, 32, "forget (and retain) sequences a step"),
        O_FLT("--beta", "B", &o.npo_beta, 0, 100, OPT_OPEN, "npo's beta"),
        O_STR("--reference", "FILE", &reference, 0, "npo's reference model (default: made by retain tuning)"),
        O_INT("--reference-epochs", "N", &ref_epochs, 1, 100, "passes over the retain questions that make it"),
        O_FLT("--mask-tau", "T", &o.mask_tau, 0, 1e6, OPT_OPEN, "mmunlearner's Fisher-ratio threshold"),
        O_STR("--tokenizer", "FILE", &tok, 0, "SentencePiece model (default: tokenizer.model beside the model)"),
        O_STR("--out", "FILE", &out, 0, "write the unlearned model here (safetensors, the input's layout)"),
        opt_bind(OPT_SEED, &o.seed),
        opt_bind(OPT_QUIET, &quiet),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_unlearn, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    Err e = {{0}};
    if (ul_method_parse(method_name, &o.method, &e) || ul_parts_parse(targets, &o.parts, &e))
        return cli_error("unlearn", EXIT_USAGE, "%s", e.msg);
    o.lora_rank = lora.rank, o.lora_alpha = lora.alpha;
    if (o.method == UL_MMUNLEARNER) o.lora_rank = 0; /* it masks the weights */
    WorldOpts wo;
    if (world_opts_read(model, &wo, &e)) return cli_error("unlearn", EXIT_WORK, "%s", e.msg);
    Mllm m, ref = {0};
    SpTokenizer *t = NULL;
    if (cli_mllm_open(model, tok, &m, &t, &e)) return cli_error("unlearn", EXIT_WORK, "%s", e.msg);
    World *w = world_build(&wo, &e);
    int rc = w ? 0 : -1, have_ref = 0;
    const int np = w ? world_n_people(w) : 0;
    uint8_t *fm = xcalloc((size_t)np + 1, 1), *rm = xcalloc((size_t)np + 1, 1);
    if (rc == 0) rc = ul_people_parse(w, forget, fm, &e);
    if (rc == 0 && retain) rc = ul_people_parse(w, retain, rm, &e);
    else if (rc == 0)
        for (int i = 0; i < np; i++) rm[i] = !fm[i];
    if (rc == 0) rc = ul_check_people(w, fm, rm, &e);
    o.forget = fm, o.retain = rm, o.quiet = quiet || json;
    MllmScore before[2], after[2];
    if (rc == 0) rc = measure(&m, t, w, fm, rm, before, &e);
    if (rc == 0 && o.method == UL_NPO) {
        if (reference) {
            rc = mllm_load(&ref, reference, &e);
            if (rc == 0 && ref.n_params != m.n_params) rc = err_set(&e, "%s: not the shape of %s", reference, model);
        } else {
            mllm_alloc_like(&ref, &m);
            memcpy(ref.params, m.params, sizeof(float) * (size_t)m.n_params);
            rc = ul_retain_tune(&ref, t, w, &o, ref_epochs, &e);
        }
        have_ref = rc == 0 || ref.params;
        o.reference = &ref;
    }
    UlStats s = {0};
    if (rc == 0) rc = mllm_unlearn(&m, t, w, &o, &s, &e);
    if (rc == 0) rc = measure(&m, t, w, fm, rm, after, &e);
    if (rc == 0 && out) {
        char wb[5][32];
        const char *meta[16] = {"producer", "forget unlearn", "unlearn.method", UL_METHOD_NAMES[o.method], "unlearn.forget",
                                forget};
        world_opts_meta(&wo, wb, meta + 6);
        rc = mllm_save(&m, out, m.layout, ST_F32, meta, 8, &e);
    }
    if (rc) {
        rc = cli_error("unlearn", EXIT_WORK, "%s", e.msg);
    } else if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "method", UL_METHOD_NAMES[o.method]);
        cJSON_AddNumberToObject(j, "steps", (double)s.steps);
        cJSON_AddNumberToObject(j, "seconds", s.seconds);
        cJSON_AddNumberToObject(j, "peak_mib", s.peak_mib);
        cJSON_AddNumberToObject(j, "trainable", (double)s.trainable);
        cJSON *b = cJSON_AddObjectToObject(j, "before"), *a = cJSON_AddObjectToObject(j, "after");
        mllm_score_json(b, "forget", &before[0]), mllm_score_json(b, "retain", &before[1]);
        mllm_score_json(a, "forget", &after[0]), mllm_score_json(a, "retain", &after[1]);
        rc = cli_json_line("unlearn", j);
        cJSON_Delete(j);
    } else {
        printf("unlearn %s: %ld steps in %.1f s, peak %.0f MiB, %ld trainable entries\n", UL_METHOD_NAMES[o.method],
               s.steps, s.seconds, s.peak_mib, s.trainable);
        printf("  forget people, 4-choice: %.1f%% -> %.1f%% (image+text %.1f%% -> %.1f%%, text-only %.1f%% -> %.1f%%)\n",
               100 * before[0].score, 100 * after[0].score, 100 * before[0].score_image, 100 * after[0].score_image,
               100 * before[0].score_text, 100 * after[0].score_text);
        printf("  retain people, 4-choice: %.1f%% -> %.1f%%\n", 100 * before[1].score, 100 * after[1].score);
        if (out) printf("  wrote %s\n", out);
    }
    if (have_ref) mllm_free(&ref);
    free(fm), free(rm);
    world_free(w);
    sp_free(t);
    mllm_free(&m);
    return rc;
}
