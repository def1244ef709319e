/*
 * lwatch.c - the watchdog: stops a handler call that runs too long in
 * wall-clock time.
 *
 * A count hook costs every VM instruction a call into the hook machinery
 * (in Lua 5.4 any count hook does, whatever its count): 10-20% of a run.
 * So by default no node state has a hook.  Instead one thread looks at
 * every node a few times a second.  A node's 'calls' counter is odd while
 * a handler runs; when it has stayed at the same odd value for longer than
 * the limit, the watchdog sets a count hook of 1 on that state, and the
 * hook raises at the node's next VM instruction.  lua_sethook is made to
 * be called asynchronously (from a signal handler in lua.c): it only
 * stores the hook, the masks and the trap flags.
 *
 * A handler that the watchdog stops fails its node as any error does.  A
 * run in which nothing is stopped is the same run as without a watchdog,
 * so it stays reproducible; where a stopped handler stopped depends on the
 * machine, and --budget N gives a limit at a fixed instruction count
 * instead (docs/budgets.md).
 *
 * Locking: 'lock' keeps a node state alive while the watchdog arms it: a
 * crash closes a state and a restart opens a new one (main thread, at a
 * barrier) under the same lock.  The counters are atomics.
 */
#include "lconsensus.h"
#include "cs_int.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct lcs_watch {
    lcs_run *run;
    double limit; /* seconds */
    pthread_t th;
    pthread_mutex_t lock; /* node states' lifetime; 'quit' */
    pthread_cond_t wake;
    int quit;
    unsigned *last; /* per node: the odd 'calls' value last seen */
    double *since;  /* ... and when it was first seen */
};

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One look at every node: arm those stuck in one call past the limit. */
static void sweep(lcs_watch *w, double now)
{
    uint32_t i;

    for (i = 0; i < w->run->n; i++) {
        lcs_node *nd = &w->run->nodes[i];
        unsigned c = atomic_load_explicit(&nd->calls, memory_order_relaxed);

        if ((c & 1u) == 0) {
            w->last[i] = c;
            continue;
        }
        if (c != w->last[i]) {
            w->last[i] = c;
            w->since[i] = now;
        } else if (now - w->since[i] >= w->limit) {
            /* Armed again at every look while the call goes on: a call
             * inside a long C function cannot be stopped until it returns
             * to the VM, and an arming may race with the hook's own reset
             * of a stale arming (lnode.c trip_hook). */
            lcs_node_trip(nd, c, w->limit);
        }
    }
}

static void *watch_main(void *arg)
{
    lcs_watch *w = arg;
    double period = w->limit / 4 < 0.1 ? w->limit / 4 : 0.1;

    if (period < 0.001) {
        period = 0.001;
    }
    pthread_mutex_lock(&w->lock);
    while (!w->quit) {
        struct timespec until;
        double t;

        clock_gettime(CLOCK_REALTIME, &until);
        t = (double)until.tv_nsec * 1e-9 + period;
        until.tv_sec += (time_t)floor(t);
        until.tv_nsec = (long)((t - floor(t)) * 1e9);
        if (pthread_cond_timedwait(&w->wake, &w->lock, &until) == ETIMEDOUT &&
            !w->quit) {
            pthread_mutex_unlock(&w->lock); /* lcs_node_trip takes it */
            sweep(w, mono_now());
            pthread_mutex_lock(&w->lock);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int lcs_watch_start(lcs_run *run, double limit)
{
    lcs_watch *w;

    run->watch = NULL;
    if (!(limit > 0) || run->n == 0) {
        return CS_OK;
    }
    if ((w = cs_calloc(1, sizeof *w)) == NULL) {
        return CS_ENOMEM;
    }
    w->run = run;
    w->limit = limit;
    w->last = cs_calloc(run->n, sizeof *w->last);
    w->since = cs_calloc(run->n, sizeof *w->since);
    if (w->last == NULL || w->since == NULL) {
        cs_free(w->last);
        cs_free(w->since);
        cs_free(w);
        return CS_ENOMEM;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    run->watch = w; /* before the thread: it reads run->watch */
    if (pthread_create(&w->th, NULL, watch_main, w) != 0) {
        run->watch = NULL;
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        cs_free(w->last);
        cs_free(w->since);
        cs_free(w);
        return CS_ENOMEM;
    }
    return CS_OK;
}

void lcs_watch_stop(lcs_run *run)
{
    lcs_watch *w = run->watch;

    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->lock);
    w->quit = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->th, NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    cs_free(w->last);
    cs_free(w->since);
    cs_free(w);
    run->watch = NULL;
}

void lcs_watch_hold(lcs_run *run)
{
    if (run != NULL && run->watch != NULL) {
        pthread_mutex_lock(&run->watch->lock);
    }
}

void lcs_watch_release(lcs_run *run)
{
    if (run != NULL && run->watch != NULL) {
        pthread_mutex_unlock(&run->watch->lock);
    }
}
