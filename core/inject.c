/*
 * inject.c - fault injection: the calls that schedule node faults and
 * change the network, and what a node fault does when it takes effect.
 *
 * Node faults (crash, restart, pause) are internal actions: they take
 * effect at a barrier, on the thread that runs cs_sim_run, before node
 * events of their time, so a fault lands at the same point of the run
 * whatever the number of threads.  Network faults (partitions, cuts, link
 * latency) change the state of fault.c, only between windows.  Clocks are
 * set before a node runs.  Locking: none beyond what sim.c documents; in a
 * live run the network state is guarded by live.c's fault lock.
 */
#include "sim_int.h"

#include <string.h>

static int node_action(cs_sim *sim, int type, uint32_t node, cs_time at,
                       int flags, cs_time arg)
{
    action a = { at, 0, 0, type, node, flags, arg };

    if (node >= sim->cfg.nodes || at < 0 || arg < 0) {
        return CS_EINVAL;
    }
    if (sim->cfg.live) {
        return CS_EINVAL; /* live mode: no crash, restart, pause */
    }
    return cs__sim_push_action(sim, &a);
}

int cs_sim_crash(cs_sim *sim, uint32_t node, cs_time at, int flags)
{
    return node_action(sim, ACT_CRASH, node, at, flags, 0);
}

int cs_sim_restart(cs_sim *sim, uint32_t node, cs_time at)
{
    return node_action(sim, ACT_RESTART, node, at, 0, 0);
}

int cs_sim_pause(cs_sim *sim, uint32_t node, cs_time at, cs_time dur)
{
    return node_action(sim, ACT_PAUSE, node, at, 0, dur);
}

int cs_sim_set_clock(cs_sim *sim, uint32_t node, cs_time skew, double drift)
{
    if (node >= sim->cfg.nodes || !(drift > -1.0 && drift < 1e6)) {
        return CS_EINVAL;
    }
    if (cs__live_threads_up(sim)) {
        return CS_ESTATE; /* live mode: the node's thread reads it */
    }
    sim->nodes[node].skew = skew;
    sim->nodes[node].drift = drift;
    return CS_OK;
}

int cs_sim_node_down(const cs_sim *sim, uint32_t node)
{
    return node < sim->cfg.nodes && sim->nodes[node].down;
}

/* The lookahead: the smallest delay any model in force can draw. */
static void update_lookahead(cs_sim *sim)
{
    cs_time l = cs_net_min_delay(&sim->cfg.net);
    cs_time links = cs__faults_min_delay(&sim->faults);

    sim->lookahead = links < l ? links : l;
}

/* live mode: node threads read the faults as they send, hence the lock
 * (a no-op otherwise). */
int cs_sim_partition(cs_sim *sim, const uint32_t *group)
{
    int rc;

    cs__live_lock_faults(sim);
    rc = cs__faults_partition(&sim->faults, group);
    cs__live_unlock_faults(sim);
    return rc;
}

int cs_sim_cut(cs_sim *sim, const uint32_t *from, size_t nfrom,
               const uint32_t *to, size_t nto)
{
    int rc;

    cs__live_lock_faults(sim);
    rc = cs__faults_cut(&sim->faults, from, nfrom, to, nto);
    cs__live_unlock_faults(sim);
    return rc;
}

void cs_sim_heal(cs_sim *sim)
{
    cs__live_lock_faults(sim);
    cs__faults_heal(&sim->faults);
    cs__live_unlock_faults(sim);
}

int cs_sim_set_link(cs_sim *sim, uint32_t from, uint32_t to,
                    const cs_latency *lat)
{
    int rc;

    if (lat != NULL) {
        cs_net_config one = { *lat, 0, 0 };

        if (cs_net_validate(&one) != CS_OK) {
            return CS_EINVAL;
        }
    }
    cs__live_lock_faults(sim); /* live mode */
    rc = cs__faults_set_link(&sim->faults, from, to, lat);
    cs__live_unlock_faults(sim);
    if (rc == CS_OK) {
        update_lookahead(sim);
    }
    return rc;
}

static void trace_node(cs_sim *sim, uint32_t node, int kind, cs_time arg)
{
    node_rt *n = &sim->nodes[node];
    cs_trace_rec tr;

    if (!sim->cfg.trace) {
        return;
    }
    memset(&tr, 0, sizeof tr);
    tr.kind = kind;
    tr.peer = CS_NO_NODE;
    tr.arg = arg;
    cs__sim_trace(sim, &sim->extra, node, n->now, n->seq++, &tr);
}

/* A node fault taking effect.  Main thread, workers idle. */
int cs__sim_node_fault(cs_sim *sim, const action *a)
{
    const cs_callbacks *cb = sim->cb;
    node_rt *n = &sim->nodes[a->node];
    uint32_t t;

    switch (a->type) {
    case ACT_CRASH:
        if (n->down) {
            return CS_OK;
        }
        n->down = 1;
        n->paused_until = 0;
        n->st.crashes++;
        /* Every pending timer dies with the process. */
        for (t = 0; t < n->ntgen; t++) {
            n->tgen[t]++;
        }
        trace_node(sim, a->node, CS_TR_CRASH, 0);
        if (cb->crash != NULL) {
            cb->crash(cb->ud, sim, a->node, a->flags);
        }
        return CS_OK;
    case ACT_RESTART:
        if (!n->down) {
            return CS_OK;
        }
        n->down = 0;
        n->failed = 0;
        n->st.restarts++;
        trace_node(sim, a->node, CS_TR_RESTART, 0);
        if (cb->restart != NULL && cb->restart(cb->ud, sim, a->node) != 0) {
            n->failed = 1;
        }
        return CS_OK;
    default: /* ACT_PAUSE */
        if (a->at + a->arg > n->paused_until) {
            n->paused_until =
                a->arg > CS_TIME_MAX - a->at ? CS_TIME_MAX : a->at + a->arg;
        }
        trace_node(sim, a->node, CS_TR_PAUSE, a->arg);
        return CS_OK;
    }
}
