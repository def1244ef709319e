/*
 * test_live.c - live mode (cfg.live): a thread per node, wall-clock time.
 *
 * The protocol is a small "allvote" like test_sim.c's: node 0 proposes a
 * value for round r and broadcasts PROPOSE; every node that receives it
 * broadcasts VOTE; a node decides round r once it holds more than 2n/3
 * votes for it, and node 0 then starts round r+1.  Every message carries
 * the wall time it was sent at, so a receiver can check that it did not
 * arrive before the smallest delay the network can draw.  Options add a
 * node that fails, one that stops the run, endless pings after deciding
 * (so only stop_when_decided or 'until' can end the run) and a flood
 * against a small inbox.
 *
 * Callbacks run on node threads: they never call cmocka asserts, they
 * count what went wrong in their own node's slot, and the test asserts
 * the counts after cs_sim_run has joined every thread.  Runs are short (a
 * few ms of latency) and every one is bounded by its 'until', far above
 * what it needs; the only wall-clock assertions are lower bounds the
 * design guarantees, and "stopped long before 'until'".
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "consensus.h"

#define MAXN 16
#define MAXR 8
#define LAT CS_MS(3)

enum { PROPOSE = 1, VOTE, PING, FLOOD };
enum { T_CHECK = 1, T_CANCELLED = 2, T_PING = 3 };
#define NONE UINT32_MAX

typedef struct wire {
    int type;
    uint32_t round, value;
    cs_time sent;               /* cs_sim_now of the sender at send time */
} wire;

typedef struct lnode {
    pthread_t tid;              /* the thread of its first callback */
    int have_tid;
    unsigned wrong_thread;      /* callbacks on another thread */
    unsigned early;             /* arrived before sent + min delay */
    unsigned early_timers;      /* fired before set time + delay */
    unsigned cancelled_fired;   /* a cancelled timer fired */
    unsigned calls_after_fail;
    unsigned votes[MAXR];
    unsigned decided;
    unsigned floods;
    cs_time timer_due;          /* T_CHECK not before this */
    int failed;
} lnode;

typedef struct proto {
    uint32_t n, rounds;
    cs_time min_delay;
    uint32_t fail_node;         /* fails on its first VOTE */
    uint32_t fail_start;        /* fails in start */
    uint32_t stop_node;         /* calls cs_sim_stop once it decided */
    cs_time ping;               /* > 0: after deciding, ping forever */
    unsigned flood;             /* node 0 sends this many FLOODs to 1 */
    long flood_us;              /* node 1 spends this long on each */
    pthread_t main;
    unsigned outputs, out_disorder, out_wrong_thread;
    cs_time out_last;
    unsigned actions, action_early, action_wrong_thread;
    cs_time action_at[4];
    int action_stop;            /* the action returns nonzero */
    int action_partition;       /* the action at 0 cuts node n-1 off */
    lnode st[MAXN];
} proto;

static void proto_init(proto *p, uint32_t n, uint32_t rounds)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    p->rounds = rounds;
    p->min_delay = LAT;
    p->fail_node = p->fail_start = p->stop_node = NONE;
    p->main = pthread_self();
}

static void live_config(cs_sim_config *cfg, uint32_t n)
{
    cs_sim_config_init(cfg);
    cfg->nodes = n;
    cfg->live = 1;
    cfg->seed = 7;
    cfg->net.latency.kind = CS_LAT_CONST;
    cfg->net.latency.a = (double)LAT;
    cfg->until = CS_MS(1500);   /* a bound; runs end long before */
}

/* The node's thread must be the same for every callback, and not the
 * main thread. */
static lnode *enter(proto *p, uint32_t node)
{
    lnode *s = &p->st[node];

    if (!s->have_tid) {
        s->tid = pthread_self();
        s->have_tid = 1;
    } else if (!pthread_equal(s->tid, pthread_self())) {
        s->wrong_thread++;
    }
    if (pthread_equal(p->main, pthread_self())) {
        s->wrong_thread++;
    }
    if (s->failed) {
        s->calls_after_fail++;
    }
    return s;
}

static int send_to(cs_sim *sim, uint32_t from, int to, int type,
                   uint32_t round)
{
    wire w;
    cs_msg *m;
    int rc;

    memset(&w, 0, sizeof w);
    w.type = type;
    w.round = round;
    w.value = 100 + round;
    w.sent = cs_sim_now(sim, from);
    if (cs_msg_new(&m, &w, sizeof w, (uint32_t)type) != CS_OK) {
        return 0;                   /* out of memory: the message is lost */
    }
    rc = to < 0 ? cs_sim_broadcast(sim, from, m, 1)
                : cs_sim_send(sim, from, (uint32_t)to, m);
    cs_msg_unref(m);                /* the sim took its own references */
    (void)rc;
    return 0;
}

static void propose(proto *p, cs_sim *sim, uint32_t round)
{
    uint32_t v = 100 + round;

    (void)p;
    cs_sim_propose(sim, 0, round, 0, &v, sizeof v);
    send_to(sim, 0, -1, PROPOSE, round);
}

static int on_start(void *ud, cs_sim *sim, uint32_t node)
{
    proto *p = ud;
    lnode *s = enter(p, node);
    unsigned i;

    if (node == p->fail_start) {
        s->failed = 1;
        return 1;
    }
    /* A timer to check, and one cancelled before it is due. */
    s->timer_due = cs_sim_now(sim, node) + CS_MS(2);
    cs_sim_set_timer(sim, node, T_CHECK, CS_MS(2));
    cs_sim_set_timer(sim, node, T_CANCELLED, CS_MS(1));
    cs_sim_cancel_timer(sim, node, T_CANCELLED);
    if (node == 0) {
        propose(p, sim, 0);
        for (i = 0; i < p->flood; i++) {
            send_to(sim, 0, 1, FLOOD, 0);
        }
    }
    return 0;
}

static void decided_all(proto *p, cs_sim *sim, uint32_t node)
{
    if (p->ping > 0) {
        cs_sim_set_timer(sim, node, T_PING, p->ping);
    }
}

static int on_message(void *ud, cs_sim *sim, uint32_t node, uint32_t from,
                      cs_msg *msg)
{
    proto *p = ud;
    lnode *s = enter(p, node);
    cs_time now = cs_sim_now(sim, node);
    wire w;

    (void)from;
    if (cs_msg_len(msg) != sizeof w) {
        return 1;
    }
    memcpy(&w, cs_msg_data(msg), sizeof w);
    if (now - w.sent < p->min_delay) {
        s->early++;
    }
    switch (w.type) {
    case PROPOSE:
        send_to(sim, node, -1, VOTE, w.round);
        return 0;
    case VOTE:
        if (node == p->fail_node) {
            s->failed = 1;
            return 1;
        }
        if (w.round >= MAXR || ++s->votes[w.round] != 2 * p->n / 3 + 1) {
            return 0;
        }
        cs_sim_decide(sim, node, w.round, &w.value, sizeof w.value);
        cs_sim_emit(sim, node, 1, &w.round, sizeof w.round);
        s->decided++;
        if (node == p->stop_node) {
            cs_sim_stop(sim);
        }
        if (node == 0 && w.round + 1 < p->rounds) {
            propose(p, sim, w.round + 1);
        }
        if (w.round + 1 == p->rounds) {
            decided_all(p, sim, node);
        }
        return 0;
    case FLOOD: {
        struct timespec ts = { 0, p->flood_us * 1000 };

        s->floods++;
        nanosleep(&ts, NULL);       /* a slow consumer */
        return 0;
    }
    default:                        /* PING */
        return 0;
    }
}

static int on_timer(void *ud, cs_sim *sim, uint32_t node, uint32_t tag)
{
    proto *p = ud;
    lnode *s = enter(p, node);

    if (tag == T_CANCELLED) {
        s->cancelled_fired++;
    } else if (tag == T_CHECK && cs_sim_now(sim, node) < s->timer_due) {
        s->early_timers++;
    } else if (tag == T_PING) {
        send_to(sim, node, (int)((node + 1) % p->n), PING, 0);
        cs_sim_set_timer(sim, node, T_PING, p->ping);
    }
    return 0;
}

static void on_output(void *ud, cs_sim *sim, uint32_t node, cs_time at,
                      int kind, const void *data, size_t len)
{
    proto *p = ud;

    (void)sim;
    (void)node;
    (void)kind;
    (void)data;
    (void)len;
    if (!pthread_equal(p->main, pthread_self())) {
        p->out_wrong_thread++;
    }
    if (at < p->out_last) {
        p->out_disorder++;
    }
    p->out_last = at;
    p->outputs++;
}

static int on_action(void *ud, cs_sim *sim, uint64_t id)
{
    proto *p = ud;
    cs_time now = cs_sim_now(sim, 0);

    if (!pthread_equal(p->main, pthread_self())) {
        p->action_wrong_thread++;
    }
    if (id < 4) {
        p->action_at[id] = now;
    }
    if (id == 1 && now < CS_MS(10)) {
        p->action_early++;
    }
    if (id == 0 && p->action_partition) {
        uint32_t group[MAXN] = { 0 };

        group[p->n - 1] = 1;
        cs_sim_partition(sim, group);
    }
    p->actions++;
    return p->action_stop;
}

static int run(proto *p, const cs_sim_config *cfg, cs_sim **out)
{
    cs_callbacks cb;
    cs_sim *sim;
    int rc;

    memset(&cb, 0, sizeof cb);
    cb.ud = p;
    cb.start = on_start;
    cb.message = on_message;
    cb.timer = on_timer;
    cb.output = on_output;
    cb.action = on_action;
    assert_int_equal(cs_sim_new(&sim, cfg), CS_OK);
    rc = cs_sim_run(sim, &cb);
    *out = sim;
    return rc;
}

/* What no run may show, whatever it tested. */
static void assert_sane(const proto *p)
{
    uint32_t i;

    for (i = 0; i < p->n; i++) {
        assert_int_equal(p->st[i].wrong_thread, 0);
        assert_int_equal(p->st[i].early, 0);
        assert_int_equal(p->st[i].early_timers, 0);
        assert_int_equal(p->st[i].cancelled_fired, 0);
        assert_int_equal(p->st[i].calls_after_fail, 0);
    }
    assert_int_equal(p->out_wrong_thread, 0);
    assert_int_equal(p->out_disorder, 0);
    assert_int_equal(p->action_wrong_thread, 0);
}

static void assert_no_violation(const cs_sim *sim)
{
    const cs_violation *v;

    assert_int_equal(cs_sim_violations(sim, &v), 0);
}

/* ------------------------------------------------------------ the tests */

static void test_every_node_decides_and_agrees(void **state)
{
    int k;

    (void)state;
    /* A few times: the interleavings differ from run to run. */
    for (k = 0; k < 4; k++) {
        cs_sim_config cfg;
        const cs_decision *d;
        cs_stats st;
        cs_sim *sim;
        proto p;
        size_t nd, i;
        uint32_t j;

        proto_init(&p, 4, 3);
        live_config(&cfg, 4);
        cfg.expect_slots = 3;
        assert_int_equal(run(&p, &cfg, &sim), CS_OK);
        assert_sane(&p);
        assert_no_violation(sim);
        for (j = 0; j < 4; j++) {
            assert_int_equal(cs_sim_decided(sim, j), 3);
            assert_int_equal(p.st[j].decided, 3);
            assert_false(cs_sim_node_failed(sim, j));
        }
        nd = cs_sim_decisions(sim, &d);
        assert_int_equal(nd, 12);
        for (i = 0; i < nd; i++) {
            uint32_t v;

            memcpy(&v, d[i].val, sizeof v);
            assert_int_equal(v, 100 + d[i].slot);
            assert_true(i == 0 || d[i].at >= d[i - 1].at);
        }
        assert_int_equal(p.outputs, 12);
        cs_sim_stats(sim, &st);
        /* Each round: 4 PROPOSE and up to 16 VOTE sent (a node may decide
         * before the proposal reaches it, and the run stops then); some
         * may still be on the way, never more delivered than sent. */
        assert_true(st.sent >= 3 * (4 + 12) && st.sent <= 3 * (4 + 16));
        assert_true(st.delivered <= st.sent);
        assert_true(st.delivered >= 3 * 4 * 3);   /* the deciding votes */
        assert_int_equal(st.dropped, 0);
        assert_int_equal(st.windows, 0);
        assert_true(st.timers >= 4);
        assert_true(st.end >= 3 * 2 * LAT);   /* a round is two hops */
        cs_sim_free(sim);
    }
}

static void test_counts_balance_once_idle(void **state)
{
    cs_sim_config cfg;
    cs_stats st;
    cs_sim *sim;
    proto p;

    (void)state;
    /* No stop when decided: the run ends when nothing is left to do,
     * every message handled or dropped. */
    proto_init(&p, 5, 2);
    live_config(&cfg, 5);
    cfg.expect_slots = 2;
    cfg.stop_when_decided = 0;
    cfg.net.loss = 0.5;
    cfg.until = CS_MS(20000);
    assert_true(run(&p, &cfg, &sim) == CS_OK);
    assert_sane(&p);
    cs_sim_stats(sim, &st);
    assert_true(st.dropped > 0);
    assert_int_equal(st.delivered + st.dropped, st.sent);
    assert_true(st.end < cfg.until);    /* idle, not 'until' */
    cs_sim_free(sim);

    /* With duplicates, every copy is delivered. */
    proto_init(&p, 4, 2);
    live_config(&cfg, 4);
    cfg.expect_slots = 2;
    cfg.stop_when_decided = 0;
    cfg.net.duplicate = 0.5;
    cfg.until = CS_MS(20000);
    assert_int_equal(run(&p, &cfg, &sim), CS_OK);
    assert_sane(&p);
    assert_no_violation(sim);
    cs_sim_stats(sim, &st);
    assert_true(st.duplicated > 0);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.delivered, st.sent + st.duplicated);
    cs_sim_free(sim);
}

static void test_never_delivered_before_min_delay(void **state)
{
    cs_sim_config cfg;
    cs_stats st;
    cs_sim *sim;
    proto p;

    (void)state;
    /* Uniform in [2, 6] ms; each receive checks now - sent >= 2 ms, each
     * timer now >= its due time (assert_sane). */
    proto_init(&p, 7, 3);
    p.min_delay = CS_MS(2);
    live_config(&cfg, 7);
    cfg.expect_slots = 3;
    cfg.net.latency.kind = CS_LAT_UNIFORM;
    cfg.net.latency.a = (double)CS_MS(2);
    cfg.net.latency.b = (double)CS_MS(6);
    assert_int_equal(run(&p, &cfg, &sim), CS_OK);
    assert_sane(&p);
    assert_no_violation(sim);
    cs_sim_stats(sim, &st);
    assert_true(st.delivered > 0);
    cs_sim_free(sim);
}

static void test_stop_when_decided_ends_endless_run(void **state)
{
    cs_sim_config cfg;
    cs_sim *sim;
    proto p;
    uint32_t j;

    (void)state;
    /* Nodes ping each other forever once they decided: only the stop
     * rule ends the run. */
    proto_init(&p, 4, 2);
    p.ping = CS_MS(1);
    live_config(&cfg, 4);
    cfg.expect_slots = 2;
    cfg.until = CS_MS(30000);
    assert_int_equal(run(&p, &cfg, &sim), CS_OK);
    assert_sane(&p);
    assert_no_violation(sim);
    for (j = 0; j < 4; j++) {
        assert_int_equal(cs_sim_decided(sim, j), 2);
    }
    assert_true(cs_sim_now(sim, 0) < cfg.until);
    cs_sim_free(sim);
}

static void test_until_ends_endless_run(void **state)
{
    cs_sim_config cfg;
    cs_stats st;
    cs_sim *sim;
    proto p;

    (void)state;
    proto_init(&p, 4, 1);
    p.ping = CS_MS(1);
    live_config(&cfg, 4);
    cfg.stop_when_decided = 0;
    cfg.until = CS_MS(60);
    assert_int_equal(run(&p, &cfg, &sim), CS_OK);
    assert_sane(&p);
    cs_sim_stats(sim, &st);
    assert_true(st.end >= cfg.until);   /* it did not stop before */
    assert_true(st.sent > 4 + 16);      /* pings went on */
    cs_sim_free(sim);

    /* 'until' before anyone could decide: termination fails. */
    proto_init(&p, 4, 1);
    live_config(&cfg, 4);
    cfg.net.latency.a = (double)CS_MS(50);
    cfg.until = CS_MS(20);
    assert_int_equal(run(&p, &cfg, &sim), CS_OK);
    {
        const cs_violation *v;
        size_t nv = cs_sim_violations(sim, &v), i;

        assert_int_equal(nv, 4);
        for (i = 0; i < nv; i++) {
            assert_int_equal(v[i].kind, CS_V_TERMINATION);
        }
    }
    cs_sim_free(sim);
}

static void test_failing_callbacks_fail_their_node(void **state)
{
    cs_sim_config cfg;
    cs_sim *sim;
    proto p;

    (void)state;
    proto_init(&p, 4, 2);
    p.fail_node = 3;                /* on its first VOTE */
    live_config(&cfg, 4);
    cfg.expect_slots = 2;
    assert_int_equal(run(&p, &cfg, &sim), CS_OK);
    assert_sane(&p);
    assert_no_violation(sim);       /* a failed node is not waited for */
    assert_true(cs_sim_node_failed(sim, 3));
    assert_false(cs_sim_node_failed(sim, 0));
    assert_int_equal(cs_sim_decided(sim, 0), 2);
    assert_int_equal(cs_sim_decided(sim, 3), 0);
    cs_sim_free(sim);

    proto_init(&p, 4, 1);
    p.fail_start = 2;
    live_config(&cfg, 4);
    assert_int_equal(run(&p, &cfg, &sim), CS_OK);
    assert_sane(&p);                /* no callback after the failure */
    assert_true(cs_sim_node_failed(sim, 2));
    assert_int_equal(cs_sim_decided(sim, 1), 1);
    cs_sim_free(sim);
}

static void test_stop_from_callback_returns_estopped(void **state)
{
    cs_sim_config cfg;
    cs_sim *sim;
    proto p;

    (void)state;
    proto_init(&p, 4, 1);
    p.stop_node = 1;
    p.ping = CS_MS(1);
    live_config(&cfg, 4);
    cfg.stop_when_decided = 0;
    cfg.until = CS_MS(30000);
    assert_int_equal(run(&p, &cfg, &sim), CS_ESTOPPED);
    assert_sane(&p);
    assert_true(cs_sim_now(sim, 0) < cfg.until);
    cs_sim_free(sim);
}

static void test_actions_run_on_main_thread_not_early(void **state)
{
    cs_sim_config cfg;
    cs_stats st;
    cs_sim *sim;
    proto p;

    (void)state;
    /* Action 0 at 0 cuts node 3 off before any node starts; action 1 at
     * 10 ms must not run before then. */
    proto_init(&p, 4, 1);
    p.action_partition = 1;
    live_config(&cfg, 4);
    cfg.until = CS_MS(3000);
    {
        cs_callbacks cb;

        memset(&cb, 0, sizeof cb);
        cb.ud = &p;
        cb.start = on_start;
        cb.message = on_message;
        cb.timer = on_timer;
        cb.output = on_output;
        cb.action = on_action;
        assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
        assert_int_equal(cs_sim_at(sim, 0, 0), CS_OK);
        assert_int_equal(cs_sim_at(sim, CS_MS(10), 1), CS_OK);
        assert_int_equal(cs_sim_run(sim, &cb), CS_OK);
    }
    assert_sane(&p);
    assert_int_equal(p.actions, 2);
    assert_int_equal(p.action_early, 0);
    cs_sim_stats(sim, &st);
    /* Node 3 hears nothing and says nothing that arrives; the others
     * still reach 3 votes of 4. */
    assert_true(st.dropped_partition > 0);
    assert_int_equal(cs_sim_decided(sim, 0), 1);
    assert_int_equal(cs_sim_decided(sim, 3), 0);
    cs_sim_free(sim);

    /* An action that fails stops the run. */
    proto_init(&p, 4, 1);
    p.action_stop = 1;
    live_config(&cfg, 4);
    {
        cs_callbacks cb;

        memset(&cb, 0, sizeof cb);
        cb.ud = &p;
        cb.start = on_start;
        cb.message = on_message;
        cb.action = on_action;
        assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
        assert_int_equal(cs_sim_at(sim, CS_MS(5), 2), CS_OK);
        assert_int_equal(cs_sim_run(sim, &cb), CS_ESTOPPED);
        assert_int_equal(p.actions, 1);
        assert_true(p.action_at[2] >= CS_MS(5));
        cs_sim_free(sim);
    }
}

static void test_node_faults_refused_live(void **state)
{
    cs_sim_config cfg;
    cs_sim *sim;

    (void)state;
    live_config(&cfg, 4);
    assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
    assert_int_equal(cs_sim_crash(sim, 1, CS_MS(5), 0), CS_EINVAL);
    assert_int_equal(cs_sim_restart(sim, 1, CS_MS(5)), CS_EINVAL);
    assert_int_equal(cs_sim_pause(sim, 1, CS_MS(5), CS_MS(5)), CS_EINVAL);
    /* Before the run a clock may still be set. */
    assert_int_equal(cs_sim_set_clock(sim, 1, CS_MS(3), 0.0), CS_OK);
    cs_sim_free(sim);
}

static void test_full_inbox_drops_or_blocks(void **state)
{
    cs_sim_config cfg;
    cs_stats st;
    cs_sim *sim;
    proto p;

    (void)state;
    /* 100 messages due at once at an inbox of 4 whose node takes 200 us
     * each: most are dropped, and the counts still balance. */
    proto_init(&p, 2, 1);
    p.flood = 100;
    p.flood_us = 200;
    live_config(&cfg, 2);
    cfg.stop_when_decided = 0;
    cfg.inbox_cap = 4;
    cfg.overflow = CS_OVERFLOW_DROP_NEWEST;
    cfg.until = CS_MS(20000);
    assert_int_equal(run(&p, &cfg, &sim), CS_OK);
    assert_sane(&p);
    cs_sim_stats(sim, &st);
    assert_true(st.dropped_overflow > 0);
    assert_int_equal(st.dropped, st.dropped_overflow);
    assert_int_equal(st.delivered + st.dropped, st.sent);
    /* (PROPOSE and VOTE may be dropped at node 1 as well) */
    assert_true(p.st[1].floods < 100);
    assert_true(p.st[1].floods + st.dropped_overflow >= 100);
    cs_sim_free(sim);

    /* Blocking: every one gets in, later. */
    proto_init(&p, 2, 1);
    p.flood = 100;
    p.flood_us = 200;
    live_config(&cfg, 2);
    cfg.stop_when_decided = 0;
    cfg.inbox_cap = 4;
    cfg.overflow = CS_OVERFLOW_BLOCK;
    cfg.until = CS_MS(20000);
    assert_int_equal(run(&p, &cfg, &sim), CS_OK);
    assert_sane(&p);
    cs_sim_stats(sim, &st);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.delivered, st.sent);
    assert_int_equal(p.st[1].floods, 100);
    cs_sim_free(sim);
}

static void test_alloc_failure_fails_cleanly(void **state)
{
    long n;

    (void)state;
    /* Which allocation is the nth depends on timing; whichever it is,
     * the run ends with CS_ENOMEM or survives it (a lost message), and
     * nothing leaks (the sanitizer build checks). */
    for (n = 1; n <= 60; n++) {
        cs_sim_config cfg;
        cs_callbacks cb;
        cs_sim *sim;
        proto p;
        int rc;

        proto_init(&p, 3, 1);
        live_config(&cfg, 3);
        cfg.until = CS_MS(500);
        assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
        memset(&cb, 0, sizeof cb);
        cb.ud = &p;
        cb.start = on_start;
        cb.message = on_message;
        cb.timer = on_timer;
        cb.output = on_output;
        cs_fail_alloc_at(n);
        rc = cs_sim_run(sim, &cb);
        cs_fail_alloc_at(0);
        assert_true(rc == CS_OK || rc == CS_ENOMEM);
        cs_sim_free(sim);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_node_decides_and_agrees),
        cmocka_unit_test(test_counts_balance_once_idle),
        cmocka_unit_test(test_never_delivered_before_min_delay),
        cmocka_unit_test(test_stop_when_decided_ends_endless_run),
        cmocka_unit_test(test_until_ends_endless_run),
        cmocka_unit_test(test_failing_callbacks_fail_their_node),
        cmocka_unit_test(test_stop_from_callback_returns_estopped),
        cmocka_unit_test(test_actions_run_on_main_thread_not_early),
        cmocka_unit_test(test_node_faults_refused_live),
        cmocka_unit_test(test_full_inbox_drops_or_blocks),
        cmocka_unit_test(test_alloc_failure_fails_cleanly),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
