/*
 * check.c - the safety and liveness checker.
 *
 * Decisions and proposals arrive in the scheduler's deterministic order.
 * For each slot the first honest decision becomes the reference value:
 * a later honest decision of another value in that slot breaks agreement,
 * and a node that changes its own decision breaks integrity.  A decided
 * value that no honest node proposed (for that slot, or for any slot)
 * breaks validity, when validity is checked.  Termination is judged once,
 * at the end.  Values are opaque bytes the embedder encodes canonically,
 * so equal values compare equal byte for byte.
 *
 * Lookups use one open-addressing table keyed by a pair of integers:
 * (slot, KEY_SLOT) for the reference decision of a slot, (slot, node) for
 * a node's decision, and (slot or ANY, hash of value) for proposals.  It
 * holds an index into the decision or proposal array.  Memory grows with
 * the decisions kept; every decision is kept, because the report lists
 * them.
 */
#include "cs_int.h"

#include <string.h>

#define KEY_SLOT UINT64_MAX        /* (slot, KEY_SLOT): slot's reference */
#define KEY_PROP (UINT64_MAX - 1)  /* marks a proposal key */
#define KEY_CLAIM (UINT64_MAX - 2) /* marks a claim key */
#define ANY_SLOT INT64_MIN         /* a proposal valid for any slot */

typedef struct entry {
    uint64_t a, b, tag;
    uint32_t val;
    int used;
} entry;

typedef struct blob {
    void *p;
    size_t len;
} blob;

typedef struct claim {
    uint32_t node;
    void *key;
    size_t len;
} claim;

struct cs_check {
    uint32_t nodes;
    int check_validity;
    entry *tab; /* open addressing, power-of-two size */
    size_t tab_len, tab_cap;
    cs_decision *dec;
    size_t ndec, capdec;
    cs_proposal *prop;
    size_t nprop, capprop;
    claim *claims;
    size_t nclaims, capclaims;
    uint32_t *decided; /* distinct slots per node */
    cs_violation viol[CS_MAX_VIOLATIONS];
    size_t nviol;
};

static uint64_t mix(uint64_t a, uint64_t b, uint64_t tag)
{
    uint64_t h = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL);

    h ^= tag * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 31;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 29);
}

static uint64_t fnv(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i;

    for (i = 0; i < len; i++) {
        h = (h ^ s[i]) * 0x100000001b3ULL;
    }
    return h;
}

static entry *find(const cs_check *c, uint64_t a, uint64_t b, uint64_t tag)
{
    size_t mask = c->tab_cap - 1, i;

    if (c->tab_cap == 0) {
        return NULL;
    }
    for (i = mix(a, b, tag) & mask;; i = (i + 1) & mask) {
        entry *e = &c->tab[i];

        if (!e->used) {
            return NULL;
        }
        if (e->a == a && e->b == b && e->tag == tag) {
            return e;
        }
    }
}

static void place(entry *tab, size_t cap, const entry *e)
{
    size_t i;

    for (i = mix(e->a, e->b, e->tag) & (cap - 1); tab[i].used;
         i = (i + 1) & (cap - 1)) {
    }
    tab[i] = *e;
}

static int insert(cs_check *c, uint64_t a, uint64_t b, uint64_t tag,
                  uint32_t val)
{
    entry e = { a, b, tag, val, 1 };

    /* Keep the load under one half so probes stay short. */
    if (2 * (c->tab_len + 1) > c->tab_cap) {
        size_t ncap = c->tab_cap ? c->tab_cap * 2 : 64, i;
        entry *ntab = cs_calloc(ncap, sizeof *ntab);

        if (ntab == NULL) {
            return CS_ENOMEM;
        }
        for (i = 0; i < c->tab_cap; i++) {
            if (c->tab[i].used) {
                place(ntab, ncap, &c->tab[i]);
            }
        }
        cs_free(c->tab);
        c->tab = ntab;
        c->tab_cap = ncap;
    }
    place(c->tab, c->tab_cap, &e);
    c->tab_len++;
    return CS_OK;
}

static void *dup_bytes(const void *p, size_t len)
{
    void *q = cs_malloc(len);

    if (q != NULL && len > 0) {
        memcpy(q, p, len);
    }
    return q;
}

static void add_violation(cs_check *c, const cs_violation *v)
{
    if (c->nviol < CS_MAX_VIOLATIONS) {
        c->viol[c->nviol++] = *v;
    }
}

static int same(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

int cs__check_new(cs_check **out, uint32_t nodes, int check_validity)
{
    cs_check *c = cs_calloc(1, sizeof *c);

    if (c == NULL) {
        return CS_ENOMEM;
    }
    c->decided = cs_calloc(nodes, sizeof *c->decided);
    if (c->decided == NULL) {
        cs_free(c);
        return CS_ENOMEM;
    }
    c->nodes = nodes;
    c->check_validity = check_validity;
    *out = c;
    return CS_OK;
}

void cs__check_free(cs_check *c)
{
    size_t i;

    if (c == NULL) {
        return;
    }
    for (i = 0; i < c->ndec; i++) {
        cs_free((void *)c->dec[i].val);
    }
    for (i = 0; i < c->nprop; i++) {
        cs_free((void *)c->prop[i].val);
    }
    for (i = 0; i < c->nclaims; i++) {
        cs_free(c->claims[i].key);
    }
    cs_free(c->dec);
    cs_free(c->prop);
    cs_free(c->claims);
    cs_free(c->tab);
    cs_free(c->decided);
    cs_free(c);
}

static int proposed(const cs_check *c, int64_t slot, const void *val,
                    size_t len)
{
    uint64_t h = fnv(val, len);
    const entry *e;

    e = find(c, (uint64_t)slot, h, KEY_PROP);
    if (e == NULL) {
        e = find(c, (uint64_t)ANY_SLOT, h, KEY_PROP);
    }
    /* The hash picks the entry; the bytes confirm it. */
    return e != NULL &&
           same(c->prop[e->val].val, c->prop[e->val].len, val, len);
}

int cs__check_propose(cs_check *c, uint32_t node, int64_t slot, int any,
                      cs_time at, const void *val, size_t len)
{
    uint64_t key = any ? (uint64_t)ANY_SLOT : (uint64_t)slot;
    uint64_t h = fnv(val, len);
    void *copy;
    int rc;

    if (find(c, key, h, KEY_PROP) != NULL) {
        return CS_OK;
    }
    if (c->nprop == c->capprop) {
        size_t ncap = c->capprop ? c->capprop * 2 : 16;
        cs_proposal *np = cs_realloc(c->prop, ncap * sizeof *np);

        if (np == NULL) {
            return CS_ENOMEM;
        }
        c->prop = np;
        c->capprop = ncap;
    }
    if ((copy = dup_bytes(val, len)) == NULL) {
        return CS_ENOMEM;
    }
    if ((rc = insert(c, key, h, KEY_PROP, (uint32_t)c->nprop)) != CS_OK) {
        cs_free(copy);
        return rc;
    }
    c->prop[c->nprop].node = node;
    c->prop[c->nprop].any = any;
    c->prop[c->nprop].slot = slot;
    c->prop[c->nprop].at = at;
    c->prop[c->nprop].val = copy;
    c->prop[c->nprop].len = len;
    c->nprop++;
    return CS_OK;
}

int cs__check_claim(cs_check *c, uint32_t node, cs_time at, const void *key,
                    size_t len)
{
    uint64_t h = fnv(key, len);
    const entry *e = find(c, h, len, KEY_CLAIM);
    void *copy;
    int rc;

    if (e != NULL) {
        const claim *first = &c->claims[e->val];

        if (first->node != node) {
            cs_violation v = { CS_V_UNIQUE, 0,    node,
                               first->node, at,   first->key,
                               first->len,  NULL, 0 };
            add_violation(c, &v);
        }
        return CS_OK;
    }
    if (c->nclaims == c->capclaims) {
        size_t ncap = c->capclaims ? c->capclaims * 2 : 16;
        claim *nc = cs_realloc(c->claims, ncap * sizeof *nc);

        if (nc == NULL) {
            return CS_ENOMEM;
        }
        c->claims = nc;
        c->capclaims = ncap;
    }
    if ((copy = dup_bytes(key, len)) == NULL) {
        return CS_ENOMEM;
    }
    if ((rc = insert(c, h, len, KEY_CLAIM, (uint32_t)c->nclaims)) != CS_OK) {
        cs_free(copy);
        return rc;
    }
    c->claims[c->nclaims].node = node;
    c->claims[c->nclaims].key = copy;
    c->claims[c->nclaims].len = len;
    c->nclaims++;
    return CS_OK;
}

size_t cs__check_proposals(const cs_check *c, const cs_proposal **out)
{
    *out = c->prop;
    return c->nprop;
}

int cs__check_decide(cs_check *c, uint32_t node, int honest, int64_t slot,
                     cs_time at, const void *val, size_t len)
{
    cs_decision *d;
    entry *mine, *ref;
    uint32_t idx;
    void *copy;
    int rc;

    if (c->ndec == c->capdec) {
        size_t ncap = c->capdec ? c->capdec * 2 : 64;
        cs_decision *nd = cs_realloc(c->dec, ncap * sizeof *nd);

        if (nd == NULL) {
            return CS_ENOMEM;
        }
        c->dec = nd;
        c->capdec = ncap;
    }
    if ((copy = dup_bytes(val, len)) == NULL) {
        return CS_ENOMEM;
    }
    idx = (uint32_t)c->ndec;
    d = &c->dec[idx];
    d->node = node;
    d->slot = slot;
    d->at = at;
    d->val = copy;
    d->len = len;
    c->ndec++;
    if (!honest) {
        return CS_OK; /* recorded for the report, never checked */
    }

    mine = find(c, (uint64_t)slot, node, 0);
    if (mine != NULL) {
        const cs_decision *old = &c->dec[mine->val];

        if (!same(old->val, old->len, val, len)) {
            cs_violation v = { CS_V_INTEGRITY, slot, node,     node,    at,
                               d->val,         len,  old->val, old->len };
            add_violation(c, &v);
        }
        return CS_OK; /* a repeat is not a new slot */
    }
    if ((rc = insert(c, (uint64_t)slot, node, 0, idx)) != CS_OK) {
        return rc;
    }
    c->decided[node]++;

    if (c->check_validity && !proposed(c, slot, val, len)) {
        cs_violation v = { CS_V_VALIDITY, slot, node, node, at,
                           d->val,        len,  NULL, 0 };
        add_violation(c, &v);
    }
    ref = find(c, (uint64_t)slot, KEY_SLOT, 0);
    if (ref == NULL) {
        return insert(c, (uint64_t)slot, KEY_SLOT, 0, idx);
    }
    if (!same(c->dec[ref->val].val, c->dec[ref->val].len, val, len)) {
        const cs_decision *first = &c->dec[ref->val];
        cs_violation v = { CS_V_AGREEMENT, slot, node,       first->node, at,
                           d->val,         len,  first->val, first->len };
        add_violation(c, &v);
    }
    return CS_OK;
}

uint32_t cs__check_decided(const cs_check *c, uint32_t node)
{
    return c->decided[node];
}

int cs__check_finish(cs_check *c, const unsigned char *want, uint32_t slots,
                     cs_time at)
{
    uint32_t i;

    for (i = 0; i < c->nodes; i++) {
        if (want[i] && c->decided[i] < slots) {
            cs_violation v = { CS_V_TERMINATION,
                               (int64_t)c->decided[i],
                               i,
                               i,
                               at,
                               NULL,
                               0,
                               NULL,
                               0 };
            add_violation(c, &v);
        }
    }
    return CS_OK;
}

size_t cs__check_violations(const cs_check *c, const cs_violation **out)
{
    *out = c->viol;
    return c->nviol;
}

size_t cs__check_decisions(const cs_check *c, const cs_decision **out)
{
    *out = c->dec;
    return c->ndec;
}
