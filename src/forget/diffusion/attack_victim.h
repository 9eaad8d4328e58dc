/* The model forget attack and forget redteam attack, opened once: the erased model in memory (for
 * white-box attacks and the judgement), the original model it was erased from (the white-box
 * attacks' target images), and an in-process /v1/generate server of the same erased model that
 * black-box attacks reach only through HTTP, so that the server counts their queries. Or a
 * remote API alone (--api URL): black-box attacks only. */
#ifndef FORGET_ATTACK_VICTIM_H
#define FORGET_ATTACK_VICTIM_H

#include "forget/diffusion/attack.h"
#include "serve/server.h"

typedef struct {
    Victim v;
    Text2Image g, orig;
    int has_g, has_orig;
    BbServer *server;
    BbClient client;
    int has_client;
    char url[64];
} VictimHold;

/* erasure: an escape-token file, an SLD guidance file (.json), or NULL (the erasure is in the
 * UNet's weights); original: the UNet before erasure (NULL: the UNet's erase.source metadata, or
 * the UNet itself when it carries none). */
int victim_open_local(VictimHold *h, const char *unet, const char *clip, const char *vae, const char *erasure,
                      const char *original, Err *e);
int victim_open_api(VictimHold *h, const char *url, Err *e);
void victim_close(VictimHold *h);
/* The images the serving side has generated so far. */
int victim_server_images(VictimHold *h, long *images, Err *e);

#endif
