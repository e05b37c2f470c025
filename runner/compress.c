/* compress.c - zstd compression of results, with per-run dictionaries
 *
 * Every stored output is one zstd frame with a content size and a checksum,
 * so a reader can refuse an oversized frame before decoding it and a flipped
 * byte is reported as corruption instead of returned as text. Frames made
 * with a dictionary carry its id in the header; zstd_dicts.dict_id is that
 * same id, which is what lets rf_decompress (and the SQLite extension) find
 * the dictionary from the frame alone.
 *
 * Design notes
 * ------------
 * Invariants:
 *   1. A zstd_dicts row's dict_id equals ZDICT_getDictID(dict). Training
 *      checks it before inserting; loading checks it again and refuses a row
 *      that breaks it (RF_EFORMAT), since frames would decode to garbage.
 *   2. Dictionary ids are unique across runs. ZDICT derives the id from a
 *      hash of the dictionary's content, so two runs can collide; training
 *      then rebuilds the header with an explicit unused id
 *      (ZDICT_finalizeDictionary), keeping the trained content.
 *   3. A dictionary row is never changed once written (a newer one for the
 *      run is a new row), so the cache, keyed by id, never goes stale.
 *
 * Dictionary life:
 *   (none) --rf_compress_train--> stored --rf_compress--> used for new frames
 *   stored --a later rf_compress_train with more samples--> superseded (kept:
 *   older frames still name it)
 */
#include "compress.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zdict.h>
#include <zstd.h>
#include <zstd_errors.h>

/* ---------------------------------------------------------------- types */

enum {
    CACHE_MAX_DICTS = 64,             /* dictionaries held per compressor */
    SAMPLE_MAX_BYTES = 128 * 1024,    /* a training sample is cut to this */
    FIRST_CHUNK_MAX = 1 << 20,        /* output reserved before decoding proves it */
    ID_ATTEMPTS = 16,                 /* ids tried when the trained one is taken */
};

/* Ids below this are reserved by the zstd format (and 0 means "none"). */
#define DICT_ID_MIN 32768u
#define DICT_ID_MAX 0x7fffffffu

typedef struct dict_entry {
    uint32_t dict_id;
    void *dict;                  /* [dict_size] bytes, owned copy of the row */
    size_t dict_size;
    ZSTD_CDict *cdict;           /* made on first compression, or NULL */
    ZSTD_DDict *ddict;           /* made on first decompression, or NULL */
} dict_entry_t;

struct rf_compressor {
    sqlite3 *db;                 /* borrowed */
    int level;
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    sqlite3_stmt *newest_stmt;   /* the run's newest dictionary (per compression) */
    dict_entry_t cache[CACHE_MAX_DICTS]; /* [n_cached], oldest first */
    int n_cached;
};

/* ---------------------------------------------------------------- helpers */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Map an SQLite result code to a project code with a message naming what. */
static int sql_error(rf_compressor_t *c, int rc, const char *what, rf_err_t *err)
{
    int code;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        code = -EBUSY;
        break;
    case SQLITE_FULL:
        code = -ENOSPC;
        break;
    case SQLITE_IOERR:
        code = -EIO;
        break;
    case SQLITE_NOMEM:
        code = -ENOMEM;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        code = RF_EFORMAT;
        break;
    default:
        code = RF_EDB;
        break;
    }
    return rf_err_set(err, code, "compress: %s: %s (code %d)", what, sqlite3_errmsg(c->db), rc);
}

/* Make room for extra more bytes (and the NUL rf_bytes_t keeps) in b. */
static int reserve(rf_bytes_t *b, size_t extra)
{
    if (extra >= SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    if (b->cap - b->len > extra)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len <= extra)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

/* Undo a partial append: b back to len bytes, still NUL-terminated. */
static void truncate_to(rf_bytes_t *b, size_t len)
{
    b->len = len;
    if (b->data != NULL)
        b->data[len] = '\0';
}

static void entry_free(dict_entry_t *e)
{
    ZSTD_freeCDict(e->cdict);
    ZSTD_freeDDict(e->ddict);
    free(e->dict);
    memset(e, 0, sizeof *e);
}

static dict_entry_t *cache_find(rf_compressor_t *c, uint32_t dict_id)
{
    for (int i = 0; i < c->n_cached; i++)
        if (c->cache[i].dict_id == dict_id)
            return &c->cache[i];
    return NULL;
}

/* The dictionary dict_id, from the cache or the database. RF_ENOTFOUND when
 * no row has that id, RF_EFORMAT when the row's dictionary has another id. */
static int dict_get(rf_compressor_t *c, uint32_t dict_id, dict_entry_t **out, rf_err_t *err)
{
    dict_entry_t *e = cache_find(c, dict_id);
    if (e != NULL) {
        *out = e;
        return 0;
    }
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(c->db, "SELECT dict FROM zstd_dicts WHERE dict_id = ?", -1,
                                &stmt, NULL);
    if (rc != SQLITE_OK)
        return sql_error(c, rc, "look up a dictionary", err);
    sqlite3_bind_int64(stmt, 1, dict_id);
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(stmt);
        if (rc != SQLITE_DONE)
            return sql_error(c, rc, "look up a dictionary", err);
        return rf_err_set(err, RF_ENOTFOUND,
                          "compress: the frame names zstd dictionary %u, which is not in "
                          "zstd_dicts of this database (was it copied without its dictionaries?)",
                          dict_id);
    }
    const void *blob = sqlite3_column_blob(stmt, 0);
    size_t size = (size_t)sqlite3_column_bytes(stmt, 0);
    if (blob == NULL || ZDICT_getDictID(blob, size) != dict_id) {
        sqlite3_finalize(stmt);
        return rf_err_set(err, RF_EFORMAT,
                          "compress: zstd_dicts row %u holds %s; the row is damaged", dict_id,
                          blob == NULL ? "no dictionary" : "a dictionary with another id");
    }
    void *copy = malloc(size);
    if (copy == NULL) {
        sqlite3_finalize(stmt);
        return rf_err_set(err, -ENOMEM, "compress: out of memory loading dictionary %u", dict_id);
    }
    memcpy(copy, blob, size);
    sqlite3_finalize(stmt);

    if (c->n_cached == CACHE_MAX_DICTS) {
        entry_free(&c->cache[0]);
        memmove(&c->cache[0], &c->cache[1], sizeof c->cache[0] * (CACHE_MAX_DICTS - 1));
        c->n_cached--;
    }
    e = &c->cache[c->n_cached++];
    *e = (dict_entry_t){.dict_id = dict_id, .dict = copy, .dict_size = size};
    *out = e;
    return 0;
}

/* The id of run_id's newest dictionary in *dict_id, 0 when it has none. */
static int newest_dict(rf_compressor_t *c, int64_t run_id, uint32_t *dict_id, rf_err_t *err)
{
    if (c->newest_stmt == NULL) {
        int rc = sqlite3_prepare_v3(c->db,
                                    "SELECT dict_id FROM zstd_dicts WHERE run_id = ? "
                                    "ORDER BY n_samples DESC, created_ms DESC LIMIT 1",
                                    -1, SQLITE_PREPARE_PERSISTENT, &c->newest_stmt, NULL);
        if (rc != SQLITE_OK)
            return sql_error(c, rc, "find the run's dictionary", err);
    }
    sqlite3_stmt *stmt = c->newest_stmt;
    sqlite3_bind_int64(stmt, 1, run_id);
    int rc = sqlite3_step(stmt);
    *dict_id = rc == SQLITE_ROW ? (uint32_t)sqlite3_column_int64(stmt, 0) : 0;
    sqlite3_reset(stmt); /* a statement left open would hold a read snapshot */
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sql_error(c, rc, "find the run's dictionary", err);
    return 0;
}

/* ---------------------------------------------------------------- open/close */

int rf_compressor_open(rf_compressor_t **out, struct sqlite3 *db, int level, rf_err_t *err)
{
    *out = NULL;
    if (level == 0)
        level = 3;
    if (level < 1 || level > 19)
        return rf_err_set(err, RF_ERANGE, "compress: level %d is not in 1..19", level);
    rf_compressor_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return rf_err_set(err, -ENOMEM, "compress: out of memory");
    c->db = db;
    c->level = level;
    c->cctx = ZSTD_createCCtx();
    c->dctx = ZSTD_createDCtx();
    if (c->cctx == NULL || c->dctx == NULL) {
        rf_compressor_close(c);
        return rf_err_set(err, -ENOMEM, "compress: out of memory creating zstd contexts");
    }
    *out = c;
    return 0;
}

void rf_compressor_close(rf_compressor_t *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->n_cached; i++)
        entry_free(&c->cache[i]);
    sqlite3_finalize(c->newest_stmt);
    ZSTD_freeCCtx(c->cctx);
    ZSTD_freeDCtx(c->dctx);
    free(c);
}

/* ---------------------------------------------------------------- compress */

int rf_compress(rf_compressor_t *c, int64_t run_id, const void *data, size_t len,
                rf_bytes_t *out, uint32_t *dict_id, rf_err_t *err)
{
    uint32_t id = 0;
    if (dict_id != NULL)
        *dict_id = 0;
    if (run_id >= 0) {
        int rc = newest_dict(c, run_id, &id, err);
        if (rc != 0)
            return rc;
    }
    ZSTD_CDict *cdict = NULL;
    if (id != 0) {
        dict_entry_t *e = NULL;
        int rc = dict_get(c, id, &e, err);
        if (rc != 0)
            return rc;
        if (e->cdict == NULL)
            e->cdict = ZSTD_createCDict(e->dict, e->dict_size, c->level);
        if (e->cdict == NULL)
            return rf_err_set(err, -ENOMEM, "compress: cannot prepare dictionary %u", id);
        cdict = e->cdict;
    }

    size_t bound = ZSTD_compressBound(len);
    if (ZSTD_isError(bound) || reserve(out, bound) != 0)
        return rf_err_set(err, -ENOMEM, "compress: no room for %zu bytes of output", bound);
    ZSTD_CCtx_reset(c->cctx, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, c->level);
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_contentSizeFlag, 1);
    if (cdict != NULL)
        ZSTD_CCtx_refCDict(c->cctx, cdict);
    size_t n = ZSTD_compress2(c->cctx, out->data + out->len, bound, data, len);
    if (ZSTD_isError(n))
        return rf_err_set(err, RF_EFORMAT, "compress: zstd: %s (%zu bytes in)",
                          ZSTD_getErrorName(n), len);
    out->len += n;
    out->data[out->len] = '\0';
    if (dict_id != NULL)
        *dict_id = id;
    return 0;
}

int rf_compress_run_dict(rf_compressor_t *c, int64_t run_id, uint32_t *dict_id, void **dict,
                         size_t *dict_size, rf_err_t *err)
{
    *dict_id = 0;
    *dict = NULL;
    *dict_size = 0;
    uint32_t id = 0;
    int rc = newest_dict(c, run_id, &id, err);
    if (rc != 0 || id == 0)
        return rc;
    dict_entry_t *e = NULL;
    rc = dict_get(c, id, &e, err);
    if (rc != 0)
        return rc;
    void *copy = malloc(e->dict_size);
    if (copy == NULL)
        return rf_err_set(err, -ENOMEM, "compress: no room to copy dictionary %u", id);
    memcpy(copy, e->dict, e->dict_size);
    *dict_id = id;
    *dict = copy;
    *dict_size = e->dict_size;
    return 0;
}

int rf_compress_frame(const ZSTD_CDict *cdict, int level, const void *data, size_t len,
                      rf_bytes_t *out, rf_err_t *err)
{
    size_t bound = ZSTD_compressBound(len);
    if (ZSTD_isError(bound) || reserve(out, bound) != 0)
        return rf_err_set(err, -ENOMEM, "compress: no room for %zu bytes of output", bound);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    if (cctx == NULL)
        return rf_err_set(err, -ENOMEM, "compress: cannot create a zstd context");
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level > 0 ? level : 3);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
    if (cdict != NULL)
        ZSTD_CCtx_refCDict(cctx, cdict);
    size_t n = ZSTD_compress2(cctx, out->data + out->len, bound, data, len);
    ZSTD_freeCCtx(cctx);
    if (ZSTD_isError(n))
        return rf_err_set(err, RF_EFORMAT, "compress: zstd: %s (%zu bytes in)",
                          ZSTD_getErrorName(n), len);
    out->len += n;
    out->data[out->len] = '\0';
    return 0;
}

/* ---------------------------------------------------------------- decompress */

int rf_decompress(rf_compressor_t *c, const void *frame, size_t len, size_t max_size,
                  rf_bytes_t *out, rf_err_t *err)
{
    if (max_size > SIZE_MAX / 4)
        max_size = SIZE_MAX / 4; /* no buffer gets that large; keeps max_size + 1 finite */
    unsigned long long content = ZSTD_getFrameContentSize(frame, len);
    if (content == ZSTD_CONTENTSIZE_ERROR)
        return rf_err_set(err, RF_EFORMAT,
                          "decompress: %zu bytes are not a zstd frame (bad or truncated header)",
                          len);
    if (content != ZSTD_CONTENTSIZE_UNKNOWN && content > max_size)
        return rf_err_set(err, RF_EFORMAT,
                          "decompress: the frame declares %llu bytes, more than the limit of %zu",
                          content, max_size);
    size_t frame_size = ZSTD_findFrameCompressedSize(frame, len);
    if (ZSTD_isError(frame_size) || frame_size != len)
        return rf_err_set(err, RF_EFORMAT, "decompress: %zu bytes are not one whole zstd frame (%s)",
                          len, ZSTD_isError(frame_size) ? ZSTD_getErrorName(frame_size)
                                                        : "trailing bytes after it");

    ZSTD_DCtx_reset(c->dctx, ZSTD_reset_session_and_parameters);
    uint32_t id = ZSTD_getDictID_fromFrame(frame, len);
    if (id != 0) {
        dict_entry_t *e = NULL;
        int rc = dict_get(c, id, &e, err);
        if (rc != 0)
            return rc;
        if (e->ddict == NULL)
            e->ddict = ZSTD_createDDict(e->dict, e->dict_size);
        if (e->ddict == NULL)
            return rf_err_set(err, -ENOMEM, "decompress: cannot prepare dictionary %u", id);
        ZSTD_DCtx_refDDict(c->dctx, e->ddict);
    }

    /* Stream into out, never producing more than max_size + 1 bytes: a frame
     * without a declared size (made by a streaming writer) is bounded too, and
     * one that declares a large size gets its memory as it delivers bytes. */
    size_t start = out->len;
    size_t produced = 0;
    size_t step = content != ZSTD_CONTENTSIZE_UNKNOWN ? (size_t)content + 1 : ZSTD_DStreamOutSize();
    if (step > FIRST_CHUNK_MAX)
        step = FIRST_CHUNK_MAX;
    ZSTD_inBuffer in = {frame, len, 0};
    for (;;) {
        size_t room = max_size - produced + 1;
        if (step < room)
            room = step;
        if (reserve(out, room) != 0) {
            truncate_to(out, start);
            return rf_err_set(err, -ENOMEM, "decompress: out of memory (%zu bytes so far)",
                              produced);
        }
        ZSTD_outBuffer o = {out->data + out->len, room, 0};
        size_t ret = ZSTD_decompressStream(c->dctx, &o, &in);
        out->len += o.pos;
        produced += o.pos;
        if (ZSTD_isError(ret)) {
            truncate_to(out, start);
            return rf_err_set(err, RF_EFORMAT, "decompress: corrupt zstd frame: %s",
                              ZSTD_getErrorName(ret));
        }
        if (produced > max_size) {
            truncate_to(out, start);
            return rf_err_set(err, RF_EFORMAT,
                              "decompress: the frame holds more than the limit of %zu bytes",
                              max_size);
        }
        if (ret == 0)
            break;
        if (in.pos == in.size && o.pos < o.size) {
            truncate_to(out, start);
            return rf_err_set(err, RF_EFORMAT, "decompress: the zstd frame is truncated");
        }
    }
    if (content != ZSTD_CONTENTSIZE_UNKNOWN && produced != content) {
        truncate_to(out, start);
        return rf_err_set(err, RF_EFORMAT,
                          "decompress: the frame declares %llu bytes but holds %zu", content,
                          produced);
    }
    if (reserve(out, 0) != 0) {
        truncate_to(out, start);
        return rf_err_set(err, -ENOMEM, "decompress: out of memory");
    }
    out->data[out->len] = '\0';
    return 0;
}

/* ---------------------------------------------------------------- training */

/* Insert the dictionary; on an id taken by another row, rebuild its header
 * with the next free id (invariant 2). The dictionary and its size may be
 * replaced by the rebuilt one. */
static int store_dict(rf_compressor_t *c, int64_t run_id, size_t n_samples, void **dict,
                      size_t *size, const void *samples, const size_t *sizes, rf_err_t *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(c->db,
                                "INSERT INTO zstd_dicts (dict_id, run_id, created_ms, n_samples, "
                                "dict) VALUES (?, ?, ?, ?, ?)",
                                -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return sql_error(c, rc, "store a dictionary", err);
    uint32_t id = ZDICT_getDictID(*dict, *size);
    for (int attempt = 0;; attempt++) {
        sqlite3_reset(stmt);
        sqlite3_bind_int64(stmt, 1, id);
        sqlite3_bind_int64(stmt, 2, run_id);
        sqlite3_bind_int64(stmt, 3, wall_ms());
        sqlite3_bind_int64(stmt, 4, (int64_t)n_samples);
        sqlite3_bind_blob64(stmt, 5, *dict, *size, SQLITE_STATIC);
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_DONE)
            break;
        if (sqlite3_extended_errcode(c->db) != SQLITE_CONSTRAINT_PRIMARYKEY) {
            int code = sql_error(c, rc, "store a dictionary", err);
            sqlite3_finalize(stmt);
            return code;
        }
        if (attempt == ID_ATTEMPTS) {
            sqlite3_finalize(stmt);
            return rf_err_set(err, RF_EDB,
                              "compress: run %lld: %d dictionary ids after %u are taken in "
                              "zstd_dicts; delete unused dictionaries",
                              (long long)run_id, ID_ATTEMPTS, ZDICT_getDictID(*dict, *size));
        }
        /* Another run's dictionary has this id: same content, new header. */
        id = id >= DICT_ID_MAX ? DICT_ID_MIN : id + 1;
        size_t header = ZDICT_getDictHeaderSize(*dict, *size);
        if (ZDICT_isError(header) || header >= *size) {
            sqlite3_finalize(stmt);
            return rf_err_set(err, RF_EFORMAT, "compress: the trained dictionary has no header");
        }
        size_t content_size = *size - header;
        void *content = malloc(content_size);
        void *fresh = malloc(*size + 1024);
        if (content == NULL || fresh == NULL) {
            free(content);
            free(fresh);
            sqlite3_finalize(stmt);
            return rf_err_set(err, -ENOMEM, "compress: out of memory rebuilding a dictionary");
        }
        memcpy(content, (const char *)*dict + header, content_size);
        ZDICT_params_t params = {.compressionLevel = c->level, .dictID = id};
        size_t n = ZDICT_finalizeDictionary(fresh, *size + 1024, content, content_size, samples,
                                            sizes, (unsigned)n_samples, params);
        free(content);
        if (ZDICT_isError(n) || ZDICT_getDictID(fresh, n) != id) {
            free(fresh);
            sqlite3_finalize(stmt);
            return rf_err_set(err, RF_EFORMAT,
                              "compress: run %lld: rebuilding the dictionary with id %u: %s",
                              (long long)run_id, id,
                              ZDICT_isError(n) ? ZDICT_getErrorName(n) : "id not applied");
        }
        free(*dict);
        *dict = fresh;
        *size = n;
    }
    sqlite3_finalize(stmt);
    return 0;
}

int rf_compress_train(rf_compressor_t *c, int64_t run_id, size_t min_samples,
                      size_t max_samples, size_t dict_size, rf_err_t *err)
{
    if (min_samples < 1 || max_samples < min_samples || max_samples > UINT_MAX ||
        dict_size < 1024)
        return rf_err_set(err, RF_ERANGE,
                          "compress: train run %lld: need 1 <= min_samples (%zu) <= max_samples "
                          "(%zu) and dict_size (%zu) >= 1024",
                          (long long)run_id, min_samples, max_samples, dict_size);

    /* How many results the run has, and the most samples a dictionary of it
     * was trained from. */
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(c->db,
                                "SELECT (SELECT count(*) FROM results JOIN jobs USING (job_id) "
                                "        WHERE jobs.run_id = ?1), "
                                "       (SELECT coalesce(max(n_samples), 0) FROM zstd_dicts "
                                "        WHERE run_id = ?1)",
                                -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return sql_error(c, rc, "count the run's results", err);
    sqlite3_bind_int64(stmt, 1, run_id);
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) {
        int code = sql_error(c, rc, "count the run's results", err);
        sqlite3_finalize(stmt);
        return code;
    }
    int64_t n_results = sqlite3_column_int64(stmt, 0);
    int64_t trained_from = sqlite3_column_int64(stmt, 1);
    sqlite3_finalize(stmt);
    if (n_results < (int64_t)min_samples)
        return 1;
    size_t n_wanted = (uint64_t)n_results < max_samples ? (size_t)n_results : max_samples;
    if (trained_from >= (int64_t)n_wanted)
        return 1;

    /* Gather the samples: the run's first n_wanted outputs, decompressed. */
    rc = sqlite3_prepare_v2(c->db,
                            "SELECT output FROM results JOIN jobs USING (job_id) "
                            "WHERE jobs.run_id = ? ORDER BY job_id, sample LIMIT ?",
                            -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return sql_error(c, rc, "read the run's results", err);
    sqlite3_bind_int64(stmt, 1, run_id);
    sqlite3_bind_int64(stmt, 2, (int64_t)n_wanted);
    rf_bytes_t samples = {0};
    rf_bytes_t one = {0};
    size_t *sizes = calloc(n_wanted, sizeof *sizes);
    size_t n_samples = 0;
    if (sizes == NULL) {
        sqlite3_finalize(stmt);
        return rf_err_set(err, -ENOMEM, "compress: out of memory");
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW && n_samples < n_wanted) {
        one.len = 0;
        int drc = rf_decompress(c, sqlite3_column_blob(stmt, 0),
                                (size_t)sqlite3_column_bytes(stmt, 0), RF_TOKENIZER_MAX_TEXT,
                                &one, err);
        if (drc == 0) {
            size_t n = one.len < SAMPLE_MAX_BYTES ? one.len : SAMPLE_MAX_BYTES;
            drc = rf_bytes_append(&samples, one.data, n);
            sizes[n_samples++] = n;
        }
        if (drc != 0) {
            sqlite3_finalize(stmt);
            rf_bytes_free(&one);
            rf_bytes_free(&samples);
            free(sizes);
            return rf_err_set(err, drc, "compress: train run %lld: reading a sample failed",
                              (long long)run_id);
        }
    }
    sqlite3_finalize(stmt);
    rf_bytes_free(&one);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rf_bytes_free(&samples);
        free(sizes);
        return sql_error(c, rc, "read the run's results", err);
    }

    void *dict = malloc(dict_size);
    if (dict == NULL) {
        rf_bytes_free(&samples);
        free(sizes);
        return rf_err_set(err, -ENOMEM, "compress: out of memory");
    }
    size_t n = ZDICT_trainFromBuffer(dict, dict_size, samples.data, sizes, (unsigned)n_samples);
    if (ZDICT_isError(n)) {
        rf_bytes_free(&samples);
        free(sizes);
        free(dict);
        /* Too little text to learn from is "not yet", not a failure. */
        if (ZSTD_getErrorCode(n) == ZSTD_error_srcSize_wrong)
            return 1;
        return rf_err_set(err, RF_EFORMAT,
                          "compress: train run %lld on %zu samples: %s (the outputs may be too "
                          "uniform or too short for a dictionary)",
                          (long long)run_id, n_samples, ZDICT_getErrorName(n));
    }
    rc = store_dict(c, run_id, n_samples, &dict, &n, samples.data, sizes, err);
    rf_bytes_free(&samples);
    free(sizes);
    free(dict);
    return rc;
}
