/* gguf_writer.c - GGUF v3 writer: metadata, tensor infos, streamed tensor data
 *
 * The writer collects metadata (deep copies) and tensor descriptions, then
 * rf_gguf_writer_write() lays the file out in one pass: header, key/values,
 * tensor infos, zero padding to the alignment, and each tensor's data padded
 * to the alignment (as ggml does, the last one included). Data comes from
 * caller buffers or from the fill callback in chunks of whole rows of about
 * CHUNK_BYTES, so a multi-GB file never sits in memory.
 *
 * The file is written as PATH.tmp, fsync'd and renamed over PATH, then the
 * directory is fsync'd: a reader sees either the old file or the complete
 * new one, and a failed write removes PATH.tmp and leaves PATH untouched.
 *
 * Everything is encoded little-endian explicitly; packed arrays given to
 * rf_gguf_writer_set_arr() are copied as the little-endian bytes the header
 * asks for.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant.h"

/* ---- types ---- */

#define CHUNK_BYTES (4u << 20)    /* target size of one fill callback call */
#define OUT_BUFFER_BYTES (1u << 20)

typedef struct wkv {
    char *key;               /* NUL-terminated copy */
    rf_gguf_value_t value;   /* strings and tables point into mem */
    void *mem;               /* one allocation holding the value's copies */
} wkv_t;

typedef struct wtensor {
    char *name;
    int type;                /* rf_type_t */
    uint32_t n_dims;
    uint64_t ne[RF_GGUF_MAX_DIMS];
    uint64_t n_rows;         /* ne[1] * ne[2] * ne[3] */
    uint64_t row_bytes;      /* bytes of ne[0] elements */
    uint64_t n_bytes;
    uint64_t offset;         /* from the start of the data section, set at write */
    const void *data;        /* borrowed; NULL: rows come from the fill callback */
} wtensor_t;

struct rf_gguf_writer {
    wkv_t *kvs;              /* [n_kv], in the order first set */
    size_t n_kv, kv_cap;
    wtensor_t *tensors;      /* [n_tensors], in the order added */
    size_t n_tensors, tensor_cap;
};

/* Buffered output to the temporary file. */
typedef struct out {
    int fd;
    uint8_t *buf;            /* [OUT_BUFFER_BYTES] */
    size_t len;
    uint64_t written;        /* bytes of the file so far, buffered ones included */
    const char *tmp_path;
    rf_err_t *err;
} out_t;

/* ---- value copies ---- */

#define PIECE_ALIGN alignof(max_align_t)

static bool add_piece(size_t *total, uint64_t bytes)
{
    uint64_t rounded = (bytes + PIECE_ALIGN - 1) / PIECE_ALIGN * PIECE_ALIGN;
    if (bytes > SIZE_MAX - PIECE_ALIGN || rounded > SIZE_MAX - *total)
        return false;
    *total += (size_t)rounded;
    return true;
}

static bool mul_fits(uint64_t n, size_t size, uint64_t *out)
{
    return !__builtin_mul_overflow(n, (uint64_t)size, out);
}

/* Check v is something the reader will accept back and add up the bytes
 * its deep copy needs. level: array nesting of v (0 for a kv's value). */
static int measure_value(const rf_gguf_value_t *v, uint32_t level, size_t *total)
{
    uint64_t bytes;
    switch (v->type) {
    case RF_GGUF_UINT8: return v->v.u64 <= UINT8_MAX ? 0 : RF_ERANGE;
    case RF_GGUF_UINT16: return v->v.u64 <= UINT16_MAX ? 0 : RF_ERANGE;
    case RF_GGUF_UINT32: return v->v.u64 <= UINT32_MAX ? 0 : RF_ERANGE;
    case RF_GGUF_INT8: return v->v.i64 >= INT8_MIN && v->v.i64 <= INT8_MAX ? 0 : RF_ERANGE;
    case RF_GGUF_INT16: return v->v.i64 >= INT16_MIN && v->v.i64 <= INT16_MAX ? 0 : RF_ERANGE;
    case RF_GGUF_INT32: return v->v.i64 >= INT32_MIN && v->v.i64 <= INT32_MAX ? 0 : RF_ERANGE;
    case RF_GGUF_FLOAT32:
        /* A finite double beyond float range would turn into infinity. */
        return isfinite(v->v.f64) && fabs(v->v.f64) > FLT_MAX ? RF_ERANGE : 0;
    case RF_GGUF_UINT64: case RF_GGUF_INT64: case RF_GGUF_FLOAT64: case RF_GGUF_BOOL:
        return 0;
    case RF_GGUF_STRING:
        if (v->v.str.len != 0 && v->v.str.data == NULL)
            return RF_EFORMAT;
        return add_piece(total, v->v.str.len) ? 0 : RF_ERANGE;
    case RF_GGUF_ARRAY:
        break;
    default:
        return RF_EFORMAT;
    }

    if (level + 1 > RF_GGUF_MAX_ARRAY_DEPTH)
        return RF_EUNSUPPORTED;
    uint32_t et = v->v.arr.elem_type;
    uint64_t n = v->v.arr.n;
    if (et >= RF_GGUF_TYPE_COUNT)
        return RF_EFORMAT;
    if (rf_gguf_type_size((int)et) != 0) {
        if (n != 0 && v->v.arr.data == NULL)
            return RF_EFORMAT;
        if (!mul_fits(n, rf_gguf_type_size((int)et), &bytes))
            return RF_ERANGE;
        return add_piece(total, bytes) ? 0 : RF_ERANGE;
    }
    if (et == RF_GGUF_STRING) {
        if (n != 0 && v->v.arr.strs == NULL)
            return RF_EFORMAT;
        if (!mul_fits(n, sizeof(rf_gguf_str_t), &bytes) || !add_piece(total, bytes))
            return RF_ERANGE;
        for (uint64_t i = 0; i < n; i++) {
            const rf_gguf_str_t *s = &v->v.arr.strs[i];
            if (s->len != 0 && s->data == NULL)
                return RF_EFORMAT;
            if (!add_piece(total, s->len))
                return RF_ERANGE;
        }
        return 0;
    }
    /* Array of arrays: every element must itself be an array. */
    if (n != 0 && v->v.arr.arrs == NULL)
        return RF_EFORMAT;
    if (!mul_fits(n, sizeof(rf_gguf_value_t), &bytes) || !add_piece(total, bytes))
        return RF_ERANGE;
    for (uint64_t i = 0; i < n; i++) {
        if (v->v.arr.arrs[i].type != RF_GGUF_ARRAY)
            return RF_EFORMAT;
        int rc = measure_value(&v->v.arr.arrs[i], level + 1, total);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Take the next piece of bytes from the bump allocation *mem. */
static void *take(uint8_t **mem, uint64_t bytes)
{
    void *p = *mem;
    *mem += (bytes + PIECE_ALIGN - 1) / PIECE_ALIGN * PIECE_ALIGN;
    return p;
}

/* Deep-copy a measured value into *mem. */
static void copy_value(rf_gguf_value_t *dst, const rf_gguf_value_t *src, uint8_t **mem)
{
    *dst = *src;
    if (src->type == RF_GGUF_BOOL)
        dst->v.u64 = src->v.u64 != 0;
    if (src->type == RF_GGUF_STRING) {
        char *s = take(mem, src->v.str.len);
        if (src->v.str.len != 0)
            memcpy(s, src->v.str.data, src->v.str.len);
        dst->v.str.data = s;
        return;
    }
    if (src->type != RF_GGUF_ARRAY)
        return;
    uint64_t n = src->v.arr.n;
    size_t es = rf_gguf_type_size((int)src->v.arr.elem_type);
    dst->v.arr.data = NULL;
    dst->v.arr.strs = NULL;
    dst->v.arr.arrs = NULL;
    if (es != 0) {
        uint8_t *d = take(mem, n * es);
        if (n != 0)
            memcpy(d, src->v.arr.data, n * es);
        if (src->v.arr.elem_type == RF_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                d[i] = d[i] != 0; /* the format allows only 0 and 1 */
        dst->v.arr.data = d;
    } else if (src->v.arr.elem_type == RF_GGUF_STRING) {
        rf_gguf_str_t *strs = take(mem, n * sizeof *strs);
        for (uint64_t i = 0; i < n; i++) {
            rf_gguf_value_t sv = {.type = RF_GGUF_STRING, .v.str = src->v.arr.strs[i]};
            rf_gguf_value_t dv;
            copy_value(&dv, &sv, mem);
            strs[i] = dv.v.str;
        }
        dst->v.arr.strs = strs;
    } else {
        rf_gguf_value_t *arrs = take(mem, n * sizeof *arrs);
        for (uint64_t i = 0; i < n; i++)
            copy_value(&arrs[i], &src->v.arr.arrs[i], mem);
        dst->v.arr.arrs = arrs;
    }
}

/* ---- public: open, close, metadata ---- */

int rf_gguf_writer_open(rf_gguf_writer_t **out)
{
    if (out == NULL)
        return -EINVAL;
    *out = calloc(1, sizeof **out);
    return *out != NULL ? 0 : -ENOMEM;
}

void rf_gguf_writer_close(rf_gguf_writer_t *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].mem);
    }
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

/* The alignment key is special: a reader refuses a file where it is not a
 * u32 power of two, so refuse to write one. */
static int check_alignment_value(const char *key, const rf_gguf_value_t *v)
{
    if (strcmp(key, "general.alignment") != 0)
        return 0;
    if (v->type != RF_GGUF_UINT32)
        return RF_ETYPE;
    if (v->v.u64 == 0 || (v->v.u64 & (v->v.u64 - 1)) != 0)
        return RF_EFORMAT;
    return 0;
}

int rf_gguf_writer_set_value(rf_gguf_writer_t *w, const char *key, const rf_gguf_value_t *value)
{
    if (w == NULL || key == NULL || key[0] == '\0' || value == NULL)
        return RF_EFORMAT; /* the reader refuses empty keys */
    size_t total = 0;
    int rc = measure_value(value, 0, &total);
    if (rc == 0)
        rc = check_alignment_value(key, value);
    if (rc != 0)
        return rc;
    uint8_t *mem = malloc(total != 0 ? total : 1);
    if (mem == NULL)
        return -ENOMEM;
    rf_gguf_value_t copy;
    uint8_t *cursor = mem;
    copy_value(&copy, value, &cursor);

    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, key) == 0) {
            /* Replace in place so the key keeps its position in the file. */
            free(w->kvs[i].mem);
            w->kvs[i].value = copy;
            w->kvs[i].mem = mem;
            return 0;
        }
    }
    if (w->n_kv == w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap * 2 : 16;
        wkv_t *kvs = realloc(w->kvs, cap * sizeof *kvs);
        if (kvs == NULL) {
            free(mem);
            return -ENOMEM;
        }
        w->kvs = kvs;
        w->kv_cap = cap;
    }
    char *key_copy = strdup(key);
    if (key_copy == NULL) {
        free(mem);
        return -ENOMEM;
    }
    w->kvs[w->n_kv++] = (wkv_t){.key = key_copy, .value = copy, .mem = mem};
    return 0;
}

static int set_unsigned(rf_gguf_writer_t *w, const char *key, rf_gguf_type_t type, uint64_t v)
{
    rf_gguf_value_t value = {.type = type, .v.u64 = v};
    return rf_gguf_writer_set_value(w, key, &value);
}

static int set_signed(rf_gguf_writer_t *w, const char *key, rf_gguf_type_t type, int64_t v)
{
    rf_gguf_value_t value = {.type = type, .v.i64 = v};
    return rf_gguf_writer_set_value(w, key, &value);
}

int rf_gguf_writer_set_u8(rf_gguf_writer_t *w, const char *key, uint8_t v)
{
    return set_unsigned(w, key, RF_GGUF_UINT8, v);
}

int rf_gguf_writer_set_i8(rf_gguf_writer_t *w, const char *key, int8_t v)
{
    return set_signed(w, key, RF_GGUF_INT8, v);
}

int rf_gguf_writer_set_u16(rf_gguf_writer_t *w, const char *key, uint16_t v)
{
    return set_unsigned(w, key, RF_GGUF_UINT16, v);
}

int rf_gguf_writer_set_i16(rf_gguf_writer_t *w, const char *key, int16_t v)
{
    return set_signed(w, key, RF_GGUF_INT16, v);
}

int rf_gguf_writer_set_u32(rf_gguf_writer_t *w, const char *key, uint32_t v)
{
    return set_unsigned(w, key, RF_GGUF_UINT32, v);
}

int rf_gguf_writer_set_i32(rf_gguf_writer_t *w, const char *key, int32_t v)
{
    return set_signed(w, key, RF_GGUF_INT32, v);
}

int rf_gguf_writer_set_u64(rf_gguf_writer_t *w, const char *key, uint64_t v)
{
    return set_unsigned(w, key, RF_GGUF_UINT64, v);
}

int rf_gguf_writer_set_i64(rf_gguf_writer_t *w, const char *key, int64_t v)
{
    return set_signed(w, key, RF_GGUF_INT64, v);
}

int rf_gguf_writer_set_f32(rf_gguf_writer_t *w, const char *key, float v)
{
    rf_gguf_value_t value = {.type = RF_GGUF_FLOAT32, .v.f64 = v};
    return rf_gguf_writer_set_value(w, key, &value);
}

int rf_gguf_writer_set_f64(rf_gguf_writer_t *w, const char *key, double v)
{
    rf_gguf_value_t value = {.type = RF_GGUF_FLOAT64, .v.f64 = v};
    return rf_gguf_writer_set_value(w, key, &value);
}

int rf_gguf_writer_set_bool(rf_gguf_writer_t *w, const char *key, bool v)
{
    return set_unsigned(w, key, RF_GGUF_BOOL, v ? 1 : 0);
}

int rf_gguf_writer_set_str(rf_gguf_writer_t *w, const char *key, const char *v)
{
    if (v == NULL)
        return RF_EFORMAT;
    rf_gguf_value_t value = {.type = RF_GGUF_STRING, .v.str = {strlen(v), v}};
    return rf_gguf_writer_set_value(w, key, &value);
}

int rf_gguf_writer_set_arr(rf_gguf_writer_t *w, const char *key, int elem_type,
                           const void *data, uint64_t n)
{
    if (rf_gguf_type_size(elem_type) == 0)
        return RF_ETYPE; /* strings and arrays have their own setters */
    rf_gguf_value_t value = {.type = RF_GGUF_ARRAY};
    value.v.arr.elem_type = (rf_gguf_type_t)elem_type;
    value.v.arr.n = n;
    value.v.arr.data = data;
    return rf_gguf_writer_set_value(w, key, &value);
}

int rf_gguf_writer_set_arr_str(rf_gguf_writer_t *w, const char *key,
                               const char *const *strs, uint64_t n)
{
    if (n != 0 && strs == NULL)
        return RF_EFORMAT;
    if (n > SIZE_MAX / sizeof(rf_gguf_str_t))
        return -ENOMEM;
    rf_gguf_str_t *views = malloc(n != 0 ? (size_t)n * sizeof *views : 1);
    if (views == NULL)
        return -ENOMEM;
    for (uint64_t i = 0; i < n; i++) {
        if (strs[i] == NULL) {
            free(views);
            return RF_EFORMAT;
        }
        views[i] = (rf_gguf_str_t){strlen(strs[i]), strs[i]};
    }
    rf_gguf_value_t value = {.type = RF_GGUF_ARRAY};
    value.v.arr.elem_type = RF_GGUF_STRING;
    value.v.arr.n = n;
    value.v.arr.strs = views;
    int rc = rf_gguf_writer_set_value(w, key, &value);
    free(views);
    return rc;
}

/* ---- public: tensors ---- */

int rf_gguf_writer_add_tensor(rf_gguf_writer_t *w, const char *name, int type,
                              uint32_t n_dims, const uint64_t *ne, const void *data)
{
    if (w == NULL || name == NULL || ne == NULL)
        return RF_EFORMAT;
    const rf_type_traits_t *tr = rf_type_traits(type);
    if (tr == NULL)
        return RF_EUNSUPPORTED;
    if (n_dims == 0 || n_dims > RF_GGUF_MAX_DIMS)
        return RF_EFORMAT;
    wtensor_t t = {.type = type, .n_dims = n_dims, .n_rows = 1, .data = data};
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < RF_GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] == 0)
            return RF_EFORMAT;
        /* The reader refuses element counts beyond int64, so refuse them here. */
        if (__builtin_mul_overflow(n_elements, t.ne[d], &n_elements) ||
            n_elements > (uint64_t)INT64_MAX)
            return RF_EFORMAT;
        if (d > 0)
            t.n_rows *= t.ne[d];
    }
    int rc = rf_type_row_bytes(type, t.ne[0], &t.row_bytes);
    if (rc != 0)
        return rc == RF_ERANGE ? RF_EFORMAT : rc;
    if (__builtin_mul_overflow(t.row_bytes, t.n_rows, &t.n_bytes))
        return RF_EFORMAT;
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return -EEXIST;
    if (w->n_tensors == w->tensor_cap) {
        size_t cap = w->tensor_cap ? w->tensor_cap * 2 : 64;
        wtensor_t *ts = realloc(w->tensors, cap * sizeof *ts);
        if (ts == NULL)
            return -ENOMEM;
        w->tensors = ts;
        w->tensor_cap = cap;
    }
    t.name = strdup(name);
    if (t.name == NULL)
        return -ENOMEM;
    w->tensors[w->n_tensors++] = t;
    return 0;
}

/* ---- output ---- */

static int write_all(int fd, const uint8_t *p, uint64_t n)
{
    while (n > 0) {
        /* Linux moves at most about 2 GiB per write(); ask for 1 GiB. */
        size_t step = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t k = write(fd, p, step);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (k == 0)
            return -EIO;
        p += k;
        n -= (uint64_t)k;
    }
    return 0;
}

static int out_fail(out_t *o, int rc)
{
    return rf_err_set(o->err, rc, "%s: write failed near byte %" PRIu64 ": %s", o->tmp_path,
                      o->written, rf_strerror(rc));
}

static int out_flush(out_t *o)
{
    int rc = write_all(o->fd, o->buf, o->len);
    o->len = 0;
    return rc != 0 ? out_fail(o, rc) : 0;
}

static int out_bytes(out_t *o, const void *data, uint64_t n)
{
    if (n >= OUT_BUFFER_BYTES) {
        /* Large tensor data goes straight from the caller's memory. */
        int rc = out_flush(o);
        if (rc != 0)
            return rc;
        rc = write_all(o->fd, data, n);
        if (rc != 0)
            return out_fail(o, rc);
        o->written += n;
        return 0;
    }
    if (n > OUT_BUFFER_BYTES - o->len) {
        int rc = out_flush(o);
        if (rc != 0)
            return rc;
    }
    if (n != 0)
        memcpy(o->buf + o->len, data, (size_t)n);
    o->len += (size_t)n;
    o->written += n;
    return 0;
}

static int out_le(out_t *o, uint64_t v, unsigned n_bytes)
{
    uint8_t b[8];
    for (unsigned i = 0; i < n_bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return out_bytes(o, b, n_bytes);
}

static int out_str(out_t *o, const char *s, uint64_t len)
{
    int rc = out_le(o, len, 8);
    return rc != 0 ? rc : out_bytes(o, s, len);
}

static int out_pad(out_t *o, uint32_t alignment)
{
    static const uint8_t zeros[256];
    while (o->written % alignment != 0) {
        uint64_t n = alignment - o->written % alignment;
        int rc = out_bytes(o, zeros, n < sizeof zeros ? n : sizeof zeros);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A value's payload (its type tag is written by the caller). */
static int out_value(out_t *o, const rf_gguf_value_t *v)
{
    uint64_t bits = 0;
    switch (v->type) {
    case RF_GGUF_UINT8: case RF_GGUF_INT8: case RF_GGUF_BOOL:
        return out_le(o, v->v.u64, 1);
    case RF_GGUF_UINT16: case RF_GGUF_INT16:
        return out_le(o, v->v.u64, 2);
    case RF_GGUF_UINT32: case RF_GGUF_INT32:
        return out_le(o, v->v.u64, 4);
    case RF_GGUF_UINT64: case RF_GGUF_INT64:
        return out_le(o, v->v.u64, 8);
    case RF_GGUF_FLOAT32: {
        float f = (float)v->v.f64;
        uint32_t b32;
        memcpy(&b32, &f, sizeof b32);
        return out_le(o, b32, 4);
    }
    case RF_GGUF_FLOAT64:
        memcpy(&bits, &v->v.f64, sizeof bits);
        return out_le(o, bits, 8);
    case RF_GGUF_STRING:
        return out_str(o, v->v.str.data, v->v.str.len);
    default:
        break;
    }
    /* ARRAY (measure_value admitted nothing else) */
    uint32_t et = v->v.arr.elem_type;
    uint64_t n = v->v.arr.n;
    int rc = out_le(o, et, 4);
    if (rc == 0)
        rc = out_le(o, n, 8);
    if (rc != 0)
        return rc;
    size_t es = rf_gguf_type_size((int)et);
    if (es != 0)
        return out_bytes(o, v->v.arr.data, n * es);
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        if (et == RF_GGUF_STRING)
            rc = out_str(o, v->v.arr.strs[i].data, v->v.arr.strs[i].len);
        else
            rc = out_value(o, &v->v.arr.arrs[i]);
    }
    return rc;
}

/* Rows of tensor ti from the fill callback, CHUNK_BYTES of whole rows at a
 * time (one row when a row alone is bigger). */
static int out_filled(out_t *o, const rf_gguf_writer_t *w, size_t ti, rf_gguf_fill_fn fill,
                      void *fill_ctx)
{
    const wtensor_t *t = &w->tensors[ti];
    uint64_t rows_per_chunk = t->row_bytes >= CHUNK_BYTES ? 1 : CHUNK_BYTES / t->row_bytes;
    if (rows_per_chunk > t->n_rows)
        rows_per_chunk = t->n_rows;
    uint64_t chunk_bytes = rows_per_chunk * t->row_bytes;
    if (chunk_bytes > SIZE_MAX)
        return rf_err_set(o->err, -ENOMEM, "tensor '%s': a row of %" PRIu64 " bytes is too big",
                          t->name, t->row_bytes);
    uint8_t *chunk = malloc((size_t)chunk_bytes);
    if (chunk == NULL)
        return rf_err_set(o->err, -ENOMEM,
                          "tensor '%s': out of memory for a %" PRIu64 "-byte row chunk",
                          t->name, chunk_bytes);
    int rc = 0;
    for (uint64_t row0 = 0; row0 < t->n_rows && rc == 0; row0 += rows_per_chunk) {
        uint64_t n = t->n_rows - row0 < rows_per_chunk ? t->n_rows - row0 : rows_per_chunk;
        /* Zeroed first so bytes a buggy callback skips never leak heap
         * contents into the file. */
        memset(chunk, 0, (size_t)(n * t->row_bytes));
        rc = fill(fill_ctx, ti, row0, n, chunk);
        if (rc != 0) {
            if (rc > 0)
                rc = -EINVAL; /* the contract is 0 or negative; never report success */
            rc = rf_err_set(o->err, rc,
                            "tensor '%s' rows %" PRIu64 "..%" PRIu64 ": fill callback failed: %s",
                            t->name, row0, row0 + n - 1, rf_strerror(rc));
            break;
        }
        rc = out_bytes(o, chunk, n * t->row_bytes);
    }
    free(chunk);
    return rc;
}

static int write_contents(out_t *o, const rf_gguf_writer_t *w, uint32_t alignment,
                          rf_gguf_fill_fn fill, void *fill_ctx)
{
    int rc = out_le(o, RF_GGUF_MAGIC, 4);
    if (rc == 0) rc = out_le(o, 3, 4);
    if (rc == 0) rc = out_le(o, w->n_tensors, 8);
    if (rc == 0) rc = out_le(o, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv && rc == 0; i++) {
        rc = out_str(o, w->kvs[i].key, strlen(w->kvs[i].key));
        if (rc == 0) rc = out_le(o, (uint32_t)w->kvs[i].value.type, 4);
        if (rc == 0) rc = out_value(o, &w->kvs[i].value);
    }
    for (size_t i = 0; i < w->n_tensors && rc == 0; i++) {
        const wtensor_t *t = &w->tensors[i];
        rc = out_str(o, t->name, strlen(t->name));
        if (rc == 0) rc = out_le(o, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims && rc == 0; d++)
            rc = out_le(o, t->ne[d], 8);
        if (rc == 0) rc = out_le(o, (uint32_t)t->type, 4);
        if (rc == 0) rc = out_le(o, t->offset, 8);
    }
    if (rc == 0)
        rc = out_pad(o, alignment);
    uint64_t data_start = o->written;
    for (size_t i = 0; i < w->n_tensors && rc == 0; i++) {
        const wtensor_t *t = &w->tensors[i];
        if (o->written - data_start != t->offset)
            return rf_err_set(o->err, RF_EFORMAT, "internal: tensor '%s' lands at %" PRIu64
                              " instead of %" PRIu64, t->name, o->written - data_start,
                              t->offset);
        if (t->data != NULL)
            rc = out_bytes(o, t->data, t->n_bytes);
        else
            rc = out_filled(o, w, i, fill, fill_ctx);
        if (rc == 0)
            rc = out_pad(o, alignment);
    }
    if (rc == 0)
        rc = out_flush(o);
    return rc;
}

/* Make the rename itself durable; failure here cannot undo the write, and
 * some file systems refuse fsync on directories, so it is best effort. */
static void sync_parent_dir(const char *path)
{
    char *dir = strdup(path);
    if (dir == NULL)
        return;
    char *slash = strrchr(dir, '/');
    const char *name = dir;
    if (slash == NULL)
        name = ".";
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    int fd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int rf_gguf_writer_write(rf_gguf_writer_t *w, const char *path, rf_gguf_fill_fn fill,
                         void *fill_ctx, rf_err_t *err)
{
    rf_err_clear(err);
    if (w == NULL || path == NULL)
        return rf_err_set(err, -EINVAL, "rf_gguf_writer_write: NULL writer or path");

    /* Everything that can be checked is checked before the file exists, so
     * a refused write creates nothing and calls no callback. */
    uint32_t alignment = RF_GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kvs[i].key, "general.alignment") == 0)
            alignment = (uint32_t)w->kvs[i].value.v.u64; /* checked when set */
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        wtensor_t *t = &w->tensors[i];
        if (t->data == NULL && fill == NULL)
            return rf_err_set(err, -EINVAL,
                              "%s: tensor '%s' has no data and no fill callback was given", path,
                              t->name);
        uint64_t padded = t->n_bytes + (alignment - t->n_bytes % alignment) % alignment;
        if (padded < t->n_bytes || offset > UINT64_MAX - padded)
            return rf_err_set(err, RF_ERANGE, "%s: tensor data exceeds 2^64 bytes", path);
        t->offset = offset;
        offset += padded;
    }

    size_t path_len = strlen(path);
    char *tmp_path = malloc(path_len + 5);
    uint8_t *buf = malloc(OUT_BUFFER_BYTES);
    if (tmp_path == NULL || buf == NULL) {
        free(tmp_path);
        free(buf);
        return rf_err_set(err, -ENOMEM, "%s: out of memory", path);
    }
    memcpy(tmp_path, path, path_len);
    memcpy(tmp_path + path_len, ".tmp", 5);

    int rc = 0;
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        rf_err_set(err, rc, "%s: cannot create: %s", tmp_path, strerror(-rc));
        free(tmp_path);
        free(buf);
        return rc;
    }
    out_t o = {.fd = fd, .buf = buf, .tmp_path = tmp_path, .err = err};
    rc = write_contents(&o, w, alignment, fill, fill_ctx);
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
        rf_err_set(err, rc, "%s: fsync failed: %s", tmp_path, strerror(-rc));
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
        rf_err_set(err, rc, "%s: close failed: %s", tmp_path, strerror(-rc));
    }
    if (rc == 0 && rename(tmp_path, path) != 0) {
        rc = -errno;
        rf_err_set(err, rc, "cannot rename %s to %s: %s", tmp_path, path, strerror(-rc));
    }
    if (rc != 0)
        unlink(tmp_path);
    else
        sync_parent_dir(path);
    free(tmp_path);
    free(buf);
    return rc;
}
