/* forget chat: one question to the MLLM (about an image, or text only), answered by greedy or
 * sampled decoding with the key/value cache. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "cli/cli_mllm.h"
#include "eval/mllm_eval.h"

static int run(int argc, char **argv);

const Command cmd_chat = {
    "chat", "ask the multimodal LLM a question, about an image or text only",
    "usage: forget chat --model MLLM --prompt TEXT [--image FILE] [--tokenizer FILE] [--max-tokens 64]\n"
    "                   [--temperature 0] [--top-p 1] [--seed S] [--json]\n"
    "\n"
    "The question goes into the model's chat template (\"USER: <image>\\nTEXT\\nASSISTANT:\"), the image (PNG\n"
    "or JPEG, resized and centre-cropped as CLIP does) through the vision tower and the projector into the\n"
    "<image> place. Temperature 0 decodes greedily; above it, nucleus sampling with --top-p and --seed.\n"
    "The tokenizer defaults to tokenizer.model beside the model. --json prints\n"
    "  {\"answer\", \"tokens\", \"prompt_tokens\", \"seconds\", \"tokens_per_s\"}\n",
    run};

static int run(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *image = NULL, *tok = NULL;
    int max_tokens = 64, json = 0;
    float temperature = 0, top_p = 1;
    uint64_t seed = 0;
    const Opt opts[] = {
        O_STR("--model", "FILE", &model, OPT_REQUIRED, "the MLLM (LLaVA or llava-hf layout)"),
        O_STR("--prompt", "TEXT", &prompt, OPT_REQUIRED, "the question"),
        O_STR("--image", "FILE", &image, 0, "a PNG or JPEG the question is about"),
        O_STR("--tokenizer", "FILE", &tok, 0, "SentencePiece model (default: tokenizer.model beside the model)"),
        O_INT("--max-tokens", "N", &max_tokens, 1, 4096, "longest answer in tokens"),
        O_FLT("--temperature", "T", &temperature, 0, 100, 0, "0: greedy"),
        O_FLT("--top-p", "P", &top_p, 0, 1, OPT_OPEN, "nucleus mass kept when sampling"),
        opt_bind(OPT_SEED, &seed),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_chat, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    if (!prompt[0]) return cli_error("chat", EXIT_USAGE, "--prompt is empty");
    Err e = {{0}};
    Mllm m;
    SpTokenizer *t = NULL;
    if (cli_mllm_open(model, tok, &m, &t, &e)) return cli_error("chat", EXIT_WORK, "%s", e.msg);
    float *feats = NULL;
    int rc = 0;
    if (image) {
        feats = xalloc_floats((size_t)mllm_image_tokens(&m.cfg) * m.cfg.tower.v_width);
        rc = cli_mllm_image(&m, image, feats, &e);
    }
    MllmExample x = {0};
    if (rc == 0) rc = mllm_example_qa(&x, t, prompt, NULL, image != NULL, &e);
    const int room = m.cfg.lm.context - (x.n + (image ? mllm_image_tokens(&m.cfg) - 1 : 0));
    if (rc == 0 && room < 1)
        rc = err_set(&e, "the prompt takes %d of the model's %d positions: no room for an answer",
                     x.n + (image ? mllm_image_tokens(&m.cfg) - 1 : 0), m.cfg.lm.context);
    if (rc == 0 && max_tokens > room) max_tokens = room;
    const LmSampling s = {.max_tokens = max_tokens, .temperature = temperature, .top_p = top_p, .seed = seed,
                          .eos = sp_eos(t)};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int32_t *out = xmalloc(sizeof(int32_t) * (size_t)max_tokens);
    const int n = rc == 0 ? mllm_generate(&m, x.ids, x.n, feats, &s, out, &e) : -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double secs = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    char *answer = n >= 0 ? sp_decode(t, out, n > 0 && out[n - 1] == s.eos ? n - 1 : n, &e) : NULL;
    if (!answer) {
        rc = cli_error("chat", EXIT_WORK, "%s", e.msg);
    } else if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "answer", answer);
        cJSON_AddNumberToObject(j, "tokens", n);
        cJSON_AddNumberToObject(j, "prompt_tokens", x.n);
        cJSON_AddNumberToObject(j, "seconds", secs);
        cJSON_AddNumberToObject(j, "tokens_per_s", secs > 0 ? n / secs : 0);
        rc = cli_json_line("chat", j);
        cJSON_Delete(j);
    } else {
        printf("%s\n", answer);
    }
    free(answer), free(out), free(feats);
    mllm_example_free(&x);
    sp_free(t);
    mllm_free(&m);
    return rc;
}
