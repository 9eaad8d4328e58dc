/* safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * ({name: {dtype, shape, data_offsets}}, optional "__metadata__" string map,
 * trailing spaces allowed), then the data buffer. The reader mmaps the file and
 * checks everything the format promises before any tensor is touched. */
#ifndef FORGET_SAFETENSORS_H
#define FORGET_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef enum {
    ST_BOOL, ST_U8, ST_I8, ST_F8_E5M2, ST_F8_E4M3, ST_I16, ST_U16, ST_F16, ST_BF16,
    ST_I32, ST_U32, ST_F32, ST_F64, ST_I64, ST_U64, ST_DTYPE_COUNT
} StDtype;

enum { ST_MAX_DIMS = 8, ST_MAX_HEADER = 100000000 };

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;  /* relative to the data buffer */
    const uint8_t *data;  /* points into the mapping */
} StTensor;

typedef struct {
    char *path;
    uint8_t *map;         /* whole file (mmap or borrowed buffer) */
    size_t size;
    int owns_map;         /* 1: munmap on close */
    size_t data_start;    /* 8 + N */
    StTensor *tensors;    /* in file order */
    int n;
    char **meta_keys, **meta_vals;
    int n_meta;
} SafeTensors;

const char *st_dtype_name(StDtype d);
size_t st_dtype_size(StDtype d);
int st_dtype_parse(const char *s, StDtype *out);

/* Every file forget writes carries a digest (XXH3-128) of each tensor's bytes in its metadata
 * ("forget.digest": "xxh3-128", "forget.digests": a JSON object name -> 32 hex digits). Opening
 * or parsing a file that has them checks them all and names the first tensor whose bytes differ;
 * files without them (written by other tools) are accepted. *verified tells which it was. */
#define ST_DIGEST_KEY "forget.digests"
int st_open(SafeTensors *st, const char *path, Err *e);
int st_has_digests(const SafeTensors *st);
/* Parses a file already in memory (the buffer must outlive st); used by the fuzzer. */
int st_parse(SafeTensors *st, const uint8_t *buf, size_t len, const char *name, Err *e);
void st_close(SafeTensors *st);

const StTensor *st_find(const SafeTensors *st, const char *name);
const char *st_meta(const SafeTensors *st, const char *key);
/* A metadata value that is a decimal integer (the whole string): 0 with *out set, -1 when the key
 * is missing or its value is not one. */
int st_meta_long(const SafeTensors *st, const char *key, long *out);
int st_meta_int(const SafeTensors *st, const char *key, int *out); /* the same, narrowed to int */
int64_t st_numel(const StTensor *t);
/* Widens F32/F16/BF16 (and I64/I32 as values) into dst[numel]. */
int st_to_f32(const StTensor *t, float *dst, Err *e);
/* Releases the pages of a tensor already copied out, so the mapping does not stay resident. */
void st_drop_pages(const SafeTensors *st, const StTensor *t);

/* Writer: each tensor is given either as float32 (converted to dtype on write:
 * F32, F16 or BF16) or as raw bytes already in dtype. Written to a temporary
 * file and renamed, header padded with spaces to a multiple of 8. */
typedef struct {
    const char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *f32;  /* either this ... */
    const void *raw;   /* ... or this */
} StWriteTensor;

int st_write(const char *path, const StWriteTensor *tensors, int n, const char *const *meta_kv, int n_meta,
             Err *e);

#endif
