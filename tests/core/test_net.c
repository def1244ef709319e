/*
 * test_net.c - the network model (cs_net_*).
 *
 * The smallest delay a model can produce is the scheduler's lookahead, so
 * the property that matters most is that no draw is ever below
 * cs_net_min_delay(): a shorter delay would let a message land inside the
 * window it was sent in and break the conservative scheduler.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "consensus.h"

#define DRAWS 100000

static cs_net_config net_of(int kind, double a, double b, double min)
{
    cs_net_config n;

    memset(&n, 0, sizeof n);
    n.latency.kind = kind;
    n.latency.a = a;
    n.latency.b = b;
    n.latency.min = min;
    return n;
}

static void test_validate_accepts_each_model(void **state)
{
    cs_net_config n;

    (void)state;
    n = net_of(CS_LAT_CONST, 1000, 0, 0);
    assert_int_equal(cs_net_validate(&n), CS_OK);
    n = net_of(CS_LAT_UNIFORM, 1000, 1000, 0);      /* b == a is fine */
    assert_int_equal(cs_net_validate(&n), CS_OK);
    n = net_of(CS_LAT_NORMAL, 5000, 0, 0);          /* zero deviation */
    assert_int_equal(cs_net_validate(&n), CS_OK);
    n = net_of(CS_LAT_EXP, 5000, 0, 100);
    assert_int_equal(cs_net_validate(&n), CS_OK);
    n = net_of(CS_LAT_PARETO, 1000, 2.5, 0);
    assert_int_equal(cs_net_validate(&n), CS_OK);
    n.loss = 0;
    n.duplicate = 1;
    assert_int_equal(cs_net_validate(&n), CS_OK);
    n.loss = 1;
    n.duplicate = 0;
    assert_int_equal(cs_net_validate(&n), CS_OK);
}

static void test_validate_rejects_bad_probabilities(void **state)
{
    cs_net_config n = net_of(CS_LAT_CONST, 1000, 0, 0);

    (void)state;
    n.loss = -0.01;
    assert_int_equal(cs_net_validate(&n), CS_EINVAL);
    n.loss = 1.01;
    assert_int_equal(cs_net_validate(&n), CS_EINVAL);
    n.loss = NAN;
    assert_int_equal(cs_net_validate(&n), CS_EINVAL);
    n.loss = 0;
    n.duplicate = -1;
    assert_int_equal(cs_net_validate(&n), CS_EINVAL);
    n.duplicate = 2;
    assert_int_equal(cs_net_validate(&n), CS_EINVAL);
}

static void test_validate_rejects_inverted_uniform(void **state)
{
    cs_net_config n = net_of(CS_LAT_UNIFORM, 5000, 4999, 0);

    (void)state;
    assert_int_equal(cs_net_validate(&n), CS_EINVAL);
    n.latency.b = INFINITY;
    assert_int_equal(cs_net_validate(&n), CS_EINVAL);
}

static void test_validate_rejects_zero_latency(void **state)
{
    static const int kinds[] = { CS_LAT_CONST, CS_LAT_UNIFORM, CS_LAT_NORMAL,
                                 CS_LAT_EXP, CS_LAT_PARETO };
    cs_net_config n;
    size_t k;

    (void)state;
    for (k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        n = net_of(kinds[k], 0, 1000, 0);
        assert_int_equal(cs_net_validate(&n), CS_EINVAL);
        n = net_of(kinds[k], -5, 1000, 0);
        assert_int_equal(cs_net_validate(&n), CS_EINVAL);
        n = net_of(kinds[k], NAN, 1000, 0);
        assert_int_equal(cs_net_validate(&n), CS_EINVAL);
    }
}

static void test_validate_rejects_bad_shape(void **state)
{
    cs_net_config n;

    (void)state;
    n = net_of(CS_LAT_NORMAL, 5000, -1, 0);         /* negative deviation */
    assert_int_equal(cs_net_validate(&n), CS_EINVAL);
    n = net_of(CS_LAT_PARETO, 1000, 0, 0);          /* shape must be > 0 */
    assert_int_equal(cs_net_validate(&n), CS_EINVAL);
    n = net_of(CS_LAT_EXP, 1000, 0, -1);            /* negative floor */
    assert_int_equal(cs_net_validate(&n), CS_EINVAL);
    n = net_of(99, 1000, 0, 0);                     /* unknown kind */
    assert_int_equal(cs_net_validate(&n), CS_EINVAL);
}

static void test_const_delay_is_exact(void **state)
{
    cs_net_config n = net_of(CS_LAT_CONST, 2500, 0, 0);
    cs_rng r;
    int i;

    (void)state;
    cs_rng_init(&r, 1, 0);
    assert_int_equal(cs_net_min_delay(&n), 2500);
    for (i = 0; i < 1000; i++) {
        assert_int_equal(cs_net_delay(&n, &r), 2500);
    }
}

static void test_uniform_delay_within_bounds(void **state)
{
    cs_net_config n = net_of(CS_LAT_UNIFORM, 1000, 5000, 0);
    cs_time d, lo = CS_TIME_MAX, hi = 0;
    cs_rng r;
    int i;

    (void)state;
    cs_rng_init(&r, 7, 0);
    assert_int_equal(cs_net_min_delay(&n), 1000);
    for (i = 0; i < DRAWS; i++) {
        d = cs_net_delay(&n, &r);
        assert_true(d >= 1000 && d <= 5000);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    /* The draws spread over the whole interval. */
    assert_true(lo < 1100);
    assert_true(hi > 4900);
}

static void test_min_delay_floors(void **state)
{
    cs_net_config n;

    (void)state;
    /* Unbounded kinds: 'min', else a tenth of 'a', never below 1 us. */
    n = net_of(CS_LAT_NORMAL, 5000, 2000, 0);
    assert_int_equal(cs_net_min_delay(&n), 500);
    n = net_of(CS_LAT_NORMAL, 5000, 2000, 1234);
    assert_int_equal(cs_net_min_delay(&n), 1234);
    n = net_of(CS_LAT_EXP, 5, 0, 0);
    assert_int_equal(cs_net_min_delay(&n), 1);
    n = net_of(CS_LAT_PARETO, 3000, 1.5, 0);
    assert_int_equal(cs_net_min_delay(&n), 3000);
    /* A fractional constant rounds up, and a tiny one still gives 1. */
    n = net_of(CS_LAT_CONST, 0.25, 0, 0);
    assert_int_equal(cs_net_min_delay(&n), 1);
}

static void check_never_below_min(int kind, double a, double b, double min,
                                  uint64_t seed)
{
    cs_net_config n = net_of(kind, a, b, min);
    cs_time m, d;
    cs_rng r;
    int i;

    assert_int_equal(cs_net_validate(&n), CS_OK);
    m = cs_net_min_delay(&n);
    assert_true(m >= 1);
    cs_rng_init(&r, seed, 0);
    for (i = 0; i < DRAWS; i++) {
        d = cs_net_delay(&n, &r);
        assert_true(d >= m);
    }
}

static void test_every_model_delay_at_least_min(void **state)
{
    (void)state;
    check_never_below_min(CS_LAT_CONST, 10000, 0, 0, 1);
    check_never_below_min(CS_LAT_CONST, 333.3, 0, 0, 1);
    check_never_below_min(CS_LAT_UNIFORM, 1000, 5000, 0, 2);
    check_never_below_min(CS_LAT_UNIFORM, 1000.5, 1000.7, 0, 2);
    /* Wide normals often draw below the floor and must be clamped. */
    check_never_below_min(CS_LAT_NORMAL, 5000, 5000, 0, 3);
    check_never_below_min(CS_LAT_NORMAL, 5000, 5000, 2500.5, 3);
    check_never_below_min(CS_LAT_NORMAL, 3, 100, 0, 3);
    check_never_below_min(CS_LAT_EXP, 5000, 0, 0, 4);
    check_never_below_min(CS_LAT_EXP, 5000, 0, 777.7, 4);
    check_never_below_min(CS_LAT_EXP, 0.5, 0, 0, 4);
    check_never_below_min(CS_LAT_PARETO, 1000, 1.5, 0, 5);
    check_never_below_min(CS_LAT_PARETO, 1000.25, 0.1, 0, 5); /* heavy */
}

static void test_pareto_heavy_tail_stays_finite(void **state)
{
    /* Shape 0.05: u^(-20) overflows a double for small u.  The delay must
     * stay positive and finite in cs_time. */
    cs_net_config n = net_of(CS_LAT_PARETO, 1000, 0.05, 0);
    cs_rng r;
    cs_time d;
    int i;

    (void)state;
    cs_rng_init(&r, 6, 0);
    for (i = 0; i < DRAWS; i++) {
        d = cs_net_delay(&n, &r);
        assert_true(d >= 1000);
        assert_true(d < CS_TIME_MAX / 2);
    }
}

static void test_normal_mean_near_a(void **state)
{
    /* Narrow normal: the floor clamps almost nothing, so the mean is a. */
    cs_net_config n = net_of(CS_LAT_NORMAL, 10000, 1000, 0);
    cs_rng r;
    double sum = 0;
    int i;

    (void)state;
    cs_rng_init(&r, 8, 0);
    for (i = 0; i < DRAWS; i++) {
        sum += (double)cs_net_delay(&n, &r);
    }
    sum /= DRAWS;
    assert_true(sum > 9950 && sum < 10050);
}

static void test_exp_mean_is_floor_plus_a(void **state)
{
    cs_net_config n = net_of(CS_LAT_EXP, 4000, 0, 1000);
    cs_rng r;
    double sum = 0;
    int i;

    (void)state;
    cs_rng_init(&r, 9, 0);
    for (i = 0; i < DRAWS; i++) {
        sum += (double)cs_net_delay(&n, &r);
    }
    sum /= DRAWS;
    /* 1000 + 4000, plus < 1 us from rounding up; sd of the mean ~13. */
    assert_true(sum > 4900 && sum < 5100);
}

static void test_same_stream_same_delays(void **state)
{
    cs_net_config n = net_of(CS_LAT_UNIFORM, 1000, 5000, 0);
    cs_rng a, b;
    int i;

    (void)state;
    cs_rng_init(&a, 77, 3);
    cs_rng_init(&b, 77, 3);
    for (i = 0; i < 1000; i++) {
        assert_int_equal(cs_net_delay(&n, &a), cs_net_delay(&n, &b));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_accepts_each_model),
        cmocka_unit_test(test_validate_rejects_bad_probabilities),
        cmocka_unit_test(test_validate_rejects_inverted_uniform),
        cmocka_unit_test(test_validate_rejects_zero_latency),
        cmocka_unit_test(test_validate_rejects_bad_shape),
        cmocka_unit_test(test_const_delay_is_exact),
        cmocka_unit_test(test_uniform_delay_within_bounds),
        cmocka_unit_test(test_min_delay_floors),
        cmocka_unit_test(test_every_model_delay_at_least_min),
        cmocka_unit_test(test_pareto_heavy_tail_stays_finite),
        cmocka_unit_test(test_normal_mean_near_a),
        cmocka_unit_test(test_exp_mean_is_floor_plus_a),
        cmocka_unit_test(test_same_stream_same_delays),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
