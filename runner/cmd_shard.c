/* cmd_shard.c - `rocmforge shard`: split a job database into N job databases
 *
 * For running one database on many hosts (a Slurm job array, docs/slurm.md):
 * the queued jobs (and with --failed the failed ones) of DB are dealt into
 * N new job databases PREFIX.0.db ... PREFIX.(N-1).db, each a complete
 * rocmforge database made by rf_db_open (same schema version) holding its
 * jobs with their own job_id, run_id and custom_id, the runs rows they
 * belong to and those runs' zstd dictionaries. `rocmforge merge`
 * (cmd_merge.c) brings the results back by job_id.
 *
 * Design notes
 * ------------
 * Assignment: the selected jobs, in job_id order, are dealt round robin:
 * the job of rank r (0-based) goes to shard r mod N. Shard sizes differ by
 * at most one, and since submit numbers jobs in input order, each shard gets
 * a slice of every part of the input (long and short prompts alike) instead
 * of one contiguous block. The same database always shards the same way.
 *
 * The source: by default the sharded jobs are marked cancelled in DB with
 * error "sharded into PREFIX.K.db", in the same transaction that held DB's
 * write lock while the shards were made. A later `rocmforge run DB` then
 * cannot do them a second time (wasting GPU hours and leaving two results
 * to choose from); merge replaces each such job with its shard's outcome;
 * `rocmforge retry DB` undoes the marking. --leave-queued skips the
 * marking for users who want to keep DB runnable (they are warned).
 *
 * Atomicity: shards are written to PREFIX.K.db.tmp, renamed into place
 * once all N are complete, and DB's transaction commits after the renames.
 * On any failure DB is unchanged and no shard file is left behind. Existing
 * shard files are refused unless --force.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "db.h"

/* ---------------------------------------------------------------- types */

enum { SHARDS_MAX = 100000 };

typedef struct shard_opts {
    const char *db_path;
    const char *prefix;      /* PREFIX of PREFIX.K.db */
    const char *run_name;    /* NULL: every run */
    long n_shards;
    bool failed;             /* take failed jobs too */
    bool force;              /* replace existing shard files */
    bool leave_queued;       /* do not mark the source jobs */
} shard_opts_t;

/* ---------------------------------------------------------------- helpers */

static void shard_usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge shard DB --into N [--run NAME] [-o PREFIX] [--failed]\n"
            "                       [--leave-queued] [--force]\n"
            "\n"
            "Split the queued jobs of the job database DB into N new job databases\n"
            "PREFIX.0.db ... PREFIX.N-1.db, to run one per host (a Slurm job array:\n"
            "docs/slurm.md), then bring the results back with 'rocmforge merge DB\n"
            "PREFIX.*.db'. Jobs keep their job_id; each shard holds its jobs' runs and\n"
            "zstd dictionaries. Jobs are dealt round robin in job_id order (the job of\n"
            "rank r goes to shard r mod N), so shard sizes differ by at most one.\n"
            "\n"
            "The sharded jobs are marked cancelled in DB (error 'sharded into\n"
            "PREFIX.K.db') so that running DB itself cannot do them twice; merge\n"
            "replaces them with the shards' outcomes.\n"
            "\n"
            "options:\n"
            "      --into N          number of shards (1..%d)\n"
            "      --run NAME        only the jobs of run NAME (default: every run)\n"
            "  -o, --output PREFIX   shard path prefix (default: DB without .db, plus .shard)\n"
            "      --failed          take failed jobs too (queued again in the shard,\n"
            "                        attempts reset, as retry does)\n"
            "      --leave-queued    leave the jobs queued in DB (running DB too would then\n"
            "                        do them a second time)\n"
            "      --force           replace existing shard files\n"
            "  -h, --help            show this help\n",
            SHARDS_MAX);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* path + suffix, malloc'd (NULL when out of memory). */
static char *concat(const char *path, const char *suffix)
{
    size_t a = strlen(path), b = strlen(suffix);
    char *s = malloc(a + b + 1);
    if (s != NULL) {
        memcpy(s, path, a);
        memcpy(s + a, suffix, b + 1);
    }
    return s;
}

/* Remove a database file and its WAL and shared-memory files: a stale
 * PATH-wal next to a new PATH would be replayed into it. */
static void remove_db_files(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char *p = concat(path, suffixes[i]);
        if (p != NULL)
            unlink(p);
        free(p);
    }
}

/* Run one statement, binding ints[0..n_ints) to ?1.. and text (if not NULL)
 * to the next parameter. *changes (may be NULL) gets sqlite3_changes. */
static int exec_bound(rf_db_t *db, const char *sql, const char *what, const int64_t *ints,
                      int n_ints, const char *text, int64_t *changes, rf_err_t *err)
{
    sqlite3 *h = rf_db_handle(db);
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(h, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return rf_db_error(db, rc, what, err);
    for (int i = 0; i < n_ints; i++)
        sqlite3_bind_int64(stmt, i + 1, ints[i]);
    if (text != NULL)
        sqlite3_bind_text(stmt, n_ints + 1, text, -1, SQLITE_TRANSIENT);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
        ;
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE)
        return rf_db_error(db, rc, what, err);
    if (changes != NULL)
        *changes = sqlite3_changes64(h);
    return 0;
}

/* The selected jobs of schema S with their shard: (job_id, shard). Binds
 * ?1 = N, ?2 = run_id (<= 0: all runs), ?3 = 1 to take failed jobs. */
#define SELECTED(S)                                                                        \
    "SELECT job_id, (row_number() OVER (ORDER BY job_id) - 1) % ?1 AS shard "           \
    "FROM " S ".jobs WHERE (state = 'queued' OR (?3 AND state = 'failed')) "            \
    "AND (?2 <= 0 OR run_id = ?2)"

/* Fill the (empty, just created) shard database at tmp_path with shard k's
 * jobs from src_path. The shard connection attaches the source read-only in
 * practice (it only reads) and uses a deferred transaction: the source's
 * write lock is held by the caller's connection. */
static int fill_shard(const shard_opts_t *o, const char *src_path, const char *tmp_path,
                      int64_t run_id, long k, int64_t *n_jobs, rf_err_t *err)
{
    rf_db_t *db = NULL;
    int rc = rf_db_open(&db, tmp_path, RF_DB_CREATE | RF_DB_SYNC_NORMAL, err);
    if (rc < 0)
        return rc;
    int64_t args[4] = {o->n_shards, run_id, o->failed ? 1 : 0, k};
    bool attached = false;
    rc = exec_bound(db, "ATTACH DATABASE ?1 AS src", "attach the source database", NULL, 0,
                    src_path, NULL, err);
    if (rc == 0) {
        attached = true;
        rc = rf_db_exec(db, "BEGIN", "begin", err);
    }
    if (rc == 0)
        rc = exec_bound(db,
                        "INSERT INTO main.runs (run_id, name, created_ms, defaults, status) "
                        "SELECT run_id, name, created_ms, defaults, status FROM src.runs "
                        "WHERE run_id IN (SELECT j.run_id FROM src.jobs j JOIN (" SELECTED("src")
                        ") s USING (job_id))",
                        "copy runs", args, 3, NULL, NULL, err);
    if (rc == 0)
        rc = exec_bound(db,
                        "INSERT INTO main.zstd_dicts (dict_id, run_id, created_ms, n_samples, "
                        "dict) SELECT dict_id, run_id, created_ms, n_samples, dict FROM "
                        "src.zstd_dicts WHERE run_id IN (SELECT run_id FROM main.runs)",
                        "copy zstd dictionaries", NULL, 0, NULL, NULL, err);
    /* Failed jobs come back as retry makes them: queued, attempts 0, no
     * backoff, their last error kept. */
    if (rc == 0)
        rc = exec_bound(db,
                        "INSERT INTO main.jobs (job_id, run_id, custom_id, kind, input, params, "
                        "metadata, source_file, source_line, input_hash, priority, "
                        "not_before_ms, state, attempts, max_attempts, lease_owner, "
                        "lease_expires_ms, created_ms, claimed_ms, finished_ms, error, "
                        "checkpoint) "
                        "SELECT j.job_id, j.run_id, j.custom_id, j.kind, j.input, j.params, "
                        "j.metadata, j.source_file, j.source_line, j.input_hash, j.priority, "
                        "CASE WHEN j.state = 'failed' THEN 0 ELSE j.not_before_ms END, "
                        "'queued', CASE WHEN j.state = 'failed' THEN 0 ELSE j.attempts END, "
                        "j.max_attempts, NULL, NULL, j.created_ms, j.claimed_ms, NULL, j.error, "
                        "j.checkpoint "
                        "FROM src.jobs j JOIN (" SELECTED("src") ") s USING (job_id) "
                        "WHERE s.shard = ?4 ORDER BY j.job_id",
                        "copy jobs", args, 4, NULL, n_jobs, err);
    if (rc == 0)
        rc = rf_db_exec(db, "COMMIT", "commit", err);
    if (rc < 0)
        rf_db_exec(db, "ROLLBACK", "rollback", NULL);
    if (attached)
        rf_db_exec(db, "DETACH DATABASE src", "detach the source database", NULL);
    int close_rc = rf_db_close(db);
    if (rc == 0 && close_rc < 0)
        rc = rf_err_set(err, close_rc, "database %s: close: %s", tmp_path,
                        rf_strerror(close_rc));
    return rc;
}

/* Count the jobs of DB matching sql (binds as SELECTED). */
static int count_jobs(rf_db_t *db, const char *sql, const shard_opts_t *o, int64_t run_id,
                      int64_t *n, rf_err_t *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(rf_db_handle(db), sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return rf_db_error(db, rc, "count jobs", err);
    /* Parameters a query does not use are ignored (SQLITE_RANGE). */
    sqlite3_bind_int64(stmt, 1, o->n_shards);
    sqlite3_bind_int64(stmt, 2, run_id);
    sqlite3_bind_int64(stmt, 3, o->failed ? 1 : 0);
    rc = sqlite3_step(stmt);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
    sqlite3_finalize(stmt);
    return rc == SQLITE_ROW ? 0 : rf_db_error(db, rc, "count jobs", err);
}

/* ---------------------------------------------------------------- command */

static int parse(int argc, char **argv, shard_opts_t *o)
{
    enum { OPT_INTO = 256, OPT_RUN, OPT_FAILED, OPT_FORCE, OPT_LEAVE };
    static const struct option long_options[] = {
        {"into", required_argument, NULL, OPT_INTO},
        {"run", required_argument, NULL, OPT_RUN},
        {"output", required_argument, NULL, 'o'},
        {"failed", no_argument, NULL, OPT_FAILED},
        {"leave-queued", no_argument, NULL, OPT_LEAVE},
        {"force", no_argument, NULL, OPT_FORCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "ho:", long_options, NULL)) != -1) {
        if (c == 'h') {
            shard_usage(stdout);
            return 1;
        } else if (c == OPT_INTO) {
            char *end;
            errno = 0;
            o->n_shards = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || o->n_shards < 1 ||
                o->n_shards > SHARDS_MAX) {
                rf__cli_error("shard", "bad value '%s' for --into: a number of shards, 1..%d",
                              optarg, SHARDS_MAX);
                return -1;
            }
        } else if (c == OPT_RUN) {
            o->run_name = optarg;
        } else if (c == 'o') {
            o->prefix = optarg;
        } else if (c == OPT_FAILED) {
            o->failed = true;
        } else if (c == OPT_LEAVE) {
            o->leave_queued = true;
        } else if (c == OPT_FORCE) {
            o->force = true;
        } else {
            rf__cli_error("shard", "unknown or incomplete option '%s'; see 'rocmforge shard "
                          "--help'", argv[optind - 1]);
            return -1;
        }
    }
    if (argc - optind != 1) {
        rf__cli_error("shard", "expected one argument, the database; see 'rocmforge shard "
                      "--help'");
        return -1;
    }
    if (o->n_shards == 0) {
        rf__cli_error("shard", "how many shards? give --into N (one per host or array task)");
        return -1;
    }
    o->db_path = argv[optind];
    return 0;
}

int rf__cmd_shard(int argc, char **argv)
{
    shard_opts_t o = {0};
    int prc = parse(argc, argv, &o);
    if (prc != 0)
        return prc > 0 ? RF_EXIT_OK : RF_EXIT_USAGE;

    /* Paths: PREFIX.K.db and PREFIX.K.db.tmp. */
    char *default_prefix = NULL;
    if (o.prefix == NULL) {
        size_t len = strlen(o.db_path);
        if (len > 3 && strcmp(o.db_path + len - 3, ".db") == 0)
            len -= 3;
        default_prefix = malloc(len + sizeof ".shard");
        if (default_prefix == NULL) {
            rf__cli_error("shard", "out of memory");
            return RF_EXIT_FAIL;
        }
        memcpy(default_prefix, o.db_path, len);
        memcpy(default_prefix + len, ".shard", sizeof ".shard");
        o.prefix = default_prefix;
    }
    int status = RF_EXIT_FAIL;
    long n = o.n_shards;
    char **paths = calloc((size_t)n, sizeof *paths);
    char **tmps = calloc((size_t)n, sizeof *tmps);
    long n_renamed = 0;
    rf_db_t *db = NULL;
    rf_err_t err = {0};
    if (paths == NULL || tmps == NULL) {
        rf__cli_error("shard", "out of memory");
        goto done;
    }
    for (long k = 0; k < n; k++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, ".%ld.db", k);
        paths[k] = concat(o.prefix, suffix);
        tmps[k] = paths[k] ? concat(paths[k], ".tmp") : NULL;
        if (tmps[k] == NULL) {
            rf__cli_error("shard", "out of memory");
            goto done;
        }
    }
    struct stat src_st;
    if (stat(o.db_path, &src_st) == 0) {
        for (long k = 0; k < n; k++) {
            struct stat st;
            if (stat(paths[k], &st) == 0 && st.st_dev == src_st.st_dev &&
                st.st_ino == src_st.st_ino) {
                rf__cli_error("shard", "shard %s is the database itself; choose another -o "
                              "PREFIX", paths[k]);
                status = RF_EXIT_USAGE;
                goto done;
            }
        }
    }
    if (!o.force) {
        long n_existing = 0, first = -1;
        for (long k = 0; k < n; k++)
            if (exists(paths[k])) {
                n_existing++;
                if (first < 0)
                    first = k;
            }
        if (n_existing > 0) {
            char more[96] = "";
            if (n_existing > 1)
                snprintf(more, sizeof more, " (and %ld more of the %ld shard files)",
                         n_existing - 1, n);
            rf__cli_error("shard", "%s already exists%s; nothing was written: merge what "
                          "it holds first, then give --force to replace it, or choose another "
                          "-o PREFIX", paths[first], more);
            goto done;
        }
    }

    if (rf__cli_open_db("shard", o.db_path, 0, &db) < 0)
        goto done;
    /* The write lock is held from here to the commit: no worker claims a
     * job while it is being copied, and the selection cannot change
     * between the shards. */
    int rc = rf_db_begin(db, &err);
    if (rc < 0) {
        rf__cli_error("shard", "%s", err.msg);
        goto done;
    }
    int64_t run_id = 0, n_selected = 0, n_running = 0;
    if (o.run_name != NULL && rf__cli_find_run("shard", db, o.run_name, &run_id) < 0)
        goto done;
    rc = count_jobs(db, "SELECT count(*) FROM (" SELECTED("main") ")", &o, run_id, &n_selected,
                    &err);
    if (rc == 0)
        rc = count_jobs(db, "SELECT count(*) FROM jobs WHERE state = 'running' AND "
                        "(?2 <= 0 OR run_id = ?2)", &o, run_id, &n_running,
                        &err);
    if (rc < 0) {
        rf__cli_error("shard", "%s; nothing was written", err.msg);
        goto done;
    }
    if (n_selected == 0) {
        rf__cli_error("shard", "database %s has no queued%s jobs%s%s%s to shard; nothing was "
                      "written ('rocmforge runs %s' shows the jobs per state)", o.db_path,
                      o.failed ? " or failed" : "", o.run_name ? " in run '" : "",
                      o.run_name ? o.run_name : "", o.run_name ? "'" : "", o.db_path);
        goto done;
    }

    for (long k = 0; k < n; k++) {
        remove_db_files(tmps[k]);
        int64_t n_jobs = 0;
        rc = fill_shard(&o, o.db_path, tmps[k], run_id, k, &n_jobs, &err);
        if (rc < 0) {
            rf__cli_error("shard", "making shard %s: %s; nothing was written", paths[k],
                          err.msg[0] ? err.msg : rf_strerror(rc));
            goto done;
        }
    }
    if (!o.leave_queued) {
        int64_t args[4] = {o.n_shards, run_id, o.failed ? 1 : 0, rf__cli_now_ms()};
        rc = exec_bound(db,
                        "UPDATE jobs SET state = 'cancelled', finished_ms = ?4, "
                        "lease_owner = NULL, lease_expires_ms = NULL, "
                        "error = 'sharded into ' || ?5 || '.' || s.shard || '.db' "
                        "FROM (" SELECTED("main") ") AS s WHERE jobs.job_id = s.job_id",
                        "mark the sharded jobs", args, 4, o.prefix, NULL, &err);
        if (rc < 0) {
            rf__cli_error("shard", "%s; nothing was written", err.msg);
            goto done;
        }
    }
    for (long k = 0; k < n; k++) {
        remove_db_files(paths[k]);
        if (rename(tmps[k], paths[k]) != 0) {
            rf__cli_error("shard", "rename %s to %s: %s; nothing was written", tmps[k],
                          paths[k], strerror(errno));
            goto done;
        }
        n_renamed = k + 1;
    }
    rc = rf_db_commit(db, &err);
    if (rc < 0) {
        rf__cli_error("shard", "%s; nothing was written", err.msg);
        goto done;
    }
    n_renamed = 0; /* they stay */
    printf("shard: %lld job%s of %s%s%s%s dealt into %ld shards %s.0.db ... %s.%ld.db "
           "(%lld to %lld each)\n",
           (long long)n_selected, n_selected == 1 ? "" : "s", o.db_path,
           o.run_name ? " (run '" : "", o.run_name ? o.run_name : "", o.run_name ? "')" : "",
           n, o.prefix, o.prefix, n - 1, (long long)(n_selected / n),
           (long long)((n_selected + n - 1) / n));
    if (o.leave_queued)
        printf("shard: the jobs stay queued in %s too: do not run it as well, or they are "
               "done twice (merge keeps the result already in %s)\n", o.db_path, o.db_path);
    else
        printf("shard: in %s they are marked cancelled ('sharded into ...') until 'rocmforge "
               "merge %s %s.*.db' brings their results back\n", o.db_path, o.db_path,
               o.prefix);
    if (n_running > 0)
        printf("shard: %lld running job%s stay in %s (a worker holds them)\n",
               (long long)n_running, n_running == 1 ? "" : "s", o.db_path);
    status = RF_EXIT_OK;
done:
    if (db != NULL && rf_db_in_transaction(db))
        rf_db_rollback(db);
    rf_db_close(db);
    for (long k = 0; paths != NULL && tmps != NULL && k < n; k++) {
        if (tmps[k] != NULL)
            remove_db_files(tmps[k]);
        if (k < n_renamed)
            remove_db_files(paths[k]);
        free(paths[k]);
        free(tmps[k]);
    }
    free(paths);
    free(tmps);
    free(default_prefix);
    return status;
}
