/*
 * msg.c - immutable, reference-counted message buffers.
 *
 * A message is one allocation: a header and the bytes that follow it.  It
 * never changes after cs_msg_new, so any number of threads may read it
 * while they hold a reference; only the count is shared mutable state, and
 * it is atomic.  A broadcast hands one buffer to every destination.
 */
#include "consensus.h"
#include "cs_int.h"

#include <stdatomic.h>
#include <string.h>

struct cs_msg {
    atomic_uint refs;
    uint32_t kind;
    size_t len;
    unsigned char data[];
};

int cs_msg_new(cs_msg **out, const void *data, size_t len, uint32_t kind)
{
    cs_msg *m = cs_malloc(sizeof *m + len);

    if (m == NULL) {
        return CS_ENOMEM;
    }
    atomic_init(&m->refs, 1);
    m->kind = kind;
    m->len = len;
    if (len > 0) {
        memcpy(m->data, data, len);
    }
    *out = m;
    return CS_OK;
}

cs_msg *cs_msg_ref(cs_msg *m)
{
    /* Relaxed is enough to take a reference: the taker already holds one. */
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

cs_msg *cs__msg_ref_n(cs_msg *m, unsigned n)
{
    if (n > 0) {
        atomic_fetch_add_explicit(&m->refs, n, memory_order_relaxed);
    }
    return m;
}

void cs__msg_unref_n(cs_msg *m, unsigned n)
{
    if (m != NULL && n > 0 &&
        atomic_fetch_sub_explicit(&m->refs, n, memory_order_acq_rel) == n) {
        cs_free(m);
    }
}

void cs_msg_unref(cs_msg *m)
{
    if (m == NULL) {
        return;
    }
    /* acq_rel: the last owner must see every other owner's reads done. */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        cs_free(m);
    }
}

const void *cs_msg_data(const cs_msg *m)
{
    return m->data;
}

size_t cs_msg_len(const cs_msg *m)
{
    return m->len;
}

uint32_t cs_msg_kind(const cs_msg *m)
{
    return m->kind;
}
