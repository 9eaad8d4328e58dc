/* The reconstructed Dirichlet-mixture search on a synthetic discrete problem: find a hidden
 * 4-word string in a 200-word vocabulary from "how many positions are right" alone, where
 * random search at the same budget cannot. */
#include <stdlib.h>
#include <string.h>

#include "forget/dirichlet_search.h"
#include "test.h"

static const int32_t TARGET[4] = {17, 123, 5, 199};

static double mismatches(const int32_t *w) {
    int m = 0;
    for (int i = 0; i < 4; i++) m += w[i] != TARGET[i];
    return m;
}

TEST(dirichlet_search_finds_hidden_string) {
    DirichletParams p = dirichlet_defaults();
    DirichletSearch s;
    dirsearch_init(&s, 4, 200, &p, 11);
    int32_t *w = malloc(sizeof(int32_t) * (size_t)p.lambda * 4);
    double *f = malloc(sizeof(double) * (size_t)p.lambda);
    const long budget = 12000;
    while (s.evals < budget && s.best_f > 0) {
        dirsearch_ask(&s, w);
        for (int k = 0; k < p.lambda; k++) f[k] = mismatches(w + 4 * k);
        dirsearch_tell(&s, f);
    }
    CHECK_MSG(s.best_f == 0, "best %g mismatches after %ld evaluations", s.best_f, s.evals);
    CHECK(memcmp(s.best, TARGET, sizeof TARGET) == 0 || s.best_f > 0);
    long used = s.evals;
    /* random search with the same budget */
    Rng r;
    rng_seed(&r, 11);
    double rbest = 4;
    for (long k = 0; k < budget; k++) {
        int32_t c[4];
        for (int i = 0; i < 4; i++) c[i] = (int32_t)rng_below(&r, 200);
        if (mismatches(c) < rbest) rbest = mismatches(c);
    }
    CHECK_MSG(rbest > 0, "random search also found it (%g)", rbest);
    printf("      (dirichlet search: exact after %ld evaluations; random search best %g mismatches in %ld)\n", used, rbest, budget);
    /* the distribution stays a distribution */
    for (int c = 0; c < p.K; c++) {
        double sum = 0;
        for (int v = 0; v < 200; v++) sum += s.theta[((size_t)c * 4 + 0) * 200 + v];
        CHECK_NEAR(sum, 1.0, 1e-9);
    }
    free(w), free(f);
    dirsearch_free(&s);
}

/* The elitist variant and the mode: the mode is the heaviest component's per-position argmax,
 * and once the search has found the string the mode is that string. */
TEST(dirichlet_search_elitist_mode_and_settings) {
    DirichletParams p = dirichlet_defaults();
    char msg[256];
    CHECK(dirichlet_params_parse("K=2,eta=0.5,elitist=1,pick=mode", &p, msg, sizeof msg) == 0);
    CHECK(p.K == 2 && p.eta == 0.5 && p.elitist == 1 && p.pick_mode == 1 && p.lambda == 30);
    DirichletParams q = p;
    CHECK(dirichlet_params_parse("K=0", &q, msg, sizeof msg) != 0 && strstr(msg, "K=0"));
    CHECK(dirichlet_params_parse("eta", &q, msg, sizeof msg) != 0 && strstr(msg, "key=value"));
    CHECK(dirichlet_params_parse("pick=worst", &q, msg, sizeof msg) != 0 && strstr(msg, "pick=worst"));
    CHECK(memcmp(&q, &p, sizeof p) == 0); /* a refused spec changes nothing */
    char spec[256];
    p.rho = 0.3, p.alpha = 0.02;
    dirichlet_params_format(&p, spec, sizeof spec);
    DirichletParams back = dirichlet_defaults();
    CHECK_MSG(dirichlet_params_parse(spec, &back, msg, sizeof msg) == 0 && memcmp(&back, &p, sizeof p) == 0, "%s", spec);
    DirichletSearch s;
    dirsearch_init(&s, 4, 200, &p, 3);
    int32_t *w = malloc(sizeof(int32_t) * (size_t)p.lambda * 4), mode[4];
    double *f = malloc(sizeof(double) * (size_t)p.lambda);
    while (s.evals < 20000 && s.best_f > 0) {
        dirsearch_ask(&s, w);
        for (int k = 0; k < p.lambda; k++) f[k] = mismatches(w + 4 * k);
        dirsearch_tell(&s, f);
    }
    CHECK_MSG(s.best_f == 0, "elitist search: best %g mismatches after %ld evaluations", s.best_f, s.evals);
    for (int k = 0; k < 20; k++) { /* let the distribution settle on the find */
        dirsearch_ask(&s, w);
        for (int j = 0; j < p.lambda; j++) f[j] = mismatches(w + 4 * j);
        dirsearch_tell(&s, f);
    }
    dirsearch_mode(&s, mode);
    CHECK_MSG(memcmp(mode, TARGET, sizeof TARGET) == 0, "mode %d %d %d %d", mode[0], mode[1], mode[2], mode[3]);
    free(w), free(f);
    dirsearch_free(&s);
}
