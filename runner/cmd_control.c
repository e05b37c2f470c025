/* cmd_control.c - `rocmforge cancel|retry|requeue`: steer the jobs of a database
 *
 * Operator transitions of runner/jobq.h from the command line:
 *   cancel   queued | running          -> cancelled
 *   retry    failed | cancelled        -> queued (attempts reset)
 *   requeue  done | failed | cancelled -> queued (results and metrics deleted)
 * applied to a whole run (--run NAME), one job (--job CUSTOM_ID --run NAME)
 * or every job in one state (--state STATE, in one run or all). Everything
 * happens in one transaction, and the counts per state before and after it
 * are printed, so the user sees exactly what moved.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"
#include "jobq.h"

/* ---------------------------------------------------------------- types */

typedef struct operation {
    const char *name;   /* the subcommand */
    const char *from;   /* states it moves jobs from, for messages */
    const char *to;
    const char *from_states[3]; /* NULL-terminated where shorter */
    int (*job)(rf_db_t *db, int64_t job_id, int64_t now_ms, int64_t *n, rf_err_t *err);
    int (*run)(rf_db_t *db, int64_t run_id, int64_t now_ms, int64_t *n, rf_err_t *err);
    const char *effect; /* one sentence for --help */
} operation_t;

/* The jobq calls without a clock take none; adapters give all one shape. */
static int cancel_job(rf_db_t *db, int64_t id, int64_t now_ms, int64_t *n, rf_err_t *err)
{
    return rf_jobq_cancel_job(db, id, now_ms, n, err);
}
static int cancel_run(rf_db_t *db, int64_t id, int64_t now_ms, int64_t *n, rf_err_t *err)
{
    return rf_jobq_cancel_run(db, id, now_ms, n, err);
}
static int retry_job(rf_db_t *db, int64_t id, int64_t now_ms, int64_t *n, rf_err_t *err)
{
    return rf_jobq_retry_job(db, id, n, err);
}
static int retry_run(rf_db_t *db, int64_t id, int64_t now_ms, int64_t *n, rf_err_t *err)
{
    return rf_jobq_retry_run(db, id, n, err);
}
static int requeue_job(rf_db_t *db, int64_t id, int64_t now_ms, int64_t *n, rf_err_t *err)
{
    return rf_jobq_requeue_job(db, id, n, err);
}
static int requeue_run(rf_db_t *db, int64_t id, int64_t now_ms, int64_t *n, rf_err_t *err)
{
    return rf_jobq_requeue_run(db, id, n, err);
}

static const operation_t CANCEL = {
    "cancel", "queued or running", "cancelled", {"queued", "running", NULL},
    cancel_job, cancel_run,
    "Cancel queued and running jobs (a worker running one loses its lease and\n"
    "drops the work). Cancelling a run also marks the run cancelled, so submit\n"
    "refuses to add to it until a retry or requeue reopens it.",
};
static const operation_t RETRY = {
    "retry", "failed or cancelled", "queued", {"failed", "cancelled", NULL},
    retry_job, retry_run,
    "Put failed and cancelled jobs back in the queue with their attempts reset.\n"
    "Done jobs keep their results. Retrying a run reopens it.",
};
static const operation_t REQUEUE = {
    "requeue", "done, failed or cancelled", "queued", {"done", "failed", "cancelled"},
    requeue_job, requeue_run,
    "Put finished jobs back in the queue to run again: their results and metrics\n"
    "are DELETED. Requeueing a run reopens it.",
};

/* ---------------------------------------------------------------- helpers */

static void control_usage(const operation_t *op, FILE *out)
{
    fprintf(out,
            "usage: rocmforge %s DB --run NAME\n"
            "       rocmforge %s DB --run NAME --job CUSTOM_ID\n"
            "       rocmforge %s DB --state STATE [--run NAME]\n"
            "\n"
            "%s\n"
            "\n"
            "Moves %s jobs to %s: every such job of run NAME, the one job\n"
            "CUSTOM_ID of run NAME, or every job in STATE (of run NAME, or of all runs).\n"
            "Prints how many jobs moved and the jobs per state before and after.\n"
            "\n"
            "options:\n"
            "      --run NAME         the run\n"
            "      --job CUSTOM_ID    one job of the run (needs --run)\n"
            "      --state STATE      only jobs in STATE: %s\n"
            "  -h, --help             show this help\n",
            op->name, op->name, op->name, op->effect, op->from, op->to, op->from);
}

static bool valid_state(const operation_t *op, const char *state)
{
    for (int i = 0; i < 3 && op->from_states[i] != NULL; i++)
        if (strcmp(op->from_states[i], state) == 0)
            return true;
    return false;
}

static int find_job(const char *cmd, rf_db_t *db, int64_t run_id, const char *custom_id,
                    const char *run_name, int64_t *job_id, char state[16])
{
    sqlite3_stmt *stmt;
    rf_err_t err = {0};
    int rc = rf_db_prepare(db, "SELECT job_id, state FROM jobs WHERE run_id = ?1 AND "
                           "custom_id = ?2", &stmt, &err);
    if (rc < 0) {
        rf__cli_error(cmd, "%s", err.msg);
        return rc;
    }
    sqlite3_bind_int64(stmt, 1, run_id);
    sqlite3_bind_text(stmt, 2, custom_id, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        *job_id = sqlite3_column_int64(stmt, 0);
        snprintf(state, 16, "%s", (const char *)sqlite3_column_text(stmt, 1));
    } else if (step == SQLITE_DONE) {
        rf__cli_error(cmd, "database %s: run '%s' has no job with custom_id '%s'",
                      rf_db_path(db), run_name, custom_id);
        rc = RF_ENOTFOUND;
    } else {
        rc = rf_db_error(db, step, "find job", &err);
        rf__cli_error(cmd, "%s", err.msg);
    }
    rf_db_done(stmt);
    return rc;
}

/* Apply op to every job in state (of run_id, or all runs when <= 0). The ids
 * are read first, then moved one by one inside the caller's transaction. */
static int apply_state(const operation_t *op, rf_db_t *db, int64_t run_id, const char *state,
                       int64_t now_ms, int64_t *n_changed, rf_err_t *err)
{
    *n_changed = 0;
    sqlite3_stmt *stmt;
    int rc = rf_db_prepare(db, "SELECT job_id FROM jobs WHERE state = ?2 AND "
                           "(?1 <= 0 OR run_id = ?1) ORDER BY job_id", &stmt, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(stmt, 1, run_id);
    sqlite3_bind_text(stmt, 2, state, -1, SQLITE_TRANSIENT);
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    int step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            int64_t *grown = realloc(ids, cap * sizeof *ids);
            if (grown == NULL) {
                rf_db_done(stmt);
                free(ids);
                return rf_err_set(err, -ENOMEM, "out of memory listing %s jobs", state);
            }
            ids = grown;
        }
        ids[n++] = sqlite3_column_int64(stmt, 0);
    }
    if (step != SQLITE_DONE)
        rc = rf_db_error(db, step, "list jobs by state", err);
    rf_db_done(stmt);
    for (size_t i = 0; i < n && rc == 0; i++) {
        int64_t moved = 0;
        rc = op->job(db, ids[i], now_ms, &moved, err);
        *n_changed += moved;
    }
    free(ids);
    return rc;
}

static void print_counts(const char *label, const rf_jobq_counts_t *c)
{
    printf("  %-7s %lld queued, %lld running, %lld done, %lld failed, %lld cancelled\n", label,
           (long long)c->queued, (long long)c->running, (long long)c->done,
           (long long)c->failed, (long long)c->cancelled);
}

/* ---------------------------------------------------------------- command */

static int control(const operation_t *op, int argc, char **argv)
{
    enum { OPT_RUN = 256, OPT_JOB, OPT_STATE };
    static const struct option long_options[] = {
        {"run", required_argument, NULL, OPT_RUN},
        {"job", required_argument, NULL, OPT_JOB},
        {"state", required_argument, NULL, OPT_STATE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *run_name = NULL, *custom_id = NULL, *state = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (c == 'h') {
            control_usage(op, stdout);
            return RF_EXIT_OK;
        } else if (c == OPT_RUN) {
            run_name = optarg;
        } else if (c == OPT_JOB) {
            custom_id = optarg;
        } else if (c == OPT_STATE) {
            state = optarg;
        } else {
            rf__cli_error(op->name, "unknown or incomplete option '%s'; see 'rocmforge %s "
                          "--help'", argv[optind - 1], op->name);
            return RF_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        rf__cli_error(op->name, "expected one argument, the database; see 'rocmforge %s --help'",
                      op->name);
        return RF_EXIT_USAGE;
    }
    if (run_name == NULL && state == NULL) {
        rf__cli_error(op->name, "say which jobs: --run NAME, --run NAME --job CUSTOM_ID, or "
                      "--state STATE");
        return RF_EXIT_USAGE;
    }
    if (custom_id != NULL && (run_name == NULL || state != NULL)) {
        rf__cli_error(op->name, "--job CUSTOM_ID needs --run NAME (custom ids are unique within "
                      "a run) and no --state");
        return RF_EXIT_USAGE;
    }
    if (state != NULL && !valid_state(op, state)) {
        rf__cli_error(op->name, "%s moves %s jobs; --state %s is not one of them", op->name,
                      op->from, state);
        return RF_EXIT_USAGE;
    }
    const char *path = argv[optind];
    rf_db_t *db = NULL;
    if (rf__cli_open_db(op->name, path, 0, &db) < 0)
        return RF_EXIT_FAIL;
    int status = RF_EXIT_FAIL;
    int64_t run_id = 0, job_id = 0, moved = 0, now_ms = rf__cli_now_ms();
    rf_jobq_counts_t before, after;
    char job_state[16] = "";
    rf_err_t err = {0};
    int rc = rf_db_begin(db, &err);
    if (rc < 0) {
        rf__cli_error(op->name, "%s", err.msg);
        goto done;
    }
    if (run_name != NULL && rf__cli_find_run(op->name, db, run_name, &run_id) < 0)
        goto done;
    if (custom_id != NULL &&
        find_job(op->name, db, run_id, custom_id, run_name, &job_id, job_state) < 0)
        goto done;
    rc = rf_jobq_counts(db, run_id, now_ms, &before, &err);
    if (rc == 0) {
        if (custom_id != NULL)
            rc = op->job(db, job_id, now_ms, &moved, &err);
        else if (state != NULL)
            rc = apply_state(op, db, run_id, state, now_ms, &moved, &err);
        else
            rc = op->run(db, run_id, now_ms, &moved, &err);
    }
    if (rc == 0)
        rc = rf_jobq_counts(db, run_id, now_ms, &after, &err);
    if (rc == 0)
        rc = rf_db_commit(db, &err);
    if (rc < 0) {
        rf__cli_error(op->name, "%s; nothing was changed", err.msg[0] ? err.msg : rf_strerror(rc));
        goto done;
    }
    if (custom_id != NULL) {
        if (moved > 0)
            printf("%s: job '%s' of run '%s' (job_id %lld): %s -> %s\n", op->name, custom_id,
                   run_name, (long long)job_id, job_state, op->to);
        else
            printf("%s: job '%s' of run '%s' is %s; %s moves only %s jobs: nothing changed\n",
                   op->name, custom_id, run_name, job_state, op->name, op->from);
    } else {
        char scope[300];
        if (run_name != NULL)
            snprintf(scope, sizeof scope, "run '%s'", run_name);
        else
            snprintf(scope, sizeof scope, "all runs");
        printf("%s: %s: %lld job%s moved from %s to %s\n", op->name, scope, (long long)moved,
               moved == 1 ? "" : "s", state != NULL ? state : op->from, op->to);
    }
    print_counts("before:", &before);
    print_counts("after:", &after);
    status = RF_EXIT_OK;
done:
    rf_db_close(db);
    return status;
}

int rf__cmd_cancel(int argc, char **argv)
{
    return control(&CANCEL, argc, argv);
}

int rf__cmd_retry(int argc, char **argv)
{
    return control(&RETRY, argc, argv);
}

int rf__cmd_requeue(int argc, char **argv)
{
    return control(&REQUEUE, argc, argv);
}
