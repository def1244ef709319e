/*
 * pool.c - the scheduler's worker threads.
 *
 * threads - 1 workers plus the thread that called cs_sim_run.  A round
 * runs one phase (every node's start, or one window) over the active
 * nodes: each node is handed to exactly one thread through the atomic
 * index 'next', and runs its events in (at, src, seq) order.
 *
 * Locking: 'lock' protects 'round', 'busy' and 'quit'.  The phase (active
 * list, window end) is written by the main thread before it takes the lock
 * to start a round and read by workers after they take it, so the lock
 * orders them.  A node's data is touched only by the thread running it in
 * the current round.  No callback runs with the lock held.
 */
#include "sim_int.h"

#define STUCK_EVENTS 1000000

#include <string.h>

/* ---------------------------------------------------------- the workers */

/* Handle node 'id' for the current phase.  Runs on exactly one thread. */
static void run_node(cs_sim *sim, uint32_t id)
{
    const cs_callbacks *cb = sim->cb;
    node_rt *n = &sim->nodes[id];
    cs_event ev;
    int rc;

    if (sim->phase == PHASE_START) {
        n->now = 0;
        if (cb->start != NULL && cb->start(cb->ud, sim, id) != 0) {
            n->failed = 1;
        }
        return;
    }
    while (n->heap.len > 0 && cs__heap_top(&n->heap)->at < sim->wend) {
        cs__heap_pop(&n->heap, &ev);
        /* A node that keeps making events at one instant (a timer set to
         * 0 ms from its own handler) would stop virtual time for ever. */
        if (ev.at == n->stuck_at) {
            if (++n->stuck_count > STUCK_EVENTS && !n->failed) {
                static const char why[] =
                    "timer\nmore than 1000000 events at one instant without "
                    "time advancing (a zero-delay timer loop?)";

                n->failed = 1;
                cs_sim_emit(sim, id, CS_OUT_CORE, why, sizeof why - 1);
            }
        } else {
            n->stuck_at = ev.at;
            n->stuck_count = 0;
        }
        if (ev.msg != NULL) {
            n->inbox--;
        }
        if (ev.at < n->paused_until) {
            /* A stalled node: the event waits for the end of the pause.
             * Its own heap, so pushing from this worker is safe. */
            ev.at = n->paused_until;
            if ((rc = cs__heap_push(&n->heap, &ev)) != CS_OK) {
                cs__sim_err(sim, rc);
                cs_msg_unref(ev.msg);
            } else if (ev.msg != NULL) {
                n->inbox++;
            }
            continue;
        }
        if (ev.msg != NULL) {
            n->now = ev.at;
            if (n->down) {
                n->st.dropped++;
                n->st.dropped_down++;
                if (sim->cfg.trace) {
                    cs__sim_trace_msg(sim, n, id, CS_TR_DROP, ev.src, ev.src,
                                      ev.seq, ev.msg, CS_DROP_DOWN, 0);
                }
                cs_msg_unref(ev.msg);
                continue;
            }
            if (n->failed) {
                cs_msg_unref(ev.msg); /* a failed node handles nothing */
                continue;
            }
            n->st.delivered++;
            if (sim->cfg.trace) {
                cs__sim_trace_msg(sim, n, id, CS_TR_DELIVER, ev.src, ev.src,
                                  ev.seq, ev.msg, 0, 0);
            }
            rc = cb->message != NULL
                     ? cb->message(cb->ud, sim, id, ev.src, ev.msg)
                     : 0;
            cs_msg_unref(ev.msg);
        } else if (ev.tag < n->ntgen && ev.gen == n->tgen[ev.tag] &&
                   !n->failed && !n->down) {
            n->now = ev.at;
            n->tgen[ev.tag]++; /* fired: no longer pending */
            n->st.timers++;
            if (sim->cfg.trace) {
                cs_trace_rec tr;

                memset(&tr, 0, sizeof tr);
                tr.kind = CS_TR_TIMER;
                tr.peer = CS_NO_NODE;
                tr.tag = ev.tag;
                cs__sim_trace(sim, &n->recs, id, n->now, n->seq++, &tr);
            }
            rc = cb->timer != NULL ? cb->timer(cb->ud, sim, id, ev.tag) : 0;
        } else {
            continue; /* a cancelled or replaced timer */
        }
        if (rc != 0) {
            n->failed = 1;
        }
    }
}

static void do_work(cs_sim *sim)
{
    size_t i;

    while ((i = atomic_fetch_add(&sim->next, 1)) < sim->nactive) {
        run_node(sim, sim->active[i]);
    }
}

static void *worker_main(void *arg)
{
    cs_sim *sim = arg;
    uint64_t seen = 0;

    for (;;) {
        cs_mutex_lock(&sim->lock);
        while (sim->round == seen && !sim->quit) {
            cs_cond_wait(&sim->go, &sim->lock);
        }
        if (sim->quit) {
            cs_mutex_unlock(&sim->lock);
            return NULL;
        }
        seen = sim->round;
        cs_mutex_unlock(&sim->lock);

        do_work(sim);

        cs_mutex_lock(&sim->lock);
        if (--sim->busy == 0) {
            cs_cond_signal(&sim->done);
        }
        cs_mutex_unlock(&sim->lock);
    }
}

/* Run the phase described by sim->phase/active/wend on every thread. */
void cs__pool_round(cs_sim *sim)
{
    atomic_store(&sim->next, 0);
    if (sim->nth == 0 || sim->nactive <= 1) {
        do_work(sim);
        return;
    }
    cs_mutex_lock(&sim->lock);
    sim->round++;
    sim->busy = sim->nth;
    cs_cond_broadcast(&sim->go);
    cs_mutex_unlock(&sim->lock);

    do_work(sim);

    cs_mutex_lock(&sim->lock);
    while (sim->busy > 0) {
        cs_cond_wait(&sim->done, &sim->lock);
    }
    cs_mutex_unlock(&sim->lock);
}

int cs__pool_start(cs_sim *sim)
{
    unsigned i;

    sim->nth = 0;
    if (sim->cfg.threads <= 1 || sim->cfg.nodes <= 1) {
        return CS_OK;
    }
    CS_ASSERT(pthread_mutex_init(&sim->lock, NULL) == 0);
    CS_ASSERT(pthread_cond_init(&sim->go, NULL) == 0);
    CS_ASSERT(pthread_cond_init(&sim->done, NULL) == 0);
    sim->round = 0;
    sim->quit = 0;
    sim->th = cs_calloc(sim->cfg.threads - 1, sizeof *sim->th);
    if (sim->th == NULL) {
        return CS_ENOMEM;
    }
    for (i = 0; i < sim->cfg.threads - 1; i++) {
        if (pthread_create(&sim->th[i], NULL, worker_main, sim) != 0) {
            break; /* fewer workers only means less speed */
        }
        sim->nth++;
    }
    return CS_OK;
}

void cs__pool_stop(cs_sim *sim)
{
    unsigned i;

    if (sim->cfg.threads <= 1 || sim->cfg.nodes <= 1) {
        return;
    }
    if (sim->th != NULL) {
        cs_mutex_lock(&sim->lock);
        sim->quit = 1;
        cs_cond_broadcast(&sim->go);
        cs_mutex_unlock(&sim->lock);
        for (i = 0; i < sim->nth; i++) {
            CS_ASSERT(pthread_join(sim->th[i], NULL) == 0);
        }
        cs_free(sim->th);
        sim->th = NULL;
    }
    pthread_cond_destroy(&sim->go);
    pthread_cond_destroy(&sim->done);
    pthread_mutex_destroy(&sim->lock);
}
