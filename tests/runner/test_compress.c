/* test_compress.c - zstd result frames, per-run dictionaries, the SQLite extension
 *
 * Runs, jobs and results are inserted with plain SQL; outputs are compressed
 * with rf_compress as the result writer would. The extension tests load the
 * built librocmforge_sqlite.so (RF_SQLITE_EXT) into a second connection and
 * read the same rows back through SQL.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zdict.h>
#include <zstd.h>

#include "compress.h"
#include "db.h"

/* ---------------------------------------------------------------- helpers */

static const char *db_path(const char *name)
{
    static char buf[512];
    char side[600];
    snprintf(buf, sizeof buf, "%s/compress_%d_%s.db", RF_TMPDIR, (int)getpid(), name);
    unlink(buf);
    snprintf(side, sizeof side, "%s-wal", buf);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", buf);
    unlink(side);
    return buf;
}

static rf_db_t *open_new(const char *name)
{
    rf_db_t *db = NULL;
    rf_err_t err = {0};
    int rc = rf_db_open(&db, db_path(name), RF_DB_CREATE, &err);
    cr_assert_eq(rc, 0, "rf_db_open: %d %s", rc, err.msg);
    return db;
}

static rf_compressor_t *open_compressor(rf_db_t *db)
{
    rf_compressor_t *c = NULL;
    rf_err_t err = {0};
    int rc = rf_compressor_open(&c, rf_db_handle(db), 3, &err);
    cr_assert_eq(rc, 0, "rf_compressor_open: %d %s", rc, err.msg);
    return c;
}

static void exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
}

static int64_t query_i64(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

static int64_t add_run(rf_db_t *db, const char *name)
{
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO runs (name, created_ms) VALUES ('%s', 0)", name);
    exec_sql(rf_db_handle(db), sql);
    return sqlite3_last_insert_rowid(rf_db_handle(db));
}

/* A done job of run_id with one result whose output is text, compressed
 * with the run's dictionary when it has one. Returns the dictionary id used. */
static uint32_t add_result(rf_db_t *db, rf_compressor_t *c, int64_t run_id, const char *custom_id,
                           const char *text)
{
    sqlite3 *h = rf_db_handle(db);
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_prepare_v2(h,
                                    "INSERT INTO jobs (run_id, custom_id, kind, input, params, "
                                    "input_hash, state, created_ms) VALUES (?, ?, 'completion', "
                                    "'{\"prompt\":\"q\"}', '{}', 'h', 'done', 0)",
                                    -1, &stmt, NULL),
                 SQLITE_OK);
    sqlite3_bind_int64(stmt, 1, run_id);
    sqlite3_bind_text(stmt, 2, custom_id, -1, SQLITE_TRANSIENT);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_DONE, "%s", sqlite3_errmsg(h));
    sqlite3_finalize(stmt);
    int64_t job_id = sqlite3_last_insert_rowid(h);

    rf_bytes_t frame = {0};
    uint32_t dict_id = 0;
    rf_err_t err = {0};
    int rc = rf_compress(c, run_id, text, strlen(text), &frame, &dict_id, &err);
    cr_assert_eq(rc, 0, "rf_compress: %d %s", rc, err.msg);
    cr_assert_eq(sqlite3_prepare_v2(h,
                                    "INSERT INTO results (job_id, output, dict_id, output_bytes, "
                                    "finish_reason, prompt_tokens, completion_tokens, "
                                    "created_ms) VALUES (?, ?, ?, ?, 'stop', 3, 7, 0)",
                                    -1, &stmt, NULL),
                 SQLITE_OK);
    sqlite3_bind_int64(stmt, 1, job_id);
    sqlite3_bind_blob(stmt, 2, frame.data, (int)frame.len, SQLITE_TRANSIENT);
    if (dict_id != 0)
        sqlite3_bind_int64(stmt, 3, dict_id);
    sqlite3_bind_int64(stmt, 4, (int64_t)strlen(text));
    cr_assert_eq(sqlite3_step(stmt), SQLITE_DONE, "%s", sqlite3_errmsg(h));
    sqlite3_finalize(stmt);
    rf_bytes_free(&frame);
    return dict_id;
}

/* The i-th of a family of similar model outputs (~300 bytes): the shape a
 * batch of one prompt template gives, with varying numbers and words. */
static const char *sample_text(int i)
{
    static const char *subjects[] = {"the train", "a cyclist", "the river", "a recipe",
                                     "the invoice", "a satellite", "the library", "a garden"};
    static const char *verbs[] = {"travels", "needs", "covers", "holds", "returns", "uses"};
    static char buf[1024];
    unsigned x = (unsigned)i * 2654435761u + 12345u;
    int a = (int)(x % 97), b = (int)((x >> 8) % 89), n = (int)((x >> 16) % 7) + 2;
    snprintf(buf, sizeof buf,
             "To solve this, note that %s %s %d units in each of %d steps. "
             "Step 1: multiply %d by %d, which gives %d. "
             "Step 2: add the remaining %d units, giving a total of %d. "
             "Step 3: check the result against the question: %s %s %d units overall. "
             "Therefore, the final answer is %d.\n",
             subjects[x % 8], verbs[(x >> 4) % 6], a, n, a, n, a * n, b, a * n + b,
             subjects[x % 8], verbs[(x >> 4) % 6], a * n + b, a * n + b);
    return buf;
}

static void fill_run(rf_db_t *db, rf_compressor_t *c, int64_t run_id, int from, int to)
{
    char id[32];
    exec_sql(rf_db_handle(db), "BEGIN");
    for (int i = from; i < to; i++) {
        snprintf(id, sizeof id, "r%lld-%d", (long long)run_id, i);
        add_result(db, c, run_id, id, sample_text(i));
    }
    exec_sql(rf_db_handle(db), "COMMIT");
}

static void train(rf_compressor_t *c, int64_t run_id, int expect)
{
    rf_err_t err = {0};
    int rc = rf_compress_train(c, run_id, 100, 1000, 16 * 1024, &err);
    cr_assert_eq(rc, expect, "rf_compress_train: %d (wanted %d) %s", rc, expect, err.msg);
}

/* Compress then decompress text through c; asserts the round trip. */
static void assert_round_trip(rf_compressor_t *c, int64_t run_id, const char *text, size_t len,
                              uint32_t *dict_id)
{
    rf_bytes_t frame = {0}, back = {0};
    rf_err_t err = {0};
    int rc = rf_compress(c, run_id, text, len, &frame, dict_id, &err);
    cr_assert_eq(rc, 0, "rf_compress: %d %s", rc, err.msg);
    cr_assert_eq(ZSTD_getDictID_fromFrame(frame.data, frame.len), *dict_id);
    rc = rf_decompress(c, frame.data, frame.len, len, &back, &err);
    cr_assert_eq(rc, 0, "rf_decompress: %d %s", rc, err.msg);
    cr_assert_eq(back.len, len);
    cr_assert(len == 0 || memcmp(back.data, text, len) == 0, "round trip changed the text");
    cr_assert_eq(back.data[back.len], '\0');
    rf_bytes_free(&frame);
    rf_bytes_free(&back);
}

/* ---------------------------------------------------------------- round trips */

Test(compress, round_trip_without_dictionary)
{
    rf_db_t *db = open_new("plain");
    rf_compressor_t *c = open_compressor(db);
    uint32_t dict_id = 99;
    assert_round_trip(c, -1, "", 0, &dict_id);
    cr_assert_eq(dict_id, 0);
    const char *text = sample_text(1);
    assert_round_trip(c, -1, text, strlen(text), &dict_id);
    cr_assert_eq(dict_id, 0);
    /* A run without a dictionary compresses plainly too. */
    int64_t run = add_run(db, "r");
    assert_round_trip(c, run, text, strlen(text), &dict_id);
    cr_assert_eq(dict_id, 0);
    rf_compressor_close(c);
    rf_db_close(db);
}

Test(compress, round_trip_with_dictionary)
{
    rf_db_t *db = open_new("dict");
    rf_compressor_t *c = open_compressor(db);
    int64_t run = add_run(db, "r");
    fill_run(db, c, run, 0, 200);
    train(c, run, 0);
    int64_t stored = query_i64(rf_db_handle(db), "SELECT dict_id FROM zstd_dicts");
    cr_assert_eq(query_i64(rf_db_handle(db), "SELECT n_samples FROM zstd_dicts"), 200);

    uint32_t dict_id = 0;
    const char *text = sample_text(1000);
    assert_round_trip(c, run, text, strlen(text), &dict_id);
    cr_assert_eq((int64_t)dict_id, stored, "frames must name the stored dictionary id");
    cr_assert_geq(dict_id, 32768u);

    /* A fresh compressor (empty cache) finds the dictionary in the database. */
    rf_bytes_t frame = {0}, back = {0};
    rf_err_t err = {0};
    cr_assert_eq(rf_compress(c, run, text, strlen(text), &frame, &dict_id, &err), 0);
    rf_compressor_t *fresh = open_compressor(db);
    int rc = rf_decompress(fresh, frame.data, frame.len, 1 << 20, &back, &err);
    cr_assert_eq(rc, 0, "%d %s", rc, err.msg);
    cr_assert_str_eq(back.data, text);
    rf_bytes_free(&frame);
    rf_bytes_free(&back);
    rf_compressor_close(fresh);
    rf_compressor_close(c);
    rf_db_close(db);
}

/* ---------------------------------------------------------------- training */

Test(compress, dictionary_waits_for_enough_results)
{
    rf_db_t *db = open_new("wait");
    rf_compressor_t *c = open_compressor(db);
    int64_t run = add_run(db, "r");
    fill_run(db, c, run, 0, 99);
    train(c, run, 1);
    cr_assert_eq(query_i64(rf_db_handle(db), "SELECT count(*) FROM zstd_dicts"), 0);
    uint32_t dict_id = 7;
    const char *text = sample_text(5);
    assert_round_trip(c, run, text, strlen(text), &dict_id);
    cr_assert_eq(dict_id, 0, "no dictionary yet: plain frames");

    fill_run(db, c, run, 99, 100);
    train(c, run, 0);
    cr_assert_eq(query_i64(rf_db_handle(db), "SELECT count(*) FROM zstd_dicts"), 1);
    /* Nothing new to learn from: not trained again. */
    train(c, run, 1);
    cr_assert_eq(query_i64(rf_db_handle(db), "SELECT count(*) FROM zstd_dicts"), 1);
    /* More results: a newer dictionary from more samples, used from then on. */
    fill_run(db, c, run, 100, 300);
    train(c, run, 0);
    cr_assert_eq(query_i64(rf_db_handle(db), "SELECT count(*) FROM zstd_dicts"), 2);
    assert_round_trip(c, run, text, strlen(text), &dict_id);
    cr_assert_eq((int64_t)dict_id,
                 query_i64(rf_db_handle(db), "SELECT dict_id FROM zstd_dicts WHERE n_samples = 300"));
    rf_compressor_close(c);
    rf_db_close(db);
}

Test(compress, dictionary_beats_plain_on_similar_outputs)
{
    enum { N = 500 };
    rf_db_t *db = open_new("ratio");
    rf_compressor_t *c = open_compressor(db);
    int64_t run = add_run(db, "r");
    fill_run(db, c, run, 0, N);
    train(c, run, 0);

    size_t raw = 0, plain = 0, with_dict = 0;
    rf_bytes_t frame = {0};
    rf_err_t err = {0};
    uint32_t dict_id = 0;
    for (int i = N; i < 2 * N; i++) {
        const char *text = sample_text(i);
        size_t len = strlen(text);
        raw += len;
        frame.len = 0;
        cr_assert_eq(rf_compress(c, -1, text, len, &frame, &dict_id, &err), 0, "%s", err.msg);
        plain += frame.len;
        frame.len = 0;
        cr_assert_eq(rf_compress(c, run, text, len, &frame, &dict_id, &err), 0, "%s", err.msg);
        cr_assert_neq(dict_id, 0);
        with_dict += frame.len;
    }
    rf_bytes_free(&frame);
    double plain_ratio = (double)raw / (double)plain;
    double dict_ratio = (double)raw / (double)with_dict;
    printf("compress ratio over %d outputs (%zu bytes): plain %.2fx, dictionary %.2fx\n", N, raw,
           plain_ratio, dict_ratio);
    cr_assert_gt(dict_ratio, plain_ratio);
    rf_compressor_close(c);
    rf_db_close(db);
}

Test(compress, dictionary_id_collision_between_runs_gets_a_new_id)
{
    rf_db_t *db = open_new("collide");
    rf_compressor_t *c = open_compressor(db);
    int64_t run_a = add_run(db, "a");
    int64_t run_b = add_run(db, "b");
    /* The same outputs train the same dictionary, with the same content-derived id. */
    fill_run(db, c, run_a, 0, 150);
    fill_run(db, c, run_b, 0, 150);
    train(c, run_a, 0);
    train(c, run_b, 0);
    sqlite3 *h = rf_db_handle(db);
    int64_t id_a = query_i64(h, "SELECT dict_id FROM zstd_dicts WHERE run_id = 1");
    int64_t id_b = query_i64(h, "SELECT dict_id FROM zstd_dicts WHERE run_id = 2");
    cr_assert_neq(id_a, id_b);

    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_prepare_v2(h, "SELECT dict_id, dict FROM zstd_dicts", -1, &stmt, NULL),
                 SQLITE_OK);
    while (sqlite3_step(stmt) == SQLITE_ROW)
        cr_assert_eq((int64_t)ZDICT_getDictID(sqlite3_column_blob(stmt, 1),
                                              (size_t)sqlite3_column_bytes(stmt, 1)),
                     sqlite3_column_int64(stmt, 0), "stored id must be the dictionary's own");
    sqlite3_finalize(stmt);

    /* The same trained content under two headers: the id was a collision
     * and b's header was rebuilt, not trained on something else. */
    cr_assert_eq(query_i64(h, "SELECT substr(a.dict, 1 + length(a.dict) - 8192) = "
                              "substr(b.dict, 1 + length(b.dict) - 8192) "
                              "FROM zstd_dicts a, zstd_dicts b WHERE a.run_id = 1 AND b.run_id = 2"),
                 1);

    uint32_t dict_id = 0;
    const char *text = sample_text(777);
    assert_round_trip(c, run_a, text, strlen(text), &dict_id);
    cr_assert_eq((int64_t)dict_id, id_a);
    assert_round_trip(c, run_b, text, strlen(text), &dict_id);
    cr_assert_eq((int64_t)dict_id, id_b);
    rf_compressor_close(c);
    rf_db_close(db);
}

/* ---------------------------------------------------------------- bad frames */

Test(compress, corrupt_frame_is_eformat)
{
    rf_db_t *db = open_new("corrupt");
    rf_compressor_t *c = open_compressor(db);
    const char *text = sample_text(3);
    rf_bytes_t frame = {0}, back = {0};
    rf_err_t err = {0};
    uint32_t dict_id;
    cr_assert_eq(rf_compress(c, -1, text, strlen(text), &frame, &dict_id, &err), 0);

    frame.data[frame.len / 2] ^= 0x5a;
    cr_assert_eq(rf_bytes_append(&back, "keep", 4), 0);
    int rc = rf_decompress(c, frame.data, frame.len, 1 << 20, &back, &err);
    cr_assert_eq(rc, RF_EFORMAT, "flipped byte: %d %s", rc, err.msg);
    cr_assert_str_eq(back.data, "keep", "what was there stays, nothing appended on failure");
    back.len = 0;
    frame.data[frame.len / 2] ^= 0x5a;

    rf_err_clear(&err);
    rc = rf_decompress(c, frame.data, frame.len - 3, 1 << 20, &back, &err);
    cr_assert_eq(rc, RF_EFORMAT, "truncated: %d %s", rc, err.msg);

    rf_err_clear(&err);
    rc = rf_decompress(c, "not a zstd frame", 16, 1 << 20, &back, &err);
    cr_assert_eq(rc, RF_EFORMAT, "garbage: %d %s", rc, err.msg);
    cr_assert(strstr(err.msg, "not a zstd frame") != NULL, "%s", err.msg);
    rf_bytes_free(&frame);
    rf_bytes_free(&back);
    rf_compressor_close(c);
    rf_db_close(db);
}

Test(compress, missing_dictionary_is_enotfound)
{
    rf_db_t *db = open_new("missing");
    rf_compressor_t *c = open_compressor(db);
    int64_t run = add_run(db, "r");
    fill_run(db, c, run, 0, 120);
    train(c, run, 0);
    const char *text = sample_text(500);
    rf_bytes_t frame = {0}, back = {0};
    rf_err_t err = {0};
    uint32_t dict_id = 0;
    cr_assert_eq(rf_compress(c, run, text, strlen(text), &frame, &dict_id, &err), 0);
    cr_assert_neq(dict_id, 0);
    exec_sql(rf_db_handle(db), "DELETE FROM zstd_dicts");

    rf_compressor_t *fresh = open_compressor(db);
    int rc = rf_decompress(fresh, frame.data, frame.len, 1 << 20, &back, &err);
    cr_assert_eq(rc, RF_ENOTFOUND, "%d %s", rc, err.msg);
    char id[16];
    snprintf(id, sizeof id, "%u", dict_id);
    cr_assert(strstr(err.msg, id) != NULL, "the message names the id: %s", err.msg);
    rf_bytes_free(&frame);
    rf_bytes_free(&back);
    rf_compressor_close(fresh);
    rf_compressor_close(c);
    rf_db_close(db);
}

Test(compress, huge_declared_size_is_refused)
{
    rf_db_t *db = open_new("huge");
    rf_compressor_t *c = open_compressor(db);
    rf_bytes_t back = {0};
    rf_err_t err = {0};
    /* A hand-made frame declaring 1 TiB: magic, header (8-byte size, single
     * segment), the size, one empty last raw block. */
    const unsigned char bomb[] = {0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0, 1, 0, 0,
                                  0x01, 0, 0};
    int rc = rf_decompress(c, bomb, sizeof bomb, 1 << 20, &back, &err);
    cr_assert_eq(rc, RF_EFORMAT, "%d %s", rc, err.msg);
    cr_assert(strstr(err.msg, "1099511627776") != NULL, "%s", err.msg);

    /* A real frame one byte over the limit. */
    enum { SIZE = 1 << 20 };
    char *zeros = calloc(1, SIZE);
    rf_bytes_t frame = {0};
    uint32_t dict_id;
    cr_assert_eq(rf_compress(c, -1, zeros, SIZE, &frame, &dict_id, &err), 0);
    rf_err_clear(&err);
    cr_assert_eq(rf_decompress(c, frame.data, frame.len, SIZE - 1, &back, &err), RF_EFORMAT);
    cr_assert_eq(rf_decompress(c, frame.data, frame.len, SIZE, &back, &err), 0);
    cr_assert_eq(back.len, SIZE);

    /* A streamed frame has no declared size: bounded while decoding. */
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
    char streamed[4096];
    size_t n = ZSTD_compress2(cctx, streamed, sizeof streamed, zeros, SIZE);
    cr_assert(!ZSTD_isError(n));
    cr_assert_eq(ZSTD_getFrameContentSize(streamed, n), ZSTD_CONTENTSIZE_UNKNOWN);
    back.len = 0;
    rf_err_clear(&err);
    cr_assert_eq(rf_decompress(c, streamed, n, 4096, &back, &err), RF_EFORMAT, "%s", err.msg);
    cr_assert_eq(back.len, 0);
    cr_assert_eq(rf_decompress(c, streamed, n, SIZE, &back, &err), 0, "%s", err.msg);
    cr_assert_eq(back.len, SIZE);
    ZSTD_freeCCtx(cctx);
    free(zeros);
    rf_bytes_free(&frame);
    rf_bytes_free(&back);
    rf_compressor_close(c);
    rf_db_close(db);
}

/* ---------------------------------------------------------------- the extension */

static sqlite3 *open_with_extension(const char *path)
{
    sqlite3 *h = NULL;
    cr_assert_eq(sqlite3_open(path, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_enable_load_extension(h, 1), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_load_extension(h, RF_SQLITE_EXT, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "loading %s: %s", RF_SQLITE_EXT, msg ? msg : "?");
    return h;
}

Test(compress, extension_results_text_gives_the_original_outputs)
{
    enum { N = 300 };
    rf_db_t *db = open_new("ext");
    rf_compressor_t *c = open_compressor(db);
    int64_t run = add_run(db, "ext-run");
    fill_run(db, c, run, 0, 150); /* plain frames */
    train(c, run, 0);
    fill_run(db, c, run, 150, N); /* frames naming the dictionary */
    sqlite3 *h = rf_db_handle(db);
    cr_assert_eq(query_i64(h, "SELECT count(*) FROM results WHERE dict_id IS NULL"), 150);
    cr_assert_eq(query_i64(h, "SELECT count(*) FROM results WHERE dict_id IS NOT NULL"), N - 150);
    /* The first job asked for logprobs. */
    const char *logprobs = "[{\"token\":\"To\",\"logprob\":-0.25}]";
    rf_bytes_t frame = {0};
    rf_err_t err = {0};
    cr_assert_eq(rf_compress(c, run, logprobs, strlen(logprobs), &frame, NULL, &err), 0);
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_prepare_v2(h, "UPDATE results SET logprobs = ? WHERE job_id = 1", -1,
                                    &stmt, NULL),
                 SQLITE_OK);
    sqlite3_bind_blob(stmt, 1, frame.data, (int)frame.len, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
    rf_bytes_free(&frame);
    rf_compressor_close(c);
    char path[512];
    snprintf(path, sizeof path, "%s", rf_db_path(db));
    rf_db_close(db);

    sqlite3 *x = open_with_extension(path);
    cr_assert_eq(sqlite3_prepare_v2(x,
                                    "SELECT custom_id, output, run, finish_reason, "
                                    "completion_tokens, logprobs FROM results_text "
                                    "ORDER BY job_id",
                                    -1, &stmt, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(x));
    int n = 0, rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        char id[32];
        snprintf(id, sizeof id, "r%lld-%d", (long long)run, n);
        cr_assert_str_eq((const char *)sqlite3_column_text(stmt, 0), id);
        cr_assert_eq(sqlite3_column_type(stmt, 1), SQLITE_TEXT);
        cr_assert_str_eq((const char *)sqlite3_column_text(stmt, 1), sample_text(n), "row %d", n);
        cr_assert_str_eq((const char *)sqlite3_column_text(stmt, 2), "ext-run");
        cr_assert_str_eq((const char *)sqlite3_column_text(stmt, 3), "stop");
        cr_assert_eq(sqlite3_column_int(stmt, 4), 7);
        if (n == 0)
            cr_assert_str_eq((const char *)sqlite3_column_text(stmt, 5), logprobs);
        else
            cr_assert_eq(sqlite3_column_type(stmt, 5), SQLITE_NULL);
        n++;
    }
    cr_assert_eq(rc, SQLITE_DONE, "%s", sqlite3_errmsg(x));
    cr_assert_eq(n, N);
    sqlite3_finalize(stmt);

    cr_assert_eq(query_i64(x, "SELECT count(*) FROM jobs_overview WHERE state = 'done' "
                              "AND run = 'ext-run' AND attempts = 0 AND e2e_ms IS NULL"),
                 N);
    sqlite3_close(x);
}

Test(compress, extension_rf_decompress_errors_on_garbage)
{
    rf_db_t *db = open_new("ext_bad");
    char path[512];
    snprintf(path, sizeof path, "%s", rf_db_path(db));
    rf_db_close(db);
    sqlite3 *x = open_with_extension(path);

    cr_assert_eq(query_i64(x, "SELECT rf_decompress(NULL) IS NULL"), 1);
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_prepare_v2(x, "SELECT rf_decompress(x'00112233445566778899')", -1,
                                    &stmt, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ERROR);
    cr_assert(strstr(sqlite3_errmsg(x), "rf_decompress") != NULL, "%s", sqlite3_errmsg(x));
    sqlite3_finalize(stmt);

    /* A large frame (past the first allocation) decodes whole. */
    enum { BIG = 3 << 20 };
    char *zeros = malloc(BIG);
    memset(zeros, 'a', BIG);
    size_t cap = ZSTD_compressBound(BIG);
    char *frame = malloc(cap);
    size_t n = ZSTD_compress(frame, cap, zeros, BIG, 3);
    cr_assert(!ZSTD_isError(n));
    cr_assert_eq(sqlite3_prepare_v2(x, "SELECT length(rf_decompress(?))", -1, &stmt, NULL),
                 SQLITE_OK);
    sqlite3_bind_blob(stmt, 1, frame, (int)n, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW, "%s", sqlite3_errmsg(x));
    cr_assert_eq(sqlite3_column_int64(stmt, 0), BIG);
    sqlite3_finalize(stmt);
    free(frame);
    free(zeros);

    /* Text is not a frame either. */
    cr_assert_eq(sqlite3_prepare_v2(x, "SELECT rf_decompress('text, not a blob')", -1, &stmt,
                                    NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ERROR);
    sqlite3_finalize(stmt);
    sqlite3_close(x);
}
