/* test_gguf.c - GGUF writer -> reader round trips, typed getters, v2 files
 *
 * Files go to RF_TMPDIR with the test's pid in the name so parallel runs do
 * not collide; each test removes what it wrote.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "quant.h"

/* ---- helpers ---- */

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/test_gguf_%s_%d.gguf", RF_TMPDIR, name, (int)getpid());
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/* Deterministic bytes so a mismatch points at a real copy bug. */
static void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static rf_gguf_t *write_and_open(rf_gguf_writer_t *w, const char *path, rf_gguf_fill_fn fill,
                                 void *ctx)
{
    rf_err_t err = {0};
    int rc = rf_gguf_writer_write(w, path, fill, ctx, &err);
    cr_assert_eq(rc, 0, "write failed: %d %s", rc, err.msg);
    rf_gguf_t *g = NULL;
    rc = rf_gguf_open(&g, path, &err);
    cr_assert_eq(rc, 0, "open failed: %d %s", rc, err.msg);
    return g;
}

/* ---- metadata ---- */

Test(gguf, every_metadata_type_round_trips)
{
    char path[256];
    tmp_path(path, sizeof path, "meta");
    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);

    cr_assert_eq(rf_gguf_writer_set_u8(w, "t.u8", 250), 0);
    cr_assert_eq(rf_gguf_writer_set_i8(w, "t.i8", -100), 0);
    cr_assert_eq(rf_gguf_writer_set_u16(w, "t.u16", 65000), 0);
    cr_assert_eq(rf_gguf_writer_set_i16(w, "t.i16", -32000), 0);
    cr_assert_eq(rf_gguf_writer_set_u32(w, "t.u32", 4000000000u), 0);
    cr_assert_eq(rf_gguf_writer_set_i32(w, "t.i32", -2000000000), 0);
    cr_assert_eq(rf_gguf_writer_set_u64(w, "t.u64", UINT64_MAX - 5), 0);
    cr_assert_eq(rf_gguf_writer_set_i64(w, "t.i64", INT64_MIN + 7), 0);
    cr_assert_eq(rf_gguf_writer_set_f32(w, "t.f32", 1.5e-5f), 0);
    cr_assert_eq(rf_gguf_writer_set_f64(w, "t.f64", -3.141592653589793), 0);
    cr_assert_eq(rf_gguf_writer_set_bool(w, "t.bool", true), 0);
    cr_assert_eq(rf_gguf_writer_set_str(w, "t.str", "hello"), 0);

    /* A string with an embedded NUL, a newline and a non-UTF-8 byte. */
    static const char odd[] = {'a', '\0', 'b', '\n', (char)0xff, 'z'};
    rf_gguf_value_t v = {.type = RF_GGUF_STRING, .v.str = {sizeof odd, odd}};
    cr_assert_eq(rf_gguf_writer_set_value(w, "t.odd", &v), 0);

    const int32_t i32s[] = {1, -2, 3, INT32_MIN};
    const float f32s[] = {0.5f, -1.25f};
    const uint64_t u64s[] = {0, UINT64_MAX};
    const uint8_t bools[] = {1, 0, 1};
    cr_assert_eq(rf_gguf_writer_set_arr(w, "a.i32", RF_GGUF_INT32, i32s, 4), 0);
    cr_assert_eq(rf_gguf_writer_set_arr(w, "a.f32", RF_GGUF_FLOAT32, f32s, 2), 0);
    cr_assert_eq(rf_gguf_writer_set_arr(w, "a.u64", RF_GGUF_UINT64, u64s, 2), 0);
    cr_assert_eq(rf_gguf_writer_set_arr(w, "a.bool", RF_GGUF_BOOL, bools, 3), 0);
    cr_assert_eq(rf_gguf_writer_set_arr(w, "a.empty", RF_GGUF_UINT32, NULL, 0), 0);
    const char *strs[] = {"x", "", "multi word"};
    cr_assert_eq(rf_gguf_writer_set_arr_str(w, "a.str", strs, 3), 0);

    /* [[1, 2], [], [["deep"]]] is not expressible (mixed); use two shapes:
     * nest = [[1, 2], [3]] (arrays of i16) and
     * nest3 = [[["p", "q"]], [["r"], []]] (three levels of strings). */
    const int16_t a0[] = {1, 2}, a1[] = {3};
    rf_gguf_value_t inner[2] = {{.type = RF_GGUF_ARRAY}, {.type = RF_GGUF_ARRAY}};
    inner[0].v.arr.elem_type = RF_GGUF_INT16;
    inner[0].v.arr.n = 2;
    inner[0].v.arr.data = (const uint8_t *)a0;
    inner[1].v.arr.elem_type = RF_GGUF_INT16;
    inner[1].v.arr.n = 1;
    inner[1].v.arr.data = (const uint8_t *)a1;
    rf_gguf_value_t nest = {.type = RF_GGUF_ARRAY};
    nest.v.arr.elem_type = RF_GGUF_ARRAY;
    nest.v.arr.n = 2;
    nest.v.arr.arrs = inner;
    cr_assert_eq(rf_gguf_writer_set_value(w, "n.nest", &nest), 0);

    const rf_gguf_str_t pq[] = {{1, "p"}, {1, "q"}}, r[] = {{1, "r"}};
    rf_gguf_value_t lvl3[3] = {{.type = RF_GGUF_ARRAY}, {.type = RF_GGUF_ARRAY},
                               {.type = RF_GGUF_ARRAY}};
    lvl3[0].v.arr.elem_type = RF_GGUF_STRING;
    lvl3[0].v.arr.n = 2;
    lvl3[0].v.arr.strs = pq;
    lvl3[1].v.arr.elem_type = RF_GGUF_STRING;
    lvl3[1].v.arr.n = 1;
    lvl3[1].v.arr.strs = r;
    lvl3[2].v.arr.elem_type = RF_GGUF_STRING; /* empty */
    rf_gguf_value_t lvl2[2] = {{.type = RF_GGUF_ARRAY}, {.type = RF_GGUF_ARRAY}};
    lvl2[0].v.arr.elem_type = RF_GGUF_ARRAY;
    lvl2[0].v.arr.n = 1;
    lvl2[0].v.arr.arrs = &lvl3[0];
    lvl2[1].v.arr.elem_type = RF_GGUF_ARRAY;
    lvl2[1].v.arr.n = 2;
    lvl2[1].v.arr.arrs = &lvl3[1];
    rf_gguf_value_t nest3 = {.type = RF_GGUF_ARRAY};
    nest3.v.arr.elem_type = RF_GGUF_ARRAY;
    nest3.v.arr.n = 2;
    nest3.v.arr.arrs = lvl2;
    cr_assert_eq(rf_gguf_writer_set_value(w, "n.nest3", &nest3), 0);

    rf_gguf_t *g = write_and_open(w, path, NULL, NULL);
    rf_gguf_writer_close(w);

    cr_assert_eq(rf_gguf_version(g), 3);
    cr_assert_eq(rf_gguf_n_kv(g), 21);
    cr_assert_eq(rf_gguf_n_tensors(g), 0);
    cr_assert_eq(rf_gguf_alignment(g), 32);

    const struct { const char *key; rf_gguf_type_t type; } types[] = {
        {"t.u8", RF_GGUF_UINT8}, {"t.i8", RF_GGUF_INT8}, {"t.u16", RF_GGUF_UINT16},
        {"t.i16", RF_GGUF_INT16}, {"t.u32", RF_GGUF_UINT32}, {"t.i32", RF_GGUF_INT32},
        {"t.u64", RF_GGUF_UINT64}, {"t.i64", RF_GGUF_INT64}, {"t.f32", RF_GGUF_FLOAT32},
        {"t.f64", RF_GGUF_FLOAT64}, {"t.bool", RF_GGUF_BOOL}, {"t.str", RF_GGUF_STRING},
        {"a.i32", RF_GGUF_ARRAY},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const rf_gguf_kv_t *kv = rf_gguf_find_kv(g, types[i].key);
        cr_assert_not_null(kv, "%s missing", types[i].key);
        cr_assert_eq(kv->value.type, types[i].type, "%s has type %d", types[i].key,
                     kv->value.type);
    }
    /* Order is the order of first set. */
    cr_assert(rf_gguf_str_eq(rf_gguf_kv_at(g, 0)->key, "t.u8"));
    cr_assert(rf_gguf_str_eq(rf_gguf_kv_at(g, 20)->key, "n.nest3"));
    cr_assert_null(rf_gguf_kv_at(g, 21));

    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f32;
    double f64;
    bool b;
    rf_gguf_str_t s;
    cr_assert_eq(rf_gguf_get_u32(g, "t.u8", &u32), 0);
    cr_assert_eq(u32, 250);
    cr_assert_eq(rf_gguf_get_i32(g, "t.i8", &i32), 0);
    cr_assert_eq(i32, -100);
    cr_assert_eq(rf_gguf_get_u32(g, "t.u16", &u32), 0);
    cr_assert_eq(u32, 65000);
    cr_assert_eq(rf_gguf_get_i32(g, "t.i16", &i32), 0);
    cr_assert_eq(i32, -32000);
    cr_assert_eq(rf_gguf_get_u32(g, "t.u32", &u32), 0);
    cr_assert_eq(u32, 4000000000u);
    cr_assert_eq(rf_gguf_get_i32(g, "t.i32", &i32), 0);
    cr_assert_eq(i32, -2000000000);
    cr_assert_eq(rf_gguf_get_u64(g, "t.u64", &u64), 0);
    cr_assert_eq(u64, UINT64_MAX - 5);
    cr_assert_eq(rf_gguf_get_i64(g, "t.i64", &i64), 0);
    cr_assert_eq(i64, INT64_MIN + 7);
    cr_assert_eq(rf_gguf_get_f32(g, "t.f32", &f32), 0);
    cr_assert_eq(f32, 1.5e-5f);
    cr_assert_eq(rf_gguf_get_f64(g, "t.f64", &f64), 0);
    cr_assert_eq(f64, -3.141592653589793);
    cr_assert_eq(rf_gguf_get_bool(g, "t.bool", &b), 0);
    cr_assert(b);
    cr_assert_eq(rf_gguf_get_str(g, "t.str", &s), 0);
    cr_assert(rf_gguf_str_eq(s, "hello"));
    cr_assert_eq(rf_gguf_get_str(g, "t.odd", &s), 0);
    cr_assert_eq(s.len, sizeof odd);
    cr_assert_eq(memcmp(s.data, odd, sizeof odd), 0);

    const rf_gguf_value_t *arr;
    cr_assert_eq(rf_gguf_get_arr(g, "a.i32", RF_GGUF_INT32, &arr), 0);
    cr_assert_eq(arr->v.arr.n, 4);
    for (uint64_t i = 0; i < 4; i++) {
        cr_assert_eq(rf_gguf_arr_i64(arr, i, &i64), 0);
        cr_assert_eq(i64, i32s[i]);
    }
    cr_assert_eq(rf_gguf_get_arr(g, "a.f32", RF_GGUF_FLOAT32, &arr), 0);
    cr_assert_eq(rf_gguf_arr_f64(arr, 1, &f64), 0);
    cr_assert_eq(f64, -1.25);
    cr_assert_eq(rf_gguf_get_arr(g, "a.u64", RF_GGUF_UINT64, &arr), 0);
    cr_assert_eq(rf_gguf_arr_i64(arr, 0, &i64), 0);
    cr_assert_eq(i64, 0);
    cr_assert_eq(memcmp(arr->v.arr.data, u64s, sizeof u64s), 0);
    cr_assert_eq(rf_gguf_get_arr(g, "a.bool", RF_GGUF_BOOL, &arr), 0);
    cr_assert_eq(rf_gguf_arr_i64(arr, 2, &i64), 0);
    cr_assert_eq(i64, 1);
    cr_assert_eq(rf_gguf_get_arr(g, "a.empty", RF_GGUF_UINT32, &arr), 0);
    cr_assert_eq(arr->v.arr.n, 0);
    cr_assert_eq(rf_gguf_arr_i64(arr, 0, &i64), RF_ERANGE);
    cr_assert_eq(rf_gguf_get_arr(g, "a.str", RF_GGUF_STRING, &arr), 0);
    cr_assert_eq(arr->v.arr.n, 3);
    for (uint64_t i = 0; i < 3; i++) {
        cr_assert_eq(rf_gguf_arr_str(arr, i, &s), 0);
        cr_assert(rf_gguf_str_eq(s, strs[i]), "element %d", (int)i);
    }

    cr_assert_eq(rf_gguf_get_arr(g, "n.nest", RF_GGUF_ARRAY, &arr), 0);
    cr_assert_eq(arr->v.arr.n, 2);
    cr_assert_eq(arr->v.arr.arrs[0].v.arr.elem_type, RF_GGUF_INT16);
    cr_assert_eq(arr->v.arr.arrs[0].v.arr.n, 2);
    cr_assert_eq(rf_gguf_arr_i64(&arr->v.arr.arrs[0], 1, &i64), 0);
    cr_assert_eq(i64, 2);
    cr_assert_eq(rf_gguf_arr_i64(&arr->v.arr.arrs[1], 0, &i64), 0);
    cr_assert_eq(i64, 3);

    cr_assert_eq(rf_gguf_get_arr(g, "n.nest3", RF_GGUF_ARRAY, &arr), 0);
    const rf_gguf_value_t *second = &arr->v.arr.arrs[1];
    cr_assert_eq(second->v.arr.n, 2);
    cr_assert_eq(rf_gguf_arr_str(&second->v.arr.arrs[0], 0, &s), 0);
    cr_assert(rf_gguf_str_eq(s, "r"));
    cr_assert_eq(second->v.arr.arrs[1].v.arr.n, 0);
    cr_assert_eq(rf_gguf_arr_str(&arr->v.arr.arrs[0].v.arr.arrs[0], 1, &s), 0);
    cr_assert(rf_gguf_str_eq(s, "q"));

    rf_gguf_close(g);
    unlink(path);
}

Test(gguf, typed_getters_convert_and_refuse)
{
    char path[256];
    tmp_path(path, sizeof path, "getters");
    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    cr_assert_eq(rf_gguf_writer_set_u8(w, "small", 200), 0);
    cr_assert_eq(rf_gguf_writer_set_i64(w, "neg", -1), 0);
    cr_assert_eq(rf_gguf_writer_set_u64(w, "big", 1ull << 40), 0);
    cr_assert_eq(rf_gguf_writer_set_u64(w, "huge", UINT64_MAX), 0);
    cr_assert_eq(rf_gguf_writer_set_i32(w, "minus", -5), 0);
    cr_assert_eq(rf_gguf_writer_set_f32(w, "f", 2.5f), 0);
    cr_assert_eq(rf_gguf_writer_set_f64(w, "d", 1e300), 0);
    cr_assert_eq(rf_gguf_writer_set_str(w, "s", "text"), 0);
    cr_assert_eq(rf_gguf_writer_set_bool(w, "b", false), 0);
    const uint64_t big[] = {1, UINT64_MAX};
    cr_assert_eq(rf_gguf_writer_set_arr(w, "arr", RF_GGUF_UINT64, big, 2), 0);
    const double ds[] = {0.25};
    cr_assert_eq(rf_gguf_writer_set_arr(w, "darr", RF_GGUF_FLOAT64, ds, 1), 0);
    rf_gguf_t *g = write_and_open(w, path, NULL, NULL);
    rf_gguf_writer_close(w);

    uint32_t u32 = 7;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f32;
    double f64;
    bool b = true;
    rf_gguf_str_t s;

    /* Any integer type converts when the value fits. */
    cr_assert_eq(rf_gguf_get_i32(g, "small", &i32), 0);
    cr_assert_eq(i32, 200);
    cr_assert_eq(rf_gguf_get_i64(g, "big", &i64), 0);
    cr_assert_eq(i64, 1ll << 40);
    cr_assert_eq(rf_gguf_get_i32(g, "minus", &i32), 0);
    cr_assert_eq(i32, -5);

    /* ... and refuses with RF_ERANGE when it does not. */
    cr_assert_eq(rf_gguf_get_u32(g, "neg", &u32), RF_ERANGE);
    cr_assert_eq(rf_gguf_get_u64(g, "neg", &u64), RF_ERANGE);
    cr_assert_eq(rf_gguf_get_u32(g, "big", &u32), RF_ERANGE);
    cr_assert_eq(rf_gguf_get_i32(g, "big", &i32), RF_ERANGE);
    cr_assert_eq(rf_gguf_get_i64(g, "huge", &i64), RF_ERANGE);
    cr_assert_eq(u32, 7, "a failed getter must not store");
    cr_assert_eq(rf_gguf_get_f32(g, "d", &f32), RF_ERANGE);

    /* Kinds do not mix. */
    cr_assert_eq(rf_gguf_get_u32(g, "f", &u32), RF_ETYPE);
    cr_assert_eq(rf_gguf_get_i64(g, "s", &i64), RF_ETYPE);
    cr_assert_eq(rf_gguf_get_u32(g, "b", &u32), RF_ETYPE);
    cr_assert_eq(rf_gguf_get_f64(g, "small", &f64), RF_ETYPE);
    cr_assert_eq(rf_gguf_get_bool(g, "small", &b), RF_ETYPE);
    cr_assert_eq(rf_gguf_get_str(g, "small", &s), RF_ETYPE);
    cr_assert_eq(rf_gguf_get_u32(g, "arr", &u32), RF_ETYPE);

    /* Floats widen. */
    cr_assert_eq(rf_gguf_get_f64(g, "f", &f64), 0);
    cr_assert_eq(f64, 2.5);
    cr_assert_eq(rf_gguf_get_f64(g, "d", &f64), 0);
    cr_assert_eq(f64, 1e300);
    cr_assert_eq(rf_gguf_get_bool(g, "b", &b), 0);
    cr_assert_not(b);

    /* Absent keys are "not done, not broken". */
    cr_assert_eq(rf_gguf_get_u32(g, "nope", &u32), 1);
    cr_assert_eq(rf_gguf_get_str(g, "nope", &s), 1);
    const rf_gguf_value_t *arr;
    cr_assert_eq(rf_gguf_get_arr(g, "nope", -1, &arr), 1);

    /* Arrays: element type, bounds and range. */
    cr_assert_eq(rf_gguf_get_arr(g, "arr", RF_GGUF_INT32, &arr), RF_ETYPE);
    cr_assert_eq(rf_gguf_get_arr(g, "small", -1, &arr), RF_ETYPE);
    cr_assert_eq(rf_gguf_get_arr(g, "arr", -1, &arr), 0);
    cr_assert_eq(rf_gguf_arr_i64(arr, 0, &i64), 0);
    cr_assert_eq(i64, 1);
    cr_assert_eq(rf_gguf_arr_i64(arr, 1, &i64), RF_ERANGE);
    cr_assert_eq(rf_gguf_arr_i64(arr, 2, &i64), RF_ERANGE);
    cr_assert_eq(rf_gguf_arr_f64(arr, 0, &f64), RF_ETYPE);
    cr_assert_eq(rf_gguf_arr_str(arr, 0, &s), RF_ETYPE);
    cr_assert_eq(rf_gguf_get_arr(g, "darr", RF_GGUF_FLOAT64, &arr), 0);
    cr_assert_eq(rf_gguf_arr_f64(arr, 0, &f64), 0);
    cr_assert_eq(f64, 0.25);
    cr_assert_eq(rf_gguf_arr_i64(arr, 0, &i64), RF_ETYPE);
    const rf_gguf_kv_t *kv = rf_gguf_find_kv(g, "small");
    cr_assert_eq(rf_gguf_arr_i64(&kv->value, 0, &i64), RF_ETYPE, "a scalar is not an array");

    cr_assert_str_eq(rf_gguf_type_name(RF_GGUF_UINT32), "u32");
    cr_assert_str_eq(rf_gguf_type_name(RF_GGUF_STRING), "str");
    cr_assert_str_eq(rf_gguf_type_name(RF_GGUF_ARRAY), "arr");
    cr_assert_str_eq(rf_gguf_type_name(99), "?");
    cr_assert_eq(rf_gguf_type_size(RF_GGUF_FLOAT64), 8);
    cr_assert_eq(rf_gguf_type_size(RF_GGUF_STRING), 0);
    cr_assert_eq(rf_gguf_type_size(-1), 0);

    rf_gguf_close(g);
    unlink(path);
}

Test(gguf, setting_a_key_twice_replaces_it)
{
    char path[256];
    tmp_path(path, sizeof path, "replace");
    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    cr_assert_eq(rf_gguf_writer_set_u32(w, "k", 1), 0);
    cr_assert_eq(rf_gguf_writer_set_str(w, "other", "x"), 0);
    cr_assert_eq(rf_gguf_writer_set_str(w, "k", "now a string"), 0);
    rf_gguf_t *g = write_and_open(w, path, NULL, NULL);
    rf_gguf_writer_close(w);
    cr_assert_eq(rf_gguf_n_kv(g), 2);
    rf_gguf_str_t s;
    cr_assert_eq(rf_gguf_get_str(g, "k", &s), 0);
    cr_assert(rf_gguf_str_eq(s, "now a string"));
    rf_gguf_close(g);
    unlink(path);
}

Test(gguf, writer_refuses_bad_metadata)
{
    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    cr_assert_eq(rf_gguf_writer_set_u32(w, "general.alignment", 3), RF_EFORMAT);
    cr_assert_eq(rf_gguf_writer_set_u32(w, "general.alignment", 0), RF_EFORMAT);
    cr_assert_eq(rf_gguf_writer_set_u64(w, "general.alignment", 64), RF_ETYPE);
    cr_assert_eq(rf_gguf_writer_set_u32(w, "", 1), RF_EFORMAT);
    cr_assert_eq(rf_gguf_writer_set_arr(w, "a", RF_GGUF_STRING, NULL, 0), RF_ETYPE);
    rf_gguf_value_t v = {.type = RF_GGUF_UINT8, .v.u64 = 256};
    cr_assert_eq(rf_gguf_writer_set_value(w, "k", &v), RF_ERANGE);
    v = (rf_gguf_value_t){.type = (rf_gguf_type_t)13};
    cr_assert_eq(rf_gguf_writer_set_value(w, "k", &v), RF_EFORMAT);

    /* Nesting deeper than the reader accepts is refused at the source. */
    rf_gguf_value_t levels[RF_GGUF_MAX_ARRAY_DEPTH + 1];
    for (int i = 0; i <= RF_GGUF_MAX_ARRAY_DEPTH; i++) {
        levels[i] = (rf_gguf_value_t){.type = RF_GGUF_ARRAY};
        if (i < RF_GGUF_MAX_ARRAY_DEPTH) {
            levels[i].v.arr.elem_type = RF_GGUF_ARRAY;
            levels[i].v.arr.n = 1;
            levels[i].v.arr.arrs = &levels[i + 1];
        } else {
            levels[i].v.arr.elem_type = RF_GGUF_UINT8;
        }
    }
    cr_assert_eq(rf_gguf_writer_set_value(w, "deep", &levels[0]), RF_EUNSUPPORTED);
    cr_assert_eq(rf_gguf_writer_set_value(w, "deep_ok", &levels[1]), 0);
    rf_gguf_writer_close(w);
}

/* ---- tensors ---- */

typedef struct tensor_case {
    const char *name;
    int type;
    uint32_t n_dims;
    uint64_t ne[4];
} tensor_case_t;

static const tensor_case_t cases[] = {
    {"f32.weight", RF_TYPE_F32, 2, {64, 3, 1, 1}},
    {"f16.weight", RF_TYPE_F16, 3, {32, 2, 2, 1}},
    {"q8_0.weight", RF_TYPE_Q8_0, 2, {64, 4, 1, 1}},
    {"q4_k.weight", RF_TYPE_Q4_K, 2, {256, 2, 1, 1}},
    {"i32.vector", RF_TYPE_I32, 1, {7, 1, 1, 1}},
    {"q6_k.cube", RF_TYPE_Q6_K, 4, {512, 1, 2, 3}},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static uint64_t case_bytes(const tensor_case_t *c)
{
    uint64_t row = 0;
    cr_assert_eq(rf_type_row_bytes(c->type, c->ne[0], &row), 0);
    return row * c->ne[1] * c->ne[2] * c->ne[3];
}

static void check_tensors(const rf_gguf_t *g, uint8_t *const *data)
{
    cr_assert_eq(rf_gguf_n_tensors(g), N_CASES);
    uint32_t align = rf_gguf_alignment(g);
    cr_assert_eq(rf_gguf_data_offset(g) % align, 0);
    for (size_t i = 0; i < N_CASES; i++) {
        const tensor_case_t *c = &cases[i];
        const rf_gguf_tensor_t *t = rf_gguf_tensor_at(g, i);
        cr_assert_not_null(t);
        cr_assert(rf_gguf_str_eq(t->name, c->name));
        cr_assert_eq(rf_gguf_find_tensor(g, c->name), t);
        cr_assert_eq(t->type, c->type);
        cr_assert_eq(t->n_dims, c->n_dims);
        uint64_t n = 1;
        for (int d = 0; d < 4; d++) {
            cr_assert_eq(t->ne[d], c->ne[d], "%s ne[%d]", c->name, d);
            n *= c->ne[d];
        }
        cr_assert_eq(t->n_elements, n);
        cr_assert_eq(t->n_bytes, case_bytes(c), "%s bytes", c->name);
        cr_assert_eq(t->offset % align, 0, "%s offset %lu", c->name, (unsigned long)t->offset);
        cr_assert_eq((const uint8_t *)t->data - (const uint8_t *)rf_gguf_tensor_at(g, 0)->data,
                     (ptrdiff_t)(t->offset - rf_gguf_tensor_at(g, 0)->offset));
        cr_assert_eq(memcmp(t->data, data[i], t->n_bytes), 0, "%s data differs", c->name);
    }
    cr_assert_null(rf_gguf_tensor_at(g, N_CASES));
    cr_assert_null(rf_gguf_find_tensor(g, "absent"));
}

static void make_data(uint8_t **data)
{
    for (size_t i = 0; i < N_CASES; i++) {
        uint64_t n = case_bytes(&cases[i]);
        data[i] = malloc(n);
        fill_pattern(data[i], n, (uint32_t)i + 1);
    }
}

static void free_data(uint8_t **data)
{
    for (size_t i = 0; i < N_CASES; i++)
        free(data[i]);
}

Test(gguf, tensor_infos_and_bytes_round_trip)
{
    char path[256];
    tmp_path(path, sizeof path, "tensors");
    uint8_t *data[N_CASES];
    make_data(data);
    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    cr_assert_eq(rf_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    for (size_t i = 0; i < N_CASES; i++)
        cr_assert_eq(rf_gguf_writer_add_tensor(w, cases[i].name, cases[i].type,
                                               cases[i].n_dims, cases[i].ne, data[i]),
                     0);
    rf_gguf_t *g = write_and_open(w, path, NULL, NULL);
    rf_gguf_writer_close(w);
    cr_assert_eq(rf_gguf_alignment(g), 32);
    check_tensors(g, data);
    rf_gguf_close(g);
    free_data(data);
    unlink(path);
}

Test(gguf, custom_alignment_is_honoured)
{
    char path[256];
    tmp_path(path, sizeof path, "align");
    uint8_t *data[N_CASES];
    make_data(data);
    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    cr_assert_eq(rf_gguf_writer_set_u32(w, "general.alignment", 256), 0);
    for (size_t i = 0; i < N_CASES; i++)
        cr_assert_eq(rf_gguf_writer_add_tensor(w, cases[i].name, cases[i].type,
                                               cases[i].n_dims, cases[i].ne, data[i]),
                     0);
    rf_gguf_t *g = write_and_open(w, path, NULL, NULL);
    rf_gguf_writer_close(w);
    cr_assert_eq(rf_gguf_alignment(g), 256);
    check_tensors(g, data);
    /* The padding after each tensor is zero, and the file ends aligned. */
    cr_assert_eq(rf_gguf_file_size(g) % 256, 0);
    const rf_gguf_tensor_t *t = rf_gguf_tensor_at(g, 0);
    const uint8_t *pad = (const uint8_t *)t->data + t->n_bytes;
    for (uint64_t i = t->n_bytes; i % 256 != 0; i++, pad++)
        cr_assert_eq(*pad, 0);
    rf_gguf_close(g);
    free_data(data);
    unlink(path);
}

typedef struct fill_ctx {
    uint8_t **data;
    uint64_t calls;
    uint64_t max_rows_seen;
    int fail_at_tensor; /* -1: never */
} fill_ctx_t;

static int fill_rows(void *vctx, size_t ti, uint64_t row0, uint64_t n_rows, void *dst)
{
    fill_ctx_t *ctx = vctx;
    if ((int)ti == ctx->fail_at_tensor)
        return -EIO;
    uint64_t row = 0;
    rf_type_row_bytes(cases[ti].type, cases[ti].ne[0], &row);
    memcpy(dst, ctx->data[ti] + row0 * row, n_rows * row);
    ctx->calls++;
    if (n_rows > ctx->max_rows_seen)
        ctx->max_rows_seen = n_rows;
    return 0;
}

Test(gguf, fill_callback_writes_the_same_file_as_buffers)
{
    char a[256], b[256];
    tmp_path(a, sizeof a, "buffers");
    tmp_path(b, sizeof b, "streamed");
    uint8_t *data[N_CASES];
    make_data(data);
    rf_err_t err = {0};

    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    cr_assert_eq(rf_gguf_writer_set_u32(w, "general.alignment", 64), 0);
    for (size_t i = 0; i < N_CASES; i++)
        cr_assert_eq(rf_gguf_writer_add_tensor(w, cases[i].name, cases[i].type,
                                               cases[i].n_dims, cases[i].ne, data[i]),
                     0);
    cr_assert_eq(rf_gguf_writer_write(w, a, NULL, NULL, &err), 0, "%s", err.msg);
    rf_gguf_writer_close(w);

    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    cr_assert_eq(rf_gguf_writer_set_u32(w, "general.alignment", 64), 0);
    for (size_t i = 0; i < N_CASES; i++)
        cr_assert_eq(rf_gguf_writer_add_tensor(w, cases[i].name, cases[i].type,
                                               cases[i].n_dims, cases[i].ne, NULL),
                     0);
    fill_ctx_t ctx = {.data = data, .fail_at_tensor = -1};
    cr_assert_eq(rf_gguf_writer_write(w, b, fill_rows, &ctx, &err), 0, "%s", err.msg);
    rf_gguf_writer_close(w);
    cr_assert_geq(ctx.calls, N_CASES);

    size_t na, nb;
    uint8_t *fa = slurp(a, &na), *fb = slurp(b, &nb);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(fa, fb, na), 0, "streamed file differs from the buffered one");
    free(fa);
    free(fb);
    free_data(data);
    unlink(a);
    unlink(b);
}

/* A tensor bigger than one chunk arrives in several calls of whole rows. */
static int fill_big(void *vctx, size_t ti, uint64_t row0, uint64_t n_rows, void *dst)
{
    fill_ctx_t *ctx = vctx;
    float *f = dst;
    for (uint64_t r = 0; r < n_rows; r++)
        for (uint64_t c = 0; c < 1024; c++)
            f[r * 1024 + c] = (float)((row0 + r) * 1024 + c);
    ctx->calls++;
    if (n_rows > ctx->max_rows_seen)
        ctx->max_rows_seen = n_rows;
    return 0;
}

Test(gguf, fill_callback_streams_big_tensors_in_row_chunks)
{
    char path[256];
    tmp_path(path, sizeof path, "big");
    const uint64_t ne[2] = {1024, 3000}; /* 12 MB of f32 */
    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "big", RF_TYPE_F32, 2, ne, NULL), 0);
    fill_ctx_t ctx = {.fail_at_tensor = -1};
    rf_gguf_t *g = write_and_open(w, path, fill_big, &ctx);
    rf_gguf_writer_close(w);
    cr_assert_gt(ctx.calls, 1, "12 MB must not be filled in one call");
    cr_assert_leq(ctx.max_rows_seen * 4096, 8u << 20, "chunks stay a few MiB");
    const rf_gguf_tensor_t *t = rf_gguf_find_tensor(g, "big");
    cr_assert_not_null(t);
    float last;
    memcpy(&last, (const uint8_t *)t->data + t->n_bytes - 4, 4);
    cr_assert_eq(last, (float)(1024 * 3000 - 1));
    rf_gguf_close(g);
    unlink(path);
}

Test(gguf, add_tensor_refuses_bad_shapes)
{
    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    const uint64_t ok[4] = {32, 2, 1, 1}, odd[2] = {33, 2}, zero[2] = {32, 0};
    const uint64_t huge[2] = {1ull << 32, 1ull << 32};
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "a", RF_TYPE_Q8_0, 2, ok, NULL), 0);
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "a", RF_TYPE_F32, 2, ok, NULL), -EEXIST);
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "b", RF_TYPE_Q8_0, 2, odd, NULL), RF_EFORMAT);
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "c", RF_TYPE_F32, 2, zero, NULL), RF_EFORMAT);
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "d", RF_TYPE_F32, 0, ok, NULL), RF_EFORMAT);
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "e", RF_TYPE_F32, 5, ok, NULL), RF_EFORMAT);
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "f", 4, 2, ok, NULL), RF_EUNSUPPORTED);
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "g", 99, 2, ok, NULL), RF_EUNSUPPORTED);
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "h", RF_TYPE_F32, 2, huge, NULL), RF_EFORMAT);

    /* A tensor with neither data nor a callback is refused before any file
     * is created. */
    char path[256];
    tmp_path(path, sizeof path, "nodata");
    rf_err_t err = {0};
    cr_assert_eq(rf_gguf_writer_write(w, path, NULL, NULL, &err), -EINVAL);
    cr_assert_neq(err.msg[0], '\0');
    cr_assert_not(file_exists(path));
    rf_gguf_writer_close(w);
}

/* ---- failures ---- */

Test(gguf, failed_write_leaves_no_file_under_the_final_name)
{
    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    cr_assert_eq(rf_gguf_writer_set_str(w, "general.name", "x"), 0);
    rf_err_t err = {0};

    /* A directory that does not exist (root can write anywhere that does). */
    char path[256];
    snprintf(path, sizeof path, "%s/no_such_dir_%d/model.gguf", RF_TMPDIR, (int)getpid());
    int rc = rf_gguf_writer_write(w, path, NULL, NULL, &err);
    cr_assert_eq(rc, -ENOENT, "rc %d: %s", rc, err.msg);
    cr_assert(strstr(err.msg, "no_such_dir") != NULL, "%s", err.msg);
    cr_assert_null(strchr(err.msg, '\n'));
    cr_assert_not(file_exists(path));
    rf_gguf_writer_close(w);

    /* A fill callback failing half way: its code comes back, the old file
     * under the final name is untouched and the temporary is gone. */
    tmp_path(path, sizeof path, "fillfail");
    FILE *f = fopen(path, "wb");
    fputs("previous contents", f);
    fclose(f);
    uint8_t *data[N_CASES];
    make_data(data);
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    for (size_t i = 0; i < N_CASES; i++)
        cr_assert_eq(rf_gguf_writer_add_tensor(w, cases[i].name, cases[i].type,
                                               cases[i].n_dims, cases[i].ne, NULL),
                     0);
    fill_ctx_t ctx = {.data = data, .fail_at_tensor = 2};
    rc = rf_gguf_writer_write(w, path, fill_rows, &ctx, &err);
    cr_assert_eq(rc, -EIO, "rc %d: %s", rc, err.msg);
    cr_assert(strstr(err.msg, "q8_0.weight") != NULL, "%s", err.msg);
    rf_gguf_writer_close(w);
    size_t n;
    uint8_t *old = slurp(path, &n);
    cr_assert_eq(n, strlen("previous contents"));
    cr_assert_eq(memcmp(old, "previous contents", n), 0);
    free(old);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_not(file_exists(tmp));
    free_data(data);
    unlink(path);
}

/* An I/O error half way through the data (a full disk, say): the file-size
 * limit makes write() fail with EFBIG once the header is out. */
Test(gguf, write_error_mid_file_removes_the_temporary)
{
    char path[256], tmp[300];
    tmp_path(path, sizeof path, "efbig");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    static uint8_t data[4u << 20];
    const uint64_t ne[2] = {1024, 1024}; /* 4 MiB of f32 */
    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "w", RF_TYPE_F32, 2, ne, data), 0);

    struct rlimit old, small = {.rlim_cur = 64 * 1024, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    small.rlim_max = old.rlim_max;
    signal(SIGXFSZ, SIG_IGN); /* report EFBIG instead of killing the process */
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    rf_err_t err = {0};
    int rc = rf_gguf_writer_write(w, path, NULL, NULL, &err);
    setrlimit(RLIMIT_FSIZE, &old);

    cr_assert_eq(rc, -EFBIG, "rc %d: %s", rc, err.msg);
    cr_assert(strstr(err.msg, ".tmp: write failed") != NULL, "%s", err.msg);
    cr_assert_not(file_exists(path));
    cr_assert_not(file_exists(tmp));
    rf_gguf_writer_close(w);
}

Test(gguf, open_reports_missing_files)
{
    rf_gguf_t *g = (rf_gguf_t *)1;
    rf_err_t err = {0};
    int rc = rf_gguf_open(&g, "/nonexistent/dir/model.gguf", &err);
    cr_assert_eq(rc, -ENOENT);
    cr_assert_null(g);
    cr_assert(strstr(err.msg, "/nonexistent/dir/model.gguf") != NULL, "%s", err.msg);
    cr_assert_eq(rf_gguf_open(&g, RF_TMPDIR, &err), -EINVAL, "a directory is not a model");
    rf_gguf_close(NULL);
}

/* ---- copying a file's metadata through the writer ---- */

Test(gguf, reader_values_copy_through_set_value)
{
    char a[256], b[256];
    tmp_path(a, sizeof a, "copy_src");
    tmp_path(b, sizeof b, "copy_dst");
    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    const char *strs[] = {"alpha", "beta"};
    cr_assert_eq(rf_gguf_writer_set_arr_str(w, "s", strs, 2), 0);
    const uint8_t bytes[] = {9, 8, 7};
    rf_gguf_value_t inner = {.type = RF_GGUF_ARRAY};
    inner.v.arr.elem_type = RF_GGUF_UINT8;
    inner.v.arr.n = 3;
    inner.v.arr.data = bytes;
    rf_gguf_value_t outer = {.type = RF_GGUF_ARRAY};
    outer.v.arr.elem_type = RF_GGUF_ARRAY;
    outer.v.arr.n = 1;
    outer.v.arr.arrs = &inner;
    cr_assert_eq(rf_gguf_writer_set_value(w, "nested", &outer), 0);
    cr_assert_eq(rf_gguf_writer_set_f32(w, "f", 0.1f), 0);
    rf_gguf_t *src = write_and_open(w, a, NULL, NULL);
    rf_gguf_writer_close(w);

    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    for (uint64_t i = 0; i < rf_gguf_n_kv(src); i++) {
        const rf_gguf_kv_t *kv = rf_gguf_kv_at(src, i);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.data);
        cr_assert_eq(rf_gguf_writer_set_value(w, key, &kv->value), 0);
    }
    rf_gguf_t *dst = write_and_open(w, b, NULL, NULL);
    rf_gguf_writer_close(w);

    size_t na, nb;
    uint8_t *fa = slurp(a, &na), *fb = slurp(b, &nb);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(fa, fb, na), 0, "copied metadata must serialize identically");
    free(fa);
    free(fb);
    rf_gguf_close(src);
    rf_gguf_close(dst);
    unlink(a);
    unlink(b);
}

/* ---- version 2 ---- */

typedef struct buf {
    uint8_t data[512];
    size_t len;
} buf_t;

static void put(buf_t *b, const void *p, size_t n)
{
    cr_assert_leq(b->len + n, sizeof b->data);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_u32(buf_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static void put_u64(buf_t *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_str(buf_t *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

Test(gguf, reads_a_hand_made_version_2_file)
{
    buf_t b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 2);
    put_u64(&b, 1); /* tensors */
    put_u64(&b, 2); /* kvs */
    put_str(&b, "general.architecture");
    put_u32(&b, RF_GGUF_STRING);
    put_str(&b, "llama");
    put_str(&b, "llama.block_count");
    put_u32(&b, RF_GGUF_UINT32);
    put_u32(&b, 12);
    put_str(&b, "w");
    put_u32(&b, 2);
    put_u64(&b, 4);
    put_u64(&b, 2);
    put_u32(&b, RF_TYPE_F32);
    put_u64(&b, 0);
    while (b.len % 32 != 0)
        put(&b, "", 1);
    size_t data_at = b.len;
    for (int i = 0; i < 8; i++) {
        float f = (float)i * 0.5f;
        put(&b, &f, 4);
    }

    rf_gguf_t *g = NULL;
    rf_err_t err = {0};
    int rc = rf_gguf_open_memory(&g, b.data, b.len, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(rf_gguf_version(g), 2);
    cr_assert_eq(rf_gguf_data_offset(g), data_at);
    uint32_t blocks;
    cr_assert_eq(rf_gguf_get_u32(g, "llama.block_count", &blocks), 0);
    cr_assert_eq(blocks, 12);
    rf_gguf_str_t arch;
    cr_assert_eq(rf_gguf_get_str(g, "general.architecture", &arch), 0);
    cr_assert(rf_gguf_str_eq(arch, "llama"));
    const rf_gguf_tensor_t *t = rf_gguf_find_tensor(g, "w");
    cr_assert_not_null(t);
    cr_assert_eq(t->n_elements, 8);
    cr_assert_eq(t->n_bytes, 32);
    cr_assert_eq((const uint8_t *)t->data, b.data + data_at);
    float f7;
    memcpy(&f7, (const uint8_t *)t->data + 28, 4);
    cr_assert_eq(f7, 3.5f);
    const rf_gguf_kv_t *kv = rf_gguf_find_kv(g, "llama.block_count");
    cr_assert_eq(kv->file_offset, 24 + 8 + 20 + 4 + 8 + 5, "key offset points at its length");
    rf_gguf_close(g);
}

Test(gguf, file_without_tensors_may_omit_the_final_padding)
{
    buf_t b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, 1);
    put_str(&b, "k");
    put_u32(&b, RF_GGUF_BOOL);
    put(&b, "\1", 1); /* 46 bytes: not a multiple of 32 */
    rf_gguf_t *g = NULL;
    rf_err_t err = {0};
    cr_assert_eq(rf_gguf_open_memory(&g, b.data, b.len, &err), 0, "%s", err.msg);
    cr_assert_leq(rf_gguf_data_offset(g), rf_gguf_file_size(g));
    bool v = false;
    cr_assert_eq(rf_gguf_get_bool(g, "k", &v), 0);
    cr_assert(v);
    rf_gguf_close(g);
}
