/* libFuzzer target: PNG and JPEG decoding of arbitrary bytes, then the CLIP
 * transform of whatever decodes (at a small size to keep runs fast). */
#include <stdint.h>
#include <stdlib.h>

#include "io/image.h"
#include "io/preprocess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Image8 im;
    Err e;
    if (image_decode_max(&im, data, size, "fuzz", 1L << 16, &e) == 0) {
        {
            float *px = malloc(sizeof(float) * 3 * 16 * 16);
            clip_preprocess(&im, 16, px);
            free(px);
        }
        image_free(&im);
    }
    return 0;
}
