/*
 * sim_int.h - the scheduler's shared state; private to sim.c, pool.c,
 * barrier.c and live.c.  See sim.c for the design, live.c for live mode.
 */
#ifndef CS_SIM_INT_H
#define CS_SIM_INT_H

#include "cs_int.h"

#include <stdatomic.h>

enum {
    REC_PROPOSE,
    REC_PROPOSE_ANY,
    REC_DECIDE,
    REC_OUTPUT,
    REC_TRACE,
    REC_CLAIM
};

typedef struct record {
    cs_time at;
    uint64_t seq;
    uint32_t node;
    int type; /* REC_* */
    int kind; /* embedder's kind for REC_OUTPUT */
    int64_t slot;
    size_t len;
    void *data;      /* owned */
    cs_trace_rec tr; /* REC_TRACE */
} record;

typedef struct vec {
    void *p;
    size_t len, cap;
} vec;

typedef struct node_rt {
    cs_heap heap;
    cs_rng rng;
    cs_time now;
    uint64_t seq;   /* orders this node's sends, timers, records */
    uint32_t *tgen; /* timer generation per tag */
    uint32_t ntgen;
    vec outbox;           /* cs_event, dst set */
    vec bout;             /* cs_event: shared broadcasts (dst: skipped) */
    vec recs;             /* record */
    vec blocked;          /* cs_event waiting for inbox room (BLOCK) */
    uint32_t inbox;       /* messages pending in 'heap' */
    cs_time paused_until; /* events before this wait for it */
    cs_time skew;         /* local clock = now + skew + drift * now */
    double drift;
    cs_rng brng;           /* the barrier's draws for this node */
    cs_time *last_arrival; /* with cfg.fifo: per destination, lazily */
    cs_time stuck_at;      /* the instant of the last events ... */
    uint32_t stuck_count;  /* ... and how many came at it */
    cs_stats st;           /* this node's share of the counters */
    unsigned char byz, failed, down;
} node_rt;

enum { ACT_USER, ACT_CRASH, ACT_RESTART, ACT_PAUSE };

typedef struct action {
    cs_time at;
    uint64_t seq;
    uint64_t id; /* ACT_USER: the embedder's id */
    int type;    /* ACT_* */
    uint32_t node;
    int flags;
    cs_time arg; /* ACT_PAUSE: duration */
} action;

/* A pool round runs every active node's start, one window, or the merge
 * of a window's sends into the destination heaps (barrier.c). */
enum { PHASE_START, PHASE_WINDOW, PHASE_MERGE };

/* The references a thread's deliveries of one window give back, merged by
 * message: a broadcast's receivers on two threads would otherwise bounce
 * its count between the cores once per delivery.  Open addressing on the
 * message address; 'used' lists the filled slots for the flush. */
typedef struct relmap {
    cs_msg **key;
    unsigned *cnt;
    size_t *used;
    size_t cap, len;
    int direct; /* one thread: nothing to contend with, drop at once */
} relmap;

/* A thread's share of a round's active list: [next, end), taken one node
 * at a time by the owner and, once its own is done, by the others.  On a
 * cache line of its own. */
typedef struct slice {
    atomic_size_t next;
    size_t end;
    char pad[64 - sizeof(atomic_size_t) - sizeof(size_t)];
} slice;

/* One per thread of the pool; [0] is the thread that called cs_sim_run. */
typedef struct worker {
    struct cs_sim *sim;
    relmap rel;
    /* PHASE_MERGE results, folded by the main thread after the round */
    vec extra;       /* drop records made while merging */
    size_t nblocked; /* events put in blocked lists */
    int rc;          /* first error */
} worker;

/* Timer tags index a per-node array; past this the array would not fit
 * (and doubling a uint32_t capacity would wrap to 0 and never end). */
#define MAX_TAG 0x7fffffffu

struct cs_sim {
    cs_sim_config cfg;
    cs_time lookahead;
    node_rt *nodes;
    cs_check *check;
    action *acts; /* min-heap by (at, seq) */
    size_t nacts, capacts;
    uint64_t act_seq;
    atomic_int stop;
    atomic_int err; /* first CS_ENOMEM seen by a worker */
    int running;
    cs_faults faults;
    size_t nblocked; /* events in all 'blocked' lists */

    /* the current phase, set by the main thread before a round */
    const cs_callbacks *cb;
    int phase;
    cs_time wend;
    uint32_t *active;
    size_t nactive;
    atomic_size_t next;
    size_t nparts; /* PHASE_MERGE: destination ranges */

    /* the worker pool */
    pthread_mutex_t lock;
    pthread_cond_t go, done;
    atomic_uint_fast64_t round; /* stored under 'lock', read by spinners */
    atomic_uint busy;           /* workers still in the round */
    int quit;
    pthread_t *th;
    unsigned nth;
    worker *workers; /* nth + 1 */
    slice *slices;   /* nth + 1: PHASE_START and PHASE_WINDOW */

    /* Shared broadcasts (see cs_sim_broadcast): one event, one message
     * reference, for every destination but 'dst' (CS_NO_NODE: none).
     * 'bpool' holds them until their window, 'arr' is the current
     * window's, in (at, src, seq) order, read by every node. */
    cs_heap bpool;
    cs_event *arr;
    size_t narr, caparr;

    record *recbuf; /* barrier scratch */
    size_t caprec;
    vec extra; /* records made at the barrier itself */
    cs_time end;

    /* live mode: the run's state (live.c) while cs_sim_run runs, else
     * NULL.  Set before any thread starts, cleared after all are joined. */
    struct cs_live *live;
};

/* sim.c */
int cs__vec_push(vec *v, const void *item, size_t size);
/* Remember the first error a worker met; the run returns it. */
void cs__sim_err(cs_sim *sim, int rc);
void cs__free_recs(vec *v);
void cs__free_outbox(vec *v);
/* Record a trace event for 'node' into 'into' (only with cfg.trace). */
void cs__sim_trace(cs_sim *sim, vec *into, uint32_t node, cs_time at,
                   uint64_t seq, const cs_trace_rec *tr);
void cs__sim_trace_msg(cs_sim *sim, node_rt *n, uint32_t node, int kind,
                       uint32_t peer, uint32_t src, uint64_t id,
                       const cs_msg *msg, int reason, cs_time arg);

/* Drop the references of the window's shared broadcasts ('arr'). */
void cs__sim_release_arrivals(cs_sim *sim);

/* Schedule an action (user or node fault); CS_ENOMEM. */
int cs__sim_push_action(cs_sim *sim, const action *act);

/* inject.c: a node fault taking effect (main thread, workers idle). */
int cs__sim_node_fault(cs_sim *sim, const action *a);

/* pool.c: the worker threads. */
int cs__pool_start(cs_sim *sim);
void cs__pool_stop(cs_sim *sim);
/* Run the phase described by sim->phase/active/wend on every thread. */
void cs__pool_round(cs_sim *sim);
/* Give back a relmap's references and free it. */
void cs__pool_free_rel(relmap *r);

/* Run the scenario actions due by time 't'.  Main thread.  CS_ESTOPPED
 * when an action returned nonzero. */
int cs__sim_run_actions(cs_sim *sim, cs_time t);

/* live.c: live mode (cfg.live), a thread per node in wall-clock time. */
/* The whole run, in place of the pool and the window loop; sim->cb is
 * set.  Blocks until every thread it started is joined.  Main thread. */
int cs__live_run(cs_sim *sim);
/* Wall-clock microseconds since the live run started.  Any thread; only
 * while sim->live is set. */
cs_time cs__live_now(const cs_sim *sim);
/* Nonzero once the node threads run: per-node settings are theirs. */
int cs__live_threads_up(const cs_sim *sim);
/* Guard sim->faults against the node threads reading it; no-ops when no
 * live run is in progress.  Never held across a callback. */
void cs__live_lock_faults(cs_sim *sim);
void cs__live_unlock_faults(cs_sim *sim);
/* A node's send through the delay line, and a node's record (proposal,
 * decision, claim, output) queued for the main thread.  The node's own
 * thread.  Same contracts as cs_sim_send and add_record. */
int cs__live_send(cs_sim *sim, uint32_t from, uint32_t to, cs_msg *msg);
/* Takes over r->data; stamps the record's time and order. */
int cs__live_record(cs_sim *sim, record *r);

/* barrier.c */
/* Move sends into destination heaps and hand the window's records to the
 * checker and the embedder, in (at, node, seq) order.  Main thread. */
int cs__sim_barrier(cs_sim *sim);
/* PHASE_MERGE, on a pool thread: merge the sends to destination range
 * 'part' of sim->nparts into their heaps. */
void cs__sim_merge_part(cs_sim *sim, worker *w, size_t part);

#endif
