#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "core/half.h"
#include "io/atomic_file.h"
#include "io/file_open.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 1},    [ST_U8] = {"U8", 1},   [ST_I8] = {"I8", 1},   [ST_F8_E5M2] = {"F8_E5M2", 1},
    [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_I16] = {"I16", 2}, [ST_U16] = {"U16", 2}, [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2},    [ST_I32] = {"I32", 4}, [ST_U32] = {"U32", 4}, [ST_F32] = {"F32", 4},
    [ST_F64] = {"F64", 8},      [ST_I64] = {"I64", 8}, [ST_U64] = {"U64", 8},
};

const char *st_dtype_name(StDtype d) { return d < ST_DTYPE_COUNT ? dtypes[d].name : "?"; }
size_t st_dtype_size(StDtype d) { return d < ST_DTYPE_COUNT ? dtypes[d].size : 0; }

int st_dtype_parse(const char *s, StDtype *out) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(s, dtypes[i].name) == 0) {
            *out = (StDtype)i;
            return 0;
        }
    return -1;
}

int64_t st_numel(const StTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static void free_parsed(SafeTensors *st) {
    for (int i = 0; i < st->n; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_vals[i]);
    }
    free(st->meta_keys);
    free(st->meta_vals);
    st->tensors = NULL;
    st->meta_keys = st->meta_vals = NULL;
    st->n = st->n_meta = 0;
}

void st_close(SafeTensors *st) {
    if (!st) return;
    free_parsed(st);
    if (st->owns_map && st->map) munmap(st->map, st->size);
    free(st->path);
    memset(st, 0, sizeof *st);
}

static int cmp_begin(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const StTensor *const *)a)->name, (*(const StTensor *const *)b)->name);
}

/* A JSON number that must be a non-negative integer below 2^53 (exact in a double). */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_tensor(StTensor *t, const cJSON *item, uint64_t data_len, Err *e) {
    if (!cJSON_IsObject(item)) return err_set(e, "tensor '%s': entry is not a JSON object", t->name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt)) return err_set(e, "tensor '%s': missing string \"dtype\"", t->name);
    if (st_dtype_parse(dt->valuestring, &t->dtype) != 0)
        return err_set(e, "tensor '%s': unknown dtype \"%s\"", t->name, dt->valuestring);
    if (!cJSON_IsArray(shape)) return err_set(e, "tensor '%s': missing array \"shape\"", t->name);
    t->ndim = cJSON_GetArraySize(shape);
    if (t->ndim > ST_MAX_DIMS) return err_set(e, "tensor '%s': %d dimensions, at most %d supported", t->name, t->ndim, ST_MAX_DIMS);
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d;
        if (json_uint(cJSON_GetArrayItem(shape, i), &d) != 0)
            return err_set(e, "tensor '%s': shape[%d] is not a non-negative integer", t->name, i);
        t->shape[i] = (int64_t)d;
        if (d && numel > UINT64_MAX / d) return err_set(e, "tensor '%s': shape overflows", t->name);
        numel *= d;
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || json_uint(cJSON_GetArrayItem(offs, 0), &t->begin) ||
        json_uint(cJSON_GetArrayItem(offs, 1), &t->end))
        return err_set(e, "tensor '%s': \"data_offsets\" must be [begin, end] non-negative integers", t->name);
    if (t->begin > t->end)
        return err_set(e, "tensor '%s': data_offsets begin %llu > end %llu", t->name, (unsigned long long)t->begin,
                       (unsigned long long)t->end);
    size_t es = st_dtype_size(t->dtype);
    if (numel > UINT64_MAX / es || numel * es != t->end - t->begin)
        return err_set(e, "tensor '%s': shape x %s size = %llu bytes but data_offsets span %llu bytes", t->name,
                       dtypes[t->dtype].name, (unsigned long long)(numel * es),
                       (unsigned long long)(t->end - t->begin));
    if (t->end > data_len)
        return err_set(e, "tensor '%s': data_offsets end %llu is past the data buffer (%llu bytes)", t->name,
                       (unsigned long long)t->end, (unsigned long long)data_len);
    return 0;
}

static int parse_metadata(SafeTensors *st, const cJSON *meta, Err *e) {
    if (!cJSON_IsObject(meta)) return err_set(e, "\"__metadata__\" is not an object of strings");
    int n = cJSON_GetArraySize(meta);
    st->meta_keys = xcalloc((size_t)n, sizeof(char *));
    st->meta_vals = xcalloc((size_t)n, sizeof(char *));
    for (const cJSON *m = meta->child; m; m = m->next) {
        if (!cJSON_IsString(m)) return err_set(e, "\"__metadata__\" value for '%s' is not a string", m->string);
        for (int i = 0; i < st->n_meta; i++)
            if (strcmp(st->meta_keys[i], m->string) == 0)
                return err_set(e, "\"__metadata__\" has the key '%s' twice", m->string);
        st->meta_keys[st->n_meta] = xstrdup(m->string);
        st->meta_vals[st->n_meta++] = xstrdup(m->valuestring);
    }
    return 0;
}

static void hash_hex(XXH128_hash_t h, char out[33]) {
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
}

int st_has_digests(const SafeTensors *st) { return st_meta(st, ST_DIGEST_KEY) != NULL; }

/* The digests in the metadata against the tensors' bytes, when the file has them. */
static int verify_digests(const SafeTensors *st, Err *e) {
    const char *text = st_meta(st, ST_DIGEST_KEY), *algo = st_meta(st, "forget.digest");
    if (!text) return 0;
    if (!algo || strcmp(algo, "xxh3-128") != 0)
        return err_set(e, "\"__metadata__\": \"forget.digest\" is \"%s\", expected \"xxh3-128\"", algo ? algo : "(missing)");
    cJSON *d = cJSON_Parse(text);
    int rc = 0;
    if (!cJSON_IsObject(d)) rc = err_set(e, "\"__metadata__\": \"%s\" is not a JSON object of digests", ST_DIGEST_KEY);
    for (int i = 0; i < st->n && rc == 0; i++) {
        const StTensor *t = &st->tensors[i];
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(d, t->name);
        char got[33];
        if (!cJSON_IsString(want)) {
            rc = err_set(e, "tensor '%s' has no digest in \"%s\" (added after the file was written?)", t->name, ST_DIGEST_KEY);
            break;
        }
        hash_hex(XXH3_128bits(t->data, (size_t)(t->end - t->begin)), got);
        if (strcmp(got, want->valuestring) != 0)
            rc = err_set(e, "tensor '%s' is damaged: its %llu bytes at file bytes %llu..%llu do not match the digest written "
                            "with them", t->name, (unsigned long long)(t->end - t->begin),
                         (unsigned long long)(st->data_start + t->begin), (unsigned long long)(st->data_start + t->end));
    }
    if (rc == 0 && cJSON_GetArraySize(d) != st->n)
        rc = err_set(e, "\"%s\" lists %d tensors, the file has %d (a tensor was removed?)", ST_DIGEST_KEY, cJSON_GetArraySize(d), st->n);
    cJSON_Delete(d);
    return rc;
}

int st_parse(SafeTensors *st, const uint8_t *buf, size_t len, const char *name, Err *e) {
    memset(st, 0, sizeof *st);
    const char *path = name ? name : "<memory>";
    if (len < 8) return err_set(e, "%s: file is %zu bytes, shorter than the 8-byte header length", path, len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | buf[i];
    if (n > ST_MAX_HEADER)
        return err_set(e, "%s: header length %llu at byte 0 exceeds the %d-byte limit", path, (unsigned long long)n,
                       ST_MAX_HEADER);
    if (n > len - 8)
        return err_set(e, "%s: header length %llu at byte 0 is past the end of the %zu-byte file", path,
                       (unsigned long long)n, len);
    if (n < 2 || buf[8] != '{') return err_set(e, "%s: byte 8: header must start with '{'", path);
    st->path = xstrdup(path);
    st->map = (uint8_t *)buf;
    st->size = len;
    st->data_start = 8 + (size_t)n;
    const uint64_t data_len = len - st->data_start;

    const char *hdr = (const char *)buf + 8, *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    int rc = 0;
    if (!root) {
        size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
        rc = err_set(e, "%s: byte %zu: header is not valid JSON", st->path, 8 + at);
        goto done;
    }
    for (const char *p = end; p < hdr + n; p++)
        if (*p != ' ') {
            rc = err_set(e, "%s: byte %zu: unexpected data after the header JSON (only space padding allowed)",
                         st->path, (size_t)(8 + (p - hdr)));
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        rc = err_set(e, "%s: byte 8: header is not a JSON object", st->path);
        goto done;
    }
    int count = cJSON_GetArraySize(root);
    st->tensors = xcalloc((size_t)count, sizeof(StTensor));
    for (const cJSON *item = root->child; item; item = item->next) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (st->meta_keys) {
                rc = err_set(e, "%s: \"__metadata__\" appears twice", st->path);
                goto done;
            }
            if ((rc = parse_metadata(st, item, e)) != 0) goto prefixed;
            continue;
        }
        StTensor *t = &st->tensors[st->n++];
        t->name = xstrdup(item->string);
        if ((rc = parse_tensor(t, item, data_len, e)) != 0) goto prefixed;
        t->data = buf + st->data_start + t->begin;
    }
    if (st->n > 0) {
        StTensor **order = xmalloc((size_t)st->n * sizeof *order);
        for (int i = 0; i < st->n; i++) order[i] = &st->tensors[i];
        qsort(order, (size_t)st->n, sizeof *order, cmp_name);
        for (int i = 1; i < st->n && rc == 0; i++)
            if (strcmp(order[i]->name, order[i - 1]->name) == 0) rc = err_set(e, "tensor '%s' appears twice", order[i]->name);
        qsort(order, (size_t)st->n, sizeof *order, cmp_begin);
        uint64_t covered = 0;
        for (int i = 0; i < st->n && rc == 0; i++) {
            const StTensor *t = order[i];
            if (t->begin < covered)
                rc = err_set(e, "tensor '%s' at data byte %llu (file byte %llu) overlaps the tensor before it (which ends at %llu)",
                             t->name, (unsigned long long)t->begin, (unsigned long long)(st->data_start + t->begin),
                             (unsigned long long)covered);
            else if (t->begin > covered)
                rc = err_set(e, "hole in the data buffer: bytes %llu..%llu (file byte %llu) before tensor '%s' belong to no tensor",
                             (unsigned long long)covered, (unsigned long long)t->begin,
                             (unsigned long long)(st->data_start + covered), t->name);
            covered = t->end > covered ? t->end : covered;
        }
        if (rc == 0 && covered != data_len)
            rc = err_set(e, "the data buffer has %llu bytes but tensors cover only %llu (unused bytes from file byte %llu)",
                         (unsigned long long)data_len, (unsigned long long)covered,
                         (unsigned long long)(st->data_start + covered));
        free(order);
    } else if (data_len != 0) {
        rc = err_set(e, "no tensors but %llu bytes of data follow the header", (unsigned long long)data_len);
    }
    if (rc == 0) rc = verify_digests(st, e);
prefixed:
    if (rc) err_prefix(e, "%s: ", st->path);
done:
    cJSON_Delete(root);
    if (rc) {
        free_parsed(st);
        free(st->path);
        memset(st, 0, sizeof *st);
    }
    return rc;
}

int st_open(SafeTensors *st, const char *path, Err *e) {
    memset(st, 0, sizeof *st);
    int fd = open_regular(path, e);
    if (fd < 0) return -1;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return err_set(e, "%s: cannot stat: %s", path, strerror(errno));
    }
    size_t size = (size_t)sb.st_size;
    uint8_t *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            return err_set(e, "%s: mmap failed: %s", path, strerror(errno));
        }
    }
    close(fd);
    static const uint8_t empty[1] = {0};
    if (st_parse(st, map ? map : empty, size, path, e) != 0) {
        if (map) munmap(map, size);
        return -1;
    }
    st->owns_map = map != NULL;
    return 0;
}

const StTensor *st_find(const SafeTensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const char *st_meta(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_vals[i];
    return NULL;
}

int st_meta_long(const SafeTensors *st, const char *key, long *out) {
    const char *v = st_meta(st, key);
    char *end;
    if (!v) return -1;
    const long x = strtol(v, &end, 10);
    if (end == v || *end) return -1;
    *out = x;
    return 0;
}

int st_meta_int(const SafeTensors *st, const char *key, int *out) {
    long x;
    if (st_meta_long(st, key, &x)) return -1;
    *out = (int)x;
    return 0;
}

int st_to_f32(const StTensor *t, float *dst, Err *e) {
    int64_t n = st_numel(t);
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case ST_F32: memcpy(dst, p, (size_t)n * 4); return 0;
    case ST_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case ST_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case ST_F64:
        for (int64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    case ST_I64:
        for (int64_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, p + 8 * i, 8);
            dst[i] = (float)v;
        }
        return 0;
    case ST_I32:
        for (int64_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            dst[i] = (float)v;
        }
        return 0;
    default: return err_set(e, "tensor '%s': dtype %s cannot be read as float", t->name, st_dtype_name(t->dtype));
    }
}

void st_drop_pages(const SafeTensors *st, const StTensor *t) {
    if (!st->owns_map) return;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)t->data, b = a + (t->end - t->begin);
    a = (a + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
    b &= ~(uintptr_t)(page - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* ------------------------------------------------------------------ writer */

static void encode(uint8_t *dst, const StWriteTensor *t, int64_t n) {
    if (t->raw) {
        memcpy(dst, t->raw, (size_t)n * st_dtype_size(t->dtype));
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == ST_F32) {
            memcpy(dst + 4 * i, &t->f32[i], 4);
        } else {
            uint16_t h = t->dtype == ST_F16 ? float_to_half(t->f32[i]) : float_to_bf16(t->f32[i]);
            dst[2 * i] = (uint8_t)h;
            dst[2 * i + 1] = (uint8_t)(h >> 8);
        }
    }
}

/* The bytes a tensor is written as, in chunks of at most CHUNK elements, to fn. */
enum { CHUNK = 1 << 16 };
static void encode_chunks(const StWriteTensor *t, int64_t numel, void (*fn)(void *user, const void *p, size_t n), void *user) {
    const size_t es = st_dtype_size(t->dtype);
    if (t->raw || t->dtype == ST_F32) { /* already the bytes (little-endian floats are memory order) */
        fn(user, t->raw ? t->raw : (const void *)t->f32, (size_t)numel * es);
        return;
    }
    uint8_t *tmp = xmalloc((size_t)CHUNK * es);
    for (int64_t at = 0; at < numel; at += CHUNK) {
        const int64_t k = numel - at < CHUNK ? numel - at : CHUNK;
        StWriteTensor part = *t;
        part.f32 = t->f32 + at;
        encode(tmp, &part, k);
        fn(user, tmp, (size_t)k * es);
    }
    free(tmp);
}

static void hash_chunk(void *user, const void *p, size_t n) { XXH3_128bits_update(user, p, n); }
static void write_chunk(void *user, const void *p, size_t n) { atomic_write(user, p, n); }

int st_write(const char *path, const StWriteTensor *tensors, int n, const char *const *meta_kv, int n_meta, Err *e) {
    cJSON *root = cJSON_CreateObject(), *digests = cJSON_CreateObject();
    XXH3_state_t *hs = XXH3_createState();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    for (int i = 0; i < n_meta; i++) /* digests are ours to write: a copied old set would be wrong */
        if (strncmp(meta_kv[2 * i], "forget.digest", 13) != 0) cJSON_AddStringToObject(meta, meta_kv[2 * i], meta_kv[2 * i + 1]);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const StWriteTensor *t = &tensors[i];
        if (!t->raw && t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
            cJSON_Delete(root), cJSON_Delete(digests), XXH3_freeState(hs);
            return err_set(e, "%s: tensor '%s': cannot convert float32 to %s", path, t->name, st_dtype_name(t->dtype));
        }
        int64_t numel = 1;
        cJSON *entry = cJSON_AddObjectToObject(root, t->name), *shape = cJSON_AddArrayToObject(entry, "shape");
        cJSON_AddStringToObject(entry, "dtype", st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) {
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
            numel *= t->shape[d];
        }
        uint64_t bytes = (uint64_t)numel * st_dtype_size(t->dtype);
        cJSON *offs = cJSON_AddArrayToObject(entry, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
        XXH3_128bits_reset(hs);
        encode_chunks(t, numel, hash_chunk, hs);
        char hex[33];
        hash_hex(XXH3_128bits_digest(hs), hex);
        cJSON_AddStringToObject(digests, t->name, hex);
    }
    XXH3_freeState(hs);
    char *dj = cJSON_PrintUnformatted(digests);
    cJSON_Delete(digests);
    cJSON_AddStringToObject(meta, "forget.digest", "xxh3-128");
    cJSON_AddStringToObject(meta, ST_DIGEST_KEY, dj);
    free(dj);
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    size_t jl = strlen(json), padded = (jl + 7) & ~(size_t)7;

    AtomicFile af;
    if (atomic_open(&af, path, e) != 0) {
        free(json);
        return -1;
    }
    uint8_t hl[8];
    for (int i = 0; i < 8; i++) hl[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    atomic_write(&af, hl, 8);
    atomic_write(&af, json, jl);
    for (size_t i = jl; i < padded; i++) atomic_write(&af, " ", 1);
    free(json);
    for (int i = 0; i < n; i++) {
        int64_t numel = 1;
        for (int d = 0; d < tensors[i].ndim; d++) numel *= tensors[i].shape[d];
        encode_chunks(&tensors[i], numel, write_chunk, &af);
    }
    return atomic_commit(&af, e);
}
