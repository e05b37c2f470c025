/* engine_thread.h - the runner's engine thread: bridge requests in, scheduler
 * steps, bridge events out
 *
 * The thread owns the scheduler (and through it the engine) from start to
 * join; nothing else touches them meanwhile. It sleeps on the bridge while
 * idle and polls it between steps while it has work. It never includes
 * uv.h: it sees the bridge through bridge_engine.h.
 *
 * Requests it understands (bridge_engine.h):
 *   SUBMIT  payload rf_engine_job_t: n requests, ids job_id * 256 + sample
 *   CANCEL  every sample of job_id
 *   DRAIN   checkpoint every live request (CHECKPOINT events), then DRAINED
 *   STOP    leave; live requests are dropped
 * Events it pushes: FIRST_TOKEN (value: monotonic ms), CHECKPOINT and
 * FINISHED (value: sample; payload rf_sched_output_t, freed with
 * rf_sched_output_free), FAILED (value: negative code; payload the message,
 * a malloc'd string), DRAINED.
 */
#ifndef RF_ENGINE_THREAD_H
#define RF_ENGINE_THREAD_H

#include <pthread.h>
#include <stdint.h>

#include "bridge_engine.h"
#include "prepare.h"
#include "scheduler.h"

/* The SUBMIT payload: a prepared job. Owned by the message. */
typedef struct rf_engine_job {
    rf_prepared_t prep;
} rf_engine_job_t;

void rf_engine_job_free(void *payload); /* the bridge free function */

/* Largest n: ids are job_id * RF_ENGINE_MAX_SAMPLES + sample. */
enum { RF_ENGINE_MAX_SAMPLES = 256 };

typedef struct rf_engine_thread {
    pthread_t thread;
    rf_bridge_t *bridge;     /* borrowed */
    rf_sched_t *sched;       /* borrowed; used only by the thread while it runs */
    int started;
    /* Written by the thread, read after join. */
    int exit_code;           /* 0, or the error that stopped it */
} rf_engine_thread_t;

/* Start the thread. Returns 0 or -errno (nothing started). */
int rf_engine_thread_start(rf_engine_thread_t *t, rf_bridge_t *bridge, rf_sched_t *sched);
/* Join after a STOP request was pushed (or the bridge refused it). */
void rf_engine_thread_join(rf_engine_thread_t *t);

#endif /* RF_ENGINE_THREAD_H */
