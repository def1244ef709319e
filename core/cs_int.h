/*
 * cs_int.h - internals shared between core modules; not installed.
 */
#ifndef CS_INT_H
#define CS_INT_H

#include "consensus.h"

#include <pthread.h>

/* A broken invariant is a bug: report file:line and abort. */
void cs_panic_at(const char *file, int line, const char *what);
#define cs_panic(what) cs_panic_at(__FILE__, __LINE__, (what))
#define CS_ASSERT(c) ((c) ? (void)0 : cs_panic_at(__FILE__, __LINE__, #c))

/* pthread wrappers that abort on failure: a failed lock is a bug. */
#define cs_mutex_lock(m) CS_ASSERT(pthread_mutex_lock(m) == 0)
#define cs_mutex_unlock(m) CS_ASSERT(pthread_mutex_unlock(m) == 0)
#define cs_cond_wait(c, m) CS_ASSERT(pthread_cond_wait((c), (m)) == 0)
#define cs_cond_signal(c) CS_ASSERT(pthread_cond_signal(c) == 0)
#define cs_cond_broadcast(c) CS_ASSERT(pthread_cond_broadcast(c) == 0)

/* ------------------------------------------------------------ event heap */

/* One pending event of a node.  Events are ordered by (at, src, seq): the
 * sender's own sequence number makes the key unique, so the order is total
 * and does not depend on the order in which events were pushed. */
typedef struct cs_event {
    cs_time at;
    uint64_t seq; /* the source node's counter at send/set time */
    uint32_t src; /* sender; the node itself for timers */
    uint32_t dst; /* destination (used while in an outbox) */
    uint32_t tag; /* timer tag, or 0 */
    uint32_t gen; /* timer generation, to skip cancelled timers */
    cs_msg *msg;  /* NULL for a timer; the event owns one reference */
} cs_event;

/* Take or drop 'n' references at once (a broadcast takes one per
 * destination; a worker drops a window's deliveries of one message). */
cs_msg *cs__msg_ref_n(cs_msg *m, unsigned n);
void cs__msg_unref_n(cs_msg *m, unsigned n);

/* A 4-ary min-heap of events stored by value in a growable array. */
typedef struct cs_heap {
    cs_event *ev;
    size_t len, cap;
} cs_heap;

void cs__heap_init(cs_heap *h);
/* Release the array and every message reference still queued. */
void cs__heap_fini(cs_heap *h);
/* Push a copy of 'ev' (the heap takes over its message reference).
 * CS_ENOMEM leaves the heap unchanged and the reference with the caller. */
int cs__heap_push(cs_heap *h, const cs_event *ev);
/* Remove the smallest event into *out; the caller owns its reference.
 * The heap must not be empty. */
void cs__heap_pop(cs_heap *h, cs_event *out);
/* Remove the event at array index 'i' into *out (the caller owns its
 * reference). */
void cs__heap_remove(cs_heap *h, size_t i, cs_event *out);
/* The smallest event, or NULL when empty. */
static inline const cs_event *cs__heap_top(const cs_heap *h)
{
    return h->len ? &h->ev[0] : NULL;
}
/* Strict (at, src, seq) order. */
static inline int cs__event_less(const cs_event *a, const cs_event *b)
{
    if (a->at != b->at) {
        return a->at < b->at;
    }
    if (a->src != b->src) {
        return a->src < b->src;
    }
    return a->seq < b->seq;
}

/* --------------------------------------------------------------- checker */

/* Records proposals and decisions, in the deterministic order the
 * scheduler feeds them (at barriers, by (time, node, seq)), and finds the
 * first violations.  Single-threaded: only the main thread calls it. */
typedef struct cs_check cs_check;

int cs__check_new(cs_check **out, uint32_t nodes, int check_validity);
void cs__check_free(cs_check *c);
/* A proposal by an honest node ('any': valid for every slot). */
int cs__check_propose(cs_check *c, uint32_t node, int64_t slot, int any,
                      cs_time at, const void *val, size_t len);
/* A claim (see cs_sim_claim) by an honest node. */
int cs__check_claim(cs_check *c, uint32_t node, cs_time at, const void *key,
                    size_t len);
size_t cs__check_proposals(const cs_check *c, const cs_proposal **out);
/* A decision; 'honest' nodes take part in the safety checks. */
int cs__check_decide(cs_check *c, uint32_t node, int honest, int64_t slot,
                     cs_time at, const void *val, size_t len);
/* Distinct slots 'node' decided. */
uint32_t cs__check_decided(const cs_check *c, uint32_t node);
/* Termination at the end of a run: each node with want[node] != 0 must
 * have decided 'slots' distinct slots by time 'at'. */
int cs__check_finish(cs_check *c, const unsigned char *want, uint32_t slots,
                     cs_time at);
size_t cs__check_violations(const cs_check *c, const cs_violation **out);
size_t cs__check_decisions(const cs_check *c, const cs_decision **out);

/* ---------------------------------------------------------------- faults */

/* The network's fault state, kept sparse: one group id per node for a
 * partition, a list of (from-set, to-set) bitmaps for one-way cuts, and a
 * hash table of per-link latency overrides.  Written only by the main
 * thread between windows; read by workers during windows. */
typedef struct cs_cut {
    uint64_t *from, *to; /* bitmaps over node ids */
} cs_cut;

typedef struct cs_link {
    uint64_t key;   /* from << 32 | to */
    cs_latency lat; /* kind < 0: removed */
    int used;
} cs_link;

typedef struct cs_faults {
    uint32_t n;
    uint32_t *group; /* NULL: no partition */
    cs_cut *cuts;
    size_t ncuts, capcuts;
    cs_link *links; /* open addressing, power-of-two size */
    size_t nlinks, caplinks;
} cs_faults;

void cs__faults_init(cs_faults *f, uint32_t n);
void cs__faults_fini(cs_faults *f);
int cs__faults_partition(cs_faults *f, const uint32_t *group);
int cs__faults_cut(cs_faults *f, const uint32_t *from, size_t nfrom,
                   const uint32_t *to, size_t nto);
void cs__faults_heal(cs_faults *f);
int cs__faults_set_link(cs_faults *f, uint32_t from, uint32_t to,
                        const cs_latency *lat);
/* The link's own latency model, or NULL to use the network's. */
const cs_latency *cs__faults_link(const cs_faults *f, uint32_t from,
                                  uint32_t to);
/* The smallest floor of the link overrides, or CS_TIME_MAX. */
cs_time cs__faults_min_delay(const cs_faults *f);

/* Nonzero when a partition or a cut drops messages from -> to.  O(cuts). */
static inline int cs__faults_blocked(const cs_faults *f, uint32_t from,
                                     uint32_t to)
{
    size_t i;

    if (f->group != NULL && f->group[from] != f->group[to]) {
        return 1;
    }
    for (i = 0; i < f->ncuts; i++) {
        if ((f->cuts[i].from[from / 64] >> (from % 64) & 1) &&
            (f->cuts[i].to[to / 64] >> (to % 64) & 1)) {
            return 1;
        }
    }
    return 0;
}

#endif
