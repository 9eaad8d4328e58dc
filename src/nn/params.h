/* A model's parameters as one table: each entry is a named pointer of the model's struct (its
 * slot), a shape, its key in each checkpoint layout the model reads (a key may be split into up
 * to three files' tensors stacked along dim 0, as Hugging Face splits CLIP's fused q/k/v), an init
 * rule, and flags for weight decay, training and buffers. One flat float arena holds them all
 * (llm.c style), so an optimiser sees one vector. Loading, saving, random init and the finite
 * check walk this one table, so a model's layouts cannot drift apart; a new model declares its
 * table and gets all four. */
#ifndef FORGET_NN_PARAMS_H
#define FORGET_NN_PARAMS_H

#include <stdint.h>

#include "core/err.h"
#include "core/rng.h"
#include "io/safetensors.h"

enum { NN_LAYOUTS = 2, NN_PARTS = 3, NN_NAME = 128 };

typedef enum { INIT_ZEROS = 0, INIT_ONES, INIT_NORMAL, INIT_CONST } NnInitKind;
typedef struct {
    NnInitKind kind;
    float value; /* the standard deviation (INIT_NORMAL) or the constant (INIT_CONST) */
} NnInit;

typedef struct {
    float **slot; /* the model's named pointer for this tensor */
    long count;
    int ndim;
    int64_t shape[4]; /* internal shape: what the model computes with */
    char key[NN_LAYOUTS][NN_PARTS][NN_NAME];
    int parts[NN_LAYOUTS];      /* files' tensors stacked along dim 0 in this layout (0: absent) */
    uint8_t transposed;         /* bit L: layout L stores this 2-D tensor transposed */
    uint8_t decay;              /* weight decay applies */
    uint8_t frozen;             /* never trained (a buffer, or a part a method keeps fixed) */
    uint8_t buffer;             /* state, not a parameter: BatchNorm running statistics */
    uint8_t lazy;               /* may stay in the mapped file (a large embedding table) */
    uint8_t exact;              /* always saved as F32 (a scalar like CLIP's logit scale) */
    /* grouped heads (Llama's grouped K/V): part k is stored with 1/rep[k] of its rows, blocks of
     * rep_rows rows (a head) each repeated rep[k] times in memory (head h reads stored head h / rep),
     * as Hugging Face's repeat_kv; saving keeps the first of each group. 0 or 1: stored as is. */
    uint8_t rep[NN_PARTS];
    int rep_rows;
    NnInit init;
} NnParam;

/* A growing table: nn_add appends one entry (names set afterwards with nn_key). */
typedef struct {
    NnParam *p;
    int n, cap;
} NnTable;

NnParam *nn_add(NnTable *t, float **slot, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3);
/* Sets the key of layout L (printf-style); nn_key_part one part of a split key. */
void nn_key(NnParam *p, int layout, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void nn_key_part(NnParam *p, int layout, int part, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void nn_table_free(NnTable *t);
/* The key a message names: layout L's first part, else layout 0's. */
const char *nn_param_name(const NnParam *p, int layout);

/* Allocates one arena for every entry (lazy entries get no room when skip_lazy) and points the
 * slots into it, in table order; returns the arena, its size in *n_floats. */
float *nn_arena_layout(const NnTable *t, int skip_lazy, long *n_floats);
/* Fills every entry from its init rule, drawing normals from r in table order. */
void nn_init(const NnTable *t, Rng *r);

/* Reads every entry with a slot from st in layout L: shape checked (the message names the key
 * and the expected shape), F32/F16/BF16 widened, transposed where the layout says so. A lazy
 * entry whose slot is NULL is only checked; *lazy_src gets its tensor. dtypes collects "F32+F16"
 * (may be NULL; size dtypes_cap). */
int nn_load(const NnTable *t, SafeTensors *st, int layout, const StTensor **lazy_src, char *dtypes,
            size_t dtypes_cap, Err *e);
/* Writes every entry in layout L as dtype (exact entries stay F32), with the metadata pairs; a
 * lazy entry whose slot is NULL is widened from lazy_src. Through a temporary file and rename. */
int nn_save(const NnTable *t, const char *path, int layout, StDtype dtype, const StTensor *lazy_src,
            const char *const *meta_kv, int n_meta, Err *e);
/* nn_save with the model's own metadata pairs (own, n_own of them: its format and config)
 * followed by the caller's (extra); no lazy entries. */
int nn_save_meta(const NnTable *t, const char *path, int layout, StDtype dtype, const char *const *own, int n_own,
                 const char *const *extra, int n_extra, Err *e);
/* 0 when every loaded entry is finite; else -1 naming the first (in layout L) and element. */
int nn_check_finite(const NnTable *t, int layout, Err *e);

#endif
