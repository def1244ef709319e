/*
 * test_sim.c - the deterministic scheduler (cs_sim_*).
 *
 * Most cases run "allvote", a small protocol written against
 * cs_callbacks: node 0 proposes a value for round r and broadcasts
 * PROPOSE; every node that receives it broadcasts VOTE; a node decides
 * round r once it holds more than 2n/3 votes for it, and node 0 then
 * starts round r+1.  With a constant latency L every count and time is
 * known in advance: round r is decided at (2r+2)L after n + n^2 messages.
 *
 * Each node keeps a digest of every callback it gets (time, sender,
 * bytes), updated only by the thread running the node.  The run's digest
 * combines them in node order with the decisions, the records delivered to
 * callbacks.output and the counters, so two runs with the same seed must
 * give the same digest whatever the number of threads.  Callbacks never
 * call cmocka asserts (they may run on a worker thread): they count what
 * went wrong and the test asserts the counts after the run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "consensus.h"

#define MAXN 64
#define MAXR 32
#define L CS_MS(10)

enum { PROPOSE = 1, VOTE = 2 };
enum { K_DECIDE = 1, K_TIMER = 2, K_START = 3 };
enum { MSGLEN = 21 };

/* --------------------------------------------------------- the digest */

static uint64_t fnv(uint64_t h, const void *p, size_t len)
{
    const unsigned char *s = p;
    size_t i;

    for (i = 0; i < len; i++) {
        h = (h ^ s[i]) * 0x100000001b3ULL;
    }
    return h;
}

static uint64_t fnv_u64(uint64_t h, uint64_t v)
{
    unsigned char b[8];
    int i;

    for (i = 0; i < 8; i++) {
        b[i] = (unsigned char)(v >> (8 * i));
    }
    return fnv(h, b, 8);
}

/* ------------------------------------------------------------ messages */

typedef struct vmsg {
    int type;
    uint32_t round, value, sender;
    cs_time sent;               /* -1: not recorded (prebuilt message) */
} vmsg;

static void put32(unsigned char *p, uint32_t v)
{
    int i;

    for (i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void encode(unsigned char *b, const vmsg *m)
{
    b[0] = (unsigned char)m->type;
    put32(b + 1, m->round);
    put32(b + 5, m->value);
    put32(b + 9, m->sender);
    put32(b + 13, (uint32_t)((uint64_t)m->sent & 0xffffffffu));
    put32(b + 17, (uint32_t)((uint64_t)m->sent >> 32));
}

static int decode(vmsg *m, const cs_msg *msg)
{
    const unsigned char *b = cs_msg_data(msg);

    if (cs_msg_len(msg) != MSGLEN) {
        return -1;
    }
    m->type = b[0];
    m->round = get32(b + 1);
    m->value = get32(b + 5);
    m->sender = get32(b + 9);
    m->sent = (cs_time)((uint64_t)get32(b + 13) |
                        (uint64_t)get32(b + 17) << 32);
    return 0;
}

/* ------------------------------------------------------------- allvote */

typedef struct nodest {
    uint64_t h;                 /* digest of this node's callbacks */
    cs_time last;               /* time of the previous callback */
    uint32_t last_src;          /* and its source (the node for timers) */
    unsigned calls, calls_after_fail;
    unsigned early, late, disorder, bad; /* what went wrong */
    unsigned votes[MAXR];
    unsigned emitted;
    int failed;
    pthread_t tid[4];
    unsigned ntid;
} nodest;

typedef struct proto {
    uint32_t n, rounds;
    cs_time min_delay;          /* no delivery before sent + min_delay */
    cs_time max_delay;          /* nor after sent + max_delay (0: any) */
    int random_values;          /* node 0 draws values from its stream */
    int timers;                 /* set, replace and fire timers */
    int emit;                   /* emit a record per decision and timer */
    int yield;                  /* sched_yield in callbacks */
    uint32_t fail_node;         /* this node fails on its first VOTE */
    uint32_t fail_start;        /* this node fails in start */
    uint32_t stop_node;         /* this node calls cs_sim_stop ... */
    uint32_t stop_round;        /* ... when it decides this round */
    cs_msg *pre[3][MAXR];       /* prebuilt messages, or NULL */
    nodest st[MAXN];

    /* touched by the main thread only (output runs at barriers) */
    uint64_t out_h;
    unsigned nout, out_disorder, out_bad;
    cs_time out_at;
    uint32_t out_node, out_ctr;
} proto;

static void proto_init(proto *p, uint32_t n, uint32_t rounds)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    p->rounds = rounds;
    p->fail_node = UINT32_MAX;
    p->fail_start = UINT32_MAX;
    p->stop_node = UINT32_MAX;
    p->out_h = 0xcbf29ce484222325ULL;
    p->out_at = -1;
}

/* Events reach a node in (time, src, seq) order.  The callbacks see time
 * and src; since no timer here has a zero delay (which could legitimately
 * sort before the event that set it), (time, src) never decreases. */
static void note_call(proto *p, cs_sim *sim, uint32_t node, int what,
                      uint32_t src, uint64_t arg, const cs_msg *msg)
{
    nodest *s = &p->st[node];
    cs_time now = cs_sim_now(sim, node);
    pthread_t self = pthread_self();
    unsigned i;

    if (s->failed) {
        s->calls_after_fail++;
    }
    if (what == K_START) {
        src = 0;                        /* before every event */
    }
    if (now < s->last || (now == s->last && src < s->last_src)) {
        s->disorder++;
    }
    s->last = now;
    s->last_src = src;
    s->calls++;
    s->h = fnv_u64(s->h, (uint64_t)what);
    s->h = fnv_u64(s->h, node);
    s->h = fnv_u64(s->h, (uint64_t)now);
    s->h = fnv_u64(s->h, arg);
    if (msg != NULL) {
        s->h = fnv_u64(s->h, cs_msg_kind(msg));
        s->h = fnv(s->h, cs_msg_data(msg), cs_msg_len(msg));
    }
    for (i = 0; i < s->ntid; i++) {
        if (pthread_equal(s->tid[i], self)) {
            break;
        }
    }
    if (i == s->ntid && s->ntid < 4) {
        s->tid[s->ntid++] = self;
    }
    if (p->yield) {
        sched_yield();
    }
}

static int emit_rec(proto *p, cs_sim *sim, uint32_t node, int kind)
{
    unsigned char b[16];
    cs_time now = cs_sim_now(sim, node);

    if (!p->emit) {
        return CS_OK;
    }
    put32(b, node);
    put32(b + 4, p->st[node].emitted++);
    put32(b + 8, (uint32_t)((uint64_t)now & 0xffffffffu));
    put32(b + 12, (uint32_t)((uint64_t)now >> 32));
    return cs_sim_emit(sim, node, kind, b, sizeof b);
}

/* Broadcast a message of 'type' for round r (self included). */
static int send_all(proto *p, cs_sim *sim, uint32_t node, int type,
                    uint32_t r, uint32_t value)
{
    unsigned char b[MSGLEN];
    vmsg m = { type, r, value, node, cs_sim_now(sim, node) };
    cs_msg *msg;
    int rc;

    if (p->pre[type][r] != NULL) {
        return cs_sim_broadcast(sim, node, p->pre[type][r], 1);
    }
    encode(b, &m);
    if ((rc = cs_msg_new(&msg, b, sizeof b, (uint32_t)type)) != CS_OK) {
        return rc;
    }
    rc = cs_sim_broadcast(sim, node, msg, 1);
    cs_msg_unref(msg);
    return rc;
}

static uint32_t round_value(proto *p, cs_sim *sim, uint32_t r)
{
    if (p->random_values) {
        return 1000 * r + (uint32_t)cs_rng_below(cs_sim_rng(sim, 0), 1000);
    }
    return 1000 * r + 7;
}

static int propose(proto *p, cs_sim *sim, uint32_t r)
{
    uint32_t v = round_value(p, sim, r);
    int rc;

    if ((rc = cs_sim_propose(sim, 0, r, 0, &v, sizeof v)) != CS_OK) {
        return rc;
    }
    return send_all(p, sim, 0, PROPOSE, r, v);
}

static int av_start(void *ud, cs_sim *sim, uint32_t node)
{
    proto *p = ud;

    note_call(p, sim, node, K_START, 0, 0, NULL);
    if (node == p->fail_start) {
        p->st[node].failed = 1;
        return 1;
    }
    if (cs_sim_is_byzantine(sim, node)) {
        return 0;                       /* silent */
    }
    if (p->timers) {
        /* Set a tag and replace it: only the second may fire. */
        if (cs_sim_set_timer(sim, node, 2, CS_MS(1)) != CS_OK ||
            cs_sim_set_timer(sim, node, 2, CS_MS(3) + node) != CS_OK) {
            return 1;
        }
    }
    return node == 0 ? propose(p, sim, 0) != CS_OK : 0;
}

static int av_message(void *ud, cs_sim *sim, uint32_t node, uint32_t from,
                      cs_msg *msg)
{
    proto *p = ud;
    nodest *s = &p->st[node];
    cs_time now = cs_sim_now(sim, node);
    vmsg m;

    note_call(p, sim, node, 100 + (int)from, from, from, msg);
    if (decode(&m, msg) != 0 || m.round >= p->rounds ||
        (m.sender != UINT32_MAX && m.sender != from)) {
        s->bad++;
        return 0;
    }
    if (m.sent >= 0) {
        if (now < m.sent + p->min_delay) {
            s->early++;
        }
        if (p->max_delay > 0 && now > m.sent + p->max_delay) {
            s->late++;
        }
    }
    if (cs_sim_is_byzantine(sim, node)) {
        return 0;
    }
    if (m.type == PROPOSE) {
        if (p->timers) {
            cs_time d = 1 + (cs_time)cs_rng_below(cs_sim_rng(sim, node),
                                                  3000);

            if (cs_sim_set_timer(sim, node, 1, d) != CS_OK) {
                return 1;
            }
        }
        return send_all(p, sim, node, VOTE, m.round, m.value) != CS_OK;
    }
    if (node == p->fail_node) {
        s->failed = 1;
        return 1;
    }
    /* A VOTE: decide on the vote that crosses 2n/3. */
    if (++s->votes[m.round] != 2 * p->n / 3 + 1) {
        return 0;
    }
    if (cs_sim_decide(sim, node, m.round, &m.value, sizeof m.value) != CS_OK ||
        emit_rec(p, sim, node, K_DECIDE) != CS_OK) {
        return 1;
    }
    if (node == p->stop_node && m.round == p->stop_round) {
        cs_sim_stop(sim);
    }
    if (node == 0 && m.round + 1 < p->rounds) {
        return propose(p, sim, m.round + 1) != CS_OK;
    }
    return 0;
}

static int av_timer(void *ud, cs_sim *sim, uint32_t node, uint32_t tag)
{
    proto *p = ud;

    note_call(p, sim, node, K_TIMER, node, tag, NULL);
    return emit_rec(p, sim, node, K_TIMER) != CS_OK;
}

static void av_output(void *ud, cs_sim *sim, uint32_t node, cs_time at,
                      int kind, const void *data, size_t len)
{
    proto *p = ud;
    const unsigned char *b = data;
    uint32_t ctr;

    (void)sim;
    p->nout++;
    p->out_h = fnv_u64(p->out_h, node);
    p->out_h = fnv_u64(p->out_h, (uint64_t)at);
    p->out_h = fnv_u64(p->out_h, (uint64_t)kind);
    p->out_h = fnv(p->out_h, data, len);
    if (len != 16 || get32(b) != node ||
        (cs_time)((uint64_t)get32(b + 8) | (uint64_t)get32(b + 12) << 32) !=
            at) {
        p->out_bad++;
        return;
    }
    ctr = get32(b + 4);
    /* (time, node, seq): the per-node counter follows the node's seq. */
    if (at < p->out_at ||
        (at == p->out_at && node < p->out_node) ||
        (at == p->out_at && node == p->out_node && ctr <= p->out_ctr)) {
        p->out_disorder++;
    }
    p->out_at = at;
    p->out_node = node;
    p->out_ctr = ctr;
}

static const cs_callbacks av_callbacks = {
    .start = av_start, .message = av_message, .timer = av_timer,
    .output = av_output
};

/* Run allvote under 'cfg'; the caller frees the sim. */
static cs_sim *av_run(proto *p, const cs_sim_config *cfg, int want_rc)
{
    cs_callbacks cb = av_callbacks;
    cs_sim *sim = NULL;

    cb.ud = p;
    assert_int_equal(cs_sim_new(&sim, cfg), CS_OK);
    assert_int_equal(cs_sim_run(sim, &cb), want_rc);
    return sim;
}

/* The digest of everything observable about a run. */
static uint64_t digest(const proto *p, const cs_sim *sim)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    const cs_decision *d;
    const cs_violation *v;
    cs_stats st;
    size_t i, nd, nv;

    for (i = 0; i < p->n; i++) {
        h = fnv_u64(h, p->st[i].h);
        h = fnv_u64(h, (uint64_t)cs_sim_node_failed(sim, (uint32_t)i));
    }
    nd = cs_sim_decisions(sim, &d);
    for (i = 0; i < nd; i++) {
        h = fnv_u64(h, d[i].node);
        h = fnv_u64(h, (uint64_t)d[i].slot);
        h = fnv_u64(h, (uint64_t)d[i].at);
        h = fnv(h, d[i].val, d[i].len);
    }
    h = fnv_u64(h, p->out_h);
    h = fnv_u64(h, p->nout);
    nv = cs_sim_violations(sim, &v);
    for (i = 0; i < nv; i++) {
        h = fnv_u64(h, (uint64_t)v[i].kind);
        h = fnv_u64(h, v[i].node);
        h = fnv_u64(h, (uint64_t)v[i].slot);
        h = fnv_u64(h, (uint64_t)v[i].at);
    }
    cs_sim_stats(sim, &st);
    h = fnv_u64(h, st.sent);
    h = fnv_u64(h, st.delivered);
    h = fnv_u64(h, st.dropped);
    h = fnv_u64(h, st.duplicated);
    h = fnv_u64(h, st.bytes);
    h = fnv_u64(h, st.timers);
    h = fnv_u64(h, st.windows);
    h = fnv_u64(h, (uint64_t)st.end);
    return h;
}

/* What went wrong inside callbacks, summed over nodes. */
static unsigned problems(const proto *p)
{
    unsigned i, n = p->out_bad + p->out_disorder;

    for (i = 0; i < p->n; i++) {
        n += p->st[i].early + p->st[i].late + p->st[i].disorder +
             p->st[i].bad + p->st[i].calls_after_fail;
    }
    return n;
}

static void av_config(cs_sim_config *cfg, uint32_t n, unsigned threads)
{
    cs_sim_config_init(cfg);
    cfg->nodes = n;
    cfg->threads = threads;
    cfg->seed = 7;
    cfg->net.latency.kind = CS_LAT_CONST;
    cfg->net.latency.a = (double)L;
    cfg->until = CS_MS(10000);
}

/* ---------------------------------------------------------- the tests */

static void test_config_defaults(void **state)
{
    cs_sim_config cfg;
    cs_sim *sim = NULL;

    (void)state;
    cs_sim_config_init(&cfg);
    assert_int_equal(cfg.nodes, 4);
    assert_int_equal(cfg.seed, 1);
    assert_int_equal(cfg.threads, 1);
    assert_int_equal(cfg.net.latency.kind, CS_LAT_CONST);
    assert_int_equal(cs_net_min_delay(&cfg.net), CS_MS(10));
    assert_true(cfg.net.loss == 0);
    assert_int_equal(cfg.until, CS_MS(60000));
    assert_int_equal(cfg.expect_slots, 1);
    assert_int_equal(cfg.stop_when_decided, 1);
    assert_int_equal(cfg.check_validity, 1);
    assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
    assert_int_equal(cs_sim_nodes(sim), 4);
    assert_int_equal(cs_sim_seed(sim), 1);
    cs_sim_free(sim);
    cs_sim_free(NULL);
}

static void test_new_rejects_bad_config(void **state)
{
    cs_sim_config cfg;
    cs_sim *sim = NULL;

    (void)state;
    cs_sim_config_init(&cfg);
    cfg.nodes = 0;
    assert_int_equal(cs_sim_new(&sim, &cfg), CS_EINVAL);
    cs_sim_config_init(&cfg);
    cfg.threads = 0;
    assert_int_equal(cs_sim_new(&sim, &cfg), CS_EINVAL);
    cs_sim_config_init(&cfg);
    cfg.net.latency.a = 0;                  /* no lookahead */
    assert_int_equal(cs_sim_new(&sim, &cfg), CS_EINVAL);
    cs_sim_config_init(&cfg);
    cfg.net.loss = 1.5;
    assert_int_equal(cs_sim_new(&sim, &cfg), CS_EINVAL);
    cs_sim_config_init(&cfg);
    cfg.until = -1;
    assert_int_equal(cs_sim_new(&sim, &cfg), CS_EINVAL);
    assert_null(sim);
}

static void test_allvote_decisions_and_stats_match_analysis(void **state)
{
    const uint32_t n = 7, R = 5;
    static proto p;
    cs_sim_config cfg;
    const cs_decision *d;
    const cs_violation *v;
    cs_stats st;
    cs_sim *sim;
    size_t i;

    (void)state;
    proto_init(&p, n, R);
    p.min_delay = L;
    p.max_delay = L;
    p.emit = 1;
    av_config(&cfg, n, 1);
    cfg.expect_slots = R;
    sim = av_run(&p, &cfg, CS_OK);

    assert_int_equal(problems(&p), 0);
    assert_int_equal(cs_sim_violations(sim, &v), 0);
    /* Round r is decided by every node at (2r+2)L, in node order. */
    assert_int_equal(cs_sim_decisions(sim, &d), n * R);
    for (i = 0; i < n * R; i++) {
        uint32_t r = (uint32_t)(i / n), val = 1000 * r + 7;

        assert_int_equal(d[i].node, i % n);
        assert_int_equal(d[i].slot, r);
        assert_int_equal(d[i].at, (cs_time)(2 * r + 2) * L);
        assert_int_equal(d[i].len, sizeof val);
        assert_memory_equal(d[i].val, &val, sizeof val);
    }
    for (i = 0; i < n; i++) {
        assert_int_equal(cs_sim_decided(sim, (uint32_t)i), R);
        assert_int_equal(cs_sim_node_failed(sim, (uint32_t)i), 0);
        /* start, R proposals, R*n votes */
        assert_int_equal(p.st[i].calls, 1 + R + R * n);
    }
    /* n + n^2 messages a round, all delivered; one window per event
     * time L, 2L, ..., 2RL. */
    cs_sim_stats(sim, &st);
    assert_int_equal(st.sent, R * (n + n * n));
    assert_int_equal(st.delivered, R * (n + n * n));
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.duplicated, 0);
    assert_int_equal(st.bytes, R * (n + n * n) * MSGLEN);
    assert_int_equal(st.timers, 0);
    assert_int_equal(st.windows, 2 * R);
    assert_int_equal(st.end, (cs_time)2 * R * L);
    /* One output record per decision. */
    assert_int_equal(p.nout, n * R);
    cs_sim_free(sim);
}

static void check_identical_across_threads(const cs_sim_config *base,
                                           uint32_t n, uint32_t R,
                                           int want_decisions)
{
    static const unsigned threads[] = { 1, 2, 4, 8, 1, 8 };
    static proto p;
    uint64_t ref = 0;
    size_t k;

    for (k = 0; k < sizeof threads / sizeof threads[0]; k++) {
        cs_sim_config cfg = *base;
        const cs_decision *d;
        cs_stats st;
        cs_sim *sim;
        uint64_t h;

        cfg.threads = threads[k];
        proto_init(&p, n, R);
        p.min_delay = cs_net_min_delay(&cfg.net);
        p.max_delay = cfg.net.latency.kind == CS_LAT_UNIFORM
                          ? (cs_time)cfg.net.latency.b
                          : 0;
        p.random_values = 1;
        p.timers = 1;
        p.emit = 1;
        sim = av_run(&p, &cfg, CS_OK);
        assert_int_equal(problems(&p), 0);
        cs_sim_stats(sim, &st);
        assert_true(st.delivered > 0);
        assert_true(st.timers > 0);
        assert_true(p.nout > 0);
        if (want_decisions) {
            assert_true(cs_sim_decisions(sim, &d) > 0);
        }
        h = digest(&p, sim);
        if (k == 0) {
            ref = h;
        } else {
            assert_int_equal(h, ref);
        }
        cs_sim_free(sim);
    }
}

static void test_output_identical_across_thread_counts(void **state)
{
    cs_sim_config cfg;

    (void)state;
    av_config(&cfg, 16, 1);
    cfg.expect_slots = 4;
    check_identical_across_threads(&cfg, 16, 4, 1);
}

static void test_identical_with_uniform_latency_and_loss(void **state)
{
    cs_sim_config cfg;

    (void)state;
    av_config(&cfg, 16, 1);
    cfg.net.latency.kind = CS_LAT_UNIFORM;
    cfg.net.latency.a = CS_MS(1);
    cfg.net.latency.b = CS_MS(5);
    cfg.net.loss = 0.1;
    cfg.net.duplicate = 0.05;
    cfg.expect_slots = 6;
    cfg.stop_when_decided = 0;
    check_identical_across_threads(&cfg, 16, 6, 1);
}

static void test_identical_with_other_latency_models(void **state)
{
    static const int kinds[] = { CS_LAT_NORMAL, CS_LAT_EXP, CS_LAT_PARETO };
    cs_sim_config cfg;
    size_t k;

    (void)state;
    for (k = 0; k < 3; k++) {
        av_config(&cfg, 10, 1);
        cfg.seed = 1234 + k;
        cfg.net.latency.kind = kinds[k];
        cfg.net.latency.a = CS_MS(4);
        cfg.net.latency.b = kinds[k] == CS_LAT_PARETO ? 1.5 : CS_MS(3);
        cfg.net.loss = 0.02;
        cfg.expect_slots = 3;
        cfg.stop_when_decided = 0;
        check_identical_across_threads(&cfg, 10, 3, 0);
    }
}

/* 64 nodes broadcasting in one window make 4096 sends, enough for the
 * barrier to merge them into the heaps on several threads.  Each inbox
 * policy must see the same offers per destination in the same order. */
static void test_identical_with_parallel_merge_and_inbox_caps(void **state)
{
    static const int policies[] = { CS_OVERFLOW_DROP_NEWEST,
                                    CS_OVERFLOW_DROP_RANDOM,
                                    CS_OVERFLOW_BLOCK };
    static const unsigned threads[] = { 1, 2, 3, 1 };
    static proto p;
    size_t k, t;

    (void)state;
    for (k = 0; k < sizeof policies / sizeof policies[0]; k++) {
        uint64_t ref = 0;

        for (t = 0; t < sizeof threads / sizeof threads[0]; t++) {
            cs_sim_config cfg;
            cs_stats st;
            cs_sim *sim;
            uint64_t h;

            av_config(&cfg, MAXN, threads[t]);
            cfg.inbox_cap = 40;
            cfg.overflow = policies[k];
            cfg.expect_slots = 2;
            cfg.stop_when_decided = 0;
            proto_init(&p, MAXN, 2);
            p.min_delay = cs_net_min_delay(&cfg.net);
            sim = av_run(&p, &cfg, CS_OK);
            cs_sim_stats(sim, &st);
            if (policies[k] == CS_OVERFLOW_BLOCK) {
                assert_int_equal(st.dropped, 0);
                assert_int_equal(st.delivered, st.sent);
            } else {
                assert_true(st.dropped_overflow > 0);
                assert_int_equal(st.delivered + st.dropped, st.sent);
            }
            h = digest(&p, sim);
            if (t == 0) {
                ref = h;
            } else {
                assert_int_equal(h, ref);
            }
            cs_sim_free(sim);
        }
    }
}

/* On a plain network a broadcast is one shared event (sim.c); with a
 * trace it is one event per destination.  Both must make the same run:
 * the same deliveries in the same order, decisions, counters and windows,
 * also when a node is paused (a shared message then waits in the node's
 * own heap), crashed and restarted, and on several threads. */
static void test_shared_broadcast_same_run_as_per_destination(void **state)
{
    static proto p;
    int faults, trace;
    unsigned threads;

    (void)state;
    for (faults = 0; faults < 2; faults++) {
        for (threads = 1; threads <= 2; threads++) {
            uint64_t ref = 0;

            for (trace = 0; trace < 2; trace++) {
                cs_sim_config cfg;
                cs_callbacks cb = av_callbacks;
                cs_stats st;
                cs_sim *sim = NULL;
                uint64_t h;

                av_config(&cfg, 16, threads);
                cfg.trace = trace;
                cfg.expect_slots = 4;
                cfg.stop_when_decided = 0;
                proto_init(&p, 16, 4);
                p.min_delay = cs_net_min_delay(&cfg.net);
                p.timers = 1;
                cb.ud = &p;
                assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
                if (faults) {
                    assert_int_equal(
                        cs_sim_pause(sim, 3, L + L / 2, 3 * L), CS_OK);
                    assert_int_equal(cs_sim_crash(sim, 5, 2 * L + 1, 0),
                                     CS_OK);
                    assert_int_equal(cs_sim_restart(sim, 5, 5 * L), CS_OK);
                }
                assert_int_equal(cs_sim_run(sim, &cb), CS_OK);
                assert_int_equal(problems(&p), 0);
                cs_sim_stats(sim, &st);
                assert_true(st.delivered > 0);
                if (faults) {
                    assert_true(st.dropped_down > 0);
                }
                h = digest(&p, sim);
                if (trace == 0) {
                    ref = h;
                } else {
                    assert_int_equal(h, ref);
                }
                cs_sim_free(sim);
            }
        }
    }
}

static void test_message_never_delivered_before_min_delay(void **state)
{
    static proto p;
    cs_sim_config cfg;
    cs_stats st;
    cs_sim *sim;
    unsigned i;

    (void)state;
    /* A wide normal: many draws fall below the floor and are clamped;
     * a delivery before send + floor would break the lookahead. */
    av_config(&cfg, 12, 4);
    cfg.net.latency.kind = CS_LAT_NORMAL;
    cfg.net.latency.a = CS_MS(3);
    cfg.net.latency.b = CS_MS(3);
    cfg.net.latency.min = 700;
    cfg.expect_slots = 8;
    proto_init(&p, 12, 8);
    p.min_delay = 700;
    p.timers = 1;
    sim = av_run(&p, &cfg, CS_OK);
    cs_sim_stats(sim, &st);
    assert_true(st.delivered > 1000);
    for (i = 0; i < p.n; i++) {
        assert_int_equal(p.st[i].early, 0);
        assert_int_equal(p.st[i].disorder, 0);
        assert_int_equal(p.st[i].bad, 0);
    }
    cs_sim_free(sim);
}

static void test_output_records_in_time_node_seq_order(void **state)
{
    static proto p;
    cs_sim_config cfg;
    cs_sim *sim;
    unsigned i, emitted = 0;

    (void)state;
    /* Uniform latency and timers scatter the records in time; several
     * nodes emit at one instant and some twice at one instant. */
    av_config(&cfg, 9, 3);
    cfg.net.latency.kind = CS_LAT_UNIFORM;
    cfg.net.latency.a = CS_MS(2);
    cfg.net.latency.b = CS_MS(4);
    cfg.expect_slots = 5;
    cfg.stop_when_decided = 0;
    proto_init(&p, 9, 5);
    p.min_delay = CS_MS(2);
    p.timers = 1;
    p.emit = 1;
    sim = av_run(&p, &cfg, CS_OK);
    for (i = 0; i < p.n; i++) {
        emitted += p.st[i].emitted;
    }
    assert_true(emitted > 9 * 5);
    assert_int_equal(p.nout, emitted);
    assert_int_equal(p.out_bad, 0);
    assert_int_equal(p.out_disorder, 0);
    cs_sim_free(sim);
}

static void test_runs_in_parallel_with_two_threads(void **state)
{
    static proto p;
    cs_sim_config cfg;
    pthread_t seen[8];
    unsigned i, j, k, nseen = 0;
    cs_sim *sim;

    (void)state;
    av_config(&cfg, 64, 2);
    cfg.expect_slots = 6;
    proto_init(&p, 64, 6);
    p.min_delay = L;
    p.yield = 1;        /* give the other thread a chance to take nodes */
    sim = av_run(&p, &cfg, CS_OK);
    assert_int_equal(problems(&p), 0);
    for (i = 0; i < p.n; i++) {
        assert_int_equal(cs_sim_decided(sim, i), 6);
        for (j = 0; j < p.st[i].ntid; j++) {
            for (k = 0; k < nseen; k++) {
                if (pthread_equal(seen[k], p.st[i].tid[j])) {
                    break;
                }
            }
            if (k == nseen && nseen < 8) {
                seen[nseen++] = p.st[i].tid[j];
            }
        }
    }
    assert_true(nseen >= 2);
    assert_true(nseen <= 2);            /* threads = 2: main + 1 worker */
    cs_sim_free(sim);
}

static void test_failing_callback_marks_node_failed(void **state)
{
    static const unsigned threads[] = { 1, 3 };
    static proto p;
    cs_sim_config cfg;
    const cs_violation *v;
    cs_sim *sim;
    size_t k;
    uint32_t i;

    (void)state;
    for (k = 0; k < 2; k++) {
        av_config(&cfg, 4, threads[k]);
        cfg.expect_slots = 3;
        proto_init(&p, 4, 3);
        p.min_delay = L;
        p.fail_node = 2;
        sim = av_run(&p, &cfg, CS_OK);
        /* Node 2 failed on its first VOTE and heard nothing after. */
        assert_int_equal(cs_sim_node_failed(sim, 2), 1);
        assert_int_equal(p.st[2].calls_after_fail, 0);
        assert_int_equal(p.st[2].calls, 3);   /* start, PROPOSE, 1 VOTE */
        assert_int_equal(cs_sim_decided(sim, 2), 0);
        /* The others decide every round with three votes and the run
         * ends; a failed node owes no termination. */
        for (i = 0; i < 4; i++) {
            if (i != 2) {
                assert_int_equal(cs_sim_node_failed(sim, i), 0);
                assert_int_equal(cs_sim_decided(sim, i), 3);
            }
        }
        assert_int_equal(cs_sim_violations(sim, &v), 0);
        cs_sim_free(sim);
    }
}

static void test_failing_start_gets_no_events(void **state)
{
    static proto p;
    cs_sim_config cfg;
    const cs_violation *v;
    cs_stats st;
    cs_sim *sim;
    uint32_t i;

    (void)state;
    /* Node 3 fails at start: it never votes, never hears a message, and
     * the others (3 of 4 votes) still finish. */
    av_config(&cfg, 4, 2);
    cfg.expect_slots = 2;
    proto_init(&p, 4, 2);
    p.min_delay = L;
    p.fail_start = 3;
    sim = av_run(&p, &cfg, CS_OK);
    assert_int_equal(cs_sim_node_failed(sim, 3), 1);
    assert_int_equal(p.st[3].calls, 1);
    assert_int_equal(p.st[3].calls_after_fail, 0);
    for (i = 0; i < 3; i++) {
        assert_int_equal(cs_sim_decided(sim, i), 2);
    }
    assert_int_equal(cs_sim_violations(sim, &v), 0);
    /* Messages to node 3 were sent, and not delivered. */
    cs_sim_stats(sim, &st);
    assert_int_equal(st.sent, 2 * (4 + 3 * 4));
    assert_int_equal(st.delivered, 2 * (3 + 3 * 3));
    cs_sim_free(sim);
}

static void test_stop_when_decided_ends_run(void **state)
{
    static proto p;
    cs_sim_config cfg;
    const cs_decision *d;
    const cs_violation *v;
    cs_stats st;
    cs_sim *sim;

    (void)state;
    /* The protocol would go on for 6 rounds; two slots are enough. */
    av_config(&cfg, 5, 2);
    cfg.expect_slots = 2;
    proto_init(&p, 5, 6);
    p.min_delay = L;
    sim = av_run(&p, &cfg, CS_OK);
    cs_sim_stats(sim, &st);
    assert_int_equal(st.end, 4 * L);
    assert_int_equal(cs_sim_decisions(sim, &d), 5 * 2);
    assert_int_equal(cs_sim_violations(sim, &v), 0);
    /* Round 2's PROPOSE was sent but never delivered. */
    assert_int_equal(st.sent, 2 * (5 + 25) + 5);
    assert_int_equal(st.delivered, 2 * (5 + 25));
    cs_sim_free(sim);
}

static void test_until_ends_run_with_termination_violations(void **state)
{
    static proto p;
    cs_sim_config cfg;
    const cs_violation *v;
    cs_stats st;
    cs_sim *sim;
    uint32_t i;

    (void)state;
    /* Decisions fall at 2L, 4L, 6L, ...; 'until' is inclusive. */
    av_config(&cfg, 5, 2);
    cfg.expect_slots = 4;
    cfg.until = 4 * L;
    proto_init(&p, 5, 4);
    p.min_delay = L;
    sim = av_run(&p, &cfg, CS_OK);
    cs_sim_stats(sim, &st);
    assert_int_equal(st.end, 4 * L);
    assert_int_equal(cs_sim_violations(sim, &v), 5);
    for (i = 0; i < 5; i++) {
        assert_int_equal(cs_sim_decided(sim, i), 2);
        assert_int_equal(v[i].kind, CS_V_TERMINATION);
        assert_int_equal(v[i].node, i);
        assert_int_equal(v[i].slot, 2);
        assert_true(p.st[i].last <= 4 * L);
    }
    cs_sim_free(sim);
}

static void test_byzantine_excluded_from_termination(void **state)
{
    static proto p;
    cs_sim_config cfg;
    const cs_violation *v;
    cs_sim *sim;
    uint32_t i;

    (void)state;
    /* Node 3 is Byzantine and silent; 3 honest votes of 4 suffice. */
    av_config(&cfg, 4, 2);
    cfg.expect_slots = 2;
    proto_init(&p, 4, 2);
    p.min_delay = L;
    sim = NULL;
    {
        cs_callbacks cb = av_callbacks;

        cb.ud = &p;
        assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
        assert_int_equal(cs_sim_set_byzantine(sim, 3, 1), CS_OK);
        assert_int_equal(cs_sim_is_byzantine(sim, 3), 1);
        assert_int_equal(cs_sim_is_byzantine(sim, 2), 0);
        assert_int_equal(cs_sim_set_byzantine(sim, 4, 1), CS_EINVAL);
        assert_int_equal(cs_sim_run(sim, &cb), CS_OK);
    }
    for (i = 0; i < 3; i++) {
        assert_int_equal(cs_sim_decided(sim, i), 2);
    }
    assert_int_equal(cs_sim_decided(sim, 3), 0);
    assert_int_equal(cs_sim_violations(sim, &v), 0);
    cs_sim_free(sim);

    /* The same under 'until' with too many slots expected: only the
     * honest nodes are reported. */
    cfg.expect_slots = 5;
    cfg.until = CS_MS(200);
    proto_init(&p, 4, 2);
    p.min_delay = L;
    {
        cs_callbacks cb = av_callbacks;

        cb.ud = &p;
        assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
        assert_int_equal(cs_sim_set_byzantine(sim, 3, 1), CS_OK);
        assert_int_equal(cs_sim_run(sim, &cb), CS_OK);
    }
    assert_int_equal(cs_sim_violations(sim, &v), 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(v[i].kind, CS_V_TERMINATION);
        assert_int_equal(v[i].node, i);
    }
    cs_sim_free(sim);
}

static void test_stop_from_callback_returns_estopped(void **state)
{
    static proto p;
    cs_sim_config cfg;
    cs_stats st;
    cs_sim *sim;

    (void)state;
    av_config(&cfg, 4, 2);
    cfg.expect_slots = 5;
    proto_init(&p, 4, 5);
    p.min_delay = L;
    p.stop_node = 1;
    p.stop_round = 1;
    sim = av_run(&p, &cfg, CS_ESTOPPED);
    /* Stopped at the barrier after round 1 was decided at 4L. */
    cs_sim_stats(sim, &st);
    assert_int_equal(st.end, 4 * L);
    assert_int_equal(cs_sim_decided(sim, 1), 2);
    cs_sim_free(sim);
}

static void test_run_twice_is_estate(void **state)
{
    static proto p;
    cs_sim_config cfg;
    cs_callbacks cb = av_callbacks;
    cs_sim *sim;

    (void)state;
    av_config(&cfg, 4, 1);
    proto_init(&p, 4, 1);
    p.min_delay = L;
    cb.ud = &p;
    sim = av_run(&p, &cfg, CS_OK);
    assert_int_equal(cs_sim_run(sim, &cb), CS_ESTATE);
    cs_sim_free(sim);
}

static void test_until_max_runs_until_no_event_is_left(void **state)
{
    static proto p;
    cs_sim_config cfg;
    cs_stats st;
    cs_sim *sim;

    (void)state;
    /* 'until' as "forever": the window end must not overflow. */
    av_config(&cfg, 4, 2);
    cfg.until = CS_TIME_MAX;
    cfg.stop_when_decided = 0;
    cfg.expect_slots = 3;
    proto_init(&p, 4, 3);
    p.min_delay = L;
    sim = av_run(&p, &cfg, CS_OK);
    cs_sim_stats(sim, &st);
    assert_int_equal(st.end, 6 * L);
    assert_int_equal(cs_sim_decided(sim, 0), 3);
    cs_sim_free(sim);
}

/* ------------------------------------------------------------- timers */

typedef struct tlog {
    uint32_t tag[64];
    cs_time at[64];
    unsigned n;
    unsigned periodic;
    int bad;
} tlog;

static void tlog_add(tlog *t, uint32_t tag, cs_time at)
{
    if (t->n < 64) {
        t->tag[t->n] = tag;
        t->at[t->n] = at;
        t->n++;
    }
}

static int tm_start(void *ud, cs_sim *sim, uint32_t node)
{
    tlog *t = ud;
    static const char one[1] = { 1 };
    cs_msg *m;
    int rc = 0;

    if (node == 1) {
        /* One message to node 0, arriving at L. */
        if (cs_msg_new(&m, one, 1, 0) != CS_OK) {
            return 1;
        }
        rc = cs_sim_send(sim, 1, 0, m);
        cs_msg_unref(m);
        return rc != CS_OK;
    }
    rc |= cs_sim_set_timer(sim, 0, 1, 5000);
    rc |= cs_sim_set_timer(sim, 0, 2, 1000);
    rc |= cs_sim_set_timer(sim, 0, 2, 7000);     /* later replaces */
    rc |= cs_sim_set_timer(sim, 0, 3, 9000);
    rc |= cs_sim_set_timer(sim, 0, 3, 2000);     /* earlier replaces */
    rc |= cs_sim_set_timer(sim, 0, 4, 3000);
    rc |= cs_sim_cancel_timer(sim, 0, 4);
    rc |= cs_sim_cancel_timer(sim, 0, 77);       /* never set: fine */
    rc |= cs_sim_set_timer(sim, 0, 5, 0);
    rc |= cs_sim_set_timer(sim, 0, 6, 4000);
    rc |= cs_sim_cancel_timer(sim, 0, 6);
    rc |= cs_sim_set_timer(sim, 0, 6, 8000);     /* set again after cancel */
    rc |= cs_sim_set_timer(sim, 0, 7, 1000);     /* periodic */
    rc |= cs_sim_set_timer(sim, 0, 300, 6000);   /* a large tag */
    if (cs_sim_set_timer(sim, 0, 9, -1) != CS_EINVAL) {
        t->bad++;
    }
    return rc != CS_OK;
}

static int tm_timer(void *ud, cs_sim *sim, uint32_t node, uint32_t tag)
{
    tlog *t = ud;

    if (node != 0) {
        t->bad++;
    }
    tlog_add(t, tag, cs_sim_now(sim, node));
    if (tag == 7 && ++t->periodic < 5) {
        return cs_sim_set_timer(sim, node, 7, 1000) != CS_OK;
    }
    return 0;
}

static int tm_message(void *ud, cs_sim *sim, uint32_t node, uint32_t from,
                      cs_msg *msg)
{
    tlog *t = ud;

    (void)msg;
    if (node != 0 || from != 1) {
        t->bad++;
    }
    tlog_add(t, 1000 + from, cs_sim_now(sim, node));
    /* A timer set inside a window fires inside it, in time order. */
    return cs_sim_set_timer(sim, node, 8, 1) != CS_OK;
}

static void test_timers_fire_at_now_plus_delay(void **state)
{
    static const uint32_t tags[] = { 5, 7, 3, 7, 7, 7, 1, 7, 300, 2, 6,
                                     1001, 8 };
    static const cs_time ats[] = { 0, 1000, 2000, 2000, 3000, 4000, 5000,
                                   5000, 6000, 7000, 8000, L, L + 1 };
    static const unsigned threads[] = { 1, 2 };
    cs_callbacks cb;
    cs_sim_config cfg;
    cs_stats st;
    cs_sim *sim;
    tlog t;
    size_t k, i;

    (void)state;
    for (k = 0; k < 2; k++) {
        memset(&t, 0, sizeof t);
        memset(&cb, 0, sizeof cb);
        cb.ud = &t;
        cb.start = tm_start;
        cb.timer = tm_timer;
        cb.message = tm_message;
        av_config(&cfg, 2, threads[k]);
        cfg.stop_when_decided = 0;
        assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
        assert_int_equal(cs_sim_run(sim, &cb), CS_OK);
        assert_int_equal(t.bad, 0);
        assert_int_equal(t.n, sizeof tags / sizeof tags[0]);
        for (i = 0; i < t.n; i++) {
            assert_int_equal(t.tag[i], tags[i]);
            assert_int_equal(t.at[i], ats[i]);
        }
        cs_sim_stats(sim, &st);
        assert_int_equal(st.timers, t.n - 1);
        assert_int_equal(st.end, L + 1);
        cs_sim_free(sim);
    }
}

/* "edge": every node's timer 1 fires at T = 1 ms; then nodes 0 and 1 send
 * to node 2 (arriving at T + L) and node 2 sends to itself and sets timer
 * 2 for T + L.  All four events share one time: node 2 must get them by
 * (src, seq), the ones sent during the previous window included. */
typedef struct elog {
    uint32_t src[8];
    cs_time at[8];
    unsigned n;
} elog;

static int edge_start(void *ud, cs_sim *sim, uint32_t node)
{
    (void)ud;
    return cs_sim_set_timer(sim, node, 1, 1000) != CS_OK;
}

static int edge_timer(void *ud, cs_sim *sim, uint32_t node, uint32_t tag)
{
    static const char b[1] = { 0 };
    elog *e = ud;
    cs_msg *m;
    int rc = CS_OK;

    if (tag == 2) {
        e->src[e->n] = 100 + node;       /* the timer, sorted as src 2 */
        e->at[e->n++] = cs_sim_now(sim, node);
        return 0;
    }
    if (cs_msg_new(&m, b, 1, 0) != CS_OK) {
        return 1;
    }
    rc = cs_sim_send(sim, node, 2, m);
    cs_msg_unref(m);
    if (rc == CS_OK && node == 2) {
        rc = cs_sim_set_timer(sim, node, 2, L);
    }
    return rc != CS_OK;
}

static int edge_message(void *ud, cs_sim *sim, uint32_t node, uint32_t from,
                        cs_msg *msg)
{
    elog *e = ud;

    (void)msg;
    if (node == 2 && e->n < 8) {
        e->src[e->n] = from;
        e->at[e->n++] = cs_sim_now(sim, node);
    }
    return 0;
}

static void test_same_time_events_in_src_seq_order(void **state)
{
    static const unsigned threads[] = { 1, 3 };
    static const uint32_t want[] = { 0, 1, 2, 102 };
    cs_callbacks cb;
    cs_sim_config cfg;
    cs_sim *sim;
    elog e;
    size_t k, i;

    (void)state;
    for (k = 0; k < 2; k++) {
        memset(&e, 0, sizeof e);
        memset(&cb, 0, sizeof cb);
        cb.ud = &e;
        cb.start = edge_start;
        cb.timer = edge_timer;
        cb.message = edge_message;
        av_config(&cfg, 3, threads[k]);
        cfg.stop_when_decided = 0;
        assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
        assert_int_equal(cs_sim_run(sim, &cb), CS_OK);
        assert_int_equal(e.n, 4);
        for (i = 0; i < 4; i++) {
            assert_int_equal(e.src[i], want[i]);
            assert_int_equal(e.at[i], 1000 + L);
        }
        cs_sim_free(sim);
    }
}

static int huge_start(void *ud, cs_sim *sim, uint32_t node)
{
    int *bad = ud;

    (void)node;
    /* A tag far beyond "small" must fail, not hang or wrap. */
    if (cs_sim_set_timer(sim, 0, UINT32_MAX, 10) != CS_EINVAL) {
        (*bad)++;
    }
    return cs_sim_set_timer(sim, 0, 1, 1000) != CS_OK;
}

static int huge_timer(void *ud, cs_sim *sim, uint32_t node, uint32_t tag)
{
    int *bad = ud;

    if (tag != 1) {
        (*bad)++;                       /* the far timer fired */
        return 0;
    }
    /* now + delay past the end of time: the timer never fires. */
    return cs_sim_set_timer(sim, node, 2, CS_TIME_MAX - 10) != CS_OK;
}

static void test_timer_far_in_future_never_fires(void **state)
{
    cs_callbacks cb;
    cs_sim_config cfg;
    cs_stats st;
    cs_sim *sim;
    int bad = 0;

    (void)state;
    memset(&cb, 0, sizeof cb);
    cb.ud = &bad;
    cb.start = huge_start;
    cb.timer = huge_timer;
    av_config(&cfg, 1, 1);
    cfg.until = CS_TIME_MAX;
    cfg.stop_when_decided = 0;
    assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
    assert_int_equal(cs_sim_run(sim, &cb), CS_OK);
    assert_int_equal(bad, 0);
    cs_sim_stats(sim, &st);
    assert_int_equal(st.timers, 1);
    assert_int_equal(st.end, 1000);
    cs_sim_free(sim);
}

/* ------------------------------------------------------------ actions */

/* "ring": at start every node sends to its successor; each delivery
 * before 50 ms is passed on.  Events fall on multiples of L. */
typedef struct alog {
    pthread_mutex_t lock;
    int type[512];              /* 0: node event, 1: action */
    uint64_t who[512];          /* node or action id */
    cs_time at[512];
    unsigned n;
    uint32_t nodes;
    uint64_t stop_id;           /* this action returns nonzero */
    int late;                   /* node events after the stop */
    unsigned outputs, received;
    cs_time out_at, recv_at;
    uint32_t recv_from;
} alog;

static void alog_add(alog *a, int type, uint64_t who, cs_time at)
{
    pthread_mutex_lock(&a->lock);
    if (a->n < 512) {
        a->type[a->n] = type;
        a->who[a->n] = who;
        a->at[a->n] = at;
        a->n++;
    }
    pthread_mutex_unlock(&a->lock);
}

static int ring_pass(cs_sim *sim, uint32_t node)
{
    static const char b[1] = { 0 };
    cs_msg *m;
    int rc;

    if (cs_msg_new(&m, b, 1, 0) != CS_OK) {
        return 1;
    }
    rc = cs_sim_send(sim, node, (node + 1) % cs_sim_nodes(sim), m);
    cs_msg_unref(m);
    return rc != CS_OK;
}

static int ring_start(void *ud, cs_sim *sim, uint32_t node)
{
    alog_add(ud, 0, node, cs_sim_now(sim, node));
    return ring_pass(sim, node);
}

static int ring_message(void *ud, cs_sim *sim, uint32_t node, uint32_t from,
                        cs_msg *msg)
{
    cs_time now = cs_sim_now(sim, node);

    (void)from;
    (void)msg;
    alog_add(ud, 0, node, now);
    return now < CS_MS(50) ? ring_pass(sim, node) : 0;
}

static int ring_action(void *ud, cs_sim *sim, uint64_t id)
{
    alog *a = ud;

    alog_add(a, 1, id, cs_sim_now(sim, 0));
    if (id == 4) {
        /* Scheduling from an action works, at a later time ... */
        if (cs_sim_at(sim, 30000, 5) != CS_OK) {
            return 1;
        }
    }
    return id == a->stop_id;
}

static void alog_setup(alog *a, uint32_t nodes)
{
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->lock, NULL);
    a->nodes = nodes;
    a->stop_id = UINT64_MAX;
}

static void test_actions_run_before_node_events_of_their_time(void **state)
{
    static const unsigned threads[] = { 1, 3 };
    static const cs_time when[] = { 0, 0, 0, L, 15000, 30000 };
    static alog a;
    cs_callbacks cb;
    cs_sim_config cfg;
    cs_sim *sim;
    size_t k;
    unsigned i, j, nact;

    (void)state;
    for (k = 0; k < 2; k++) {
        alog_setup(&a, 3);
        memset(&cb, 0, sizeof cb);
        cb.ud = &a;
        cb.start = ring_start;
        cb.message = ring_message;
        cb.action = ring_action;
        av_config(&cfg, 3, threads[k]);
        cfg.stop_when_decided = 0;
        assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
        /* Same-time actions run in the order they were scheduled. */
        assert_int_equal(cs_sim_at(sim, L, 3), CS_OK);
        assert_int_equal(cs_sim_at(sim, 0, 1), CS_OK);
        assert_int_equal(cs_sim_at(sim, 0, 2), CS_OK);
        assert_int_equal(cs_sim_at(sim, 15000, 4), CS_OK);
        assert_int_equal(cs_sim_at(sim, -1, 9), CS_EINVAL);
        assert_int_equal(cs_sim_run(sim, &cb), CS_OK);

        nact = 0;
        for (i = 0; i < a.n; i++) {
            if (a.type[i] != 1) {
                continue;
            }
            nact++;
            assert_int_equal(a.who[i], nact);  /* ids 1..5 in order */
            assert_int_equal(a.at[i], when[nact]);
            /* Node events before it are earlier; after it, not. */
            for (j = 0; j < a.n; j++) {
                if (a.type[j] == 0 && j < i) {
                    assert_true(a.at[j] < a.at[i]);
                }
                if (a.type[j] == 0 && j > i) {
                    assert_true(a.at[j] >= a.at[i]);
                }
            }
        }
        assert_int_equal(nact, 5);
        /* 3 starts, then 3 deliveries at each of L..5L (the last ones
         * are not passed on). */
        assert_int_equal(a.n, 5 + 3 + 3 * 5);
        cs_sim_free(sim);
        pthread_mutex_destroy(&a.lock);
    }
}

static void test_action_nonzero_stops_run(void **state)
{
    static alog a;
    cs_callbacks cb;
    cs_sim_config cfg;
    cs_stats st;
    cs_sim *sim;
    unsigned i;

    (void)state;
    alog_setup(&a, 3);
    a.stop_id = 6;
    memset(&cb, 0, sizeof cb);
    cb.ud = &a;
    cb.start = ring_start;
    cb.message = ring_message;
    cb.action = ring_action;
    av_config(&cfg, 3, 2);
    cfg.stop_when_decided = 0;
    assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
    assert_int_equal(cs_sim_at(sim, 35000, 6), CS_OK);
    assert_int_equal(cs_sim_at(sim, 45000, 7), CS_OK);
    assert_int_equal(cs_sim_run(sim, &cb), CS_ESTOPPED);
    /* Events up to 30 ms ran; nothing at or after 35 ms, and action 7
     * never ran. */
    for (i = 0; i < a.n; i++) {
        if (a.type[i] == 0) {
            assert_true(a.at[i] <= 30000);
        } else {
            assert_int_equal(a.who[i], 6);
        }
    }
    assert_int_equal(a.n, 3 + 3 * 3 + 1);
    cs_sim_stats(sim, &st);
    assert_true(st.end >= 30000 && st.end <= 35000);
    cs_sim_free(sim);
    pthread_mutex_destroy(&a.lock);
}

/* An action acting for a node: its send and its record must not wait
 * for that node to have an event of its own. */
static int inject_action(void *ud, cs_sim *sim, uint64_t id)
{
    static const char b[3] = { 'h', 'i', '!' };
    cs_msg *m;
    int rc;

    (void)ud;
    (void)id;
    if (cs_msg_new(&m, b, 3, 5) != CS_OK) {
        return 1;
    }
    rc = cs_sim_send(sim, 1, 2, m);
    cs_msg_unref(m);
    if (rc == CS_OK) {
        rc = cs_sim_emit(sim, 1, 9, b, 3);
    }
    return rc != CS_OK;
}

static int inject_message(void *ud, cs_sim *sim, uint32_t node,
                          uint32_t from, cs_msg *msg)
{
    alog *a = ud;

    a->received++;
    a->recv_at = cs_sim_now(sim, node);
    a->recv_from = from;
    return node != 2 || cs_msg_len(msg) != 3 || cs_msg_kind(msg) != 5;
}

static void inject_output(void *ud, cs_sim *sim, uint32_t node, cs_time at,
                          int kind, const void *data, size_t len)
{
    alog *a = ud;

    (void)sim;
    if (node == 1 && kind == 9 && len == 3 && memcmp(data, "hi!", 3) == 0) {
        a->outputs++;
        a->out_at = at;
    }
}

static void test_action_can_send_and_emit_for_a_node(void **state)
{
    static alog a;
    cs_callbacks cb;
    cs_sim_config cfg;
    cs_sim *sim;

    (void)state;
    alog_setup(&a, 3);
    memset(&cb, 0, sizeof cb);
    cb.ud = &a;
    cb.message = inject_message;
    cb.action = inject_action;
    cb.output = inject_output;
    av_config(&cfg, 3, 1);
    cfg.stop_when_decided = 0;
    assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
    assert_int_equal(cs_sim_at(sim, 5000, 1), CS_OK);
    assert_int_equal(cs_sim_run(sim, &cb), CS_OK);
    assert_int_equal(a.received, 1);
    assert_int_equal(a.recv_from, 1);
    assert_int_equal(a.recv_at, 5000 + L);
    assert_int_equal(a.outputs, 1);
    assert_int_equal(a.out_at, 5000);
    assert_int_equal(cs_sim_node_failed(sim, 2), 0);
    cs_sim_free(sim);
    pthread_mutex_destroy(&a.lock);
}

/* ------------------------------------------------- allocation failure */

static void test_sim_new_alloc_failure_returns_enomem(void **state)
{
    cs_sim_config cfg;
    cs_sim *sim;
    long n;
    int rc;

    (void)state;
    av_config(&cfg, 16, 4);
    for (n = 1; n < 1000; n++) {
        sim = NULL;
        cs_fail_alloc_at(n);
        rc = cs_sim_new(&sim, &cfg);
        cs_fail_alloc_at(0);
        if (rc == CS_OK) {
            break;
        }
        assert_int_equal(rc, CS_ENOMEM);
        assert_null(sim);
    }
    assert_true(n > 1 && n < 1000);
    cs_sim_free(sim);
}

static void prebuild(proto *p)
{
    unsigned char b[MSGLEN];
    uint32_t r;
    int t;

    for (t = PROPOSE; t <= VOTE; t++) {
        for (r = 0; r < p->rounds; r++) {
            vmsg m = { t, r, 1000 * r + 7, UINT32_MAX, -1 };

            encode(b, &m);
            assert_int_equal(cs_msg_new(&p->pre[t][r], b, sizeof b,
                                        (uint32_t)t), CS_OK);
        }
    }
}

static void unbuild(proto *p)
{
    uint32_t r;
    int t;

    for (t = PROPOSE; t <= VOTE; t++) {
        for (r = 0; r < p->rounds; r++) {
            cs_msg_unref(p->pre[t][r]);
            p->pre[t][r] = NULL;
        }
    }
}

static void test_sim_run_alloc_failure_returns_enomem(void **state)
{
    static const unsigned threads[] = { 1, 2 };
    static proto p;
    cs_sim_config cfg;
    cs_callbacks cb = av_callbacks;
    uint64_t ref;
    cs_sim *sim;
    size_t k;
    long n;
    int rc;

    (void)state;
    cb.ud = &p;
    for (k = 0; k < 2; k++) {
        av_config(&cfg, 4, threads[k]);
        cfg.expect_slots = 3;
        /* The reference run. */
        proto_init(&p, 4, 3);
        p.timers = 1;
        p.emit = 1;
        prebuild(&p);
        sim = av_run(&p, &cfg, CS_OK);
        ref = digest(&p, sim);
        cs_sim_free(sim);
        unbuild(&p);
        /* The callbacks allocate nothing themselves (prebuilt messages),
         * so every failure is the core's: it must end the run with
         * CS_ENOMEM, never turn into a silently different result. */
        for (n = 1; n < 100000; n++) {
            proto_init(&p, 4, 3);
            p.timers = 1;
            p.emit = 1;
            prebuild(&p);
            assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
            cs_fail_alloc_at(n);
            rc = cs_sim_run(sim, &cb);
            cs_fail_alloc_at(0);
            if (rc == CS_OK) {
                assert_int_equal(digest(&p, sim), ref);
            } else {
                assert_int_equal(rc, CS_ENOMEM);
            }
            cs_sim_free(sim);
            unbuild(&p);
            if (rc == CS_OK) {
                break;
            }
        }
        assert_true(n > 1 && n < 100000);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_new_rejects_bad_config),
        cmocka_unit_test(test_allvote_decisions_and_stats_match_analysis),
        cmocka_unit_test(test_output_identical_across_thread_counts),
        cmocka_unit_test(test_identical_with_uniform_latency_and_loss),
        cmocka_unit_test(test_identical_with_other_latency_models),
        cmocka_unit_test(test_identical_with_parallel_merge_and_inbox_caps),
        cmocka_unit_test(test_shared_broadcast_same_run_as_per_destination),
        cmocka_unit_test(test_message_never_delivered_before_min_delay),
        cmocka_unit_test(test_output_records_in_time_node_seq_order),
        cmocka_unit_test(test_runs_in_parallel_with_two_threads),
        cmocka_unit_test(test_failing_callback_marks_node_failed),
        cmocka_unit_test(test_failing_start_gets_no_events),
        cmocka_unit_test(test_stop_when_decided_ends_run),
        cmocka_unit_test(test_until_ends_run_with_termination_violations),
        cmocka_unit_test(test_byzantine_excluded_from_termination),
        cmocka_unit_test(test_stop_from_callback_returns_estopped),
        cmocka_unit_test(test_run_twice_is_estate),
        cmocka_unit_test(test_until_max_runs_until_no_event_is_left),
        cmocka_unit_test(test_timers_fire_at_now_plus_delay),
        cmocka_unit_test(test_timer_far_in_future_never_fires),
        cmocka_unit_test(test_same_time_events_in_src_seq_order),
        cmocka_unit_test(test_actions_run_before_node_events_of_their_time),
        cmocka_unit_test(test_action_nonzero_stops_run),
        cmocka_unit_test(test_action_can_send_and_emit_for_a_node),
        cmocka_unit_test(test_sim_new_alloc_failure_returns_enomem),
        cmocka_unit_test(test_sim_run_alloc_failure_returns_enomem),
    };

    /* An optional argument selects tests by name pattern ("*timer*"). */
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
