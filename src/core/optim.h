/* AdamW with decoupled weight decay, element for element as PyTorch 1.13's
 * single-tensor implementation (torch.optim.AdamW, foreach=False), so one step
 * matches the reference to the last bit or so. The caller owns the parameters and
 * gradients; the optimiser owns its moments. */
#ifndef FORGET_OPTIM_H
#define FORGET_OPTIM_H

typedef struct {
    float beta1, beta2, eps;
    long n, t; /* t: steps taken */
    float *m, *v;
} AdamW;

void adamw_init(AdamW *o, long n, float beta1, float beta2, float eps);
void adamw_free(AdamW *o);
/* Advances the step counter; call once per step before adamw_update. */
void adamw_begin_step(AdamW *o);
/* Updates p[off..off+n) from g with learning rate lr and weight decay wd. */
void adamw_update(AdamW *o, float *p, const float *g, long off, long n, double lr, double wd);

/* SGD with momentum and coupled weight decay, as torch.optim.SGD(momentum, weight_decay,
 * dampening 0, nesterov False): d = g + wd p; buf = momentum buf + d (buf starts at 0, which is
 * PyTorch's first-step copy); p -= lr buf. buf has the parameters' layout (the caller's). */
void sgd_update(float *buf, float *p, const float *g, long off, long n, double lr, double wd, float momentum);

#endif
