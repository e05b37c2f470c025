/* bridge.h - the queue between the libuv loop thread and the engine thread
 *
 * Two FIFOs under one mutex: requests (loop -> engine: submit, cancel,
 * drain, stop) and events (engine -> loop: first token, finished, failed,
 * checkpoint). The engine thread sleeps on a condition variable that
 * rf_bridge_push_request() signals; the loop thread is woken by a uv_async_t
 * that rf_bridge_push_event() rings. The async handle is a doorbell only:
 * libuv coalesces sends, so its callback drains the whole event queue and the
 * messages always travel through the queue, never through the handle.
 *
 * This header is the loop side; bridge_engine.h is the part the engine
 * thread's driver uses and has no libuv types. The struct is defined here so
 * the loop side can allocate it; treat its fields as private.
 */
#ifndef RF_BRIDGE_H
#define RF_BRIDGE_H

#include <stdint.h>
#include <uv.h>

#include "bridge_engine.h"

/* Loop thread: a batch of delivered events, oldest first. The callback owns
 * the messages it pops (free each with rf_bridge_msg_free()); the bridge
 * frees those still in the list when the callback returns. */
typedef void (*rf_bridge_events_cb)(rf_bridge_t *bridge, rf_bridge_list_t *events,
                                    void *ctx);

/* Loop thread: the bridge is closed and may be freed (by this callback). */
typedef void (*rf_bridge_close_cb)(rf_bridge_t *bridge);

/* Progress counters (messages, not bytes). */
typedef struct rf_bridge_counts {
    uint64_t requests_pushed;   /* accepted by rf_bridge_push_request */
    uint64_t requests_taken;    /* handed to the engine by rf_bridge_wait_requests */
    uint64_t events_pushed;     /* accepted by rf_bridge_push_event */
    uint64_t events_delivered;  /* passed to on_events */
    uint64_t doorbells;         /* async callbacks run: fewer than events when sends coalesce */
    uint64_t requests_queued;   /* now waiting for the engine */
    uint64_t events_queued;     /* now waiting for the loop */
} rf_bridge_counts_t;

struct rf_bridge {
    uv_async_t doorbell;        /* loop thread only (uv_async_send: any thread) */
    uv_mutex_t mutex;           /* guards everything below */
    uv_cond_t requests_ready;   /* signalled on each pushed request */
    rf_bridge_list_t requests;  /* loop -> engine */
    rf_bridge_list_t events;    /* engine -> loop */
    rf_bridge_counts_t counts;
    int closing;                /* set by rf_bridge_close: pushes refused */
    rf_bridge_events_cb on_events;
    rf_bridge_close_cb on_closed;
    void *ctx;
};

/* Loop thread: set up a caller-allocated bridge on loop. on_events runs on
 * the loop thread with every batch of events. Returns 0, or a -errno from
 * libuv (logged with its uv name); on failure nothing is left to close and
 * no callback is ever called. The async handle keeps the loop alive until
 * rf_bridge_close(). */
int rf_bridge_init(rf_bridge_t *bridge, uv_loop_t *loop, rf_bridge_events_cb on_events,
                   void *ctx);

/* Loop thread: queue one request for the engine and wake it if it waits.
 * Takes ownership of payload on success only. Returns 0, -ENOMEM (queue
 * unchanged, payload still the caller's) or -EPIPE (closing; same). */
int rf_bridge_push_request(rf_bridge_t *bridge, rf_bridge_kind_t kind, int64_t job_id,
                           void *payload, rf_bridge_free_fn free_payload);

/* Loop thread: a consistent snapshot of the counters. */
void rf_bridge_get_counts(rf_bridge_t *bridge, rf_bridge_counts_t *out);

/* Loop thread: start closing. Pushes are refused from now on; the handle is
 * closed with uv_close; in its close callback the undelivered events and
 * untaken requests are freed with their free functions, the mutex and
 * condition variable destroyed, and then on_closed (may be NULL) is called:
 * only from then on may the bridge's memory be freed. on_events is not called
 * after this. Call once, after a successful init, with the engine thread
 * joined (see invariant 4 in bridge.c). */
void rf_bridge_close(rf_bridge_t *bridge, rf_bridge_close_cb on_closed);

/* Test hook: the node allocator (malloc by default). Tests swap it to
 * inject allocation failure; set it only while no other thread pushes. */
extern void *(*rf__bridge_alloc)(size_t size);

#endif /* RF_BRIDGE_H */
