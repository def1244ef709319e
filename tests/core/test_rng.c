/*
 * test_rng.c - per-node random streams (cs_rng_*).
 *
 * Same (seed, stream) must give the same sequence, since replaying a run
 * depends on it; different streams must not be copies of one another;
 * below() must be in range and unbiased; double() in [0, 1).  The
 * statistical checks use fixed seeds and generous bounds: they catch a
 * broken generator, not a subtly weak one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "consensus.h"

#define DRAWS 100000

static void test_same_seed_and_stream_same_sequence(void **state)
{
    cs_rng a, b;
    int i;

    (void)state;
    cs_rng_init(&a, 42, 3);
    cs_rng_init(&b, 42, 3);
    for (i = 0; i < 1000; i++) {
        assert_int_equal(cs_rng_next(&a), cs_rng_next(&b));
    }
    /* Re-initialising restarts the sequence. */
    cs_rng_init(&a, 42, 3);
    cs_rng_init(&b, 42, 3);
    for (i = 0; i < 100; i++) {
        assert_int_equal(cs_rng_below(&a, 1000), cs_rng_below(&b, 1000));
        assert_true(cs_rng_double(&a) == cs_rng_double(&b));
    }
}

static void test_different_streams_differ(void **state)
{
    enum { NS = 64, LEN = 16 };
    static uint64_t v[NS][LEN];
    cs_rng r;
    int s, t, i, same;

    (void)state;
    for (s = 0; s < NS; s++) {
        cs_rng_init(&r, 42, (uint64_t)s);
        for (i = 0; i < LEN; i++) {
            v[s][i] = cs_rng_next(&r);
        }
    }
    /* No two streams share a value at the same position, nor is one a
     * shifted copy of another by one step. */
    for (s = 0; s < NS; s++) {
        for (t = s + 1; t < NS; t++) {
            same = 0;
            for (i = 0; i < LEN; i++) {
                same += v[s][i] == v[t][i];
                if (i + 1 < LEN) {
                    same += v[s][i + 1] == v[t][i];
                    same += v[s][i] == v[t][i + 1];
                }
            }
            assert_int_equal(same, 0);
        }
    }
}

static void test_different_seeds_differ(void **state)
{
    cs_rng a, b;
    int i, same = 0;

    (void)state;
    cs_rng_init(&a, 1, 0);
    cs_rng_init(&b, 2, 0);
    for (i = 0; i < 100; i++) {
        same += cs_rng_next(&a) == cs_rng_next(&b);
    }
    assert_int_equal(same, 0);
    /* Swapping seed and stream is a different stream too. */
    cs_rng_init(&a, 5, 9);
    cs_rng_init(&b, 9, 5);
    assert_true(cs_rng_next(&a) != cs_rng_next(&b));
}

static void test_below_in_range(void **state)
{
    static const uint64_t ns[] = { 1, 2, 3, 7, 10, 1000, 1ULL << 32,
                                   (1ULL << 63) + 1, UINT64_MAX };
    cs_rng r;
    size_t k;
    int i;

    (void)state;
    cs_rng_init(&r, 7, 0);
    for (k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        for (i = 0; i < 10000; i++) {
            assert_true(cs_rng_below(&r, ns[k]) < ns[k]);
        }
    }
    for (i = 0; i < 100; i++) {
        assert_int_equal(cs_rng_below(&r, 1), 0);
    }
}

static void test_below_zero_is_zero(void **state)
{
    cs_rng r, copy;
    int i;

    (void)state;
    cs_rng_init(&r, 7, 1);
    for (i = 0; i < 100; i++) {
        assert_int_equal(cs_rng_below(&r, 0), 0);
    }
    /* It draws nothing, so the stream is where it was. */
    cs_rng_init(&copy, 7, 1);
    assert_int_equal(cs_rng_next(&r), cs_rng_next(&copy));
}

/* Pearson's chi-square of DRAWS draws of below(n) against uniform. */
static double chi_square(uint64_t seed, uint64_t n)
{
    static unsigned long count[64];
    double expect = (double)DRAWS / (double)n, chi = 0;
    cs_rng r;
    uint64_t i;

    for (i = 0; i < n; i++) {
        count[i] = 0;
    }
    cs_rng_init(&r, seed, 11);
    for (i = 0; i < DRAWS; i++) {
        count[cs_rng_below(&r, n)]++;
    }
    for (i = 0; i < n; i++) {
        double d = (double)count[i] - expect;

        chi += d * d / expect;
    }
    return chi;
}

static void test_below_roughly_uniform(void **state)
{
    (void)state;
    /* Degrees of freedom n-1; the bounds sit far beyond the 99.99th
     * percentile (df 5: 25.7, df 9: 33.7, df 63: 118) while a generator
     * stuck on a residue or a modulo-biased one scores in the thousands. */
    assert_true(chi_square(42, 6) < 40.0);
    assert_true(chi_square(43, 10) < 50.0);
    assert_true(chi_square(44, 64) < 160.0);
}

static void test_below_large_n_uses_upper_half(void **state)
{
    /* For n = 3/4 of 2^64 a biased "x % n" would return values below
     * 2^64 - n twice as often as the others; rejection keeps it even. */
    const uint64_t n = (1ULL << 63) + (1ULL << 62);
    cs_rng r;
    int i, low = 0;

    (void)state;
    cs_rng_init(&r, 9, 9);
    for (i = 0; i < DRAWS; i++) {
        if (cs_rng_below(&r, n) < n / 2) {
            low++;
        }
    }
    /* Unbiased: 50%; "x % n" would give 62.5%.  Bounds at ~30 sigma. */
    assert_true(low > 45000 && low < 55000);
}

static void test_double_in_unit_interval(void **state)
{
    cs_rng r;
    double sum = 0, lo = 1, hi = 0;
    int i;

    (void)state;
    cs_rng_init(&r, 123, 4);
    for (i = 0; i < DRAWS; i++) {
        double d = cs_rng_double(&r);

        assert_true(d >= 0.0);
        assert_true(d < 1.0);
        sum += d;
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    /* Mean 0.5 (sd of the mean ~0.0009) and the range is covered. */
    assert_true(sum / DRAWS > 0.49 && sum / DRAWS < 0.51);
    assert_true(lo < 0.001);
    assert_true(hi > 0.999);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_and_stream_same_sequence),
        cmocka_unit_test(test_different_streams_differ),
        cmocka_unit_test(test_different_seeds_differ),
        cmocka_unit_test(test_below_in_range),
        cmocka_unit_test(test_below_zero_is_zero),
        cmocka_unit_test(test_below_roughly_uniform),
        cmocka_unit_test(test_below_large_n_uses_upper_half),
        cmocka_unit_test(test_double_in_unit_interval),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
