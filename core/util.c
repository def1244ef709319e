/*
 * util.c - error strings and the core's allocator.
 *
 * Every core allocation goes through cs_malloc and friends so that tests
 * can make the nth allocation fail (cs_fail_alloc_at) and check that each
 * failure path returns CS_ENOMEM and leaks nothing.  The countdown is an
 * atomic so that threaded code may allocate while a test arms it.
 */
#include "consensus.h"
#include "cs_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static atomic_long fail_countdown; /* 0: never fail */

const char *cs_strerror(int rc)
{
    switch (rc) {
    case CS_OK:
        return "success";
    case CS_ENOMEM:
        return "out of memory";
    case CS_EINVAL:
        return "invalid argument";
    case CS_ECLOSED:
        return "channel closed";
    case CS_EFULL:
        return "channel full";
    case CS_EEMPTY:
        return "channel empty";
    case CS_ETIMEDOUT:
        return "timed out";
    case CS_ESTOPPED:
        return "run stopped";
    case CS_ETOOBIG:
        return "message too large";
    case CS_ESTATE:
        return "not allowed in this state";
    case CS_ECORRUPT:
        return "stored data is corrupt";
    case CS_EIO:
        return "I/O error";
    default:
        return "unknown error";
    }
}

void cs_fail_alloc_at(long n)
{
    atomic_store(&fail_countdown, n < 0 ? 0 : n);
}

/* True when this allocation is the one a test asked to fail. */
static int should_fail(void)
{
    long c = atomic_load(&fail_countdown);

    while (c > 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &c, c - 1)) {
            return c == 1;
        }
    }
    return 0;
}

void *cs_malloc(size_t size)
{
    return should_fail() ? NULL : malloc(size ? size : 1);
}

void *cs_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *cs_realloc(void *p, size_t size)
{
    return should_fail() ? NULL : realloc(p, size ? size : 1);
}

void cs_free(void *p)
{
    free(p);
}

void cs_panic_at(const char *file, int line, const char *what)
{
    fprintf(stderr, "consensus-lua: internal error at %s:%d: %s\n", file, line,
            what);
    abort();
}
