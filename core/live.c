/*
 * live.c - live mode: a thread per node, in wall-clock time.
 *
 * With cfg.live, cs_sim_run hands the whole run to cs__live_run instead
 * of the window loop.  Each node gets an OS thread of its own that calls
 * its start, then loops: fire the timers that are due, then block on the
 * node's bounded channel (its inbox) for at most the time to its next
 * timer, and hand what arrives to the message callback.  Time is the
 * monotonic clock in microseconds since the run started; a node's timers
 * stay in its own event heap (sim.c sets them on the wall clock), which
 * only its own thread touches.
 *
 * Sends go through the delay line: the sender draws loss and delay from
 * its own stream exactly as the simulated path does, and pushes (deliver
 * at, src, seq, dst, msg) into one min-heap.  The delay line's thread
 * sleeps until the earliest entry is due, then wraps each due message in
 * an envelope (a small cs_msg holding the sender, the message id and the
 * message reference, since a channel carries bare cs_msg pointers) and
 * offers it to the destination's channel without blocking.  A full
 * channel drops the message (dropped_overflow) unless the policy is
 * CS_OVERFLOW_BLOCK, or there is no cap at all: then the message waits in
 * a per-destination FIFO that the delay line retries every millisecond,
 * so one slow node does not hold up the others.  CS_OVERFLOW_DROP_RANDOM
 * drops the arriving message: a channel cannot give up a queued one.
 *
 * The main thread runs scenario actions when their wall time comes, and
 * every few milliseconds drains the records nodes made (proposals,
 * decisions, claims, output, trace) into sim->extra and calls
 * cs__sim_barrier with no active node: barrier.c sorts them by (at, node,
 * seq) and dispatches them to the checker and the embedder exactly as in
 * a simulated run.  A record's time is read under the records lock, so
 * record times increase across drains as well.  The run ends when every
 * honest node decided (stop_when_decided), after 'until', on cs_sim_stop
 * or a failed action, or when nothing can happen any more: the atomic
 * 'work' counts messages sent and not yet handled, plus one for each node
 * that is starting or has a timer due before 'until'.  A node adds its
 * new contributions (sends, a timer) before it gives up the one it held
 * while handling, so 'work' reaches zero only when the system is idle.
 * Then the main thread sets 'quit', closes the channels, wakes the delay
 * line, joins every thread, dispatches the last records and frees what is
 * left in flight.  Crash, restart and pause are refused in live mode
 * (sim.c), and a node's clock may only be set before its thread starts.
 *
 * Not reproducible: arrival order depends on the OS scheduler.  The
 * random draws are still per node and seeded, but what a node draws
 * depends on the order things reached it.  Timer events are not traced
 * (naming a timer reads the node's embedder state, which belongs to the
 * node's thread).
 *
 * Threads and locking.  Three leaf mutexes, never nested and never held
 * across a callback: 'flock' guards sim->faults while node threads read
 * it (sim.c takes it around the fault setters); 'dlock' guards the delay
 * line's heap and wakes its thread through 'dcond' (CLOCK_MONOTONIC);
 * 'rlock' guards the records list, the record sequence and each node's
 * 'failed' flag.  The channels lock themselves.  Everything in a node_rt
 * and in the node-thread part of a live_node is touched only by that
 * node's thread during the run; the blocked FIFOs and overflow counts only
 * by the delay line; the main thread reads those after joining.  'quit'
 * and 'work' are atomics; sim->live is written before any thread starts,
 * and the start time before they pass the start gate (all threads wait
 * there until every one exists, so the nodes start together); both are
 * read-only while threads run.
 */
#include "sim_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#define LIVE_IDLE_US 20000 /* longest a thread blocks without cause */
#define LIVE_TICK_US 5000  /* the main thread's period */
#define LIVE_RETRY_US 1000 /* retry of messages waiting for room */
#define LIVE_CHAN_CAP 1024 /* channel size when inbox_cap is 0 */
#define LIVE_BATCH 64      /* due messages taken per lock */

/* What the channel carries: the payload of an envelope cs_msg.  The
 * envelope owns one reference to 'msg'. */
typedef struct live_env {
    cs_msg *msg;
    uint64_t id; /* the sender's seq at send time */
    uint32_t src;
} live_env;

typedef struct live_node {
    struct cs_live *lv;
    uint32_t id;
    cs_chan *inbox; /* created before the threads, never NULL */
    pthread_t th;
    int armed;                 /* node thread: holds one unit of 'work' */
    vec blocked;               /* delay line: cs_event waiting for room */
    uint64_t overflow;         /* delay line: dropped at a full inbox */
    unsigned char failed;      /* rlock; its own thread may read it bare */
    unsigned char failed_seen; /* main: 'failed' as of the last drain */
} live_node;

typedef struct cs_live {
    cs_sim *sim;
    int64_t t0;       /* monotonic us at time 0; set before the
                                   gate opens, read-only after */
    atomic_int quit;  /* set once: threads leave their loops */
    atomic_long work; /* see the top of the file */
    int threads_up;   /* main: node threads were started */
    live_node *nodes;
    uint32_t nstarted; /* main: node threads to join */
    int line_up;       /* main: the delay line thread runs */
    pthread_t line_th;

    pthread_mutex_t flock; /* sim->faults while threads run */

    pthread_mutex_t dlock; /* protects 'line' */
    pthread_cond_t dcond;  /* the delay line waits here */
    cs_heap line;          /* cs_event by (deliver at, src, seq) */
    size_t nblocked;       /* delay line: events in 'blocked' FIFOs */

    pthread_mutex_t rlock; /* protects recs, rseq, nodes[].failed,
                                   gate_open */
    vec recs;              /* record, for the main thread */
    uint64_t rseq;
    pthread_cond_t gate; /* threads wait here until all exist */
    int gate_open;
} cs_live;

/* ------------------------------------------------------------- clock */

static int64_t mono_us(void)
{
    struct timespec ts;

    CS_ASSERT(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static cs_time live_now(const cs_live *lv)
{
    return mono_us() - lv->t0;
}

/* The monotonic instant of run time 'at', never more than a second
 * ahead: callers re-check their predicate, so a far deadline only costs
 * one extra wakeup, and it cannot overflow. */
static struct timespec abs_time(const cs_live *lv, cs_time at)
{
    struct timespec ts;
    cs_time cap = live_now(lv) + 1000000;
    int64_t us;

    us = lv->t0 + (at < cap ? at : cap);
    ts.tv_sec = (time_t)(us / 1000000);
    ts.tv_nsec = (long)(us % 1000000) * 1000;
    return ts;
}

static void sleep_until(const cs_live *lv, cs_time at)
{
    struct timespec ts = abs_time(lv, at);

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR) {
    }
}

/* --------------------------------------------------------- records */

/* Queue 'r' (its data owned) for the main thread, stamped now.  Any
 * thread.  On failure the data is freed and the run will fail. */
static int push_rec(cs_live *lv, record *r)
{
    int rc;

    cs_mutex_lock(&lv->rlock);
    r->at = live_now(lv);
    r->seq = lv->rseq++;
    r->tr.at = r->at;
    rc = cs__vec_push(&lv->recs, r, sizeof *r);
    cs_mutex_unlock(&lv->rlock);
    if (rc != CS_OK) {
        cs_free(r->data);
        cs__sim_err(lv->sim, rc);
    }
    return rc;
}

/* A traced message event (only with cfg.trace). */
static void trace_msg(cs_live *lv, uint32_t node, int kind, uint32_t peer,
                      uint32_t src, uint64_t id, const cs_msg *msg, int reason,
                      cs_time arg)
{
    record r;

    if (!lv->sim->cfg.trace) {
        return;
    }
    memset(&r, 0, sizeof r);
    r.node = node;
    r.type = REC_TRACE;
    r.tr.kind = kind;
    r.tr.node = node;
    r.tr.peer = peer;
    r.tr.src = src;
    r.tr.id = id;
    r.tr.msg_kind = cs_msg_kind(msg);
    r.tr.size = (uint32_t)cs_msg_len(msg);
    r.tr.reason = reason;
    r.tr.arg = arg;
    push_rec(lv, &r);
}

static void node_fail(cs_live *lv, live_node *ln)
{
    cs_mutex_lock(&lv->rlock);
    ln->failed = 1;
    cs_mutex_unlock(&lv->rlock);
}

/* Hand the records made so far to the checker and the embedder, through
 * the barrier with no active node.  Main thread. */
static int drain(cs_live *lv)
{
    cs_sim *sim = lv->sim;
    uint32_t i;
    vec t;

    cs_mutex_lock(&lv->rlock);
    /* sim->extra is empty after every barrier; its buffer comes back. */
    t = lv->recs;
    lv->recs = sim->extra;
    sim->extra = t;
    for (i = 0; i < sim->cfg.nodes; i++) {
        lv->nodes[i].failed_seen = lv->nodes[i].failed;
    }
    cs_mutex_unlock(&lv->rlock);
    sim->nactive = 0;
    return cs__sim_barrier(sim);
}

/* True when every honest node that has not failed made its decisions, as
 * far as the records drained so far tell.  Main thread. */
static int all_decided(const cs_live *lv)
{
    const cs_sim *sim = lv->sim;
    uint32_t i;

    for (i = 0; i < sim->cfg.nodes; i++) {
        if (!sim->nodes[i].byz && !lv->nodes[i].failed_seen &&
            cs_sim_decided(sim, i) < sim->cfg.expect_slots) {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------ the delay line */

/* Give up an event that will never be handled. */
static void discard(cs_live *lv, cs_event *ev)
{
    cs_msg_unref(ev->msg);
    atomic_fetch_sub(&lv->work, 1);
}

/* Offer 'ev' to its destination's channel.  Returns 0 when the channel
 * is full and the message should wait; otherwise the event was consumed
 * (queued, dropped, or the channel closed).  Delay line thread. */
static int offer(cs_live *lv, cs_event *ev)
{
    const cs_sim *sim = lv->sim;
    live_node *d = &lv->nodes[ev->dst];
    live_env e = { ev->msg, ev->seq, ev->src };
    cs_msg *env;
    int rc;

    if (cs_msg_new(&env, &e, sizeof e, 0) != CS_OK) {
        cs__sim_err(lv->sim, CS_ENOMEM);
        discard(lv, ev);
        return 1;
    }
    if ((rc = cs_chan_trysend(d->inbox, env)) == CS_OK) {
        return 1; /* the envelope carries the reference */
    }
    cs_msg_unref(env); /* 'ev' still owns the message */
    if (rc == CS_EFULL &&
        (sim->cfg.inbox_cap == 0 || sim->cfg.overflow == CS_OVERFLOW_BLOCK)) {
        return 0;
    }
    if (rc == CS_EFULL) {
        d->overflow++;
        trace_msg(lv, ev->dst, CS_TR_DROP, ev->src, ev->src, ev->seq, ev->msg,
                  CS_DROP_OVERFLOW, 0);
    }
    discard(lv, ev);
    return 1;
}

/* Deliver a due event, behind any that wait for the same destination:
 * each destination gets its messages in due order. */
static void deliver(cs_live *lv, cs_event *ev)
{
    live_node *d = &lv->nodes[ev->dst];

    if (d->blocked.len == 0 && offer(lv, ev)) {
        return;
    }
    if (cs__vec_push(&d->blocked, ev, sizeof *ev) != CS_OK) {
        cs__sim_err(lv->sim, CS_ENOMEM);
        discard(lv, ev);
        return;
    }
    lv->nblocked++;
}

/* Retry the waiting messages, oldest first per destination.  O(nodes)
 * per retry, only while some wait. */
static void flush_blocked(cs_live *lv)
{
    uint32_t i;

    for (i = 0; i < lv->sim->cfg.nodes && lv->nblocked > 0; i++) {
        live_node *d = &lv->nodes[i];
        cs_event *b = d->blocked.p;
        size_t k = 0;

        while (k < d->blocked.len && offer(lv, &b[k])) {
            k++;
        }
        if (k > 0) {
            memmove(b, b + k, (d->blocked.len - k) * sizeof *b);
            d->blocked.len -= k;
            lv->nblocked -= k;
        }
    }
}

/* Wait until every thread exists and the clock is set: creating a thread
 * can take milliseconds (tens under ThreadSanitizer), and nodes started
 * as they were created would begin the run that far apart. */
static void wait_gate(cs_live *lv)
{
    cs_mutex_lock(&lv->rlock);
    while (!lv->gate_open) {
        cs_cond_wait(&lv->gate, &lv->rlock);
    }
    cs_mutex_unlock(&lv->rlock);
}

static void *line_main(void *arg)
{
    cs_live *lv = arg;
    cs_event due[LIVE_BATCH];
    size_t n, i;

    wait_gate(lv);
    cs_mutex_lock(&lv->dlock);
    while (!atomic_load(&lv->quit)) {
        cs_time now = live_now(lv), wake;
        struct timespec ts;
        int rc;

        n = 0;
        while (n < LIVE_BATCH && lv->line.len > 0 &&
               cs__heap_top(&lv->line)->at <= now) {
            cs__heap_pop(&lv->line, &due[n++]);
        }
        if (n > 0 || lv->nblocked > 0) {
            /* Deliver without the lock, so senders never wait on a
             * channel; the waiting ones first, they are older. */
            cs_mutex_unlock(&lv->dlock);
            flush_blocked(lv);
            for (i = 0; i < n; i++) {
                deliver(lv, &due[i]);
            }
            cs_mutex_lock(&lv->dlock);
            if (n > 0) {
                continue; /* more may be due by now */
            }
        }
        wake = now + LIVE_IDLE_US;
        if (lv->line.len > 0 && cs__heap_top(&lv->line)->at < wake) {
            wake = cs__heap_top(&lv->line)->at;
        }
        if (lv->nblocked > 0 && now + LIVE_RETRY_US < wake) {
            wake = now + LIVE_RETRY_US;
        }
        ts = abs_time(lv, wake);
        rc = pthread_cond_timedwait(&lv->dcond, &lv->dlock, &ts);
        CS_ASSERT(rc == 0 || rc == ETIMEDOUT);
    }
    cs_mutex_unlock(&lv->dlock);
    return NULL;
}

/* Put one copy of 'msg' on the line, due 'delay' from now.  The node's
 * own thread. */
static int line_push(cs_live *lv, node_rt *n, uint32_t from, uint32_t to,
                     cs_msg *msg, cs_time delay, int kind)
{
    const cs_event *top;
    cs_time now = live_now(lv);
    cs_event ev;
    int rc, wake;

    ev.at = delay > CS_TIME_MAX - now ? CS_TIME_MAX : now + delay;
    ev.seq = n->seq++;
    ev.src = from;
    ev.dst = to;
    ev.tag = 0;
    ev.gen = 0;
    ev.msg = cs_msg_ref(msg);
    /* Counted before it can be handled, so 'work' never dips early. */
    atomic_fetch_add(&lv->work, 1);
    cs_mutex_lock(&lv->dlock);
    top = cs__heap_top(&lv->line);
    wake = top == NULL || cs__event_less(&ev, top);
    if ((rc = cs__heap_push(&lv->line, &ev)) == CS_OK && wake) {
        cs_cond_signal(&lv->dcond); /* a new earliest deadline */
    }
    cs_mutex_unlock(&lv->dlock);
    if (rc != CS_OK) {
        discard(lv, &ev);
        cs__sim_err(lv->sim, rc);
        return rc;
    }
    trace_msg(lv, from, kind, to, from, ev.seq, msg, 0, ev.at);
    return CS_OK;
}

/* ------------------------------------------------------ node threads */

/* The earliest live timer, dropping cancelled and replaced ones from the
 * top of the heap; CS_TIME_MAX when none. */
static cs_time next_timer(node_rt *n)
{
    const cs_event *top;
    cs_event ev;

    while ((top = cs__heap_top(&n->heap)) != NULL) {
        if (top->tag < n->ntgen && top->gen == n->tgen[top->tag]) {
            return top->at;
        }
        cs__heap_pop(&n->heap, &ev);
    }
    return CS_TIME_MAX;
}

/* Keep this node's share of 'work' true: one unit while a timer due by
 * 'until' is pending. */
static void publish(cs_live *lv, live_node *ln, node_rt *n)
{
    cs_time t = ln->failed ? CS_TIME_MAX : next_timer(n);
    int armed = t != CS_TIME_MAX && t <= lv->sim->cfg.until;

    if (armed && !ln->armed) {
        atomic_fetch_add(&lv->work, 1);
    } else if (!armed && ln->armed) {
        atomic_fetch_sub(&lv->work, 1);
    }
    ln->armed = armed;
}

/* Fire the timers due now.  A timer set by one of them for "now" waits
 * for the next turn, so messages are not starved. */
static void fire_timers(cs_live *lv, live_node *ln, node_rt *n)
{
    const cs_callbacks *cb = lv->sim->cb;
    cs_time now = live_now(lv);
    cs_event ev;

    while (!ln->failed && !atomic_load(&lv->quit) && next_timer(n) <= now) {
        cs__heap_pop(&n->heap, &ev);
        n->now = live_now(lv);
        n->tgen[ev.tag]++; /* fired: no longer pending */
        n->st.timers++;
        if (cb->timer != NULL &&
            cb->timer(cb->ud, lv->sim, ln->id, ev.tag) != 0) {
            node_fail(lv, ln);
        }
    }
    publish(lv, ln, n);
}

static void handle(cs_live *lv, live_node *ln, node_rt *n, cs_msg *env)
{
    const cs_callbacks *cb = lv->sim->cb;
    live_env e;

    memcpy(&e, cs_msg_data(env), sizeof e);
    cs_msg_unref(env);
    if (!ln->failed) { /* a failed node handles nothing */
        n->now = live_now(lv);
        n->st.delivered++;
        trace_msg(lv, ln->id, CS_TR_DELIVER, e.src, e.src, e.id, e.msg, 0, 0);
        if (cb->message != NULL &&
            cb->message(cb->ud, lv->sim, ln->id, e.src, e.msg) != 0) {
            node_fail(lv, ln);
        }
    }
    cs_msg_unref(e.msg);
    /* A timer the handler set counts before the message stops counting. */
    publish(lv, ln, n);
    atomic_fetch_sub(&lv->work, 1);
}

static void *node_main(void *arg)
{
    live_node *ln = arg;
    cs_live *lv = ln->lv;
    cs_sim *sim = lv->sim;
    const cs_callbacks *cb = sim->cb;
    node_rt *n = &sim->nodes[ln->id];

    wait_gate(lv);
    if (atomic_load(&lv->quit)) {
        return NULL; /* the run could not start */
    }
    n->now = live_now(lv);
    if (cb->start != NULL && cb->start(cb->ud, sim, ln->id) != 0) {
        node_fail(lv, ln);
    }
    publish(lv, ln, n); /* gives up the starting unit */
    while (!atomic_load(&lv->quit)) {
        cs_time t, wait = LIVE_IDLE_US;
        cs_msg *env;
        int rc;

        fire_timers(lv, ln, n);
        if (!ln->failed && (t = next_timer(n)) != CS_TIME_MAX) {
            t -= live_now(lv);
            wait = t < 0 ? 0 : t < wait ? t : wait;
        }
        rc = cs_chan_recv_timeout(ln->inbox, &env, wait);
        if (rc == CS_OK) {
            handle(lv, ln, n, env);
        } else if (rc == CS_ECLOSED) {
            break;
        }
    }
    return NULL;
}

/* --------------------------------------------------------- node calls */

cs_time cs__live_now(const cs_sim *sim)
{
    return live_now(sim->live);
}

int cs__live_threads_up(const cs_sim *sim)
{
    return sim->live != NULL && sim->live->threads_up;
}

void cs__live_lock_faults(cs_sim *sim)
{
    if (sim->live != NULL) {
        cs_mutex_lock(&sim->live->flock);
    }
}

void cs__live_unlock_faults(cs_sim *sim)
{
    if (sim->live != NULL) {
        cs_mutex_unlock(&sim->live->flock);
    }
}

/* A message that never leaves: counted, traced with its reason. */
static void drop_at_send(cs_live *lv, node_rt *n, uint32_t from, uint32_t to,
                         const cs_msg *msg, int reason)
{
    n->st.dropped++;
    if (reason == CS_DROP_PARTITION) {
        n->st.dropped_partition++;
    }
    trace_msg(lv, from, CS_TR_DROP, to, from, n->seq, msg, reason, 0);
}

int cs__live_send(cs_sim *sim, uint32_t from, uint32_t to, cs_msg *msg)
{
    cs_live *lv = sim->live;
    node_rt *n = &sim->nodes[from];
    cs_net_config net = sim->cfg.net;
    const cs_latency *link;
    cs_time delay;
    int blocked, rc;

    n->st.sent++;
    n->st.bytes += cs_msg_len(msg);
    /* The fault state may change under an action: read it in one go. */
    cs_mutex_lock(&lv->flock);
    blocked = cs__faults_blocked(&sim->faults, from, to);
    if ((link = cs__faults_link(&sim->faults, from, to)) != NULL) {
        net.latency = *link;
    }
    cs_mutex_unlock(&lv->flock);
    /* The same draws in the same order as the simulated path. */
    if (blocked) {
        drop_at_send(lv, n, from, to, msg, CS_DROP_PARTITION);
        return CS_OK;
    }
    if (net.loss > 0 && cs_rng_double(&n->rng) < net.loss) {
        drop_at_send(lv, n, from, to, msg, CS_DROP_LOSS);
        return CS_OK;
    }
    delay = cs_net_delay(&net, &n->rng);
    if ((rc = line_push(lv, n, from, to, msg, delay, CS_TR_SEND)) != CS_OK) {
        return rc;
    }
    if (net.duplicate > 0 && cs_rng_double(&n->rng) < net.duplicate) {
        n->st.duplicated++;
        delay = cs_net_delay(&net, &n->rng);
        return line_push(lv, n, from, to, msg, delay, CS_TR_DUPLICATE);
    }
    return CS_OK;
}

int cs__live_record(cs_sim *sim, record *r)
{
    return push_rec(sim->live, r);
}

/* ------------------------------------------------------------- the run */

static int cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int rc;

    if ((rc = pthread_condattr_init(&attr)) != 0) {
        return rc;
    }
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0) {
        rc = pthread_cond_init(cond, &attr);
    }
    CS_ASSERT(pthread_condattr_destroy(&attr) == 0);
    return rc;
}

/* Drop what is still in a channel: envelopes and the messages in them. */
static void drain_chan(cs_chan *ch)
{
    cs_msg *env;
    live_env e;

    while (cs_chan_tryrecv(ch, &env) == CS_OK) {
        memcpy(&e, cs_msg_data(env), sizeof e);
        cs_msg_unref(e.msg);
        cs_msg_unref(env);
    }
}

static void live_free(cs_live *lv)
{
    uint32_t i;
    size_t k;

    if (lv->nodes != NULL) {
        for (i = 0; i < lv->sim->cfg.nodes; i++) {
            live_node *ln = &lv->nodes[i];

            if (ln->inbox != NULL) {
                drain_chan(ln->inbox);
                cs_chan_unref(ln->inbox);
            }
            for (k = 0; k < ln->blocked.len; k++) {
                cs_msg_unref(((cs_event *)ln->blocked.p)[k].msg);
            }
            cs_free(ln->blocked.p);
        }
    }
    cs__heap_fini(&lv->line);
    cs__free_recs(&lv->recs);
    cs_free(lv->recs.p);
    cs_free(lv->nodes);
    pthread_cond_destroy(&lv->dcond);
    pthread_cond_destroy(&lv->gate);
    pthread_mutex_destroy(&lv->dlock);
    pthread_mutex_destroy(&lv->rlock);
    pthread_mutex_destroy(&lv->flock);
    cs_free(lv);
}

static int live_new(cs_live **out, cs_sim *sim)
{
    const uint32_t n = sim->cfg.nodes;
    size_t cap = sim->cfg.inbox_cap ? sim->cfg.inbox_cap : LIVE_CHAN_CAP;
    cs_live *lv;
    uint32_t i;

    if ((lv = cs_calloc(1, sizeof *lv)) == NULL) {
        return CS_ENOMEM;
    }
    lv->sim = sim;
    atomic_init(&lv->quit, 0);
    /* One unit per node until its start is done. */
    atomic_init(&lv->work, (long)n);
    cs__heap_init(&lv->line);
    CS_ASSERT(pthread_mutex_init(&lv->flock, NULL) == 0);
    CS_ASSERT(pthread_mutex_init(&lv->dlock, NULL) == 0);
    CS_ASSERT(pthread_mutex_init(&lv->rlock, NULL) == 0);
    CS_ASSERT(cond_init_monotonic(&lv->dcond) == 0);
    CS_ASSERT(pthread_cond_init(&lv->gate, NULL) == 0);
    if ((lv->nodes = cs_calloc(n, sizeof *lv->nodes)) == NULL) {
        live_free(lv);
        return CS_ENOMEM;
    }
    for (i = 0; i < n; i++) {
        lv->nodes[i].lv = lv;
        lv->nodes[i].id = i;
        lv->nodes[i].armed = 1;
        if (cs_chan_new(&lv->nodes[i].inbox, cap) != CS_OK) {
            live_free(lv);
            return CS_ENOMEM;
        }
    }
    *out = lv;
    return CS_OK;
}

/* Let the threads go, with the run's clock starting now.  No thread has
 * read 't0' yet: they do so only after the gate. */
static void open_gate(cs_live *lv, int reset_clock)
{
    cs_mutex_lock(&lv->rlock);
    if (!lv->gate_open) {
        if (reset_clock) {
            lv->t0 = mono_us();
        }
        lv->gate_open = 1;
        cs_cond_broadcast(&lv->gate);
    }
    cs_mutex_unlock(&lv->rlock);
}

static int start_threads(cs_live *lv)
{
    uint32_t i;

    lv->threads_up = 1;
    if (pthread_create(&lv->line_th, NULL, line_main, lv) != 0) {
        return CS_ENOMEM;
    }
    lv->line_up = 1;
    for (i = 0; i < lv->sim->cfg.nodes; i++) {
        if (pthread_create(&lv->nodes[i].th, NULL, node_main, &lv->nodes[i]) !=
            0) {
            return CS_ENOMEM; /* no thread, no node: give up */
        }
        lv->nstarted++;
    }
    /* Time 0 is when the nodes start; the setup actions ran "at 0". */
    open_gate(lv, 1);
    return CS_OK;
}

static void stop_threads(cs_live *lv)
{
    uint32_t i;

    atomic_store(&lv->quit, 1);
    open_gate(lv, 0); /* if starting failed halfway */
    for (i = 0; i < lv->sim->cfg.nodes; i++) {
        cs_chan_close(lv->nodes[i].inbox); /* wakes a blocked receive */
    }
    cs_mutex_lock(&lv->dlock);
    cs_cond_broadcast(&lv->dcond);
    cs_mutex_unlock(&lv->dlock);
    for (i = 0; i < lv->nstarted; i++) {
        CS_ASSERT(pthread_join(lv->nodes[i].th, NULL) == 0);
    }
    if (lv->line_up) {
        CS_ASSERT(pthread_join(lv->line_th, NULL) == 0);
    }
}

static int main_loop(cs_live *lv)
{
    cs_sim *sim = lv->sim;
    const cs_time until = sim->cfg.until;
    int rc;

    for (;;) {
        cs_time now = live_now(lv), next;

        /* Actions run late by up to a tick, never early. */
        if ((rc = cs__sim_run_actions(sim, now < until ? now : until)) !=
                CS_OK ||
            (rc = drain(lv)) != CS_OK) {
            return rc;
        }
        if ((rc = atomic_load(&sim->err)) != CS_OK) {
            return rc;
        }
        if (atomic_load(&sim->stop)) {
            return CS_ESTOPPED;
        }
        if ((sim->cfg.stop_when_decided && all_decided(lv)) || now > until) {
            return CS_OK;
        }
        if (atomic_load(&lv->work) == 0 &&
            (sim->nacts == 0 || sim->acts[0].at > until)) {
            return CS_OK; /* nothing can happen any more */
        }
        next = now + LIVE_TICK_US;
        if (sim->nacts > 0 && sim->acts[0].at < next) {
            next = sim->acts[0].at;
        }
        if (until < next - 1) {
            next = until + 1;
        }
        sleep_until(lv, next);
    }
}

int cs__live_run(cs_sim *sim)
{
    cs_live *lv;
    uint32_t i;
    int rc, rc2;

    if ((rc = live_new(&lv, sim)) != CS_OK) {
        return rc;
    }
    lv->t0 = mono_us();
    sim->live = lv;
    /* Faults set before the run act at 0, before any node starts, while
     * no other thread can see them change. */
    if ((rc = cs__sim_run_actions(sim, 0)) == CS_OK &&
        (rc = drain(lv)) == CS_OK && (rc = start_threads(lv)) == CS_OK) {
        rc = main_loop(lv);
    }
    stop_threads(lv);
    /* What nodes recorded before they stopped still counts. */
    rc2 = drain(lv);
    if (rc == CS_OK) {
        rc = rc2;
    }
    if (rc == CS_OK || rc == CS_ESTOPPED) {
        rc2 = atomic_load(&sim->err);
        rc = rc2 != CS_OK ? rc2 : rc;
    }
    sim->end = live_now(lv);
    for (i = 0; i < sim->cfg.nodes; i++) {
        node_rt *n = &sim->nodes[i];
        live_node *ln = &lv->nodes[i];

        n->failed = ln->failed;
        n->st.dropped += ln->overflow;
        n->st.dropped_overflow += ln->overflow;
        n->now = sim->end;
    }
    sim->live = NULL;
    live_free(lv);
    return rc;
}
