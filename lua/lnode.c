/*
 * lnode.c - node states: one sandboxed lua_State per simulated node.
 *
 * Each node gets a fresh state with its own allocator (so a memory cap can
 * fail one node, not the process), the safe standard libraries, and
 * deterministic replacements for everything that would read the outside
 * world: math.random draws from the node's seeded stream, os.time and
 * os.clock read virtual time, print goes to the node's log.  There is no
 * io, no debug, no loading of files or C modules.
 *
 * The node's stack keeps fixed slots for the whole run, so a handler call
 * costs no lookups:
 *   1 traceback handler   2 node table   3 start   4 receive   5 timer
 *   6 tag -> timer name    7 timer name -> tag   8 the protocol's 'on'
 *   9 deliver, a closure over the decoder's string cache (a table)
 * The node table holds id, n, f, byzantine, store and the methods (C
 * functions that find their node through the state's extra space); its
 * metatable answers 'now'.  Protocols keep per-node state in it freely.
 *
 * Every handler runs under lua_pcall with a traceback.  With an
 * instruction budget (--budget N) a count hook stops a handler that runs
 * past it, at the same instruction on every replay; without one (the
 * default: any count hook slows every instruction) the watchdog thread
 * (lwatch.c) stops a call that runs too long in wall-clock time.  A script
 * cannot swallow either stop with pcall: the node's pcall and xpcall
 * re-raise.  An error fails the node; the message goes to the main state
 * as an LCS_OUT_ERROR record.
 *
 * Two kinds of message.  A table (node:send, node:broadcast) is decoded
 * into a fresh table for receive(node, msg, from).  A positional message
 * (node:post and friends: a type and a list of values) goes to the
 * protocol's on[type](node, from, ...) with its values decoded straight
 * onto the stack, no table built; without such a handler it goes to
 * receive as the table {type = T, n = k, ...}.  'on' is read when the
 * protocol is installed; on[type] raw, per message, so a protocol may
 * change its handlers as it runs.
 *
 * Threads: a node state is only touched by the worker that owns the node
 * in the current window; nothing here is shared between nodes.
 */
#include "lconsensus.h"
#include "cs_int.h"
#include "ltransfer.h"
#include "cs_log.h"

#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    S_MSGH = 1,
    S_NODE,
    S_START,
    S_RECEIVE,
    S_TIMER,
    S_TAGNAME,
    S_NAMETAG,
    S_ON,
    S_DELIVER,
    S_TOP = S_DELIVER
};

#define HOOK_EVERY 10000 /* VM instructions between budget checks */

/* Node methods and stand-ins are closures over their node. */
static lcs_node *checknode(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* The node's own clock (skew and drift apply), in ms. */
static double now_ms(const lcs_node *nd)
{
    return (double)cs_sim_local_now(nd->sim, nd->id) / 1000.0;
}

/* ---------------------------------------------------------- allocator */

/* Small blocks (the tables, strings and closures a message makes) come
 * from per-node free lists of 16-byte size classes, carved from 4 KiB
 * slabs; larger ones from malloc.  No locks: a node state is used by one
 * thread at a time.  Every slab is freed when the state closes. */
#define SMALL_MAX 256
#define CLASS(n) (((n) + 15) / 16 - 1) /* 1..16 -> 0, ... 256 -> 15 */
#define SLAB 4096

typedef struct slab {
    struct slab *next;
    double align; /* blocks start 16-byte aligned after this */
} slab;

static void *small_alloc(lcs_node *nd, size_t n)
{
    int c = CLASS(n);
    size_t size = (size_t)(c + 1) * 16;
    void **block = nd->free_list[c];

    if (block != NULL) {
        nd->free_list[c] = *block;
        return block;
    }
    if (nd->slab_left < size) {
        slab *sl = malloc(SLAB);

        if (sl == NULL) {
            return NULL;
        }
        sl->next = nd->slabs;
        nd->slabs = sl;
        nd->slab_ptr = (char *)sl + 16;
        nd->slab_left = SLAB - 16;
    }
    block = (void **)nd->slab_ptr;
    nd->slab_ptr += size;
    nd->slab_left -= size;
    return block;
}

static void small_free(lcs_node *nd, void *p, size_t n)
{
    int c = CLASS(n);

    *(void **)p = nd->free_list[c];
    nd->free_list[c] = p;
}

void lcs_node_free_slabs(lcs_node *nd)
{
    slab *sl = nd->slabs, *next;

    for (; sl != NULL; sl = next) {
        next = sl->next;
        free(sl);
    }
    nd->slabs = NULL;
    nd->slab_ptr = NULL;
    nd->slab_left = 0;
    memset(nd->free_list, 0, sizeof nd->free_list);
}

static void *node_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lcs_node *nd = ud;
    size_t old = ptr != NULL ? osize : 0;
    void *p;

    if (nsize == 0) {
        if (ptr != NULL) {
            if (old <= SMALL_MAX) {
                small_free(nd, ptr, old);
            } else {
                free(ptr);
            }
        }
        nd->mem -= old;
        return NULL;
    }
    /* Refuse growth past the cap; Lua turns NULL into a memory error
     * inside the handler, which fails this node only. */
    if (nd->lim->mem > 0 && nsize > old &&
        nd->mem + (nsize - old) > nd->lim->mem) {
        nd->capped = 1; /* say why when the error is reported */
        return NULL;
    }
    if (old > SMALL_MAX && nsize > SMALL_MAX) {
        p = realloc(ptr, nsize);
    } else if (old > 0 && CLASS(old) == CLASS(nsize)) {
        p = ptr; /* same class: it fits already */
    } else {
        p = nsize <= SMALL_MAX ? small_alloc(nd, nsize) : malloc(nsize);
        if (p != NULL && old > 0) {
            memcpy(p, ptr, old < nsize ? old : nsize);
            if (old <= SMALL_MAX) {
                small_free(nd, ptr, old);
            } else {
                free(ptr);
            }
        }
    }
    if (p != NULL) {
        nd->mem = nd->mem - old + nsize;
    }
    return p;
}

/* Instructions between two budget checks: HOOK_EVERY, or the budget
 * itself when smaller, so a call stops within that many instructions
 * past its budget. */
static int hook_every(const lcs_node *nd)
{
    return nd->lim->budget < HOOK_EVERY ? (int)nd->lim->budget : HOOK_EVERY;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    lcs_node *nd = lcs_node_of(L);

    (void)ar;
    if (nd == NULL || !nd->in_handler) {
        return;
    }
    nd->steps += hook_every(nd);
    if (nd->lim->budget > 0 && nd->steps > nd->lim->budget) {
        luaL_error(L,
                   "instruction budget exceeded (%I VM instructions in "
                   "one handler call)",
                   (LUAI_UACINT)nd->lim->budget);
    }
}

/* The watchdog's hook (armed from its thread by lcs_node_trip): raise if
 * the call it was armed for is still the one running, else it is a stale
 * arming that arrived as the call ended: remove it. */
static void trip_hook(lua_State *L, lua_Debug *ar)
{
    lcs_node *nd = lcs_node_of(L);
    char secs[32];
    unsigned c;

    (void)ar;
    if (nd == NULL) {
        return;
    }
    c = atomic_load_explicit(&nd->calls, memory_order_relaxed);
    if (!nd->in_handler ||
        atomic_load_explicit(&nd->trip_call, memory_order_relaxed) != c) {
        lua_sethook(L, NULL, 0, 0);
        return;
    }
    nd->tripped = 1;
    snprintf(secs, sizeof secs, "%g",
             atomic_load_explicit(&nd->trip_secs, memory_order_relaxed));
    luaL_error(L,
               "handler still running after %s s of wall-clock time: "
               "stopped by the watchdog (an endless loop?).  Where it "
               "stopped depends on the machine; --budget N stops a handler "
               "at a fixed instruction count instead",
               secs);
}

void lcs_node_trip(lcs_node *nd, unsigned call, double secs)
{
    int i;

    lcs_watch_hold(nd->run);
    if (nd->L != NULL &&
        atomic_load_explicit(&nd->calls, memory_order_relaxed) == call) {
        atomic_store_explicit(&nd->trip_secs, secs, memory_order_relaxed);
        atomic_store_explicit(&nd->trip_call, call, memory_order_relaxed);
        lua_sethook(nd->L, trip_hook, LUA_MASKCOUNT, 1);
        /* and every coroutine being resumed: a hook set on a state does
         * not reach a coroutine that already runs */
        for (i = 0; i < nd->nco; i++) {
            lua_sethook(nd->co[i], trip_hook, LUA_MASKCOUNT, 1);
        }
    }
    lcs_watch_release(nd->run);
}

/* coroutine.resume and coroutine.wrap's functions go through here: the
 * coroutine is on nd->co while it runs, for lcs_node_trip.  Upvalue 1 is
 * the library's resume.  [co, args...] -> resume's results. */
static int resume_tracked(lua_State *L, lua_State *co)
{
    lcs_node *nd = lcs_node_of(L);
    int tracked = nd != NULL && nd->nco < LCS_CO_MAX, rc;

    if (tracked) {
        lcs_watch_hold(nd->run);
        nd->co[nd->nco++] = co;
        lcs_watch_release(nd->run);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    if (tracked) {
        lcs_watch_hold(nd->run);
        nd->nco--;
        lcs_watch_release(nd->run);
    }
    return rc == LUA_OK ? lua_gettop(L) : lua_error(L);
}

static int node_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);

    luaL_argexpected(L, co != NULL, 1, "coroutine");
    return resume_tracked(L, co);
}

/* A function made by coroutine.wrap: upvalues resume, the coroutine.  As
 * the library's: results on success, the error raised again (a string
 * error with the caller's position) on failure. */
static int node_wrapped(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(2));
    int n;

    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    n = resume_tracked(L, co);
    if (!lua_toboolean(L, 1)) {
        if (lua_type(L, 2) == LUA_TSTRING) {
            luaL_where(L, 1);
            lua_pushvalue(L, 2);
            lua_concat(L, 2);
        } else {
            lua_pushvalue(L, 2);
        }
        return lua_error(L);
    }
    return n - 1;
}

static int node_wrap(lua_State *L)
{
    lua_State *co;

    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushvalue(L, lua_upvalueindex(1)); /* resume */
    co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, node_wrapped, 2);
    return 1;
}

static int spent(const lcs_node *nd)
{
    return (nd->lim->budget > 0 && nd->steps > nd->lim->budget) || nd->tripped;
}

/* --------------------------------------------------- sandboxed globals */

static int finish_pcall(lua_State *L, int status, lua_KContext extra)
{
    lcs_node *nd = lcs_node_of(L);

    if (status != LUA_OK && status != LUA_YIELD) {
        if (nd != NULL && spent(nd)) {
            return lua_error(L); /* the budget is not catchable */
        }
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

static int node_pcall(lua_State *L)
{
    int status;

    luaL_checkany(L, 1);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
    return finish_pcall(L, status, 0);
}

static int node_xpcall(lua_State *L)
{
    int n = lua_gettop(L), status;

    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* [f, msgh, true, f, args...] */
    status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
    return finish_pcall(L, status, 2);
}

static int node_log_text(lua_State *L, const char *s, size_t len)
{
    lcs_node *nd = checknode(L);

    if (cs_sim_emit(nd->sim, nd->id, LCS_OUT_LOG, s, len) != CS_OK) {
        return luaL_error(L, "log: out of memory");
    }
    return 0;
}

static int node_print(lua_State *L)
{
    int n = lua_gettop(L), i;
    luaL_Buffer b;
    size_t len;
    const char *s;

    luaL_buffinit(L, &b);
    for (i = 1; i <= n; i++) {
        s = luaL_tolstring(L, i, &len);
        if (i > 1) {
            luaL_addchar(&b, '\t');
        }
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    s = lua_tolstring(L, -1, &len);
    return node_log_text(L, s, len);
}

static int node_random(lua_State *L)
{
    lcs_node *nd = checknode(L);
    cs_rng *r = cs_sim_rng(nd->sim, nd->id);
    lua_Integer lo, hi;
    int base = lua_istable(L, 1) ? 1 : 0; /* node:random or math.random */

    switch (lua_gettop(L) - base) {
    case 0:
        lua_pushnumber(L, cs_rng_double(r));
        return 1;
    case 1:
        lo = 1;
        hi = luaL_checkinteger(L, base + 1);
        if (hi == 0) { /* math.random(0): a random integer */
            lua_pushinteger(L, (lua_Integer)cs_rng_next(r));
            return 1;
        }
        break;
    case 2:
        lo = luaL_checkinteger(L, base + 1);
        hi = luaL_checkinteger(L, base + 2);
        break;
    default:
        return luaL_error(L, "wrong number of arguments");
    }
    luaL_argcheck(L, lo <= hi, base + 1, "interval is empty");
    lua_pushinteger(
        L, lo + (lua_Integer)cs_rng_below(r, (uint64_t)hi - (uint64_t)lo + 1));
    return 1;
}

/* load(chunk [, name [, mode [, env]]]) with text chunks only: a crafted
 * binary chunk can crash the VM, and nodes must never take the process
 * down. */
static int node_load(lua_State *L)
{
    const char *mode = luaL_optstring(L, 3, "t");

    if (strchr(mode, 'b') != NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "load: binary chunks are not allowed in nodes");
        return 2;
    }
    if (lua_gettop(L) < 3) {
        lua_settop(L, 3); /* env (4) stays absent */
    }
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1)); /* the real load */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int node_randomseed(lua_State *L)
{
    /* The stream belongs to the run's seed: ignore reseeding. */
    (void)L;
    return 0;
}

static int node_time(lua_State *L)
{
    lcs_node *nd = checknode(L);

    lua_pushinteger(L,
                    (lua_Integer)(cs_sim_local_now(nd->sim, nd->id) / 1000000));
    return 1;
}

static int node_clock(lua_State *L)
{
    lcs_node *nd = checknode(L);

    lua_pushnumber(L, (double)cs_sim_local_now(nd->sim, nd->id) / 1e6);
    return 1;
}

/* ------------------------------------------------------- node methods */

static uint32_t check_peer(lua_State *L, lcs_node *nd, int idx)
{
    lua_Integer to = luaL_checkinteger(L, idx);

    if (to < 0 || to >= (lua_Integer)nd->n) {
        luaL_error(L, "bad node id %I (nodes are 0..%d)", (LUAI_UACINT)to,
                   (int)nd->n - 1);
    }
    return (uint32_t)to;
}

/* Encode the value at 'idx' once into a shared message, labelled with
 * its interned type. */
static cs_msg *encode_msg(lua_State *L, lcs_node *nd, int idx)
{
    const char *type;
    size_t tlen;
    uint32_t kind = 0;
    cs_msg *m;

    luaL_checkany(L, idx);
    lcs_encode(L, idx, &nd->wbuf, nd->lim->max_msg, 0, "msg");
    if (lcs_encoded_type(&nd->wbuf, &type, &tlen)) {
        kind = lcs_type_id(nd, type, tlen);
    }
    if (cs_msg_new(&m, nd->wbuf.p, nd->wbuf.len, kind) != CS_OK) {
        luaL_error(L, "send: out of memory");
    }
    return m;
}

/* Send 'm' (the caller's reference) to node 'to'; 'what' names the
 * method in errors. */
static int send_one(lua_State *L, lcs_node *nd, uint32_t to, cs_msg *m,
                    const char *what)
{
    int rc = cs_sim_send(nd->sim, nd->id, to, m);

    lcs_type_count(nd, cs_msg_kind(m), 1, cs_msg_len(m));
    cs_msg_unref(m);
    if (rc != CS_OK) {
        return luaL_error(L, "%s: %s", what, cs_strerror(rc));
    }
    return 0;
}

static int m_send(lua_State *L)
{
    lcs_node *nd = checknode(L);
    uint32_t to = check_peer(L, nd, 2);

    return send_one(L, nd, to, encode_msg(L, nd, 3), "send");
}

/* Send 'm' (the caller's reference) to every node, 'self' included or
 * not; 'what' names the method in errors. */
static int send_all(lua_State *L, lcs_node *nd, cs_msg *m, int self,
                    const char *what)
{
    int rc = cs_sim_broadcast(nd->sim, nd->id, m, self);

    lcs_type_count(nd, cs_msg_kind(m), nd->n - (self ? 0 : 1), cs_msg_len(m));
    cs_msg_unref(m);
    if (rc != CS_OK) {
        return luaL_error(L, "%s: %s", what, cs_strerror(rc));
    }
    return 0;
}

static int m_broadcast(lua_State *L)
{
    lcs_node *nd = checknode(L);
    int self = lua_isnoneornil(L, 3) || lua_toboolean(L, 3);

    return send_all(L, nd, encode_msg(L, nd, 2), self, "broadcast");
}

/* Encode the positional message at 'idx' (the type) and above (its
 * values) once into a shared message. */
static cs_msg *encode_post(lua_State *L, lcs_node *nd, int idx)
{
    size_t tlen;
    const char *type;
    cs_msg *m;

    luaL_argexpected(L, lua_type(L, idx) == LUA_TSTRING, idx,
                     "message type (string)");
    type = lua_tolstring(L, idx, &tlen);
    luaL_argcheck(L, tlen >= 1 && tlen <= LCS_MAX_TYPE, idx,
                  "a message type of 1..63 bytes");
    lcs_encode_args(L, type, tlen, idx + 1, lua_gettop(L) - idx, &nd->wbuf,
                    nd->lim->max_msg, "msg");
    if (cs_msg_new(&m, nd->wbuf.p, nd->wbuf.len, lcs_type_id(nd, type, tlen)) !=
        CS_OK) {
        luaL_error(L, "post: out of memory");
    }
    return m;
}

/* node:post(to, type, ...): a positional message to one node. */
static int m_post(lua_State *L)
{
    lcs_node *nd = checknode(L);
    uint32_t to = check_peer(L, nd, 2);

    return send_one(L, nd, to, encode_post(L, nd, 3), "post");
}

/* node:post_all(type, ...): to every node, itself included. */
static int m_post_all(lua_State *L)
{
    lcs_node *nd = checknode(L);

    return send_all(L, nd, encode_post(L, nd, 2), 1, "post_all");
}

/* node:post_others(type, ...): to every other node. */
static int m_post_others(lua_State *L)
{
    lcs_node *nd = checknode(L);

    return send_all(L, nd, encode_post(L, nd, 2), 0, "post_others");
}

/* The tag of timer 'name' (arg 2), interning it on first use. */
static uint32_t timer_tag(lua_State *L, lcs_node *nd, int create)
{
    uint32_t tag;
    int t = lua_type(L, 2);

    luaL_argexpected(L, t == LUA_TSTRING || t == LUA_TNUMBER, 2,
                     "timer name (string or number)");
    /* The tag tables are upvalues: a C function's stack is its own, so
     * the fixed slots are out of reach here. */
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(3)) != LUA_TNIL) {
        tag = (uint32_t)lua_tointeger(L, -1);
        lua_pop(L, 1);
        return tag;
    }
    lua_pop(L, 1);
    if (!create) {
        return 0;
    }
    tag = ++nd->ntags;
    lua_pushvalue(L, 2);
    lua_pushinteger(L, tag);
    lua_rawset(L, lua_upvalueindex(3));
    lua_pushvalue(L, 2);
    lua_rawseti(L, lua_upvalueindex(2), tag);
    return tag;
}

static int m_set_timer(lua_State *L)
{
    lcs_node *nd = checknode(L);
    double ms = luaL_checknumber(L, 3);
    uint32_t tag;

    luaL_argcheck(L, ms >= 0 && ms < 1e12, 3, "delay must be >= 0 ms");
    tag = timer_tag(L, nd, 1);
    if (cs_sim_set_timer(nd->sim, nd->id, tag, (cs_time)llround(ms * 1000)) !=
        CS_OK) {
        return luaL_error(L, "set_timer: out of memory");
    }
    return 0;
}

static int m_cancel_timer(lua_State *L)
{
    lcs_node *nd = checknode(L);
    uint32_t tag = timer_tag(L, nd, 0);

    if (tag != 0) {
        cs_sim_cancel_timer(nd->sim, nd->id, tag);
    }
    return 0;
}

static int64_t opt_slot(lua_State *L, int idx, int *given)
{
    *given = !lua_isnoneornil(L, idx);
    return *given ? (int64_t)luaL_checkinteger(L, idx) : 1;
}

static int m_decide(lua_State *L)
{
    lcs_node *nd = checknode(L);
    int given;
    int64_t slot = opt_slot(L, 3, &given);

    luaL_checkany(L, 2);
    lcs_encode(L, 2, &nd->wbuf, nd->lim->max_msg, 1, "value");
    if (cs_sim_decide(nd->sim, nd->id, slot, nd->wbuf.p, nd->wbuf.len) !=
        CS_OK) {
        return luaL_error(L, "decide: out of memory");
    }
    if (nd->dec_log != NULL) {
        /* A record: the slot (8 bytes, little-endian), then the value. */
        unsigned char *rec = malloc(8 + nd->wbuf.len);
        int i, rc;

        if (rec == NULL) {
            return luaL_error(L, "decide: out of memory");
        }
        for (i = 0; i < 8; i++) {
            rec[i] = (unsigned char)((uint64_t)slot >> (8 * i));
        }
        memcpy(rec + 8, nd->wbuf.p, nd->wbuf.len);
        rc = cs_log_append(nd->dec_log, rec, 8 + nd->wbuf.len);
        free(rec);
        if (rc != CS_OK) {
            return luaL_error(L, "decide: cannot write the decision log: %s",
                              cs_strerror(rc));
        }
    }
    return 0;
}

static int m_propose(lua_State *L)
{
    lcs_node *nd = checknode(L);
    int given;
    int64_t slot = opt_slot(L, 3, &given);

    luaL_checkany(L, 2);
    lcs_encode(L, 2, &nd->wbuf, nd->lim->max_msg, 1, "value");
    if (cs_sim_propose(nd->sim, nd->id, slot, !given, nd->wbuf.p,
                       nd->wbuf.len) != CS_OK) {
        return luaL_error(L, "propose: out of memory");
    }
    return 0;
}

/* node:claim(value): this node claims 'value' (e.g. {"leader", term});
 * two honest nodes claiming the same value is a safety violation. */
static int m_claim(lua_State *L)
{
    lcs_node *nd = checknode(L);

    luaL_checkany(L, 2);
    lcs_encode(L, 2, &nd->wbuf, nd->lim->max_msg, 1, "claim");
    if (cs_sim_claim(nd->sim, nd->id, nd->wbuf.p, nd->wbuf.len) != CS_OK) {
        return luaL_error(L, "claim: out of memory");
    }
    return 0;
}

/* node:count(name [, n]): add n (default 1) to the run's counter 'name'
 * (report.counters), e.g. view changes or elections. */
static int m_count(lua_State *L)
{
    lcs_node *nd = checknode(L);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    lua_Integer n = luaL_optinteger(L, 3, 1);
    char buf[128];

    luaL_argcheck(L, len > 0 && len < sizeof buf - 24, 2,
                  "a counter name of 1..100 bytes");
    /* "n name": the amount first, so the name may hold any byte */
    len = (size_t)snprintf(buf, sizeof buf, "%lld %s", (long long)n, name);
    if (cs_sim_emit(nd->sim, nd->id, LCS_OUT_COUNT, buf, len) != CS_OK) {
        return luaL_error(L, "count: out of memory");
    }
    return 0;
}

static int m_log(lua_State *L)
{
    size_t len;
    const char *s;

    if (lua_gettop(L) > 2) {
        /* string.format(fmt, ...) */
        lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
        lua_getfield(L, -1, "string");
        lua_getfield(L, -1, "format");
        lua_replace(L, 1); /* [format, fmt, args..., LOADED, string] */
        lua_pop(L, 2);
        lua_call(L, lua_gettop(L) - 1, 1);
        s = lua_tolstring(L, -1, &len);
    } else {
        s = luaL_tolstring(L, 2, &len);
    }
    return node_log_text(L, s, len);
}

static int m_note(lua_State *L)
{
    lcs_node *nd = checknode(L);

    luaL_checkany(L, 2);
    lcs_encode(L, 2, &nd->wbuf, nd->lim->max_msg, 0, "note");
    if (cs_sim_emit(nd->sim, nd->id, LCS_OUT_NOTE, nd->wbuf.p, nd->wbuf.len) !=
        CS_OK) {
        return luaL_error(L, "note: out of memory");
    }
    return 0;
}

/* Take a snapshot of node.store (arg 1 is the node) into *buf.  The
 * caller owns the malloc'd bytes.  Raises in L. */
static void snapshot(lua_State *L, lcs_node *nd, int node_idx,
                     unsigned char **buf, size_t *len)
{
    unsigned char *copy;

    lua_getfield(L, node_idx, "store");
    lcs_encode(L, -1, &nd->wbuf, 0, 1, "node.store");
    lua_pop(L, 1);
    if ((copy = malloc(nd->wbuf.len ? nd->wbuf.len : 1)) == NULL) {
        luaL_error(L, "sync: out of memory");
    }
    memcpy(copy, nd->wbuf.p, nd->wbuf.len);
    free(*buf);
    *buf = copy;
    *len = nd->wbuf.len;
}

/* node:sync(): what node.store holds now survives even a crash that loses
 * unsynced writes. */
static int m_sync(lua_State *L)
{
    lcs_node *nd = checknode(L);

    luaL_checktype(L, 1, LUA_TTABLE);
    snapshot(L, nd, 1, &nd->synced, &nd->synced_len);
    if (nd->store_log != NULL) {
        /* Durable before sync returns: the log fsyncs every append. */
        int rc = cs_log_append(nd->store_log, nd->synced, nd->synced_len);

        if (rc != CS_OK) {
            return luaL_error(L,
                              "sync: cannot write node.store to the data "
                              "directory: %s",
                              cs_log_errno(nd->store_log)
                                  ? strerror(cs_log_errno(nd->store_log))
                                  : cs_strerror(rc));
        }
    }
    return 0;
}

static int node_index(lua_State *L)
{
    lcs_node *nd = checknode(L);
    const char *k = lua_tostring(L, 2);

    if (nd != NULL && k != NULL && strcmp(k, "now") == 0) {
        lua_pushnumber(L, now_ms(nd));
        return 1;
    }
    return 0;
}

static int node_tostring(lua_State *L)
{
    lcs_node *nd = checknode(L);

    lua_pushfstring(L, "node %d", nd != NULL ? (int)nd->id : -1);
    return 1;
}

static const luaL_Reg node_methods[] = { { "send", m_send },
                                         { "broadcast", m_broadcast },
                                         { "post", m_post },
                                         { "post_all", m_post_all },
                                         { "post_others", m_post_others },
                                         { "set_timer", m_set_timer },
                                         { "cancel_timer", m_cancel_timer },
                                         { "decide", m_decide },
                                         { "propose", m_propose },
                                         { "random", node_random },
                                         { "log", m_log },
                                         { "note", m_note },
                                         { "sync", m_sync },
                                         { "claim", m_claim },
                                         { "count", m_count },
                                         { "sign", lcs_node_sign },
                                         { "verify", lcs_node_verify },
                                         { NULL, NULL } };

/* ---------------------------------------------------- building a state */

static int msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    if (msg == NULL) {
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static void set_node_fn(lua_State *L, lcs_node *nd, lua_CFunction f)
{
    lua_pushlightuserdata(L, nd);
    lua_pushcclosure(L, f, 1);
}

static void set_global_fn(lua_State *L, lcs_node *nd, const char *lib,
                          const char *name, lua_CFunction f)
{
    lua_getglobal(L, lib);
    set_node_fn(L, nd, f);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

static int deliver(lua_State *L);

/* Runs inside the node's state under lua_pcall: everything may raise. */
static int setup(lua_State *L)
{
    lcs_node *nd = lua_touserdata(L, 1);
    static const luaL_Reg libs[] = { { LUA_GNAME, luaopen_base },
                                     { LUA_LOADLIBNAME, luaopen_package },
                                     { LUA_COLIBNAME, luaopen_coroutine },
                                     { LUA_TABLIBNAME, luaopen_table },
                                     { LUA_STRLIBNAME, luaopen_string },
                                     { LUA_MATHLIBNAME, luaopen_math },
                                     { LUA_UTF8LIBNAME, luaopen_utf8 },
                                     { NULL, NULL } };
    const luaL_Reg *lib;

    lua_settop(L, 0);
    for (lib = libs; lib->func != NULL; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    /* No files, no C modules: only preloaded modules can be required. */
    lua_pushnil(L);
    lua_setglobal(L, "dofile");
    lua_pushnil(L);
    lua_setglobal(L, "loadfile");
    lua_getglobal(L, LUA_LOADLIBNAME);
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pushnil(L);
    lua_setfield(L, -2, "loadlib");
    lua_pushnil(L);
    lua_setfield(L, -2, "searchpath"); /* it probes the file system */
    lua_createtable(L, 1, 0);
    lua_getfield(L, -2, "searchers");
    lua_rawgeti(L, -1, 1); /* the preload searcher */
    lua_rawseti(L, -3, 1);
    lua_pop(L, 1);
    lua_setfield(L, -2, "searchers");
    lua_pop(L, 1);
    lua_pushlightuserdata(L, nd); /* tells luaopen_consensus: a node */
    lua_setfield(L, LUA_REGISTRYINDEX, LCS_NODE_KEY);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_consensus);
    lua_setfield(L, -2, "consensus");
    lua_pop(L, 1);
    luaL_requiref(L, "consensus", luaopen_consensus, 0);
    lua_pop(L, 1);

    /* Coroutines the watchdog can reach (lcs_node_trip). */
    lua_getglobal(L, LUA_COLIBNAME);
    lua_getfield(L, -1, "resume");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, node_resume, 1);
    lua_setfield(L, -3, "resume");
    lua_pushcclosure(L, node_wrap, 1);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 1);
    /* Deterministic stand-ins for the outside world. */
    set_global_fn(L, nd, LUA_MATHLIBNAME, "random", node_random);
    set_global_fn(L, nd, LUA_MATHLIBNAME, "randomseed", node_randomseed);
    /* Libraries a scenario asked for on purpose (see LCS_ALLOW_*). */
    if (nd->lim->allow & LCS_ALLOW_IO) {
        luaL_requiref(L, LUA_IOLIBNAME, luaopen_io, 1);
        lua_pop(L, 1);
    }
    if (nd->lim->allow & LCS_ALLOW_DEBUG) {
        luaL_requiref(L, LUA_DBLIBNAME, luaopen_debug, 1);
        lua_pop(L, 1);
    }
    if (nd->lim->allow & LCS_ALLOW_OS) {
        luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
    } else {
        lua_createtable(L, 0, 2);
    }
    set_node_fn(L, nd, node_time);
    lua_setfield(L, -2, "time");
    set_node_fn(L, nd, node_clock);
    lua_setfield(L, -2, "clock");
    lua_pushvalue(L, -1);
    lua_setglobal(L, "os");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_insert(L, -2);
    lua_setfield(L, -2, "os");
    lua_pop(L, 1);
    set_node_fn(L, nd, node_print);
    lua_setglobal(L, "print");
    lua_getglobal(L, "load");
    lua_pushcclosure(L, node_load, 1);
    lua_setglobal(L, "load");
    lua_pushcfunction(L, node_pcall);
    lua_setglobal(L, "pcall");
    lua_pushcfunction(L, node_xpcall);
    lua_setglobal(L, "xpcall");

    /* The fixed slots. */
    lua_settop(L, 0);
    lua_pushcfunction(L, msgh); /* S_MSGH */
    lua_newtable(L);            /* tag -> name */
    lua_newtable(L);            /* name -> tag */
    lua_createtable(L, 0, 16);  /* the node table */
    lua_pushlightuserdata(L, nd);
    lua_pushvalue(L, -4);
    lua_pushvalue(L, -4);
    luaL_setfuncs(L, node_methods, 3); /* upvalues: nd, tag tables */
                                       /* [msgh, t2n, n2t, node] */
    lua_pushinteger(L, nd->id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, nd->n);
    lua_setfield(L, -2, "n");
    lua_pushinteger(L, nd->f);
    lua_setfield(L, -2, "f");
    lua_pushboolean(L, cs_sim_is_byzantine(nd->sim, nd->id));
    lua_setfield(L, -2, "byzantine");
    lua_newtable(L);
    lua_setfield(L, -2, "store");
    lua_createtable(L, 0, 3);
    set_node_fn(L, nd, node_index);
    lua_setfield(L, -2, "__index");
    set_node_fn(L, nd, node_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "consensus.Node");
    lua_setfield(L, -2, "__name");
    lua_setmetatable(L, -2);
    lua_insert(L, S_NODE); /* [msgh, node, t2n, n2t] */
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_rotate(L, S_START, 3); /* [msgh, node, nil x3, t2n, n2t] */
    lua_pushnil(L);            /* S_ON */
    lua_createtable(L, LCS_SCACHE, 0);
    lua_pushcclosure(L, deliver, 1); /* S_DELIVER */
    CS_ASSERT(lua_gettop(L) == S_TOP);
    return S_TOP;
}

int lcs_node_open(lcs_node *nd)
{
    lua_State *L = lua_newstate(node_alloc, nd);

    if (L == NULL) {
        return CS_ENOMEM;
    }
    *(lcs_node **)lua_getextraspace(L) = nd;
    lcs_watch_hold(nd->run); /* a restart, while the watchdog looks */
    nd->L = L;
    lcs_watch_release(nd->run);
    /* a fresh state: a fresh cache table, inside deliver */
    memset(nd->scache.len, 0, sizeof nd->scache.len);
    nd->scache.idx = lua_upvalueindex(1);
    nd->on_type = NULL;
    lua_pushcfunction(L, setup);
    lua_pushlightuserdata(L, nd);
    if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK || !lua_checkstack(L, 32)) {
        lcs_node_close(nd);
        return CS_ENOMEM;
    }
    /* No hook here: call() sets the budget's count hook (if any) afresh
     * for every handler call. */
    /* Messages are short-lived tables: the generational collector
     * handles them with less work than the incremental one. */
    lua_gc(L, LUA_GCGEN, 0, 0);
    return CS_OK;
}

void lcs_node_close(lcs_node *nd)
{
    if (nd->L != NULL) {
        lcs_watch_hold(nd->run); /* a crash, while the watchdog looks */
        lua_close(nd->L);
        nd->L = NULL;
        lcs_watch_release(nd->run);
    }
    lcs_node_free_slabs(nd);
    lcs_wbuf_free(&nd->wbuf);
}

void lcs_node_free(lcs_node *nd)
{
    lcs_node_close(nd);
    cs_log_free(nd->store_log);
    cs_log_free(nd->dec_log);
    nd->store_log = nd->dec_log = NULL;
    free(nd->type_msgs);
    free(nd->type_bytes);
    free(nd->synced);
    free(nd->saved);
    nd->type_msgs = nd->type_bytes = NULL;
    nd->synced = nd->saved = NULL;
    nd->ntype = 0;
}

void lcs_node_timer_name(lcs_node *nd, uint32_t tag, lua_State *L)
{
    if (nd->L == NULL) {
        lua_pushnil(L);
        return;
    }
    lua_rawgeti(nd->L, S_TAGNAME, tag);
    if (lua_type(nd->L, -1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(nd->L, -1, &len);

        lua_pushlstring(L, s, len);
    } else {
        lua_pushinteger(L, lua_tointeger(nd->L, -1));
    }
    lua_pop(nd->L, 1);
}

/* ------------------------------------------------------ crash, restart */

/* (nd, node table): a C frame of its own, so the node comes as arg 2. */
static int save_store(lua_State *L)
{
    lcs_node *nd = lua_touserdata(L, 1);

    snapshot(L, nd, 2, &nd->saved, &nd->saved_len);
    return 0;
}

void lcs_node_crash(void *ud, cs_sim *sim, uint32_t node, int flags)
{
    lcs_node *nd = &((lcs_run *)ud)->nodes[node];

    (void)sim;
    nd->has_saved = 0;
    if (flags & CS_CRASH_LOSE_UNSYNCED) {
        /* The disk kept only what was synced. */
        if (nd->synced != NULL) {
            unsigned char *copy = malloc(nd->synced_len ? nd->synced_len : 1);

            if (copy != NULL) {
                memcpy(copy, nd->synced, nd->synced_len);
                free(nd->saved);
                nd->saved = copy;
                nd->saved_len = nd->synced_len;
                nd->has_saved = 1;
            }
        }
    } else if (nd->L != NULL) {
        lua_pushcfunction(nd->L, save_store);
        lua_pushlightuserdata(nd->L, nd);
        lua_pushvalue(nd->L, S_NODE);
        if (lua_pcall(nd->L, 2, 0, 0) == LUA_OK) {
            nd->has_saved = 1;
        } else {
            lua_pop(nd->L, 1); /* an unencodable store is lost */
        }
    }
    lcs_node_close(nd);
}

static int restore_store(lua_State *L)
{
    lcs_node *nd = lua_touserdata(L, 1);

    if (nd->has_saved && lcs_decode(L, nd->saved, nd->saved_len) &&
        lua_istable(L, -1)) {
        lua_setfield(L, 2, "store"); /* arg 2: the node table */
    }
    return 0;
}

void lcs_node_restore(lcs_node *nd)
{
    lua_pushcfunction(nd->L, restore_store);
    lua_pushlightuserdata(nd->L, nd);
    lua_pushvalue(nd->L, S_NODE);
    if (lua_pcall(nd->L, 2, 0, 0) != LUA_OK) {
        lua_pop(nd->L, 1);
    }
}

int lcs_node_restart(void *ud, cs_sim *sim, uint32_t node)
{
    lcs_run *run = ud;
    lcs_node *nd = &run->nodes[node];
    lua_State *L = run->L;
    int ok;

    if (lcs_node_open(nd) != CS_OK) {
        return 1;
    }
    lua_rawgeti(L, run->protocols_idx, (lua_Integer)node);
    ok = lcs_transfer_cached(L, -1, nd->L, run->name, run->cache_idx);
    /* [protocol] or [protocol, message]; the copy worked at the start, so
     * a failure here is memory */
    lua_pop(L, ok ? 1 : 2);
    if (!ok) {
        return 1;
    }
    lcs_node_install(nd);
    lcs_node_restore(nd);
    return lcs_node_start(run, sim, node);
}

void lcs_node_install(lcs_node *nd)
{
    lua_State *L = nd->L;

    /* The protocol table is on top; handlers that are not functions are
     * ignored (a protocol may omit timer, say). */
    lua_getfield(L, -1, "start");
    lua_replace(L, S_START);
    lua_getfield(L, -1, "receive");
    lua_replace(L, S_RECEIVE);
    lua_getfield(L, -1, "timer");
    lua_replace(L, S_TIMER);
    if (lua_getfield(L, -1, "on") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
    lua_replace(L, S_ON);
    lua_pushvalue(L, -1);
    lua_setfield(L, S_NODE, "protocol");
    lua_pop(L, 1);
    /* Building the state and copying the protocol left garbage (the
     * copy's lookup tables): collect it now, not at the first message. */
    lua_gc(L, LUA_GCCOLLECT);
}

/* ---------------------------------------------------------- handlers */

/* Call the handler below 'nargs' arguments; on error emit the message and
 * report the node failed. */
static int call(lcs_node *nd, int nargs, const char *what)
{
    lua_State *L = nd->L;
    int rc;

    nd->steps = 0;
    nd->tripped = 0;
    if (nd->lim->budget > 0) {
        /* Count from 0 in every call: the hook's period must not carry
         * over from the previous call. */
        lua_sethook(L, count_hook, LUA_MASKCOUNT, hook_every(nd));
    }
    nd->in_handler = 1;
    /* odd while the call runs: what the watchdog looks at */
    atomic_fetch_add_explicit(&nd->calls, 1, memory_order_relaxed);
    nd->on_type = NULL;
    rc = lua_pcall(L, nargs, 0, S_MSGH);
    nd->in_handler = 0;
    atomic_fetch_add_explicit(&nd->calls, 1, memory_order_relaxed);
    if (rc != LUA_OK) {
        size_t len, i;
        const char *msg;
        char hname[4 + LCS_MAX_TYPE];

        if (nd->on_type != NULL) {
            /* "on.TYPE"; the record's first line must stay one line */
            memcpy(hname, "on.", 3);
            for (i = 0; i < nd->on_tlen; i++) {
                unsigned char c = (unsigned char)nd->on_type[i];

                hname[3 + i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
            }
            hname[3 + i] = '\0';
            what = hname;
            nd->on_type = NULL;
        }

        if (rc == LUA_ERRMEM && nd->capped) {
            lua_pushfstring(L, "memory cap of %I bytes reached (see --memory)",
                            (LUAI_UACINT)nd->lim->mem);
        }
        nd->capped = 0;
        msg = lua_tolstring(L, -1, &len);
        /* "what\n" then the message with its traceback.  No raising here:
         * build the record in C memory. */
        size_t wlen = strlen(what);
        char *rec = malloc(wlen + 1 + len + 1);

        if (rec != NULL) {
            memcpy(rec, what, wlen);
            rec[wlen] = '\n';
            memcpy(rec + wlen + 1, msg != NULL ? msg : "?", msg ? len : 1);
            cs_sim_emit(nd->sim, nd->id, LCS_OUT_ERROR, rec,
                        wlen + 1 + (msg ? len : 1));
            free(rec);
        }
        lua_settop(L, S_TOP);
        return 1;
    }
    return 0;
}

static int is_fn(lua_State *L, int slot)
{
    return lua_type(L, slot) == LUA_TFUNCTION;
}

int lcs_node_start(void *ud, cs_sim *sim, uint32_t node)
{
    lcs_node *nd = &((lcs_run *)ud)->nodes[node];
    lua_State *L = nd->L;

    (void)sim;
    if (!is_fn(L, S_START)) {
        return 0;
    }
    lua_pushvalue(L, S_START);
    lua_pushvalue(L, S_NODE);
    return call(nd, 1, "start");
}

/* [on, receive, node, msg, from]: decode inside the protected call (a
 * node at its memory cap may fail to build the message, and that must
 * fail the node, not the process) and call the handler.  Upvalue 1 is
 * the string cache's table. */
static int deliver(lua_State *L)
{
    lcs_node *nd = lcs_node_of(L);
    const cs_msg *m = lua_touserdata(L, 4);
    const void *data = cs_msg_data(m);
    size_t len = cs_msg_len(m), tlen, body;
    const char *type;
    int k;

    if (lcs_is_args(data, len)) {
        if ((k = lcs_args_head(data, len, &type, &tlen, &body)) < 0) {
            return luaL_error(L, "receive: malformed message");
        }
        if (lua_type(L, 1) == LUA_TTABLE) {
            lcs_push_cached(L, &nd->scache, type, tlen);
            if (lua_rawget(L, 1) == LUA_TFUNCTION) {
                nd->on_type = type; /* an error names on.TYPE */
                nd->on_tlen = tlen;
                lua_pushvalue(L, 3);
                lua_pushvalue(L, 5); /* [.., on[type], node, from] */
                if (!lcs_decode_args(L, data, len, body, k, &nd->scache)) {
                    return luaL_error(L, "receive: malformed message");
                }
                lua_call(L, 2 + k, 0);
                return 0;
            }
            lua_pop(L, 1);
        }
        if (lua_type(L, 2) != LUA_TFUNCTION) {
            return 0; /* no handler takes it */
        }
    }
    /* Tables without the string cache: it saves 1% of the instructions
     * but measured 1-5% slower in CPU time (bench/allvote.lua, N=64) */
    if (!lcs_decode_cached(L, data, len, NULL)) {
        return luaL_error(L, "receive: malformed message");
    }
    lua_replace(L, 4); /* [on, receive, node, msg, from] */
    lua_call(L, 3, 0);
    return 0;
}

int lcs_node_message(void *ud, cs_sim *sim, uint32_t node, uint32_t from,
                     cs_msg *msg)
{
    lcs_node *nd = &((lcs_run *)ud)->nodes[node];
    lua_State *L = nd->L;

    (void)sim;
    if (!is_fn(L, S_RECEIVE) &&
        !(lua_type(L, S_ON) == LUA_TTABLE &&
          lcs_is_args(cs_msg_data(msg), cs_msg_len(msg)))) {
        return 0;
    }
    lua_pushvalue(L, S_DELIVER);
    lua_pushvalue(L, S_ON);
    lua_pushvalue(L, S_RECEIVE);
    lua_pushvalue(L, S_NODE);
    lua_pushlightuserdata(L, msg);
    lua_pushinteger(L, from);
    return call(nd, 5, "receive");
}

int lcs_node_timer(void *ud, cs_sim *sim, uint32_t node, uint32_t tag)
{
    lcs_node *nd = &((lcs_run *)ud)->nodes[node];
    lua_State *L = nd->L;

    (void)sim;
    if (!is_fn(L, S_TIMER)) {
        return 0;
    }
    lua_pushvalue(L, S_TIMER);
    lua_pushvalue(L, S_NODE);
    lua_rawgeti(L, S_TAGNAME, tag);
    return call(nd, 2, "timer");
}
