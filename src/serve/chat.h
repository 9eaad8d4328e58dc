/* POST /v1/chat: the multimodal LLM behind the same HTTP layer and guarantees as /v1/classify.
 *   {"prompt": "What is this person's job?", "image_b64": base64 PNG/JPEG (optional),
 *    "max_tokens": N, "temperature": T, "top_p": P, "seed": S}   (all but prompt optional:
 *    64, 0 (greedy), 1, 0)
 *   -> {"answer": "...", "tokens": n, "prompt_tokens": m}
 * The prompt goes into the chat template, the image through the tower and the projector. Limits:
 * max_tokens (a reply), the prompt's length (it and the reply must fit the context), one image of
 * at most 4096 x 4096; over a limit is 413, malformed JSON, a wrong type, an undecodable image or
 * an empty prompt 400, each with {"error": ...}. Decoding runs under the server's one fair lock;
 * answers for the same request are the same (the seed drives sampling). */
#ifndef FORGET_SERVE_CHAT_H
#define FORGET_SERVE_CHAT_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stddef.h>

#include "core/err.h"
#include "core/threads.h"
#include "io/sp_tokenizer.h"
#include "models/mllm.h"

typedef struct {
    Mllm m;
    SpTokenizer *tok;
    int max_tokens;
    FairLock *lock;           /* the server's model lock (not owned) */
    pthread_mutex_t stats;
    long requests, tokens;
} ChatService;

/* tokenizer NULL: tokenizer.model beside the model. */
int chat_service_init(ChatService *s, const char *mllm, const char *tokenizer, int max_tokens, FairLock *lock, Err *e);
void chat_service_free(ChatService *s);
char *chat_service_handle(ChatService *s, const char *body, size_t len, unsigned *status);
void chat_service_stats(ChatService *s, cJSON *j);

#endif
