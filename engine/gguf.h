/* gguf.h - GGUF v2/v3 reader (mmap) and v3 writer
 *
 * The reader maps the file read-only and parses the header, the metadata
 * key/value pairs and the tensor infos up front. Every count, length, offset
 * and tensor extent is checked against the file size before use; a bad file
 * fails rf_gguf_open() with an rf_err_t message naming the byte offset and
 * what was wrong. After a successful open every accessor is bounds-safe.
 *
 * Strings point into the mapping and are NOT NUL-terminated: use len.
 * Values in the mapping may be unaligned; accessors copy them out.
 *
 * The writer builds a file in memory-light fashion: metadata and tensor infos
 * first, then tensor data, either from caller buffers or streamed row chunks
 * from a callback, so multi-GB synthetic models never sit in memory whole.
 * It writes to PATH.tmp and renames on success, so a failed write leaves no
 * half file under the final name.
 */
#ifndef RF_GGUF_H
#define RF_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define RF_GGUF_MAGIC 0x46554747u /* "GGUF" read as little-endian u32 */
#define RF_GGUF_DEFAULT_ALIGNMENT 32
#define RF_GGUF_MAX_DIMS 4
#define RF_GGUF_MAX_ARRAY_DEPTH 8 /* nesting of arrays of arrays we accept */

typedef enum rf_gguf_type {
    RF_GGUF_UINT8 = 0,
    RF_GGUF_INT8 = 1,
    RF_GGUF_UINT16 = 2,
    RF_GGUF_INT16 = 3,
    RF_GGUF_UINT32 = 4,
    RF_GGUF_INT32 = 5,
    RF_GGUF_FLOAT32 = 6,
    RF_GGUF_BOOL = 7,
    RF_GGUF_STRING = 8,
    RF_GGUF_ARRAY = 9,
    RF_GGUF_UINT64 = 10,
    RF_GGUF_INT64 = 11,
    RF_GGUF_FLOAT64 = 12,
    RF_GGUF_TYPE_COUNT
} rf_gguf_type_t;

typedef struct rf_gguf_str {
    uint64_t len;
    const char *data; /* into the mapping (reader) or caller memory; no NUL */
} rf_gguf_str_t;

/* A metadata value. Scalars are held decoded; arrays of fixed-size elements
 * point at their packed little-endian bytes in the mapping; arrays of strings
 * and arrays of arrays hold decoded element tables owned by the rf_gguf_t. */
typedef struct rf_gguf_value {
    rf_gguf_type_t type;
    union {
        uint64_t u64;  /* UINT8/16/32/64, BOOL (0 or 1) */
        int64_t i64;   /* INT8/16/32/64 */
        double f64;    /* FLOAT32/64 */
        rf_gguf_str_t str;
        struct {
            rf_gguf_type_t elem_type;
            uint64_t n;
            const uint8_t *data;              /* fixed-size elements */
            const rf_gguf_str_t *strs;        /* elem_type == STRING */
            const struct rf_gguf_value *arrs; /* elem_type == ARRAY */
        } arr;
    } v;
} rf_gguf_value_t;

typedef struct rf_gguf_kv {
    rf_gguf_str_t key;
    rf_gguf_value_t value;
    uint64_t file_offset; /* byte offset of the key in the file */
} rf_gguf_kv_t;

typedef struct rf_gguf_tensor {
    rf_gguf_str_t name;
    uint32_t n_dims;
    uint64_t ne[RF_GGUF_MAX_DIMS]; /* elements per dim, ne[0] fastest; unused dims 1 */
    int type;                      /* rf_type_t id */
    uint64_t offset;               /* from the start of the data section */
    uint64_t n_elements;
    uint64_t n_bytes;
    const void *data;              /* into the mapping */
} rf_gguf_tensor_t;

typedef struct rf_gguf rf_gguf_t;

/* ---- reader ---- */

/* Map and parse path. On success *out owns the mapping; free with
 * rf_gguf_close(). On failure *out is NULL, err holds one line naming the
 * path, the byte offset and the problem. Returns 0, -errno (open/mmap),
 * RF_EFORMAT, RF_ETRUNC, RF_EVERSION or RF_EUNSUPPORTED. */
int rf_gguf_open(rf_gguf_t **out, const char *path, rf_err_t *err);

/* Same checks over a caller buffer (kept borrowed; must outlive the handle).
 * Used by the fuzzer and tests. */
int rf_gguf_open_memory(rf_gguf_t **out, const void *buf, size_t size, rf_err_t *err);

void rf_gguf_close(rf_gguf_t *g); /* NULL is fine */

uint32_t rf_gguf_version(const rf_gguf_t *g);
uint32_t rf_gguf_alignment(const rf_gguf_t *g);
uint64_t rf_gguf_data_offset(const rf_gguf_t *g); /* start of tensor data */
uint64_t rf_gguf_file_size(const rf_gguf_t *g);

uint64_t rf_gguf_n_kv(const rf_gguf_t *g);
const rf_gguf_kv_t *rf_gguf_kv_at(const rf_gguf_t *g, uint64_t i); /* NULL if out of range */
const rf_gguf_kv_t *rf_gguf_find_kv(const rf_gguf_t *g, const char *key);

uint64_t rf_gguf_n_tensors(const rf_gguf_t *g);
const rf_gguf_tensor_t *rf_gguf_tensor_at(const rf_gguf_t *g, uint64_t i);
const rf_gguf_tensor_t *rf_gguf_find_tensor(const rf_gguf_t *g, const char *name);

/* Typed getters. Return 0 and store the value; 1 (positive: not broken) if
 * the key is absent; RF_ETYPE if the stored type cannot represent the result
 * (integer getters accept any integer type whose value fits; float getters
 * accept FLOAT32/FLOAT64); RF_ERANGE if an integer does not fit. */
int rf_gguf_get_u32(const rf_gguf_t *g, const char *key, uint32_t *out);
int rf_gguf_get_i32(const rf_gguf_t *g, const char *key, int32_t *out);
int rf_gguf_get_u64(const rf_gguf_t *g, const char *key, uint64_t *out);
int rf_gguf_get_i64(const rf_gguf_t *g, const char *key, int64_t *out);
int rf_gguf_get_f32(const rf_gguf_t *g, const char *key, float *out);
int rf_gguf_get_f64(const rf_gguf_t *g, const char *key, double *out);
int rf_gguf_get_bool(const rf_gguf_t *g, const char *key, bool *out);
int rf_gguf_get_str(const rf_gguf_t *g, const char *key, rf_gguf_str_t *out);
/* Array getter: *out points at the value (type ARRAY); elem_type, if not
 * negative, must match the stored element type or RF_ETYPE is returned. */
int rf_gguf_get_arr(const rf_gguf_t *g, const char *key, int elem_type,
                    const rf_gguf_value_t **out);

/* Element i of an array value, converted. Return 0, RF_ERANGE if i is out of
 * bounds or the value does not fit, RF_ETYPE if the element type differs in
 * kind (integer/float/string/array). */
int rf_gguf_arr_i64(const rf_gguf_value_t *arr, uint64_t i, int64_t *out);
int rf_gguf_arr_f64(const rf_gguf_value_t *arr, uint64_t i, double *out);
int rf_gguf_arr_str(const rf_gguf_value_t *arr, uint64_t i, rf_gguf_str_t *out);

/* Helpers for printing and comparing. */
const char *rf_gguf_type_name(int type);   /* "u32", "str", "arr", "?" */
bool rf_gguf_str_eq(rf_gguf_str_t s, const char *cstr);
size_t rf_gguf_type_size(int type);        /* bytes of a fixed-size scalar, 0 otherwise */

/* ---- writer ---- */

typedef struct rf_gguf_writer rf_gguf_writer_t;

/* Fill n_rows rows of tensor tensor_index starting at row0 into dst (packed,
 * in the tensor's type). A row is ne[0] elements. Return 0 or a negative
 * code; a failure aborts the write. */
typedef int (*rf_gguf_fill_fn)(void *ctx, size_t tensor_index, uint64_t row0,
                               uint64_t n_rows, void *dst);

int rf_gguf_writer_open(rf_gguf_writer_t **out);
void rf_gguf_writer_close(rf_gguf_writer_t *w); /* NULL is fine */

/* Metadata setters copy key and value. Setting a key twice replaces it.
 * Return 0 or -ENOMEM; RF_EFORMAT for a NULL or empty key or a malformed
 * value, RF_ERANGE for a value its type cannot hold, RF_EUNSUPPORTED for
 * arrays nested deeper than RF_GGUF_MAX_ARRAY_DEPTH. Alignment comes from
 * general.alignment if set (u32, power of two: other types give RF_ETYPE,
 * other values RF_EFORMAT), else 32. */
int rf_gguf_writer_set_u8(rf_gguf_writer_t *w, const char *key, uint8_t v);
int rf_gguf_writer_set_i8(rf_gguf_writer_t *w, const char *key, int8_t v);
int rf_gguf_writer_set_u16(rf_gguf_writer_t *w, const char *key, uint16_t v);
int rf_gguf_writer_set_i16(rf_gguf_writer_t *w, const char *key, int16_t v);
int rf_gguf_writer_set_u32(rf_gguf_writer_t *w, const char *key, uint32_t v);
int rf_gguf_writer_set_i32(rf_gguf_writer_t *w, const char *key, int32_t v);
int rf_gguf_writer_set_u64(rf_gguf_writer_t *w, const char *key, uint64_t v);
int rf_gguf_writer_set_i64(rf_gguf_writer_t *w, const char *key, int64_t v);
int rf_gguf_writer_set_f32(rf_gguf_writer_t *w, const char *key, float v);
int rf_gguf_writer_set_f64(rf_gguf_writer_t *w, const char *key, double v);
int rf_gguf_writer_set_bool(rf_gguf_writer_t *w, const char *key, bool v);
int rf_gguf_writer_set_str(rf_gguf_writer_t *w, const char *key, const char *v);
/* Array of fixed-size elements (elem_type a scalar type), n packed
 * little-endian host values at data. */
int rf_gguf_writer_set_arr(rf_gguf_writer_t *w, const char *key, int elem_type,
                           const void *data, uint64_t n);
int rf_gguf_writer_set_arr_str(rf_gguf_writer_t *w, const char *key,
                               const char *const *strs, uint64_t n);
/* Any value, including nested arrays (what a reader returned, say). */
int rf_gguf_writer_set_value(rf_gguf_writer_t *w, const char *key,
                             const rf_gguf_value_t *value);

/* Add a tensor. data (n_bytes in type's packed layout) is borrowed until
 * rf_gguf_writer_write returns; NULL means the rows come from the fill
 * callback. Returns 0, RF_EFORMAT (ne[0] not a multiple of the block size,
 * zero dims, n_dims > 4), RF_EUNSUPPORTED (unknown type), or -EEXIST (name
 * already added). */
int rf_gguf_writer_add_tensor(rf_gguf_writer_t *w, const char *name, int type,
                              uint32_t n_dims, const uint64_t *ne, const void *data);

/* Write the file: PATH.tmp, then fsync and rename to path. fill may be NULL
 * when every tensor has data. Returns 0, -errno, or the fill's error; err
 * says what failed. */
int rf_gguf_writer_write(rf_gguf_writer_t *w, const char *path, rf_gguf_fill_fn fill,
                         void *fill_ctx, rf_err_t *err);

#endif /* RF_GGUF_H */
