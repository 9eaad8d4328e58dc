/* What the MLLM commands share: opening a model with its tokenizer (tokenizer.model beside it unless
 * named), and an image file turned into the tower's patch tokens. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_mllm.h"
#include "io/image.h"
#include "io/preprocess.h"

int cli_mllm_open(const char *model, const char *tokenizer, Mllm *m, SpTokenizer **t, Err *e) {
    char *dup = xstrdup(model), *tok = tokenizer ? xstrdup(tokenizer) : xasprintf("%s/tokenizer.model", dirname(dup));
    free(dup);
    int rc = mllm_load(m, model, e);
    if (rc == 0) {
        *t = sp_load(tok, e);
        if (!*t) rc = -1;
        else if (sp_vocab_size(*t) != m->cfg.lm.vocab)
            rc = err_set(e, "%s has %d pieces, the model's vocabulary %d: not its tokenizer", tok, sp_vocab_size(*t),
                         m->cfg.lm.vocab);
        if (rc == 0 && m->cfg.image_token >= 0 && sp_piece_id(*t, "<image>") != m->cfg.image_token)
            rc = err_set(e, "%s: <image> is id %d there, %d in the model", tok, sp_piece_id(*t, "<image>"),
                         m->cfg.image_token);
        if (rc) {
            sp_free(*t);
            *t = NULL;
            mllm_free(m);
        }
    }
    free(tok);
    return rc;
}

int cli_mllm_image(const Mllm *m, const char *path, float *feats, Err *e) {
    Image8 im = {0};
    if (image_load(&im, path, e)) return -1;
    const int R = m->cfg.tower.image_res;
    float *px = xalloc_floats((size_t)3 * R * R);
    clip_preprocess(&im, R, px);
    image_free(&im);
    const int rc = mllm_encode_images(m, px, 1, feats, e);
    free(px);
    return rc;
}
