/*
 * sim.c - the deterministic virtual-time scheduler.
 *
 * Conservative parallel discrete-event simulation.  Let L be the network's
 * smallest delay (the lookahead).  The run proceeds in windows [T, W) with
 * T the earliest pending event and W = min(T + L, next scenario action,
 * until + 1).  A message sent at time t >= T arrives at t + delay >= T + L
 * >= W, so nothing sent inside a window can land inside it: the nodes that
 * have events before W are independent and are handled in parallel, each
 * by exactly one worker, each in its own (at, src, seq) order.
 *
 * A node's sends go to its own outbox, its timers straight into its own
 * heap (a timer may fire inside the window), and its proposals, decisions
 * and emitted records into its own record list.  On a plain network (a
 * constant latency, no loss, duplication, faults, FIFO, inbox cap or
 * trace) a broadcast is one shared event instead of one per destination:
 * it waits in 'bpool' and, in its window, in the array 'arr' that every
 * node merges with its own heap.  Delivery order, draws and counters are
 * those of the per-destination path; only the memory (N events per
 * broadcast) and the barrier's N pushes are saved.  At the barrier the main
 * thread moves the outboxes into the destination heaps (the heap key is
 * unique, so push order does not matter), then sorts the window's records
 * by (at, node, seq) and feeds them to the checker and to the embedder's
 * output callback.  Windows, event order, random draws (each node draws
 * from its own stream) and record order are all functions of the seed
 * alone: the number of threads changes nothing but speed.
 *
 * Threads and locking: see pool.c for the hand-off of a round (the
 * phase description, active list and window end, is written by the main
 * thread before it publishes the round) and how work is handed out.  Everything in a node_rt
 * is touched only by the worker running that node in the current round,
 * or by the main thread between rounds: no lock.  Lock order: there is
 * only one lock, and no callback runs while it is held.
 *
 * live mode (cfg.live) replaces the pool and the window loop with a
 * thread per node in wall-clock time; the node-side calls below branch
 * to core/live.c while sim->live is set.
 */
#include "sim_int.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

int cs__vec_push(vec *v, const void *item, size_t size)
{
    if (v->len == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 8;
        void *np = cs_realloc(v->p, ncap * size);

        if (np == NULL) {
            return CS_ENOMEM;
        }
        v->p = np;
        v->cap = ncap;
    }
    memcpy((char *)v->p + v->len * size, item, size);
    v->len++;
    return CS_OK;
}

void cs__sim_err(cs_sim *sim, int rc)
{
    int zero = 0;

    if (rc != CS_OK) {
        atomic_compare_exchange_strong(&sim->err, &zero, rc);
    }
}

static int act_less(const action *a, const action *b)
{
    return a->at != b->at ? a->at < b->at : a->seq < b->seq;
}

static void act_pop(cs_sim *sim, action *out)
{
    size_t i = 0, c;
    action last;

    *out = sim->acts[0];
    last = sim->acts[--sim->nacts];
    for (;;) {
        c = 2 * i + 1;
        if (c >= sim->nacts) {
            break;
        }
        if (c + 1 < sim->nacts && act_less(&sim->acts[c + 1], &sim->acts[c])) {
            c++;
        }
        if (!act_less(&sim->acts[c], &last)) {
            break;
        }
        sim->acts[i] = sim->acts[c];
        i = c;
    }
    if (sim->nacts > 0) {
        sim->acts[i] = last;
    }
}

/* ------------------------------------------------------------- config */

void cs_sim_config_init(cs_sim_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->nodes = 4;
    cfg->seed = 1;
    cfg->threads = 1;
    cfg->net.latency.kind = CS_LAT_CONST;
    cfg->net.latency.a = 10000;
    cfg->until = CS_MS(60000);
    cfg->expect_slots = 1;
    cfg->stop_when_decided = 1;
    cfg->check_validity = 1;
}

int cs_sim_new(cs_sim **out, const cs_sim_config *cfg)
{
    cs_sim *sim;
    uint32_t i;
    int rc;

    if (cfg->nodes == 0 || cfg->threads == 0 || cfg->until < 0 ||
        cs_net_validate(&cfg->net) != CS_OK) {
        return CS_EINVAL;
    }
    if ((sim = cs_calloc(1, sizeof *sim)) == NULL) {
        return CS_ENOMEM;
    }
    sim->cfg = *cfg;
    sim->lookahead = cs_net_min_delay(&cfg->net);
    sim->nodes = cs_calloc(cfg->nodes, sizeof *sim->nodes);
    sim->active = cs_calloc(cfg->nodes, sizeof *sim->active);
    if (sim->nodes == NULL || sim->active == NULL) {
        cs_sim_free(sim);
        return CS_ENOMEM;
    }
    cs__heap_init(&sim->bpool);
    for (i = 0; i < cfg->nodes; i++) {
        cs__heap_init(&sim->nodes[i].heap);
        cs_rng_init(&sim->nodes[i].rng, cfg->seed, i);
        /* A stream of its own: barrier draws must not shift the node's. */
        cs_rng_init(&sim->nodes[i].brng, cfg->seed,
                    UINT64_C(0xb0000000000) + i);
    }
    cs__faults_init(&sim->faults, cfg->nodes);
    rc = cs__check_new(&sim->check, cfg->nodes, cfg->check_validity);
    if (rc != CS_OK) {
        cs_sim_free(sim);
        return rc;
    }
    atomic_init(&sim->stop, 0);
    atomic_init(&sim->err, 0);
    atomic_init(&sim->next, 0);
    *out = sim;
    return CS_OK;
}

void cs__free_recs(vec *v)
{
    size_t i;

    for (i = 0; i < v->len; i++) {
        cs_free(((record *)v->p)[i].data);
    }
    v->len = 0;
}

void cs__free_outbox(vec *v)
{
    size_t i;

    for (i = 0; i < v->len; i++) {
        cs_msg_unref(((cs_event *)v->p)[i].msg);
    }
    v->len = 0;
}

void cs_sim_free(cs_sim *sim)
{
    uint32_t i;

    if (sim == NULL) {
        return;
    }
    if (sim->nodes != NULL) {
        for (i = 0; i < sim->cfg.nodes; i++) {
            node_rt *n = &sim->nodes[i];

            cs__heap_fini(&n->heap);
            cs__free_outbox(&n->outbox);
            cs__free_outbox(&n->bout);
            cs__free_outbox(&n->blocked);
            cs__free_recs(&n->recs);
            cs_free(n->outbox.p);
            cs_free(n->bout.p);
            cs_free(n->blocked.p);
            cs_free(n->recs.p);
            cs_free(n->tgen);
            cs_free(n->last_arrival);
        }
    }
    cs__heap_fini(&sim->bpool);
    cs__sim_release_arrivals(sim);
    cs_free(sim->arr);
    cs__free_recs(&sim->extra);
    cs_free(sim->extra.p);
    cs__faults_fini(&sim->faults);
    cs__check_free(sim->check);
    cs_free(sim->nodes);
    cs_free(sim->active);
    cs_free(sim->acts);
    cs_free(sim->recbuf);
    cs_free(sim);
}

int cs_sim_set_byzantine(cs_sim *sim, uint32_t node, int byz)
{
    if (node >= sim->cfg.nodes || sim->running) {
        return CS_EINVAL;
    }
    sim->nodes[node].byz = byz != 0;
    return CS_OK;
}

int cs_sim_is_byzantine(const cs_sim *sim, uint32_t node)
{
    return node < sim->cfg.nodes && sim->nodes[node].byz;
}

int cs__sim_push_action(cs_sim *sim, const action *act)
{
    action a = *act;
    size_t i, parent;

    a.seq = sim->act_seq++;
    if (sim->nacts == sim->capacts) {
        size_t ncap = sim->capacts ? sim->capacts * 2 : 16;
        action *na = cs_realloc(sim->acts, ncap * sizeof *na);

        if (na == NULL) {
            return CS_ENOMEM;
        }
        sim->acts = na;
        sim->capacts = ncap;
    }
    i = sim->nacts++;
    while (i > 0) {
        parent = (i - 1) / 2;
        if (!act_less(&a, &sim->acts[parent])) {
            break;
        }
        sim->acts[i] = sim->acts[parent];
        i = parent;
    }
    sim->acts[i] = a;
    return CS_OK;
}

int cs_sim_at(cs_sim *sim, cs_time t, uint64_t id)
{
    action a = { t, 0, id, ACT_USER, 0, 0, 0 };

    return t < 0 ? CS_EINVAL : cs__sim_push_action(sim, &a);
}

void cs_sim_stop(cs_sim *sim)
{
    atomic_store(&sim->stop, 1);
}

/* ------------------------------------------------------ node-side calls */

/* Record a trace event for 'node' (only with cfg.trace). */
void cs__sim_trace(cs_sim *sim, vec *into, uint32_t node, cs_time at,
                   uint64_t seq, const cs_trace_rec *tr)
{
    record r;
    int rc;

    memset(&r, 0, sizeof r);
    r.at = at;
    r.seq = seq;
    r.node = node;
    r.type = REC_TRACE;
    r.tr = *tr;
    r.tr.at = at;
    r.tr.node = node;
    if ((rc = cs__vec_push(into, &r, sizeof r)) != CS_OK) {
        cs__sim_err(sim, rc);
    }
}

void cs__sim_trace_msg(cs_sim *sim, node_rt *n, uint32_t node, int kind,
                       uint32_t peer, uint32_t src, uint64_t id,
                       const cs_msg *msg, int reason, cs_time arg)
{
    cs_trace_rec tr;

    memset(&tr, 0, sizeof tr);
    tr.kind = kind;
    tr.peer = peer;
    tr.src = src;
    tr.id = id;
    tr.msg_kind = cs_msg_kind(msg);
    tr.size = (uint32_t)cs_msg_len(msg);
    tr.reason = reason;
    tr.arg = arg;
    cs__sim_trace(sim, &n->recs, node, n->now, n->seq++, &tr);
}

/* When a message sent now by 'n' with this delay arrives (saturating). */
static cs_time arrival(const node_rt *n, cs_time delay)
{
    return delay > CS_TIME_MAX - n->now ? CS_TIME_MAX : n->now + delay;
}

/* Append a message event from 'from' to 'into' (an outbox: dst is the
 * destination; the shared pool: dst is the node skipped), stamped with
 * the sender's next seq.  The caller accounts for the reference. */
static int queue_msg(cs_sim *sim, node_rt *n, vec *into, cs_time at,
                     uint32_t from, uint32_t dst, cs_msg *msg)
{
    cs_event ev;
    int rc;

    ev.at = at;
    ev.seq = n->seq++;
    ev.src = from;
    ev.dst = dst;
    ev.tag = 0;
    ev.gen = 0;
    ev.msg = msg;
    if ((rc = cs__vec_push(into, &ev, sizeof ev)) != CS_OK) {
        cs__sim_err(sim, rc);
    }
    return rc;
}

/* Queue one copy of 'msg' for 'to'.  The reference the event owns is
 * counted in *nref and taken by the caller, once per send or broadcast. */
static int push_out(cs_sim *sim, node_rt *n, uint32_t from, uint32_t to,
                    cs_msg *msg, cs_time delay, int kind, unsigned *nref)
{
    cs_time at = arrival(n, delay);
    uint64_t seq = n->seq; /* the one queue_msg stamps */
    int rc;

    if (sim->cfg.fifo) {
        /* FIFO links: never before the link's previous message (equal
         * times keep send order through seq).  One array per sender, made
         * on its first send: n x n only for runs that ask for it. */
        if (n->last_arrival == NULL &&
            (n->last_arrival =
                 cs_calloc(sim->cfg.nodes, sizeof *n->last_arrival)) == NULL) {
            cs__sim_err(sim, CS_ENOMEM);
            return CS_ENOMEM;
        }
        if (at < n->last_arrival[to]) {
            at = n->last_arrival[to];
        }
        n->last_arrival[to] = at;
    }
    if ((rc = queue_msg(sim, n, &n->outbox, at, from, to, msg)) != CS_OK) {
        return rc;
    }
    ++*nref;
    if (sim->cfg.trace) {
        cs__sim_trace_msg(sim, n, from, kind, to, from, seq, msg, 0, at);
    }
    return rc;
}

static cs_time draw_delay(cs_sim *sim, node_rt *n, uint32_t from, uint32_t to)
{
    const cs_latency *lat = cs__faults_link(&sim->faults, from, to);

    if (lat != NULL) {
        cs_net_config one = { *lat, 0, 0 };

        return cs_net_delay(&one, &n->rng);
    }
    return cs_net_delay(&sim->cfg.net, &n->rng);
}

/* A message that never leaves: counted, traced with its reason. */
static void drop_at_send(cs_sim *sim, node_rt *n, uint32_t from, uint32_t to,
                         const cs_msg *msg, int reason)
{
    n->st.dropped++;
    if (reason == CS_DROP_PARTITION) {
        n->st.dropped_partition++;
    }
    if (sim->cfg.trace) {
        uint64_t id = n->seq;

        cs__sim_trace_msg(sim, n, from, CS_TR_DROP, to, from, id, msg, reason,
                          0);
    }
}

/* One send, counting in *nref the references its events need. */
static int send_to(cs_sim *sim, uint32_t from, uint32_t to, cs_msg *msg,
                   unsigned *nref)
{
    node_rt *n = &sim->nodes[from];
    cs_time delay;
    int rc;

    n->st.sent++;
    n->st.bytes += cs_msg_len(msg);
    /* The draws happen in a fixed order per message, so the stream stays
     * aligned whatever the outcome. */
    if (cs__faults_blocked(&sim->faults, from, to)) {
        drop_at_send(sim, n, from, to, msg, CS_DROP_PARTITION);
        return CS_OK;
    }
    if (sim->cfg.net.loss > 0 && cs_rng_double(&n->rng) < sim->cfg.net.loss) {
        drop_at_send(sim, n, from, to, msg, CS_DROP_LOSS);
        return CS_OK;
    }
    delay = draw_delay(sim, n, from, to);
    if ((rc = push_out(sim, n, from, to, msg, delay, CS_TR_SEND, nref)) !=
        CS_OK) {
        return rc;
    }
    if (sim->cfg.net.duplicate > 0 &&
        cs_rng_double(&n->rng) < sim->cfg.net.duplicate) {
        n->st.duplicated++;
        delay = draw_delay(sim, n, from, to);
        return push_out(sim, n, from, to, msg, delay, CS_TR_DUPLICATE, nref);
    }
    return CS_OK;
}

int cs_sim_send(cs_sim *sim, uint32_t from, uint32_t to, cs_msg *msg)
{
    unsigned nref = 0;
    int rc;

    if (from >= sim->cfg.nodes || to >= sim->cfg.nodes) {
        return CS_EINVAL;
    }
    if (sim->live != NULL) {
        return cs__live_send(sim, from, to, msg); /* live mode */
    }
    rc = send_to(sim, from, to, msg, &nref);
    cs__msg_ref_n(msg, nref);
    return rc;
}

/* True when a broadcast may be one shared event: nothing about the
 * network depends on the destination, or is drawn, or is traced. */
static int shared_ok(const cs_sim *sim)
{
    const cs_faults *f = &sim->faults;

    return sim->live == NULL && !sim->cfg.trace && !sim->cfg.fifo &&
           sim->cfg.inbox_cap == 0 &&
           sim->cfg.net.latency.kind == CS_LAT_CONST &&
           sim->cfg.net.loss == 0 && sim->cfg.net.duplicate == 0 &&
           f->group == NULL && f->ncuts == 0 && f->nlinks == 0;
}

/* The broadcast as one event with one reference, for the barrier to put
 * in the pool.  The same counters as 'count' sends. */
static int share(cs_sim *sim, uint32_t from, cs_msg *msg, int self)
{
    node_rt *n = &sim->nodes[from];
    uint32_t count = sim->cfg.nodes - (self ? 0 : 1);
    cs_time at = arrival(n, cs_net_delay(&sim->cfg.net, &n->rng)); /* no draw */
    int rc;

    if (count == 0) {
        return CS_OK;
    }
    if ((rc = queue_msg(sim, n, &n->bout, at, from, self ? CS_NO_NODE : from,
                        msg)) != CS_OK) {
        return rc;
    }
    cs_msg_ref(msg);
    n->st.sent += count;
    n->st.bytes += (uint64_t)count * cs_msg_len(msg);
    return CS_OK;
}

/* One encoded message for every destination, and one atomic add for all
 * their references; on a plain network, one shared event. */
int cs_sim_broadcast(cs_sim *sim, uint32_t from, cs_msg *msg, int self)
{
    unsigned nref = 0;
    uint32_t i;
    int rc = CS_OK;

    if (from >= sim->cfg.nodes) {
        return CS_EINVAL;
    }
    if (shared_ok(sim)) {
        return share(sim, from, msg, self);
    }
    for (i = 0; i < sim->cfg.nodes && rc == CS_OK; i++) {
        if (i == from && !self) {
            continue;
        }
        if (sim->live != NULL) {
            rc = cs__live_send(sim, from, i, msg); /* live mode */
        } else {
            rc = send_to(sim, from, i, msg, &nref);
        }
    }
    cs__msg_ref_n(msg, nref);
    return rc;
}

static int grow_tags(node_rt *n, uint32_t tag)
{
    uint32_t ncap = n->ntgen ? n->ntgen : 8, i;
    uint32_t *ng;

    while (ncap <= tag) {
        ncap *= 2;
    }
    if ((ng = cs_realloc(n->tgen, ncap * sizeof *ng)) == NULL) {
        return CS_ENOMEM;
    }
    for (i = n->ntgen; i < ncap; i++) {
        ng[i] = 0;
    }
    n->tgen = ng;
    n->ntgen = ncap;
    return CS_OK;
}

int cs_sim_set_timer(cs_sim *sim, uint32_t node, uint32_t tag, cs_time delay)
{
    node_rt *n;
    cs_event ev;
    int rc;

    if (node >= sim->cfg.nodes || delay < 0 || tag > MAX_TAG) {
        return CS_EINVAL;
    }
    n = &sim->nodes[node];
    if (sim->live != NULL) {
        n->now = cs__live_now(sim); /* live mode: due on the wall clock */
    }
    if (tag >= n->ntgen && (rc = grow_tags(n, tag)) != CS_OK) {
        cs__sim_err(sim, rc);
        return rc;
    }
    if (n->drift != 0.0) {
        /* The delay is on the node's clock; convert it to real time. */
        double real = (double)delay / (1.0 + n->drift);

        delay = real >= 9.0e18 ? CS_TIME_MAX : (cs_time)(real + 0.5);
    }
    /* A new generation makes any pending event of this tag stale.  A time
     * past the end of time saturates: such a timer never fires. */
    ev.at = delay > CS_TIME_MAX - n->now ? CS_TIME_MAX : n->now + delay;
    ev.seq = n->seq++;
    ev.src = node;
    ev.dst = node;
    ev.tag = tag;
    ev.gen = ++n->tgen[tag];
    ev.msg = NULL;
    if ((rc = cs__heap_push(&n->heap, &ev)) != CS_OK) {
        cs__sim_err(sim, rc);
    }
    return rc;
}

int cs_sim_cancel_timer(cs_sim *sim, uint32_t node, uint32_t tag)
{
    node_rt *n;

    if (node >= sim->cfg.nodes) {
        return CS_EINVAL;
    }
    n = &sim->nodes[node];
    if (tag < n->ntgen) {
        n->tgen[tag]++;
    }
    return CS_OK;
}

cs_time cs_sim_now(const cs_sim *sim, uint32_t node)
{
    if (node >= sim->cfg.nodes) {
        return 0;
    }
    /* live mode: the wall clock, the same for every thread */
    return sim->live != NULL ? cs__live_now(sim) : sim->nodes[node].now;
}

cs_time cs_sim_local_now(const cs_sim *sim, uint32_t node)
{
    const node_rt *n;

    if (node >= sim->cfg.nodes) {
        return 0;
    }
    n = &sim->nodes[node];
    if (sim->live != NULL) { /* live mode: the wall clock */
        cs_time t = cs__live_now(sim);

        return t + n->skew + (cs_time)(n->drift * (double)t);
    }
    return n->now + n->skew + (cs_time)(n->drift * (double)n->now);
}

cs_rng *cs_sim_rng(cs_sim *sim, uint32_t node)
{
    return node < sim->cfg.nodes ? &sim->nodes[node].rng : NULL;
}

static int add_record(cs_sim *sim, uint32_t node, int type, int kind,
                      int64_t slot, const void *data, size_t len)
{
    node_rt *n;
    record r;
    int rc;

    if (node >= sim->cfg.nodes) {
        return CS_EINVAL;
    }
    memset(&r, 0, sizeof r);
    r.node = node;
    r.type = type;
    r.kind = kind;
    r.slot = slot;
    r.len = len;
    if ((r.data = cs_malloc(len)) == NULL) {
        cs__sim_err(sim, CS_ENOMEM);
        return CS_ENOMEM;
    }
    if (len > 0) {
        memcpy(r.data, data, len);
    }
    if (sim->live != NULL) { /* live mode: to the main thread, which stamps
                                it; it owns r.data from here */
        return cs__live_record(sim, &r);
    }
    n = &sim->nodes[node];
    r.at = n->now;
    r.seq = n->seq++;
    if ((rc = cs__vec_push(&n->recs, &r, sizeof r)) != CS_OK) {
        cs_free(r.data);
        cs__sim_err(sim, rc);
    }
    return rc;
}

int cs_sim_propose(cs_sim *sim, uint32_t node, int64_t slot, int any,
                   const void *val, size_t len)
{
    return add_record(sim, node, any ? REC_PROPOSE_ANY : REC_PROPOSE, 0, slot,
                      val, len);
}

int cs_sim_decide(cs_sim *sim, uint32_t node, int64_t slot, const void *val,
                  size_t len)
{
    return add_record(sim, node, REC_DECIDE, 0, slot, val, len);
}

int cs_sim_claim(cs_sim *sim, uint32_t node, const void *key, size_t len)
{
    return add_record(sim, node, REC_CLAIM, 0, 0, key, len);
}

int cs_sim_emit(cs_sim *sim, uint32_t node, int kind, const void *data,
                size_t len)
{
    return add_record(sim, node, REC_OUTPUT, kind, 0, data, len);
}

uint32_t cs_sim_nodes(const cs_sim *sim)
{
    return sim->cfg.nodes;
}

uint64_t cs_sim_seed(const cs_sim *sim)
{
    return sim->cfg.seed;
}

int cs_sim_node_failed(const cs_sim *sim, uint32_t node)
{
    return node < sim->cfg.nodes && sim->nodes[node].failed;
}

uint32_t cs_sim_decided(const cs_sim *sim, uint32_t node)
{
    return node < sim->cfg.nodes ? cs__check_decided(sim->check, node) : 0;
}

/* True when every honest node that has not failed made its decisions. */
static int all_decided(const cs_sim *sim)
{
    uint32_t i;

    for (i = 0; i < sim->cfg.nodes; i++) {
        const node_rt *n = &sim->nodes[i];

        if (!n->byz && !n->failed && !n->down &&
            cs__check_decided(sim->check, i) < sim->cfg.expect_slots) {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------- the run */

int cs__sim_run_actions(cs_sim *sim, cs_time t)
{
    action a;
    uint32_t i;

    while (sim->nacts > 0 && sim->acts[0].at <= t) {
        act_pop(sim, &a);
        /* An action acts at its own time, for any node.  O(nodes); actions
         * are few.  live mode: the node threads own 'now'; cs_sim_now
         * reads the clock. */
        for (i = 0; i < sim->cfg.nodes && sim->live == NULL; i++) {
            sim->nodes[i].now = a.at;
        }
        if (a.at > sim->end) {
            sim->end = a.at;
        }
        if (a.type != ACT_USER) {
            cs__sim_node_fault(sim, &a);
        } else if (sim->cb->action != NULL &&
                   sim->cb->action(sim->cb->ud, sim, a.id) != 0) {
            return CS_ESTOPPED;
        }
    }
    return CS_OK;
}

/* Hand what actions did on behalf of nodes (sends, records) to the
 * destination heaps and the checker now: a node with no event of its own
 * is not in the next window's active list, and its outbox would wait. */
static int flush_all(cs_sim *sim)
{
    uint32_t i;

    sim->nactive = sim->cfg.nodes;
    for (i = 0; i < sim->cfg.nodes; i++) {
        sim->active[i] = i;
    }
    return cs__sim_barrier(sim);
}

/* Move the pooled broadcasts that arrive before 'w' to 'arr', in order. */
static int take_arrivals(cs_sim *sim, cs_time w)
{
    while (sim->bpool.len > 0 && cs__heap_top(&sim->bpool)->at < w) {
        if (sim->narr == sim->caparr) {
            size_t ncap = sim->caparr ? 2 * sim->caparr : 64;
            cs_event *na = cs_realloc(sim->arr, ncap * sizeof *na);

            if (na == NULL) {
                return CS_ENOMEM;
            }
            sim->arr = na;
            sim->caparr = ncap;
        }
        cs__heap_pop(&sim->bpool, &sim->arr[sim->narr++]);
    }
    return CS_OK;
}

/* Whether node 'id' gets one of the window's shared broadcasts. */
static int has_arrival(const cs_sim *sim, uint32_t id)
{
    return sim->narr > 1 || (sim->narr == 1 && sim->arr[0].dst != id);
}

void cs__sim_release_arrivals(cs_sim *sim)
{
    size_t i;

    for (i = 0; i < sim->narr; i++) {
        cs_msg_unref(sim->arr[i].msg);
    }
    sim->narr = 0;
}

static int loop(cs_sim *sim)
{
    const cs_time until = sim->cfg.until;
    uint32_t i;
    int rc;

    if ((rc = cs__sim_run_actions(sim, 0)) != CS_OK) {
        return rc;
    }
    sim->phase = PHASE_START;
    sim->nactive = sim->cfg.nodes;
    for (i = 0; i < sim->cfg.nodes; i++) {
        sim->active[i] = i;
    }
    cs__pool_round(sim);
    if ((rc = cs__sim_barrier(sim)) != CS_OK) {
        return rc;
    }
    sim->phase = PHASE_WINDOW;
    for (;;) {
        cs_time t = CS_TIME_MAX, w;

        if ((rc = atomic_load(&sim->err)) != CS_OK) {
            return rc;
        }
        if (atomic_load(&sim->stop)) {
            return CS_ESTOPPED;
        }
        if (sim->cfg.stop_when_decided && all_decided(sim)) {
            return CS_OK;
        }
        /* O(nodes) per window; fine for the thousands of nodes we aim at,
         * and it gives the active list in node order for free. */
        for (i = 0; i < sim->cfg.nodes; i++) {
            const cs_event *top = cs__heap_top(&sim->nodes[i].heap);

            if (top != NULL && top->at < t) {
                t = top->at;
            }
        }
        if (sim->bpool.len > 0 && cs__heap_top(&sim->bpool)->at < t) {
            t = cs__heap_top(&sim->bpool)->at;
        }
        if (sim->nacts > 0 && sim->acts[0].at <= t) {
            if (sim->acts[0].at > until) {
                return CS_OK;
            }
            if ((rc = cs__sim_run_actions(sim, sim->acts[0].at)) != CS_OK ||
                (rc = flush_all(sim)) != CS_OK) {
                return rc;
            }
            continue;
        }
        if (t == CS_TIME_MAX || t > until) {
            return CS_OK;
        }
        /* 'until' may be CS_TIME_MAX ("forever"): neither t + lookahead
         * nor until + 1 may overflow.  w > t >= 0, so w - 1 is safe. */
        w = t > CS_TIME_MAX - sim->lookahead ? CS_TIME_MAX : t + sim->lookahead;
        if (sim->nacts > 0 && sim->acts[0].at < w) {
            w = sim->acts[0].at;
        }
        if (until < w - 1) {
            w = until + 1;
        }
        sim->wend = w;
        if ((rc = take_arrivals(sim, w)) != CS_OK) {
            return rc;
        }
        sim->nactive = 0;
        for (i = 0; i < sim->cfg.nodes; i++) {
            const cs_event *top = cs__heap_top(&sim->nodes[i].heap);

            if ((top != NULL && top->at < w) || has_arrival(sim, i)) {
                sim->active[sim->nactive++] = i;
            }
        }
        cs__pool_round(sim);
        sim->nodes[0].st.windows++;
        if ((rc = cs__sim_barrier(sim)) != CS_OK) {
            return rc;
        }
    }
}

int cs_sim_run(cs_sim *sim, const cs_callbacks *cb)
{
    unsigned char *want;
    uint32_t i;
    int rc;

    if (sim->running) {
        return CS_ESTATE;
    }
    if ((want = cs_calloc(sim->cfg.nodes, 1)) == NULL) {
        return CS_ENOMEM;
    }
    sim->cb = cb;
    sim->running = 1;
    if (sim->cfg.live) {
        rc = cs__live_run(sim); /* live mode: core/live.c */
    } else {
        if ((rc = cs__pool_start(sim)) == CS_OK) {
            rc = loop(sim);
        }
        cs__pool_stop(sim);
    }
    if (rc == CS_OK || rc == CS_ESTOPPED) {
        for (i = 0; i < sim->cfg.nodes; i++) {
            /* A crashed node cannot be asked to decide. */
            want[i] = !sim->nodes[i].byz && !sim->nodes[i].failed &&
                      !sim->nodes[i].down;
        }
        cs__check_finish(sim->check, want, sim->cfg.expect_slots, sim->end);
    }
    cs_free(want);
    return rc;
}

void cs_sim_stats(const cs_sim *sim, cs_stats *out)
{
    uint32_t i;

    memset(out, 0, sizeof *out);
    for (i = 0; i < sim->cfg.nodes; i++) {
        const cs_stats *s = &sim->nodes[i].st;

        out->sent += s->sent;
        out->delivered += s->delivered;
        out->dropped += s->dropped;
        out->duplicated += s->duplicated;
        out->bytes += s->bytes;
        out->timers += s->timers;
        out->windows += s->windows;
        out->dropped_partition += s->dropped_partition;
        out->dropped_down += s->dropped_down;
        out->dropped_overflow += s->dropped_overflow;
        out->crashes += s->crashes;
        out->restarts += s->restarts;
    }
    out->end = sim->end;
}

size_t cs_sim_violations(const cs_sim *sim, const cs_violation **out)
{
    return cs__check_violations(sim->check, out);
}

size_t cs_sim_decisions(const cs_sim *sim, const cs_decision **out)
{
    return cs__check_decisions(sim->check, out);
}

size_t cs_sim_proposals(const cs_sim *sim, const cs_proposal **out)
{
    return cs__check_proposals(sim->check, out);
}
