/* worker.h - `rocmforge run`'s loop: claim, prepare, run, compress, commit
 *
 * One libuv loop thread owns the database connection, the timers and the
 * signal handlers; the engine thread (engine_thread.h) owns the scheduler;
 * tokenization and zstd compression run on the libuv thread pool. A job
 * goes:
 *
 *   claim (poll timer) -> prepare (pool) -> SUBMIT -> engine ... FINISHED
 *     -> compress (pool) -> group commit (flush timer) -> freed
 *
 * with checkpoints of long generations written in the same group commits,
 * leases extended by the heartbeat timer, and SIGINT/SIGTERM draining:
 * no new claims, the engine checkpoints what runs, finished work is
 * committed, the rest is released for the next run, exit 0. A second
 * signal exits at once (what was committed stays committed).
 */
#ifndef RF_WORKER_H
#define RF_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "engine.h"
#include "scheduler.h"

typedef struct rf_worker_options {
    const char *worker_id;      /* lease owner; NULL: host:pid:start_ms */
    const char *model_path;     /* recorded in workers.model */
    const char *model_hash;     /* job_metrics.model_hash and checkpoints */
    const char *device;         /* recorded in workers.device */
    int64_t lease_ms;           /* 0: 60000 */
    int64_t heartbeat_ms;       /* 0: lease_ms / 3 */
    int64_t poll_ms;            /* claim poll while idle; 0: 500 */
    int64_t flush_ms;           /* group commit period; 0: 50 */
    uint32_t group_max;         /* results per group commit at most; 0: 256 */
    uint32_t max_inflight;      /* jobs claimed and not committed; 0: 2 * max_seqs + 4 */
    int zstd_level;             /* 0: 3 */
    bool watch;                 /* keep polling when the queue is empty */
    int progress;               /* 0: auto (bar on a TTY, else lines), 1: bar,
                                   2: lines, -1: none */
    int64_t progress_ms;        /* log-line period; 0: 5000 (bar: 500) */
    int64_t stop_after_jobs;    /* drain after this many commits (tests); 0: never */
} rf_worker_options_t;

/* Run until the queue is empty (or, with watch, until a signal). sched and
 * e are used by the engine thread only while this runs. Returns the exit
 * status: 0 (finished or drained), 1 (a database error stopped the run:
 * err says what; work committed before it stays). */
int rf_worker_run(rf_db_t *db, rf_engine_t *e, rf_sched_t *sched,
                  const rf_worker_options_t *opt, rf_err_t *err);

#endif /* RF_WORKER_H */
