/* cmd_inspect.c - `rocmforge inspect FILE.gguf`: metadata and tensor table
 *
 * Text output abbreviates long arrays and strings so a 128k-token vocabulary
 * prints as a few lines; --json gives the same content for machines, with
 * arrays cut at --max-array elements (0 keeps them whole) and the full count
 * always given. A file the reader rejects prints one line naming the byte
 * offset and the problem, and exits 1.
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"
#include "quant.h"

typedef struct inspect_options {
    bool json;
    uint64_t max_array;   /* elements shown per array; 0 = all */
    uint64_t max_string;  /* bytes shown per string in text mode; 0 = all */
} inspect_options_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge inspect [options] FILE.gguf\n"
            "\n"
            "Print a GGUF file's header, metadata and tensor table. A corrupt file\n"
            "gets a one-line error naming the byte offset, and exit status 1.\n"
            "\n"
            "options:\n"
            "  --json            machine-readable output (one JSON object)\n"
            "  --max-array N     array elements to show (default 8 in text, 16 in\n"
            "                    JSON; 0 shows every element)\n"
            "  --max-string N    string bytes to show in text mode (default 96; 0: all)\n"
            "  -h, --help        show this help\n");
}

/* ---- text helpers ---- */

static void print_escaped(FILE *out, rf_gguf_str_t s, uint64_t max)
{
    uint64_t n = (max != 0 && s.len > max) ? max : s.len;
    fputc('"', out);
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.data[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
    if (n < s.len)
        fprintf(out, "... (%" PRIu64 " bytes)", s.len);
}

static void print_scalar(FILE *out, const rf_gguf_value_t *v, const inspect_options_t *o)
{
    switch (v->type) {
    case RF_GGUF_UINT8: case RF_GGUF_UINT16: case RF_GGUF_UINT32: case RF_GGUF_UINT64:
        fprintf(out, "%" PRIu64, v->v.u64);
        break;
    case RF_GGUF_INT8: case RF_GGUF_INT16: case RF_GGUF_INT32: case RF_GGUF_INT64:
        fprintf(out, "%" PRId64, v->v.i64);
        break;
    case RF_GGUF_FLOAT32: case RF_GGUF_FLOAT64:
        fprintf(out, "%.9g", v->v.f64);
        break;
    case RF_GGUF_BOOL:
        fputs(v->v.u64 ? "true" : "false", out);
        break;
    case RF_GGUF_STRING:
        print_escaped(out, v->v.str, o->max_string);
        break;
    default:
        fputs("?", out);
        break;
    }
}

static void print_value(FILE *out, const rf_gguf_value_t *v, const inspect_options_t *o);

static void print_array(FILE *out, const rf_gguf_value_t *v, const inspect_options_t *o)
{
    uint64_t n = v->v.arr.n;
    uint64_t shown = (o->max_array != 0 && n > o->max_array) ? o->max_array : n;
    fputc('[', out);
    for (uint64_t i = 0; i < shown; i++) {
        if (i)
            fputs(", ", out);
        rf_gguf_value_t elem = {.type = v->v.arr.elem_type};
        if (elem.type == RF_GGUF_ARRAY) {
            print_value(out, &v->v.arr.arrs[i], o);
            continue;
        }
        if (elem.type == RF_GGUF_STRING) {
            rf_gguf_arr_str(v, i, &elem.v.str);
        } else if (elem.type == RF_GGUF_FLOAT32 || elem.type == RF_GGUF_FLOAT64) {
            rf_gguf_arr_f64(v, i, &elem.v.f64);
        } else if (elem.type == RF_GGUF_UINT64) {
            /* may not fit in int64: read the raw bytes */
            memcpy(&elem.v.u64, v->v.arr.data + i * 8, 8);
        } else {
            int64_t x = 0;
            rf_gguf_arr_i64(v, i, &x);
            if (elem.type == RF_GGUF_INT8 || elem.type == RF_GGUF_INT16 ||
                elem.type == RF_GGUF_INT32 || elem.type == RF_GGUF_INT64)
                elem.v.i64 = x;
            else
                elem.v.u64 = (uint64_t)x;
        }
        print_scalar(out, &elem, o);
    }
    fputc(']', out);
    if (shown < n)
        fprintf(out, " (+%" PRIu64 " more)", n - shown);
}

static void print_value(FILE *out, const rf_gguf_value_t *v, const inspect_options_t *o)
{
    if (v->type == RF_GGUF_ARRAY)
        print_array(out, v, o);
    else
        print_scalar(out, v, o);
}

static void human_bytes(char *buf, size_t size, uint64_t bytes)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double x = (double)bytes;
    int u = 0;
    while (x >= 1024.0 && u < 4) {
        x /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%" PRIu64 " B", bytes);
    else
        snprintf(buf, size, "%.1f %s", x, units[u]);
}

static void type_label(char *buf, size_t size, const rf_gguf_value_t *v)
{
    if (v->type != RF_GGUF_ARRAY) {
        snprintf(buf, size, "%s", rf_gguf_type_name(v->type));
        return;
    }
    snprintf(buf, size, "arr[%s,%" PRIu64 "]", rf_gguf_type_name(v->v.arr.elem_type),
             v->v.arr.n);
}

static void shape_label(char *buf, size_t size, const rf_gguf_tensor_t *t)
{
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t d = 0; d < t->n_dims && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%" PRIu64, d ? " x " : "", t->ne[d]);
}

static int print_text(const char *path, const rf_gguf_t *g, const inspect_options_t *o)
{
    char size[32], data[32], label[64];
    human_bytes(size, sizeof size, rf_gguf_file_size(g));
    printf("%s: GGUF v%u, %s, %" PRIu64 " metadata keys, %" PRIu64
           " tensors, alignment %u, tensor data at byte %" PRIu64 "\n",
           path, rf_gguf_version(g), size, rf_gguf_n_kv(g), rf_gguf_n_tensors(g),
           rf_gguf_alignment(g), rf_gguf_data_offset(g));

    printf("\nmetadata:\n");
    for (uint64_t i = 0; i < rf_gguf_n_kv(g); i++) {
        const rf_gguf_kv_t *kv = rf_gguf_kv_at(g, i);
        type_label(label, sizeof label, &kv->value);
        printf("  %-44.*s %-16s ", (int)(kv->key.len > 200 ? 200 : kv->key.len),
               kv->key.data, label);
        print_value(stdout, &kv->value, o);
        putchar('\n');
    }

    printf("\ntensors:\n  %5s  %-36s %-8s %-22s %12s %14s\n", "#", "name", "type", "shape",
           "bytes", "offset");
    uint64_t total_bytes = 0, total_elements = 0;
    for (uint64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor_t *t = rf_gguf_tensor_at(g, i);
        char shape[96];
        shape_label(shape, sizeof shape, t);
        printf("  %5" PRIu64 "  %-36.*s %-8s %-22s %12" PRIu64 " %14" PRIu64 "\n", i,
               (int)(t->name.len > 200 ? 200 : t->name.len), t->name.data, rf_type_name(t->type),
               shape, t->n_bytes, t->offset);
        total_bytes += t->n_bytes;
        total_elements += t->n_elements;
    }
    human_bytes(data, sizeof data, total_bytes);
    printf("\ntotal: %" PRIu64 " tensors, %" PRIu64 " parameters, %s of tensor data\n",
           rf_gguf_n_tensors(g), total_elements, data);
    return ferror(stdout) ? -1 : 0;
}

/* ---- JSON ---- */

static json_t *json_value(const rf_gguf_value_t *v, const inspect_options_t *o);

static json_t *json_array_values(const rf_gguf_value_t *v, const inspect_options_t *o)
{
    json_t *arr = json_array();
    uint64_t n = v->v.arr.n;
    uint64_t shown = (o->max_array != 0 && n > o->max_array) ? o->max_array : n;
    int et = v->v.arr.elem_type;
    for (uint64_t i = 0; i < shown; i++) {
        json_t *e = NULL;
        if (et == RF_GGUF_ARRAY) {
            e = json_value(&v->v.arr.arrs[i], o);
        } else if (et == RF_GGUF_STRING) {
            rf_gguf_str_t s;
            rf_gguf_arr_str(v, i, &s);
            e = rf__json_from_bytes(s.data, s.len);
        } else if (et == RF_GGUF_FLOAT32 || et == RF_GGUF_FLOAT64) {
            double x = 0;
            rf_gguf_arr_f64(v, i, &x);
            e = json_real(x);
        } else if (et == RF_GGUF_BOOL) {
            int64_t x = 0;
            rf_gguf_arr_i64(v, i, &x);
            e = json_boolean(x != 0);
        } else if (et == RF_GGUF_UINT64) {
            uint64_t x;
            memcpy(&x, v->v.arr.data + i * 8, 8);
            e = rf__json_u64(x);
        } else {
            int64_t x = 0;
            rf_gguf_arr_i64(v, i, &x);
            e = json_integer((json_int_t)x);
        }
        json_array_append_new(arr, e);
    }
    return arr;
}

/* Arrays nest as {"elem_type", "n", "values"}; scalars are plain JSON. */
static json_t *json_value(const rf_gguf_value_t *v, const inspect_options_t *o)
{
    switch (v->type) {
    case RF_GGUF_UINT8: case RF_GGUF_UINT16: case RF_GGUF_UINT32: case RF_GGUF_UINT64:
        return rf__json_u64(v->v.u64);
    case RF_GGUF_INT8: case RF_GGUF_INT16: case RF_GGUF_INT32: case RF_GGUF_INT64:
        return json_integer((json_int_t)v->v.i64);
    case RF_GGUF_FLOAT32: case RF_GGUF_FLOAT64:
        return json_real(v->v.f64);
    case RF_GGUF_BOOL:
        return json_boolean(v->v.u64 != 0);
    case RF_GGUF_STRING:
        return rf__json_from_bytes(v->v.str.data, v->v.str.len);
    case RF_GGUF_ARRAY:
        return json_pack("{s:s, s:o, s:o}", "elem_type", rf_gguf_type_name(v->v.arr.elem_type),
                         "n", rf__json_u64(v->v.arr.n), "values", json_array_values(v, o));
    default:
        return json_null();
    }
}

static int print_json(const char *path, const rf_gguf_t *g, const inspect_options_t *o)
{
    json_t *root = json_object();
    json_object_set_new(root, "file", rf__json_from_bytes(path, strlen(path)));
    json_object_set_new(root, "version", json_integer(rf_gguf_version(g)));
    json_object_set_new(root, "file_size", rf__json_u64(rf_gguf_file_size(g)));
    json_object_set_new(root, "alignment", json_integer(rf_gguf_alignment(g)));
    json_object_set_new(root, "data_offset", rf__json_u64(rf_gguf_data_offset(g)));

    json_t *meta = json_array();
    for (uint64_t i = 0; i < rf_gguf_n_kv(g); i++) {
        const rf_gguf_kv_t *kv = rf_gguf_kv_at(g, i);
        json_array_append_new(meta, json_pack("{s:o, s:s, s:o}", "key",
                                              rf__json_from_bytes(kv->key.data, kv->key.len), "type",
                                              rf_gguf_type_name(kv->value.type), "value",
                                              json_value(&kv->value, o)));
    }
    json_object_set_new(root, "metadata", meta);

    json_t *tensors = json_array();
    for (uint64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor_t *t = rf_gguf_tensor_at(g, i);
        json_t *shape = json_array();
        for (uint32_t d = 0; d < t->n_dims; d++)
            json_array_append_new(shape, rf__json_u64(t->ne[d]));
        json_array_append_new(tensors,
                              json_pack("{s:o, s:s, s:o, s:o, s:o, s:o}", "name",
                                        rf__json_from_bytes(t->name.data, t->name.len), "type",
                                        rf_type_name(t->type), "shape", shape, "n_elements",
                                        rf__json_u64(t->n_elements), "bytes", rf__json_u64(t->n_bytes),
                                        "offset", rf__json_u64(t->offset)));
    }
    json_object_set_new(root, "tensors", tensors);
    int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    putchar('\n');
    json_decref(root);
    return rc == 0 && !ferror(stdout) ? 0 : -1;
}

/* ---- command ---- */

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (s[0] == '-' || s[0] == '\0')
        return false;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end != '\0')
        return false;
    *out = x;
    return true;
}

int rf__cmd_inspect(int argc, char **argv)
{
    inspect_options_t o = {.json = false, .max_array = UINT64_MAX, .max_string = 96};
    enum { OPT_JSON = 256, OPT_MAX_ARRAY, OPT_MAX_STRING };
    static const struct option long_options[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"max-array", required_argument, NULL, OPT_MAX_ARRAY},
        {"max-string", required_argument, NULL, OPT_MAX_STRING},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: o.json = true; break;
        case OPT_MAX_ARRAY:
            if (!parse_u64(optarg, &o.max_array)) {
                rf__cli_error("inspect", "--max-array wants a whole number, got '%s'", optarg);
                return RF_EXIT_USAGE;
            }
            break;
        case OPT_MAX_STRING:
            if (!parse_u64(optarg, &o.max_string)) {
                rf__cli_error("inspect", "--max-string wants a whole number, got '%s'", optarg);
                return RF_EXIT_USAGE;
            }
            break;
        case 'h': usage(stdout); return RF_EXIT_OK;
        default:
            rf__cli_error("inspect", "unknown option '%s'; see 'rocmforge inspect --help'",
                          argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        rf__cli_error("inspect", "expected one GGUF file; see 'rocmforge inspect --help'");
        return RF_EXIT_USAGE;
    }
    if (o.max_array == UINT64_MAX)
        o.max_array = o.json ? 16 : 8;
    const char *path = argv[optind];
    rf_err_t err = {0};
    rf_gguf_t *g = NULL;
    int rc = rf_gguf_open(&g, path, &err);
    if (rc < 0) {
        rf__cli_error("inspect", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        return RF_EXIT_FAIL;
    }
    rc = o.json ? print_json(path, g, &o) : print_text(path, g, &o);
    rf_gguf_close(g);
    if (rc < 0) {
        rf__cli_error("inspect", "writing the output failed");
        return RF_EXIT_FAIL;
    }
    return RF_EXIT_OK;
}
