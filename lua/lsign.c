/*
 * lsign.c - signatures: node:sign(value) and node:verify(blob, signer).
 *
 * Every node has an Ed25519 key pair (libsodium), derived from the run's
 * seed and the node id, so runs replay exactly (Ed25519 signing is
 * deterministic too).  A node holds only its own secret key; every node
 * can read every public key.  A signed blob is a Lua string:
 *
 *   "CSG1" | signer (u32 little-endian) | encoded value | signature (64)
 *
 * where the signature covers everything before it.  node:verify checks the
 * signer named by the caller against the one in the blob and the signature
 * against that signer's public key, and returns the value, or nil when the
 * blob was forged or altered; each failure counts as a forgery detected.
 * Together with the core stamping the true sender of every message, this
 * lets protocols forward others' words (PBFT's view change) safely.
 *
 * The keys are derived on the first node:sign or node:verify of a run,
 * by whichever thread gets there first (under run->types_lock): deriving
 * an Ed25519 key pair costs about 200,000 instructions, and most
 * protocols never sign.  They depend on the seed alone, so when they are
 * made changes nothing.
 *
 * Threads: run->pks and every node's secret key are written once, under
 * the lock, before 'keys' is set (release); a thread that sees 'keys' set
 * (acquire) only reads them.  A node's counter belongs to that node.
 */
#include "lconsensus.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "CSG1"
#define HEAD (4 + 4)
#define SIG crypto_sign_BYTES

int lcs_sign_setup(lcs_run *run, uint64_t seed)
{
    if (sodium_init() < 0) {
        return CS_EINVAL;
    }
    if ((run->pks = malloc((size_t)run->n * 32 + 1)) == NULL) {
        return CS_ENOMEM;
    }
    run->key_seed = seed;
    atomic_init(&run->keys, 0);
    return CS_OK;
}

/* Every node's key pair, made once. */
static void need_keys(lcs_run *run)
{
    uint64_t seed = run->key_seed;
    uint32_t i;

    if (atomic_load_explicit(&run->keys, memory_order_acquire)) {
        return;
    }
    pthread_mutex_lock(run->types_lock);
    if (atomic_load_explicit(&run->keys, memory_order_relaxed)) {
        pthread_mutex_unlock(run->types_lock);
        return;
    }
    for (i = 0; i < run->n; i++) {
        unsigned char kseed[crypto_sign_SEEDBYTES];
        cs_rng r;
        int k;

        /* A stream of its own, so keys do not shift any node's draws. */
        cs_rng_init(&r, seed, UINT64_C(0x516e000000) + i);
        for (k = 0; k < (int)sizeof kseed; k += 8) {
            uint64_t x = cs_rng_next(&r);

            memcpy(kseed + k, &x, 8);
        }
        crypto_sign_seed_keypair(run->pks + (size_t)i * 32, run->nodes[i].sk,
                                 kseed);
    }
    atomic_store_explicit(&run->keys, 1, memory_order_release);
    pthread_mutex_unlock(run->types_lock);
}

static lcs_node *node_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

int lcs_node_sign(lua_State *L)
{
    lcs_node *nd = node_of(L);
    unsigned char *blob;
    size_t len;
    luaL_Buffer b;

    luaL_checkany(L, 2);
    need_keys(nd->run);
    lcs_encode(L, 2, &nd->wbuf, nd->lim->max_msg, 1, "value");
    len = HEAD + nd->wbuf.len + SIG;
    blob = (unsigned char *)luaL_buffinitsize(L, &b, len);
    memcpy(blob, MAGIC, 4);
    blob[4] = (unsigned char)(nd->id & 0xff);
    blob[5] = (unsigned char)(nd->id >> 8 & 0xff);
    blob[6] = (unsigned char)(nd->id >> 16 & 0xff);
    blob[7] = (unsigned char)(nd->id >> 24 & 0xff);
    memcpy(blob + HEAD, nd->wbuf.p, nd->wbuf.len);
    crypto_sign_detached(blob + HEAD + nd->wbuf.len, NULL, blob,
                         HEAD + nd->wbuf.len, nd->sk);
    luaL_pushresultsize(&b, len);
    return 1;
}

int lcs_node_verify(lua_State *L)
{
    lcs_node *nd = node_of(L);
    size_t len;
    const unsigned char *blob =
        (const unsigned char *)luaL_optlstring(L, 2, "", &len);
    lua_Integer signer = luaL_checkinteger(L, 3);
    uint32_t who;

    if (lua_type(L, 2) != LUA_TSTRING || len < HEAD + SIG ||
        memcmp(blob, MAGIC, 4) != 0 || signer < 0 ||
        signer >= (lua_Integer)nd->n) {
        goto forged;
    }
    who = (uint32_t)blob[4] | (uint32_t)blob[5] << 8 | (uint32_t)blob[6] << 16 |
          (uint32_t)blob[7] << 24;
    need_keys(nd->run);
    if (who != (uint32_t)signer ||
        crypto_sign_verify_detached(blob + len - SIG, blob, len - SIG,
                                    nd->run->pks + (size_t)who * 32) != 0 ||
        !lcs_decode(L, blob + HEAD, len - HEAD - SIG)) {
        goto forged;
    }
    return 1;

forged:
    nd->forgeries++;
    lua_pushnil(L);
    return 1;
}
