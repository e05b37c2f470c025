/* launcher.c - `rocmforge run --workers N | --gpus LIST`: one worker process
 * per GPU (or N on this device), all on one database
 *
 * Each worker is this binary running `rocmforge run` with the same options,
 * its own --worker-id (host:launcher-pid:wK) and, with --gpus, --device gpu
 * --gpu K. The workers share the work through the job queue's leases, so a
 * worker that dies leaves its jobs to expire and the others go on. The
 * launcher forwards SIGINT and SIGTERM to every worker (the first drains
 * them, a second makes them exit at once), prints progress aggregated from
 * the database, and exits 0 when every worker did.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "db.h"
#include "jobq.h"

static volatile sig_atomic_t pending_signal;

static void on_signal(int sig)
{
    pending_signal = sig;
}

/* The options a worker must not inherit (the launcher sets its own). */
static int skip_option(const char *arg, bool gpu_mode)
{
    static const char *const with_value[] = {"--workers", "--gpus", "--worker-id", "--progress"};
    static const char *const gpu_value[] = {"--device", "--gpu"};
    for (size_t i = 0; i < sizeof with_value / sizeof with_value[0]; i++) {
        size_t n = strlen(with_value[i]);
        if (strncmp(arg, with_value[i], n) == 0)
            return arg[n] == '=' ? 1 : arg[n] == '\0' ? 2 : 0;
    }
    for (size_t i = 0; gpu_mode && i < sizeof gpu_value / sizeof gpu_value[0]; i++) {
        size_t n = strlen(gpu_value[i]);
        if (strncmp(arg, gpu_value[i], n) == 0)
            return arg[n] == '=' ? 1 : arg[n] == '\0' ? 2 : 0;
    }
    return 0;
}

/* Completion tokens of the jobs finished since start_ms, and the jobs: the
 * launcher's summary adds up its workers' work from the database. */
static void finished_since(rf_db_t *db, int64_t start_ms, int64_t *jobs, int64_t *tokens)
{
    *jobs = 0;
    *tokens = 0;
    sqlite3_stmt *st = NULL;
    rf_err_t err = {0};
    if (rf_db_prepare(db, "SELECT count(*), coalesce(sum((SELECT sum(r.completion_tokens) "
                          "FROM results r WHERE r.job_id = j.job_id)), 0) FROM jobs j "
                          "WHERE j.state = 'done' AND j.finished_ms >= ?1", &st, &err) != 0)
        return;
    sqlite3_bind_int64(st, 1, start_ms);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *jobs = sqlite3_column_int64(st, 0);
        *tokens = sqlite3_column_int64(st, 1);
    }
    rf_db_done(st);
}

static void print_summary(const char *db_path, int n_workers, int64_t start_ms)
{
    rf_db_t *db = NULL;
    rf_err_t err = {0};
    if (rf_db_open(&db, db_path, RF_DB_READONLY, &err) != 0)
        return;
    int64_t jobs = 0, tokens = 0;
    finished_since(db, start_ms, &jobs, &tokens);
    double secs = (double)(rf__cli_now_ms() - start_ms) / 1e3;
    fprintf(stderr, "rocmforge run: done: %" PRId64 " jobs completed by %d workers, %" PRId64
            " tokens generated in %.1f s (%.0f tokens/s, model loading included)\n", jobs,
            n_workers, tokens, secs, secs > 0 ? (double)tokens / secs : 0.0);
    rf_db_close(db);
}

static void print_progress(const char *db_path, int n_alive, int n_workers, int64_t start_ms)
{
    rf_db_t *db = NULL;
    rf_err_t err = {0};
    if (rf_db_open(&db, db_path, RF_DB_READONLY, &err) != 0)
        return;
    rf_jobq_counts_t c = {0};
    if (rf_jobq_counts(db, 0, rf__cli_now_ms(), &c, &err) == 0) {
        int64_t total = c.queued + c.running + c.done + c.failed + c.cancelled;
        int64_t finished = c.done + c.failed + c.cancelled;
        double secs = (double)(rf__cli_now_ms() - start_ms) / 1e3;
        fprintf(stderr, "rocmforge run: %" PRId64 "/%" PRId64 " jobs finished, %" PRId64
                " running, %" PRId64 " failed | %d of %d workers alive | %.0f s\n", finished,
                total, c.running, c.failed, n_alive, n_workers, secs);
    }
    rf_db_close(db);
}

int rf__run_launch(int argc, char **argv, const int *gpus, int n_workers, const char *db_path,
                   bool quiet)
{
    bool gpu_mode = gpus != NULL;
    char **child = calloc((size_t)argc + 12, sizeof *child);
    pid_t *pids = calloc((size_t)n_workers, sizeof *pids);
    int *status = calloc((size_t)n_workers, sizeof *status);
    if (child == NULL || pids == NULL || status == NULL) {
        free(child);
        free(pids);
        free(status);
        rf__cli_error("run", "out of memory");
        return RF_EXIT_FAIL;
    }
    int base = 0;
    child[base++] = "rocmforge";
    child[base++] = "run";
    for (int i = 1; i < argc; i++) {
        int skip = skip_option(argv[i], gpu_mode);
        if (skip == 2)
            i++;
        if (skip == 0)
            child[base++] = argv[i];
    }
    char host[128] = "localhost";
    gethostname(host, sizeof host - 1);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int64_t start_ms = rf__cli_now_ms();
    if (!quiet)
        fprintf(stderr, "rocmforge run: starting %d workers on %s\n", n_workers, db_path);
    for (int k = 0; k < n_workers; k++) {
        char id[256], gpu[16];
        snprintf(id, sizeof id, "%s:%d:w%d", host, (int)getpid(), k);
        snprintf(gpu, sizeof gpu, "%d", gpu_mode ? gpus[k] : 0);
        int n = base;
        child[n++] = "--worker-id";
        child[n++] = id;
        child[n++] = "--progress";
        child[n++] = "none";
        if (gpu_mode) {
            child[n++] = "--device";
            child[n++] = "gpu";
            child[n++] = "--gpu";
            child[n++] = gpu;
        }
        child[n] = NULL;
        pid_t pid = fork();
        if (pid == 0) {
            execv("/proc/self/exe", child);
            fprintf(stderr, "rocmforge run: worker %d: cannot start: %s\n", k, strerror(errno));
            _exit(127);
        }
        if (pid < 0) {
            rf__cli_error("run", "starting worker %d: %s", k, strerror(errno));
            pending_signal = SIGTERM; /* stop the ones already started */
            n_workers = k;
            break;
        }
        pids[k] = pid;
        if (!quiet)
            fprintf(stderr, "rocmforge run: worker %d (%s%s) is pid %d\n", k,
                    gpu_mode ? "GPU " : "on this device", gpu_mode ? gpu : "", (int)pid);
    }
    int alive = n_workers, signals = 0;
    int64_t last_report = start_ms;
    while (alive > 0) {
        if (pending_signal != 0) {
            int sig = pending_signal;
            pending_signal = 0;
            signals++;
            if (!quiet)
                fprintf(stderr, "rocmforge run: %s: passing it to the workers (%s)\n",
                        sig == SIGINT ? "SIGINT" : "SIGTERM",
                        signals == 1 ? "they drain" : "they exit at once");
            for (int k = 0; k < n_workers; k++)
                if (pids[k] > 0)
                    kill(pids[k], sig);
        }
        for (int k = 0; k < n_workers; k++) {
            if (pids[k] <= 0)
                continue;
            int st;
            pid_t r = waitpid(pids[k], &st, WNOHANG);
            if (r == pids[k]) {
                status[k] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                if (!quiet || status[k] != 0)
                    fprintf(stderr, "rocmforge run: worker %d exited with status %d\n", k,
                            status[k]);
                pids[k] = 0;
                alive--;
            }
        }
        int64_t now = rf__cli_now_ms();
        if (!quiet && now - last_report >= 5000) {
            print_progress(db_path, alive, n_workers, start_ms);
            last_report = now;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!quiet) {
        print_progress(db_path, 0, n_workers, start_ms);
        print_summary(db_path, n_workers, start_ms);
    }
    int rc = RF_EXIT_OK;
    for (int k = 0; k < n_workers; k++)
        if (status[k] != 0)
            rc = RF_EXIT_FAIL;
    free(child);
    free(pids);
    free(status);
    return rc;
}
