/* engine_thread.c - the runner's engine thread
 *
 * A loop: take every queued request (waiting while idle), apply them, run
 * one scheduler step when there is work, forward the scheduler's events to
 * the loop thread. A step is one forward pass, so requests (new jobs,
 * cancels, a drain) are seen within one step's time.
 */
#include "engine_thread.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rf_engine_job_free(void *payload)
{
    rf_engine_job_t *j = payload;
    if (j == NULL)
        return;
    rf_prepared_free(&j->prep);
    free(j);
}

static void push_failed(rf_bridge_t *b, int64_t job_id, int code, const char *msg)
{
    char *copy = strdup(msg && msg[0] ? msg : rf_strerror(code));
    if (rf_bridge_push_event(b, RF_BRIDGE_EV_FAILED, job_id, code, copy, free) != 0)
        free(copy);
}

static void cancel_job(rf_sched_t *s, int64_t job_id)
{
    for (uint64_t k = 0; k < RF_ENGINE_MAX_SAMPLES; k++)
        rf_sched_cancel(s, (uint64_t)job_id * RF_ENGINE_MAX_SAMPLES + k);
}

static void submit_job(rf_engine_thread_t *t, int64_t job_id, rf_engine_job_t *job)
{
    rf_prepared_t *p = &job->prep;
    for (uint32_t k = 0; k < p->n_samples; k++) {
        rf_request_t r = p->request;
        r.id = (uint64_t)job_id * RF_ENGINE_MAX_SAMPLES + k;
        r.rng_id = k;
        if (p->resume != NULL) {
            r.generated = p->resume[k].tokens;
            r.generated_samples = p->resume[k].samples;
            r.n_generated = p->resume[k].n_tokens;
            if (r.logprobs && r.n_generated > 0 && r.generated_samples == NULL)
                r.n_generated = 0; /* a checkpoint without samples cannot resume logprobs */
        }
        rf_err_t err = {0};
        int rc = rf_sched_submit(t->sched, &r, &err);
        if (rc < 0) {
            cancel_job(t->sched, job_id);
            push_failed(t->bridge, job_id, rc, err.msg);
            return;
        }
    }
}

/* Forward the scheduler's events. A push can fail only when the bridge is
 * closing (the loop is gone) or out of memory; the event is then dropped
 * and the job's lease expires, so another claim redoes it. */
static void forward_events(rf_engine_thread_t *t)
{
    rf_sched_event_t ev;
    while (rf_sched_poll(t->sched, &ev)) {
        int64_t job_id = (int64_t)(ev.id / RF_ENGINE_MAX_SAMPLES);
        int64_t sample = (int64_t)(ev.id % RF_ENGINE_MAX_SAMPLES);
        switch (ev.kind) {
        case RF_SCHED_EV_FIRST_TOKEN:
            rf_bridge_push_event(t->bridge, RF_BRIDGE_EV_FIRST_TOKEN, job_id, ev.value, NULL,
                                 NULL);
            break;
        case RF_SCHED_EV_CHECKPOINT:
        case RF_SCHED_EV_FINISHED:
            if (rf_bridge_push_event(t->bridge,
                                     ev.kind == RF_SCHED_EV_FINISHED ? RF_BRIDGE_EV_FINISHED
                                                                     : RF_BRIDGE_EV_CHECKPOINT,
                                     job_id, sample, ev.output,
                                     (rf_bridge_free_fn)rf_sched_output_free) == 0)
                ev.output = NULL;
            break;
        case RF_SCHED_EV_FAILED:
            cancel_job(t->sched, job_id);
            push_failed(t->bridge, job_id, (int)ev.value, ev.error);
            break;
        }
        rf_sched_event_free(&ev);
    }
}

static void *thread_main(void *arg)
{
    rf_engine_thread_t *t = arg;
    bool stop = false;
    while (!stop) {
        rf_bridge_list_t reqs = {0};
        rf_bridge_wait_requests(t->bridge, rf_sched_has_work(t->sched) ? 0 : -1, &reqs);
        rf_bridge_msg_t *m;
        while ((m = rf_bridge_list_pop(&reqs)) != NULL) {
            switch (m->kind) {
            case RF_BRIDGE_REQ_SUBMIT:
                submit_job(t, m->job_id, m->payload);
                break;
            case RF_BRIDGE_REQ_CANCEL:
                cancel_job(t->sched, m->job_id);
                break;
            case RF_BRIDGE_REQ_DRAIN:
                rf_sched_checkpoint_all(t->sched);
                forward_events(t);
                rf_bridge_push_event(t->bridge, RF_BRIDGE_EV_DRAINED, -1, 0, NULL, NULL);
                break;
            case RF_BRIDGE_REQ_STOP:
                stop = true;
                break;
            default:
                break;
            }
            rf_bridge_msg_free(m);
        }
        if (stop)
            break;
        if (rf_sched_has_work(t->sched)) {
            rf_err_t err = {0};
            int rc = rf_sched_step(t->sched, &err);
            /* A failed step failed its batch's requests (FAILED events);
             * the others go on. */
            if (rc < 0)
                fprintf(stderr, "rocmforge run: engine step failed: %s\n",
                        err.msg[0] ? err.msg : rf_strerror(rc));
        }
        forward_events(t);
    }
    return NULL;
}

int rf_engine_thread_start(rf_engine_thread_t *t, rf_bridge_t *bridge, rf_sched_t *sched)
{
    memset(t, 0, sizeof *t);
    t->bridge = bridge;
    t->sched = sched;
    int rc = pthread_create(&t->thread, NULL, thread_main, t);
    if (rc != 0)
        return -rc;
    t->started = 1;
    return 0;
}

void rf_engine_thread_join(rf_engine_thread_t *t)
{
    if (t->started)
        pthread_join(t->thread, NULL);
    t->started = 0;
}
