/*
 * net.c - the network model: how long a message takes, and whether it
 * arrives at all.
 *
 * Every draw comes from the sending node's own stream, so the fate of a
 * message depends only on (seed, sender, the sender's history), never on
 * which thread ran the sender.  The smallest delay a model can produce is
 * the scheduler's lookahead: every model has a positive floor.
 */
#include "consensus.h"

#include <math.h>

static double floor_of(const cs_latency *l)
{
    double m;

    switch (l->kind) {
    case CS_LAT_CONST:
        return l->a;
    case CS_LAT_UNIFORM:
        return l->a;
    case CS_LAT_PARETO:
        return l->a;
    default:
        m = l->min > 0 ? l->min : l->a / 10;
        return m < 1 ? 1 : m;
    }
}

int cs_net_validate(const cs_net_config *net)
{
    const cs_latency *l = &net->latency;

    if (!(net->loss >= 0 && net->loss <= 1) ||
        !(net->duplicate >= 0 && net->duplicate <= 1)) {
        return CS_EINVAL;
    }
    if (!(l->a > 0) || !isfinite(l->a) || !(l->min >= 0)) {
        return CS_EINVAL;
    }
    switch (l->kind) {
    case CS_LAT_CONST:
    case CS_LAT_EXP:
        return CS_OK;
    case CS_LAT_UNIFORM:
        return (l->b >= l->a && isfinite(l->b)) ? CS_OK : CS_EINVAL;
    case CS_LAT_NORMAL:
        return (l->b >= 0 && isfinite(l->b)) ? CS_OK : CS_EINVAL;
    case CS_LAT_PARETO:
        return (l->b > 0 && isfinite(l->b)) ? CS_OK : CS_EINVAL;
    default:
        return CS_EINVAL;
    }
}

cs_time cs_net_min_delay(const cs_net_config *net)
{
    cs_time t = (cs_time)ceil(floor_of(&net->latency));

    return t < 1 ? 1 : t;
}

cs_time cs_net_delay(const cs_net_config *net, cs_rng *r)
{
    const cs_latency *l = &net->latency;
    double d, u;

    switch (l->kind) {
    case CS_LAT_CONST:
        d = l->a;
        break;
    case CS_LAT_UNIFORM:
        d = l->a + (l->b - l->a) * cs_rng_double(r);
        break;
    case CS_LAT_NORMAL: {
        /* Box-Muller; one draw wasted keeps the stream simple. */
        double u1 = 1.0 - cs_rng_double(r), u2 = cs_rng_double(r);
        d = l->a +
            l->b * sqrt(-2.0 * log(u1)) * cos(2 * 3.14159265358979323846 * u2);
        break;
    }
    case CS_LAT_EXP:
        u = 1.0 - cs_rng_double(r);
        d = floor_of(l) - l->a * log(u);
        break;
    case CS_LAT_PARETO:
        u = 1.0 - cs_rng_double(r);
        d = l->a / pow(u, 1.0 / l->b);
        break;
    default:
        d = l->a;
        break;
    }
    if (d < floor_of(l)) {
        d = floor_of(l);
    }
    if (!(d < 9.0e15)) { /* a pareto tail can overflow */
        d = 9.0e15;
    }
    return (cs_time)ceil(d) < cs_net_min_delay(net) ? cs_net_min_delay(net)
                                                    : (cs_time)ceil(d);
}
