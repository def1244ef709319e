/*
 * chan.c - bounded channel of message buffers.
 *
 * A ring of cs_msg pointers with a fixed capacity, allocated in one piece
 * with the channel; the ring holds one reference to each queued message.
 * Senders block on 'not_full' while the ring is full (back-pressure) and
 * receivers on 'not_empty' while it is empty.  Every wait is a loop on its
 * predicate, because condition variables wake spuriously and because a
 * waiter that was signalled may lose the slot to a thread that took the
 * lock before it woke (a trysend, say).  Timed waits measure against
 * CLOCK_MONOTONIC, so a change of the wall clock neither shortens nor
 * stretches them.
 *
 * Closing is idempotent: it sets 'closed' and broadcasts both condition
 * variables, so every waiter re-checks its predicate and leaves.  Later
 * sends fail with CS_ECLOSED and the caller keeps its message; receives
 * drain what is queued and then fail with CS_ECLOSED.  Nothing reopens a
 * channel.
 *
 * The channel is reference-counted, one reference per party.  When the
 * count drops to one, the survivor's peer is gone and nobody could ever
 * unblock it, so the channel closes itself.  The last reference frees the
 * channel together with the messages still queued.
 *
 * Invariants: len <= cap; the queued messages are ring[(head + i) % cap]
 * for i in [0, len), each holding one reference owned by the channel; once
 * 'closed' is set it stays set.
 *
 * Locking: 'lock' protects every field except 'refs', which is atomic so
 * that cs_chan_ref needs no lock.  cs_chan_unref decrements under the lock
 * (see there).  No function calls out of the module while holding 'lock';
 * queued messages are only unref'd by the last owner, when no other thread
 * can reach the channel.
 */
#include "consensus.h"
#include "cs_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* Longest wait a timeout may ask for, in seconds (about 34 years).  Larger
 * timeouts are clamped so that the deadline fits even a 32-bit time_t. */
#define CHAN_MAX_WAIT_S ((int64_t)1 << 30)

struct cs_chan {
    atomic_uint refs;         /* parties holding the channel; atomic */
    pthread_mutex_t lock;     /* protects everything below */
    pthread_cond_t not_full;  /* senders wait here while len == cap */
    pthread_cond_t not_empty; /* receivers wait here while len == 0 */
    size_t cap;               /* >= 1, fixed at creation */
    size_t head;              /* index of the oldest message */
    size_t len;               /* messages queued */
    int closed;               /* set once, never cleared */
    cs_msg *ring[];           /* cap slots */
};

/* How a send or receive waits when it cannot proceed at once. */
enum wait_mode {
    WAIT_NONE,    /* fail with CS_EFULL / CS_EEMPTY */
    WAIT_FOREVER, /* until the predicate holds or close */
    WAIT_UNTIL    /* until an absolute monotonic deadline */
};

/* ---------------------------------------------------------------- ring */

/* Append 'msg'; the ring takes over the reference.  Lock held, not full. */
static void ring_push(cs_chan *ch, cs_msg *msg)
{
    CS_ASSERT(ch->len < ch->cap);
    ch->ring[(ch->head + ch->len) % ch->cap] = msg;
    ch->len++;
}

/* Remove the oldest message; the caller gets its reference.  Lock held,
 * not empty. */
static cs_msg *ring_pop(cs_chan *ch)
{
    cs_msg *msg;

    CS_ASSERT(ch->len > 0);
    msg = ch->ring[ch->head];
    ch->ring[ch->head] = NULL;
    ch->head = (ch->head + 1) % ch->cap;
    ch->len--;
    return msg;
}

/* ------------------------------------------------------------- waiting */

/* The absolute CLOCK_MONOTONIC time 'timeout_us' from now.  A negative
 * timeout is taken as zero: the deadline has already passed, so the call
 * polls once and reports CS_ETIMEDOUT. */
static struct timespec deadline_after(int64_t timeout_us)
{
    struct timespec ts;
    int64_t sec, nsec;

    CS_ASSERT(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
    if (timeout_us < 0) {
        timeout_us = 0;
    }
    sec = timeout_us / 1000000;
    if (sec > CHAN_MAX_WAIT_S) {
        sec = CHAN_MAX_WAIT_S;
    }
    nsec = (int64_t)ts.tv_nsec + (timeout_us % 1000000) * 1000;
    if (nsec >= 1000000000) {
        nsec -= 1000000000;
        sec++;
    }
    ts.tv_sec += (time_t)sec;
    ts.tv_nsec = (long)nsec;
    return ts;
}

/* Wait once on 'cond' (lock held).  Returns 0 when woken, which may be
 * spurious, and ETIMEDOUT once 'deadline' has passed.  Any other result is
 * a bug, as with the other pthread wrappers. */
static int cond_wait(pthread_cond_t *cond, pthread_mutex_t *lock,
                     enum wait_mode mode, const struct timespec *deadline)
{
    int rc;

    if (mode == WAIT_FOREVER) {
        cs_cond_wait(cond, lock);
        return 0;
    }
    rc = pthread_cond_timedwait(cond, lock, deadline);
    CS_ASSERT(rc == 0 || rc == ETIMEDOUT);
    return rc;
}

/* The common body of the three sends.  'deadline' is used by WAIT_UNTIL
 * only.  Ownership as in cs_chan_send. */
static int chan_send(cs_chan *ch, cs_msg *msg, enum wait_mode mode,
                     const struct timespec *deadline)
{
    int rc;

    CS_ASSERT(ch != NULL && msg != NULL);
    cs_mutex_lock(&ch->lock);
    while (!ch->closed && ch->len == ch->cap && mode != WAIT_NONE) {
        if (cond_wait(&ch->not_full, &ch->lock, mode, deadline) != 0) {
            /* Timed out; the predicate is re-checked below, since a slot
             * may have freed up just as the deadline passed. */
            break;
        }
    }
    if (ch->closed) {
        rc = CS_ECLOSED; /* the caller keeps 'msg' */
    } else if (ch->len == ch->cap) {
        rc = mode == WAIT_NONE ? CS_EFULL : CS_ETIMEDOUT;
    } else {
        ring_push(ch, msg); /* the ring now holds the ref */
        /* One message can satisfy one receiver, so signal, not broadcast:
         * each push wakes at most one waiter, each pop frees one slot. */
        cs_cond_signal(&ch->not_empty);
        rc = CS_OK;
    }
    cs_mutex_unlock(&ch->lock);
    return rc;
}

/* The common body of the three receives.  Ownership as in cs_chan_recv;
 * *out is NULL on failure. */
static int chan_recv(cs_chan *ch, cs_msg **out, enum wait_mode mode,
                     const struct timespec *deadline)
{
    int rc;

    CS_ASSERT(ch != NULL && out != NULL);
    *out = NULL;
    cs_mutex_lock(&ch->lock);
    while (!ch->closed && ch->len == 0 && mode != WAIT_NONE) {
        if (cond_wait(&ch->not_empty, &ch->lock, mode, deadline) != 0) {
            break; /* re-checked below, as in send */
        }
    }
    /* Queued messages are delivered even after close: the sender's last
     * words must not be lost because it hung up right after saying them. */
    if (ch->len > 0) {
        *out = ring_pop(ch);
        cs_cond_signal(&ch->not_full);
        rc = CS_OK;
    } else if (ch->closed) {
        rc = CS_ECLOSED;
    } else {
        rc = mode == WAIT_NONE ? CS_EEMPTY : CS_ETIMEDOUT;
    }
    cs_mutex_unlock(&ch->lock);
    return rc;
}

/* Set 'closed' and wake every waiter.  Lock held. */
static void close_locked(cs_chan *ch)
{
    if (!ch->closed) {
        ch->closed = 1;
        cs_cond_broadcast(&ch->not_full);
        cs_cond_broadcast(&ch->not_empty);
    }
}

/* Free a channel nobody else can reach, with the messages it still holds.
 * The lock is not taken: we hold the only reference. */
static void chan_free(cs_chan *ch)
{
    while (ch->len > 0) {
        cs_msg_unref(ring_pop(ch));
    }
    CS_ASSERT(pthread_cond_destroy(&ch->not_empty) == 0);
    CS_ASSERT(pthread_cond_destroy(&ch->not_full) == 0);
    CS_ASSERT(pthread_mutex_destroy(&ch->lock) == 0);
    cs_free(ch);
}

/* Initialise a condition variable that times its waits on CLOCK_MONOTONIC.
 * Returns 0 or a pthread error code. */
static int cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int rc;

    if ((rc = pthread_condattr_init(&attr)) != 0) {
        return rc;
    }
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0) {
        rc = pthread_cond_init(cond, &attr);
    }
    CS_ASSERT(pthread_condattr_destroy(&attr) == 0);
    return rc;
}

/* -------------------------------------------------------------- public */

int cs_chan_new(cs_chan **out, size_t cap)
{
    cs_chan *ch;

    if (out == NULL) {
        return CS_EINVAL;
    }
    *out = NULL;
    if (cap == 0) {
        return CS_EINVAL;
    }
    /* A ring too large to describe cannot be allocated either. */
    if (cap > (SIZE_MAX - sizeof *ch) / sizeof ch->ring[0]) {
        return CS_ENOMEM;
    }
    ch = cs_malloc(sizeof *ch + cap * sizeof ch->ring[0]);
    if (ch == NULL) {
        return CS_ENOMEM;
    }
    /* pthread initialisers may fail for lack of resources; report that as
     * CS_ENOMEM and undo what was set up, in reverse order. */
    if (pthread_mutex_init(&ch->lock, NULL) != 0) {
        goto fail_mutex;
    }
    if (cond_init_monotonic(&ch->not_full) != 0) {
        goto fail_not_full;
    }
    if (cond_init_monotonic(&ch->not_empty) != 0) {
        goto fail_not_empty;
    }
    atomic_init(&ch->refs, 1);
    ch->cap = cap;
    ch->head = 0;
    ch->len = 0;
    ch->closed = 0;
    *out = ch;
    return CS_OK;

fail_not_empty:
    CS_ASSERT(pthread_cond_destroy(&ch->not_full) == 0);
fail_not_full:
    CS_ASSERT(pthread_mutex_destroy(&ch->lock) == 0);
fail_mutex:
    cs_free(ch);
    return CS_ENOMEM;
}

cs_chan *cs_chan_ref(cs_chan *ch)
{
    unsigned prev;

    /* The caller holds a reference, so the count cannot be zero here and
     * no lock is needed to raise it. */
    prev = atomic_fetch_add(&ch->refs, 1);
    CS_ASSERT(prev > 0);
    return ch;
}

void cs_chan_unref(cs_chan *ch)
{
    unsigned prev;

    if (ch == NULL) {
        return;
    }
    /* Decrement under the lock.  With a lock-free decrement, a party going
     * from 2 to 1 would have to close the channel *after* giving up its
     * reference, and the survivor could drop the last one and free the
     * channel in between.  Under the lock, the close is finished before
     * the survivor's unref can even see the count. */
    cs_mutex_lock(&ch->lock);
    prev = atomic_fetch_sub(&ch->refs, 1);
    CS_ASSERT(prev > 0);
    if (prev == 2) {
        close_locked(ch); /* the peer vanished */
    }
    cs_mutex_unlock(&ch->lock);
    if (prev == 1) {
        /* Every other party has dropped its reference and unlocked, so no
         * thread can reach the channel; POSIX allows destroying a mutex
         * as soon as it is unlocked, which makes this pattern safe. */
        chan_free(ch);
    }
}

int cs_chan_send(cs_chan *ch, cs_msg *msg)
{
    return chan_send(ch, msg, WAIT_FOREVER, NULL);
}

int cs_chan_trysend(cs_chan *ch, cs_msg *msg)
{
    return chan_send(ch, msg, WAIT_NONE, NULL);
}

int cs_chan_send_timeout(cs_chan *ch, cs_msg *msg, int64_t timeout_us)
{
    /* The deadline is fixed before the first wait, so spurious wakeups and
     * lost races cannot extend the total time waited. */
    struct timespec deadline = deadline_after(timeout_us);

    return chan_send(ch, msg, WAIT_UNTIL, &deadline);
}

int cs_chan_recv(cs_chan *ch, cs_msg **out)
{
    return chan_recv(ch, out, WAIT_FOREVER, NULL);
}

int cs_chan_tryrecv(cs_chan *ch, cs_msg **out)
{
    return chan_recv(ch, out, WAIT_NONE, NULL);
}

int cs_chan_recv_timeout(cs_chan *ch, cs_msg **out, int64_t timeout_us)
{
    struct timespec deadline = deadline_after(timeout_us);

    return chan_recv(ch, out, WAIT_UNTIL, &deadline);
}

void cs_chan_close(cs_chan *ch)
{
    cs_mutex_lock(&ch->lock);
    close_locked(ch);
    cs_mutex_unlock(&ch->lock);
}

int cs_chan_closed(cs_chan *ch)
{
    int closed;

    cs_mutex_lock(&ch->lock);
    closed = ch->closed;
    cs_mutex_unlock(&ch->lock);
    return closed;
}

size_t cs_chan_len(cs_chan *ch)
{
    size_t len;

    cs_mutex_lock(&ch->lock);
    len = ch->len;
    cs_mutex_unlock(&ch->lock);
    return len;
}
