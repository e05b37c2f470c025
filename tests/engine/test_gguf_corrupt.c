/* test_gguf_corrupt.c - the GGUF reader refuses bad files cleanly
 *
 * Three sources of bad input: the hand-made corpus in
 * tests/fixtures/gguf_corrupt (one defect per file, see its README.md), every
 * prefix of a valid file, and random byte flips of a valid file. Each prefix
 * and mutant is parsed from its own exact-size heap copy, so under ASan any
 * read past the end is caught.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "quant.h"

#define CORPUS RF_FIXTURES "/gguf_corrupt"

/* The code each corpus file must produce. Every .gguf in the folder must be
 * listed, so a new case cannot be added without deciding its code. */
static const struct {
    const char *file;
    int code;
} expected[] = {
    {"empty.gguf", RF_ETRUNC},
    {"trunc_magic.gguf", RF_ETRUNC},
    {"trunc_version.gguf", RF_ETRUNC},
    {"trunc_tensor_count.gguf", RF_ETRUNC},
    {"trunc_kv_count.gguf", RF_ETRUNC},
    {"trunc_key.gguf", RF_ETRUNC},
    {"trunc_value.gguf", RF_ETRUNC},
    {"trunc_array.gguf", RF_ETRUNC},
    {"trunc_nested_array.gguf", RF_ETRUNC},
    {"trunc_tensor_info.gguf", RF_ETRUNC},
    {"trunc_padding.gguf", RF_ETRUNC},
    {"trunc_tensor_data.gguf", RF_ETRUNC},
    {"huge_tensor_count.gguf", RF_ETRUNC},
    {"huge_kv_count.gguf", RF_ETRUNC},
    {"huge_key_length.gguf", RF_ETRUNC},
    {"huge_string_length.gguf", RF_ETRUNC},
    {"huge_array_count.gguf", RF_ETRUNC},
    {"huge_string_array_count.gguf", RF_ETRUNC},
    {"huge_tensor_name_length.gguf", RF_ETRUNC},
    {"nested_too_deep.gguf", RF_EUNSUPPORTED},
    {"unknown_value_type.gguf", RF_EFORMAT},
    {"unknown_array_type.gguf", RF_EFORMAT},
    {"unknown_tensor_type.gguf", RF_EUNSUPPORTED},
    {"unknown_tensor_type_huge.gguf", RF_EUNSUPPORTED},
    {"n_dims_5.gguf", RF_EUNSUPPORTED},
    {"n_dims_0.gguf", RF_EFORMAT},
    {"ne_zero.gguf", RF_EFORMAT},
    {"ne_overflow.gguf", RF_EFORMAT},
    {"nbytes_overflow.gguf", RF_EFORMAT},
    {"row_not_block_multiple.gguf", RF_EFORMAT},
    {"tensor_out_of_file.gguf", RF_ETRUNC},
    {"tensor_offset_huge.gguf", RF_ETRUNC},
    {"tensor_data_short.gguf", RF_ETRUNC},
    {"overlapping_tensors.gguf", RF_EFORMAT},
    {"misaligned_offset.gguf", RF_EFORMAT},
    {"alignment_zero.gguf", RF_EFORMAT},
    {"alignment_three.gguf", RF_EFORMAT},
    {"alignment_u64.gguf", RF_EFORMAT},
    {"wrong_magic.gguf", RF_EFORMAT},
    {"version_0.gguf", RF_EVERSION},
    {"version_1.gguf", RF_EVERSION},
    {"version_4.gguf", RF_EVERSION},
    {"version_byteswapped.gguf", RF_EUNSUPPORTED},
    {"duplicate_key.gguf", RF_EFORMAT},
    {"duplicate_tensor_name.gguf", RF_EFORMAT},
    {"empty_key.gguf", RF_EFORMAT},
    {"bool_value_2.gguf", RF_EFORMAT},
    {"bool_array_value_7.gguf", RF_EFORMAT},
};
#define N_EXPECTED (sizeof expected / sizeof expected[0])

/* Spot checks that messages say where and what, not just "bad file". */
static const struct {
    const char *file;
    const char *text;
} says[] = {
    {"huge_tensor_count.gguf", "byte 8: tensor count 1152921504606846976 cannot fit in a 96-byte"},
    {"version_byteswapped.gguf", "big-endian"},
    {"version_1.gguf", "byte 4: GGUF version 1"},
    {"duplicate_key.gguf", "key 'llama.block_count': duplicate key (first at byte 24)"},
    {"duplicate_tensor_name.gguf", "tensor 'w': duplicate tensor name"},
    {"overlapping_tensors.gguf", "overlaps tensor 'a'"},
    {"nested_too_deep.gguf", "element 0 element 0 element 0"},
    {"wrong_magic.gguf", "byte 0: magic is 'GGML'"},
    {"alignment_u64.gguf", "key 'general.alignment': has type u64"},
    {"trunc_padding.gguf", "padding"},
    {"unknown_tensor_type.gguf", "unknown tensor type 4"},
};

static void check_message(const rf_err_t *err, int rc, const char *what)
{
    cr_assert_neq(err->msg[0], '\0', "%s: empty message", what);
    cr_assert_null(strchr(err->msg, '\n'), "%s: message has a newline: %s", what, err->msg);
    cr_assert(strstr(err->msg, "byte ") != NULL, "%s: message names no offset: %s", what,
              err->msg);
    cr_assert_eq(err->code, rc, "%s: err.code %d, returned %d", what, err->code, rc);
}

Test(gguf_corrupt, every_corpus_file_fails_with_its_code)
{
    DIR *dir = opendir(CORPUS);
    cr_assert_not_null(dir, "cannot open %s", CORPUS);
    bool seen[N_EXPECTED] = {false};
    size_t n_files = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".gguf") != 0)
            continue;
        n_files++;
        size_t k = 0;
        while (k < N_EXPECTED && strcmp(expected[k].file, e->d_name) != 0)
            k++;
        cr_assert_lt(k, N_EXPECTED, "%s is not in the expected table", e->d_name);
        seen[k] = true;

        char path[512];
        snprintf(path, sizeof path, "%s/%s", CORPUS, e->d_name);
        rf_gguf_t *g = (rf_gguf_t *)1;
        rf_err_t err = {0};
        int rc = rf_gguf_open(&g, path, &err);
        cr_log_info("%s -> %d %s", e->d_name, rc, err.msg);
        cr_assert_eq(rc, expected[k].code, "%s: got %d (%s), want %d", e->d_name, rc, err.msg,
                     expected[k].code);
        cr_assert_null(g, "%s: handle must be NULL on failure", e->d_name);
        check_message(&err, rc, e->d_name);
        cr_assert(strstr(err.msg, e->d_name) != NULL, "%s: message names no path: %s",
                  e->d_name, err.msg);
        for (size_t s = 0; s < sizeof says / sizeof says[0]; s++)
            if (strcmp(says[s].file, e->d_name) == 0)
                cr_assert(strstr(err.msg, says[s].text) != NULL, "%s: '%s' not in: %s",
                          e->d_name, says[s].text, err.msg);
    }
    closedir(dir);
    for (size_t k = 0; k < N_EXPECTED; k++)
        cr_assert(seen[k], "%s is missing from %s (rerun make_corrupt_gguf)", expected[k].file,
                  CORPUS);
    cr_assert_eq(n_files, N_EXPECTED);
}

/* ---- a valid file to cut and mutate ---- */

static uint8_t *valid_file(size_t *size, uint64_t *data_end)
{
    char path[256];
    snprintf(path, sizeof path, "%s/test_gguf_corrupt_%d.gguf", RF_TMPDIR, (int)getpid());
    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    cr_assert_eq(rf_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    cr_assert_eq(rf_gguf_writer_set_u32(w, "general.alignment", 64), 0);
    cr_assert_eq(rf_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f), 0);
    cr_assert_eq(rf_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true), 0);
    const char *tokens[] = {"<s>", "</s>", "hello", "world", ""};
    cr_assert_eq(rf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, 5), 0);
    const int32_t types[] = {3, 3, 1, 1, 1};
    cr_assert_eq(rf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", RF_GGUF_INT32, types, 5),
                 0);
    const uint8_t flags[] = {1, 0};
    cr_assert_eq(rf_gguf_writer_set_arr(w, "test.flags", RF_GGUF_BOOL, flags, 2), 0);
    const rf_gguf_str_t names[] = {{2, "ab"}, {0, ""}};
    rf_gguf_value_t inner[2] = {{.type = RF_GGUF_ARRAY}, {.type = RF_GGUF_ARRAY}};
    inner[0].v.arr.elem_type = RF_GGUF_STRING;
    inner[0].v.arr.n = 2;
    inner[0].v.arr.strs = names;
    inner[1].v.arr.elem_type = RF_GGUF_UINT64; /* empty */
    rf_gguf_value_t outer = {.type = RF_GGUF_ARRAY};
    outer.v.arr.elem_type = RF_GGUF_ARRAY;
    outer.v.arr.n = 2;
    outer.v.arr.arrs = inner;
    cr_assert_eq(rf_gguf_writer_set_value(w, "test.nested", &outer), 0);

    static uint8_t data[512];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    const uint64_t ne_a[2] = {8, 2}, ne_b[2] = {32, 2}, ne_c[1] = {256};
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "a", RF_TYPE_F32, 2, ne_a, data), 0);
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "b", RF_TYPE_Q8_0, 2, ne_b, data), 0);
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "c", RF_TYPE_Q4_K, 1, ne_c, data), 0);
    rf_err_t err = {0};
    cr_assert_eq(rf_gguf_writer_write(w, path, NULL, NULL, &err), 0, "%s", err.msg);
    rf_gguf_writer_close(w);

    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(*size);
    cr_assert_eq(fread(buf, 1, *size, f), *size);
    fclose(f);
    unlink(path);

    rf_gguf_t *g = NULL;
    cr_assert_eq(rf_gguf_open_memory(&g, buf, *size, &err), 0, "%s", err.msg);
    *data_end = 0;
    for (uint64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor_t *t = rf_gguf_tensor_at(g, i);
        uint64_t end = rf_gguf_data_offset(g) + t->offset + t->n_bytes;
        if (end > *data_end)
            *data_end = end;
    }
    rf_gguf_close(g);
    return buf;
}

/* Touch everything a caller could reach, so a bad handle would show up. */
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
            rf_gguf_value_t sv = {.type = RF_GGUF_STRING, .v.str = s};
            sum += walk_value(&sv);
        } else if (rf_gguf_arr_f64(v, i, &d) == 0) {
            sum += d == d;
        } else if (rf_gguf_arr_i64(v, i, &x) == 0) {
            sum += (uint64_t)x;
        }
    }
    return sum;
}

static uint64_t walk(const rf_gguf_t *g)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < rf_gguf_n_kv(g); i++) {
        const rf_gguf_kv_t *kv = rf_gguf_kv_at(g, i);
        /* Keys are looked up by C string, so only those without NUL bytes. */
        if (kv->key.len < 255 && memchr(kv->key.data, '\0', kv->key.len) == NULL) {
            char key[256];
            memcpy(key, kv->key.data, kv->key.len);
            key[kv->key.len] = '\0';
            cr_assert_eq(rf_gguf_find_kv(g, key), kv);
        }
        sum += walk_value(&kv->value);
    }
    for (uint64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor_t *t = rf_gguf_tensor_at(g, i);
        cr_assert_leq(rf_gguf_data_offset(g) + t->offset + t->n_bytes, rf_gguf_file_size(g));
        const uint8_t *d = t->data;
        sum += d[0] + d[t->n_bytes - 1];
    }
    return sum;
}

Test(gguf_corrupt, every_prefix_of_a_valid_file_fails_cleanly)
{
    size_t size;
    uint64_t data_end;
    uint8_t *full = valid_file(&size, &data_end);
    cr_assert_leq(data_end, size);
    for (size_t len = 0; len <= size; len++) {
        uint8_t *prefix = malloc(len ? len : 1); /* exact size: ASan sees over-reads */
        memcpy(prefix, full, len);
        rf_gguf_t *g = NULL;
        rf_err_t err = {0};
        int rc = rf_gguf_open_memory(&g, prefix, len, &err);
        if (len < data_end) {
            cr_assert_eq(rc, RF_ETRUNC, "prefix %zu of %zu: got %d (%s)", len, size, rc,
                         err.msg);
            cr_assert_null(g);
            check_message(&err, rc, "prefix");
        } else {
            /* Only the zero padding after the last tensor is missing. */
            cr_assert_eq(rc, 0, "prefix %zu of %zu: %s", len, size, err.msg);
            walk(g);
            rf_gguf_close(g);
        }
        free(prefix);
    }
    free(full);
}

Test(gguf_corrupt, random_byte_flips_never_crash, .timeout = 60)
{
    size_t size;
    uint64_t data_end;
    uint8_t *full = valid_file(&size, &data_end);
    rf_gguf_t *g0 = NULL;
    cr_assert_eq(rf_gguf_open_memory(&g0, full, size, NULL), 0);
    size_t header = (size_t)rf_gguf_data_offset(g0);
    rf_gguf_close(g0);

    uint64_t x = 0x9e3779b97f4a7c15ull;
    unsigned ok = 0, failed = 0;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t *m = malloc(size);
        memcpy(m, full, size);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int flips = 1 + (int)(x % 4);
        for (int f = 0; f < flips; f++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* Mostly the metadata, where the parser lives; data bytes only
             * matter to extents. */
            size_t pos = (size_t)((x >> 8) % (f == 0 ? header : size));
            uint8_t val = (uint8_t)(x >> 40);
            m[pos] = (x & 0x10) ? val : (uint8_t)(m[pos] ^ (1u << (val & 7)));
        }
        rf_gguf_t *g = NULL;
        rf_err_t err = {0};
        int rc = rf_gguf_open_memory(&g, m, size, &err);
        if (rc == 0) {
            ok++;
            walk(g);
            rf_gguf_close(g);
        } else {
            failed++;
            cr_assert_null(g);
            cr_assert_lt(rc, 0);
            check_message(&err, rc, "mutant");
        }
        free(m);
    }
    cr_log_info("byte flips: %u opened, %u refused", ok, failed);
    cr_assert_gt(failed, 1000, "flips in the header must mostly be caught");
    cr_assert_gt(ok, 100, "flips in string bytes and data must still open");
    free(full);
}

Test(gguf_corrupt, open_memory_refuses_null_buffers)
{
    rf_gguf_t *g = (rf_gguf_t *)1;
    rf_err_t err = {0};
    cr_assert_eq(rf_gguf_open_memory(&g, NULL, 10, &err), -EINVAL);
    cr_assert_null(g);
    cr_assert_eq(rf_gguf_open_memory(&g, NULL, 0, &err), RF_ETRUNC);
    cr_assert_null(g);
    check_message(&err, RF_ETRUNC, "empty buffer");
}
