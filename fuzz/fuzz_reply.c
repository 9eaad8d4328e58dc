/* libFuzzer target: the client's reading of server replies (serve/client.c), what a hostile API
 * controls: arbitrary bytes as a reply body, read as a /v1/classify answer for 3 images x 2
 * prompts, as a population of 2 sets, and as a /v1/dataset reply. Every input must be either
 * accepted with values in range or refused with an error, never a crash, a leak or a read past
 * what was checked. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "io/json_file.h"
#include "serve/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16) return 0;
    Err e = {{0}};
    cJSON *j = bb_parse_reply((const char *)data, size, size % 7 ? 200 : 500, &e);
    if (!j) return 0;
    float probs[6];
    int32_t labels[3];
    int lo = -1;
    if (bb_read_answer(j, 3, 2, probs, labels, &lo, &e) == 0) {
        for (int i = 0; i < (lo ? 3 : 6); i++)
            if (lo ? labels[i] < 0 || labels[i] >= 2 : !(probs[i] >= 0 && probs[i] <= 1)) abort();
    }
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "results");
    if (cJSON_IsArray(res) && cJSON_GetArraySize(res) == 2) {
        int q = 0;
        for (const cJSON *o = res->child; o; o = o->next, q++) (void)bb_read_answer(o, 3, 2, probs, labels, &lo, &e);
    }
    char **classes;
    int32_t *lab;
    int C, N;
    if (bb_read_dataset(j, &classes, &C, &lab, &N, &e) == 0) {
        for (int i = 0; i < N; i++)
            if (lab[i] < 0 || lab[i] >= C) abort();
        bb_dataset_free(classes, C, lab);
    }
    cJSON_Delete(j);
    return 0;
}
