/* The generic parameter table: arena layout in table order, init rules, and a save/load round
 * trip in both layouts of a small model with a split key (three files' tensors stacked), a
 * transposed tensor, an exact scalar and a lazy table; shape errors name the key. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "nn/params.h"
#include "test.h"

typedef struct {
    float *qkv, *proj, *scale, *table, *arena;
    long n;
} Toy;

static NnTable toy_table(Toy *m) {
    NnTable t = {0};
    NnParam *p = nn_add(&t, &m->qkv, 2, 6, 4, 0, 0);
    nn_key(p, 0, "attn.in_proj_weight");
    for (int i = 0; i < 3; i++) nn_key_part(p, 1, i, "attn.%c_proj.weight", "qkv"[i]);
    p->init = (NnInit){INIT_NORMAL, 0.5f}, p->decay = 1;
    p = nn_add(&t, &m->proj, 2, 3, 4, 0, 0);
    nn_key(p, 0, "proj");
    nn_key(p, 1, "projection.weight");
    p->transposed = 1u << 0; /* layout 0 stores it [4, 3] */
    p->init = (NnInit){INIT_NORMAL, 1.0f};
    p = nn_add(&t, &m->scale, 0, 0, 0, 0, 0);
    nn_key(p, 0, "scale");
    nn_key(p, 1, "scale");
    p->init = (NnInit){INIT_CONST, 2.5f}, p->exact = 1;
    p = nn_add(&t, &m->table, 2, 5, 4, 0, 0);
    nn_key(p, 0, "tok");
    nn_key(p, 1, "embeddings.tok");
    p->init = (NnInit){INIT_ONES, 0}, p->lazy = 1;
    return t;
}

TEST(nn_params_layout_init_and_round_trip_in_both_layouts) {
    Toy a = {0};
    NnTable t = toy_table(&a);
    a.arena = nn_arena_layout(&t, 0, &a.n);
    CHECK_INT(a.n, 24 + 12 + 1 + 20);
    CHECK(a.qkv == a.arena && a.proj == a.arena + 24 && a.scale == a.arena + 36 && a.table == a.arena + 37);
    Rng r;
    rng_seed(&r, 3);
    nn_init(&t, &r);
    CHECK_NEAR(a.scale[0], 2.5, 0);
    CHECK_NEAR(a.table[19], 1, 0);
    Rng r2;
    rng_seed(&r2, 3);
    CHECK_NEAR(a.qkv[0], 0.5f * rng_normal(&r2), 0); /* normals drawn in table order */
    Err e = {{0}};
    for (int L = 0; L < 2; L++) {
        char path[] = "/tmp/forget-nn-params-XXXXXX";
        int fd = mkstemp(path);
        close(fd);
        CHECK_INT(nn_save(&t, path, L, ST_F32, NULL, NULL, 0, &e), 0);
        SafeTensors st;
        CHECK_INT(st_open(&st, path, &e), 0);
        if (L == 1) CHECK(st_find(&st, "attn.k_proj.weight") && st_find(&st, "attn.k_proj.weight")->shape[0] == 2);
        if (L == 0) CHECK(st_find(&st, "proj")->shape[0] == 4); /* stored transposed */
        Toy b = {0};
        NnTable tb = toy_table(&b);
        b.arena = nn_arena_layout(&tb, 1, &b.n); /* the lazy table stays in the file */
        CHECK(b.table == NULL);
        const StTensor *lazy = NULL;
        char dtypes[32] = "";
        CHECK_INT(nn_load(&tb, &st, L, &lazy, dtypes, sizeof dtypes, &e), 0);
        CHECK_CLOSE(b.qkv, a.qkv, 24, 0, 0);
        CHECK_CLOSE(b.proj, a.proj, 12, 0, 0);
        CHECK_NEAR(b.scale[0], 2.5, 0);
        CHECK(lazy && strcmp(lazy->name, L ? "embeddings.tok" : "tok") == 0);
        CHECK(strcmp(dtypes, "F32") == 0);
        st_close(&st);
        /* a wrong shape is named with the expected one */
        Toy c = {0};
        NnTable tc = toy_table(&c);
        tc.p[1].shape[0] = 2, tc.p[1].count = 8;
        c.arena = nn_arena_layout(&tc, 0, &c.n);
        CHECK_INT(st_open(&st, path, &e), 0);
        CHECK(nn_load(&tc, &st, L, NULL, NULL, 0, &e) != 0);
        CHECK_MSG(strstr(e.msg, L ? "projection.weight" : "'proj'") && strstr(e.msg, "expects"), "%s", e.msg);
        st_close(&st);
        free(b.arena), free(c.arena);
        nn_table_free(&tb), nn_table_free(&tc);
        unlink(path);
    }
    a.qkv[5] = NAN;
    CHECK(nn_check_finite(&t, 1, &e) != 0);
    CHECK_MSG(strstr(e.msg, "attn.q_proj.weight") && strstr(e.msg, "element 5"), "%s", e.msg);
    free(a.arena);
    nn_table_free(&t);
}
