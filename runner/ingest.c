/* ingest.c - input lines to jobs: parse, validate, resolve params, insert
 *
 * rf_ingest_parse_line turns one JSONL line into a job (kind, input, params
 * with defaults applied, metadata, input_hash) or a one-line reason;
 * rf_ingest_file streams a file through it and inserts the jobs of each
 * chunk of lines in one BEGIN IMMEDIATE transaction.
 *
 * Design notes:
 *  1. Memory is bounded by the longest accepted line (at most max_line_bytes)
 *     plus one 64 KiB read block: lines are read by a small reader of our
 *     own, and a line over the limit is counted and skipped, never held whole;
 *     a batch of parsed lines waiting for its transaction is capped too.
 *  2. Idempotence lives in the database, not in memory: a job is inserted
 *     with ON CONFLICT (run_id, custom_id) DO NOTHING, and when nothing was
 *     inserted the stored input_hash decides between "already present" and
 *     "duplicate custom_id with different content". So a resubmitted file,
 *     or one resumed after a crash half way, adds nothing twice.
 *  3. input and params are dumped with sorted keys and fixed real precision,
 *     so the same content always gives the same bytes and the same hash;
 *     priority, not_before and max_attempts steer scheduling only and are
 *     not part of the hash (resubmitting with another priority is "already
 *     present", not a conflict).
 *  4. rejected_lines is keyed by (run, file, line) and written with an
 *     upsert; a line that is accepted later (the file was fixed) removes its
 *     old rejection.
 *  5. Lines are read and parsed outside any transaction; the write lock is
 *     taken only to insert a batch (chunk_lines lines or BATCH_BYTES of
 *     job text), so a slow reader (a pipe) never holds it while waiting, and
 *     a concurrent `run` is kept waiting at most one batch's inserts.
 */
#include "ingest.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sampler.h"

#define MAX_CUSTOM_ID 512      /* bytes */
#define MAX_STOPS 16
#define MAX_LOGIT_BIAS 1024    /* entries */
#define MAX_N 128
#define REJECTED_LINE_BYTES 4096
#define READ_BLOCK (64u << 10)
#define BATCH_BYTES (32u << 20)   /* parsed job text held before a flush */
#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15))

/* ---------------------------------------------------------------- SHA-256 */

typedef struct sha256 {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t block[64];
    size_t fill;
} sha256_t;

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_init(sha256_t *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->n_bytes = 0;
    s->fill = 0;
}

static void sha256_block(sha256_t *s, const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
    uint32_t e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                      sha256_k[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
    s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

static void sha256_update(sha256_t *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    s->n_bytes += len;
    while (len > 0) {
        size_t k = 64 - s->fill < len ? 64 - s->fill : len;
        memcpy(s->block + s->fill, p, k);
        s->fill += k;
        p += k;
        len -= k;
        if (s->fill == 64) {
            sha256_block(s, s->block);
            s->fill = 0;
        }
    }
}

static void sha256_hex(sha256_t *s, char out[65])
{
    uint64_t bits = s->n_bytes * 8;
    uint8_t pad = 0x80;
    sha256_update(s, &pad, 1);
    pad = 0;
    while (s->fill != 56)
        sha256_update(s, &pad, 1);
    uint8_t len_be[8];
    for (int i = 0; i < 8; i++)
        len_be[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(s, len_be, 8);
    for (int i = 0; i < 8; i++)
        snprintf(out + 8 * i, 9, "%08x", s->h[i]);
}

/* ---------------------------------------------------------------- times */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int take_digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*s)[i] < '0' || (*s)[i] > '9')
            return -1;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

/* RFC 3339 date-time: 2026-11-24T08:00:00Z, 2026-11-24T08:00:00.250+01:00. */
static int parse_rfc3339(const char *s, int64_t *ms_out)
{
    int year, month, day, hour, minute, second, off_h = 0, off_m = 0;
    if (take_digits(&s, 4, &year) || *s++ != '-' || take_digits(&s, 2, &month) ||
        *s++ != '-' || take_digits(&s, 2, &day))
        return -1;
    if (*s != 'T' && *s != 't' && *s != ' ')
        return -1;
    s++;
    if (take_digits(&s, 2, &hour) || *s++ != ':' || take_digits(&s, 2, &minute) ||
        *s++ != ':' || take_digits(&s, 2, &second))
        return -1;
    int64_t frac_ms = 0;
    if (*s == '.') {
        s++;
        int n = 0;
        for (; *s >= '0' && *s <= '9'; s++, n++)
            if (n < 3)
                frac_ms = frac_ms * 10 + (*s - '0');
        if (n == 0)
            return -1;
        for (; n < 3; n++)
            frac_ms *= 10;
    }
    int sign = 0;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        sign = *s++ == '+' ? 1 : -1;
        if (take_digits(&s, 2, &off_h) || *s++ != ':' || take_digits(&s, 2, &off_m) ||
            off_h > 23 || off_m > 59)
            return -1;
    } else {
        return -1;
    }
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (*s != '\0' || month < 1 || month > 12 || day < 1 || day > mdays[month - 1] ||
        hour > 23 || minute > 59 || second > 60)
        return -1;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month == 2 && day == 29 && !leap)
        return -1;
    int64_t t = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    t -= sign * (off_h * 3600 + off_m * 60);
    *ms_out = t * 1000 + frac_ms;
    return 0;
}

/* ---------------------------------------------------------------- params */

typedef enum param_type {
    P_INT, P_REAL, P_LOGPROBS, P_STOP, P_LOGIT_BIAS, P_MODEL, P_NOT_BEFORE, P_BOOL,
} param_type_t;

typedef struct param_spec {
    const char *name;
    param_type_t type;
    double min, max;       /* P_INT, P_REAL: inclusive bounds ... */
    bool min_open;         /* ... except min when set */
    bool scheduling;       /* a job column, not a sampling param */
    const char *range;     /* the bounds, for messages */
} param_spec_t;

/* Looked up in this order, so an explicit top_logprobs wins over the count a
 * completions-style integer logprobs implies. */
static const param_spec_t param_specs[] = {
    {"max_tokens", P_INT, 1, 1000000, false, false, "in [1, 1000000]"},
    {"temperature", P_REAL, 0, 100, false, false, "in [0, 100]"},
    {"top_p", P_REAL, 0, 1, true, false, "in (0, 1]"},
    {"top_k", P_INT, 0, INT32_MAX, false, false, ">= 0 (0: off)"},
    {"min_p", P_REAL, 0, 1, false, false, "in [0, 1]"},
    {"repetition_penalty", P_REAL, 0, 100, true, false, "in (0, 100]"},
    {"frequency_penalty", P_REAL, -2, 2, false, false, "in [-2, 2]"},
    {"presence_penalty", P_REAL, -2, 2, false, false, "in [-2, 2]"},
    {"seed", P_INT, 0, INFINITY, false, false, ">= 0"},
    {"n", P_INT, 1, MAX_N, false, false, "in [1, 128]"},
    {"logprobs", P_LOGPROBS, 0, RF_SAMPLER_MAX_TOP_LOGPROBS, false, false, "in [0, 20]"},
    {"top_logprobs", P_INT, 0, RF_SAMPLER_MAX_TOP_LOGPROBS, false, false, "in [0, 20]"},
    {"stop", P_STOP, 0, 0, false, false, NULL},
    {"logit_bias", P_LOGIT_BIAS, -100, 100, false, false, "in [-100, 100]"},
    {"model", P_MODEL, 0, 0, false, false, NULL},
    {"ignore_eos", P_BOOL, 0, 0, false, false, NULL},
    {"priority", P_INT, -1e9, 1e9, false, true, "in [-1000000000, 1000000000]"},
    {"not_before", P_NOT_BEFORE, 0, 0, false, true, NULL},
    {"max_attempts", P_INT, 1, 100, false, true, "in [1, 100]"},
};
#define N_PARAM_SPECS (sizeof param_specs / sizeof param_specs[0])

static const param_spec_t *find_param(const char *name)
{
    for (size_t i = 0; i < N_PARAM_SPECS; i++)
        if (strcmp(param_specs[i].name, name) == 0)
            return &param_specs[i];
    return NULL;
}

static bool in_range(const param_spec_t *p, double x)
{
    return (p->min_open ? x > p->min : x >= p->min) && x <= p->max;
}

static int set_new(json_t *obj, const char *key, json_t *v)
{
    return v != NULL && json_object_set_new(obj, key, v) == 0 ? 0 : -ENOMEM;
}

/* Validate v as param p (named where+name in messages: "body.") and store
 * its normalised value in out. */
static int parse_param(const param_spec_t *p, const char *where, json_t *v, json_t *out,
                       rf_err_t *err)
{
    const char *name = p->name;
    switch (p->type) {
    case P_INT:
        if (!json_is_integer(v))
            return rf_err_set(err, RF_ETYPE, "%s%s must be an integer", where, name);
        if (!in_range(p, (double)json_integer_value(v)))
            return rf_err_set(err, RF_ERANGE, "%s%s must be %s, got %lld", where, name, p->range,
                              (long long)json_integer_value(v));
        return set_new(out, name, json_integer(json_integer_value(v)));
    case P_REAL:
        if (!json_is_number(v))
            return rf_err_set(err, RF_ETYPE, "%s%s must be a number", where, name);
        if (!in_range(p, json_number_value(v)))
            return rf_err_set(err, RF_ERANGE, "%s%s must be %s, got %g", where, name, p->range,
                              json_number_value(v));
        return set_new(out, name, json_real(json_number_value(v)));
    case P_LOGPROBS:
        /* true/false (chat), or the completions API's count of alternatives. */
        if (json_is_boolean(v))
            return set_new(out, name, json_boolean(json_is_true(v)));
        if (!json_is_integer(v))
            return rf_err_set(err, RF_ETYPE, "%s%s must be true, false or a count of top "
                              "alternatives (0..20)", where, name);
        if (!in_range(p, (double)json_integer_value(v)))
            return rf_err_set(err, RF_ERANGE, "%s%s must be %s, got %lld", where, name, p->range,
                              (long long)json_integer_value(v));
        if (set_new(out, name, json_boolean(json_integer_value(v) > 0)) < 0)
            return -ENOMEM;
        return set_new(out, "top_logprobs", json_integer(json_integer_value(v)));
    case P_STOP: {
        json_t *list = json_array();
        if (list == NULL)
            return -ENOMEM;
        if (json_is_string(v)) {
            json_array_append(list, v);
        } else if (json_is_array(v)) {
            size_t i;
            json_t *s;
            json_array_foreach(v, i, s) {
                if (!json_is_string(s)) {
                    json_decref(list);
                    return rf_err_set(err, RF_ETYPE, "%s%s[%zu] must be a string", where, name, i);
                }
                json_array_append(list, s);
            }
        } else {
            json_decref(list);
            return rf_err_set(err, RF_ETYPE, "%s%s must be a string or a list of strings",
                              where, name);
        }
        size_t i;
        json_t *s;
        json_array_foreach(list, i, s) {
            if (json_string_length(s) == 0) {
                json_decref(list);
                return rf_err_set(err, RF_ERANGE, "%s%s: a stop string is empty", where, name);
            }
        }
        if (json_array_size(list) > MAX_STOPS) {
            json_decref(list);
            return rf_err_set(err, RF_ERANGE, "%s%s has %zu strings; at most %d", where, name,
                              json_array_size(v), MAX_STOPS);
        }
        return set_new(out, name, list);
    }
    case P_LOGIT_BIAS: {
        if (!json_is_object(v))
            return rf_err_set(err, RF_ETYPE, "%s%s must be an object of token id -> bias",
                              where, name);
        if (json_object_size(v) > MAX_LOGIT_BIAS)
            return rf_err_set(err, RF_ERANGE, "%s%s has %zu entries; at most %d", where, name,
                              json_object_size(v), MAX_LOGIT_BIAS);
        json_t *bias = json_object();
        if (bias == NULL)
            return -ENOMEM;
        const char *key;
        json_t *b;
        json_object_foreach(v, key, b) {
            char *end;
            errno = 0;
            long id = strtol(key, &end, 10);
            if (key[0] < '0' || key[0] > '9' || *end != '\0' || errno || id > INT32_MAX) {
                json_decref(bias);
                return rf_err_set(err, RF_EFORMAT, "%s%s: key '%s' is not a token id", where,
                                  name, key);
            }
            if (!json_is_number(b) || !in_range(p, json_number_value(b))) {
                json_decref(bias);
                return rf_err_set(err, RF_ERANGE, "%s%s['%s'] must be a number %s", where, name,
                                  key, p->range);
            }
            char canon[24];
            snprintf(canon, sizeof canon, "%ld", id);
            if (set_new(bias, canon, json_real(json_number_value(b))) < 0) {
                json_decref(bias);
                return -ENOMEM;
            }
        }
        return set_new(out, name, bias);
    }
    case P_BOOL:
        if (!json_is_boolean(v))
            return rf_err_set(err, RF_ETYPE, "%s%s must be true or false", where, name);
        return set_new(out, name, json_boolean(json_is_true(v)));
    case P_MODEL:
        if (!json_is_string(v))
            return rf_err_set(err, RF_ETYPE, "%s%s must be a string", where, name);
        return set_new(out, name, json_copy(v));
    case P_NOT_BEFORE: {
        int64_t ms = 0;
        if (json_is_integer(v)) {
            ms = json_integer_value(v);
            if (ms < 0)
                return rf_err_set(err, RF_ERANGE, "%s%s must be >= 0 (ms since 1970), got %lld",
                                  where, name, (long long)ms);
        } else if (json_is_string(v)) {
            if (parse_rfc3339(json_string_value(v), &ms) < 0)
                return rf_err_set(err, RF_EFORMAT, "%s%s '%s' is not an RFC 3339 time such as "
                                  "2026-11-24T08:00:00Z", where, name, json_string_value(v));
            if (ms < 0)
                return rf_err_set(err, RF_ERANGE, "%s%s '%s' is before 1970", where, name,
                                  json_string_value(v));
        } else {
            return rf_err_set(err, RF_ETYPE, "%s%s must be an RFC 3339 time string or "
                              "milliseconds since 1970", where, name);
        }
        return set_new(out, "not_before_ms", json_integer(ms));
    }
    }
    return rf_err_set(err, RF_EUNSUPPORTED, "%s%s: no parser", where, name);
}

int rf_ingest_defaults_add(json_t *defaults, const char *name, json_t *v, rf_err_t *err)
{
    const param_spec_t *p = find_param(name);
    if (p == NULL)
        return rf_err_set(err, RF_EUSAGE, "'%s' is not a parameter", name);
    return parse_param(p, "", v, defaults, err);
}

/* Every param at its built-in value; the run's defaults and the line go on top. */
static json_t *builtin_params(void)
{
    return json_pack("{s:i, s:f, s:f, s:i, s:f, s:f, s:f, s:f, s:i, s:i, s:b, s:i, s:[], s:{},"
                     " s:i, s:i, s:i}",
                     "max_tokens", 256, "temperature", 1.0, "top_p", 1.0, "top_k", 0, "min_p", 0.0,
                     "repetition_penalty", 1.0, "frequency_penalty", 0.0, "presence_penalty", 0.0,
                     "seed", 0, "n", 1, "logprobs", 0, "top_logprobs", 0, "stop", "logit_bias",
                     "priority", 0, "not_before_ms", 0, "max_attempts", 3);
}

/* ---------------------------------------------------------------- input */

static bool is_input_key(const char *k)
{
    return strcmp(k, "prompt") == 0 || strcmp(k, "messages") == 0 ||
           strcmp(k, "context") == 0 || strcmp(k, "continuation") == 0;
}

/* messages -> [{"content","role"}...], content parts joined. */
static int parse_messages(json_t *v, const char *where, json_t **out, rf_err_t *err)
{
    if (!json_is_array(v))
        return rf_err_set(err, RF_ETYPE, "%smessages must be a list of {\"role\", \"content\"}",
                          where);
    if (json_array_size(v) == 0)
        return rf_err_set(err, RF_EFORMAT, "%smessages is empty", where);
    json_t *list = json_array();
    if (list == NULL)
        return -ENOMEM;
    size_t i;
    json_t *m;
    int rc = 0;
    json_array_foreach(v, i, m) {
        if (!json_is_object(m)) {
            rc = rf_err_set(err, RF_ETYPE, "%smessages[%zu] must be an object", where, i);
            break;
        }
        const char *key;
        json_t *field;
        json_object_foreach(m, key, field) {
            if (strcmp(key, "role") != 0 && strcmp(key, "content") != 0) {
                rc = rf_err_set(err, RF_EUNSUPPORTED, "%smessages[%zu]: unknown field '%s' "
                                "(a message has role and content)", where, i, key);
                break;
            }
        }
        if (rc < 0)
            break;
        json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        if (!json_is_string(role)) {
            rc = rf_err_set(err, RF_ETYPE, "%smessages[%zu].role %s", where, i,
                            role ? "must be a string" : "is missing");
            break;
        }
        const char *r = json_string_value(role);
        if (strcmp(r, "developer") == 0)
            r = "system"; /* OpenAI's newer name for the system role */
        if (strcmp(r, "system") != 0 && strcmp(r, "user") != 0 && strcmp(r, "assistant") != 0) {
            rc = rf_err_set(err, RF_EFORMAT, "%smessages[%zu].role '%s' is not system, user or "
                            "assistant", where, i, json_string_value(role));
            break;
        }
        json_t *text = NULL;
        if (json_is_string(content)) {
            text = json_copy(content);
        } else if (json_is_array(content)) {
            /* OpenAI content parts: only text parts, joined. */
            size_t j;
            json_t *part;
            size_t total = 0;
            json_array_foreach(content, j, part) {
                json_t *type = json_object_get(part, "type"), *t = json_object_get(part, "text");
                if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0 ||
                    !json_is_string(t)) {
                    rc = rf_err_set(err, RF_EUNSUPPORTED, "%smessages[%zu].content[%zu]: only "
                                    "{\"type\": \"text\", \"text\": ...} parts are supported",
                                    where, i, j);
                    break;
                }
                total += json_string_length(t);
            }
            if (rc < 0)
                break;
            char *joined = malloc(total + 1);
            if (joined == NULL) {
                rc = -ENOMEM;
                break;
            }
            size_t at = 0;
            json_array_foreach(content, j, part) {
                json_t *t = json_object_get(part, "text");
                memcpy(joined + at, json_string_value(t), json_string_length(t));
                at += json_string_length(t);
            }
            text = json_stringn(joined, at);
            free(joined);
        } else {
            rc = rf_err_set(err, RF_ETYPE, "%smessages[%zu].content %s", where, i,
                            content ? "must be a string" : "is missing");
            break;
        }
        json_t *msg = json_pack("{s:s, s:o}", "role", r, "content", text);
        if (msg == NULL || json_array_append_new(list, msg) < 0) {
            rc = -ENOMEM;
            break;
        }
    }
    if (rc < 0) {
        json_decref(list);
        return rc;
    }
    *out = json_pack("{s:o}", "messages", list);
    return *out ? 0 : -ENOMEM;
}

static int parse_prompt(json_t *v, const char *where, json_t **out, rf_err_t *err)
{
    if (json_is_array(v))
        return rf_err_set(err, RF_EUNSUPPORTED, "%sprompt must be a string; put each prompt of "
                          "a list on its own line", where);
    if (!json_is_string(v))
        return rf_err_set(err, RF_ETYPE, "%sprompt must be a string", where);
    if (json_string_length(v) == 0)
        return rf_err_set(err, RF_EFORMAT, "%sprompt is empty", where);
    *out = json_pack("{s:O}", "prompt", v);
    return *out ? 0 : -ENOMEM;
}

/* Each param of spec found in obj goes into set; keys are checked by the caller. */
static int parse_params(json_t *obj, const char *where, bool scheduling, json_t *set,
                        rf_err_t *err)
{
    for (size_t i = 0; i < N_PARAM_SPECS; i++) {
        const param_spec_t *p = &param_specs[i];
        json_t *v = json_object_get(obj, p->name);
        if (v == NULL || p->scheduling != scheduling)
            continue;
        int rc = parse_param(p, where, v, set, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The OpenAI Batch request line: method, url, body. */
static int parse_openai(json_t *line, const char **kind, json_t **input, json_t *set,
                        rf_err_t *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(line, key, v) {
        if (strcmp(key, "custom_id") != 0 && strcmp(key, "method") != 0 &&
            strcmp(key, "url") != 0 && strcmp(key, "body") != 0 && strcmp(key, "metadata") != 0) {
            const param_spec_t *p = find_param(key);
            if (p == NULL || !p->scheduling)
                return rf_err_set(err, RF_EUNSUPPORTED, "unknown field '%s' in an OpenAI batch "
                                  "line (sampling parameters go in body)", key);
        }
    }
    json_t *method = json_object_get(line, "method"), *url = json_object_get(line, "url");
    json_t *body = json_object_get(line, "body");
    if (!json_is_string(method) || strcmp(json_string_value(method), "POST") != 0)
        return rf_err_set(err, RF_EFORMAT, "method must be \"POST\" in an OpenAI batch line");
    if (!json_is_string(url))
        return rf_err_set(err, RF_EFORMAT, "url %s", url ? "must be a string" : "is missing");
    bool chat = strcmp(json_string_value(url), "/v1/chat/completions") == 0;
    if (!chat && strcmp(json_string_value(url), "/v1/completions") != 0)
        return rf_err_set(err, RF_EUNSUPPORTED, "url '%s' is not supported; use "
                          "/v1/chat/completions or /v1/completions", json_string_value(url));
    if (!json_is_object(body))
        return rf_err_set(err, RF_ETYPE, "body %s", body ? "must be an object" : "is missing");
    const char *input_key = chat ? "messages" : "prompt";
    json_object_foreach(body, key, v) {
        const param_spec_t *p = find_param(key);
        if (strcmp(key, input_key) == 0 || strcmp(key, "max_completion_tokens") == 0)
            continue;
        if (p == NULL || p->scheduling)
            return rf_err_set(err, RF_EUNSUPPORTED, "unknown or unsupported field 'body.%s'%s",
                              key, is_input_key(key) ? (chat ? " (a chat request has messages)"
                                                             : " (a completion has prompt)")
                                                     : "");
    }
    json_t *in = json_object_get(body, input_key);
    if (in == NULL)
        return rf_err_set(err, RF_EFORMAT, "body.%s is missing", input_key);
    int rc = chat ? parse_messages(in, "body.", input, err) : parse_prompt(in, "body.", input, err);
    if (rc < 0)
        return rc;
    *kind = chat ? "chat" : "completion";
    rc = parse_params(body, "body.", false, set, err);
    if (rc < 0)
        return rc;
    json_t *mct = json_object_get(body, "max_completion_tokens");
    if (mct != NULL) {
        if (json_object_get(body, "max_tokens") != NULL)
            return rf_err_set(err, RF_EFORMAT, "body has both max_tokens and "
                              "max_completion_tokens; give one");
        json_t *tmp = json_object();
        if (tmp == NULL)
            return -ENOMEM;
        rc = parse_param(find_param("max_tokens"), "body.", mct, tmp, err);
        if (rc == 0)
            rc = json_object_update(set, tmp) == 0 ? 0 : -ENOMEM;
        json_decref(tmp);
        if (rc < 0)
            return rc;
    }
    return parse_params(line, "", true, set, err);
}

/* The plain shapes: prompt, messages, or context + continuation, params beside. */
static int parse_plain(json_t *line, const char **kind, json_t **input, json_t *set,
                       rf_err_t *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(line, key, v) {
        if (strcmp(key, "custom_id") != 0 && strcmp(key, "metadata") != 0 && !is_input_key(key) &&
            find_param(key) == NULL)
            return rf_err_set(err, RF_EUNSUPPORTED, "unknown field '%s'; put your own fields "
                              "under \"metadata\"", key);
    }
    json_t *prompt = json_object_get(line, "prompt"), *messages = json_object_get(line, "messages");
    json_t *context = json_object_get(line, "context");
    json_t *continuation = json_object_get(line, "continuation");
    int shapes = (prompt != NULL) + (messages != NULL) + (context || continuation);
    if (shapes == 0)
        return rf_err_set(err, RF_EFORMAT, "no input: give prompt, messages, or context and "
                          "continuation");
    if (shapes > 1)
        return rf_err_set(err, RF_EFORMAT, "give only one of prompt, messages, or context and "
                          "continuation");
    int rc;
    if (prompt != NULL) {
        *kind = "completion";
        rc = parse_prompt(prompt, "", input, err);
    } else if (messages != NULL) {
        *kind = "chat";
        rc = parse_messages(messages, "", input, err);
    } else {
        *kind = "score";
        if (context == NULL || continuation == NULL)
            return rf_err_set(err, RF_EFORMAT, "a score job needs both context and "
                              "continuation");
        if (!json_is_string(context) || !json_is_string(continuation))
            return rf_err_set(err, RF_ETYPE, "context and continuation must be strings");
        if (json_string_length(continuation) == 0)
            return rf_err_set(err, RF_EFORMAT, "continuation is empty");
        *input = json_pack("{s:O, s:O}", "context", context, "continuation", continuation);
        rc = *input ? 0 : -ENOMEM;
    }
    if (rc < 0)
        return rc;
    rc = parse_params(line, "", false, set, err);
    if (rc < 0)
        return rc;
    return parse_params(line, "", true, set, err);
}

static int take_int(json_t *params, const char *key, int64_t *out)
{
    *out = json_integer_value(json_object_get(params, key));
    return json_object_del(params, key);
}

int rf_ingest_parse_line(const char *text, size_t len, const json_t *defaults,
                         rf_ingest_job_t *job, rf_err_t *err)
{
    memset(job, 0, sizeof *job);
    json_error_t jerr;
    json_t *line = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (line == NULL) {
        if (strstr(jerr.text, "unable to decode byte") || strstr(jerr.text, "UTF-8"))
            return rf_err_set(err, RF_EFORMAT, "invalid UTF-8 at column %d (%s); the file must "
                              "be UTF-8 text", jerr.column, jerr.text);
        return rf_err_set(err, RF_EFORMAT, "invalid JSON at column %d: %s", jerr.column,
                          jerr.text);
    }
    json_t *input = NULL, *set = NULL, *params = NULL;
    int rc = 0;
    if (!json_is_object(line)) {
        rc = rf_err_set(err, RF_ETYPE, "a line must be a JSON object, not %s",
                        json_is_array(line) ? "a list" : "a single value");
        goto done;
    }
    json_t *id = json_object_get(line, "custom_id");
    if (id == NULL) {
        rc = rf_err_set(err, RF_EFORMAT, "missing custom_id");
        goto done;
    }
    if (!json_is_string(id)) {
        rc = rf_err_set(err, RF_ETYPE, "custom_id must be a string");
        goto done;
    }
    if (json_string_length(id) == 0 || json_string_length(id) > MAX_CUSTOM_ID ||
        strlen(json_string_value(id)) != json_string_length(id)) {
        rc = rf_err_set(err, RF_EFORMAT, "custom_id is %s", json_string_length(id) == 0
                        ? "empty" : json_string_length(id) > MAX_CUSTOM_ID
                        ? "longer than 512 bytes" : "not text");
        goto done;
    }
    job->custom_id = strdup(json_string_value(id));
    set = json_object();
    if (job->custom_id == NULL || set == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    json_t *metadata = json_object_get(line, "metadata");
    if (metadata != NULL && !json_is_object(metadata)) {
        rc = rf_err_set(err, RF_ETYPE, "metadata must be an object");
        goto done;
    }
    bool openai = json_object_get(line, "body") || json_object_get(line, "method") ||
                  json_object_get(line, "url");
    rc = openai ? parse_openai(line, &job->kind, &input, set, err)
                : parse_plain(line, &job->kind, &input, set, err);
    if (rc < 0)
        goto done;

    /* Resolve: built-in, then the run's defaults, then the line. */
    params = builtin_params();
    if (params == NULL || (defaults && json_object_update(params, (json_t *)defaults) < 0) ||
        json_object_update(params, set) < 0) {
        rc = -ENOMEM;
        goto done;
    }
    if (json_integer_value(json_object_get(params, "top_logprobs")) > 0)
        json_object_set_new(params, "logprobs", json_true());
    if (take_int(params, "priority", &job->priority) < 0 ||
        take_int(params, "not_before_ms", &job->not_before_ms) < 0 ||
        take_int(params, "max_attempts", &job->max_attempts) < 0) {
        rc = -ENOMEM;
        goto done;
    }
    job->input = json_dumps(input, DUMP_FLAGS);
    job->params = json_dumps(params, DUMP_FLAGS);
    job->metadata = metadata ? json_dumps(metadata, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    if (job->input == NULL || job->params == NULL || (metadata && job->metadata == NULL)) {
        rc = -ENOMEM;
        goto done;
    }
    sha256_t h;
    sha256_init(&h);
    sha256_update(&h, job->kind, strlen(job->kind));
    sha256_update(&h, "\n", 1);
    sha256_update(&h, job->input, strlen(job->input));
    sha256_update(&h, "\n", 1);
    sha256_update(&h, job->params, strlen(job->params));
    sha256_hex(&h, job->input_hash);
done:
    if (rc < 0) {
        char *keep = job->custom_id;
        job->custom_id = NULL;
        rf_ingest_job_free(job);
        job->custom_id = keep;
        if (rc == -ENOMEM)
            rf_err_set(err, rc, "out of memory");
    }
    json_decref(params);
    json_decref(set);
    json_decref(input);
    json_decref(line);
    return rc;
}

void rf_ingest_job_free(rf_ingest_job_t *job)
{
    free(job->custom_id);
    free(job->input);
    free(job->params);
    free(job->metadata);
    memset(job, 0, sizeof *job);
}

/* ---------------------------------------------------------------- line reader */

/* Lines of a stream, each held whole only up to max bytes (design note 1). */
typedef struct line_reader {
    FILE *f;
    char *block;           /* [READ_BLOCK] */
    size_t pos, end;
    bool eof;
    char *line;            /* NUL-terminated, at most max bytes kept */
    size_t len, cap, max;
    uint64_t full_len;     /* the line's real length, bytes past max included */
    uint64_t offset;       /* bytes consumed */
} line_reader_t;

static int keep(line_reader_t *r, const char *p, size_t n)
{
    r->full_len += n;
    if (r->full_len > r->max)
        return 0;
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *grown = realloc(r->line, cap);
        if (grown == NULL)
            return -ENOMEM;
        r->line = grown;
        r->cap = cap;
    }
    memcpy(r->line + r->len, p, n);
    r->len += n;
    r->line[r->len] = '\0';
    return 0;
}

/* 1: a line is in r->line (too long when full_len > max); 0: end; < 0 error. */
static int read_line(line_reader_t *r)
{
    r->len = 0;
    r->full_len = 0;
    if (r->line)
        r->line[0] = '\0';
    bool any = false;
    for (;;) {
        if (r->pos == r->end) {
            if (r->eof)
                return any ? 1 : 0;
            r->end = fread(r->block, 1, READ_BLOCK, r->f);
            r->pos = 0;
            if (r->end < READ_BLOCK) {
                if (ferror(r->f))
                    return -EIO;
                r->eof = true;
            }
            continue;
        }
        any = true;
        char *start = r->block + r->pos;
        char *nl = memchr(start, '\n', r->end - r->pos);
        size_t n = nl ? (size_t)(nl - start) : r->end - r->pos;
        int rc = keep(r, start, n);
        if (rc < 0)
            return rc;
        r->pos += n + (nl != NULL);
        r->offset += n + (nl != NULL);
        if (nl != NULL) {
            if (r->full_len <= r->max && r->len > 0 && r->line[r->len - 1] == '\r')
                r->line[--r->len] = '\0';
            return 1;
        }
    }
}

/* ---------------------------------------------------------------- database */

typedef struct ingest {
    rf_db_t *db;
    int64_t run_id;
    const char *run_name;
    const char *source;        /* source_file as stored */
    bool had_rejected;         /* rejected_lines rows for this file existed */
    json_t *defaults;          /* the run's, merged */
    rf_ingest_stats_t *stats;
} ingest_t;

static int bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* Find or create the run; merge command-line defaults over its stored ones. */
static int open_run(ingest_t *g, const json_t *cli_defaults, rf_err_t *err)
{
    sqlite3_stmt *st;
    int rc = rf_db_prepare(g->db, "SELECT run_id, defaults, status FROM runs WHERE name = ?1",
                           &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, g->run_name, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(st);
    bool found = step == SQLITE_ROW;
    json_t *stored = NULL;
    bool cancelled = false;
    if (found) {
        g->run_id = sqlite3_column_int64(st, 0);
        const char *text = (const char *)sqlite3_column_text(st, 1);
        stored = json_loads(text ? text : "{}", 0, NULL);
        cancelled = strcmp((const char *)sqlite3_column_text(st, 2), "cancelled") == 0;
    }
    rf_db_done(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return rf_db_error(g->db, step, "find run", err);
    if (cancelled) {
        json_decref(stored);
        return rf_err_set(err, RF_EUSAGE, "run '%s' is cancelled; submit to a new run name",
                          g->run_name);
    }
    if (found && !json_is_object(stored)) {
        json_decref(stored);
        return rf_err_set(err, RF_EFORMAT, "run '%s': runs.defaults is not a JSON object",
                          g->run_name);
    }
    g->defaults = found ? stored : json_object();
    if (g->defaults == NULL)
        return -ENOMEM;
    char *old_text = json_dumps(g->defaults, DUMP_FLAGS);
    if (cli_defaults && json_object_update(g->defaults, (json_t *)cli_defaults) < 0) {
        free(old_text);
        return -ENOMEM;
    }
    char *text = json_dumps(g->defaults, DUMP_FLAGS);
    if (text == NULL || old_text == NULL) {
        free(old_text);
        free(text);
        return -ENOMEM;
    }
    bool changed = strcmp(text, old_text) != 0;
    free(old_text);
    if (!found) {
        rc = rf_db_prepare(g->db, "INSERT INTO runs (name, created_ms, defaults) "
                           "VALUES (?1, ?2, ?3)", &st, err);
        if (rc == 0) {
            sqlite3_bind_text(st, 1, g->run_name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 2, now_ms());
            sqlite3_bind_text(st, 3, text, -1, SQLITE_TRANSIENT);
            step = sqlite3_step(st);
            rf_db_done(st);
            rc = step == SQLITE_DONE ? 0 : rf_db_error(g->db, step, "create run", err);
            g->run_id = sqlite3_last_insert_rowid(rf_db_handle(g->db));
        }
    } else if (changed) {
        rc = rf_db_prepare(g->db, "UPDATE runs SET defaults = ?2 WHERE run_id = ?1", &st, err);
        if (rc == 0) {
            sqlite3_bind_int64(st, 1, g->run_id);
            sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
            step = sqlite3_step(st);
            rf_db_done(st);
            rc = step == SQLITE_DONE ? 0 : rf_db_error(g->db, step, "update run defaults", err);
        }
    }
    free(text);
    if (rc < 0)
        return rc;
    rc = rf_db_prepare(g->db, "SELECT EXISTS (SELECT 1 FROM rejected_lines WHERE run_id = ?1 "
                       "AND source_file = ?2)", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, g->run_id);
    sqlite3_bind_text(st, 2, g->source, -1, SQLITE_TRANSIENT);
    step = sqlite3_step(st);
    g->had_rejected = step == SQLITE_ROW && sqlite3_column_int(st, 0) != 0;
    rf_db_done(st);
    return step == SQLITE_ROW ? 0 : rf_db_error(g->db, step, "find rejected lines", err);
}

/* Copy at most REJECTED_LINE_BYTES of line, invalid UTF-8 bytes as '?', cut
 * on a character boundary. */
static char *cut_line(const char *line, size_t len)
{
    char *out = malloc(REJECTED_LINE_BYTES + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)line;
    for (size_t i = 0; i < len;) {
        size_t k = s[i] < 0x80 ? 1 : s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : s[i] >= 0xc2 ? 2 : 0;
        bool ok = k > 0 && s[i] <= 0xf4 && i + k <= len;
        for (size_t j = 1; ok && j < k; j++)
            ok = (s[i + j] & 0xc0) == 0x80;
        if (ok && k >= 3 && ((s[i] == 0xe0 && s[i + 1] < 0xa0) || (s[i] == 0xed && s[i + 1] > 0x9f) ||
                             (s[i] == 0xf0 && s[i + 1] < 0x90) || (s[i] == 0xf4 && s[i + 1] > 0x8f)))
            ok = false;
        if (!ok)
            k = 1;
        if (o + k > REJECTED_LINE_BYTES)
            break;
        if (ok && s[i] != 0)
            memcpy(out + o, s + i, k);
        else
            out[o] = '?';
        o += k;
        i += k;
    }
    out[o] = '\0';
    return out;
}

/* Record line line_no (cut: its first 4 KiB, from cut_line) as rejected. */
static int reject(ingest_t *g, int64_t line_no, const char *custom_id, const char *reason,
                  const char *cut, rf_err_t *err)
{
    rf_ingest_stats_t *s = g->stats;
    s->rejected++;
    if (s->n_reasons < RF_INGEST_MAX_REASONS) {
        s->reason_line[s->n_reasons] = line_no;
        snprintf(s->reason[s->n_reasons], sizeof s->reason[0], "%s", reason);
        s->n_reasons++;
    }
    sqlite3_stmt *st;
    int rc = rf_db_prepare(g->db, "INSERT INTO rejected_lines (run_id, source_file, source_line, "
                           "custom_id, reason, line, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                           "ON CONFLICT (run_id, source_file, source_line) DO UPDATE SET "
                           "custom_id = excluded.custom_id, reason = excluded.reason, "
                           "line = excluded.line", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, g->run_id);
    sqlite3_bind_text(st, 2, g->source, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, line_no);
    bind_text_or_null(st, 4, custom_id);
    sqlite3_bind_text(st, 5, reason, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, cut, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 7, now_ms());
    int step = sqlite3_step(st);
    rf_db_done(st);
    return step == SQLITE_DONE ? 0 : rf_db_error(g->db, step, "record rejected line", err);
}

static int forget_rejection(ingest_t *g, int64_t line_no, rf_err_t *err)
{
    if (!g->had_rejected)
        return 0;
    sqlite3_stmt *st;
    int rc = rf_db_prepare(g->db, "DELETE FROM rejected_lines WHERE run_id = ?1 AND "
                           "source_file = ?2 AND source_line = ?3", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, g->run_id);
    sqlite3_bind_text(st, 2, g->source, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, line_no);
    int step = sqlite3_step(st);
    rf_db_done(st);
    return step == SQLITE_DONE ? 0 : rf_db_error(g->db, step, "clear old rejection", err);
}

/* Insert job (line line_no); design note 2. */
static int insert_job(ingest_t *g, int64_t line_no, const rf_ingest_job_t *job, const char *cut,
                      rf_err_t *err)
{
    sqlite3_stmt *st;
    int rc = rf_db_prepare(g->db, "INSERT INTO jobs (run_id, custom_id, kind, input, params, "
                           "metadata, source_file, source_line, input_hash, priority, "
                           "not_before_ms, max_attempts, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, "
                           "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
                           "ON CONFLICT (run_id, custom_id) DO NOTHING", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, g->run_id);
    sqlite3_bind_text(st, 2, job->custom_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, job->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, job->input, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, job->params, -1, SQLITE_STATIC);
    bind_text_or_null(st, 6, job->metadata);
    sqlite3_bind_text(st, 7, g->source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, line_no);
    sqlite3_bind_text(st, 9, job->input_hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, job->priority);
    sqlite3_bind_int64(st, 11, job->not_before_ms);
    sqlite3_bind_int64(st, 12, job->max_attempts);
    sqlite3_bind_int64(st, 13, now_ms());
    int step = sqlite3_step(st);
    rf_db_done(st);
    if (step != SQLITE_DONE)
        return rf_db_error(g->db, step, "insert job", err);
    if (sqlite3_changes(rf_db_handle(g->db)) > 0) {
        g->stats->accepted++;
        return forget_rejection(g, line_no, err);
    }
    rc = rf_db_prepare(g->db, "SELECT input_hash, source_file, source_line FROM jobs "
                       "WHERE run_id = ?1 AND custom_id = ?2", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, g->run_id);
    sqlite3_bind_text(st, 2, job->custom_id, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        rf_db_done(st);
        return rf_db_error(g->db, step, "find job", err);
    }
    if (strcmp((const char *)sqlite3_column_text(st, 0), job->input_hash) == 0) {
        rf_db_done(st);
        g->stats->present++;
        return forget_rejection(g, line_no, err);
    }
    char where[160] = "";
    const char *file = (const char *)sqlite3_column_text(st, 1);
    if (file != NULL && strcmp(file, g->source) == 0)
        snprintf(where, sizeof where, " (line %lld)", (long long)sqlite3_column_int64(st, 2));
    else if (file != NULL)
        snprintf(where, sizeof where, " (from another file, line %lld)",
                 (long long)sqlite3_column_int64(st, 2));
    char reason[1024];
    snprintf(reason, sizeof reason, "duplicate custom_id '%.512s': run '%.200s' already has a "
             "job with this id and different content%s", job->custom_id, g->run_name, where);
    rf_db_done(st);
    return reject(g, line_no, job->custom_id, reason, cut, err);
}

/* A line waiting for its transaction: a job, or a rejection (reason set). */
typedef struct pending {
    int64_t line_no;
    rf_ingest_job_t job;   /* job.input set: insert it; custom_id also kept for rejections */
    char *reason;          /* rejected with this reason */
    char *cut;             /* the line's first 4 KiB, for rejected_lines.line */
} pending_t;

static void pending_free(pending_t *p)
{
    rf_ingest_job_free(&p->job);
    free(p->reason);
    free(p->cut);
    memset(p, 0, sizeof *p);
}

/* Insert batch[0..n) in one transaction (design note 5) and free it. */
static int flush(ingest_t *g, pending_t *batch, size_t n, rf_err_t *err)
{
    int rc = n > 0 ? rf_db_begin(g->db, err) : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        pending_t *p = &batch[i];
        rc = p->reason ? reject(g, p->line_no, p->job.custom_id, p->reason, p->cut, err)
                       : insert_job(g, p->line_no, &p->job, p->cut, err);
    }
    if (n > 0)
        rc = rc == 0 ? rf_db_commit(g->db, err) : (rf_db_rollback(g->db), rc);
    for (size_t i = 0; i < n; i++)
        pending_free(&batch[i]);
    return rc;
}

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

static void progress(const ingest_t *g, const line_reader_t *r, uint64_t total, bool final)
{
    bool tty = isatty(STDERR_FILENO);
    char size[64] = "";
    if (total > 0)
        snprintf(size, sizeof size, " (%.1f of %.1f MB, %.0f%%)", r->offset / 1e6, total / 1e6,
                 100.0 * (double)r->offset / (double)total);
    fprintf(stderr, "%srocmforge: submit: %lld lines%s: %lld accepted, %lld already present, "
            "%lld rejected%s", tty ? "\r" : "", (long long)g->stats->lines, size,
            (long long)g->stats->accepted, (long long)g->stats->present,
            (long long)g->stats->rejected, tty && !final ? "\033[K" : "\n");
    fflush(stderr);
}

int rf_ingest_file(rf_db_t *db, const char *path, const rf_ingest_options_t *opt,
                   rf_ingest_stats_t *stats, rf_err_t *err)
{
    memset(stats, 0, sizeof *stats);
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (f == NULL)
        return rf_err_set(err, -errno, "%s: %s", path, strerror(errno));
    /* The stored name is absolute, so (run, file, line) means the same file
     * whatever directory submit runs from. */
    char *real = is_stdin ? NULL : realpath(path, NULL);
    ingest_t g = {.db = db, .run_name = opt->run_name, .stats = stats,
                  .source = is_stdin ? "<stdin>" : real ? real : path};
    line_reader_t r = {.f = f, .block = malloc(READ_BLOCK),
                       .max = opt->max_line_bytes ? opt->max_line_bytes : RF_INGEST_MAX_LINE};
    size_t chunk = opt->chunk_lines ? opt->chunk_lines : RF_INGEST_CHUNK;
    pending_t *batch = calloc(chunk, sizeof *batch);
    size_t n_batch = 0, batch_bytes = 0;
    struct stat sb;
    uint64_t total = !is_stdin && fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode)
                     ? (uint64_t)sb.st_size : 0;
    int rc = r.block && batch ? rf_db_begin(db, err) : rf_err_set(err, -ENOMEM, "out of memory");
    if (rc == 0) {
        rc = open_run(&g, opt->defaults, err);
        rc = rc == 0 ? rf_db_commit(db, err) : (rf_db_rollback(db), rc);
    }
    stats->run_id = g.run_id;
    int64_t last_progress = now_ms(), started = last_progress;
    bool progressed = false;
    rf_err_t line_err;
    while (rc == 0) {
        int got = read_line(&r);
        if (got < 0) {
            rc = rf_err_set(err, got, "%s: read failed after line %lld: %s", path,
                            (long long)stats->lines, rf_strerror(got));
            break;
        }
        if (got > 0) {
            int64_t line_no = ++stats->lines;
            const char *text = r.line ? r.line : "";
            size_t len = r.len;
            if (line_no == 1 && len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
                text += 3; /* a UTF-8 byte order mark */
                len -= 3;
            }
            if (r.full_len <= r.max && is_blank(text, len)) {
                stats->blank++;
                continue;
            }
            pending_t *p = &batch[n_batch++];
            p->line_no = line_no;
            p->cut = cut_line(text, len);
            if (r.full_len > r.max) {
                char reason[160];
                snprintf(reason, sizeof reason, "line is %llu bytes, over the limit of %zu bytes",
                         (unsigned long long)r.full_len, r.max);
                p->reason = strdup(reason);
            } else {
                rf_err_clear(&line_err);
                int prc = rf_ingest_parse_line(text, len, g.defaults, &p->job, &line_err);
                if (prc < 0 && prc != -ENOMEM)
                    p->reason = strdup(line_err.msg);
                else if (prc == 0)
                    batch_bytes += strlen(p->job.input) + strlen(p->job.params);
                else
                    p->cut = (free(p->cut), NULL); /* reported as out of memory below */
            }
            if (p->cut == NULL || (p->job.input == NULL && p->reason == NULL)) {
                rc = rf_err_set(err, -ENOMEM, "%s line %lld: out of memory", path,
                                (long long)line_no);
                break;
            }
            batch_bytes += strlen(p->cut);
        }
        if (n_batch == chunk || batch_bytes >= BATCH_BYTES || (got == 0 && n_batch > 0)) {
            rc = flush(&g, batch, n_batch, err);
            n_batch = 0;
            batch_bytes = 0;
            int64_t now = now_ms();
            if (rc == 0 && opt->progress && now - started >= 1000 &&
                now - last_progress >= (isatty(STDERR_FILENO) ? 500 : 10000)) {
                progress(&g, &r, total, false);
                last_progress = now;
                progressed = true;
            }
        }
        if (got == 0)
            break;
    }
    if (rc == 0 && progressed)
        progress(&g, &r, total, true);
    for (size_t i = 0; i < n_batch; i++)
        pending_free(&batch[i]);
    free(batch);
    json_decref(g.defaults);
    free(r.line);
    free(r.block);
    free(real);
    if (!is_stdin)
        fclose(f);
    return rc;
}
