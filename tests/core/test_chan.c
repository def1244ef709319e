/*
 * test_chan.c - tests of the bounded channel (core/chan.c).
 *
 * Single-threaded tests pin down the contract: return codes, FIFO order,
 * who owns a message after each outcome.  Threaded tests cover the three
 * ways a channel goes wrong in practice: a full channel that deadlocks its
 * sender, a peer that vanishes while the other side is blocked, and a wait
 * that never ends.  Ownership mistakes (a leak or a double unref of a
 * message the caller kept) show up under AddressSanitizer; where a test is
 * about freeing, it also asks LeakSanitizer directly when it is built in.
 *
 * Threaded tests use bounded loops and join every thread.  Where a test
 * wants a thread to be blocked before acting, it sleeps briefly; the sleep
 * only makes the interesting path likely, the assertions hold either way.
 * No test asserts how long anything took.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "consensus.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif

#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* ------------------------------------------------------------- helpers */

/* Fail the test unless every unreachable block has been freed.  Without
 * LeakSanitizer this checks nothing; the sanitizer builds do the work. */
static void assert_no_leaks(void)
{
#ifdef HAVE_LSAN
    assert_int_equal(__lsan_do_recoverable_leak_check(), 0);
#endif
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0) {
        /* interrupted: sleep the rest */
    }
}

/* The payload of test messages: who sent it and its sequence number. */
struct payload {
    uint32_t producer;
    uint32_t seq;
};

/* A message carrying (producer, seq).  Helper threads call this too, and
 * cmocka's assertions must not run off the main thread, so a failure (out
 * of memory, with no injection armed) aborts instead. */
static cs_msg *new_msg(uint32_t producer, uint32_t seq)
{
    struct payload p = { producer, seq };
    cs_msg *m = NULL;

    if (cs_msg_new(&m, &p, sizeof p, producer) != CS_OK || m == NULL) {
        fprintf(stderr, "test_chan: cs_msg_new failed\n");
        abort();
    }
    return m;
}

/* The payload of 'm', or all ones if 'm' is not one of ours, which no
 * check below accepts.  Safe off the main thread. */
static struct payload msg_payload(const cs_msg *m)
{
    struct payload p = { UINT32_MAX, UINT32_MAX };

    if (cs_msg_len(m) == sizeof p) {
        memcpy(&p, cs_msg_data(m), sizeof p);
    }
    return p;
}

static uint32_t msg_seq(const cs_msg *m)
{
    return msg_payload(m).seq;
}

/* A non-NULL pointer to preset out-parameters with, so that a test can
 * tell whether the callee cleared them. */
static char not_null_target;
#define NOT_NULL ((void *)&not_null_target)

static cs_chan *new_chan(size_t cap)
{
    cs_chan *ch = NULL;

    assert_int_equal(cs_chan_new(&ch, cap), CS_OK);
    assert_non_null(ch);
    return ch;
}

static void start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    assert_int_equal(pthread_create(t, NULL, fn, arg), 0);
}

static void join(pthread_t t)
{
    assert_int_equal(pthread_join(t, NULL), 0);
}

/* -------------------------------------------------------- construction */

static void test_new_cap_zero_is_einval(void **state)
{
    cs_chan *ch = NOT_NULL;

    (void)state;
    assert_int_equal(cs_chan_new(&ch, 0), CS_EINVAL);
    assert_null(ch);
    assert_int_equal(cs_chan_new(NULL, 4), CS_EINVAL);
}

static void test_new_huge_cap_is_enomem(void **state)
{
    cs_chan *ch = NULL;

    (void)state;
    assert_int_equal(cs_chan_new(&ch, SIZE_MAX), CS_ENOMEM);
    assert_null(ch);
}

static void test_new_alloc_failure_is_enomem_and_leaks_nothing(void **state)
{
    cs_chan *ch;
    long n;
    int rc = CS_ENOMEM;

    (void)state;
    for (n = 1; n <= 16 && rc != CS_OK; n++) {
        ch = NOT_NULL;
        cs_fail_alloc_at(n);
        rc = cs_chan_new(&ch, 8);
        cs_fail_alloc_at(0);
        if (rc != CS_OK) {
            assert_int_equal(rc, CS_ENOMEM);
            assert_null(ch);
            assert_no_leaks();
        }
    }
    /* It must succeed once the failure lands past its last allocation. */
    assert_int_equal(rc, CS_OK);
    assert_non_null(ch);
    assert_int_equal(cs_chan_len(ch), 0);
    assert_false(cs_chan_closed(ch));
    cs_chan_unref(ch);
    assert_no_leaks();
}

/* ------------------------------------------------- single-thread basics */

static void test_send_recv_fifo_order(void **state)
{
    cs_chan *ch = new_chan(3);
    cs_msg *m;
    uint32_t i, round;

    (void)state;
    /* Several rounds so that head wraps around the ring. */
    for (round = 0; round < 4; round++) {
        for (i = 0; i < 3; i++) {
            assert_int_equal(cs_chan_send(ch, new_msg(0, round * 3 + i)),
                             CS_OK);
            assert_int_equal(cs_chan_len(ch), i + 1);
        }
        for (i = 0; i < 3; i++) {
            assert_int_equal(cs_chan_recv(ch, &m), CS_OK);
            assert_int_equal(msg_seq(m), round * 3 + i);
            cs_msg_unref(m);
        }
        assert_int_equal(cs_chan_len(ch), 0);
    }
    cs_chan_unref(ch);
}

static void test_trysend_on_full_is_efull_and_keeps_ownership(void **state)
{
    cs_chan *ch = new_chan(2);
    cs_msg *m = new_msg(0, 99), *got;

    (void)state;
    assert_int_equal(cs_chan_trysend(ch, new_msg(0, 0)), CS_OK);
    assert_int_equal(cs_chan_trysend(ch, new_msg(0, 1)), CS_OK);
    assert_int_equal(cs_chan_trysend(ch, m), CS_EFULL);
    assert_int_equal(cs_chan_len(ch), 2);
    /* Still ours: readable, and it must be released by us. */
    assert_int_equal(msg_seq(m), 99);
    cs_msg_unref(m);
    assert_int_equal(cs_chan_recv(ch, &got), CS_OK);
    assert_int_equal(msg_seq(got), 0);
    cs_msg_unref(got);
    cs_chan_unref(ch);
}

static void test_tryrecv_on_empty_is_eempty(void **state)
{
    cs_chan *ch = new_chan(2);
    cs_msg *m = NOT_NULL;

    (void)state;
    assert_int_equal(cs_chan_tryrecv(ch, &m), CS_EEMPTY);
    assert_null(m);
    assert_false(cs_chan_closed(ch));
    cs_chan_unref(ch);
}

static void test_trysend_on_closed_keeps_ownership(void **state)
{
    cs_chan *ch = new_chan(2);
    cs_msg *m = new_msg(0, 7);

    (void)state;
    cs_chan_close(ch);
    assert_int_equal(cs_chan_trysend(ch, m), CS_ECLOSED);
    assert_int_equal(cs_chan_len(ch), 0);
    assert_int_equal(msg_seq(m), 7);
    cs_msg_unref(m);                    /* ours to release */
    cs_chan_unref(ch);
}

static void test_send_on_closed_keeps_ownership(void **state)
{
    cs_chan *ch = new_chan(1);
    cs_msg *m = new_msg(0, 8);

    (void)state;
    /* Closed and full: the blocking send must fail at once, not wait. */
    assert_int_equal(cs_chan_send(ch, new_msg(0, 0)), CS_OK);
    cs_chan_close(ch);
    assert_int_equal(cs_chan_send(ch, m), CS_ECLOSED);
    assert_int_equal(cs_chan_send_timeout(ch, m, 1000000), CS_ECLOSED);
    assert_int_equal(msg_seq(m), 8);
    cs_msg_unref(m);
    cs_chan_unref(ch);                  /* frees the queued one */
}

static void test_drain_after_close_then_eclosed(void **state)
{
    cs_chan *ch = new_chan(4);
    cs_msg *m;
    uint32_t i;

    (void)state;
    for (i = 0; i < 3; i++) {
        assert_int_equal(cs_chan_send(ch, new_msg(0, i)), CS_OK);
    }
    cs_chan_close(ch);
    cs_chan_close(ch);                  /* idempotent */
    assert_true(cs_chan_closed(ch));
    assert_int_equal(cs_chan_len(ch), 3);
    /* Each receive flavour drains in order... */
    assert_int_equal(cs_chan_recv(ch, &m), CS_OK);
    assert_int_equal(msg_seq(m), 0);
    cs_msg_unref(m);
    assert_int_equal(cs_chan_tryrecv(ch, &m), CS_OK);
    assert_int_equal(msg_seq(m), 1);
    cs_msg_unref(m);
    assert_int_equal(cs_chan_recv_timeout(ch, &m, 0), CS_OK);
    assert_int_equal(msg_seq(m), 2);
    cs_msg_unref(m);
    /* ...and then each reports the close, without blocking. */
    assert_int_equal(cs_chan_recv(ch, &m), CS_ECLOSED);
    assert_null(m);
    assert_int_equal(cs_chan_tryrecv(ch, &m), CS_ECLOSED);
    assert_null(m);
    assert_int_equal(cs_chan_recv_timeout(ch, &m, 1000000), CS_ECLOSED);
    assert_null(m);
    cs_chan_unref(ch);
}

static void test_unref_frees_queued_messages(void **state)
{
    cs_chan *ch = new_chan(8);
    uint32_t i;

    (void)state;
    for (i = 0; i < 5; i++) {
        assert_int_equal(cs_chan_send(ch, new_msg(0, i)), CS_OK);
    }
    assert_int_equal(cs_chan_len(ch), 5);
    /* The channel owns the only references; the last unref of the channel
     * must release them, or LeakSanitizer reports five blocks. */
    cs_chan_unref(ch);
    assert_no_leaks();
}

static void test_unref_of_shared_message_keeps_other_owners(void **state)
{
    cs_chan *ch = new_chan(2);
    cs_msg *m = new_msg(0, 5);

    (void)state;
    /* A broadcast shares one buffer: the channel must drop only its own
     * reference, leaving ours valid (ASan flags a use after free). */
    assert_int_equal(cs_chan_send(ch, cs_msg_ref(m)), CS_OK);
    cs_chan_unref(ch);
    assert_int_equal(msg_seq(m), 5);
    cs_msg_unref(m);
}

static void test_drop_to_one_reference_closes(void **state)
{
    cs_chan *ch = new_chan(2);

    (void)state;
    /* Three parties: one leaving is no reason to close. */
    assert_ptr_equal(cs_chan_ref(ch), ch);
    assert_ptr_equal(cs_chan_ref(ch), ch);
    cs_chan_unref(ch);
    assert_false(cs_chan_closed(ch));
    /* Two parties: the survivor is alone, so the channel closes. */
    cs_chan_unref(ch);
    assert_true(cs_chan_closed(ch));
    cs_chan_unref(ch);
    cs_chan_unref(NULL);                /* free functions accept NULL */
}

/* ------------------------------------------------------- endless waits */

static void test_recv_timeout_on_empty_times_out(void **state)
{
    cs_chan *ch = new_chan(2);
    cs_msg *m = NOT_NULL;

    (void)state;
    assert_int_equal(cs_chan_recv_timeout(ch, &m, 20000), CS_ETIMEDOUT);
    assert_null(m);
    assert_int_equal(cs_chan_recv_timeout(ch, &m, 0), CS_ETIMEDOUT);
    assert_int_equal(cs_chan_recv_timeout(ch, &m, -5), CS_ETIMEDOUT);
    assert_false(cs_chan_closed(ch));
    cs_chan_unref(ch);
}

static void test_send_timeout_on_full_times_out_and_keeps_ownership(
    void **state)
{
    cs_chan *ch = new_chan(1);
    cs_msg *m = new_msg(0, 1), *got;

    (void)state;
    assert_int_equal(cs_chan_send(ch, new_msg(0, 0)), CS_OK);
    assert_int_equal(cs_chan_send_timeout(ch, m, 20000), CS_ETIMEDOUT);
    assert_int_equal(cs_chan_send_timeout(ch, m, 0), CS_ETIMEDOUT);
    assert_int_equal(cs_chan_len(ch), 1);
    assert_int_equal(msg_seq(m), 1);    /* still ours */
    /* The queue is untouched: the original message is still first. */
    assert_int_equal(cs_chan_recv(ch, &got), CS_OK);
    assert_int_equal(msg_seq(got), 0);
    cs_msg_unref(got);
    /* With room, the same message now goes through. */
    assert_int_equal(cs_chan_send_timeout(ch, m, 0), CS_OK);
    cs_chan_unref(ch);
}

/* A thread that sends one message after a short delay. */
struct late_sender {
    cs_chan *ch;
    int rc;
};

static void *late_sender_main(void *arg)
{
    struct late_sender *ls = arg;
    cs_msg *m = new_msg(1, 42);

    sleep_ms(20);
    ls->rc = cs_chan_send(ls->ch, m);
    if (ls->rc != CS_OK) {
        cs_msg_unref(m);
    }
    return NULL;
}

/* A thread that receives one message after a short delay. */
static void *late_receiver_main(void *arg)
{
    struct late_sender *ls = arg;
    cs_msg *m;

    sleep_ms(20);
    ls->rc = cs_chan_recv(ls->ch, &m);
    if (ls->rc == CS_OK) {
        cs_msg_unref(m);
    }
    return NULL;
}

static void test_timed_waits_succeed_when_peer_acts(void **state)
{
    cs_chan *ch = new_chan(1);
    struct late_sender ls = { ch, -100 };
    cs_msg *m = NULL;
    pthread_t t;

    (void)state;
    /* An empty channel, a generous timeout, a sender that comes late. */
    start(&t, late_sender_main, &ls);
    assert_int_equal(cs_chan_recv_timeout(ch, &m, 10000000), CS_OK);
    join(t);
    assert_int_equal(ls.rc, CS_OK);
    assert_int_equal(msg_seq(m), 42);
    cs_msg_unref(m);

    /* A full channel, a generous timeout, a receiver that comes late. */
    assert_int_equal(cs_chan_send(ch, new_msg(0, 0)), CS_OK);
    ls.rc = -100;
    start(&t, late_receiver_main, &ls);
    assert_int_equal(cs_chan_send_timeout(ch, new_msg(0, 1), 10000000),
                     CS_OK);
    join(t);
    assert_int_equal(ls.rc, CS_OK);
    assert_int_equal(cs_chan_recv(ch, &m), CS_OK);
    assert_int_equal(msg_seq(m), 1);
    cs_msg_unref(m);
    cs_chan_unref(ch);
}

/* --------------------------------------------------------- back-pressure */

#define SPSC_COUNT 10000u

struct spsc {
    cs_chan *ch;
    uint32_t received;
    int in_order;
    int saw_full;
    int send_rc;
};

static void *spsc_producer(void *arg)
{
    struct spsc *s = arg;
    uint32_t i;

    for (i = 0; i < SPSC_COUNT; i++) {
        cs_msg *m = new_msg(0, i);

        s->send_rc = cs_chan_send(s->ch, m);
        if (s->send_rc != CS_OK) {
            cs_msg_unref(m);
            break;
        }
    }
    cs_chan_close(s->ch);               /* tells the consumer we're done */
    return NULL;
}

static void *spsc_consumer(void *arg)
{
    struct spsc *s = arg;
    cs_msg *m;
    int i;

    /* Let the channel fill up first, so the producer's next send has to
     * block: the back-pressure path, not a lucky interleaving. */
    for (i = 0; i < 10000 && cs_chan_len(s->ch) < 4; i++) {
        sleep_ms(1);
    }
    s->saw_full = cs_chan_len(s->ch) == 4;
    while (cs_chan_recv(s->ch, &m) == CS_OK) {
        if (msg_seq(m) != s->received) {
            s->in_order = 0;
        }
        s->received++;
        cs_msg_unref(m);
    }
    return NULL;
}

static void test_full_channel_does_not_deadlock_sender(void **state)
{
    struct spsc s = { new_chan(4), 0, 1, 0, -100 };
    pthread_t prod, cons;

    (void)state;
    start(&cons, spsc_consumer, &s);
    start(&prod, spsc_producer, &s);
    join(prod);
    join(cons);
    assert_true(s.saw_full);
    assert_int_equal(s.send_rc, CS_OK);
    assert_int_equal(s.received, SPSC_COUNT);
    assert_true(s.in_order);
    assert_int_equal(cs_chan_len(s.ch), 0);
    cs_chan_unref(s.ch);
}

#define MPMC_PRODUCERS 2u
#define MPMC_CONSUMERS 2u
#define MPMC_PER_PRODUCER 5000u     /* 10000 messages in all */

struct mpmc_producer {
    cs_chan *ch;
    uint32_t id;
    int rc;
};

struct mpmc_consumer {
    cs_chan *ch;
    /* Filled by this consumer only; merged by the test after the join. */
    unsigned char seen[MPMC_PRODUCERS * MPMC_PER_PRODUCER];
    uint32_t count;
    uint64_t sum;
    int in_order;
    int over_cap;
};

static void *mpmc_producer_main(void *arg)
{
    struct mpmc_producer *p = arg;
    uint32_t i;

    p->rc = CS_OK;
    for (i = 0; i < MPMC_PER_PRODUCER; i++) {
        cs_msg *m = new_msg(p->id, i);
        int rc = cs_chan_send(p->ch, m);

        if (rc != CS_OK) {
            p->rc = rc;
            cs_msg_unref(m);
            break;
        }
    }
    return NULL;
}

static void *mpmc_consumer_main(void *arg)
{
    struct mpmc_consumer *c = arg;
    int64_t last[MPMC_PRODUCERS];
    cs_msg *m;
    uint32_t i;

    for (i = 0; i < MPMC_PRODUCERS; i++) {
        last[i] = -1;
    }
    while (cs_chan_recv(c->ch, &m) == CS_OK) {
        struct payload p = msg_payload(m);

        if (p.producer >= MPMC_PRODUCERS || p.seq >= MPMC_PER_PRODUCER) {
            c->in_order = 0;            /* garbage: fail below */
        } else {
            /* FIFO: within one consumer, each producer's messages appear
             * in the order that producer sent them. */
            if ((int64_t)p.seq <= last[p.producer]) {
                c->in_order = 0;
            }
            last[p.producer] = p.seq;
            c->seen[p.producer * MPMC_PER_PRODUCER + p.seq]++;
            c->sum += p.seq;
        }
        if (cs_chan_len(c->ch) > 4) {
            c->over_cap = 1;
        }
        c->count++;
        cs_msg_unref(m);
    }
    return NULL;
}

static void test_many_producers_many_consumers_deliver_each_once(void **state)
{
    static struct mpmc_consumer cons[MPMC_CONSUMERS];
    struct mpmc_producer prod[MPMC_PRODUCERS];
    pthread_t pt[MPMC_PRODUCERS], ct[MPMC_CONSUMERS];
    cs_chan *ch = new_chan(4);
    uint64_t sum = 0, want;
    uint32_t i, j, count = 0;

    (void)state;
    /* Every party holds its own reference, as a real embedder would. */
    for (i = 0; i < MPMC_CONSUMERS; i++) {
        memset(&cons[i], 0, sizeof cons[i]);
        cons[i].ch = cs_chan_ref(ch);
        cons[i].in_order = 1;
        start(&ct[i], mpmc_consumer_main, &cons[i]);
    }
    for (i = 0; i < MPMC_PRODUCERS; i++) {
        prod[i].ch = cs_chan_ref(ch);
        prod[i].id = i;
        prod[i].rc = -100;
        start(&pt[i], mpmc_producer_main, &prod[i]);
    }
    for (i = 0; i < MPMC_PRODUCERS; i++) {
        join(pt[i]);
        assert_int_equal(prod[i].rc, CS_OK);
        cs_chan_unref(prod[i].ch);
    }
    cs_chan_close(ch);                  /* consumers drain, then stop */
    for (i = 0; i < MPMC_CONSUMERS; i++) {
        join(ct[i]);
        assert_true(cons[i].in_order);
        assert_false(cons[i].over_cap);
        count += cons[i].count;
        sum += cons[i].sum;
        cs_chan_unref(cons[i].ch);
    }
    assert_int_equal(count, MPMC_PRODUCERS * MPMC_PER_PRODUCER);
    want = (uint64_t)MPMC_PRODUCERS * MPMC_PER_PRODUCER *
           (MPMC_PER_PRODUCER - 1) / 2;
    assert_int_equal(sum, want);
    /* Exactly once each: nothing lost, nothing duplicated. */
    for (j = 0; j < MPMC_PRODUCERS * MPMC_PER_PRODUCER; j++) {
        unsigned total = 0;

        for (i = 0; i < MPMC_CONSUMERS; i++) {
            total += cons[i].seen[j];
        }
        assert_int_equal(total, 1);
    }
    assert_int_equal(cs_chan_len(ch), 0);
    cs_chan_unref(ch);
}

/* -------------------------------------------------------- vanished peer */

/* A party that waits a little, then drops its reference and leaves. */
static void *vanish_main(void *arg)
{
    cs_chan *ch = arg;

    sleep_ms(20);                       /* let the other side block */
    cs_chan_unref(ch);
    return NULL;
}

static void test_vanished_receiver_unblocks_sender(void **state)
{
    cs_chan *ch = new_chan(2);
    cs_msg *m = new_msg(0, 77);
    pthread_t receiver;

    (void)state;
    assert_int_equal(cs_chan_send(ch, new_msg(0, 0)), CS_OK);
    assert_int_equal(cs_chan_send(ch, new_msg(0, 1)), CS_OK);
    /* The receiver's reference goes with the thread, which drops it
     * without ever receiving; we block on the full channel meanwhile. */
    start(&receiver, vanish_main, cs_chan_ref(ch));
    assert_int_equal(cs_chan_send(ch, m), CS_ECLOSED);
    join(receiver);
    /* The message is still ours: intact, and ours to release. */
    assert_int_equal(msg_seq(m), 77);
    cs_msg_unref(m);
    assert_true(cs_chan_closed(ch));
    assert_int_equal(cs_chan_len(ch), 2);
    cs_chan_unref(ch);                  /* frees the two queued ones */
    assert_no_leaks();
}

static void test_vanished_sender_unblocks_receiver(void **state)
{
    cs_chan *ch = new_chan(2);
    cs_msg *m = NOT_NULL;
    pthread_t sender;

    (void)state;
    start(&sender, vanish_main, cs_chan_ref(ch));
    assert_int_equal(cs_chan_recv(ch, &m), CS_ECLOSED);
    assert_null(m);
    join(sender);
    assert_true(cs_chan_closed(ch));
    cs_chan_unref(ch);
}

/* A sender that says its last words, waits, then vanishes. */
static void *last_words_main(void *arg)
{
    cs_chan *ch = arg;

    cs_msg *m = new_msg(2, 9);

    if (cs_chan_send(ch, m) != CS_OK) {
        cs_msg_unref(m);                /* the receiver then fails */
    }
    sleep_ms(20);
    cs_chan_unref(ch);
    return NULL;
}

static void test_vanished_sender_last_message_is_delivered(void **state)
{
    cs_chan *ch = new_chan(2);
    cs_msg *m;
    pthread_t sender;

    (void)state;
    start(&sender, last_words_main, cs_chan_ref(ch));
    assert_int_equal(cs_chan_recv(ch, &m), CS_OK);
    assert_int_equal(msg_seq(m), 9);
    cs_msg_unref(m);
    /* Now empty: we block until the sender's unref closes the channel. */
    assert_int_equal(cs_chan_recv(ch, &m), CS_ECLOSED);
    join(sender);
    cs_chan_unref(ch);
}

/* ------------------------------------------------- close wakes everyone */

#define WAITERS 4

struct waiter {
    cs_chan *ch;
    atomic_int *started;
    int rc;
};

static void *blocked_receiver_main(void *arg)
{
    struct waiter *w = arg;
    cs_msg *m;

    atomic_fetch_add(w->started, 1);
    w->rc = cs_chan_recv(w->ch, &m);
    if (w->rc == CS_OK) {
        cs_msg_unref(m);
    }
    return NULL;
}

static void *blocked_sender_main(void *arg)
{
    struct waiter *w = arg;
    cs_msg *m = new_msg(3, 0);

    atomic_fetch_add(w->started, 1);
    w->rc = cs_chan_send(w->ch, m);
    if (w->rc != CS_OK) {
        cs_msg_unref(m);                /* a failed send leaves it ours */
    }
    return NULL;
}

/* Start WAITERS threads running 'fn' on 'ch', wait until all are about to
 * block, close 'ch', join them all and check that each saw CS_ECLOSED. */
static void close_wakes_all(cs_chan *ch, void *(*fn)(void *))
{
    struct waiter w[WAITERS];
    pthread_t t[WAITERS];
    atomic_int started;
    int i;

    atomic_init(&started, 0);
    for (i = 0; i < WAITERS; i++) {
        w[i].ch = cs_chan_ref(ch);
        w[i].started = &started;
        w[i].rc = -100;
        start(&t[i], fn, &w[i]);
    }
    for (i = 0; i < 10000 && atomic_load(&started) < WAITERS; i++) {
        sleep_ms(1);
    }
    sleep_ms(20);                       /* from "about to" to "blocked" */
    cs_chan_close(ch);
    for (i = 0; i < WAITERS; i++) {
        join(t[i]);
        assert_int_equal(w[i].rc, CS_ECLOSED);
        cs_chan_unref(w[i].ch);
    }
}

static void test_close_wakes_all_blocked_receivers(void **state)
{
    cs_chan *ch = new_chan(2);

    (void)state;
    close_wakes_all(ch, blocked_receiver_main);
    assert_int_equal(cs_chan_len(ch), 0);
    cs_chan_unref(ch);
}

static void test_close_wakes_all_blocked_senders(void **state)
{
    cs_chan *ch = new_chan(1);
    cs_msg *m;

    (void)state;
    assert_int_equal(cs_chan_send(ch, new_msg(0, 0)), CS_OK);
    close_wakes_all(ch, blocked_sender_main);
    /* None of the blocked sends got in; only the first message is left. */
    assert_int_equal(cs_chan_len(ch), 1);
    assert_int_equal(cs_chan_recv(ch, &m), CS_OK);
    assert_int_equal(msg_payload(m).producer, 0);
    cs_msg_unref(m);
    assert_int_equal(cs_chan_recv(ch, &m), CS_ECLOSED);
    cs_chan_unref(ch);
}

/* A timed receive must be woken by close too, not sit out its timeout. */
static void *timed_receiver_main(void *arg)
{
    struct waiter *w = arg;
    cs_msg *m;

    atomic_fetch_add(w->started, 1);
    /* 60 s: if close did not wake it, the ctest TIMEOUT would fire. */
    w->rc = cs_chan_recv_timeout(w->ch, &m, 60000000);
    if (w->rc == CS_OK) {
        cs_msg_unref(m);
    }
    return NULL;
}

static void test_close_wakes_timed_receivers(void **state)
{
    cs_chan *ch = new_chan(2);

    (void)state;
    close_wakes_all(ch, timed_receiver_main);
    cs_chan_unref(ch);
}

/* ------------------------------------------------------------------ main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_cap_zero_is_einval),
        cmocka_unit_test(test_new_huge_cap_is_enomem),
        cmocka_unit_test(test_new_alloc_failure_is_enomem_and_leaks_nothing),
        cmocka_unit_test(test_send_recv_fifo_order),
        cmocka_unit_test(test_trysend_on_full_is_efull_and_keeps_ownership),
        cmocka_unit_test(test_tryrecv_on_empty_is_eempty),
        cmocka_unit_test(test_trysend_on_closed_keeps_ownership),
        cmocka_unit_test(test_send_on_closed_keeps_ownership),
        cmocka_unit_test(test_drain_after_close_then_eclosed),
        cmocka_unit_test(test_unref_frees_queued_messages),
        cmocka_unit_test(test_unref_of_shared_message_keeps_other_owners),
        cmocka_unit_test(test_drop_to_one_reference_closes),
        cmocka_unit_test(test_recv_timeout_on_empty_times_out),
        cmocka_unit_test(
            test_send_timeout_on_full_times_out_and_keeps_ownership),
        cmocka_unit_test(test_timed_waits_succeed_when_peer_acts),
        cmocka_unit_test(test_full_channel_does_not_deadlock_sender),
        cmocka_unit_test(
            test_many_producers_many_consumers_deliver_each_once),
        cmocka_unit_test(test_vanished_receiver_unblocks_sender),
        cmocka_unit_test(test_vanished_sender_unblocks_receiver),
        cmocka_unit_test(test_vanished_sender_last_message_is_delivered),
        cmocka_unit_test(test_close_wakes_all_blocked_receivers),
        cmocka_unit_test(test_close_wakes_all_blocked_senders),
        cmocka_unit_test(test_close_wakes_timed_receivers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
