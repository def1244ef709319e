/*
 * test_check.c - the safety and liveness checker.
 *
 * Most cases drive cs__check_* directly, in the order the scheduler would
 * feed it; the last ones go through a small simulation to check that the
 * public API wires proposals, decisions, Byzantine nodes and the config
 * through to the same verdicts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "cs_int.h"

#define A "alpha", 5
#define B "bravo", 5

static cs_check *new_check(uint32_t nodes, int validity)
{
    cs_check *c = NULL;

    assert_int_equal(cs__check_new(&c, nodes, validity), CS_OK);
    assert_non_null(c);
    return c;
}

static size_t viols(const cs_check *c, const cs_violation **v)
{
    return cs__check_violations(c, v);
}

static void test_agreement_violation_when_honest_nodes_differ(void **state)
{
    cs_check *c = new_check(4, 1);
    const cs_violation *v;

    (void)state;
    assert_int_equal(cs__check_propose(c, 0, 1, 0, 0, A), CS_OK);
    assert_int_equal(cs__check_propose(c, 0, 1, 0, 0, B), CS_OK);
    assert_int_equal(cs__check_decide(c, 0, 1, 1, 100, A), CS_OK);
    assert_int_equal(cs__check_decide(c, 2, 1, 1, 100, A), CS_OK);
    assert_int_equal(viols(c, &v), 0);
    assert_int_equal(cs__check_decide(c, 1, 1, 1, 150, B), CS_OK);
    assert_int_equal(viols(c, &v), 1);
    assert_int_equal(v[0].kind, CS_V_AGREEMENT);
    assert_int_equal(v[0].slot, 1);
    assert_int_equal(v[0].node, 1);
    assert_int_equal(v[0].other, 0);     /* the slot's first decision */
    assert_int_equal(v[0].at, 150);
    assert_int_equal(v[0].len, 5);
    assert_memory_equal(v[0].val, "bravo", 5);
    assert_int_equal(v[0].other_len, 5);
    assert_memory_equal(v[0].other_val, "alpha", 5);
    /* Another slot is judged on its own. */
    assert_int_equal(cs__check_propose(c, 0, 2, 0, 0, B), CS_OK);
    assert_int_equal(cs__check_decide(c, 0, 1, 2, 200, B), CS_OK);
    assert_int_equal(viols(c, &v), 1);
    cs__check_free(c);
}

static void test_no_violation_for_byzantine_decision(void **state)
{
    cs_check *c = new_check(4, 1);
    const cs_violation *v;
    const cs_decision *d;

    (void)state;
    assert_int_equal(cs__check_propose(c, 0, 1, 0, 0, A), CS_OK);
    /* A Byzantine node decides first, an unproposed value: it neither
     * sets the slot's reference nor counts for validity. */
    assert_int_equal(cs__check_decide(c, 3, 0, 1, 50, B), CS_OK);
    assert_int_equal(cs__check_decide(c, 0, 1, 1, 100, A), CS_OK);
    assert_int_equal(cs__check_decide(c, 3, 0, 1, 120, "zulu", 4), CS_OK);
    assert_int_equal(cs__check_decide(c, 1, 1, 1, 150, A), CS_OK);
    assert_int_equal(viols(c, &v), 0);
    /* Still recorded for the report, in order. */
    assert_int_equal(cs__check_decisions(c, &d), 4);
    assert_int_equal(d[0].node, 3);
    assert_int_equal(d[0].at, 50);
    assert_memory_equal(d[0].val, "bravo", 5);
    assert_int_equal(d[2].node, 3);
    assert_int_equal(d[2].len, 4);
    cs__check_free(c);
}

static void test_integrity_violation_when_node_changes_value(void **state)
{
    cs_check *c = new_check(3, 1);
    const cs_violation *v;

    (void)state;
    assert_int_equal(cs__check_propose(c, 0, 7, 0, 0, A), CS_OK);
    assert_int_equal(cs__check_propose(c, 0, 7, 0, 0, B), CS_OK);
    assert_int_equal(cs__check_decide(c, 2, 1, 7, 10, A), CS_OK);
    assert_int_equal(cs__check_decide(c, 2, 1, 7, 20, B), CS_OK);
    assert_int_equal(viols(c, &v), 1);
    assert_int_equal(v[0].kind, CS_V_INTEGRITY);
    assert_int_equal(v[0].slot, 7);
    assert_int_equal(v[0].node, 2);
    assert_int_equal(v[0].other, 2);
    assert_int_equal(v[0].at, 20);
    assert_memory_equal(v[0].val, "bravo", 5);
    assert_memory_equal(v[0].other_val, "alpha", 5);
    /* Changing its mind does not count as another slot. */
    assert_int_equal(cs__check_decided(c, 2), 1);
    cs__check_free(c);
}

static void test_repeat_decision_is_not_new_slot(void **state)
{
    cs_check *c = new_check(2, 1);
    const cs_violation *v;
    const cs_decision *d;

    (void)state;
    assert_int_equal(cs__check_propose(c, 0, 0, 0, 0, A), CS_OK);
    assert_int_equal(cs__check_decide(c, 0, 1, 0, 10, A), CS_OK);
    assert_int_equal(cs__check_decide(c, 0, 1, 0, 20, A), CS_OK);
    assert_int_equal(cs__check_decide(c, 0, 1, 0, 30, A), CS_OK);
    assert_int_equal(cs__check_decided(c, 0), 1);
    assert_int_equal(cs__check_decided(c, 1), 0);
    assert_int_equal(viols(c, &v), 0);
    assert_int_equal(cs__check_decisions(c, &d), 3);
    /* Still one slot short of two: termination says so. */
    {
        unsigned char want[2] = { 1, 0 };

        assert_int_equal(cs__check_finish(c, want, 2, 99), CS_OK);
    }
    assert_int_equal(viols(c, &v), 1);
    assert_int_equal(v[0].kind, CS_V_TERMINATION);
    assert_int_equal(v[0].node, 0);
    assert_int_equal(v[0].slot, 1);     /* slots it did decide */
    cs__check_free(c);
}

static void test_validity_violation_when_not_proposed(void **state)
{
    cs_check *c = new_check(2, 1);
    const cs_violation *v;

    (void)state;
    assert_int_equal(cs__check_propose(c, 0, 1, 0, 0, A), CS_OK);
    assert_int_equal(cs__check_decide(c, 0, 1, 1, 10, B), CS_OK);
    assert_int_equal(viols(c, &v), 1);
    assert_int_equal(v[0].kind, CS_V_VALIDITY);
    assert_int_equal(v[0].slot, 1);
    assert_int_equal(v[0].node, 0);
    assert_int_equal(v[0].at, 10);
    assert_memory_equal(v[0].val, "bravo", 5);
    assert_null(v[0].other_val);
    /* A value proposed for another slot is not valid in this one. */
    assert_int_equal(cs__check_decide(c, 0, 1, 2, 20, A), CS_OK);
    assert_int_equal(viols(c, &v), 2);
    assert_int_equal(v[1].kind, CS_V_VALIDITY);
    assert_int_equal(v[1].slot, 2);
    /* A prefix of a proposed value is a different value. */
    assert_int_equal(cs__check_decide(c, 1, 1, 1, 30, "alph", 4), CS_OK);
    assert_int_equal(viols(c, &v), 4);  /* validity + agreement with B */
    assert_int_equal(v[2].kind, CS_V_VALIDITY);
    assert_int_equal(v[3].kind, CS_V_AGREEMENT);
    cs__check_free(c);
}

static void test_no_validity_violation_when_proposed_for_slot(void **state)
{
    cs_check *c = new_check(3, 1);
    const cs_violation *v;

    (void)state;
    assert_int_equal(cs__check_propose(c, 0, 4, 0, 0, B), CS_OK);
    assert_int_equal(cs__check_propose(c, 0, 4, 0, 0, A), CS_OK);
    assert_int_equal(cs__check_propose(c, 0, 4, 0, 0, A), CS_OK);  /* again */
    assert_int_equal(cs__check_propose(c, 0, 5, 0, 0, "", 0), CS_OK);
    assert_int_equal(cs__check_decide(c, 0, 1, 4, 10, A), CS_OK);
    assert_int_equal(cs__check_decide(c, 1, 1, 4, 11, A), CS_OK);
    assert_int_equal(cs__check_decide(c, 0, 1, 5, 12, "", 0), CS_OK);
    assert_int_equal(viols(c, &v), 0);
    cs__check_free(c);
}

static void test_no_validity_violation_when_proposed_any(void **state)
{
    cs_check *c = new_check(2, 1);
    const cs_violation *v;
    int64_t slot;

    (void)state;
    assert_int_equal(cs__check_propose(c, 0, 0, 1, 0, A), CS_OK);
    for (slot = -3; slot < 100; slot++) {
        assert_int_equal(cs__check_decide(c, 0, 1, slot, slot + 10, A),
                         CS_OK);
    }
    assert_int_equal(viols(c, &v), 0);
    assert_int_equal(cs__check_decided(c, 0), 103);
    /* 'any' covers that value only. */
    assert_int_equal(cs__check_decide(c, 1, 1, 0, 200, B), CS_OK);
    assert_int_equal(viols(c, &v), 2);
    assert_int_equal(v[0].kind, CS_V_VALIDITY);
    assert_int_equal(v[1].kind, CS_V_AGREEMENT);
    cs__check_free(c);
}

static void test_validity_disabled_by_config(void **state)
{
    cs_check *c = new_check(2, 0);
    const cs_violation *v;

    (void)state;
    assert_int_equal(cs__check_decide(c, 0, 1, 1, 10, A), CS_OK);
    assert_int_equal(cs__check_decide(c, 1, 1, 1, 10, A), CS_OK);
    assert_int_equal(viols(c, &v), 0);
    /* Agreement is still checked. */
    assert_int_equal(cs__check_decide(c, 1, 1, 2, 10, A), CS_OK);
    assert_int_equal(cs__check_decide(c, 0, 1, 2, 10, B), CS_OK);
    assert_int_equal(viols(c, &v), 1);
    assert_int_equal(v[0].kind, CS_V_AGREEMENT);
    cs__check_free(c);
}

static void test_termination_violation_for_short_honest_node(void **state)
{
    cs_check *c = new_check(4, 0);
    const cs_violation *v;
    unsigned char want[4] = { 1, 1, 1, 0 };    /* node 3 is exempt */
    int64_t s;

    (void)state;
    for (s = 0; s < 3; s++) {
        assert_int_equal(cs__check_decide(c, 0, 1, s, 10 * s, A), CS_OK);
    }
    assert_int_equal(cs__check_decide(c, 1, 1, 0, 10, A), CS_OK);
    assert_int_equal(cs__check_finish(c, want, 3, 5000), CS_OK);
    assert_int_equal(viols(c, &v), 2);
    assert_int_equal(v[0].kind, CS_V_TERMINATION);
    assert_int_equal(v[0].node, 1);
    assert_int_equal(v[0].slot, 1);
    assert_int_equal(v[0].at, 5000);
    assert_null(v[0].val);
    assert_int_equal(v[1].kind, CS_V_TERMINATION);
    assert_int_equal(v[1].node, 2);
    assert_int_equal(v[1].slot, 0);
    cs__check_free(c);
}

static void test_decisions_copy_values_in_order(void **state)
{
    cs_check *c = new_check(2, 0);
    const cs_decision *d;
    char buf[8];
    int i;

    (void)state;
    for (i = 0; i < 200; i++) {         /* past several growths */
        memset(buf, 'a' + i % 26, sizeof buf);
        assert_int_equal(cs__check_decide(c, (uint32_t)i % 2, 1, i / 2, i,
                                          buf, sizeof buf), CS_OK);
        memset(buf, 0, sizeof buf);     /* the checker kept its own copy */
    }
    assert_int_equal(cs__check_decisions(c, &d), 200);
    for (i = 0; i < 200; i++) {
        assert_int_equal(d[i].node, (uint32_t)i % 2);
        assert_int_equal(d[i].slot, i / 2);
        assert_int_equal(d[i].at, i);
        assert_int_equal(d[i].len, 8);
        assert_int_equal(((const char *)d[i].val)[7], 'a' + i % 26);
    }
    assert_int_equal(cs__check_decided(c, 0), 100);
    assert_int_equal(cs__check_decided(c, 1), 100);
    cs__check_free(c);
}

static void test_violations_capped(void **state)
{
    cs_check *c = new_check(2, 1);
    const cs_violation *v;
    int64_t s;

    (void)state;
    for (s = 0; s < 3 * CS_MAX_VIOLATIONS; s++) {
        assert_int_equal(cs__check_decide(c, 0, 1, s, s, A), CS_OK);
    }
    assert_int_equal(viols(c, &v), CS_MAX_VIOLATIONS);
    /* The first ones are kept. */
    assert_int_equal(v[0].slot, 0);
    assert_int_equal(v[CS_MAX_VIOLATIONS - 1].slot, CS_MAX_VIOLATIONS - 1);
    cs__check_free(c);
}

static void test_alloc_failure_returns_enomem(void **state)
{
    cs_check *c;
    long n;
    int rc, i;

    (void)state;
    for (n = 1;; n++) {
        c = NULL;
        cs_fail_alloc_at(n);
        rc = cs__check_new(&c, 8, 1);
        cs_fail_alloc_at(0);
        if (rc == CS_OK) {
            break;
        }
        assert_int_equal(rc, CS_ENOMEM);
        assert_null(c);
    }
    assert_true(n > 1);
    /* Each later call may fail; a failure returns CS_ENOMEM and the
     * checker stays usable (ASan sees any leak at exit). */
    for (n = 1; n < 8; n++) {
        for (i = 0; i < 40; i++) {
            cs_fail_alloc_at(n);
            rc = cs__check_propose(c, 0, i, 0, 0, &i, sizeof i);
            cs_fail_alloc_at(0);
            assert_true(rc == CS_OK || rc == CS_ENOMEM);
            cs_fail_alloc_at(n);
            rc = cs__check_decide(c, (uint32_t)i % 8, 1, i, i, &i, sizeof i);
            cs_fail_alloc_at(0);
            assert_true(rc == CS_OK || rc == CS_ENOMEM);
        }
    }
    cs__check_free(c);
    cs__check_free(NULL);
}

/* ---------------------------------------------- through the public API */

/* Each node proposes and decides at start what 'plan' says. */
typedef struct plan {
    const char *propose[4];         /* NULL: no proposal */
    const char *decide[4];          /* NULL: no decision */
} plan;

static int plan_start(void *ud, cs_sim *sim, uint32_t node)
{
    const plan *p = ud;

    if (p->propose[node] != NULL) {
        assert_int_equal(cs_sim_propose(sim, node, 0, 0, p->propose[node],
                                        strlen(p->propose[node])), CS_OK);
    }
    if (p->decide[node] != NULL) {
        assert_int_equal(cs_sim_decide(sim, node, 0, p->decide[node],
                                       strlen(p->decide[node])), CS_OK);
    }
    return 0;
}

static cs_sim *plan_run(const plan *p, int validity, int byz)
{
    cs_sim_config cfg;
    cs_callbacks cb;
    cs_sim *sim = NULL;

    cs_sim_config_init(&cfg);
    cfg.nodes = 4;
    cfg.check_validity = validity;
    memset(&cb, 0, sizeof cb);
    cb.ud = (void *)p;
    cb.start = plan_start;
    assert_int_equal(cs_sim_new(&sim, &cfg), CS_OK);
    if (byz >= 0) {
        assert_int_equal(cs_sim_set_byzantine(sim, (uint32_t)byz, 1), CS_OK);
    }
    assert_int_equal(cs_sim_run(sim, &cb), CS_OK);
    return sim;
}

static void test_unique_violation_when_two_nodes_claim_one_key(void **state)
{
    cs_check *c = new_check(4, 1);
    const cs_violation *v;

    (void)state;
    assert_int_equal(cs__check_claim(c, 1, 10, "leader/4", 8), CS_OK);
    assert_int_equal(cs__check_claim(c, 1, 20, "leader/4", 8), CS_OK);
    assert_int_equal(cs__check_claim(c, 2, 30, "leader/5", 8), CS_OK);
    assert_int_equal(viols(c, &v), 0);      /* repeats and new keys */
    assert_int_equal(cs__check_claim(c, 3, 40, "leader/4", 8), CS_OK);
    assert_int_equal(viols(c, &v), 1);
    assert_int_equal(v[0].kind, CS_V_UNIQUE);
    assert_int_equal(v[0].node, 3);
    assert_int_equal(v[0].other, 1);
    assert_int_equal(v[0].at, 40);
    assert_memory_equal(v[0].val, "leader/4", 8);
    cs__check_free(c);
}

static void test_proposals_keep_first_node_and_time(void **state)
{
    cs_check *c = new_check(4, 1);
    const cs_proposal *p;

    (void)state;
    assert_int_equal(cs__check_propose(c, 2, 7, 0, 55, A), CS_OK);
    assert_int_equal(cs__check_propose(c, 3, 7, 0, 60, A), CS_OK);
    assert_int_equal(cs__check_propose(c, 1, 0, 1, 70, B), CS_OK);
    assert_int_equal(cs__check_proposals(c, &p), 2);
    assert_int_equal(p[0].node, 2);
    assert_int_equal(p[0].slot, 7);
    assert_int_equal(p[0].at, 55);
    assert_int_equal(p[0].any, 0);
    assert_int_equal(p[1].any, 1);
    assert_memory_equal(p[1].val, "bravo", 5);
    cs__check_free(c);
}

static void test_sim_agreement_and_byzantine_exclusion(void **state)
{
    plan p = { { "x", "y", NULL, "z" }, { "x", "x", "y", "z" } };
    const cs_violation *v;
    cs_sim *sim;

    (void)state;
    /* Node 3 Byzantine: its "z" (and its proposal) do not count. */
    sim = plan_run(&p, 1, 3);
    assert_int_equal(cs_sim_violations(sim, &v), 1);
    assert_int_equal(v[0].kind, CS_V_AGREEMENT);
    assert_int_equal(v[0].node, 2);
    assert_int_equal(v[0].other, 0);
    cs_sim_free(sim);
    /* Honest node 3: "z" breaks agreement as well, and is valid. */
    sim = plan_run(&p, 1, -1);
    assert_int_equal(cs_sim_violations(sim, &v), 2);
    assert_int_equal(v[1].kind, CS_V_AGREEMENT);
    assert_int_equal(v[1].node, 3);
    cs_sim_free(sim);
}

static void test_sim_byzantine_proposal_does_not_validate(void **state)
{
    /* Node 0 is Byzantine; its proposal is recorded before the others
     * decide (same time, lower node), yet it validates nothing. */
    plan p = { { "w", NULL, NULL, NULL }, { "w", "w", "w", "w" } };
    const cs_violation *v;
    cs_sim *sim;
    size_t i;

    (void)state;
    sim = plan_run(&p, 1, 0);
    assert_int_equal(cs_sim_violations(sim, &v), 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(v[i].kind, CS_V_VALIDITY);
        assert_int_equal(v[i].node, i + 1);
    }
    cs_sim_free(sim);
    /* Honest, the same proposal makes every decision valid. */
    sim = plan_run(&p, 1, -1);
    assert_int_equal(cs_sim_violations(sim, &v), 0);
    cs_sim_free(sim);
    /* Byzantine again, with validity disabled by the config: clean. */
    sim = plan_run(&p, 0, 0);
    assert_int_equal(cs_sim_violations(sim, &v), 0);
    cs_sim_free(sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agreement_violation_when_honest_nodes_differ),
        cmocka_unit_test(test_no_violation_for_byzantine_decision),
        cmocka_unit_test(test_integrity_violation_when_node_changes_value),
        cmocka_unit_test(test_repeat_decision_is_not_new_slot),
        cmocka_unit_test(test_validity_violation_when_not_proposed),
        cmocka_unit_test(test_no_validity_violation_when_proposed_for_slot),
        cmocka_unit_test(test_no_validity_violation_when_proposed_any),
        cmocka_unit_test(test_validity_disabled_by_config),
        cmocka_unit_test(test_termination_violation_for_short_honest_node),
        cmocka_unit_test(test_decisions_copy_values_in_order),
        cmocka_unit_test(test_violations_capped),
        cmocka_unit_test(test_alloc_failure_returns_enomem),
        cmocka_unit_test(test_unique_violation_when_two_nodes_claim_one_key),
        cmocka_unit_test(test_proposals_keep_first_node_and_time),
        cmocka_unit_test(test_sim_agreement_and_byzantine_exclusion),
        cmocka_unit_test(test_sim_byzantine_proposal_does_not_validate),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
