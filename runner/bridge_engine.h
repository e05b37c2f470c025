/* bridge_engine.h - the engine-facing half of the loop <-> engine bridge
 *
 * The engine thread's driver sees the bridge only through this header: an
 * opaque rf_bridge_t, the message type, and the two calls the engine thread
 * makes (wait for requests, push an event). Nothing here names a libuv type,
 * so code on the engine side never includes uv.h. The loop side (init, push a
 * request, close, counts) is in bridge.h.
 *
 * A message is a heap node tagged by its kind: a job id, one scalar whose
 * meaning the kind gives, and an owned payload pointer with the function that frees it. The
 * bridge never looks inside a payload; whoever pops a message owns it and
 * frees it with rf_bridge_msg_free().
 */
#ifndef RF_BRIDGE_ENGINE_H
#define RF_BRIDGE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

typedef struct rf_bridge rf_bridge_t;

typedef enum rf_bridge_kind {
    /* loop -> engine (requests) */
    RF_BRIDGE_REQ_SUBMIT = 1, /* new job: payload = token ids + params */
    RF_BRIDGE_REQ_CANCEL,     /* cancel job_id; no payload */
    RF_BRIDGE_REQ_DRAIN,      /* finish or checkpoint running jobs, take no new ones */
    RF_BRIDGE_REQ_STOP,       /* leave the engine loop; the thread exits */
    /* engine -> loop (events) */
    RF_BRIDGE_EV_FIRST_TOKEN, /* value = when the first token was sampled (ms) */
    RF_BRIDGE_EV_FINISHED,    /* payload = tokens, text and metrics */
    RF_BRIDGE_EV_FAILED,      /* value = negative rf code; payload optional */
    RF_BRIDGE_EV_CHECKPOINT,  /* payload = the job's resumable state */
    RF_BRIDGE_EV_DRAINED,     /* after a DRAIN: every checkpoint was pushed, the
                                 engine holds no job; job_id -1 */
} rf_bridge_kind_t;

/* Frees a payload; called exactly once per payload the bridge owns. */
typedef void (*rf_bridge_free_fn)(void *payload);

typedef struct rf_bridge_msg {
    struct rf_bridge_msg *next;   /* intrusive FIFO link; owned by the list */
    rf_bridge_kind_t kind;
    int64_t job_id;               /* jobs.id; -1 for DRAIN and STOP */
    int64_t value;                /* by kind: EV_FAILED: negative rf code;
                                   * EV_FIRST_TOKEN: monotonic ms; else 0 */
    void *payload;                /* owned; NULL allowed */
    rf_bridge_free_fn free_payload; /* NULL: payload is not freed (not owned) */
} rf_bridge_msg_t;

/* A FIFO of messages; a zeroed list is empty. */
typedef struct rf_bridge_list {
    rf_bridge_msg_t *head;
    rf_bridge_msg_t *tail;
    size_t n_msgs;
} rf_bridge_list_t;

/* Remove and return the oldest message (NULL when empty); the caller owns it. */
rf_bridge_msg_t *rf_bridge_list_pop(rf_bridge_list_t *list);

/* Free every message in the list with rf_bridge_msg_free(); leaves it empty. */
void rf_bridge_list_free(rf_bridge_list_t *list);

/* Free the payload through its free function, then the node. NULL is fine. */
void rf_bridge_msg_free(rf_bridge_msg_t *msg);

/* Engine thread: wait until requests are queued or timeout_ms passes, and
 * append all queued requests, oldest first, to *out. timeout_ms == 0 polls
 * and returns at once (the engine has running sequences and checks between
 * steps); timeout_ms < 0 waits with no limit (the engine is idle).
 * Returns 0 (at least one request appended), 1 (timed out, *out unchanged).
 * Must not be called after rf_bridge_close(). */
int rf_bridge_wait_requests(rf_bridge_t *bridge, int timeout_ms, rf_bridge_list_t *out);

/* Engine thread: queue one event and ring the loop's doorbell. The event is
 * delivered to the loop's on_events callback; doorbells coalesce, but every
 * event is delivered exactly once, in push order.
 * Takes ownership of payload on success only. Returns 0; -ENOMEM (no node
 * could be allocated: queue unchanged, payload still the caller's); -EPIPE
 * (rf_bridge_close() has started: queue unchanged, payload still the
 * caller's); or a -errno from uv_async_send (logged; the event stays queued
 * and is delivered by the next doorbell, or freed by close). */
int rf_bridge_push_event(rf_bridge_t *bridge, rf_bridge_kind_t kind, int64_t job_id,
                         int64_t value, void *payload, rf_bridge_free_fn free_payload);

#endif /* RF_BRIDGE_ENGINE_H */
