/* bridge.c - the queue between the libuv loop thread and the engine thread
 *
 * Implements bridge.h and bridge_engine.h: two intrusive FIFOs of heap
 * messages under one mutex, a condition variable that wakes the engine, and
 * a uv_async_t doorbell that wakes the loop.
 *
 * Design notes
 *
 *   1. Every field of struct rf_bridge but the doorbell is read or written
 *      only with the mutex held. The doorbell is touched by the loop thread
 *      (init, close, its callback) and by uv_async_send, which libuv allows
 *      from any thread.
 *   2. uv_async_send never carries data. A push appends first, then sends;
 *      libuv may merge many sends into one callback, so the callback takes
 *      the whole event list in one swap. Every event is therefore delivered
 *      exactly once, in push order; a callback may find the list empty
 *      (its events were taken by an earlier callback), which is harmless.
 *   3. rf_bridge_push_event sends while holding the mutex, and
 *      rf_bridge_close sets `closing` under the same mutex before uv_close.
 *      So no send can start on a handle that is closing: a push either
 *      finished its send before close, or sees `closing` and returns -EPIPE
 *      without taking ownership.
 *   4. Teardown order: (a) the loop pushes RF_BRIDGE_REQ_STOP (after DRAIN
 *      when jobs should finish); (b) the engine thread pushes its last events
 *      and returns; (c) the loop thread joins it; (d) rf_bridge_close();
 *      (e) the close callback frees undelivered messages, destroys the mutex
 *      and condition variable, and calls on_closed; (f) only then is the
 *      bridge memory freed. An engine thread still running at (e) would use
 *      a destroyed mutex, hence (c) before (d).
 *   5. A failed push leaves both lists and all counters unchanged, and the
 *      payload stays with the caller.
 *
 *   States of the bridge (function performing each transition):
 *
 *     zeroed --rf_bridge_init--> open --rf_bridge_close--> closing
 *       closing --close callback (uv_close done)--> closed: on_closed called
 */
#include "bridge.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

void *(*rf__bridge_alloc)(size_t size) = malloc;

/* ----------------------------------------------------------------- lists */

static void list_append(rf_bridge_list_t *list, rf_bridge_msg_t *msg)
{
    msg->next = NULL;
    if (list->tail)
        list->tail->next = msg;
    else
        list->head = msg;
    list->tail = msg;
    list->n_msgs++;
}

/* Move all of from to the end of to; from is left empty. */
static void list_splice(rf_bridge_list_t *to, rf_bridge_list_t *from)
{
    if (!from->head)
        return;
    if (to->tail)
        to->tail->next = from->head;
    else
        to->head = from->head;
    to->tail = from->tail;
    to->n_msgs += from->n_msgs;
    *from = (rf_bridge_list_t){0};
}

rf_bridge_msg_t *rf_bridge_list_pop(rf_bridge_list_t *list)
{
    rf_bridge_msg_t *msg = list->head;
    if (!msg)
        return NULL;
    list->head = msg->next;
    if (!list->head)
        list->tail = NULL;
    list->n_msgs--;
    msg->next = NULL;
    return msg;
}

void rf_bridge_msg_free(rf_bridge_msg_t *msg)
{
    if (!msg)
        return;
    if (msg->free_payload && msg->payload)
        msg->free_payload(msg->payload);
    free(msg);
}

void rf_bridge_list_free(rf_bridge_list_t *list)
{
    rf_bridge_msg_t *msg;
    while ((msg = rf_bridge_list_pop(list)) != NULL)
        rf_bridge_msg_free(msg);
}

static rf_bridge_msg_t *msg_new(rf_bridge_kind_t kind, int64_t job_id, int64_t value,
                                void *payload, rf_bridge_free_fn free_payload)
{
    rf_bridge_msg_t *msg = rf__bridge_alloc(sizeof *msg);
    if (!msg)
        return NULL;
    *msg = (rf_bridge_msg_t){.kind = kind, .job_id = job_id, .value = value,
                             .payload = payload, .free_payload = free_payload};
    return msg;
}

/* ------------------------------------------------------------ loop side */

/* Doorbell callback (loop thread): take every queued event in one swap
 * (invariant 2) and hand the batch to on_events outside the mutex, so the
 * engine can keep pushing while the loop works. */
static void on_doorbell(uv_async_t *handle)
{
    rf_bridge_t *bridge = handle->data;
    rf_bridge_list_t batch = {0};

    uv_mutex_lock(&bridge->mutex);
    bridge->counts.doorbells++;
    if (bridge->closing) {
        uv_mutex_unlock(&bridge->mutex);
        return;
    }
    list_splice(&batch, &bridge->events);
    bridge->counts.events_delivered += batch.n_msgs;
    bridge->counts.events_queued = 0;
    uv_mutex_unlock(&bridge->mutex);

    if (batch.head)
        bridge->on_events(bridge, &batch, bridge->ctx);
    rf_bridge_list_free(&batch);
}

int rf_bridge_init(rf_bridge_t *bridge, uv_loop_t *loop, rf_bridge_events_cb on_events,
                   void *ctx)
{
    int rc;

    *bridge = (rf_bridge_t){.on_events = on_events, .ctx = ctx};
    rc = uv_mutex_init(&bridge->mutex);
    if (rc < 0) {
        fprintf(stderr, "rocmforge: bridge.c:%d: uv_mutex_init: %s (%s)\n", __LINE__,
                uv_err_name(rc), uv_strerror(rc));
        return rc;
    }
    rc = uv_cond_init(&bridge->requests_ready);
    if (rc < 0) {
        fprintf(stderr, "rocmforge: bridge.c:%d: uv_cond_init: %s (%s)\n", __LINE__,
                uv_err_name(rc), uv_strerror(rc));
        uv_mutex_destroy(&bridge->mutex);
        return rc;
    }
    rc = uv_async_init(loop, &bridge->doorbell, on_doorbell);
    if (rc < 0) {
        fprintf(stderr, "rocmforge: bridge.c:%d: uv_async_init: %s (%s)\n", __LINE__,
                uv_err_name(rc), uv_strerror(rc));
        uv_cond_destroy(&bridge->requests_ready);
        uv_mutex_destroy(&bridge->mutex);
        return rc;
    }
    bridge->doorbell.data = bridge;
    return 0;
}

int rf_bridge_push_request(rf_bridge_t *bridge, rf_bridge_kind_t kind, int64_t job_id,
                           void *payload, rf_bridge_free_fn free_payload)
{
    rf_bridge_msg_t *msg = msg_new(kind, job_id, 0, payload, free_payload);
    if (!msg)
        return -ENOMEM;

    uv_mutex_lock(&bridge->mutex);
    if (bridge->closing) {
        uv_mutex_unlock(&bridge->mutex);
        free(msg); /* not the payload: it stays the caller's */
        return -EPIPE;
    }
    list_append(&bridge->requests, msg);
    bridge->counts.requests_pushed++;
    bridge->counts.requests_queued = bridge->requests.n_msgs;
    uv_cond_signal(&bridge->requests_ready);
    uv_mutex_unlock(&bridge->mutex);
    return 0;
}

void rf_bridge_get_counts(rf_bridge_t *bridge, rf_bridge_counts_t *out)
{
    uv_mutex_lock(&bridge->mutex);
    *out = bridge->counts;
    uv_mutex_unlock(&bridge->mutex);
}

/* Close callback (loop thread): invariant 4 (e). */
static void on_doorbell_closed(uv_handle_t *handle)
{
    rf_bridge_t *bridge = handle->data;
    rf_bridge_close_cb on_closed = bridge->on_closed;

    rf_bridge_list_free(&bridge->events);
    rf_bridge_list_free(&bridge->requests);
    bridge->counts.events_queued = 0;
    bridge->counts.requests_queued = 0;
    uv_cond_destroy(&bridge->requests_ready);
    uv_mutex_destroy(&bridge->mutex);
    if (on_closed)
        on_closed(bridge); /* may free bridge: nothing touches it after this */
}

void rf_bridge_close(rf_bridge_t *bridge, rf_bridge_close_cb on_closed)
{
    uv_mutex_lock(&bridge->mutex);
    assert(!bridge->closing && "rf_bridge_close called twice");
    bridge->closing = 1;
    bridge->on_closed = on_closed;
    uv_mutex_unlock(&bridge->mutex);
    uv_close((uv_handle_t *)&bridge->doorbell, on_doorbell_closed);
}

/* ---------------------------------------------------------- engine side */

int rf_bridge_wait_requests(rf_bridge_t *bridge, int timeout_ms, rf_bridge_list_t *out)
{
    uint64_t deadline_ns = timeout_ms > 0 ? uv_hrtime() + (uint64_t)timeout_ms * 1000000u : 0;
    int got;

    uv_mutex_lock(&bridge->mutex);
    while (!bridge->requests.head && timeout_ms != 0) {
        if (timeout_ms < 0) {
            uv_cond_wait(&bridge->requests_ready, &bridge->mutex);
            continue;
        }
        uint64_t now_ns = uv_hrtime();
        if (now_ns >= deadline_ns)
            break;
        /* Wakeups may be spurious: loop on the queue, not on the return. */
        (void)uv_cond_timedwait(&bridge->requests_ready, &bridge->mutex,
                                deadline_ns - now_ns);
    }
    got = bridge->requests.head != NULL;
    if (got) {
        bridge->counts.requests_taken += bridge->requests.n_msgs;
        list_splice(out, &bridge->requests);
        bridge->counts.requests_queued = 0;
    }
    uv_mutex_unlock(&bridge->mutex);
    return got ? 0 : 1;
}

int rf_bridge_push_event(rf_bridge_t *bridge, rf_bridge_kind_t kind, int64_t job_id,
                         int64_t value, void *payload, rf_bridge_free_fn free_payload)
{
    rf_bridge_msg_t *msg = msg_new(kind, job_id, value, payload, free_payload);
    int rc;

    if (!msg)
        return -ENOMEM;
    uv_mutex_lock(&bridge->mutex);
    if (bridge->closing) {
        uv_mutex_unlock(&bridge->mutex);
        free(msg); /* not the payload: it stays the caller's */
        return -EPIPE;
    }
    list_append(&bridge->events, msg);
    bridge->counts.events_pushed++;
    bridge->counts.events_queued = bridge->events.n_msgs;
    /* Under the mutex: invariant 3. */
    rc = uv_async_send(&bridge->doorbell);
    uv_mutex_unlock(&bridge->mutex);
    if (rc < 0) {
        fprintf(stderr, "rocmforge: bridge.c:%d: uv_async_send: %s (%s); job %lld's event "
                "stays queued for the next doorbell\n", __LINE__, uv_err_name(rc),
                uv_strerror(rc), (long long)job_id);
        return rc;
    }
    return 0;
}
