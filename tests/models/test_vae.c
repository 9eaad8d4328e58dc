/* The latent autoencoder against tests/ref/vae-tiny.safetensors (tools/torch_unet.py ref-vae:
 * PyTorch float64, diffusers' AutoencoderKL structure): the encoder's moments, the decoder's
 * image, and the gradients of sum(moments * R1) + sum(decode(z) * R2) for the input, the latent
 * and every parameter. Then SD's published size, finite differences, a round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gradcheck.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "models/vae.h"
#include "models/ref_trace.h"
#include "test.h"

TEST(vae_matches_pytorch_reference) {
    const char *path = "tests/ref/vae-tiny.safetensors";
    Vae v;
    Err e = {0};
    if (vae_load(&v, path, &e) != 0) {
        CHECK_MSG(0, "%s", e.msg);
        return;
    }
    VaeConfig want;
    CHECK(vae_config_named(&want, "vae-tiny", &e) == 0);
    CHECK(memcmp(&v.cfg, &want, sizeof want) == 0);
    SafeTensors st;
    CHECK(st_open(&st, path, &e) == 0);
    const int B = 2, S = 8, f = vae_factor(&v.cfg), lc = v.cfg.latent_ch, s = S / f;
    const long nx = (long)B * 3 * S * S, nm = (long)B * 2 * lc * s * s, nz = (long)B * lc * s * s;
    float *x = ref_tensor(&st, "ref.x", nx), *z = ref_tensor(&st, "ref.z", nz), *R1 = ref_tensor(&st, "ref.R1", nm);
    float *R2 = ref_tensor(&st, "ref.R2", nx), *rm = ref_tensor(&st, "ref.moments", nm);
    float *rr = ref_tensor(&st, "ref.recon", nx), *rdx = ref_tensor(&st, "ref.dx", nx), *rdz = ref_tensor(&st, "ref.dz", nz);
    if (x && z && R1 && R2 && rm && rr && rdx && rdz) {
        UNetActs *ae = unet_acts_new(&v.enc, B, S, 1, 1), *ad = unet_acts_new(&v.dec, B, S, 1, 1);
        float *mom = xalloc_floats((size_t)nm), *rec = xalloc_floats((size_t)nx);
        float *dx = xcalloc((size_t)nx, sizeof(float)), *dz = xcalloc((size_t)nz, sizeof(float));
        vae_encode(&v, ae, x, mom);
        vae_decode(&v, ad, z, rec);
        CHECK_CLOSE(mom, rm, nm, 1e-4, 1e-4);
        CHECK_CLOSE(rec, rr, nx, 1e-4, 1e-4);
        VaeGrads g;
        vae_grads_alloc(&g, &v);
        unet_backward(&v.enc, ae, R1, &g.enc, dx, NULL);
        unet_backward(&v.dec, ad, R2, &g.dec, dz, NULL);
        CHECK_CLOSE(dx, rdx, nx, 1e-4, 1e-4);
        CHECK_CLOSE(dz, rdz, nz, 1e-4, 1e-4);
        int checked = 0;
        for (int i = 0; i < g.table.n; i++) {
            const NnParam *p = &g.table.p[i];
            char name[NN_NAME + 8];
            snprintf(name, sizeof name, "grad.%s", p->key[0][0]);
            float *r = ref_tensor(&st, name, p->count);
            const int ok = r && check_close(__FILE__, __LINE__, name, *p->slot, r, p->count, 1e-4, 1e-4);
            free(r);
            if (!ok) break;
            checked++;
        }
        CHECK_INT(checked, g.table.n);
        vae_grads_free(&g);
        unet_acts_free(ae), unet_acts_free(ad);
        free(mom), free(rec), free(dx), free(dz);
    }
    free(x), free(z), free(R1), free(R2), free(rm), free(rr), free(rdx), free(rdz);
    st_close(&st);
    vae_free(&v);
}

TEST(vae_sd_size_and_round_trip) {
    VaeConfig c;
    Err e = {0};
    CHECK(vae_config_named(&c, "sd-vae", &e) == 0);
    CHECK(vae_param_count(&c) == 83653863L); /* SD-1's AutoencoderKL */
    CHECK(vae_config_named(&c, "vae-tiny", &e) == 0);
    Vae v, back;
    vae_alloc(&v, &c);
    vae_init(&v, 2);
    v.scale = 0.25f;
    char path[512];
    snprintf(path, sizeof path, "%s/vae.safetensors", scratch_dir());
    CHECK(vae_save(&v, path, NULL, 0, &e) == 0);
    CHECK_MSG(vae_load(&back, path, &e) == 0, "%s", e.msg);
    if (back.arena) {
        CHECK_CLOSE(back.arena, v.arena, v.n_params, 0, 0);
        CHECK_NEAR(back.scale, 0.25, 1e-9);
        vae_free(&back);
    }
    CHECK(vae_load(&back, "tests/ref/unet-tiny.safetensors", &e) != 0);
    CHECK_MSG(strstr(e.msg, "not a forget autoencoder") != NULL, "%s", e.msg);
    CHECK(vae_config_check(&c, 7, &e) != 0);
    vae_free(&v);
}

/* Finite differences through the encoder (the padded down-sampler, the one-head attention). */
typedef struct {
    Vae v;
    UNetActs *a;
    float *x, *R, *out;
    long nm;
} FdVae;

static double fd_vae_loss(void *ctx) {
    FdVae *k = ctx;
    vae_encode(&k->v, k->a, k->x, k->out);
    double s = 0;
    for (long i = 0; i < k->nm; i++) s += (double)k->out[i] * k->R[i];
    return s;
}

TEST(vae_encoder_finite_differences) {
    FdVae k;
    VaeConfig c;
    Err e = {0};
    CHECK(vae_config_named(&c, "vae-tiny", &e) == 0);
    vae_alloc(&k.v, &c);
    Rng r;
    rng_seed(&r, 4);
    rng_fill_normal(&r, k.v.arena, k.v.n_params, 0, 0.3f);
    const int B = 2, S = 6;
    const long nx = (long)B * 3 * S * S;
    k.nm = (long)B * 2 * c.latent_ch * (S / 2) * (S / 2);
    k.x = randn(&r, nx, 1.0f), k.R = randn(&r, k.nm, 1.0f), k.out = xalloc_floats((size_t)k.nm);
    k.a = unet_acts_new(&k.v.enc, B, S, 1, 1);
    fd_vae_loss(&k);
    VaeGrads g;
    vae_grads_alloc(&g, &k.v);
    float *dx = xcalloc((size_t)nx, sizeof(float));
    unet_backward(&k.v.enc, k.a, k.R, &g.enc, dx, NULL);
    const FdProbe p = {fd_vae_loss, &k, 10, 1e-2f, 2e-3, 2e-2, 5};
    fd_check_coords(&p, k.x, dx, nx, "input");
    fd_check_coords(&p, k.v.enc.p.down_w[0], g.enc.p.down_w[0], 4 * 4 * 9, "downsamplers.0.conv.weight");
    fd_check_coords(&p, k.v.enc.p.vat[0].q_w, g.enc.p.vat[0].q_w, 64, "mid_block.attentions.0.to_q.weight");
    fd_check_coords(&p, k.v.enc.p.vat[0].norm_w, g.enc.p.vat[0].norm_w, 8, "mid_block.attentions.0.group_norm.weight");
    free(dx), free(k.x), free(k.R), free(k.out);
    vae_grads_free(&g);
    unet_acts_free(k.a);
    vae_free(&k.v);
}
