/*
 * rng.c - per-node random streams.
 *
 * xoshiro256** (Blackman and Vigna), seeded by running splitmix64 over a
 * mix of the run's seed and a stream id (a node id, or a reserved id for
 * the network or the faulty-set choice).  Streams are independent of one
 * another and of thread scheduling: a node only ever draws from its own.
 */
#include "consensus.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void cs_rng_init(cs_rng *r, uint64_t seed, uint64_t stream)
{
    /* Mix the stream in through one splitmix step of its own so that
     * nearby (seed, stream) pairs give unrelated states. */
    uint64_t s = stream;
    uint64_t x = seed ^ splitmix64(&s);
    int i;

    for (i = 0; i < 4; i++) {
        r->s[i] = splitmix64(&x);
    }
}

uint64_t cs_rng_next(cs_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double cs_rng_double(cs_rng *r)
{
    return (double)(cs_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t cs_rng_below(cs_rng *r, uint64_t n)
{
    uint64_t x, limit;

    if (n == 0) {
        return 0;
    }
    /* Reject the top partial range so every residue is equally likely. */
    limit = UINT64_MAX - (UINT64_MAX % n);
    do {
        x = cs_rng_next(r);
    } while (x >= limit);
    return x % n;
}
