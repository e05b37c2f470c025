/* gguf.c - GGUF v2/v3 reader: map a file, validate all of it, then serve it
 *
 * rf_gguf_open() maps the file read-only; rf_gguf_open_memory() takes a
 * caller buffer. Both run the same parser, which checks every field against
 * the bytes that remain before using it, so a hostile or truncated file ends
 * in an rf_err_t line ("PATH: byte N: where: what") and never in an
 * over-read, a huge allocation or a crash. After a successful open the
 * handle is immutable and every accessor is bounds-checked.
 *
 * Layout (little-endian; v2 and v3 are identical on little-endian files, v3
 * only added big-endian files, which we refuse):
 *
 *   "GGUF" u32 version, u64 tensor_count, u64 kv_count
 *   kv_count x { string key, u32 value_type, value }
 *   tensor_count x { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset }
 *   zero padding to general.alignment (default 32)
 *   tensor data; each offset is relative to here and a multiple of the alignment
 *
 * where a string is u64 length + bytes (no NUL) and an array value is
 * u32 element type, u64 count, elements (arrays may nest).
 *
 * Design notes: what we accept, and why where ggml differs.
 *  1. Version 2 or 3. Version 1 used u32 counts and is refused; a version
 *     whose low 16 bits are zero is a byte-swapped (big-endian) file.
 *  2. Keys are non-empty and unique; tensor names are unique (may be empty).
 *  3. BOOL bytes are 0 or 1: the spec calls anything else invalid (ggml
 *     reads any non-zero byte as true).
 *  4. general.alignment, when present, is a u32 power of two (ggml's rule;
 *     the spec's "multiple of 8" is not enforced by ggml either).
 *  5. 1 <= n_dims <= 4 and every ne >= 1. ggml's reader also takes n_dims 0
 *     and ne 0, but ggml's writer never emits n_dims 0, no model has an empty
 *     tensor, and code that walks rows divides by ne[0]: we refuse both.
 *  6. The element count fits in int64 (ggml's bound) and the byte size in
 *     uint64; ne[0] is a multiple of the type's block size.
 *  7. Tensor offsets are multiples of the alignment, extents lie inside the
 *     file and no two tensors overlap. Tensors may appear in any order and
 *     with gaps (the spec allows it; ggml's reader insists on dense packing).
 *     The padding after the last tensor may be missing.
 *  8. Arrays nest at most RF_GGUF_MAX_ARRAY_DEPTH levels; ggml's reader
 *     accepts no nesting at all, the spec any.
 *
 * The mapping is only as stable as the file: truncating a model while it is
 * open makes later accesses to the lost pages raise SIGBUS, as with any mmap
 * reader (llama.cpp's included). Models are not rewritten in place here: the
 * writer renames a new file over the old one, which leaves mappings intact.
 *
 * Allocation is bounded by the file: a count is compared with the bytes left
 * (count x smallest encoding) before anything is allocated, the kv and tensor
 * tables grow as entries are actually parsed, and array element tables are
 * allocated only after a validating pass has walked the whole value.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant.h"

/* ---- types ---- */

#define HEADER_BYTES 24u       /* magic, version, tensor count, kv count */
#define MIN_KV_BYTES 14u       /* key length 8, one key byte, type 4, u8 value 1 */
#define MIN_TENSOR_BYTES 32u   /* name length 8, n_dims 4, one ne 8, type 4, offset 8 */
#define MAX_SHOWN_NAME 64      /* bytes of a key or name quoted in a message */
#define MAX_SHOWN_PATH 256     /* bytes of a path quoted in a message */

/* Element tables of string arrays and arrays of arrays; one malloc each,
 * chained so that rf_gguf_close() frees them all. */
typedef struct arena_block {
    struct arena_block *next;
    max_align_t data[];
} arena_block_t;

/* Open-addressing index from a name to the entry holding it. */
typedef struct name_index {
    uint64_t *slots;   /* [mask + 1] entry index + 1; 0 is an empty slot */
    uint64_t mask;     /* capacity - 1; capacity is a power of two */
    uint64_t count;
} name_index_t;

/* Where the fields of a tensor info sit in the file, for messages. */
typedef struct tensor_pos {
    uint64_t info;     /* byte offset of the name */
    uint64_t offset;   /* byte offset of the data-offset field */
} tensor_pos_t;

struct rf_gguf {
    const uint8_t *base;       /* file bytes: the mapping or the caller buffer */
    uint64_t size;             /* bytes */
    void *map;                 /* mmap base, NULL for memory and empty files */
    size_t map_size;           /* bytes */
    uint32_t version;
    uint32_t alignment;        /* bytes */
    uint64_t data_offset;      /* bytes from the start of the file */
    rf_gguf_kv_t *kvs;         /* [n_kv] */
    uint64_t n_kv, kv_cap;
    rf_gguf_tensor_t *tensors; /* [n_tensors] */
    tensor_pos_t *tensor_pos;  /* [n_tensors] */
    uint64_t n_tensors, tensor_cap;
    name_index_t kv_index, tensor_index;
    arena_block_t *arena;
};

typedef enum section {
    SEC_HEADER,
    SEC_KEY,     /* reading the key of kv `item` */
    SEC_VALUE,   /* reading the value of key `name` */
    SEC_TENSOR,  /* reading tensor info `item` (named `name` once has_name) */
    SEC_DATA,    /* checking tensor `name`'s data extent */
} section_t;

/* Cursor over the file plus what it is reading, so that a failure deep in a
 * nested array can still say which key and element it was in. */
typedef struct parser {
    rf_gguf_t *g;
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *path;          /* NULL for memory buffers */
    rf_err_t *err;
    section_t section;
    uint64_t item;
    rf_gguf_str_t name;
    bool has_name;
    uint32_t depth;                                /* array level being read */
    uint64_t elem[RF_GGUF_MAX_ARRAY_DEPTH + 1];    /* element index per level */
} parser_t;

/* ---- small helpers ---- */

static const uint8_t empty_file[1];

static const char *const type_names[RF_GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
};

static const uint8_t type_sizes[RF_GGUF_TYPE_COUNT] = {
    1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8,
};

static uint16_t le16(const uint8_t *b)
{
    return (uint16_t)(b[0] | (uint16_t)b[1] << 8);
}

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t le64(const uint8_t *b)
{
    return (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32;
}

static bool is_fixed(uint32_t type)
{
    return type < RF_GGUF_TYPE_COUNT && type_sizes[type] != 0;
}

static bool is_integer(uint32_t type)
{
    switch (type) {
    case RF_GGUF_UINT8: case RF_GGUF_INT8: case RF_GGUF_UINT16: case RF_GGUF_INT16:
    case RF_GGUF_UINT32: case RF_GGUF_INT32: case RF_GGUF_UINT64: case RF_GGUF_INT64:
        return true;
    default:
        return false;
    }
}

static bool is_signed(uint32_t type)
{
    return type == RF_GGUF_INT8 || type == RF_GGUF_INT16 || type == RF_GGUF_INT32 ||
           type == RF_GGUF_INT64;
}

/* Decode one fixed-size little-endian element into a scalar value. */
static void decode_fixed(uint32_t type, const uint8_t *b, rf_gguf_value_t *out)
{
    out->type = (rf_gguf_type_t)type;
    switch (type) {
    case RF_GGUF_UINT8: out->v.u64 = b[0]; break;
    case RF_GGUF_INT8: out->v.i64 = (int8_t)b[0]; break;
    case RF_GGUF_UINT16: out->v.u64 = le16(b); break;
    case RF_GGUF_INT16: out->v.i64 = (int16_t)le16(b); break;
    case RF_GGUF_UINT32: out->v.u64 = le32(b); break;
    case RF_GGUF_INT32: out->v.i64 = (int32_t)le32(b); break;
    case RF_GGUF_UINT64: out->v.u64 = le64(b); break;
    case RF_GGUF_INT64: out->v.i64 = (int64_t)le64(b); break;
    case RF_GGUF_BOOL: out->v.u64 = b[0] != 0; break;
    case RF_GGUF_FLOAT32: {
        uint32_t bits = le32(b);
        float f;
        memcpy(&f, &bits, sizeof f);
        out->v.f64 = f;
        break;
    }
    case RF_GGUF_FLOAT64: {
        uint64_t bits = le64(b);
        memcpy(&out->v.f64, &bits, sizeof out->v.f64);
        break;
    }
    default:
        break;
    }
}

/* Copy s into dst for a message: names come from the file, and the message
 * must stay one printable line, so anything else becomes \xNN and more than
 * max bytes are cut to "...". */
static void escape_max(char *dst, size_t cap, const char *s, uint64_t len, uint64_t max)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (uint64_t i = 0; i < len; i++) {
        if (i == max || o + 8 > cap) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
}

static void escape(char *dst, size_t cap, const char *s, uint64_t len)
{
    escape_max(dst, cap, s, len, MAX_SHOWN_NAME);
}

/* ---- arena and name index ---- */

static void *arena_alloc(rf_gguf_t *g, uint64_t n, size_t elem_size)
{
    if (n > (SIZE_MAX - sizeof(arena_block_t)) / elem_size)
        return NULL;
    arena_block_t *b = malloc(sizeof *b + (size_t)n * elem_size);
    if (b == NULL)
        return NULL;
    b->next = g->arena;
    g->arena = b;
    return b->data;
}

static uint64_t hash_name(const char *s, uint64_t len)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (uint64_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Names live at name_at(entries + i * stride); the index stores positions
 * so that the entry tables may be reallocated while it is built. */
#define ENTRY_NAME(entries, stride, name_off, i) \
    ((const rf_gguf_str_t *)((const char *)(entries) + (i) * (stride) + (name_off)))

static uint64_t index_find(const name_index_t *ix, const void *entries, size_t stride,
                           size_t name_off, const char *s, uint64_t len)
{
    if (ix->slots == NULL)
        return UINT64_MAX;
    for (uint64_t h = hash_name(s, len) & ix->mask;; h = (h + 1) & ix->mask) {
        uint64_t slot = ix->slots[h];
        if (slot == 0)
            return UINT64_MAX;
        const rf_gguf_str_t *n = ENTRY_NAME(entries, stride, name_off, slot - 1);
        if (n->len == len && (len == 0 || memcmp(n->data, s, len) == 0))
            return slot - 1;
    }
}

static void index_put(name_index_t *ix, const void *entries, size_t stride, size_t name_off,
                      uint64_t i)
{
    const rf_gguf_str_t *n = ENTRY_NAME(entries, stride, name_off, i);
    uint64_t h = hash_name(n->data, n->len) & ix->mask;
    while (ix->slots[h] != 0)
        h = (h + 1) & ix->mask;
    ix->slots[h] = i + 1;
}

/* Add entry i (whose name is known to be absent). Keeps the load at most
 * one half so probes stay short. Returns 0 or -ENOMEM. */
static int index_add(name_index_t *ix, const void *entries, size_t stride, size_t name_off,
                     uint64_t i)
{
    if (ix->slots == NULL || (ix->count + 1) * 2 > ix->mask + 1) {
        uint64_t cap = ix->slots == NULL ? 16 : (ix->mask + 1) * 2;
        if (cap > SIZE_MAX / sizeof(uint64_t))
            return -ENOMEM;
        uint64_t *slots = calloc((size_t)cap, sizeof *slots);
        if (slots == NULL)
            return -ENOMEM;
        name_index_t grown = {.slots = slots, .mask = cap - 1, .count = ix->count};
        for (uint64_t s = 0; ix->slots != NULL && s <= ix->mask; s++)
            if (ix->slots[s] != 0)
                index_put(&grown, entries, stride, name_off, ix->slots[s] - 1);
        free(ix->slots);
        *ix = grown;
    }
    index_put(ix, entries, stride, name_off, i);
    ix->count++;
    return 0;
}

/* ---- parser: messages and primitive reads ---- */

static void describe(const parser_t *p, char *buf, size_t cap)
{
    char name[MAX_SHOWN_NAME * 4 + 8];
    size_t o = 0;
    buf[0] = '\0';
    if (p->has_name)
        escape(name, sizeof name, p->name.data, p->name.len);
    switch (p->section) {
    case SEC_HEADER:
        return;
    case SEC_KEY:
        snprintf(buf, cap, "kv %" PRIu64, p->item);
        return;
    case SEC_VALUE:
        o = (size_t)snprintf(buf, cap, "key '%s'", name);
        for (uint32_t d = 1; d <= p->depth && o < cap; d++)
            o += (size_t)snprintf(buf + o, cap - o, " element %" PRIu64, p->elem[d]);
        return;
    case SEC_TENSOR:
    case SEC_DATA:
        if (p->has_name)
            snprintf(buf, cap, "tensor '%s'", name);
        else
            snprintf(buf, cap, "tensor %" PRIu64, p->item);
        return;
    }
}

/* Record "PATH: byte AT: WHERE: WHAT" in p->err and return code. */
static int fail(parser_t *p, int code, uint64_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(parser_t *p, int code, uint64_t at, const char *fmt, ...)
{
    if (p->err == NULL)
        return code;
    char what[256], where[MAX_SHOWN_NAME * 4 + 128], path[MAX_SHOWN_PATH + 8] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    describe(p, where, sizeof where);
    if (p->path != NULL)
        escape_max(path, sizeof path, p->path, strlen(p->path), MAX_SHOWN_PATH);
    return rf_err_set(p->err, code, "%s%sbyte %" PRIu64 ": %s%s%s", path,
                      p->path != NULL ? ": " : "", at, where, where[0] != '\0' ? ": " : "",
                      what);
}

static uint64_t left(const parser_t *p)
{
    return p->size - p->pos;
}

/* Make sure n more bytes exist; what names the field for the message. */
static int need(parser_t *p, uint64_t n, const char *what)
{
    if (n <= left(p))
        return 0;
    return fail(p, RF_ETRUNC, p->pos,
                "file ends inside %s (%" PRIu64 " bytes needed, %" PRIu64 " left)", what, n,
                left(p));
}

static int read_u32(parser_t *p, const char *what, uint32_t *out)
{
    int rc = need(p, 4, what);
    if (rc != 0)
        return rc;
    *out = le32(p->base + p->pos);
    p->pos += 4;
    return 0;
}

static int read_u64(parser_t *p, const char *what, uint64_t *out)
{
    int rc = need(p, 8, what);
    if (rc != 0)
        return rc;
    *out = le64(p->base + p->pos);
    p->pos += 8;
    return 0;
}

/* A gguf string: u64 length, then that many bytes, pointed at in place. */
static int read_str(parser_t *p, const char *what, rf_gguf_str_t *out)
{
    uint64_t at = p->pos, len;
    char field[64];
    snprintf(field, sizeof field, "the length of %s", what);
    int rc = read_u64(p, field, &len);
    if (rc != 0)
        return rc;
    if (len > left(p))
        return fail(p, RF_ETRUNC, at,
                    "%s is %" PRIu64 " bytes long but only %" PRIu64
                    " bytes are left in the file (truncated, or the length is corrupt)",
                    what, len, left(p));
    out->len = len;
    out->data = (const char *)p->base + p->pos;
    p->pos += len;
    return 0;
}

/* ---- parser: values ---- */

/* Fewest bytes one element of type can occupy; bounds counts before use. */
static uint64_t min_encoded_size(uint32_t type)
{
    if (type == RF_GGUF_STRING)
        return 8;
    if (type == RF_GGUF_ARRAY)
        return 12;
    return type_sizes[type];
}

static int parse_value(parser_t *p, uint32_t type, uint32_t level, rf_gguf_value_t *out);

/* An array at nesting level `level` (1 for a kv's own array). With out ==
 * NULL it validates only; with out it decodes, which callers do only after
 * validating, so each element table allocated is backed by elements that
 * exist in the file. */
static int parse_array(parser_t *p, uint32_t level, rf_gguf_value_t *out)
{
    uint64_t at = p->pos, n;
    uint32_t elem_type;
    int rc;
    if (level > RF_GGUF_MAX_ARRAY_DEPTH)
        return fail(p, RF_EUNSUPPORTED, at,
                    "arrays nested %" PRIu32 " deep; at most %d levels are supported", level,
                    RF_GGUF_MAX_ARRAY_DEPTH);
    if ((rc = read_u32(p, "the array element type", &elem_type)) != 0)
        return rc;
    if (elem_type >= RF_GGUF_TYPE_COUNT)
        return fail(p, RF_EFORMAT, at, "unknown array element type %" PRIu32 " (known: 0..%d)",
                    elem_type, RF_GGUF_TYPE_COUNT - 1);
    if ((rc = read_u64(p, "the array length", &n)) != 0)
        return rc;
    uint64_t min = min_encoded_size(elem_type);
    if (n > left(p) / min)
        return fail(p, RF_ETRUNC, at + 4,
                    "array of %" PRIu64 " %s elements cannot fit in the %" PRIu64
                    " bytes left in the file (truncated, or the length is corrupt)",
                    n, type_names[elem_type], left(p));
    if (out != NULL) {
        out->type = RF_GGUF_ARRAY;
        memset(&out->v.arr, 0, sizeof out->v.arr);
        out->v.arr.elem_type = (rf_gguf_type_t)elem_type;
        out->v.arr.n = n;
    }

    if (is_fixed(elem_type)) {
        if (elem_type == RF_GGUF_BOOL && out == NULL) {
            for (uint64_t i = 0; i < n; i++) {
                uint8_t b = p->base[p->pos + i];
                if (b > 1)
                    return fail(p, RF_EFORMAT, p->pos + i,
                                "element %" PRIu64 ": bool value %u is neither 0 nor 1", i, b);
            }
        }
        if (out != NULL)
            out->v.arr.data = p->base + p->pos;
        p->pos += n * min;
        return 0;
    }

    void *table = NULL;
    if (out != NULL && n > 0) {
        size_t elem_size = elem_type == RF_GGUF_STRING ? sizeof(rf_gguf_str_t)
                                                       : sizeof(rf_gguf_value_t);
        table = arena_alloc(p->g, n, elem_size);
        if (table == NULL)
            return fail(p, -ENOMEM, at, "out of memory for %" PRIu64 " array elements", n);
        if (elem_type == RF_GGUF_STRING)
            out->v.arr.strs = table;
        else
            out->v.arr.arrs = table;
    }
    uint32_t saved_depth = p->depth;
    p->depth = level;
    for (uint64_t i = 0; i < n; i++) {
        p->elem[level] = i;
        if (elem_type == RF_GGUF_STRING) {
            rf_gguf_str_t scratch;
            rc = read_str(p, "the string", table ? &((rf_gguf_str_t *)table)[i] : &scratch);
        } else {
            rc = parse_array(p, level + 1, table ? &((rf_gguf_value_t *)table)[i] : NULL);
        }
        if (rc != 0)
            return rc;
    }
    p->depth = saved_depth;
    return 0;
}

/* One value of type (already checked to be a known type) at level. */
static int parse_value(parser_t *p, uint32_t type, uint32_t level, rf_gguf_value_t *out)
{
    rf_gguf_value_t scratch;
    if (out == NULL)
        out = &scratch; /* validation pass: scalars decode into a throwaway */
    if (type == RF_GGUF_ARRAY)
        return parse_array(p, level + 1, out == &scratch ? NULL : out);
    if (type == RF_GGUF_STRING) {
        out->type = RF_GGUF_STRING;
        return read_str(p, "the string", &out->v.str);
    }
    int rc = need(p, type_sizes[type], "the value");
    if (rc != 0)
        return rc;
    if (type == RF_GGUF_BOOL && p->base[p->pos] > 1)
        return fail(p, RF_EFORMAT, p->pos, "bool value %u is neither 0 nor 1",
                    p->base[p->pos]);
    decode_fixed(type, p->base + p->pos, out);
    p->pos += type_sizes[type];
    return 0;
}

/* ---- parser: sections ---- */

static int parse_header(parser_t *p, uint64_t *n_tensors, uint64_t *n_kv)
{
    rf_gguf_t *g = p->g;
    int rc = need(p, 4, "the magic");
    if (rc != 0)
        return rc;
    const uint8_t *m = p->base;
    if (le32(m) != RF_GGUF_MAGIC) {
        char shown[20];
        escape(shown, sizeof shown, (const char *)m, 4);
        return fail(p, RF_EFORMAT, 0,
                    "magic is '%s' (%02x %02x %02x %02x), expected 'GGUF': not a GGUF file",
                    shown, m[0], m[1], m[2], m[3]);
    }
    p->pos = 4;
    if ((rc = read_u32(p, "the version", &g->version)) != 0)
        return rc;
    uint32_t v = g->version;
    if (v != 0 && (v & 0xffffu) == 0)
        return fail(p, RF_EUNSUPPORTED, 4,
                    "version reads as %" PRIu32 " (0x%08" PRIx32 "), which is %" PRIu32
                    " byte-swapped: a big-endian GGUF file, which is not supported",
                    v, v, __builtin_bswap32(v));
    if (v == 1)
        return fail(p, RF_EVERSION, 4,
                    "GGUF version 1 (32-bit counts) is not supported; convert the model with a "
                    "current llama.cpp to get version 3");
    if (v != 2 && v != 3)
        return fail(p, RF_EVERSION, 4,
                    "GGUF version %" PRIu32 " is not supported (this reader handles 2 and 3)", v);
    if ((rc = read_u64(p, "the tensor count", n_tensors)) != 0)
        return rc;
    if ((rc = read_u64(p, "the metadata count", n_kv)) != 0)
        return rc;

    /* Bound both counts by the bytes after the header before any table is
     * sized from them. */
    uint64_t body = p->size - HEADER_BYTES;
    if (*n_tensors > body / MIN_TENSOR_BYTES)
        return fail(p, RF_ETRUNC, 8,
                    "tensor count %" PRIu64 " cannot fit in a %" PRIu64
                    "-byte file (a tensor info takes at least %u bytes)",
                    *n_tensors, p->size, MIN_TENSOR_BYTES);
    body -= *n_tensors * MIN_TENSOR_BYTES;
    if (*n_kv > body / MIN_KV_BYTES)
        return fail(p, RF_ETRUNC, 16,
                    "metadata count %" PRIu64 " cannot fit in a %" PRIu64
                    "-byte file with %" PRIu64 " tensors (a key/value takes at least %u bytes)",
                    *n_kv, p->size, *n_tensors, MIN_KV_BYTES);
    return 0;
}

static int parse_kvs(parser_t *p, uint64_t n_kv)
{
    rf_gguf_t *g = p->g;
    for (uint64_t i = 0; i < n_kv; i++) {
        int rc;
        rf_gguf_str_t key;
        uint32_t type;
        p->section = SEC_KEY;
        p->item = i;
        p->has_name = false;
        p->depth = 0;
        uint64_t key_at = p->pos;
        if ((rc = read_str(p, "the key", &key)) != 0)
            return rc;
        if (key.len == 0)
            return fail(p, RF_EFORMAT, key_at, "empty key");
        p->section = SEC_VALUE;
        p->name = key;
        p->has_name = true;
        uint64_t dup = index_find(&g->kv_index, g->kvs, sizeof *g->kvs,
                                  offsetof(rf_gguf_kv_t, key), key.data, key.len);
        if (dup != UINT64_MAX)
            return fail(p, RF_EFORMAT, key_at, "duplicate key (first at byte %" PRIu64 ")",
                        g->kvs[dup].file_offset);
        uint64_t type_at = p->pos;
        if ((rc = read_u32(p, "the value type", &type)) != 0)
            return rc;
        if (type >= RF_GGUF_TYPE_COUNT)
            return fail(p, RF_EFORMAT, type_at, "unknown value type %" PRIu32 " (known: 0..%d)",
                        type, RF_GGUF_TYPE_COUNT - 1);

        uint64_t value_at = p->pos;
        if ((rc = parse_value(p, type, 0, NULL)) != 0)
            return rc;
        p->pos = value_at;

        if (g->n_kv == g->kv_cap) {
            uint64_t cap = g->kv_cap == 0 ? 16 : g->kv_cap * 2;
            if (cap > n_kv)
                cap = n_kv;
            rf_gguf_kv_t *kvs = NULL;
            if (cap <= SIZE_MAX / sizeof *kvs)
                kvs = realloc(g->kvs, (size_t)cap * sizeof *kvs);
            if (kvs == NULL)
                return fail(p, -ENOMEM, key_at, "out of memory for %" PRIu64 " keys", cap);
            g->kvs = kvs;
            g->kv_cap = cap;
        }
        rf_gguf_kv_t *kv = &g->kvs[g->n_kv];
        memset(kv, 0, sizeof *kv);
        kv->key = key;
        kv->file_offset = key_at;
        if ((rc = parse_value(p, type, 0, &kv->value)) != 0)
            return rc;
        g->n_kv++;
        if (index_add(&g->kv_index, g->kvs, sizeof *g->kvs, offsetof(rf_gguf_kv_t, key), i) != 0)
            return fail(p, -ENOMEM, key_at, "out of memory indexing keys");
    }
    return 0;
}

static int parse_alignment(parser_t *p)
{
    rf_gguf_t *g = p->g;
    g->alignment = RF_GGUF_DEFAULT_ALIGNMENT;
    const rf_gguf_kv_t *kv = rf_gguf_find_kv(g, "general.alignment");
    if (kv == NULL)
        return 0;
    p->section = SEC_VALUE;
    p->name = kv->key;
    p->has_name = true;
    p->depth = 0;
    if (kv->value.type != RF_GGUF_UINT32)
        return fail(p, RF_EFORMAT, kv->file_offset, "has type %s; the alignment must be a u32",
                    rf_gguf_type_name(kv->value.type));
    uint64_t a = kv->value.v.u64;
    if (a == 0 || (a & (a - 1)) != 0)
        return fail(p, RF_EFORMAT, kv->file_offset,
                    "alignment %" PRIu64 " is not a power of two", a);
    g->alignment = (uint32_t)a;
    return 0;
}

static int parse_tensor_info(parser_t *p, rf_gguf_tensor_t *t, tensor_pos_t *pos)
{
    rf_gguf_t *g = p->g;
    int rc;
    memset(t, 0, sizeof *t);
    pos->info = p->pos;
    if ((rc = read_str(p, "the tensor name", &t->name)) != 0)
        return rc;
    p->name = t->name;
    p->has_name = true;
    uint64_t dup = index_find(&g->tensor_index, g->tensors, sizeof *g->tensors,
                              offsetof(rf_gguf_tensor_t, name), t->name.data, t->name.len);
    if (dup != UINT64_MAX)
        return fail(p, RF_EFORMAT, pos->info, "duplicate tensor name (first at byte %" PRIu64 ")",
                    g->tensor_pos[dup].info);

    uint64_t dims_at = p->pos;
    if ((rc = read_u32(p, "the dimension count", &t->n_dims)) != 0)
        return rc;
    if (t->n_dims == 0)
        return fail(p, RF_EFORMAT, dims_at, "has 0 dimensions; a tensor needs at least 1");
    if (t->n_dims > RF_GGUF_MAX_DIMS)
        return fail(p, RF_EUNSUPPORTED, dims_at,
                    "has %" PRIu32 " dimensions; at most %d are supported", t->n_dims,
                    RF_GGUF_MAX_DIMS);
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < RF_GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t at = p->pos;
        if ((rc = read_u64(p, "a dimension", &t->ne[d])) != 0)
            return rc;
        if (t->ne[d] == 0)
            return fail(p, RF_EFORMAT, at,
                        "dimension %" PRIu32 " is 0; empty tensors are not supported", d);
        if (__builtin_mul_overflow(n_elements, t->ne[d], &n_elements) ||
            n_elements > (uint64_t)INT64_MAX)
            return fail(p, RF_EFORMAT, at,
                        "dimension %" PRIu32 " of %" PRIu64
                        " makes the element count overflow 2^63", d, t->ne[d]);
    }
    t->n_elements = n_elements;

    uint64_t type_at = p->pos;
    uint32_t type;
    if ((rc = read_u32(p, "the tensor type", &type)) != 0)
        return rc;
    const rf_type_traits_t *tr = type <= INT32_MAX ? rf_type_traits((int)type) : NULL;
    if (tr == NULL || tr->block_size == 0)
        return fail(p, RF_EUNSUPPORTED, type_at,
                    "unknown tensor type %" PRIu32 " (not a ggml type this build knows)", type);
    t->type = (int)type;
    if (t->ne[0] % tr->block_size != 0)
        return fail(p, RF_EFORMAT, dims_at + 4,
                    "row of %" PRIu64 " elements is not a multiple of the %s block size %" PRIu32,
                    t->ne[0], tr->name, tr->block_size);
    if (__builtin_mul_overflow(n_elements / tr->block_size, (uint64_t)tr->type_size,
                               &t->n_bytes))
        return fail(p, RF_EFORMAT, dims_at,
                    "%" PRIu64 " %s elements take more than 2^64 bytes", n_elements, tr->name);

    pos->offset = p->pos;
    if ((rc = read_u64(p, "the tensor data offset", &t->offset)) != 0)
        return rc;
    if (t->offset % g->alignment != 0)
        return fail(p, RF_EFORMAT, pos->offset,
                    "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu32,
                    t->offset, g->alignment);
    return 0;
}

static int parse_tensor_infos(parser_t *p, uint64_t n_tensors)
{
    rf_gguf_t *g = p->g;
    for (uint64_t i = 0; i < n_tensors; i++) {
        p->section = SEC_TENSOR;
        p->item = i;
        p->has_name = false;
        if (g->n_tensors == g->tensor_cap) {
            uint64_t cap = g->tensor_cap == 0 ? 16 : g->tensor_cap * 2;
            if (cap > n_tensors)
                cap = n_tensors;
            rf_gguf_tensor_t *ts = NULL;
            tensor_pos_t *ps = NULL;
            if (cap <= SIZE_MAX / sizeof *ts) {
                ts = realloc(g->tensors, (size_t)cap * sizeof *ts);
                if (ts != NULL)
                    g->tensors = ts;
                ps = realloc(g->tensor_pos, (size_t)cap * sizeof *ps);
                if (ps != NULL)
                    g->tensor_pos = ps;
            }
            if (ts == NULL || ps == NULL)
                return fail(p, -ENOMEM, p->pos, "out of memory for %" PRIu64 " tensors", cap);
            g->tensor_cap = cap;
        }
        int rc = parse_tensor_info(p, &g->tensors[i], &g->tensor_pos[i]);
        if (rc != 0)
            return rc;
        g->n_tensors++;
        if (index_add(&g->tensor_index, g->tensors, sizeof *g->tensors,
                      offsetof(rf_gguf_tensor_t, name), i) != 0)
            return fail(p, -ENOMEM, g->tensor_pos[i].info, "out of memory indexing tensors");
    }
    return 0;
}

/* A tensor's extent, sorted by offset to find overlaps in n log n. */
typedef struct extent {
    uint64_t offset, n_bytes, index;
} extent_t;

static int by_offset(const void *a, const void *b)
{
    uint64_t x = ((const extent_t *)a)->offset, y = ((const extent_t *)b)->offset;
    return (x > y) - (x < y);
}

/* Place the data section and check every tensor's bytes lie inside the file
 * and apart from every other tensor's. */
static int check_data(parser_t *p)
{
    rf_gguf_t *g = p->g;
    uint64_t end_of_infos = p->pos;
    uint64_t rem = end_of_infos % g->alignment;
    uint64_t data_offset = end_of_infos + (rem ? g->alignment - rem : 0);
    p->section = SEC_HEADER;
    if (g->n_tensors == 0) {
        /* No data follows, so a file that stops before the padding is fine. */
        g->data_offset = data_offset < p->size ? data_offset : p->size;
        return 0;
    }
    if (data_offset > p->size)
        return fail(p, RF_ETRUNC, p->size,
                    "file ends inside the padding before the tensor data (data would start at "
                    "byte %" PRIu64 ")",
                    data_offset);
    g->data_offset = data_offset;

    uint64_t room = p->size - data_offset;
    p->section = SEC_DATA;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const rf_gguf_tensor_t *t = &g->tensors[i];
        p->name = t->name;
        p->has_name = true;
        if (t->offset > room || t->n_bytes > room - t->offset)
            return fail(p, RF_ETRUNC, g->tensor_pos[i].offset,
                        "data [%" PRIu64 ", +%" PRIu64 ") at file byte %" PRIu64
                        " runs past the end of the %" PRIu64
                        "-byte file (truncated, or the offset is corrupt)",
                        t->offset, t->n_bytes, data_offset + t->offset, p->size);
    }

    extent_t *order = malloc((size_t)g->n_tensors * sizeof *order);
    if (order == NULL)
        return fail(p, -ENOMEM, data_offset, "out of memory sorting %" PRIu64 " tensors",
                    g->n_tensors);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        order[i] = (extent_t){g->tensors[i].offset, g->tensors[i].n_bytes, i};
    qsort(order, (size_t)g->n_tensors, sizeof *order, by_offset);
    int rc = 0;
    for (uint64_t k = 1; k < g->n_tensors && rc == 0; k++) {
        const extent_t *a = &order[k - 1], *b = &order[k];
        if (b->offset < a->offset + a->n_bytes) {
            char other[MAX_SHOWN_NAME * 4 + 8];
            const rf_gguf_str_t *an = &g->tensors[a->index].name;
            escape(other, sizeof other, an->data, an->len);
            p->name = g->tensors[b->index].name;
            rc = fail(p, RF_EFORMAT, g->tensor_pos[b->index].offset,
                      "data [%" PRIu64 ", +%" PRIu64 ") overlaps tensor '%s' [%" PRIu64
                      ", +%" PRIu64 ")",
                      b->offset, b->n_bytes, other, a->offset, a->n_bytes);
        }
    }
    free(order);
    if (rc != 0)
        return rc;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        g->tensors[i].data = g->base + data_offset + g->tensors[i].offset;
    return 0;
}

static int parse(rf_gguf_t *g, const char *path, rf_err_t *err)
{
    parser_t p = {.g = g, .base = g->base, .size = g->size, .path = path, .err = err};
    uint64_t n_tensors, n_kv;
    int rc = parse_header(&p, &n_tensors, &n_kv);
    if (rc == 0)
        rc = parse_kvs(&p, n_kv);
    if (rc == 0)
        rc = parse_alignment(&p);
    if (rc == 0)
        rc = parse_tensor_infos(&p, n_tensors);
    if (rc == 0)
        rc = check_data(&p);
    return rc;
}

/* ---- public: open and close ---- */

void rf_gguf_close(rf_gguf_t *g)
{
    if (g == NULL)
        return;
    for (arena_block_t *b = g->arena, *next; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    free(g->kvs);
    free(g->tensors);
    free(g->tensor_pos);
    free(g->kv_index.slots);
    free(g->tensor_index.slots);
    if (g->map != NULL)
        munmap(g->map, g->map_size);
    free(g);
}

int rf_gguf_open_memory(rf_gguf_t **out, const void *buf, size_t size, rf_err_t *err)
{
    rf_err_clear(err);
    if (out == NULL || (buf == NULL && size != 0)) {
        if (out != NULL)
            *out = NULL;
        return rf_err_set(err, -EINVAL, "rf_gguf_open_memory: NULL buffer or result pointer");
    }
    *out = NULL;
    rf_gguf_t *g = calloc(1, sizeof *g);
    if (g == NULL)
        return rf_err_set(err, -ENOMEM, "out of memory opening a GGUF buffer");
    /* An empty buffer still gets a real pointer: the parser never reads it,
     * but pointer arithmetic on NULL is undefined. */
    g->base = size != 0 ? buf : empty_file;
    g->size = size;
    int rc = parse(g, NULL, err);
    if (rc != 0) {
        rf_gguf_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

int rf_gguf_open(rf_gguf_t **out, const char *path, rf_err_t *err)
{
    rf_err_clear(err);
    if (out != NULL)
        *out = NULL;
    if (out == NULL || path == NULL)
        return rf_err_set(err, -EINVAL, "rf_gguf_open: NULL path or result pointer");
    char shown[MAX_SHOWN_PATH + 8];
    escape_max(shown, sizeof shown, path, strlen(path), MAX_SHOWN_PATH);

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        return rf_err_set(err, rc, "%s: cannot open: %s", shown, strerror(-rc));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return rf_err_set(err, rc, "%s: cannot stat: %s", shown, strerror(-rc));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rf_err_set(err, -EINVAL, "%s: not a regular file", shown);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return rf_err_set(err, -EFBIG, "%s: %" PRIu64 " bytes do not fit in the address space",
                          shown, (uint64_t)st.st_size);
    }
    rf_gguf_t *g = calloc(1, sizeof *g);
    if (g == NULL) {
        close(fd);
        return rf_err_set(err, -ENOMEM, "%s: out of memory", shown);
    }
    g->size = (uint64_t)st.st_size;
    g->base = empty_file;
    if (g->size != 0) {
        /* A private read-only mapping: pages load on demand, so opening a
         * multi-GB model reads only its header here. */
        void *map = mmap(NULL, (size_t)g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int rc = -errno;
            close(fd);
            free(g);
            return rf_err_set(err, rc, "%s: cannot map %" PRIu64 " bytes: %s", shown,
                              (uint64_t)st.st_size, strerror(-rc));
        }
        g->map = map;
        g->map_size = (size_t)g->size;
        g->base = map;
    }
    close(fd); /* the mapping keeps the file open */
    int rc = parse(g, path, err);
    if (rc != 0) {
        rf_gguf_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

/* ---- public: file-level accessors ---- */

uint32_t rf_gguf_version(const rf_gguf_t *g)
{
    return g ? g->version : 0;
}

uint32_t rf_gguf_alignment(const rf_gguf_t *g)
{
    return g ? g->alignment : 0;
}

uint64_t rf_gguf_data_offset(const rf_gguf_t *g)
{
    return g ? g->data_offset : 0;
}

uint64_t rf_gguf_file_size(const rf_gguf_t *g)
{
    return g ? g->size : 0;
}

uint64_t rf_gguf_n_kv(const rf_gguf_t *g)
{
    return g ? g->n_kv : 0;
}

const rf_gguf_kv_t *rf_gguf_kv_at(const rf_gguf_t *g, uint64_t i)
{
    return g && i < g->n_kv ? &g->kvs[i] : NULL;
}

const rf_gguf_kv_t *rf_gguf_find_kv(const rf_gguf_t *g, const char *key)
{
    if (g == NULL || key == NULL)
        return NULL;
    uint64_t i = index_find(&g->kv_index, g->kvs, sizeof *g->kvs, offsetof(rf_gguf_kv_t, key),
                            key, strlen(key));
    return i == UINT64_MAX ? NULL : &g->kvs[i];
}

uint64_t rf_gguf_n_tensors(const rf_gguf_t *g)
{
    return g ? g->n_tensors : 0;
}

const rf_gguf_tensor_t *rf_gguf_tensor_at(const rf_gguf_t *g, uint64_t i)
{
    return g && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const rf_gguf_tensor_t *rf_gguf_find_tensor(const rf_gguf_t *g, const char *name)
{
    if (g == NULL || name == NULL)
        return NULL;
    uint64_t i = index_find(&g->tensor_index, g->tensors, sizeof *g->tensors,
                            offsetof(rf_gguf_tensor_t, name), name, strlen(name));
    return i == UINT64_MAX ? NULL : &g->tensors[i];
}

/* ---- public: typed getters ---- */

/* An integer value checked against [lo, hi]; *s and *u receive it as signed
 * and unsigned (each meaningful when the range allows it). */
static int integer_in(const rf_gguf_value_t *v, int64_t lo, uint64_t hi, int64_t *s, uint64_t *u)
{
    if (!is_integer(v->type))
        return RF_ETYPE;
    if (is_signed(v->type)) {
        int64_t x = v->v.i64;
        if (x < lo || (x > 0 && (uint64_t)x > hi))
            return RF_ERANGE;
        *s = x;
        *u = (uint64_t)x;
    } else {
        uint64_t x = v->v.u64;
        if (x > hi)
            return RF_ERANGE;
        *s = (int64_t)x; /* hi <= INT64_MAX whenever the caller reads *s */
        *u = x;
    }
    return 0;
}

static int get_integer(const rf_gguf_t *g, const char *key, int64_t lo, uint64_t hi, int64_t *s,
                       uint64_t *u)
{
    const rf_gguf_kv_t *kv = rf_gguf_find_kv(g, key);
    if (kv == NULL)
        return 1;
    return integer_in(&kv->value, lo, hi, s, u);
}

int rf_gguf_get_u32(const rf_gguf_t *g, const char *key, uint32_t *out)
{
    int64_t s;
    uint64_t u;
    int rc = get_integer(g, key, 0, UINT32_MAX, &s, &u);
    if (rc == 0)
        *out = (uint32_t)u;
    return rc;
}

int rf_gguf_get_i32(const rf_gguf_t *g, const char *key, int32_t *out)
{
    int64_t s;
    uint64_t u;
    int rc = get_integer(g, key, INT32_MIN, INT32_MAX, &s, &u);
    if (rc == 0)
        *out = (int32_t)s;
    return rc;
}

int rf_gguf_get_u64(const rf_gguf_t *g, const char *key, uint64_t *out)
{
    int64_t s;
    uint64_t u;
    int rc = get_integer(g, key, 0, UINT64_MAX, &s, &u);
    if (rc == 0)
        *out = u;
    return rc;
}

int rf_gguf_get_i64(const rf_gguf_t *g, const char *key, int64_t *out)
{
    int64_t s;
    uint64_t u;
    int rc = get_integer(g, key, INT64_MIN, INT64_MAX, &s, &u);
    if (rc == 0)
        *out = s;
    return rc;
}

int rf_gguf_get_f64(const rf_gguf_t *g, const char *key, double *out)
{
    const rf_gguf_kv_t *kv = rf_gguf_find_kv(g, key);
    if (kv == NULL)
        return 1;
    if (kv->value.type != RF_GGUF_FLOAT32 && kv->value.type != RF_GGUF_FLOAT64)
        return RF_ETYPE;
    *out = kv->value.v.f64;
    return 0;
}

int rf_gguf_get_f32(const rf_gguf_t *g, const char *key, float *out)
{
    double d;
    int rc = rf_gguf_get_f64(g, key, &d);
    if (rc != 0)
        return rc;
    /* A finite f64 beyond float range would silently become infinity. */
    if (isfinite(d) && fabs(d) > FLT_MAX)
        return RF_ERANGE;
    *out = (float)d;
    return 0;
}

int rf_gguf_get_bool(const rf_gguf_t *g, const char *key, bool *out)
{
    const rf_gguf_kv_t *kv = rf_gguf_find_kv(g, key);
    if (kv == NULL)
        return 1;
    if (kv->value.type != RF_GGUF_BOOL)
        return RF_ETYPE;
    *out = kv->value.v.u64 != 0;
    return 0;
}

int rf_gguf_get_str(const rf_gguf_t *g, const char *key, rf_gguf_str_t *out)
{
    const rf_gguf_kv_t *kv = rf_gguf_find_kv(g, key);
    if (kv == NULL)
        return 1;
    if (kv->value.type != RF_GGUF_STRING)
        return RF_ETYPE;
    *out = kv->value.v.str;
    return 0;
}

int rf_gguf_get_arr(const rf_gguf_t *g, const char *key, int elem_type,
                    const rf_gguf_value_t **out)
{
    const rf_gguf_kv_t *kv = rf_gguf_find_kv(g, key);
    if (kv == NULL)
        return 1;
    if (kv->value.type != RF_GGUF_ARRAY)
        return RF_ETYPE;
    if (elem_type >= 0 && (int)kv->value.v.arr.elem_type != elem_type)
        return RF_ETYPE;
    *out = &kv->value;
    return 0;
}

/* ---- public: array elements ---- */

/* BOOL counts as an integer here (0 or 1): there is no bool accessor for
 * elements, and callers printing arrays read bool elements this way. */
int rf_gguf_arr_i64(const rf_gguf_value_t *arr, uint64_t i, int64_t *out)
{
    if (arr == NULL || arr->type != RF_GGUF_ARRAY)
        return RF_ETYPE;
    uint32_t t = arr->v.arr.elem_type;
    if (!is_integer(t) && t != RF_GGUF_BOOL)
        return RF_ETYPE;
    if (i >= arr->v.arr.n)
        return RF_ERANGE;
    rf_gguf_value_t v;
    decode_fixed(t, arr->v.arr.data + i * type_sizes[t], &v);
    if (t == RF_GGUF_BOOL) {
        *out = (int64_t)v.v.u64;
        return 0;
    }
    uint64_t u;
    return integer_in(&v, INT64_MIN, INT64_MAX, out, &u);
}

int rf_gguf_arr_f64(const rf_gguf_value_t *arr, uint64_t i, double *out)
{
    if (arr == NULL || arr->type != RF_GGUF_ARRAY)
        return RF_ETYPE;
    uint32_t t = arr->v.arr.elem_type;
    if (t != RF_GGUF_FLOAT32 && t != RF_GGUF_FLOAT64)
        return RF_ETYPE;
    if (i >= arr->v.arr.n)
        return RF_ERANGE;
    rf_gguf_value_t v = {0};
    decode_fixed(t, arr->v.arr.data + i * type_sizes[t], &v);
    *out = v.v.f64;
    return 0;
}

int rf_gguf_arr_str(const rf_gguf_value_t *arr, uint64_t i, rf_gguf_str_t *out)
{
    if (arr == NULL || arr->type != RF_GGUF_ARRAY || arr->v.arr.elem_type != RF_GGUF_STRING)
        return RF_ETYPE;
    if (i >= arr->v.arr.n)
        return RF_ERANGE;
    *out = arr->v.arr.strs[i];
    return 0;
}

/* ---- public: helpers ---- */

const char *rf_gguf_type_name(int type)
{
    return type >= 0 && type < RF_GGUF_TYPE_COUNT ? type_names[type] : "?";
}

bool rf_gguf_str_eq(rf_gguf_str_t s, const char *cstr)
{
    if (cstr == NULL)
        return false;
    size_t n = strlen(cstr);
    return s.len == n && (n == 0 || memcmp(s.data, cstr, n) == 0);
}

size_t rf_gguf_type_size(int type)
{
    return type >= 0 && type < RF_GGUF_TYPE_COUNT ? type_sizes[type] : 0;
}
