/*
 * test_heap.c - the per-node event heap (cs__heap_*).
 *
 * The scheduler relies on the heap popping events in strict (at, src, seq)
 * order whatever order they were pushed in, on fini releasing the message
 * references still queued, and on a failed push leaving the heap as it was.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cs_int.h"

#define NEV 2000

static int cmp_event(const void *pa, const void *pb)
{
    const cs_event *a = pa, *b = pb;

    if (cs__event_less(a, b)) {
        return -1;
    }
    return cs__event_less(b, a);
}

/* Events with many ties on 'at' and 'src' so that every key component
 * decides some comparisons; (src, seq) is unique as in the scheduler. */
static void make_events(cs_event *ev, size_t n, uint64_t seed)
{
    cs_rng r;
    uint64_t seqs[8] = { 0 };
    size_t i;

    cs_rng_init(&r, seed, 0);
    for (i = 0; i < n; i++) {
        memset(&ev[i], 0, sizeof ev[i]);
        ev[i].at = (cs_time)cs_rng_below(&r, 50);
        ev[i].src = (uint32_t)cs_rng_below(&r, 8);
        ev[i].seq = seqs[ev[i].src] += 1 + cs_rng_below(&r, 3);
        ev[i].tag = (uint32_t)i;        /* identifies the event */
    }
}

static void shuffle(cs_event *ev, size_t n, uint64_t seed)
{
    cs_rng r;
    size_t i;

    cs_rng_init(&r, seed, 1);
    for (i = n - 1; i > 0; i--) {
        size_t j = (size_t)cs_rng_below(&r, i + 1);
        cs_event t = ev[i];

        ev[i] = ev[j];
        ev[j] = t;
    }
}

static void test_pops_in_at_src_seq_order(void **state)
{
    static cs_event ev[NEV], sorted[NEV];
    cs_heap h;
    cs_event out;
    size_t i;

    (void)state;
    make_events(ev, NEV, 42);
    memcpy(sorted, ev, sizeof ev);
    qsort(sorted, NEV, sizeof sorted[0], cmp_event);

    cs__heap_init(&h);
    for (i = 0; i < NEV; i++) {
        assert_int_equal(cs__heap_push(&h, &ev[i]), CS_OK);
        assert_int_equal(h.len, i + 1);
    }
    for (i = 0; i < NEV; i++) {
        assert_non_null(cs__heap_top(&h));
        assert_int_equal(cs__heap_top(&h)->tag, sorted[i].tag);
        cs__heap_pop(&h, &out);
        assert_int_equal(out.tag, sorted[i].tag);
        assert_int_equal(out.at, sorted[i].at);
        assert_int_equal(out.src, sorted[i].src);
        assert_int_equal(out.seq, sorted[i].seq);
    }
    assert_null(cs__heap_top(&h));
    assert_int_equal(h.len, 0);
    cs__heap_fini(&h);
}

static void test_push_order_does_not_change_pop_order(void **state)
{
    static cs_event ev[NEV];
    static uint32_t first[NEV], second[NEV];
    cs_heap h;
    cs_event out;
    size_t i;
    int round;

    (void)state;
    make_events(ev, NEV, 7);
    for (round = 0; round < 2; round++) {
        uint32_t *seen = round == 0 ? first : second;

        shuffle(ev, NEV, 100 + (uint64_t)round);
        cs__heap_init(&h);
        for (i = 0; i < NEV; i++) {
            assert_int_equal(cs__heap_push(&h, &ev[i]), CS_OK);
        }
        for (i = 0; i < NEV; i++) {
            cs__heap_pop(&h, &out);
            seen[i] = out.tag;
        }
        cs__heap_fini(&h);
    }
    assert_memory_equal(first, second, sizeof first);
}

static void test_interleaved_push_pop_stays_ordered(void **state)
{
    cs_heap h;
    cs_event ev, out, prev;
    cs_rng r;
    size_t i, popped = 0;
    uint64_t seq = 0;

    (void)state;
    cs__heap_init(&h);
    cs_rng_init(&r, 3, 3);
    memset(&ev, 0, sizeof ev);
    memset(&prev, 0, sizeof prev);
    prev.at = -1;
    /* Like the scheduler: pushes are never earlier than the last pop. */
    for (i = 0; i < 5000; i++) {
        if (h.len > 0 && cs_rng_below(&r, 3) == 0) {
            cs__heap_pop(&h, &out);
            assert_true(cs__event_less(&prev, &out));
            prev = out;
            popped++;
        } else {
            ev.at = (prev.at < 0 ? 0 : prev.at) + 1 +
                    (cs_time)cs_rng_below(&r, 20);
            ev.src = (uint32_t)cs_rng_below(&r, 4);
            ev.seq = seq++;
            assert_int_equal(cs__heap_push(&h, &ev), CS_OK);
        }
    }
    while (h.len > 0) {
        cs__heap_pop(&h, &out);
        assert_true(cs__event_less(&prev, &out));
        prev = out;
        popped++;
    }
    assert_int_equal(popped, seq);
    cs__heap_fini(&h);
}

static void test_fini_unrefs_queued_messages(void **state)
{
    cs_heap h;
    cs_event ev;
    cs_msg *m, *keep[10];
    size_t i;

    (void)state;
    cs__heap_init(&h);
    memset(&ev, 0, sizeof ev);
    for (i = 0; i < 10; i++) {
        assert_int_equal(cs_msg_new(&m, "payload", 7, (uint32_t)i), CS_OK);
        keep[i] = cs_msg_ref(m);        /* the test's own reference */
        ev.at = (cs_time)(10 - i);
        ev.seq = i;
        ev.msg = m;                     /* the heap takes this one */
        assert_int_equal(cs__heap_push(&h, &ev), CS_OK);
    }
    /* A timer event (no message) mixed in must be harmless to fini. */
    ev.msg = NULL;
    ev.seq = 99;
    assert_int_equal(cs__heap_push(&h, &ev), CS_OK);
    cs__heap_fini(&h);
    assert_int_equal(h.len, 0);
    assert_null(h.ev);
    /* Each message is still readable through our reference, which is now
     * the last one: under ASan a double unref or a leak would show. */
    for (i = 0; i < 10; i++) {
        assert_int_equal(cs_msg_kind(keep[i]), i);
        assert_memory_equal(cs_msg_data(keep[i]), "payload", 7);
        cs_msg_unref(keep[i]);
    }
    /* fini of an empty or already finished heap is a no-op. */
    cs__heap_fini(&h);
}

static void test_push_enomem_leaves_heap_intact(void **state)
{
    cs_heap h;
    cs_event ev, out;
    cs_msg *m;
    size_t i, cap;
    int rc;

    (void)state;
    cs__heap_init(&h);
    memset(&ev, 0, sizeof ev);

    /* The very first push allocates. */
    cs_fail_alloc_at(1);
    ev.at = 5;
    rc = cs__heap_push(&h, &ev);
    cs_fail_alloc_at(0);
    assert_int_equal(rc, CS_ENOMEM);
    assert_int_equal(h.len, 0);
    assert_null(cs__heap_top(&h));

    /* Fill to capacity, then fail the growth. */
    for (i = 0; h.len == 0 || h.len < h.cap; i++) {
        ev.at = (cs_time)(1000 - i);
        ev.seq = i;
        assert_int_equal(cs__heap_push(&h, &ev), CS_OK);
    }
    cap = h.cap;
    assert_int_equal(cs_msg_new(&m, "x", 1, 0), CS_OK);
    ev.at = 0;                          /* would become the new top */
    ev.seq = 12345;
    ev.msg = m;
    cs_fail_alloc_at(1);
    rc = cs__heap_push(&h, &ev);
    cs_fail_alloc_at(0);
    assert_int_equal(rc, CS_ENOMEM);
    assert_int_equal(h.len, cap);
    assert_int_equal(h.cap, cap);
    assert_int_equal(cs__heap_top(&h)->at, (cs_time)(1000 - (cap - 1)));
    /* The reference stayed with us. */
    cs_msg_unref(m);

    /* Everything queued pops in order. */
    for (i = 0; i < cap; i++) {
        cs__heap_pop(&h, &out);
        assert_int_equal(out.at, (cs_time)(1000 - (cap - 1) + i));
    }
    assert_int_equal(h.len, 0);
    cs__heap_fini(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pops_in_at_src_seq_order),
        cmocka_unit_test(test_push_order_does_not_change_pop_order),
        cmocka_unit_test(test_interleaved_push_pop_stays_ordered),
        cmocka_unit_test(test_fini_unrefs_queued_messages),
        cmocka_unit_test(test_push_enomem_leaves_heap_intact),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
