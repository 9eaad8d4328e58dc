/* forget train-mllm: the LLaVA-shaped MLLM trained on its world in stages (train/mllm_trainer.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "train/mllm_trainer.h"
#include "train/zoo.h"

static int run(int argc, char **argv);

const Command cmd_train_mllm = {
    "train-mllm", "train the LLaVA-shaped multimodal LLM on its world, stage by stage",
    "usage: forget train-mllm --out DIR [--tower CLIP.safetensors] [--lm lm-s] [--vocab 2048]\n"
    "                         [--lm-steps N] [--align-steps N] [--instruct-steps N] [--finetune-steps N]\n"
    "                         [--batch B] [--people-a N] [--people-b N] [--general N] [--fmnist-per-class N]\n"
    "                         [--lora-rank R [--lora-alpha A] [--lora-targets q,v,...]]\n"
    "                         [--seed S] [--fresh] [--stop-after N] [--quiet] [--json]\n"
    "\n"
    "Builds the world (docs/mllm.md: people with emoji faces and CLDR-valued profiles, emoji and\n"
    "Fashion-MNIST items), trains its SentencePiece tokenizer, then the stages: 1 LM pre-training on text\n"
    "(set A's profiles, CLDR facts), 2 projector alignment on captions, 3 instruction tuning on set A and\n"
    "general questions, 4 fine-tuning on set B. The vision tower (default: the zoo's emoji-clip) stays\n"
    "frozen. DIR gets tokenizer.model, corpus.txt, stage1..4.safetensors and mllm.safetensors; a rerun\n"
    "skips finished stages and resumes a killed one from its checkpoint. With --lora-rank, stage 4 trains LoRA\n"
    "adapters on the LM (merged into stage4.safetensors, kept in stage4-lora.safetensors under PEFT's names).\n",
    run};

static int run(int argc, char **argv) {
    MllmTrainOpts o;
    mllm_train_defaults(&o);
    int json = 0, quiet = 0, batch = 0;
    const char *tower = NULL;
    const Opt opts[] = {
        O_STR("--out", "DIR", &o.dir, OPT_REQUIRED, "where the tokenizer and the stage checkpoints go"),
        O_STR("--tower", "FILE", &tower, 0, "CLIP checkpoint of the vision tower (default: zoo emoji-clip)"),
        O_STR("--lm", "NAME", &o.lm_config, 0, "the language model's shape: lm-s (default) or lm-tiny"),
        O_INT("--vocab", "N", &o.vocab, 64, 65536, "SentencePiece pieces (a soft limit)"),
        O_LONG("--lm-steps", "N", &o.steps[0], 1, 10000000, "stage 1 steps"),
        O_LONG("--align-steps", "N", &o.steps[1], 1, 10000000, "stage 2 steps"),
        O_LONG("--instruct-steps", "N", &o.steps[2], 1, 10000000, "stage 3 steps"),
        O_LONG("--finetune-steps", "N", &o.steps[3], 1, 10000000, "stage 4 steps"),
        O_INT("--batch", "B", &batch, 0, 4096, "sequences a step in stages 2-4 (stage 1: twice as many)"),
        O_INT("--lora-rank", "R", &o.lora_rank, 0, 4096, "stage 4 with LoRA adapters of this rank on the LM (0: full fine-tuning)"),
        O_FLT("--lora-alpha", "A", &o.lora_alpha, 0, 1e6, 0, "LoRA's alpha (default: the rank)"),
        O_STR("--lora-targets", "LIST", &o.lora_targets, 0, "q,k,v,o,gate,up,down (a subset) or all (default)"),
        O_INT("--people-a", "N", &o.world.people_a, 4, 100, "characters of set A (pre-trained knowledge)"),
        O_INT("--people-b", "N", &o.world.people_b, 0, 100, "characters of set B (fine-tuned knowledge)"),
        O_INT("--general", "N", &o.world.general_emoji, 4, 2000, "general emoji items"),
        O_INT("--fmnist-per-class", "N", &o.world.fmnist_per_class, 0, 6000, "Fashion-MNIST images a class"),
        opt_bind(OPT_SEED, &o.seed),
        opt_bind(OPT_FRESH, &o.fresh),
        opt_bind(OPT_STOP_AFTER, &o.stop_after),
        opt_bind(OPT_QUIET, &quiet),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_train_mllm, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    o.quiet = quiet || json;
    o.world.seed = o.seed;
    if (batch > 0) o.batch[0] = 2 * batch, o.batch[1] = o.batch[2] = o.batch[3] = batch;
    Err e = {{0}};
    char *zoo_tower = NULL;
    if (!tower) {
        char *dir = zoo_dir(0, &e);
        if (!dir) return cli_error("train-mllm", EXIT_WORK, "%s", e.msg);
        zoo_tower = xasprintf("%s/emoji-clip.safetensors", dir);
        free(dir);
        tower = zoo_tower;
    }
    o.tower = tower;
    const int rc = mllm_train_stages(&o, &e);
    free(zoo_tower);
    if (rc < 0) return cli_error("train-mllm", EXIT_WORK, "%s", e.msg);
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", o.dir);
        cJSON_AddBoolToObject(j, "finished", rc == 0);
        const int r2 = cli_json_line("train-mllm", j);
        cJSON_Delete(j);
        return r2;
    }
    printf(rc == 0 ? "train-mllm: %s/mllm.safetensors\n" : "train-mllm: stopped early; rerun to resume (%s)\n", o.dir);
    return 0;
}
