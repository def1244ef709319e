/*
 * heap.c - the per-node event queue.
 *
 * A 4-ary min-heap of cs_event values in one growable array: no
 * allocation per event, only amortised doubling.  Four children per node
 * halve the depth of a binary heap; a node's children sit side by side,
 * so a level costs one or two cache lines where a binary heap's deeper
 * path costs one per level (PBFT's heaps hold ~1,000 events).  The key (at, src, seq)
 * is unique, so the pop order is fully determined by the set of events,
 * whatever order they were pushed in; the scheduler relies on this when it
 * merges the sends of a window.  Not thread-safe: a heap belongs to one
 * node and is touched by the worker that owns the node, or by the main
 * thread at a barrier.
 */
#include "cs_int.h"

#define ARITY 4

void cs__heap_init(cs_heap *h)
{
    h->ev = NULL;
    h->len = h->cap = 0;
}

void cs__heap_fini(cs_heap *h)
{
    size_t i;

    for (i = 0; i < h->len; i++) {
        cs_msg_unref(h->ev[i].msg);
    }
    cs_free(h->ev);
    cs__heap_init(h);
}

int cs__heap_push(cs_heap *h, const cs_event *ev)
{
    size_t i, parent;

    if (h->len == h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 16;
        cs_event *nev = cs_realloc(h->ev, ncap * sizeof *nev);

        if (nev == NULL) {
            return CS_ENOMEM;
        }
        h->ev = nev;
        h->cap = ncap;
    }
    /* Sift up with a hole instead of swaps. */
    i = h->len++;
    while (i > 0) {
        parent = (i - 1) / ARITY;
        if (!cs__event_less(ev, &h->ev[parent])) {
            break;
        }
        h->ev[i] = h->ev[parent];
        i = parent;
    }
    h->ev[i] = *ev;
    return CS_OK;
}

void cs__heap_pop(cs_heap *h, cs_event *out)
{
    cs__heap_remove(h, 0, out);
}

void cs__heap_remove(cs_heap *h, size_t i, cs_event *out)
{
    size_t child, parent, c, end;
    cs_event last;

    CS_ASSERT(i < h->len);
    *out = h->ev[i];
    last = h->ev[--h->len];
    if (i == h->len) {
        return; /* removed the last slot itself */
    }
    /* The moved element may belong above the hole (when i > 0) ... */
    while (i > 0) {
        parent = (i - 1) / ARITY;
        if (!cs__event_less(&last, &h->ev[parent])) {
            break;
        }
        h->ev[i] = h->ev[parent];
        i = parent;
    }
    /* ... or below it. */
    for (;;) {
        child = ARITY * i + 1;
        if (child >= h->len) {
            break;
        }
        end = child + ARITY < h->len ? child + ARITY : h->len;
        for (c = child + 1; c < end; c++) {
            if (cs__event_less(&h->ev[c], &h->ev[child])) {
                child = c;
            }
        }
        if (!cs__event_less(&h->ev[child], &last)) {
            break;
        }
        h->ev[i] = h->ev[child];
        i = child;
    }
    h->ev[i] = last;
}
