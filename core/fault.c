/*
 * fault.c - partitions, one-way cuts and per-link latency.
 *
 * Fault state must stay cheap at a thousand nodes, so nothing here is an
 * n x n matrix: a partition is one group id per node (a message crosses
 * groups or it does not), a cut is a pair of node bitmaps, and per-link
 * latency overrides live in a small hash table that is empty unless a
 * scenario sets one.  The check per message is O(1) plus O(cuts).
 *
 * Locking: none.  The main thread changes this state only between windows
 * (before the run, or from a scenario action at a barrier); workers read
 * it during windows.  The pool's round hand-off orders the two.
 */
#include "cs_int.h"

#include <string.h>

void cs__faults_init(cs_faults *f, uint32_t n)
{
    memset(f, 0, sizeof *f);
    f->n = n;
}

void cs__faults_heal(cs_faults *f)
{
    size_t i;

    cs_free(f->group);
    f->group = NULL;
    for (i = 0; i < f->ncuts; i++) {
        cs_free(f->cuts[i].from);
        cs_free(f->cuts[i].to);
    }
    f->ncuts = 0;
}

void cs__faults_fini(cs_faults *f)
{
    cs__faults_heal(f);
    cs_free(f->cuts);
    cs_free(f->links);
    memset(f, 0, sizeof *f);
}

int cs__faults_partition(cs_faults *f, const uint32_t *group)
{
    uint32_t *g;

    if (group == NULL) {
        cs_free(f->group);
        f->group = NULL;
        return CS_OK;
    }
    if ((g = cs_malloc((size_t)f->n * sizeof *g)) == NULL) {
        return CS_ENOMEM;
    }
    memcpy(g, group, (size_t)f->n * sizeof *g);
    cs_free(f->group);
    f->group = g;
    return CS_OK;
}

static uint64_t *bitmap(uint32_t n, const uint32_t *ids, size_t k)
{
    uint64_t *b = cs_calloc((n + 63) / 64, sizeof *b);
    size_t i;

    if (b != NULL) {
        for (i = 0; i < k; i++) {
            b[ids[i] / 64] |= UINT64_C(1) << (ids[i] % 64);
        }
    }
    return b;
}

int cs__faults_cut(cs_faults *f, const uint32_t *from, size_t nfrom,
                   const uint32_t *to, size_t nto)
{
    cs_cut c;
    size_t i;

    for (i = 0; i < nfrom; i++) {
        if (from[i] >= f->n) {
            return CS_EINVAL;
        }
    }
    for (i = 0; i < nto; i++) {
        if (to[i] >= f->n) {
            return CS_EINVAL;
        }
    }
    if (f->ncuts == f->capcuts) {
        size_t ncap = f->capcuts ? f->capcuts * 2 : 4;
        cs_cut *nc = cs_realloc(f->cuts, ncap * sizeof *nc);

        if (nc == NULL) {
            return CS_ENOMEM;
        }
        f->cuts = nc;
        f->capcuts = ncap;
    }
    c.from = bitmap(f->n, from, nfrom);
    c.to = bitmap(f->n, to, nto);
    if (c.from == NULL || c.to == NULL) {
        cs_free(c.from);
        cs_free(c.to);
        return CS_ENOMEM;
    }
    f->cuts[f->ncuts++] = c;
    return CS_OK;
}

static uint64_t link_hash(uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    return key ^ (key >> 33);
}

static cs_link *find_slot(cs_link *tab, size_t cap, uint64_t key)
{
    size_t i;

    for (i = link_hash(key) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (!tab[i].used || tab[i].key == key) {
            return &tab[i];
        }
    }
}

int cs__faults_set_link(cs_faults *f, uint32_t from, uint32_t to,
                        const cs_latency *lat)
{
    uint64_t key = (uint64_t)from << 32 | to;
    cs_link *e;

    if (from >= f->n || to >= f->n) {
        return CS_EINVAL;
    }
    if (lat == NULL) {
        /* Removal keeps the slot (a tombstone) so probe chains hold. */
        if (f->caplinks > 0) {
            e = find_slot(f->links, f->caplinks, key);
            if (e->used) {
                e->lat.kind = -1;
            }
        }
        return CS_OK;
    }
    if (2 * (f->nlinks + 1) > f->caplinks) {
        size_t ncap = f->caplinks ? f->caplinks * 2 : 16, i;
        cs_link *nt = cs_calloc(ncap, sizeof *nt);

        if (nt == NULL) {
            return CS_ENOMEM;
        }
        for (i = 0; i < f->caplinks; i++) {
            if (f->links[i].used) {
                *find_slot(nt, ncap, f->links[i].key) = f->links[i];
            }
        }
        cs_free(f->links);
        f->links = nt;
        f->caplinks = ncap;
    }
    e = find_slot(f->links, f->caplinks, key);
    if (!e->used) {
        f->nlinks++;
    }
    e->used = 1;
    e->key = key;
    e->lat = *lat;
    return CS_OK;
}

const cs_latency *cs__faults_link(const cs_faults *f, uint32_t from,
                                  uint32_t to)
{
    const cs_link *e;

    if (f->nlinks == 0) {
        return NULL;
    }
    e = find_slot(f->links, f->caplinks, (uint64_t)from << 32 | to);
    return e->used && e->lat.kind >= 0 ? &e->lat : NULL;
}

cs_time cs__faults_min_delay(const cs_faults *f)
{
    cs_time best = CS_TIME_MAX;
    size_t i;

    for (i = 0; i < f->caplinks; i++) {
        if (f->links[i].used && f->links[i].lat.kind >= 0) {
            cs_net_config one = { f->links[i].lat, 0, 0 };
            cs_time d = cs_net_min_delay(&one);

            if (d < best) {
                best = d;
            }
        }
    }
    return best;
}
