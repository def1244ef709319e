/*
 * barrier.c - what happens between two windows.
 *
 * The main thread alone, workers idle: each send of the window is offered
 * to its destination's inbox (where the inbox cap and overflow policy
 * apply), messages blocked by a full inbox get in as room appears, and the
 * window's records (proposals, decisions, claims, output, trace) are
 * sorted by (at, node, seq) and handed to the checker and the embedder.
 * The heap key is unique, so the order of pushes is irrelevant; sorting
 * the records makes their order independent of the worker that made them.
 */
#include "sim_int.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------- the barrier */

static int rec_cmp(const void *pa, const void *pb)
{
    const record *a = pa, *b = pb;

    if (a->at != b->at) {
        return a->at < b->at ? -1 : 1;
    }
    if (a->node != b->node) {
        return a->node < b->node ? -1 : 1;
    }
    return a->seq < b->seq ? -1 : (a->seq > b->seq);
}

/* A message dropped at a full inbox, decided at the barrier: stamped with
 * the last instant of the window it was sent in, so the trace stays in
 * time order. */
static void drop_overflow(cs_sim *sim, cs_event *ev, vec *extra)
{
    node_rt *d = &sim->nodes[ev->dst];

    d->st.dropped++;
    d->st.dropped_overflow++;
    if (sim->cfg.trace) {
        cs_trace_rec tr;

        memset(&tr, 0, sizeof tr);
        tr.kind = CS_TR_DROP;
        tr.peer = ev->src;
        tr.src = ev->src;
        tr.id = ev->seq;
        tr.msg_kind = cs_msg_kind(ev->msg);
        tr.size = (uint32_t)cs_msg_len(ev->msg);
        tr.reason = CS_DROP_OVERFLOW;
        cs__sim_trace(sim, extra, ev->dst, sim->wend - 1, d->seq++, &tr);
    }
    cs_msg_unref(ev->msg);
}

static int push_inbox(node_rt *d, cs_event *ev)
{
    int rc = cs__heap_push(&d->heap, ev);

    if (rc == CS_OK) {
        d->inbox++;
    } else {
        cs_msg_unref(ev->msg);
    }
    return rc;
}

/* Hand one sent message (its reference with it) to its destination,
 * applying the inbox cap.  At a barrier, by the one thread that merges
 * into this destination; drop records go to 'extra', and messages put in
 * a blocked list are counted in *nblocked. */
static int offer(cs_sim *sim, cs_event *ev, vec *extra, size_t *nblocked)
{
    node_rt *d = &sim->nodes[ev->dst];
    cs_event victim;
    uint64_t k;
    size_t i;
    int rc;

    if (sim->cfg.inbox_cap == 0 || d->inbox < sim->cfg.inbox_cap) {
        return push_inbox(d, ev);
    }
    switch (sim->cfg.overflow) {
    case CS_OVERFLOW_BLOCK:
        if ((rc = cs__vec_push(&d->blocked, ev, sizeof *ev)) != CS_OK) {
            cs_msg_unref(ev->msg);
            return rc;
        }
        ++*nblocked;
        return CS_OK;
    case CS_OVERFLOW_DROP_RANDOM:
        /* One of the pending messages or the new one, uniformly. */
        k = cs_rng_below(&d->brng, (uint64_t)d->inbox + 1);
        for (i = 0; k < d->inbox && i < d->heap.len; i++) {
            if (d->heap.ev[i].msg != NULL && k-- == 0) {
                cs__heap_remove(&d->heap, i, &victim);
                d->inbox--;
                drop_overflow(sim, &victim, extra);
                return push_inbox(d, ev);
            }
        }
        drop_overflow(sim, ev, extra); /* the new one was drawn */
        return CS_OK;
    default:
        drop_overflow(sim, ev, extra);
        return CS_OK;
    }
}

/* Under CS_OVERFLOW_BLOCK, let waiting messages in as room appears, the
 * earliest (at, src, seq) first, arriving no earlier than the next
 * window. */
static int unblock(cs_sim *sim)
{
    uint32_t i;
    int rc = CS_OK;

    for (i = 0; i < sim->cfg.nodes && sim->nblocked > 0; i++) {
        node_rt *d = &sim->nodes[i];
        cs_event *b = d->blocked.p;

        while (d->blocked.len > 0 && d->inbox < sim->cfg.inbox_cap) {
            size_t j, best = 0;
            cs_event ev;

            for (j = 1; j < d->blocked.len; j++) {
                if (cs__event_less(&b[j], &b[best])) {
                    best = j;
                }
            }
            ev = b[best];
            b[best] = b[--d->blocked.len];
            sim->nblocked--;
            if (ev.at < sim->wend) {
                ev.at = sim->wend;
            }
            if (rc == CS_OK) {
                rc = push_inbox(d, &ev);
            } else {
                cs_msg_unref(ev.msg);
            }
        }
    }
    return rc;
}

static int append_recs(cs_sim *sim, vec *v, size_t *nrec, int ok)
{
    if (!ok) {
        cs__free_recs(v);
        return 0;
    }
    if (v->len > 0) { /* v->p may still be NULL */
        memcpy(sim->recbuf + *nrec, v->p, v->len * sizeof(record));
    }
    *nrec += v->len;
    v->len = 0;
    return 1;
}

static int dispatch(cs_sim *sim, record *r)
{
    uint32_t id = r->node;
    int honest = id < sim->cfg.nodes && !sim->nodes[id].byz;

    switch (r->type) {
    case REC_PROPOSE:
    case REC_PROPOSE_ANY:
        if (honest) {
            return cs__check_propose(sim->check, id, r->slot,
                                     r->type == REC_PROPOSE_ANY, r->at, r->data,
                                     r->len);
        }
        return CS_OK;
    case REC_CLAIM:
        return honest ? cs__check_claim(sim->check, id, r->at, r->data, r->len)
                      : CS_OK;
    case REC_DECIDE:
        if (sim->cfg.trace && sim->cb->trace != NULL) {
            cs_trace_rec tr;

            memset(&tr, 0, sizeof tr);
            tr.kind = CS_TR_DECIDE;
            tr.at = r->at;
            tr.node = id;
            tr.peer = CS_NO_NODE;
            tr.slot = r->slot;
            tr.data = r->data;
            tr.len = r->len;
            sim->cb->trace(sim->cb->ud, sim, &tr);
        }
        return cs__check_decide(sim->check, id, honest, r->slot, r->at, r->data,
                                r->len);
    case REC_TRACE:
        if (sim->cb->trace != NULL) {
            sim->cb->trace(sim->cb->ud, sim, &r->tr);
        }
        return CS_OK;
    default:
        if (sim->cb->output != NULL) {
            sim->cb->output(sim->cb->ud, sim, id, r->at, r->kind, r->data,
                            r->len);
        }
        return CS_OK;
    }
}

/* Offer the window's sends to destinations in [lo, hi), in the order of
 * the active list and of each outbox: the order a serial merge would use,
 * so the inbox policies see the same sequence per destination.  On an
 * error the rest of the range's references are dropped. */
static int merge_range(cs_sim *sim, uint32_t lo, uint32_t hi, vec *extra,
                       size_t *nblocked)
{
    size_t k, j;
    int rc = CS_OK;

    for (k = 0; k < sim->nactive; k++) {
        const node_rt *n = &sim->nodes[sim->active[k]];
        cs_event *ev = n->outbox.p;

        for (j = 0; j < n->outbox.len; j++) {
            if (ev[j].dst < lo || ev[j].dst >= hi) {
                continue;
            }
            if (rc == CS_OK) {
                rc = offer(sim, &ev[j], extra, nblocked);
            } else {
                cs_msg_unref(ev[j].msg);
            }
        }
    }
    return rc;
}

/* PHASE_MERGE on a pool thread: merge part 'part' of the destinations
 * into their heaps.  Each part has its own range, so no two threads touch
 * one destination. */
void cs__sim_merge_part(cs_sim *sim, worker *w, size_t part)
{
    uint32_t lo = (uint32_t)((uint64_t)sim->cfg.nodes * part / sim->nparts);
    uint32_t hi =
        (uint32_t)((uint64_t)sim->cfg.nodes * (part + 1) / sim->nparts);
    int rc = merge_range(sim, lo, hi, &w->extra, &w->nblocked);

    if (rc != CS_OK && w->rc == CS_OK) {
        w->rc = rc;
    }
}

/* Below this many sends a window is merged by the main thread alone: the
 * hand-off to the pool would cost more than it saves. */
#define MERGE_PARALLEL_MIN 4096

/* Move sends into destination heaps and hand the window's records to the
 * checker and the embedder, in (at, node, seq) order.  Main thread. */
int cs__sim_barrier(cs_sim *sim)
{
    size_t k, j, nrec, nsent = 0;
    unsigned t;
    int rc = CS_OK;

    cs__sim_release_arrivals(sim); /* every node is done with them */
    for (k = 0; k < sim->nactive; k++) {
        node_rt *n = &sim->nodes[sim->active[k]];
        cs_event *ev = n->bout.p;

        nsent += n->outbox.len;
        for (j = 0; j < n->bout.len; j++) {
            if (rc == CS_OK) {
                rc = cs__heap_push(&sim->bpool, &ev[j]);
            }
            if (rc != CS_OK) {
                cs_msg_unref(ev[j].msg);
            }
        }
        n->bout.len = 0;
    }
    if (sim->nth > 0 && nsent >= MERGE_PARALLEL_MIN) {
        int phase = sim->phase;

        sim->nparts = (size_t)sim->nth + 1;
        sim->phase = PHASE_MERGE;
        cs__pool_round(sim);
        sim->phase = phase;
        for (t = 0; t <= sim->nth; t++) {
            worker *w = &sim->workers[t];
            const record *r = w->extra.p;

            for (k = 0; k < w->extra.len; k++) {
                if (rc == CS_OK) {
                    rc = cs__vec_push(&sim->extra, &r[k], sizeof *r);
                }
                if (rc != CS_OK) {
                    cs_free(r[k].data);
                }
            }
            w->extra.len = 0;
            sim->nblocked += w->nblocked;
            w->nblocked = 0;
            if (rc == CS_OK) {
                rc = w->rc;
            }
            w->rc = CS_OK;
        }
    } else if (nsent > 0) {
        rc = merge_range(sim, 0, sim->cfg.nodes, &sim->extra, &sim->nblocked);
    }
    for (k = 0; k < sim->nactive; k++) {
        node_rt *n = &sim->nodes[sim->active[k]];

        n->outbox.len = 0;
        if (n->outbox.cap > 4096) {
            /* A burst (a broadcast storm) should not pin its memory for
             * the rest of the run. */
            cs_free(n->outbox.p);
            n->outbox.p = NULL;
            n->outbox.cap = 0;
        }
        if (n->now > sim->end) {
            sim->end = n->now;
        }
    }
    if (rc == CS_OK && sim->nblocked > 0) {
        rc = unblock(sim);
    }
    nrec = sim->extra.len;
    for (k = 0; k < sim->nactive; k++) {
        nrec += sim->nodes[sim->active[k]].recs.len;
    }
    if (nrec == 0) {
        return rc;
    }
    if (nrec > sim->caprec) {
        record *nb = cs_realloc(sim->recbuf, nrec * sizeof *nb);

        if (nb == NULL) {
            rc = CS_ENOMEM;
        } else {
            sim->recbuf = nb;
            sim->caprec = nrec;
        }
    }
    nrec = 0;
    for (k = 0; k < sim->nactive; k++) {
        append_recs(sim, &sim->nodes[sim->active[k]].recs, &nrec, rc == CS_OK);
    }
    append_recs(sim, &sim->extra, &nrec, rc == CS_OK);
    if (nrec > 1) { /* recbuf is NULL after ENOMEM */
        qsort(sim->recbuf, nrec, sizeof(record), rec_cmp);
    }
    for (k = 0; k < nrec; k++) {
        if (rc == CS_OK) {
            rc = dispatch(sim, &sim->recbuf[k]);
        }
        cs_free(sim->recbuf[k].data);
    }
    return rc;
}
