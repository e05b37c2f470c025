/* test_bridge.c - the loop <-> engine bridge: delivery, wakeups, teardown
 *
 * The test process's main thread plays the libuv loop thread; a uv_thread
 * plays the engine. Payload free functions count their calls, so leaks and
 * double frees show up in the counters as well as under ASan.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bridge.h"

/* ---------------------------------------------------------------- helpers */

static atomic_int payloads_freed;

static void count_free(void *payload)
{
    atomic_fetch_add(&payloads_freed, 1);
    free(payload);
}

static int64_t *new_payload(int64_t v)
{
    int64_t *p = malloc(sizeof *p);
    cr_assert_not_null(p);
    *p = v;
    return p;
}

static int closed_calls;

static void on_closed_count(rf_bridge_t *bridge)
{
    (void)bridge;
    closed_calls++;
}

static void on_events_unexpected(rf_bridge_t *bridge, rf_bridge_list_t *events, void *ctx)
{
    cr_assert_fail("on_events called with %zu events; none were expected", events->n_msgs);
}

static double now_ms(void)
{
    return (double)uv_hrtime() / 1e6;
}

/* ---------------------------------------------- events: order, coalescing */

enum { N_EVENTS = 100000 };

typedef struct stream_ctx {
    rf_bridge_t *bridge;
    int64_t next_expected; /* job id of the next event the loop should see */
    uint64_t callbacks;    /* on_events calls */
    int payload_bad;
    rf_bridge_counts_t counts_at_end; /* snapshot taken just before close */
} stream_ctx_t;

static void producer(void *arg)
{
    stream_ctx_t *s = arg;
    unsigned seed = 12345;
    int64_t i = 0;

    while (i < N_EVENTS) {
        int burst = 1 + (int)(rand_r(&seed) % 500);
        for (int k = 0; k < burst && i < N_EVENTS; k++, i++) {
            /* Every 7th event carries an owned payload equal to its id. */
            int64_t *payload = i % 7 == 0 ? new_payload(i) : NULL;
            int rc = rf_bridge_push_event(s->bridge, RF_BRIDGE_EV_FINISHED, i, i * 3,
                                          payload, payload ? count_free : NULL);
            cr_assert_eq(rc, 0, "push_event %lld: %d", (long long)i, rc);
        }
        if (rand_r(&seed) % 4 == 0)
            uv_sleep(1);
    }
}

static void on_stream_events(rf_bridge_t *bridge, rf_bridge_list_t *events, void *ctx)
{
    stream_ctx_t *s = ctx;
    rf_bridge_msg_t *msg;

    s->callbacks++;
    while ((msg = rf_bridge_list_pop(events)) != NULL) {
        if (msg->job_id != s->next_expected || msg->value != msg->job_id * 3 ||
            msg->kind != RF_BRIDGE_EV_FINISHED)
            s->payload_bad++;
        if (msg->payload && *(int64_t *)msg->payload != msg->job_id)
            s->payload_bad++;
        if ((msg->job_id % 7 == 0) != (msg->payload != NULL))
            s->payload_bad++;
        s->next_expected = msg->job_id + 1;
        rf_bridge_msg_free(msg);
    }
    if (s->next_expected == N_EVENTS) {
        rf_bridge_get_counts(bridge, &s->counts_at_end);
        rf_bridge_close(bridge, on_closed_count);
    }
}

Test(bridge, burst_events_delivered_once_in_order_with_coalesced_doorbells, .timeout = 60)
{
    uv_loop_t loop;
    rf_bridge_t bridge;
    stream_ctx_t s = {.bridge = &bridge};
    uv_thread_t engine;
    rf_bridge_counts_t counts;

    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(rf_bridge_init(&bridge, &loop, on_stream_events, &s), 0);
    cr_assert_eq(uv_thread_create(&engine, producer, &s), 0);
    /* The loop runs until the close callback removes the last handle. */
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_thread_join(&engine), 0);

    cr_expect_eq(s.payload_bad, 0, "%d events out of order or with wrong fields", s.payload_bad);
    cr_expect_eq(s.next_expected, N_EVENTS, "last event seen %lld", (long long)s.next_expected);
    cr_expect_eq(closed_calls, 1);
    cr_expect_eq(atomic_load(&payloads_freed), (N_EVENTS + 6) / 7);
    cr_expect_lt(s.callbacks, (uint64_t)N_EVENTS,
                 "doorbells did not coalesce: %llu callbacks for %d events",
                 (unsigned long long)s.callbacks, N_EVENTS);
    cr_expect_gt(s.callbacks, 1u);
    counts = s.counts_at_end;
    cr_expect_eq(counts.events_pushed, (uint64_t)N_EVENTS);
    cr_expect_eq(counts.events_delivered, (uint64_t)N_EVENTS);
    cr_expect_eq(counts.events_queued, 0u);
    cr_expect_geq(counts.doorbells, s.callbacks);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

typedef struct batch_ctx {
    size_t take_max;       /* pop at most this many per batch; 0: all */
    uint64_t callbacks;
    int64_t ids[8];
    size_t n_ids;
} batch_ctx_t;

static void on_batch_events(rf_bridge_t *bridge, rf_bridge_list_t *events, void *ctx)
{
    batch_ctx_t *b = ctx;
    rf_bridge_msg_t *msg;

    b->callbacks++;
    /* Messages left in the list are the bridge's to free after we return. */
    for (size_t taken = 0; b->take_max == 0 || taken < b->take_max; taken++) {
        msg = rf_bridge_list_pop(events);
        if (!msg)
            break;
        if (b->n_ids < 8)
            b->ids[b->n_ids++] = msg->job_id;
        rf_bridge_msg_free(msg);
    }
}

Test(bridge, pushes_before_the_loop_runs_arrive_in_one_batch)
{
    uv_loop_t loop;
    rf_bridge_t bridge;
    batch_ctx_t b = {.take_max = 2};
    rf_bridge_counts_t counts;

    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(rf_bridge_init(&bridge, &loop, on_batch_events, &b), 0);
    for (int64_t i = 0; i < 3; i++)
        cr_assert_eq(rf_bridge_push_event(&bridge, RF_BRIDGE_EV_FIRST_TOKEN, 10 + i, 0,
                                          new_payload(i), count_free), 0);
    rf_bridge_get_counts(&bridge, &counts);
    cr_expect_eq(counts.events_pushed, 3u);
    cr_expect_eq(counts.events_queued, 3u);
    cr_expect_eq(counts.events_delivered, 0u);

    uv_run(&loop, UV_RUN_NOWAIT);
    cr_expect_eq(b.callbacks, 1u, "three sends, %llu callbacks", (unsigned long long)b.callbacks);
    cr_assert_eq(b.n_ids, 2u, "the callback takes two of the batch");
    cr_expect_eq(b.ids[0], 10);
    cr_expect_eq(b.ids[1], 11);
    cr_expect_eq(atomic_load(&payloads_freed), 3, "the untaken event was not freed");
    rf_bridge_get_counts(&bridge, &counts);
    cr_expect_eq(counts.events_delivered, 3u);
    cr_expect_eq(counts.events_queued, 0u);

    rf_bridge_close(&bridge, NULL);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

/* --------------------------------------------------- requests: wakeups */

typedef struct waiter {
    rf_bridge_t *bridge;
    int timeout_ms;
    int rc;
    double waited_ms;
    rf_bridge_list_t got;
} waiter_t;

static void engine_wait(void *arg)
{
    waiter_t *w = arg;
    double t0 = now_ms();
    w->rc = rf_bridge_wait_requests(w->bridge, w->timeout_ms, &w->got);
    w->waited_ms = now_ms() - t0;
}

static void wake_test(int timeout_ms)
{
    uv_loop_t loop;
    rf_bridge_t bridge;
    uv_thread_t engine;
    waiter_t w = {.bridge = &bridge, .timeout_ms = timeout_ms};
    rf_bridge_counts_t counts;
    rf_bridge_msg_t *msg;

    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(rf_bridge_init(&bridge, &loop, on_events_unexpected, NULL), 0);
    cr_assert_eq(uv_thread_create(&engine, engine_wait, &w), 0);
    uv_sleep(100); /* let the engine block */
    cr_assert_eq(rf_bridge_push_request(&bridge, RF_BRIDGE_REQ_SUBMIT, 42, new_payload(42),
                                        count_free), 0);
    cr_assert_eq(uv_thread_join(&engine), 0);

    cr_expect_eq(w.rc, 0);
    cr_expect_lt(w.waited_ms, 5000.0, "engine woke after %.0f ms, not on the push", w.waited_ms);
    cr_assert_eq(w.got.n_msgs, 1u);
    msg = rf_bridge_list_pop(&w.got);
    cr_expect_eq(msg->kind, RF_BRIDGE_REQ_SUBMIT);
    cr_expect_eq(msg->job_id, 42);
    cr_expect_eq(*(int64_t *)msg->payload, 42);
    rf_bridge_msg_free(msg);
    cr_expect_eq(atomic_load(&payloads_freed), 1);
    rf_bridge_get_counts(&bridge, &counts);
    cr_expect_eq(counts.requests_pushed, 1u);
    cr_expect_eq(counts.requests_taken, 1u);
    cr_expect_eq(counts.requests_queued, 0u);

    rf_bridge_close(&bridge, NULL);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(bridge, request_wakes_engine_before_long_timeout, .timeout = 30)
{
    wake_test(20000);
}

Test(bridge, request_wakes_engine_waiting_without_limit, .timeout = 30)
{
    wake_test(-1);
}

Test(bridge, wait_timeouts, .timeout = 30)
{
    uv_loop_t loop;
    rf_bridge_t bridge;
    rf_bridge_list_t got = {0};
    double t0, waited;

    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(rf_bridge_init(&bridge, &loop, on_events_unexpected, NULL), 0);

    /* Timeout 0 with nothing queued: returns 1 at once. */
    t0 = now_ms();
    cr_expect_eq(rf_bridge_wait_requests(&bridge, 0, &got), 1);
    waited = now_ms() - t0;
    cr_expect_lt(waited, 50.0, "poll took %.1f ms", waited);
    cr_expect_null(got.head);

    /* A short timeout waits it out, and no longer than needed. */
    t0 = now_ms();
    cr_expect_eq(rf_bridge_wait_requests(&bridge, 100, &got), 1);
    waited = now_ms() - t0;
    cr_expect_geq(waited, 99.0, "returned after %.1f ms of a 100 ms timeout", waited);
    cr_expect_lt(waited, 2000.0);

    /* Timeout 0 with requests queued: all of them, in order, appended. */
    cr_assert_eq(rf_bridge_push_request(&bridge, RF_BRIDGE_REQ_CANCEL, 7, NULL, NULL), 0);
    cr_assert_eq(rf_bridge_push_request(&bridge, RF_BRIDGE_REQ_DRAIN, -1, NULL, NULL), 0);
    cr_assert_eq(rf_bridge_push_request(&bridge, RF_BRIDGE_REQ_STOP, -1, NULL, NULL), 0);
    cr_expect_eq(rf_bridge_wait_requests(&bridge, 0, &got), 0);
    cr_assert_eq(got.n_msgs, 3u);
    cr_expect_eq(got.head->kind, RF_BRIDGE_REQ_CANCEL);
    cr_expect_eq(got.head->job_id, 7);
    cr_expect_eq(got.head->next->kind, RF_BRIDGE_REQ_DRAIN);
    cr_expect_eq(got.tail->kind, RF_BRIDGE_REQ_STOP);
    cr_expect_eq(rf_bridge_wait_requests(&bridge, 0, &got), 1, "requests handed out twice");
    cr_expect_eq(got.n_msgs, 3u);
    rf_bridge_list_free(&got);
    cr_expect_eq(got.n_msgs, 0u);

    rf_bridge_close(&bridge, NULL);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

/* --------------------------------------------------------------- teardown */

Test(bridge, close_frees_undelivered_messages)
{
    uv_loop_t loop;
    rf_bridge_t bridge;

    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(rf_bridge_init(&bridge, &loop, on_events_unexpected, NULL), 0);
    for (int64_t i = 0; i < 5; i++)
        cr_assert_eq(rf_bridge_push_event(&bridge, RF_BRIDGE_EV_CHECKPOINT, i, 0,
                                          new_payload(i), count_free), 0);
    for (int64_t i = 0; i < 4; i++)
        cr_assert_eq(rf_bridge_push_request(&bridge, RF_BRIDGE_REQ_SUBMIT, i, new_payload(i),
                                            count_free), 0);
    /* A message with an unowned payload is freed without touching it. */
    static int64_t borrowed = 99;
    cr_assert_eq(rf_bridge_push_request(&bridge, RF_BRIDGE_REQ_CANCEL, 3, &borrowed, NULL), 0);

    rf_bridge_close(&bridge, on_closed_count);
    cr_expect_eq(atomic_load(&payloads_freed), 0, "freed before the close callback");
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0); /* events are not delivered after close */
    cr_expect_eq(closed_calls, 1);
    cr_expect_eq(atomic_load(&payloads_freed), 9);
    cr_expect_eq(borrowed, 99);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

typedef struct order_ctx {
    int step;              /* 1: close returned; 2: on_closed ran */
    int closed_at_step;
    int events_payload_freed_at_close;
} order_ctx_t;

static order_ctx_t order;

static void on_closed_free(rf_bridge_t *bridge)
{
    order.closed_at_step = order.step;
    order.events_payload_freed_at_close = atomic_load(&payloads_freed);
    order.step = 2;
    free(bridge); /* allowed from here on; ASan catches any later use */
}

Test(bridge, close_callback_runs_after_uv_close_and_pushes_are_refused)
{
    uv_loop_t loop;
    rf_bridge_t *bridge = malloc(sizeof *bridge);
    int64_t *payload;

    cr_assert_not_null(bridge);
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(rf_bridge_init(bridge, &loop, on_events_unexpected, NULL), 0);
    cr_assert_eq(rf_bridge_push_event(bridge, RF_BRIDGE_EV_FAILED, 5, -1001, new_payload(5),
                                      count_free), 0);

    rf_bridge_close(bridge, on_closed_free);
    order.step = 1;
    cr_expect_eq(order.closed_at_step, 0, "on_closed ran inside rf_bridge_close");

    /* Closing: both directions refuse, and the payload stays the caller's. */
    payload = new_payload(6);
    cr_expect_eq(rf_bridge_push_event(bridge, RF_BRIDGE_EV_FINISHED, 6, 0, payload,
                                      count_free), -EPIPE);
    cr_expect_eq(rf_bridge_push_request(bridge, RF_BRIDGE_REQ_SUBMIT, 6, payload, count_free),
                 -EPIPE);
    cr_expect_eq(*payload, 6);
    free(payload);

    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_expect_eq(order.closed_at_step, 1, "on_closed did not run after close returned");
    cr_expect_eq(order.events_payload_freed_at_close, 1,
                 "undelivered messages not freed before on_closed");
    cr_expect_eq(order.step, 2);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ------------------------------------------------------ allocation failure */

static int allocs_to_fail;

static void *failing_alloc(size_t size)
{
    if (allocs_to_fail > 0) {
        allocs_to_fail--;
        return NULL;
    }
    return malloc(size);
}

Test(bridge, enomem_leaves_queues_and_payload_unchanged)
{
    uv_loop_t loop;
    rf_bridge_t bridge;
    batch_ctx_t b = {0};
    rf_bridge_counts_t before, after;
    rf_bridge_list_t got = {0};
    int64_t *payload = new_payload(2);

    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(rf_bridge_init(&bridge, &loop, on_batch_events, &b), 0);
    cr_assert_eq(rf_bridge_push_event(&bridge, RF_BRIDGE_EV_FINISHED, 1, 0, NULL, NULL), 0);
    cr_assert_eq(rf_bridge_push_request(&bridge, RF_BRIDGE_REQ_SUBMIT, 1, NULL, NULL), 0);
    rf_bridge_get_counts(&bridge, &before);

    rf__bridge_alloc = failing_alloc;
    allocs_to_fail = 2;
    cr_expect_eq(rf_bridge_push_event(&bridge, RF_BRIDGE_EV_FINISHED, 2, 0, payload,
                                      count_free), -ENOMEM);
    cr_expect_eq(rf_bridge_push_request(&bridge, RF_BRIDGE_REQ_SUBMIT, 2, payload, count_free),
                 -ENOMEM);
    rf_bridge_get_counts(&bridge, &after);
    cr_expect_eq(memcmp(&before, &after, sizeof before), 0, "counters moved on ENOMEM");
    cr_expect_eq(atomic_load(&payloads_freed), 0, "payload freed on ENOMEM");

    /* The caller retries; the queue holds 1 then 2, in order. */
    cr_assert_eq(rf_bridge_push_event(&bridge, RF_BRIDGE_EV_FINISHED, 2, 0, payload,
                                      count_free), 0);
    rf__bridge_alloc = malloc;
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(b.n_ids, 2u);
    cr_expect_eq(b.ids[0], 1);
    cr_expect_eq(b.ids[1], 2);
    cr_expect_eq(atomic_load(&payloads_freed), 1);
    cr_expect_eq(rf_bridge_wait_requests(&bridge, 0, &got), 0);
    cr_expect_eq(got.n_msgs, 1u);
    rf_bridge_list_free(&got);

    rf_bridge_close(&bridge, NULL);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&loop), 0);
}
