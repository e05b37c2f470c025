/* pool.c - a fixed pool of worker threads for the CPU backend
 *
 * One run at a time: rf__cpu_pool_run() stores (fn, ctx), sets the count
 * of pending workers and bumps the generation (release); workers that see
 * the new generation (acquire) run their share and decrement pending; the
 * caller runs its own share as thread 0 and then waits for pending to
 * reach 0. A forward pass makes a few dozen runs per token, so waking
 * through a condition variable each time would cost more than the work at
 * decode batch sizes: workers spin on the generation for a while after
 * each run and only then sleep on the condition variable, so an idle
 * engine still costs no CPU. The caller re-checks under the mutex and
 * broadcasts, so a worker going to sleep never misses a run.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "cpu_internal.h"

/* Pause-loop iterations a worker spins before sleeping (tens to a few
 * hundred microseconds depending on the CPU's pause: longer than the gaps
 * between ops, far shorter than the gaps between batches of an idle
 * engine, short enough not to starve other processes on a busy machine). */
#define SPIN_BEFORE_SLEEP 2000
/* Pause-loop iterations the caller spins before yielding its core. */
#define SPIN_BEFORE_YIELD 2000

typedef struct worker_arg {
    rf__cpu_pool_t *pool;
    int ith;
} worker_arg_t;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *arg_)
{
    worker_arg_t arg = *(worker_arg_t *)arg_;
    free(arg_);
    rf__cpu_pool_t *pool = arg.pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        for (int spin = 0; gen == seen && spin < SPIN_BEFORE_SLEEP; spin++) {
            if (atomic_load_explicit(&pool->stop, memory_order_relaxed))
                return NULL;
            cpu_relax();
            gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        }
        if (gen == seen) {
            pthread_mutex_lock(&pool->mutex);
            while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen
                   && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->start, &pool->mutex);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop))
            return NULL;
        seen = gen;
        pool->fn(pool->ctx, arg.ith, pool->n_threads);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel);
    }
}

int rf__cpu_pool_init(rf__cpu_pool_t *pool, int n_threads)
{
    *pool = (rf__cpu_pool_t){0};
    pool->n_threads = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->start, NULL);
    if (pool->n_threads == 1)
        return 0;
    pool->workers = calloc((size_t)pool->n_threads - 1, sizeof *pool->workers);
    if (pool->workers == NULL) {
        rf__cpu_pool_free(pool);
        return -ENOMEM;
    }
    for (int i = 1; i < pool->n_threads; i++) {
        worker_arg_t *arg = malloc(sizeof *arg);
        if (arg == NULL) {
            rf__cpu_pool_free(pool);
            return -ENOMEM;
        }
        arg->pool = pool;
        arg->ith = i;
        int rc = pthread_create(&pool->workers[i - 1], NULL, worker_main, arg);
        if (rc != 0) {
            free(arg);
            rf__cpu_pool_free(pool);
            return -rc;
        }
        pool->n_started++;
    }
    return 0;
}

void rf__cpu_pool_free(rf__cpu_pool_t *pool)
{
    if (pool->n_threads == 0)
        return; /* zeroed */
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, true);
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 0; i < pool->n_started; i++)
        pthread_join(pool->workers[i], NULL);
    free(pool->workers);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->start);
    *pool = (rf__cpu_pool_t){0};
}

void rf__cpu_pool_run(rf__cpu_pool_t *pool, rf__cpu_task_fn fn, void *ctx)
{
    if (pool->n_threads <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    /* Wake sleepers; cheap when none wait (no futex call). */
    pthread_mutex_lock(&pool->mutex);
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->mutex);
    fn(ctx, 0, pool->n_threads);
    for (unsigned spin = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0;
         spin++) {
        if (spin < SPIN_BEFORE_YIELD)
            cpu_relax();
        else
            sched_yield(); /* a worker was descheduled: give it the core */
    }
}
