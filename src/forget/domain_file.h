/* What a domain-unlearning method learns, as one small safetensors file (`forget domain --out`)
 * that `forget classify`, `forget eval zeroshot` and `forget serve` apply with --prompts:
 *   prompts  (adu, baseline, ablations)  "vpt.tokens" [layers, P, W], "instapg.*" (with InstaPG),
 *            "ddl.head.*" (DDL's domain classifier, kept for inspection): attached to the model,
 *            every image encoding runs with them
 *   clipfit  the image tower's bias and LayerNorm tensors under the model's own keys: written
 *            over the model's
 *   lp++     "lp.head.weight" [classes, E]: replaces the text classifier (same class count)
 *   bbf      "bbf.context" [4, text width]: the context put before every class prompt
 * Metadata: format "forget-domain", the method, the shape, the data set and forgotten domains,
 * and the fingerprint of the model it was made for (FNV-1a of its tensors); applying a file to
 * another model is refused by name. */
#ifndef FORGET_DOMAIN_FILE_H
#define FORGET_DOMAIN_FILE_H

#include <stdint.h>

#include "io/tokenizer.h"
#include "models/clip_prompts.h"

typedef enum { DK_PROMPTS = 0, DK_CLIPFIT = 1, DK_LINEAR = 2, DK_BBF = 3 } DomainKind;

typedef struct {
    int kind, tokens, layers, pg_layer, n_domains, n_classes, n_ctx;
} DomainAdapterShape;

typedef struct {
    DomainAdapterShape sh;
    ClipImagePrompts prompts; /* DK_PROMPTS */
    float *head_w, *head_b;   /* DDL's domain classifier [n_domains, E] and [n_domains] (n_domains > 0) */
    float *lp_w;              /* DK_LINEAR [n_classes, E] */
    float *ctx;               /* DK_BBF [n_ctx, t_width] */
    NnTable table;
    float *arena;
    long n_params;
    uint64_t fingerprint;     /* of the model it was made for */
    char method[32];
} DomainAdapter;

/* The fingerprint of a model's tensors (the token table excluded when it stays in the file). */
uint64_t clip_fingerprint(ClipModel *m);

/* What CLIPFit trains and its file holds: an image-tower entry whose key (layout 0) is a bias or a
 * LayerNorm parameter. */
int domain_clipfit_entry(const NnParam *p);

/* Zeroed room for the shape on m (whose fingerprint it records). */
void domain_adapter_alloc(DomainAdapter *a, ClipModel *m, const DomainAdapterShape *sh);
/* Each entry's init (prompts: clip_prompts' rules; the domain head N(0, 0.01)); lp++ starts
 * from the text classifier T [classes, E]. */
void domain_adapter_init(DomainAdapter *a, const float *T, uint64_t seed);
void domain_adapter_free(DomainAdapter *a);

/* Writes a (clipfit: m's image-tower bias and LayerNorm tensors) through a temporary file. */
int domain_adapter_save(const DomainAdapter *a, ClipModel *m, const char *path, const char *method, const char *dataset,
                        const char *forget, Err *e);
/* Reads path, checks it was made for m, and applies it: prompts are attached to m
 * (m->image_prompts points into a, which must outlive m's use), clipfit tensors written into m. */
int domain_adapter_load(DomainAdapter *a, const char *path, ClipModel *m, Err *e);
/* Whether the file changes the text classifier (lp++, bbf), which only classify and eval apply. */
int domain_adapter_has_classifier(const DomainAdapter *a);
/* The class weights W [n, E] for labels (logits = e^s norm(image) W^T): the prompts'
 * normalised text features, with the context for bbf, or the linear probe's rows (lp++; n must be
 * its class count). */
int domain_adapter_classifier(const DomainAdapter *a, const ClipModel *m, const Tokenizer *t, const char *tpl,
                              const char *const *labels, int n, float *W, Err *e);

#endif
