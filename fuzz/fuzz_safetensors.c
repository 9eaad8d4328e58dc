/* libFuzzer target: the safetensors header parser and validator must reject any
 * malformed input with an error, never crash, and every accepted tensor must lie
 * inside the buffer. */
#include <stdint.h>
#include <stdlib.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    SafeTensors st;
    Err e;
    if (st_parse(&st, data, size, "fuzz", &e) == 0) {
        for (int i = 0; i < st.n; i++) {
            const StTensor *t = &st.tensors[i];
            if (t->data < data || t->data + (t->end - t->begin) > data + size) abort();
            if (st_numel(t) <= 4096 && (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16)) {
                float *f = malloc(sizeof(float) * (size_t)(st_numel(t) + 1));
                st_to_f32(t, f, &e);
                free(f);
            }
        }
        st_close(&st);
    }
    return 0;
}
