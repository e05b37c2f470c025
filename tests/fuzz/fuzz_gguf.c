/* fuzz_gguf.c - libFuzzer target for the GGUF reader
 *
 * Parses the input with rf_gguf_open_memory() and, when it opens, walks
 * every key/value (arrays of arrays included), every array element through
 * the accessors and the first and last byte of every tensor, so that a
 * handle the parser wrongly accepted shows up as an ASan report. A refused
 * input must come with a one-line message naming a byte offset.
 *
 * libFuzzer hands over a buffer of exactly `size` bytes, so any read past
 * the end is an ASan error.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink; /* keeps the walk from being optimised away */

static uint64_t walk_value(const rf_gguf_value_t *v)
{
    uint64_t sum = 0;
    if (v->type == RF_GGUF_STRING) {
        for (uint64_t i = 0; i < v->v.str.len; i++)
            sum += (uint8_t)v->v.str.data[i];
        return sum;
    }
    if (v->type != RF_GGUF_ARRAY)
        return v->v.u64;
    for (uint64_t i = 0; i < v->v.arr.n; i++) {
        int64_t x;
        double d;
        rf_gguf_str_t s;
        if (v->v.arr.elem_type == RF_GGUF_ARRAY) {
            sum += walk_value(&v->v.arr.arrs[i]);
        } else if (rf_gguf_arr_str(v, i, &s) == 0) {
            for (uint64_t k = 0; k < s.len; k++)
                sum += (uint8_t)s.data[k];
        } else if (rf_gguf_arr_f64(v, i, &d) == 0) {
            sum += d != d;
        } else if (rf_gguf_arr_i64(v, i, &x) == 0) {
            sum += (uint64_t)x;
        }
    }
    /* One past the end must be refused, not read. */
    int64_t x;
    if (v->v.arr.elem_type != RF_GGUF_STRING && v->v.arr.elem_type != RF_GGUF_ARRAY &&
        v->v.arr.elem_type != RF_GGUF_FLOAT32 && v->v.arr.elem_type != RF_GGUF_FLOAT64 &&
        rf_gguf_arr_i64(v, v->v.arr.n, &x) != RF_ERANGE)
        abort();
    return sum;
}

/* Names with a NUL byte cannot be looked up by C string; skip those. */
static bool as_cstr(rf_gguf_str_t s, char *buf, size_t cap)
{
    if (s.len >= cap || memchr(s.data, '\0', s.len) != NULL)
        return false;
    memcpy(buf, s.data, s.len);
    buf[s.len] = '\0';
    return true;
}

/* Every getter on every key: each must answer, none may misread. */
static uint64_t get_all(const rf_gguf_t *g, const rf_gguf_kv_t *kv, const char *key)
{
    uint32_t u32 = 0;
    int32_t i32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f32 = 0;
    double f64 = 0;
    bool b = false;
    rf_gguf_str_t s = {0};
    const rf_gguf_value_t *arr = NULL;
    if (rf_gguf_find_kv(g, key) != kv)
        abort();
    int rc = rf_gguf_get_u32(g, key, &u32) | rf_gguf_get_i32(g, key, &i32) |
             rf_gguf_get_u64(g, key, &u64) | rf_gguf_get_i64(g, key, &i64) |
             rf_gguf_get_f32(g, key, &f32) | rf_gguf_get_f64(g, key, &f64) |
             rf_gguf_get_bool(g, key, &b) | rf_gguf_get_str(g, key, &s) |
             rf_gguf_get_arr(g, key, -1, &arr);
    if (arr != NULL && arr != &kv->value)
        abort();
    return (uint64_t)rc + u32 + (uint64_t)i32 + u64 + (uint64_t)i64 + (f32 != f32) +
           (f64 != f64) + b + s.len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rf_gguf_t *g = NULL;
    rf_err_t err = {0};
    int rc = rf_gguf_open_memory(&g, data, size, &err);
    if (rc != 0) {
        /* A refusal must explain itself in one line and leave no handle. */
        if (g != NULL || rc > 0 || err.msg[0] == '\0' || strchr(err.msg, '\n') != NULL ||
            (rc != -12 /* ENOMEM */ && strstr(err.msg, "byte ") == NULL))
            abort();
        return 0;
    }
    uint64_t sum = rf_gguf_version(g) + rf_gguf_alignment(g);
    if (rf_gguf_data_offset(g) > rf_gguf_file_size(g))
        abort();
    for (uint64_t i = 0; i < rf_gguf_n_kv(g); i++) {
        const rf_gguf_kv_t *kv = rf_gguf_kv_at(g, i);
        sum += walk_value(&kv->value);
        char key[512];
        if (as_cstr(kv->key, key, sizeof key))
            sum += get_all(g, kv, key);
    }
    if (rf_gguf_kv_at(g, rf_gguf_n_kv(g)) != NULL)
        abort();
    for (uint64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor_t *t = rf_gguf_tensor_at(g, i);
        const uint8_t *p = t->data;
        if (t->n_bytes == 0 || p < data || p + t->n_bytes > data + size)
            abort();
        sum += p[0] + p[t->n_bytes - 1];
        char name[512];
        if (as_cstr(t->name, name, sizeof name) && rf_gguf_find_tensor(g, name) != t)
            abort();
    }
    sink = sum;
    rf_gguf_close(g);
    return 0;
}
