/*
 * pool.c - the scheduler's worker threads.
 *
 * threads - 1 workers plus the thread that called cs_sim_run.  A round
 * runs one phase (every node's start, or one window) over the active
 * nodes: each thread has a slice of the active list and runs it first
 * (a node keeps to one core, and its state to that core's cache), then
 * takes nodes from the other slices one at a time through their atomic
 * cursors; each node runs its events in (at, src, seq) order on exactly
 * one thread.  The merge phase hands out destination ranges through the
 * atomic index 'next'.
 *
 * A delivered message's reference is not dropped at once: each thread
 * gathers its window's drops per message (relmap) and gives them back
 * with one atomic operation per message when its share of the window is
 * done.  Otherwise the receivers of a broadcast, spread over both cores,
 * would bounce the message's cache line once per delivery.
 *
 * Hand-off: the main thread publishes a round by storing 'round' (release,
 * under 'lock') and broadcasting 'go'; a worker spins a little on 'round'
 * before it sleeps, since windows are often shorter than a wake-up.  The
 * phase (active list, window end) is written before the store, so the
 * acquire load that sees the new round sees it too.  'busy' counts the
 * workers still in the round; the one that takes it to 0 signals 'done'
 * under the lock, and the main thread spins on it, then sleeps.  'quit' is
 * read and written under 'lock'.  A node's data is touched only by the
 * thread running it in the current round.  No callback runs with the lock
 * held.
 */
#include "sim_int.h"

#define STUCK_EVENTS 1000000
/* Polls of 'round' or 'busy' before sleeping: some tens of microseconds. */
#define SPINS 20000

#include <string.h>

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* ------------------------------------------------ references given back */

static size_t rel_slot(const relmap *r, const cs_msg *m)
{
    uint64_t h = (uint64_t)(uintptr_t)m * UINT64_C(0x9E3779B97F4A7C15);

    return (size_t)(h >> 32) & (r->cap - 1);
}

static int rel_grow(relmap *r)
{
    size_t ncap = r->cap ? r->cap * 2 : 256, i;
    relmap nr = { 0 };

    nr.key = cs_calloc(ncap, sizeof *nr.key);
    nr.cnt = cs_calloc(ncap, sizeof *nr.cnt);
    nr.used = cs_calloc(ncap / 2, sizeof *nr.used);
    if (nr.key == NULL || nr.cnt == NULL || nr.used == NULL) {
        cs_free(nr.key);
        cs_free(nr.cnt);
        cs_free(nr.used);
        return CS_ENOMEM;
    }
    nr.cap = ncap;
    for (i = 0; i < r->len; i++) {
        size_t j = rel_slot(&nr, r->key[r->used[i]]);

        while (nr.key[j] != NULL) {
            j = (j + 1) & (ncap - 1);
        }
        nr.key[j] = r->key[r->used[i]];
        nr.cnt[j] = r->cnt[r->used[i]];
        nr.used[nr.len++] = j;
    }
    cs_free(r->key);
    cs_free(r->cnt);
    cs_free(r->used);
    *r = nr;
    return CS_OK;
}

/* Drop one reference to 'm', later. */
static void release(relmap *r, cs_msg *m)
{
    size_t j;

    if (m == NULL) {
        return;
    }
    if (r->direct) {
        cs_msg_unref(m);
        return;
    }
    if (2 * (r->len + 1) > r->cap && rel_grow(r) != CS_OK) {
        cs_msg_unref(m); /* no room to defer it: drop it now */
        return;
    }
    j = rel_slot(r, m);
    while (r->key[j] != NULL && r->key[j] != m) {
        j = (j + 1) & (r->cap - 1);
    }
    if (r->key[j] == NULL) {
        r->key[j] = m;
        r->cnt[j] = 0;
        r->used[r->len++] = j;
    }
    r->cnt[j]++;
}

/* Give back every reference gathered, one atomic operation per message. */
static void rel_flush(relmap *r)
{
    size_t i;

    for (i = 0; i < r->len; i++) {
        size_t j = r->used[i];

        cs__msg_unref_n(r->key[j], r->cnt[j]);
        r->key[j] = NULL;
    }
    r->len = 0;
}

void cs__pool_free_rel(relmap *r)
{
    rel_flush(r);
    cs_free(r->key);
    cs_free(r->cnt);
    cs_free(r->used);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------- the workers */

/* Done with a delivered or dropped message: give its reference back,
 * unless it is one of the window's shared broadcasts ('arr' owns those). */
static void done_with(relmap *rel, const cs_event *ev, int shared)
{
    if (!shared) {
        release(rel, ev->msg);
    }
}

/* Handle node 'id' for the current phase.  Runs on exactly one thread. */
static void run_node(cs_sim *sim, relmap *rel, uint32_t id)
{
    const cs_callbacks *cb = sim->cb;
    node_rt *n = &sim->nodes[id];
    size_t ai = 0; /* next of the window's shared broadcasts */
    cs_event ev;
    int rc;

    if (sim->phase == PHASE_START) {
        n->now = 0;
        if (cb->start != NULL && cb->start(cb->ud, sim, id) != 0) {
            n->failed = 1;
        }
        return;
    }
    for (;;) {
        const cs_event *top = cs__heap_top(&n->heap);
        int shared;

        /* The next shared broadcast for this node, if any. */
        while (ai < sim->narr && sim->arr[ai].dst == id) {
            ai++;
        }
        if (top != NULL && top->at >= sim->wend) {
            top = NULL;
        }
        if (ai < sim->narr &&
            (top == NULL || cs__event_less(&sim->arr[ai], top))) {
            ev = sim->arr[ai++]; /* 'arr' keeps the reference */
            shared = 1;
        } else if (top != NULL) {
            cs__heap_pop(&n->heap, &ev);
            shared = 0;
        } else {
            break;
        }
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
        if (ev.msg != NULL && !shared) {
            n->inbox--;
        }
        if (ev.at < n->paused_until) {
            /* A stalled node: the event waits for the end of the pause.
             * Its own heap, so pushing from this worker is safe; a shared
             * broadcast gets a reference of its own there. */
            ev.at = n->paused_until;
            if (shared) {
                cs_msg_ref(ev.msg);
            }
            if ((rc = cs__heap_push(&n->heap, &ev)) != CS_OK) {
                cs__sim_err(sim, rc);
                release(rel, ev.msg);
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
                done_with(rel, &ev, shared);
                continue;
            }
            if (n->failed) {
                done_with(rel, &ev, shared); /* a failed node handles nothing */
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
            done_with(rel, &ev, shared);
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

static void do_work(worker *w)
{
    cs_sim *sim = w->sim;
    size_t i, end, j, me, nw;

    if (sim->phase == PHASE_MERGE) {
        while ((i = atomic_fetch_add(&sim->next, 1)) < sim->nparts) {
            cs__sim_merge_part(sim, w, i);
        }
        return;
    }
    /* Each thread first runs its own slice of the active list, so a node
     * tends to run on the same core window after window and finds its
     * state in that core's cache; then it helps with the others' slices,
     * so the threads still finish together. */
    me = (size_t)(w - sim->workers);
    nw = (size_t)sim->nth + 1;
    for (j = 0; j < nw; j++) {
        slice *sl = &sim->slices[(me + j) % nw];

        end = sl->end;
        while ((i = atomic_fetch_add(&sl->next, 1)) < end) {
            run_node(sim, &w->rel, sim->active[i]);
        }
    }
    rel_flush(&w->rel);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    cs_sim *sim = w->sim;
    uint64_t seen = 0;
    int spins;

    for (;;) {
        for (spins = 0; spins < SPINS && atomic_load(&sim->round) == seen;
             spins++) {
            cpu_relax();
        }
        if (atomic_load(&sim->round) == seen) {
            cs_mutex_lock(&sim->lock);
            while (atomic_load(&sim->round) == seen && !sim->quit) {
                cs_cond_wait(&sim->go, &sim->lock);
            }
            if (sim->quit) {
                cs_mutex_unlock(&sim->lock);
                return NULL;
            }
            cs_mutex_unlock(&sim->lock);
        }
        seen = atomic_load(&sim->round);

        do_work(w);

        if (atomic_fetch_sub(&sim->busy, 1) == 1) {
            cs_mutex_lock(&sim->lock);
            cs_cond_signal(&sim->done);
            cs_mutex_unlock(&sim->lock);
        }
    }
}

/* Run the phase described by sim->phase/active/wend on every thread. */
void cs__pool_round(cs_sim *sim)
{
    size_t k, nw;
    int spins;

    atomic_store(&sim->next, 0);
    nw = (size_t)sim->nth + 1;
    for (k = 0; k < nw; k++) {
        atomic_store(&sim->slices[k].next, sim->nactive * k / nw);
        sim->slices[k].end = sim->nactive * (k + 1) / nw;
    }
    if (sim->nth == 0 || sim->nactive <= 1) {
        do_work(&sim->workers[0]);
        return;
    }
    atomic_store(&sim->busy, sim->nth);
    cs_mutex_lock(&sim->lock);
    atomic_fetch_add(&sim->round, 1);
    cs_cond_broadcast(&sim->go);
    cs_mutex_unlock(&sim->lock);

    do_work(&sim->workers[0]);

    for (spins = 0; spins < SPINS && atomic_load(&sim->busy) > 0; spins++) {
        cpu_relax();
    }
    if (atomic_load(&sim->busy) > 0) {
        cs_mutex_lock(&sim->lock);
        while (atomic_load(&sim->busy) > 0) {
            cs_cond_wait(&sim->done, &sim->lock);
        }
        cs_mutex_unlock(&sim->lock);
    }
}

int cs__pool_start(cs_sim *sim)
{
    unsigned i, nw = sim->cfg.threads > 1 ? sim->cfg.threads : 1;

    sim->nth = 0;
    if ((sim->workers = cs_calloc(nw, sizeof *sim->workers)) == NULL ||
        (sim->slices = cs_calloc(nw, sizeof *sim->slices)) == NULL) {
        cs_free(sim->workers);
        sim->workers = NULL;
        return CS_ENOMEM;
    }
    for (i = 0; i < nw; i++) {
        sim->workers[i].sim = sim;
    }
    if (sim->cfg.threads <= 1 || sim->cfg.nodes <= 1) {
        sim->workers[0].rel.direct = 1;
        return CS_OK;
    }
    CS_ASSERT(pthread_mutex_init(&sim->lock, NULL) == 0);
    CS_ASSERT(pthread_cond_init(&sim->go, NULL) == 0);
    CS_ASSERT(pthread_cond_init(&sim->done, NULL) == 0);
    atomic_init(&sim->round, 0);
    atomic_init(&sim->busy, 0);
    sim->quit = 0;
    sim->th = cs_calloc(sim->cfg.threads - 1, sizeof *sim->th);
    if (sim->th == NULL) {
        return CS_ENOMEM;
    }
    for (i = 0; i < sim->cfg.threads - 1; i++) {
        if (pthread_create(&sim->th[i], NULL, worker_main,
                           &sim->workers[i + 1]) != 0) {
            break; /* fewer workers only means less speed */
        }
        sim->nth++;
    }
    return CS_OK;
}

void cs__pool_stop(cs_sim *sim)
{
    unsigned i, nw = sim->cfg.threads > 1 ? sim->cfg.threads : 1;

    if (sim->workers == NULL) {
        return; /* cs__pool_start failed before anything started */
    }
    if (sim->cfg.threads > 1 && sim->cfg.nodes > 1) {
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
    for (i = 0; i < nw; i++) {
        cs__pool_free_rel(&sim->workers[i].rel);
        cs__free_recs(&sim->workers[i].extra);
        cs_free(sim->workers[i].extra.p);
    }
    cs_free(sim->workers);
    sim->workers = NULL;
    cs_free(sim->slices);
    sim->slices = NULL;
}
