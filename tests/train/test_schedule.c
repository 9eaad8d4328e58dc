/* SGD with momentum as torch.optim.SGD computes it (two steps by hand), and the step-decay
 * schedule after warm-up (MultiStepLR's milestones as fractions of the run). */
#include "core/optim.h"
#include "test.h"
#include "train/trainer.h"

TEST(sgd_momentum_matches_torch_by_hand) {
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, 0.25f}, buf[2] = {0, 0};
    /* step 1: d = g + wd p = (0.5 + 0.01, 0.25 - 0.02); buf = d; p -= 0.1 buf */
    sgd_update(buf, p, g, 0, 2, 0.1, 0.01, 0.9f);
    CHECK_NEAR(buf[0], 0.51, 1e-6);
    CHECK_NEAR(p[0], 1.0 - 0.051, 1e-6);
    CHECK_NEAR(p[1], -2.0 - 0.1 * 0.23, 1e-6);
    /* step 2: buf = 0.9 buf + (g + wd p) */
    const double d0 = 0.5 + 0.01 * (1.0 - 0.051);
    sgd_update(buf, p, g, 0, 2, 0.1, 0.01, 0.9f);
    CHECK_NEAR(buf[0], 0.9 * 0.51 + d0, 1e-6);
    CHECK_NEAR(p[0], 1.0 - 0.051 - 0.1 * (0.9 * 0.51 + d0), 1e-6);
}

TEST(trainer_step_decay_schedule) {
    const double ms[] = {0.5, 0.75};
    TrainSpec s = {.total_steps = 100, .lr = 0.1, .warmup_frac = 0.1, .milestones = ms, .n_milestones = 2, .gamma = 0.2};
    CHECK_NEAR(train_lr_at(&s, 0), 0.1 / 10, 1e-12);
    CHECK_NEAR(train_lr_at(&s, 9), 0.1, 1e-12);
    CHECK_NEAR(train_lr_at(&s, 49), 0.1, 1e-12);
    CHECK_NEAR(train_lr_at(&s, 50), 0.02, 1e-12);
    CHECK_NEAR(train_lr_at(&s, 75), 0.004, 1e-12);
    CHECK_NEAR(train_lr_at(&s, 99), 0.004, 1e-12);
}
