/* sqlite_ext.c - the rocmforge SQLite extension: rf_decompress() and views
 *
 * Built as librocmforge_sqlite.so and loaded into any SQLite host (the
 * sqlite3 shell: `.load ./build/librocmforge_sqlite`). SQLite derives the
 * entry point, sqlite3_rocmforgesqlite_init, from the file name: the letters
 * after "lib" up to the first dot, lower-cased.
 *
 * rf_decompress(blob) turns one stored zstd frame (results.output,
 * results.logprobs) back into TEXT. A frame that names a dictionary is
 * decoded with the zstd_dicts row of that id, read through the calling
 * connection. NULL gives NULL; anything that is not one whole, intact zstd
 * frame no larger than SQLite's string limit is an SQL error.
 *
 * On load, when the database holds a rocmforge schema, two TEMP views are
 * made for this connection: results_text (readable results) and
 * jobs_overview (jobs with their metrics).
 *
 * The extension depends on SQLite's extension API and zstd only, so the
 * shell needs neither the engine nor the runner. It repeats the few lines
 * of frame checking that runner/compress.c has rather than link the runner.
 */
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include <stdint.h>
#include <string.h>
#include <zstd.h>

/* ---------------------------------------------------------------- types */

enum {
    CACHE_MAX_DICTS = 16,
    FIRST_CHUNK_MAX = 1 << 20,   /* output allocated before decoding proves it */
};

/* Per connection (the user data of rf_decompress). Dictionary rows are
 * never changed once written, so entries keyed by id do not go stale. */
typedef struct ext_state {
    ZSTD_DCtx *dctx;
    struct {
        unsigned dict_id;
        ZSTD_DDict *ddict;
    } cache[CACHE_MAX_DICTS];    /* [n_cached], oldest first */
    int n_cached;
} ext_state_t;

/* ---------------------------------------------------------------- helpers */

static void state_free(void *p)
{
    ext_state_t *s = p;
    if (s == NULL)
        return;
    for (int i = 0; i < s->n_cached; i++)
        ZSTD_freeDDict(s->cache[i].ddict);
    ZSTD_freeDCtx(s->dctx);
    sqlite3_free(s);
}

/* The decoding dictionary dict_id, from the cache or zstd_dicts. On failure
 * the error is set on ctx and NULL returned. */
static ZSTD_DDict *dict_get(sqlite3_context *ctx, ext_state_t *s, unsigned dict_id)
{
    for (int i = 0; i < s->n_cached; i++)
        if (s->cache[i].dict_id == dict_id)
            return s->cache[i].ddict;

    sqlite3 *db = sqlite3_context_db_handle(ctx);
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT dict FROM zstd_dicts WHERE dict_id = ?", -1, &stmt,
                                NULL);
    if (rc != SQLITE_OK) {
        char *msg = sqlite3_mprintf("rf_decompress: looking up zstd dictionary %u: %s", dict_id,
                                    sqlite3_errmsg(db));
        sqlite3_result_error(ctx, msg ? msg : "rf_decompress: out of memory", -1);
        sqlite3_free(msg);
        return NULL;
    }
    sqlite3_bind_int64(stmt, 1, dict_id);
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) {
        char *msg = rc == SQLITE_DONE
            ? sqlite3_mprintf("rf_decompress: the frame names zstd dictionary %u, which is not "
                              "in zstd_dicts", dict_id)
            : sqlite3_mprintf("rf_decompress: reading zstd dictionary %u: %s", dict_id,
                              sqlite3_errmsg(db));
        sqlite3_finalize(stmt);
        sqlite3_result_error(ctx, msg ? msg : "rf_decompress: out of memory", -1);
        sqlite3_free(msg);
        return NULL;
    }
    ZSTD_DDict *ddict = ZSTD_createDDict(sqlite3_column_blob(stmt, 0),
                                         (size_t)sqlite3_column_bytes(stmt, 0));
    unsigned got = ddict != NULL ? ZSTD_getDictID_fromDDict(ddict) : 0;
    sqlite3_finalize(stmt);
    if (ddict == NULL || got != dict_id) {
        ZSTD_freeDDict(ddict);
        char *msg = sqlite3_mprintf("rf_decompress: zstd_dicts row %u does not hold dictionary "
                                    "%u; the row is damaged", dict_id, dict_id);
        sqlite3_result_error(ctx, msg ? msg : "rf_decompress: out of memory", -1);
        sqlite3_free(msg);
        return NULL;
    }
    if (s->n_cached == CACHE_MAX_DICTS) {
        ZSTD_freeDDict(s->cache[0].ddict);
        memmove(&s->cache[0], &s->cache[1], sizeof s->cache[0] * (CACHE_MAX_DICTS - 1));
        s->n_cached--;
    }
    s->cache[s->n_cached].dict_id = dict_id;
    s->cache[s->n_cached].ddict = ddict;
    s->n_cached++;
    return ddict;
}

/* ---------------------------------------------------------------- rf_decompress */

static void rf_decompress_func(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    ext_state_t *s = sqlite3_user_data(ctx);
    (void)argc;
    int type = sqlite3_value_type(argv[0]);
    if (type == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    if (type != SQLITE_BLOB) {
        sqlite3_result_error(ctx, "rf_decompress: expects a BLOB holding a zstd frame "
                                  "(results.output or results.logprobs)", -1);
        return;
    }
    const void *frame = sqlite3_value_blob(argv[0]);
    size_t len = (size_t)sqlite3_value_bytes(argv[0]);
    size_t max_size = (size_t)sqlite3_limit(sqlite3_context_db_handle(ctx), SQLITE_LIMIT_LENGTH, -1);

    unsigned long long content = ZSTD_getFrameContentSize(frame, len);
    size_t frame_size = ZSTD_findFrameCompressedSize(frame, len);
    if (content == ZSTD_CONTENTSIZE_ERROR || ZSTD_isError(frame_size) || frame_size != len) {
        sqlite3_result_error(ctx, "rf_decompress: not one whole zstd frame (corrupt or "
                                  "truncated blob)", -1);
        return;
    }
    if (content != ZSTD_CONTENTSIZE_UNKNOWN && content > max_size) {
        sqlite3_result_error_toobig(ctx);
        return;
    }

    ZSTD_DCtx_reset(s->dctx, ZSTD_reset_session_and_parameters);
    unsigned dict_id = ZSTD_getDictID_fromFrame(frame, len);
    if (dict_id != 0) {
        ZSTD_DDict *ddict = dict_get(ctx, s, dict_id);
        if (ddict == NULL)
            return;
        ZSTD_DCtx_refDDict(s->dctx, ddict);
    }

    /* Stream into a growing buffer, never past max_size + 1 bytes, so a
     * frame without a declared size is bounded as well. */
    size_t cap = content != ZSTD_CONTENTSIZE_UNKNOWN ? (size_t)content + 1 : ZSTD_DStreamOutSize();
    if (cap > FIRST_CHUNK_MAX)
        cap = FIRST_CHUNK_MAX;
    char *out = sqlite3_malloc64(cap);
    size_t produced = 0;
    ZSTD_inBuffer in = {frame, len, 0};
    for (;;) {
        if (out == NULL) {
            sqlite3_result_error_nomem(ctx);
            return;
        }
        size_t room = cap - produced;
        if (room > max_size + 1 - produced)
            room = max_size + 1 - produced;
        ZSTD_outBuffer o = {out + produced, room, 0};
        size_t ret = ZSTD_decompressStream(s->dctx, &o, &in);
        produced += o.pos;
        if (ZSTD_isError(ret)) {
            sqlite3_free(out);
            char *msg = sqlite3_mprintf("rf_decompress: corrupt zstd frame: %s",
                                        ZSTD_getErrorName(ret));
            sqlite3_result_error(ctx, msg ? msg : "rf_decompress: corrupt zstd frame", -1);
            sqlite3_free(msg);
            return;
        }
        if (produced > max_size) {
            sqlite3_free(out);
            sqlite3_result_error_toobig(ctx);
            return;
        }
        if (ret == 0)
            break;
        if (in.pos == in.size && o.pos < o.size) {
            sqlite3_free(out);
            sqlite3_result_error(ctx, "rf_decompress: truncated zstd frame", -1);
            return;
        }
        if (produced == cap) {
            cap *= 2;
            char *grown = sqlite3_realloc64(out, cap);
            if (grown == NULL)
                sqlite3_free(out);
            out = grown;
        }
    }
    if (content != ZSTD_CONTENTSIZE_UNKNOWN && produced != content) {
        sqlite3_free(out);
        sqlite3_result_error(ctx, "rf_decompress: the frame's size does not match its header",
                             -1);
        return;
    }
    sqlite3_result_text64(ctx, out, produced, sqlite3_free, SQLITE_UTF8);
}

/* ---------------------------------------------------------------- views */

static const char VIEWS_SQL[] =
    "CREATE TEMP VIEW IF NOT EXISTS results_text AS\n"
    "SELECT r.job_id, u.name AS run, j.custom_id, r.sample,\n"
    "       rf_decompress(r.output) AS output, r.finish_reason,\n"
    "       r.prompt_tokens, r.completion_tokens,\n"
    "       rf_decompress(r.logprobs) AS logprobs\n"
    "FROM main.results r JOIN main.jobs j ON j.job_id = r.job_id\n"
    "JOIN main.runs u ON u.run_id = j.run_id;\n"
    "CREATE TEMP VIEW IF NOT EXISTS jobs_overview AS\n"
    "SELECT j.job_id, u.name AS run, j.custom_id, j.state, j.attempts, j.error,\n"
    "       m.worker_id, m.queue_ms, m.ttft_ms, m.prefill_ms, m.decode_ms, m.e2e_ms,\n"
    "       m.prompt_tokens, m.completion_tokens, m.decode_tokens_per_s,\n"
    "       m.mean_batch_size, m.preemptions\n"
    "FROM main.jobs j JOIN main.runs u ON u.run_id = j.run_id\n"
    "LEFT JOIN main.job_metrics m ON m.job_id = j.job_id;\n";

/* 1 when the main database has the tables the views read. */
static int has_schema(sqlite3 *db)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND "
                           "name IN ('runs', 'jobs', 'results', 'job_metrics')",
                           -1, &stmt, NULL) != SQLITE_OK)
        return 0;
    int ok = sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_int(stmt, 0) == 4;
    sqlite3_finalize(stmt);
    return ok;
}

/* ---------------------------------------------------------------- entry point */

__attribute__((visibility("default"))) int
sqlite3_rocmforgesqlite_init(sqlite3 *db, char **err_msg, const sqlite3_api_routines *api);

int sqlite3_rocmforgesqlite_init(sqlite3 *db, char **err_msg, const sqlite3_api_routines *api)
{
    SQLITE_EXTENSION_INIT2(api);
    ext_state_t *s = sqlite3_malloc(sizeof *s);
    if (s == NULL)
        return SQLITE_NOMEM;
    memset(s, 0, sizeof *s);
    s->dctx = ZSTD_createDCtx();
    if (s->dctx == NULL) {
        sqlite3_free(s);
        return SQLITE_NOMEM;
    }
    /* On failure create_function_v2 calls state_free itself. */
    int rc = sqlite3_create_function_v2(db, "rf_decompress", 1, SQLITE_UTF8, s,
                                        rf_decompress_func, NULL, NULL, state_free);
    if (rc != SQLITE_OK)
        return rc;
    /* A database without the rocmforge tables (an empty shell, :memory:)
     * still gets the function; the views need the tables. */
    if (!has_schema(db))
        return SQLITE_OK;
    char *msg = NULL;
    rc = sqlite3_exec(db, VIEWS_SQL, NULL, NULL, &msg);
    if (rc != SQLITE_OK && err_msg != NULL)
        *err_msg = sqlite3_mprintf("rocmforge_sqlite: creating the TEMP views: %s",
                                   msg ? msg : "?");
    sqlite3_free(msg);
    return rc;
}
